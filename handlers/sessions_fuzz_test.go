package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

// The fuzz target runs the session endpoint's decoding and decision
// (everything but the database) on arbitrary bodies, for three apps: one
// enforced, one in monitor mode, one that requires JWTs and refuses
// anonymous visitors.
var (
	fuzzNow    = time.Unix(1_800_000_000, 0)
	fuzzOrigin = "https://shop.example.com"
)

const (
	fuzzAppID  = "app_fuzzfuzzfuzzfuzz"
	fuzzKid    = "isk_fuzzfuzzfuzzfuzz"
	fuzzSecret = "fuzz-secret-0123456789abcdef0123456789abcdef"
)

func fuzzApps() []*store.App {
	base := func() *store.App {
		return &store.App{ID: fuzzAppID, IdentityMode: store.ModeEnforced, IdentitySecret: fuzzSecret, IdentitySecretID: fuzzKid,
			Origins: []string{fuzzOrigin}}
	}
	monitor, strict := base(), base()
	monitor.IdentityMode = store.ModeMonitor
	strict.RequireJWT, strict.RefuseAnonymous = true, true
	return []*store.App{base(), monitor, strict}
}

// decodeSessionBody decodes body exactly as Create does.
func decodeSessionBody(body []byte) (sessionRequest, error) {
	req := httptest.NewRequest(http.MethodPost, "/api/widget/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	c := echo.New().NewContext(req, httptest.NewRecorder())
	var r sessionRequest
	err := decodeJSON(c, sessionBodyLimit, &r)
	return r, err
}

func fuzzJWT(f *testing.F, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = fuzzKid
	s, err := tok.SignedString([]byte(fuzzSecret))
	if err != nil {
		f.Fatal(err)
	}
	return s
}

func FuzzSessionRequest(f *testing.F) {
	body := func(kv ...any) []byte {
		m := map[string]any{"app_id": fuzzAppID, "parent_origin": fuzzOrigin}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		b, _ := json.Marshal(m)
		return b
	}
	good := fuzzJWT(f, jwt.MapClaims{"sub": "42", "aud": fuzzAppID, "iat": fuzzNow.Unix(), "exp": fuzzNow.Unix() + 600,
		"jti": "j1", "email": "ann@example.com", "name": "Ann"})
	f.Add(body())
	f.Add(body("user_id", "42", "user_hash", identity.UserHash(fuzzSecret, "42")))
	f.Add(body("email", "ann@example.com", "user_hash", identity.UserHash(fuzzSecret, "ann@example.com"), "name", "Ann"))
	f.Add(body("user_id", "42", "user_hash", "00"))
	f.Add(body("user_id", "42"))
	f.Add(body("user_jwt", good))
	f.Add(body("user_jwt", good, "user_id", "42", "email", "page@example.com"))
	f.Add(body("user_jwt", good, "user_id", "43"))
	f.Add(body("user_jwt", good, "user_hash", identity.UserHash(fuzzSecret, "42")))
	f.Add(body("user_jwt", good[:len(good)-1]+"A"))
	f.Add(body("visitor_token", "pvt_x", "page_url", fuzzOrigin+"/a?b#c"))
	f.Add([]byte(`{"app_id":"x","parent_origin":"y","user_jwt":null,"user_id":null}`))
	f.Add([]byte(`{"app_id":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeSessionBody(data)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest && ae.Status != http.StatusUnsupportedMediaType {
				t.Fatalf("decoding refused with %v, want a 400 APIError", err)
			}
			return
		}
		for _, app := range fuzzApps() {
			h := &Sessions{TTL: time.Hour, Log: slog.New(slog.DiscardHandler)}
			in, err := h.admit(app, &req, fuzzNow)
			if err != nil {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status < 400 || ae.Status >= 500 {
					t.Fatalf("refused with %v, want a 4xx APIError", err)
				}
				continue
			}
			checkAdmitted(t, app, &req, in)
		}
	})
}

// checkAdmitted asserts what a session may only be with the right proof.
func checkAdmitted(t *testing.T, app *store.App, req *sessionRequest, in store.NewSession) {
	t.Helper()
	if in.AppID != app.ID || !app.AllowsOrigin(in.ParentOrigin) {
		t.Fatalf("admitted %+v for app %s", in, app.ID)
	}
	switch in.Kind {
	case store.KindUser:
		checkProof(t, app, req, in)
	case store.KindUnverified:
		if app.IdentityMode != store.ModeMonitor || req.UserJWT != nil || in.IdentityKey == "" || in.SecretID != "" || in.EmailSigned || in.NameSigned {
			t.Fatalf("admitted an unverified claim %+v on app %+v", in, app)
		}
	case store.KindVisitor:
		if app.RefuseAnonymous || req.UserID != nil || req.Email != nil || req.UserJWT != nil || req.UserHash != nil || in.IdentityKey != "" {
			t.Fatalf("admitted a visitor %+v on app %+v", in, app)
		}
	default:
		t.Fatalf("admitted kind %q", in.Kind)
	}
}

// checkProof asserts that a verified user came with a valid JWT or hash
// for exactly the identity the session names.
func checkProof(t *testing.T, app *store.App, req *sessionRequest, in store.NewSession) {
	t.Helper()
	if in.SecretID != fuzzKid {
		t.Fatalf("verified session %+v names secret %q", in, in.SecretID)
	}
	if req.UserJWT != nil {
		c, err := identity.ParseUserJWT(*req.UserJWT, app.ID, func(kid string) (string, bool) { return app.SecretByID(kid, fuzzNow) }, fuzzNow)
		if err != nil || req.UserHash != nil || in.IdentityKey != "uid:"+c.Subject || in.UserID != c.Subject || in.JWTID != c.ID ||
			(c.Email != "") != in.EmailSigned || (c.Name != "") != in.NameSigned {
			t.Fatalf("verified %+v with JWT claims %+v (%v)", in, c, err)
		}
		return
	}
	// A hash over the email (no user_id) signs the email; one over the
	// user_id signs nothing else.
	if app.RequireJWT || req.UserHash == nil || in.EmailSigned != (req.UserID == nil) || in.NameSigned || in.JWTID != "" {
		t.Fatalf("verified %+v without a JWT on app %+v", in, app)
	}
	claim, key := in.UserID, "uid:"+in.UserID
	if req.UserID == nil {
		claim, key = in.Email, "email:"+strings.ToLower(in.Email)
	}
	if in.IdentityKey != key || !identity.VerifyUserHash(fuzzSecret, claim, *req.UserHash) {
		t.Fatalf("verified %+v with user_hash %q", in, *req.UserHash)
	}
}
