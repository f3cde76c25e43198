package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

// endSession sends DELETE /api/widget/session with the given Origin and
// Authorization headers ("" leaves a header out).
func (ts *testServer) endSession(t *testing.T, origin, authorization string) httpResult {
	t.Helper()
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	if authorization != "" {
		hdr.Set("Authorization", authorization)
	}
	return ts.do(t, http.MethodDelete, "/api/widget/session", hdr, nil)
}

// authRefused checks that token no longer authenticates a widget socket.
func (ts *testServer) authRefused(t *testing.T, token string) {
	t.Helper()
	c := ts.open(t)
	c.send(map[string]any{"type": "auth", "token": token})
	c.expectError("unauthorized")
	c.expectClose(chat.CloseSessionInvalid)
}

// Ending a session stops its token at once, and only that session's: the
// same user's other session (another tab or device) keeps working.
func TestEndWidgetSession(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	ended := ts.session(t, verifiedUser(app, "user-42"))
	other := ts.session(t, verifiedUser(app, "user-42"))
	otherSocket := ts.connect(t, other.Token)

	res := ts.endSession(t, ts.Origin, "Bearer "+ended.Token)
	if res.Status != http.StatusNoContent || len(res.Body) != 0 {
		t.Fatalf("DELETE = %d %q, want 204 and no body", res.Status, res.Body)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if n := ts.count(t, `SELECT count(*) FROM sessions`); n != 1 {
		t.Errorf("%d sessions stored, want 1 (the other one)", n)
	}
	ts.authRefused(t, ended.Token)
	ts.endSession(t, ts.Origin, "Bearer "+ended.Token).wantError(t, http.StatusUnauthorized, "invalid_token")

	otherSocket.ping()
	ts.connect(t, other.Token).ping()
}

// The scheme of the Authorization header is case-insensitive (RFC 9110).
func TestEndWidgetSessionSchemeCase(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	s := ts.session(t, fields(app))
	if res := ts.endSession(t, ts.Origin, "bEARER "+s.Token); res.Status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s, want 204", res.Status, res.Body)
	}
	ts.authRefused(t, s.Token)
}

// Only Parley's own frame may end a session, as only it may create one;
// a refused request leaves the session working.
func TestEndWidgetSessionOrigin(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	s := ts.session(t, verifiedUser(app, "user-42"))
	for _, origin := range []string{"", evilOrigin, shopOrigin, "null", ts.Origin + "/", strings.ToUpper(ts.Origin)} {
		t.Run("origin "+origin, func(t *testing.T) {
			res := ts.endSession(t, origin, "Bearer "+s.Token)
			res.wantError(t, http.StatusForbidden, "origin_not_allowed")
			if got := res.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
	ts.connect(t, s.Token).ping()
}

func TestEndWidgetSessionBadToken(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	s := ts.session(t, fields(app))
	for _, tc := range []struct{ name, authorization string }{
		{"no Authorization header", ""},
		{"scheme only", "Bearer"},
		{"empty token", "Bearer  "},
		{"another scheme", "Basic " + s.Token},
		{"token without a scheme", s.Token},
		{"garbage", "Bearer garbage"},
		{"well-formed token never issued", "Bearer pst_" + strings.Repeat("A", 43)},
		{"the visitor token", "Bearer " + s.VisitorToken},
		{"the token with a suffix", "Bearer " + s.Token + "x"},
		{"the token cut short", "Bearer " + s.Token[:len(s.Token)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := ts.endSession(t, ts.Origin, tc.authorization)
			res.wantError(t, http.StatusUnauthorized, "invalid_token")
			if got := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
			}
		})
	}
	ts.connect(t, s.Token).ping()
}

func TestEndWidgetSessionExpired(t *testing.T) {
	const ttl = time.Second
	ts := newTestServer(t, withSessionTTL(ttl))
	app := ts.newApp(t, store.ModeEnforced)
	s := ts.session(t, verifiedUser(app, "user-42"))
	time.Sleep(time.Until(s.ExpiresAt) + 10*time.Millisecond)
	ts.endSession(t, ts.Origin, "Bearer "+s.Token).wantError(t, http.StatusUnauthorized, "invalid_token")
}

func TestEndWidgetSessionWrongMethod(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	s := ts.session(t, fields(app))
	hdr := http.Header{"Origin": {ts.Origin}, "Authorization": {"Bearer " + s.Token}}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		if res := ts.do(t, method, "/api/widget/session", hdr, nil); res.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s /api/widget/session = %d %s, want 405", method, res.Status, res.Body)
		}
	}
	ts.connect(t, s.Token).ping()
}
