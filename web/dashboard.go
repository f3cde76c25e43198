package web

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
)

// Sign-in throttling: an account allows 5 failed attempts, then one more
// per minute; an IP (which may try many accounts) allows 20, then one
// every 15 seconds. Successful sign-ins cost nothing; every sign-up costs
// from the same IP budget. The buckets are in the database, so they hold
// across every node that shares it.
const (
	accountBurst, accountEvery = 5, time.Minute
	ipBurst, ipEvery           = 20, 15 * time.Second
)

// Dashboard sign-ins end after DefaultOwnerIdle without a request, or
// DefaultOwnerMaxAge after they began, unless Config says otherwise.
const (
	DefaultOwnerIdle   = 12 * time.Hour
	DefaultOwnerMaxAge = 7 * 24 * time.Hour
)

// dashboard adds the site owners' pages: sign-in, apps, inbox, settings
// and the inbox's live socket.
func dashboard(e *echo.Echo, cfg Config, origin string, pages handlers.Pages, db *store.DB, hub *chat.Hub, uploads *handlers.Uploads, log *slog.Logger) {
	idle, maxAge := cfg.OwnerIdle, cfg.OwnerMaxAge
	if idle <= 0 {
		idle = DefaultOwnerIdle
	}
	if maxAge <= 0 {
		maxAge = DefaultOwnerMaxAge
	}
	clock := cfg.ThrottleClock
	if clock == nil {
		clock = time.Now
	}
	secure := strings.HasPrefix(origin, "https://")
	cookie := "parley_owner"
	if secure {
		cookie = "__Host-parley_owner" // the browser then refuses it from http or another path or domain
	}
	auth := &handlers.OwnerAuth{Pages: pages, Store: db, Agents: hub, CookieName: cookie, Secure: secure, Idle: idle, MaxAge: maxAge,
		SignupOpen: cfg.Signup, Log: log,
		Throttles:  db,
		PerAccount: ratelimit.Rate{Burst: accountBurst, Every: accountEvery},
		PerIP:      ratelimit.Rate{Burst: ipBurst, Every: ipEvery},
		Clock:      clock}
	settings := &handlers.Settings{Pages: pages, Store: db, Agents: hub, PublicURL: origin,
		MailOn: cfg.MailOn || cfg.Mail != nil, EmailWaits: cfg.EmailWaits, Mail: cfg.Mail}
	apps := &handlers.Apps{Pages: pages, Store: db, Settings: settings}
	inbox := &handlers.Inbox{Pages: pages, Store: db, Delivery: hub, Uploads: uploads}
	socket := handlers.NewAgentSocket(hub, origin, db, idle)
	hooks := &handlers.DashWebhooks{Pages: pages, Store: db, Guard: cfg.WebhookGuard, Resolver: net.DefaultResolver}

	// Every state change is a POST, refused when the browser says it came
	// from another site (Sec-Fetch-Site, or Origin as a fallback).
	csrf := http.NewCrossOriginProtection()
	csrf.AddTrustedOrigin(origin) // in case a proxy in front rewrites Host
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("Refused: this request came from another site (cross-site request forgery protection).\n"))
	}))

	// Not a Group(""): a group with middleware catches every unknown path.
	mw := []echo.MiddlewareFunc{handlers.DashboardHeaders, echo.WrapMiddleware(csrf.Handler), middleware.BodyLimit("64K")}
	e.GET("/login", auth.LoginForm, mw...)
	e.POST("/login", auth.Login, mw...)
	e.POST("/logout", auth.Logout, mw...)
	e.GET("/signup", auth.SignupForm, mw...)
	links := &handlers.OwnerLinks{Pages: pages, Store: db, Auth: auth, Mail: cfg.Mail, PublicURL: origin}
	e.GET("/forgot", links.ForgotForm, mw...)
	e.POST("/forgot", links.Forgot, mw...)
	e.GET("/reset", links.ResetForm, mw...)
	e.POST("/reset", links.Reset, mw...)
	e.GET("/invite", links.InviteForm, mw...)
	e.POST("/invite", links.Invite, mw...)
	// Followed from an e-mail, and posted to by mail programs (one-click
	// unsubscribe): no sign-in, and no same-site check for its POST.
	unsubscribe := &handlers.Unsubscribe{Pages: pages, Store: db}
	e.GET("/email/unsubscribe", unsubscribe.Show, handlers.DashboardHeaders, middleware.BodyLimit("4K"))
	e.POST("/email/unsubscribe", unsubscribe.Do, handlers.DashboardHeaders, middleware.BodyLimit("4K"))
	e.POST("/signup", auth.Signup, mw...)

	// Uploads are larger than the 64K every other form gets.
	uploadMW := []echo.MiddlewareFunc{handlers.DashboardHeaders, echo.WrapMiddleware(csrf.Handler), auth.Require, handlers.RequireMember(db)}
	e.POST("/dashboard/apps/:app_id/conversations/:id/attachments", inbox.Attach, uploadMW...)
	e.POST("/dashboard/apps/:app_id/settings/avatar", settings.UploadAvatar, uploadMW...)

	o := e.Group("/dashboard", append(mw, auth.Require)...)
	o.GET("", apps.List)
	o.POST("/apps", apps.Create)

	a := o.Group("/apps/:app_id", handlers.RequireMember(db))
	a.GET("", inbox.Show)
	a.GET("/ws", socket.Serve)
	a.GET("/conversations/:id", inbox.Show)
	a.POST("/conversations/:id/messages", inbox.Reply)
	a.POST("/conversations/:id/status", inbox.SetStatus)
	a.POST("/conversations/:id/typing", inbox.Typing)
	a.POST("/conversations/:id/read", inbox.Read)
	a.GET("/attachments/:id", inbox.Attachment)
	a.GET("/settings", settings.Show)
	a.POST("/settings", settings.Save)
	a.POST("/settings/secret/reveal", settings.RevealSecret)
	a.POST("/settings/secret/rotate", settings.RotateSecret)
	a.POST("/settings/secret/revoke", settings.RevokeSecret)
	a.POST("/settings/api-key/rotate", settings.RotateAPIKey)
	a.POST("/settings/disable", settings.Disable)
	a.POST("/settings/enable", settings.Enable)
	a.POST("/settings/members", settings.AddMember)
	a.POST("/settings/members/remove", settings.RemoveMember)
	a.POST("/settings/email-alerts", settings.SetEmailAlerts)
	a.POST("/settings/email-waits", settings.SetEmailWaits)
	a.POST("/settings/availability", settings.SaveAvailability)
	a.POST("/settings/appearance", settings.SaveAppearance)
	a.POST("/settings/avatar/remove", settings.RemoveAvatar)
	a.POST("/settings/origins/allow", settings.AllowOrigin)
	a.POST("/settings/invites/cancel", settings.CancelInvite)
	a.GET("/webhooks", hooks.Show)
	a.POST("/webhooks", hooks.Add)
	a.GET("/webhooks/:id", hooks.Deliveries)
	a.POST("/webhooks/:id/remove", hooks.Remove)
	a.POST("/webhooks/:id/rotate", hooks.RotateSecret)
	a.POST("/webhooks/:id/enable", hooks.Enable)
	a.POST("/webhooks/:id/deliveries/:delivery_id/resend", hooks.Resend)
}
