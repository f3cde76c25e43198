package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/password"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

type ownerStore interface {
	OwnerByEmail(ctx context.Context, email string) (store.Owner, string, error)
	CreateOwner(ctx context.Context, email, name, passwordHash string) (store.Owner, error)
	CreateOwnerSession(ctx context.Context, ownerID string, maxAge time.Duration) (store.OwnerSession, error)
	OwnerSessionByToken(ctx context.Context, token string, idle time.Duration) (*store.OwnerSession, error)
	DeleteOwnerSession(ctx context.Context, token string) error
}

// throttleStore keeps the sign-in throttles' token buckets, in the
// database that every node shares, so failures on one node count on all.
type throttleStore interface {
	TokensWait(ctx context.Context, now time.Time, buckets ...store.Bucket) (time.Duration, error)
	TakeTokens(ctx context.Context, now time.Time, buckets ...store.Bucket) (bool, time.Duration, error)
	ReturnTokens(ctx context.Context, now time.Time, buckets ...store.Bucket) error
}

// agentSessions ends the live sockets of a dashboard sign-in.
type agentSessions interface {
	EndAgentSession(sessionKey string)
}

// OwnerAuth signs site owners in and out of the dashboard and guards its
// pages. Failed sign-ins are throttled per account and per client IP, and
// an unknown email gets exactly the answer a wrong password gets.
type OwnerAuth struct {
	Pages
	Store      ownerStore
	Agents     agentSessions
	CookieName string
	Secure     bool // set the cookie's Secure flag (Parley is served over https)
	Idle       time.Duration
	MaxAge     time.Duration
	SignupOpen bool
	// Throttles keeps the buckets of PerAccount (failed sign-ins of one
	// account) and PerIP (failed sign-ins and every sign-up from one
	// client address); Clock is the time they are read at.
	Throttles  throttleStore
	PerAccount ratelimit.Rate
	PerIP      ratelimit.Rate
	Clock      func() time.Time
	Log        *slog.Logger
}

func (h *OwnerAuth) ipBucket(ip string) store.Bucket {
	return store.Bucket{Key: "signin-ip:" + ip, Burst: h.PerIP.Burst, Every: h.PerIP.Every}
}

func (h *OwnerAuth) accountBucket(account string) store.Bucket {
	return store.Bucket{Key: "signin-account:" + account, Burst: h.PerAccount.Burst, Every: h.PerAccount.Every}
}

const ownerKey = "parley.owner"

var errBadCredentials = "Email or password is incorrect."

func ownerFrom(c echo.Context) *store.OwnerSession {
	o, _ := c.Get(ownerKey).(*store.OwnerSession)
	return o
}

// LoginForm serves GET /login.
func (h *OwnerAuth) LoginForm(c echo.Context) error {
	return render(c, http.StatusOK, templates.LoginPage(h.authView(c.QueryParam("next"), "", "", "")))
}

func (h *OwnerAuth) authView(next, email, name, msg string) templates.AuthView {
	return templates.AuthView{ScriptURL: h.ScriptURL, StyleURL: h.StyleURL, Next: safeNext(next), Email: email, Name: name,
		Error: msg, SignupEnabled: h.SignupOpen}
}

// takeTokens takes a token from each bucket, all or none. Buckets that
// are empty are told apart on the read connections first, so a flood of
// attempts that are refused anyway never queues for the database's
// single writer, which the chat's messages need.
func (h *OwnerAuth) takeTokens(ctx context.Context, now time.Time, buckets []store.Bucket) (bool, time.Duration, error) {
	if wait, err := h.Throttles.TokensWait(ctx, now, buckets...); err != nil || wait > 0 {
		return false, wait, err
	}
	return h.Throttles.TakeTokens(ctx, now, buckets...)
}

// returnTokens refunds an attempt's tokens. It is logged, not answered,
// if it fails: the attempt itself went through.
func (h *OwnerAuth) returnTokens(ctx context.Context, now time.Time, buckets []store.Bucket) {
	if err := h.Throttles.ReturnTokens(ctx, now, buckets...); err != nil {
		h.Log.Error("returning sign-in tokens", "err", err)
	}
}

// Login serves POST /login.
func (h *OwnerAuth) Login(c echo.Context) error {
	email := strings.TrimSpace(postValue(c, "email"))
	pw := postValue(c, "password")
	next := postValue(c, "next")
	account, ip := strings.ToLower(email), ratelimit.ClientKey(c.RealIP())
	if len(account) > 254 { // no valid email is longer; keeps throttling keys small
		account = account[:254]
	}
	// Each attempt takes a token before the password is looked at, so a
	// burst of parallel guesses, on any node, can't all get in ahead of
	// the count; one that succeeds gets its tokens back.
	ctx, now := c.Request().Context(), h.Clock()
	buckets := []store.Bucket{h.ipBucket(ip), h.accountBucket(account)}
	allowed, wait, err := h.takeTokens(ctx, now, buckets)
	if err != nil {
		return err
	}
	if !allowed {
		wait = max(wait, time.Second)
		mins := int(math.Ceil(wait.Minutes()))
		c.Response().Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
		msg := fmt.Sprintf("Too many failed sign-ins. Try again in %d minute%s.", mins, plural(mins))
		return render(c, http.StatusTooManyRequests, templates.LoginPage(h.authView(next, email, "", msg)))
	}
	owner, ok, err := h.check(ctx, account, pw)
	if err != nil {
		h.returnTokens(ctx, now, buckets) // the server failed, not the guess
		return err
	}
	if !ok {
		h.Log.Warn("failed dashboard sign-in", "ip", ip)
		return render(c, http.StatusUnauthorized, templates.LoginPage(h.authView(next, email, "", errBadCredentials)))
	}
	h.returnTokens(ctx, now, buckets)
	if err := h.startSession(c, owner.ID); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, safeNext(next))
}

// check verifies a password. An unknown email costs the same hashing time
// as a known one, so timing tells nothing about which accounts exist.
func (h *OwnerAuth) check(ctx context.Context, email, pw string) (store.Owner, bool, error) {
	owner, hash, err := h.Store.OwnerByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) || (err == nil && pw == "") {
		password.VerifyDummy(pw)
		return owner, false, nil
	}
	if err != nil {
		return owner, false, err
	}
	ok, err := password.Verify(hash, pw)
	if err != nil {
		return owner, false, fmt.Errorf("handlers: owner %s: %w", owner.ID, err)
	}
	return owner, ok, nil
}

// startSession always mints a new session id, so one planted before the
// sign-in (session fixation) is worthless.
func (h *OwnerAuth) startSession(c echo.Context, ownerID string) error {
	if old, err := c.Cookie(h.CookieName); err == nil {
		h.Store.DeleteOwnerSession(c.Request().Context(), old.Value)
	}
	sess, err := h.Store.CreateOwnerSession(c.Request().Context(), ownerID, h.MaxAge)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: h.CookieName, Value: sess.Token, Path: "/", Expires: sess.ExpiresAt,
		HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
	return nil
}

func (h *OwnerAuth) clearCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: h.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
}

// Logout serves POST /logout: the session ends on the server, and its open
// inbox sockets are closed.
func (h *OwnerAuth) Logout(c echo.Context) error {
	if ck, err := c.Cookie(h.CookieName); err == nil {
		// By hash, not by looking the session up: an idle session no longer
		// looks up, but its open sockets must still close.
		h.Agents.EndAgentSession(identity.TokenHash(ck.Value))
		if err := h.Store.DeleteOwnerSession(c.Request().Context(), ck.Value); err != nil {
			return err
		}
	}
	h.clearCookie(c)
	return c.Redirect(http.StatusSeeOther, "/login")
}

// SignupForm serves GET /signup when sign-up is open.
func (h *OwnerAuth) SignupForm(c echo.Context) error {
	if !h.SignupOpen {
		return echo.NewHTTPError(http.StatusNotFound, "Sign-up is closed. Ask the operator to create your account.")
	}
	return render(c, http.StatusOK, templates.SignupPage(h.authView("", "", "", "")))
}

// Signup serves POST /signup. Each attempt counts against the IP's
// sign-in budget, so it can't be used to hash passwords without limit.
func (h *OwnerAuth) Signup(c echo.Context) error {
	if !h.SignupOpen {
		return echo.NewHTTPError(http.StatusNotFound, "Sign-up is closed. Ask the operator to create your account.")
	}
	email, name, pw := strings.TrimSpace(postValue(c, "email")), strings.TrimSpace(postValue(c, "name")), postValue(c, "password")
	fail := func(status int, msg string) error {
		return render(c, status, templates.SignupPage(h.authView("", email, name, msg)))
	}
	// Every sign-up costs, so it can't be used to hash passwords without limit.
	allowed, _, err := h.takeTokens(c.Request().Context(), h.Clock(), []store.Bucket{h.ipBucket(ratelimit.ClientKey(c.RealIP()))})
	if err != nil {
		return err
	}
	if !allowed {
		return fail(http.StatusTooManyRequests, "Too many attempts from your network. Try again later.")
	}
	if name == "" {
		return fail(http.StatusBadRequest, "Please enter your name.")
	}
	if err := password.CheckPolicy(pw); err != nil {
		return fail(http.StatusBadRequest, err.Error())
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	owner, err := h.Store.CreateOwner(c.Request().Context(), email, name, hash)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return fail(http.StatusBadRequest, ie.Msg)
	}
	if err != nil {
		return err
	}
	if err := h.startSession(c, owner.ID); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/dashboard")
}

// Require lets only signed-in owners through. A page request without a
// valid session is sent to the sign-in page and comes back afterwards.
func (h *OwnerAuth) Require(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ck, err := c.Cookie(h.CookieName)
		if err != nil {
			return h.signInFirst(c)
		}
		sess, err := h.Store.OwnerSessionByToken(c.Request().Context(), ck.Value, h.Idle)
		if errors.Is(err, store.ErrNotFound) {
			h.clearCookie(c)
			return h.signInFirst(c)
		}
		if err != nil {
			return err
		}
		sess.Token = ck.Value // the owner's own, for the inbox socket's rechecks
		c.Set(ownerKey, sess)
		return next(c)
	}
}

func (h *OwnerAuth) signInFirst(c echo.Context) error {
	r := c.Request()
	if r.Method == http.MethodGet && !wantsJSON(c) && r.Header.Get("Upgrade") == "" {
		return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(r.URL.RequestURI()))
	}
	return echo.NewHTTPError(http.StatusUnauthorized, "Your session has ended. Sign in again.")
}

// safeNext keeps the after-sign-in redirect inside the dashboard, so the
// sign-in page can't be used to bounce owners to another site.
func safeNext(next string) string {
	if next == "/dashboard" || (strings.HasPrefix(next, "/dashboard/") && !strings.ContainsAny(next, "\\\r\n")) {
		return next
	}
	return "/dashboard"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
