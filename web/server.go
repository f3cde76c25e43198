// Package web assembles Parley's HTTP server: routes, middleware and the
// handlers with their dependencies.
package web

import (
	"path"

	"github.com/tdewolff/minify/v2"
	"github.com/tdewolff/minify/v2/css"
	"github.com/tdewolff/minify/v2/js"

	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	parley "github.com/parley-chat/parley"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
)

// Config is what the server needs to know about where it runs.
// Attachments: the size of one file unless the operator says otherwise,
// and what one user and one app keep at most.
const (
	DefaultAttachmentMaxSize  = 10 << 20
	DefaultAttachmentsPerUser = 100 << 20
	DefaultAttachmentsPerApp  = 10 << 30
)

type Config struct {
	// AttachmentMaxSize bounds one uploaded file (0: the default, 10 MB);
	// AttachmentQuotas what a user and an app keep (0: the defaults).
	AttachmentMaxSize int64
	AttachmentQuotas  store.AttachmentQuotas
	// SessionRefusals, when set, counts the widget sessions refused, by
	// reason, for the metrics.
	SessionRefusals *handlers.Refusals
	// Mail sends the dashboard's e-mail (password resets, invitations);
	// nil when the server sends none (no serve --smtp-url).
	Mail *mail.Sender
	// MailOn says the server sends e-mail, and EmailWaits are its default
	// waits before it does; the settings page shows both.
	MailOn     bool
	EmailWaits store.EmailWaits
	// PublicURL is Parley's own origin as browsers see it, e.g.
	// https://chat.example.com. Only this Origin may create sessions or
	// open widget sockets.
	PublicURL  string
	SessionTTL time.Duration
	// Signup lets anyone with the URL create an owner account at /signup.
	// Off by default: operators create owners with `parley owners create`.
	Signup bool
	// OwnerIdle and OwnerMaxAge end a dashboard sign-in after that long
	// without a request, or that long after it began (zero: 12h and 7 days).
	OwnerIdle, OwnerMaxAge time.Duration
	// TrustedProxies are the reverse proxies (CIDRs or IPs) whose
	// X-Forwarded-For names the client. With none, the client is the
	// connection's peer and X-Forwarded-For is ignored.
	TrustedProxies []string
	// Limits are the abuse limits of the widget's endpoints; New applies
	// Limits.Chat to the hub.
	Limits Limits
	// ThrottleClock is the time the dashboard's sign-in throttles read;
	// nil is time.Now. Tests that count a burst of failed sign-ins stop it,
	// so that a slow machine's refills don't change the count.
	ThrottleClock func() time.Time
	// BrokerReady, on a node of a cluster, reports whether it can reach
	// the other nodes; /readyz answers 503 while it cannot.
	BrokerReady func(context.Context) error
	// WebhookGuard is the operator's allow list for webhook URLs
	// (serve --webhook-allow); the zero value refuses internal addresses.
	WebhookGuard webhooks.Guard
}

// ParseProxies reads trusted-proxy CIDRs; a bare IP is a range of one.
func ParseProxies(raw []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, r := range raw {
		r = strings.TrimSpace(r)
		if ip := net.ParseIP(r); ip != nil {
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(r)
		if err != nil {
			return nil, fmt.Errorf("web: trusted proxy %q is not an IP or CIDR such as 10.0.0.0/8", r)
		}
		out = append(out, n)
	}
	return out, nil
}

// ipExtractor says who the client is: the connection's peer, or, when it
// is a trusted proxy, the nearest untrusted address in X-Forwarded-For.
func ipExtractor(proxies []*net.IPNet) echo.IPExtractor {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	// Echo trusts loopback and private ranges by default; only the named
	// proxies are trusted here.
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range proxies {
		opts = append(opts, echo.TrustIPRange(p))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// PublicOrigin returns the canonical scheme://host[:port] of a public URL.
func PublicOrigin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("web: public URL %q must look like https://chat.example.com", raw)
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p) // browsers leave default ports out of Origin
	}
	return u.Scheme + "://" + host, nil
}

// New returns the HTTP handler for the whole server.
func New(cfg Config, db *store.DB, hub *chat.Hub, log *slog.Logger) (*echo.Echo, error) {
	origin, err := PublicOrigin(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	if cfg.SessionTTL <= 0 {
		return nil, errors.New("web: session TTL must be positive")
	}
	proxies, err := ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(parley.Static, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	assets, err := newAssets(static)
	if err != nil {
		return nil, err
	}
	loader, err := assets.loader("widget.js", "widget-chat.js", "public, max-age=300")
	if err != nil {
		return nil, err
	}

	limits := cfg.Limits.orDefault()
	hub.SetLimits(limits.Chat)

	pages := handlers.Pages{ScriptURL: assets.url("dashboard.js"), StyleURL: assets.url("dashboard.css")}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Sign-in throttling and the widget's limits are keyed by the client
	// IP, so X-Forwarded-For is believed only from proxies the operator named.
	e.IPExtractor = ipExtractor(proxies)
	e.HTTPErrorHandler = handlers.ErrorHandler(log, pages)
	e.Use(middleware.Recover())
	e.Use(requestLog(log))
	e.Use(securityHeaders)
	// A backstop: a route that forgets its own limit still reads at most
	// this. Uploads set theirs from the operator's --attachment-max-size.
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: bodyLimit,
		Skipper: func(c echo.Context) bool { return uploadRoutes[c.Path()] }}))
	e.Use(middleware.GzipWithConfig(middleware.GzipConfig{
		// Static files and the chat frame's page, which carries no secret
		// (so compressing it leaks nothing à la BREACH). Pages with tokens
		// or secrets in them stay uncompressed.
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			return !strings.HasPrefix(p, "/static/") && p != "/widget.js" && !strings.HasPrefix(p, "/w/")
		},
	}))

	frame := &handlers.Frame{Apps: db, PublicOrigin: origin, ScriptURL: assets.url("frame.js"), StyleURL: assets.url("frame.css")}
	sessions := &handlers.Sessions{Store: appSessionBudget{DB: db, perApp: limits.SessionsPerApp}, PublicOrigin: origin, TTL: cfg.SessionTTL, Log: log}
	socket := handlers.NewWidgetSocket(hub, origin)
	uploads := &handlers.Uploads{Store: db, MaxSize: cmp.Or(cfg.AttachmentMaxSize, DefaultAttachmentMaxSize),
		Quotas: store.AttachmentQuotas{PerUser: cmp.Or(cfg.AttachmentQuotas.PerUser, DefaultAttachmentsPerUser),
			PerApp: cmp.Or(cfg.AttachmentQuotas.PerApp, DefaultAttachmentsPerApp)}}
	convs := &handlers.Conversations{Store: db, Delivery: hub, Uploads: uploads}

	e.GET("/", func(c echo.Context) error {
		return c.String(http.StatusOK, "Parley is running. Embed /widget.js on your site; site owners sign in at /login.\n")
	})
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	ready := &handlers.Readiness{Log: log, Checks: []handlers.ReadyCheck{{Name: "database", Ready: db.Ready}, {Name: "sockets", Ready: hub.Ready}}}
	if cfg.BrokerReady != nil {
		ready.Checks = append(ready.Checks, handlers.ReadyCheck{Name: "broker", Ready: cfg.BrokerReady})
	}
	e.GET("/readyz", ready.Show)
	e.GET("/widget.js", loader)
	e.GET("/static/:name", func(c echo.Context) error {
		return assets.serve(c.Param("name"), "public, max-age=31536000, immutable")(c)
	})
	e.GET("/w/:app_id", frame.Show)
	config := &handlers.WidgetConfig{Store: db, Log: log}
	e.GET("/api/widget/config.js", config.Show)
	e.GET("/api/widget/avatar/:app_id", config.Avatar)
	e.GET("/api/widget/locales/:tag", handlers.Locale)
	// Starting and ending sessions share one budget per address: each is a
	// write, and ending one takes nothing but a guessable-looking token.
	sessionsPerIP := perIP(limits.SessionsPerIP.Keyed(limitKeys), "too many chats are starting from your network; try again shortly")
	refusals := cfg.SessionRefusals
	if refusals == nil {
		refusals = &handlers.Refusals{}
	}
	e.POST("/api/widget/sessions", sessions.Create, refusals.Count, sessionsPerIP)
	e.DELETE("/api/widget/session", (&handlers.WidgetSession{Store: db, PublicOrigin: origin}).End, sessionsPerIP)
	files := &handlers.WidgetAttachments{Store: db, PublicOrigin: origin, Uploads: uploads}
	// Uploads share the budget of starting sessions: each is a write.
	e.POST("/api/widget/attachments", files.Upload, sessionsPerIP)
	e.GET("/api/widget/attachments/:id", files.Download)
	e.GET("/api/widget/ws", socket.Serve,
		perIP(limits.SocketOpensPerIP.Keyed(limitKeys), "too many chat connections are opening from your network; try again shortly"))

	// Before the group, whose key check it does not need.
	e.GET("/api/v1/openapi.json", handlers.OpenAPI)
	api := e.Group("/api/v1", handlers.RequireAPIKey(db))
	api.GET("/conversations", convs.List)
	api.GET("/conversations/:id", convs.Show)
	api.PATCH("/conversations/:id", convs.Update)
	api.GET("/conversations/:id/messages", convs.Messages)
	api.POST("/conversations/:id/messages", convs.Reply)
	api.POST("/conversations/:id/attachments", convs.Attach)
	api.POST("/conversations/:id/typing", convs.Typing)
	hooks := &handlers.Webhooks{Store: db, Guard: cfg.WebhookGuard, Resolver: net.DefaultResolver}
	api.GET("/webhooks", hooks.List)
	api.POST("/webhooks", hooks.Add)
	api.DELETE("/webhooks/:id", hooks.Remove)
	api.POST("/webhooks/:id/rotate-secret", hooks.RotateSecret)
	api.POST("/webhooks/:id/enable", hooks.Enable)
	api.GET("/webhooks/:id/deliveries", hooks.Deliveries)
	api.POST("/webhooks/:id/deliveries/:delivery_id/resend", hooks.Resend)

	dashboard(e, cfg, origin, pages, db, hub, uploads, log)
	return e, nil
}

// securityHeaders are sent on every response. Pages that must be framed
// (the chat frame) set their own frame-ancestors; everything else refuses
// to be framed.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		return next(c)
	}
}

// requestLog logs method, path (never the query string, where a careless
// client might put a secret) and status.
func requestLog(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURIPath: true, LogStatus: true, LogLatency: true,
		// Render errors before logging: otherwise every error response
		// (APIError is not an echo.HTTPError) is logged with status 200.
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			log.Info("http", "method", v.Method, "path", v.URIPath, "status", v.Status, "ms", v.Latency.Milliseconds())
			return nil
		},
	})
}

// assets serves the embedded static files with content-hashed URLs.
// Scripts and stylesheets are minified once, at start: the sources stay
// commented and readable, and what browsers download stays small (the
// loader's budget is 2 KB gzipped).
type assets struct {
	files  map[string][]byte
	hashes map[string]string
}

func newAssets(files fs.FS) (*assets, error) {
	a := &assets{files: map[string][]byte{}, hashes: map[string]string{}}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	m := minify.New()
	m.AddFunc("text/javascript", js.Minify)
	m.AddFunc("text/css", css.Minify)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(files, e.Name())
		if err != nil {
			return nil, fmt.Errorf("web: static files: %w", err)
		}
		switch path.Ext(e.Name()) {
		case ".js":
			b, err = m.Bytes("text/javascript", b)
		case ".css":
			b, err = m.Bytes("text/css", b)
		}
		if err != nil {
			return nil, fmt.Errorf("web: minify %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		a.files[e.Name()] = b
		a.hashes[e.Name()] = hex.EncodeToString(sum[:6])
	}
	return a, nil
}

func (a *assets) url(name string) string { return "/static/" + name + "?v=" + a.hashes[name] }

// loader serves the loader script name with its one reference to
// "/static/"+rest replaced by rest's content-hashed URL: the loader, cached
// for minutes, always loads the rest that goes with it, cached for good.
func (a *assets) loader(name, rest, cacheControl string) (echo.HandlerFunc, error) {
	b, ok := a.files[name]
	if !ok {
		return nil, fmt.Errorf("web: no static file %s", name)
	}
	ref := []byte(`"/static/` + rest + `"`)
	if bytes.Count(b, ref) != 1 {
		return nil, fmt.Errorf("web: %s must name %s exactly once", name, ref)
	}
	b = bytes.Replace(b, ref, []byte(`"`+a.url(rest)+`"`), 1)
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", cacheControl)
		c.Response().Header().Set("Access-Control-Allow-Origin", "*") // public script, no credentials
		http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(b))
		return nil
	}, nil
}

func (a *assets) serve(name, cacheControl string) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, ok := a.files[name]
		if !ok {
			return echo.NewHTTPError(http.StatusNotFound, "not found")
		}
		c.Response().Header().Set("Cache-Control", cacheControl)
		c.Response().Header().Set("Access-Control-Allow-Origin", "*") // public script, no credentials
		http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(b))
		return nil
	}
}
