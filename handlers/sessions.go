package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

type sessionStore interface {
	App(ctx context.Context, id string) (*store.App, error)
	CreateSession(ctx context.Context, in store.NewSession) (store.Session, error)
}

// Sessions serves POST /api/widget/sessions: the chat frame trades the
// identity the host page handed it for a session token.
type Sessions struct {
	Store        sessionStore
	PublicOrigin string
	TTL          time.Duration
	Log          *slog.Logger
}

const sessionBodyLimit = 16 << 10

type sessionRequest struct {
	AppID        string  `json:"app_id"`
	ParentOrigin string  `json:"parent_origin"`
	UserID       *string `json:"user_id"`
	Email        *string `json:"email"`
	Name         *string `json:"name"`
	UserHash     *string `json:"user_hash"`
	VisitorToken *string `json:"visitor_token"`
	PageURL      *string `json:"page_url"`
}

type sessionResponse struct {
	Token        string    `json:"token"`
	ExpiresAt    time.Time `json:"expires_at"`
	Verified     bool      `json:"verified"`
	Anonymous    bool      `json:"anonymous"`
	VisitorToken string    `json:"visitor_token,omitempty"`
}

func (h *Sessions) Create(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	// Only Parley's own frame may create sessions. A browser can't forge
	// Origin, so this stops other sites' scripts; curl can, which is why the
	// identity proof below is the real gate.
	if c.Request().Header.Get("Origin") != h.PublicOrigin {
		return apiError(http.StatusForbidden, "origin_not_allowed", "sessions can only be created by Parley's chat frame")
	}
	var req sessionRequest
	if err := decodeJSON(c, sessionBodyLimit, &req); err != nil {
		return err
	}
	if req.AppID == "" {
		return apiError(http.StatusBadRequest, "invalid_request", "app_id is required")
	}
	ctx := c.Request().Context()
	app, err := h.Store.App(ctx, req.AppID)
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "app_not_found", "no such app")
	}
	if err != nil {
		return err
	}
	if req.ParentOrigin == "" {
		return apiError(http.StatusBadRequest, "invalid_request", "parent_origin is required")
	}
	if !app.AllowsOrigin(req.ParentOrigin) {
		return apiError(http.StatusForbidden, "parent_origin_not_allowed", "this app does not allow the page's origin")
	}
	in, err := h.resolve(app, &req)
	if err != nil {
		return err
	}
	sess, err := h.Store.CreateSession(ctx, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, sessionResponse{Token: sess.Token, ExpiresAt: sess.ExpiresAt, Verified: sess.Verified(),
		Anonymous: sess.Kind == store.KindVisitor, VisitorToken: sess.VisitorToken})
}

// resolve validates the claimed identity and decides which kind of subject
// the session speaks for.
func (h *Sessions) resolve(app *store.App, req *sessionRequest) (store.NewSession, error) {
	in := store.NewSession{AppID: app.ID, ParentOrigin: req.ParentOrigin, TTL: h.TTL}
	for _, f := range []struct {
		name string
		v    *string
		dst  *string
	}{{"user_id", req.UserID, &in.UserID}, {"email", req.Email, &in.Email}, {"name", req.Name, &in.Name}} {
		if f.v == nil {
			continue
		}
		if err := checkField(f.name, *f.v); err != nil {
			return in, err
		}
		*f.dst = *f.v
	}
	if req.Email != nil && !strings.Contains(in.Email, "@") {
		return in, apiError(http.StatusBadRequest, "invalid_request", "email must be an email address")
	}
	if req.VisitorToken != nil {
		in.VisitorToken = *req.VisitorToken
	}
	if req.PageURL != nil {
		u, err := pageURL(*req.PageURL, req.ParentOrigin)
		if err != nil {
			return in, err
		}
		in.PageURL = u
	}
	// The hash covers the user_id when there is one, else the email.
	claim, key := in.UserID, "uid:"+in.UserID
	if req.UserID == nil {
		claim, key = in.Email, "email:"+strings.ToLower(in.Email)
	}
	if req.UserID == nil && req.Email == nil {
		if req.UserHash != nil {
			return in, apiError(http.StatusBadRequest, "invalid_request", "user_hash was sent without a user_id or email")
		}
		in.Kind = store.KindVisitor
		return in, nil
	}
	in.IdentityKey = key
	if req.UserHash != nil && app.VerifyUserHash(claim, *req.UserHash, time.Now()) {
		in.Kind = store.KindUser
		return in, nil
	}
	if app.IdentityMode == store.ModeEnforced {
		if req.UserHash == nil {
			return in, apiError(http.StatusUnauthorized, "identity_hash_missing", "this app requires a user_hash for identified users")
		}
		return in, apiError(http.StatusUnauthorized, "identity_hash_invalid", "user_hash does not match")
	}
	if req.UserHash != nil {
		h.Log.Warn("invalid user_hash accepted as unverified (monitor mode)", "app", app.ID)
	}
	in.Kind = store.KindUnverified
	return in, nil
}

// pageMaxLen bounds the stored page URL; it is measured after the query
// and fragment are dropped, so long tracking parameters never refuse a
// session.
const pageMaxLen = 1000

// pageURL returns the page the chat was opened on as it is stored: an
// absolute http(s) URL on parentOrigin, without credentials, query or
// fragment, which may hold secrets such as reset tokens.
func pageURL(raw, parentOrigin string) (string, error) {
	if err := checkFieldLen("page_url", raw, sessionBodyLimit); err != nil {
		return "", err
	}
	bad := func(why string) error {
		return apiError(http.StatusBadRequest, "invalid_request", "page_url "+why)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", bad("must be an absolute http or https URL")
	}
	origin, err := identity.CanonicalOrigin(u.Scheme + "://" + u.Host)
	if err != nil || origin != parentOrigin {
		return "", bad("must be on parent_origin " + parentOrigin)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if len(origin+path) > pageMaxLen {
		return "", bad(fmt.Sprintf("is longer than %d bytes without its query", pageMaxLen))
	}
	return origin + path, nil
}

// checkField refuses identity fields that could not have come from a sane
// backend: empty, over 255 bytes, invalid UTF-8 or control characters.
func checkField(name, v string) error {
	return checkFieldLen(name, v, 255)
}

func checkFieldLen(name, v string, maxLen int) error {
	switch {
	case v == "":
		return apiError(http.StatusBadRequest, "invalid_request", name+" must not be empty (leave it out instead)")
	case len(v) > maxLen:
		return apiError(http.StatusBadRequest, "invalid_request", fmt.Sprintf("%s is longer than %d bytes", name, maxLen))
	case !utf8.ValidString(v):
		return apiError(http.StatusBadRequest, "invalid_request", name+" is not valid UTF-8")
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return apiError(http.StatusBadRequest, "invalid_request", fmt.Sprintf("%s contains control characters", name))
		}
	}
	return nil
}
