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
	UserJWT      *string `json:"user_jwt"`
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
	in, err := h.admit(app, &req, time.Now())
	if err != nil {
		return err
	}
	sess, err := h.Store.CreateSession(ctx, in)
	switch {
	case errors.Is(err, store.ErrJWTReplayed):
		return apiError(http.StatusUnauthorized, "identity_jwt_replayed", "this user_jwt was already used: mint a new one (with a new jti) for each page")
	case errors.Is(err, store.ErrAppDisabled): // turned off since the app was read
		return apiError(http.StatusForbidden, "app_disabled", "chat is turned off for this app")
	case errors.Is(err, store.ErrSecretRevoked): // revoked since the proof was checked
		return apiError(http.StatusUnauthorized, revokedCode(in.Proof), "the identity secret that signed this proof was revoked")
	case errors.Is(err, store.ErrSettingsChanged): // tightened since the app was read
		return apiError(http.StatusConflict, "settings_changed", "this site just changed who may chat; ask for a session again")
	case errors.Is(err, store.ErrNotFound):
		return apiError(http.StatusNotFound, "app_not_found", "no such app")
	case err != nil:
		return err
	}
	return c.JSON(http.StatusCreated, sessionResponse{Token: sess.Token, ExpiresAt: sess.ExpiresAt, Verified: sess.Verified(),
		Anonymous: sess.Kind == store.KindVisitor, VisitorToken: sess.VisitorToken})
}

// revokedCode is the refusal of a proof whose secret was revoked, as if
// the secret had been gone when it was checked.
func revokedCode(proof string) string {
	if proof == store.ProofJWT {
		return "identity_jwt_invalid"
	}
	return "identity_hash_invalid"
}

// admit decides from the app and the request alone whether a session may
// be made, and for whom. It reads and writes nothing, so a fuzz test can
// drive it without a server.
func (h *Sessions) admit(app *store.App, req *sessionRequest, now time.Time) (store.NewSession, error) {
	// A disabled app is told apart before anything about the page, so the
	// widget can say why it has nothing to show.
	if app.Disabled() {
		return store.NewSession{}, apiError(http.StatusForbidden, "app_disabled", "chat is turned off for this app")
	}
	if req.ParentOrigin == "" {
		return store.NewSession{}, apiError(http.StatusBadRequest, "invalid_request", "parent_origin is required")
	}
	if !app.AllowsOrigin(req.ParentOrigin) {
		return store.NewSession{}, apiError(http.StatusForbidden, "parent_origin_not_allowed", "this app does not allow the page's origin")
	}
	return h.resolve(app, req, now)
}

// resolve validates the claimed identity and decides which kind of subject
// the session speaks for.
func (h *Sessions) resolve(app *store.App, req *sessionRequest, now time.Time) (store.NewSession, error) {
	in, err := hints(app, req, h.TTL)
	if err != nil {
		return in, err
	}
	if req.UserJWT != nil {
		return jwtUser(app, req, in, now)
	}
	if req.UserHash != nil && app.RequireJWT {
		return in, apiError(http.StatusUnauthorized, "identity_jwt_required", "this app only accepts identity JWTs (user_jwt)")
	}
	if req.UserID == nil && req.Email == nil {
		if req.UserHash != nil {
			return in, apiError(http.StatusBadRequest, "invalid_request", "user_hash was sent without a user_id or email")
		}
		if app.RefuseAnonymous {
			return in, apiError(http.StatusForbidden, "anonymous_not_allowed", "this app does not chat with anonymous visitors; sign in first")
		}
		in.Kind = store.KindVisitor
		return in, nil
	}
	return h.hashUser(app, req, in, now)
}

// hints copies the request's fields into a session after checking them.
// Email and name are only the page's word until a proof signs them.
func hints(app *store.App, req *sessionRequest, ttl time.Duration) (store.NewSession, error) {
	in := store.NewSession{AppID: app.ID, ParentOrigin: req.ParentOrigin, TTL: ttl}
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
	return in, nil
}

// jwtUser admits the user an identity JWT vouches for. A bad token is
// refused even in monitor mode: whoever sent a signed token meant it to
// be checked, and a failure means a bug or an attack, not a site still
// rolling proofs out.
func jwtUser(app *store.App, req *sessionRequest, in store.NewSession, now time.Time) (store.NewSession, error) {
	if req.UserHash != nil {
		return in, apiError(http.StatusBadRequest, "invalid_request", "send user_jwt or user_hash, not both")
	}
	claims, err := identity.ParseUserJWT(*req.UserJWT, app.ID, func(kid string) (string, bool) { return app.SecretByID(kid, now) }, now)
	var je *identity.JWTError
	if errors.As(err, &je) {
		return in, apiError(http.StatusUnauthorized, "identity_jwt_invalid", je.Reason)
	}
	if err != nil {
		return in, err
	}
	if req.UserID != nil && in.UserID != claims.Subject {
		return in, apiError(http.StatusUnauthorized, "identity_jwt_invalid", "user_id does not match the user_jwt's sub")
	}
	// The same subject as a user_hash user with this user_id.
	in.Kind, in.IdentityKey, in.UserID, in.SecretID, in.Proof = store.KindUser, "uid:"+claims.Subject, claims.Subject, claims.KeyID, store.ProofJWT
	if claims.Email != "" {
		in.Email, in.EmailSigned = claims.Email, true
	}
	if claims.Name != "" {
		in.Name, in.NameSigned = claims.Name, true
	}
	if claims.ID != "" {
		// Remembered as long as the token could still pass, leeway included.
		in.JWTID, in.JWTExpiresAt = claims.ID, claims.ExpiresAt.Add(identity.JWTLeeway)
	}
	return in, nil
}

// hashUser admits a user_id or email with or without its user_hash,
// according to the app's identity mode.
func (h *Sessions) hashUser(app *store.App, req *sessionRequest, in store.NewSession, now time.Time) (store.NewSession, error) {
	// The hash covers the user_id when there is one, else the email.
	claim, key := in.UserID, "uid:"+in.UserID
	if req.UserID == nil {
		claim, key = in.Email, "email:"+strings.ToLower(in.Email)
	}
	in.IdentityKey = key
	if req.UserHash != nil {
		if id, ok := app.MatchUserHash(claim, *req.UserHash, now); ok {
			in.Kind, in.SecretID, in.Proof = store.KindUser, id, store.ProofHash
			// A hash over the email signs the email.
			in.EmailSigned = req.UserID == nil
			return in, nil
		}
	}
	if app.IdentityMode == store.ModeEnforced {
		if req.UserHash == nil {
			return in, apiError(http.StatusUnauthorized, "identity_hash_missing", missingProof(app))
		}
		return in, apiError(http.StatusUnauthorized, "identity_hash_invalid", "user_hash does not match")
	}
	if req.UserHash != nil {
		h.Log.Warn("invalid user_hash accepted as unverified (monitor mode)", "app", app.ID)
	}
	in.Kind = store.KindUnverified
	return in, nil
}

func missingProof(app *store.App) string {
	if app.RequireJWT {
		return "this app requires a user_jwt for identified users"
	}
	return "this app requires a user_hash for identified users"
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
