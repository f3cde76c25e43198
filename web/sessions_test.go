package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

func TestCreateSessionVerifiedUser(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)

	before := time.Now()
	res := ts.postSession(t, verifiedUser(app, "user-42", "email", "ada@example.com", "name", "Ada"))
	if got, want := res.Status, http.StatusCreated; got != want {
		t.Fatalf("status = %d, want %d (body %s)", got, want, res.Body)
	}
	if got, want := res.Header.Get("Cache-Control"), "no-store"; got != want {
		t.Errorf("Cache-Control = %q, want %q", got, want)
	}
	var s sessionJSON
	res.decode(t, &s)
	if !identity.LooksLikeToken("pst_", s.Token) {
		t.Errorf("token = %q, want a pst_ token", s.Token)
	}
	if !s.Verified || s.Anonymous {
		t.Errorf("verified, anonymous = %v, %v; want true, false", s.Verified, s.Anonymous)
	}
	if s.VisitorToken != "" {
		t.Errorf("a verified session got visitor_token %q; only unverified and anonymous ones need one", s.VisitorToken)
	}
	if s.ExpiresAt.Before(before.Add(time.Hour-time.Minute)) || s.ExpiresAt.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Errorf("expires_at = %v, want about an hour (the TTL) from now", s.ExpiresAt)
	}

	// The token authenticates a widget socket as the verified user.
	c := ts.connect(t, s.Token)
	if !c.welcome.Verified || c.welcome.Anonymous {
		t.Errorf("welcome = %s, want verified and not anonymous", c.welcome.raw)
	}
}

func TestCreateSessionIdentityHash(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	other := ts.newApp(t, store.ModeEnforced)
	good := identity.UserHash(app.Secret, "user-42")
	emailHash := identity.UserHash(app.Secret, "ada@example.com")

	tests := []struct {
		name   string
		body   map[string]any
		status int
		code   string // error code when status is not 201
	}{
		{"valid hash of user_id", fields(app, "user_id", "user-42", "user_hash", good), 201, ""},
		{"email only, hash of the email", fields(app, "email", "ada@example.com", "user_hash", emailHash), 201, ""},
		{"user_id and email, hash of the user_id", fields(app, "user_id", "user-42", "email", "ada@example.com", "user_hash", good), 201, ""},
		// Current behaviour: hex decoding accepts upper case and the hash is
		// trimmed, so these spellings of the right digest are valid.
		{"upper-case hex of the right digest", fields(app, "user_id", "user-42", "user_hash", strings.ToUpper(good)), 201, ""},
		{"right digest with surrounding spaces", fields(app, "user_id", "user-42", "user_hash", " "+good+"\n"), 201, ""},

		{"user_id and email, hash of the email", fields(app, "user_id", "user-42", "email", "ada@example.com", "user_hash", emailHash), 401, "identity_hash_invalid"},
		{"forged hash (another user's)", fields(app, "user_id", "user-42", "user_hash", identity.UserHash(app.Secret, "user-43")), 401, "identity_hash_invalid"},
		{"hash made with another app's secret", fields(app, "user_id", "user-42", "user_hash", identity.UserHash(other.Secret, "user-42")), 401, "identity_hash_invalid"},
		{"hash keyed with the app id", fields(app, "user_id", "user-42", "user_hash", identity.UserHash(app.ID, "user-42")), 401, "identity_hash_invalid"},
		{"plain SHA-256-length junk", fields(app, "user_id", "user-42", "user_hash", strings.Repeat("0", 64)), 401, "identity_hash_invalid"},
		{"truncated hash", fields(app, "user_id", "user-42", "user_hash", good[:32]), 401, "identity_hash_invalid"},
		{"hash with one digit dropped", fields(app, "user_id", "user-42", "user_hash", good[:63]), 401, "identity_hash_invalid"},
		{"hash with extra digits", fields(app, "user_id", "user-42", "user_hash", good+"00"), 401, "identity_hash_invalid"},
		{"non-hex hash", fields(app, "user_id", "user-42", "user_hash", "zz"+good[2:]), 401, "identity_hash_invalid"},
		{"empty hash", fields(app, "user_id", "user-42", "user_hash", ""), 401, "identity_hash_invalid"},
		{"hash of the user_id for a different case of it", fields(app, "user_id", "USER-42", "user_hash", good), 401, "identity_hash_invalid"},
		{"missing hash", fields(app, "user_id", "user-42"), 401, "identity_hash_missing"},
		{"missing hash, email only", fields(app, "email", "ada@example.com"), 401, "identity_hash_missing"},
		{"null hash", fields(app, "user_id", "user-42", "user_hash", json.RawMessage("null")), 401, "identity_hash_missing"},
		{"hash without a user_id or email", fields(app, "user_hash", good), 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ts.postSession(t, tt.body)
			if got, want := res.Header.Get("Cache-Control"), "no-store"; got != want {
				t.Errorf("Cache-Control = %q, want %q", got, want)
			}
			if tt.status != http.StatusCreated {
				res.wantError(t, tt.status, tt.code)
				return
			}
			if res.Status != http.StatusCreated {
				t.Fatalf("status = %d, want 201 (body %s)", res.Status, res.Body)
			}
			var s sessionJSON
			res.decode(t, &s)
			if !s.Verified || s.Anonymous || s.VisitorToken != "" {
				t.Errorf("session = %s, want verified, not anonymous, no visitor_token", res.Body)
			}
		})
	}
	if got := ts.count(t, `SELECT count(*) FROM sessions`); got != 5 {
		t.Errorf("%d sessions stored, want 5 (refused requests must store nothing)", got)
	}
}

func TestCreateSessionMonitorMode(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)

	tests := []struct {
		name     string
		body     map[string]any
		verified bool
	}{
		{"valid hash", verifiedUser(app, "user-42"), true},
		{"missing hash", fields(app, "user_id", "user-42"), false},
		{"bad hash", fields(app, "user_id", "user-42", "user_hash", identity.UserHash("not the secret", "user-42")), false},
		{"non-hex hash", fields(app, "user_id", "user-42", "user_hash", "xyz"), false},
		{"email only, no hash", fields(app, "email", "ada@example.com"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ts.session(t, tt.body)
			if s.Verified != tt.verified || s.Anonymous {
				t.Fatalf("verified, anonymous = %v, %v; want %v, false", s.Verified, s.Anonymous, tt.verified)
			}
			// An unverified claim is scoped to the browser, by a visitor token.
			if got, want := identity.LooksLikeToken("pvt_", s.VisitorToken), !tt.verified; got != want {
				t.Fatalf("visitor_token = %q; want one: %v", s.VisitorToken, want)
			}
			c := ts.connect(t, s.Token)
			if c.welcome.Verified != tt.verified {
				t.Fatalf("welcome = %s, want verified %v", c.welcome.raw, tt.verified)
			}
		})
	}
	if !ts.logs.contains("invalid user_hash accepted as unverified") {
		t.Errorf("a bad hash in monitor mode was not logged as a warning")
	}
}

func TestCreateSessionRefusals(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced, shopOrigin, "http://localhost:3000")
	long := strings.Repeat("u", 256)
	ctrl := "user\x0042"

	const noOrigin = "-"
	tests := []struct {
		name        string
		origin      string // Origin header; "" means Parley's own, noOrigin none
		contentType string // "" means application/json
		body        any    // marshalled, or sent as is when a string
		status      int
		code        string
	}{
		{name: "unknown app", body: fields(app, "app_id", "app_aaaaaaaaaaaaaaaa"), status: 404, code: "app_not_found"},
		{name: "missing app_id", body: fields(app, "app_id", nil), status: 400, code: "invalid_request"},
		{name: "missing Origin", origin: noOrigin, body: verifiedUser(app, "u1"), status: 403, code: "origin_not_allowed"},
		{name: "another site's Origin", origin: evilOrigin, body: verifiedUser(app, "u1"), status: 403, code: "origin_not_allowed"},
		{name: "the host page's own Origin", origin: shopOrigin, body: verifiedUser(app, "u1"), status: 403, code: "origin_not_allowed"},
		{name: "Origin null", origin: "null", body: verifiedUser(app, "u1"), status: 403, code: "origin_not_allowed"},
		{name: "Parley's Origin with a path", origin: ts.Origin + "/", body: verifiedUser(app, "u1"), status: 403, code: "origin_not_allowed"},
		{name: "parent_origin not allowlisted", body: verifiedUser(app, "u1", "parent_origin", evilOrigin), status: 403, code: "parent_origin_not_allowed"},
		{name: "parent_origin over http", body: verifiedUser(app, "u1", "parent_origin", "http://shop.example.com"), status: 403, code: "parent_origin_not_allowed"},
		{name: "parent_origin with a trailing slash", body: verifiedUser(app, "u1", "parent_origin", shopOrigin+"/"), status: 403, code: "parent_origin_not_allowed"},
		{name: "parent_origin of a subdomain", body: verifiedUser(app, "u1", "parent_origin", "https://evil.shop.example.com"), status: 403, code: "parent_origin_not_allowed"},
		{name: "parent_origin with another port", body: verifiedUser(app, "u1", "parent_origin", "http://localhost:3001"), status: 403, code: "parent_origin_not_allowed"},
		{name: "missing parent_origin", body: verifiedUser(app, "u1", "parent_origin", nil), status: 400, code: "invalid_request"},
		{name: "malformed JSON", body: `{"app_id":`, status: 400, code: "invalid_json"},
		{name: "empty body", body: ``, status: 400, code: "invalid_json"},
		{name: "JSON array", body: `[]`, status: 400, code: "invalid_json"},
		{name: "trailing data", body: `{"app_id":"x"} {}`, status: 400, code: "invalid_json"},
		{name: "unknown field", body: verifiedUser(app, "u1", "admin", true), status: 400, code: "invalid_json"},
		{name: "user_id of the wrong type", body: fields(app, "user_id", 42), status: 400, code: "invalid_json"},
		// The hashes below are valid, so only the field check refuses them.
		{name: "empty user_id", body: verifiedUser(app, ""), status: 400, code: "invalid_request"},
		{name: "user_id over 255 bytes", body: verifiedUser(app, long), status: 400, code: "invalid_request"},
		{name: "control character in user_id", body: verifiedUser(app, ctrl), status: 400, code: "invalid_request"},
		{name: "newline in user_id", body: verifiedUser(app, "user\n42"), status: 400, code: "invalid_request"},
		{name: "control character in name", body: verifiedUser(app, "u1", "name", "Ada\x1b[31m"), status: 400, code: "invalid_request"},
		{name: "DEL in name", body: verifiedUser(app, "u1", "name", "Ada\x7f"), status: 400, code: "invalid_request"},
		{name: "C1 control in name", body: verifiedUser(app, "u1", "name", "Ada\u0085"), status: 400, code: "invalid_request"},
		{name: "empty name", body: verifiedUser(app, "u1", "name", ""), status: 400, code: "invalid_request"},
		{name: "name over 255 bytes", body: verifiedUser(app, "u1", "name", long), status: 400, code: "invalid_request"},
		{name: "email without @", body: verifiedUser(app, "u1", "email", "ada.example.com"), status: 400, code: "invalid_request"},
		{name: "text/plain", contentType: "text/plain", body: verifiedUser(app, "u1"), status: 415, code: "unsupported_media_type"},
		{name: "form encoded", contentType: "application/x-www-form-urlencoded", body: "app_id=" + app.ID, status: 415, code: "unsupported_media_type"},
		{name: "no Content-Type", contentType: "-", body: verifiedUser(app, "u1"), status: 415, code: "unsupported_media_type"},
		{name: "body over 16 KiB", body: verifiedUser(app, "u1", "name", strings.Repeat("x", 17<<10)), status: 400, code: "body_too_large"},
		{name: "whitespace over 16 KiB", body: strings.Repeat(" ", 17<<10) + `{}`, status: 400, code: "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{"Content-Type": {"application/json"}}
			switch tt.contentType {
			case "":
			case "-":
				hdr.Del("Content-Type")
			default:
				hdr.Set("Content-Type", tt.contentType)
			}
			switch tt.origin {
			case "":
				hdr.Set("Origin", ts.Origin)
			case noOrigin:
			default:
				hdr.Set("Origin", tt.origin)
			}
			res := ts.do(t, http.MethodPost, "/api/widget/sessions", hdr, jsonBody(t, tt.body))
			res.wantError(t, tt.status, tt.code)
			if got, want := res.Header.Get("Cache-Control"), "no-store"; got != want {
				t.Errorf("Cache-Control = %q, want %q", got, want)
			}
		})
	}
	if got := ts.count(t, `SELECT count(*) FROM sessions`); got != 0 {
		t.Errorf("%d sessions stored by refused requests, want 0", got)
	}

	// The limits are limits, not off by one: these pass.
	ts.session(t, verifiedUser(app, strings.Repeat("u", 255), "name", "Adá Lövelace 李"))
	ts.session(t, verifiedUser(app, "u1", "parent_origin", "http://localhost:3000"))
	hdr := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "Origin": {ts.Origin}}
	if res := ts.do(t, http.MethodPost, "/api/widget/sessions", hdr, jsonBody(t, verifiedUser(app, "u1"))); res.Status != http.StatusCreated {
		t.Errorf("with a charset parameter: status = %d, want 201 (body %s)", res.Status, res.Body)
	}
}

func TestCreateSessionWrongMethod(t *testing.T) {
	ts := newTestServer(t)
	res := ts.do(t, http.MethodGet, "/api/widget/sessions", http.Header{"Origin": {ts.Origin}}, nil)
	res.wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
}

func TestVisitorTokens(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	otherApp := ts.newApp(t, store.ModeEnforced)

	first := ts.session(t, fields(app))
	if !first.Anonymous || first.Verified || !identity.LooksLikeToken("pvt_", first.VisitorToken) {
		t.Fatalf("anonymous session = %+v, want anonymous, unverified, with a pvt_ visitor token", first)
	}
	c := ts.connect(t, first.Token)
	if !c.welcome.Anonymous {
		t.Fatalf("welcome = %s, want anonymous", c.welcome.raw)
	}
	conv := c.startConversation("hello from a visitor")

	// The same browser comes back: same visitor, same conversations.
	again := ts.session(t, fields(app, "visitor_token", first.VisitorToken))
	if again.VisitorToken != first.VisitorToken {
		t.Fatalf("returning visitor got visitor_token %q, want the one it sent", again.VisitorToken)
	}
	if again.Token == first.Token {
		t.Fatalf("returning visitor got the same session token; want a new session")
	}
	list := ts.connect(t, again.Token).ping()
	if len(list.Conversations) != 1 || list.Conversations[0].ID != conv {
		t.Fatalf("returning visitor sees %s, want exactly conversation %s", list.raw, conv)
	}

	// A token Parley did not issue (for this app) is replaced, never adopted.
	forged := "pvt_" + strings.Repeat("A", 43)
	other := ts.session(t, fields(otherApp))
	for name, sent := range map[string]string{
		"well-formed but never issued": forged,
		"garbage":                      "hello",
		"another app's visitor token":  other.VisitorToken,
		"a session token":              first.Token,
	} {
		t.Run(name, func(t *testing.T) {
			s := ts.session(t, fields(app, "visitor_token", sent))
			if s.VisitorToken == sent || s.VisitorToken == first.VisitorToken || !identity.LooksLikeToken("pvt_", s.VisitorToken) {
				t.Fatalf("visitor_token = %q after sending %q, want a new one", s.VisitorToken, sent)
			}
			if list := ts.connect(t, s.Token).ping(); len(list.Conversations) != 0 {
				t.Fatalf("new visitor sees %s, want no conversations", list.raw)
			}
		})
	}
}

// A verified user, an unverified claim of the same user_id and an
// anonymous visitor who types in the same email are three subjects that
// never see each other's conversations.
func TestSubjectIsolation(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	const email = "ada@example.com"

	verified := ts.session(t, verifiedUser(app, "user-42", "email", email, "name", "Ada"))
	vc := ts.connect(t, verified.Token)
	secretConv := vc.startConversation("my card ends in 4242")
	ts.reply(t, app, secretConv, "refund issued to card 4242")
	vc.waitFor("unread")

	// Someone claims user-42 without a hash (monitor mode lets them in).
	claim := ts.session(t, fields(app, "user_id", "user-42", "email", email, "name", "Ada"))
	if claim.Verified {
		t.Fatalf("claim without a hash is verified")
	}
	cc := ts.connect(t, claim.Token)
	if cc.welcome.Verified || cc.welcome.Unread != 0 {
		t.Fatalf("claim's welcome = %s, want unverified with no unread messages", cc.welcome.raw)
	}
	if list := cc.ping(); len(list.Conversations) != 0 {
		t.Fatalf("unverified claim of user-42 lists %s, want nothing", list.raw)
	}
	for _, f := range []map[string]any{
		{"type": "open", "conversation_id": secretConv},
		{"type": "typing", "conversation_id": secretConv, "typing": true},
		{"type": "read", "conversation_id": secretConv, "seq": 2},
		{"type": "send", "conversation_id": secretConv, "client_msg_id": "c1", "body": "hi"},
	} {
		cc.send(f)
		if e := cc.expectError("not_found"); strings.Contains(e.raw, "4242") {
			t.Fatalf("error frame leaks the conversation: %s", e.raw)
		}
	}
	claimConv := cc.startConversation("I am Ada, honest")

	// An anonymous visitor, then the same browser typing in Ada's email.
	visitor := ts.session(t, fields(app))
	anonConv := ts.connect(t, visitor.Token).startConversation("just browsing")
	withEmail := ts.session(t, fields(app, "email", email, "visitor_token", visitor.VisitorToken))
	if withEmail.Verified || withEmail.Anonymous {
		t.Fatalf("visitor with an email = %+v, want an unverified claim", withEmail)
	}
	ec := ts.connect(t, withEmail.Token)
	if list := ec.ping(); len(list.Conversations) != 0 {
		t.Fatalf("visitor claiming %s lists %s, want nothing (no merge with the user or the visitor)", email, list.raw)
	}

	// Each subject lists only its own conversation.
	for name, tc := range map[string]struct {
		token, conv string
	}{
		"verified user":         {ts.session(t, verifiedUser(app, "user-42")).Token, secretConv},
		"claim, same browser":   {ts.session(t, fields(app, "user_id", "user-42", "visitor_token", claim.VisitorToken)).Token, claimConv},
		"visitor, same browser": {ts.session(t, fields(app, "visitor_token", visitor.VisitorToken)).Token, anonConv},
	} {
		list := ts.connect(t, tc.token).ping()
		if len(list.Conversations) != 1 || list.Conversations[0].ID != tc.conv {
			t.Errorf("%s lists %s, want only %s", name, list.raw, tc.conv)
		}
	}
	// A second browser claiming user-42 shares nothing with the first claim.
	if list := ts.connect(t, ts.session(t, fields(app, "user_id", "user-42")).Token).ping(); len(list.Conversations) != 0 {
		t.Errorf("another browser's claim of user-42 lists %s, want nothing", list.raw)
	}

	// The verified user's socket heard none of it.
	if f := vc.ping(); len(f.Conversations) != 1 {
		t.Errorf("verified user lists %s, want one conversation", f.raw)
	}
	// The owner sees the subjects apart.
	var out struct {
		Conversations []struct {
			ID   string
			User struct {
				UserID    string `json:"user_id"`
				Email     string
				Verified  bool
				Anonymous bool
			}
		}
	}
	ts.api(t, app.APIKey, http.MethodGet, "/conversations", nil).decode(t, &out)
	users := map[string]string{}
	for _, c := range out.Conversations {
		u := c.User
		users[c.ID] = strings.Join([]string{u.UserID, u.Email, flag(u.Verified, "verified"), flag(u.Anonymous, "anonymous")}, "|")
	}
	for conv, want := range map[string]string{
		secretConv: "user-42|" + email + "|verified|-",
		claimConv:  "user-42|" + email + "|-|-",
		anonConv:   "||-|anonymous",
	} {
		if users[conv] != want {
			t.Errorf("API shows conversation %s's user as %q, want %q", conv, users[conv], want)
		}
	}
	if got, want := ts.count(t, `SELECT count(DISTINCT subject_id) FROM conversations`), 3; got != want {
		t.Errorf("conversations belong to %d subjects, want %d", got, want)
	}
	if got, want := ts.count(t, `SELECT count(*) FROM messages WHERE conversation_id = ?`, secretConv), 2; got != want {
		t.Errorf("verified conversation has %d messages, want %d (the claim must not write into it)", got, want)
	}
	// The claim's read frame did not touch the user's read mark.
	if f := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token); f.welcome.Unread != 1 {
		t.Errorf("verified user's unread = %d, want 1", f.welcome.Unread)
	}
}

func flag(b bool, name string) string {
	if b {
		return name
	}
	return "-"
}

// subjectOfSession returns the subject a session token speaks for, as the
// store has it.
func (ts *testServer) subjectOfSession(t *testing.T, app testApp, token string) store.Subject {
	t.Helper()
	var id string
	if err := ts.rawDB(t).QueryRow(`SELECT subject_id FROM sessions WHERE token_hash = ?`, identity.TokenHash(token)).Scan(&id); err != nil {
		t.Fatalf("looking up the session's subject: %v", err)
	}
	s, err := ts.DB.Subject(context.Background(), app.ID, id)
	if err != nil {
		t.Fatalf("Subject(%s): %v", id, err)
	}
	return s
}

func TestCreateSessionPageURL(t *testing.T) {
	ts := newTestServer(t)
	const local = "http://localhost:3000"
	app := ts.newApp(t, store.ModeEnforced, shopOrigin, local)

	// Secrets a page URL may carry; none of them may be stored.
	const (
		resetToken = "RESET-TOKEN-6f1c9a"
		oauthCode  = "OAUTH-CODE-b27e44"
		password   = "hunter2-PASSWORD"
	)
	maxPath := "/" + strings.Repeat("p", 1000-len(shopOrigin)-1) // shopOrigin+maxPath is exactly 1000 bytes

	accepted := []struct {
		name   string
		parent string // "" means shopOrigin
		page   string
		want   string
	}{
		{name: "plain path", page: shopOrigin + "/checkout", want: shopOrigin + "/checkout"},
		{name: "query and fragment stripped", page: shopOrigin + "/reset?token=" + resetToken + "&utm_source=mail#code=" + oauthCode, want: shopOrigin + "/reset"},
		{name: "fragment only stripped", page: shopOrigin + "/callback#access_token=" + oauthCode, want: shopOrigin + "/callback"},
		{name: "empty query and fragment markers stripped", page: shopOrigin + "/cart?#", want: shopOrigin + "/cart"},
		{name: "credentials stripped", page: "https://ann:" + password + "@shop.example.com/account", want: shopOrigin + "/account"},
		{name: "user without password stripped", page: "https://ann@shop.example.com/account", want: shopOrigin + "/account"},
		{name: "credentials, query and fragment stripped", page: "https://ann:" + password + "@shop.example.com/a/b?token=" + resetToken + "#" + oauthCode, want: shopOrigin + "/a/b"},
		{name: "empty path becomes /", page: shopOrigin, want: shopOrigin + "/"},
		{name: "empty path with a query becomes /", page: shopOrigin + "?token=" + resetToken, want: shopOrigin + "/"},
		{name: "root path", page: shopOrigin + "/", want: shopOrigin + "/"},
		{name: "upper-case host and default port canonicalised", page: "https://SHOP.example.com:443/x", want: shopOrigin + "/x"},
		{name: "percent-encoded path kept", page: shopOrigin + "/caf%C3%A9/a%20b", want: shopOrigin + "/caf%C3%A9/a%20b"},
		{name: "http page on an http localhost parent", parent: local, page: local + "/dashboard?session=" + resetToken, want: local + "/dashboard"},
		// The limit is measured after stripping: a long query never refuses.
		{name: "exactly 1000 bytes after stripping a long query", page: shopOrigin + maxPath + "?t=" + resetToken + strings.Repeat("q", 3000) + "#" + oauthCode, want: shopOrigin + maxPath},
	}
	for i, tt := range accepted {
		t.Run("accepted/"+tt.name, func(t *testing.T) {
			parent := tt.parent
			if parent == "" {
				parent = shopOrigin
			}
			s := ts.session(t, verifiedUser(app, fmt.Sprintf("page-ok-%d", i), "parent_origin", parent, "page_url", tt.page))
			got := ts.subjectOfSession(t, app, s.Token).LastPageURL
			if got != tt.want {
				t.Fatalf("stored page URL = %q, want %q (sent %q)", got, tt.want, tt.page)
			}
			if strings.ContainsAny(got, "?#@") {
				t.Errorf("stored page URL %q keeps a query, fragment or credentials", got)
			}
			for _, secret := range []string{resetToken, oauthCode, password, "ann"} {
				if strings.Contains(got, secret) {
					t.Errorf("stored page URL %q contains %q", got, secret)
				}
			}
		})
	}
	// No secret reached the database or the log by another route.
	for _, secret := range []string{resetToken, oauthCode, password} {
		for _, q := range []string{
			`SELECT count(*) FROM subjects WHERE instr(last_page_url || user_id || email || name, ?) > 0`,
			`SELECT count(*) FROM sessions WHERE instr(parent_origin, ?) > 0`,
		} {
			if n := ts.count(t, q, secret); n != 0 {
				t.Errorf("%q is stored (%s matched %d rows)", secret, q, n)
			}
		}
		if ts.logs.contains(secret) {
			t.Errorf("%q was logged", secret)
		}
	}

	refused := []struct {
		name   string
		parent string // "" means shopOrigin
		page   string
	}{
		{name: "another origin", page: evilOrigin + "/checkout"},
		{name: "a subdomain of the parent", page: "https://evil.shop.example.com/checkout"},
		{name: "the parent as a prefix of another host", page: "https://shop.example.com.evil.example.net/checkout"},
		{name: "the parent as user info of another host", page: "https://shop.example.com@evil.example.net/checkout"},
		{name: "another port", page: "https://shop.example.com:8443/checkout"},
		{name: "http page on an https parent", page: "http://shop.example.com/checkout"},
		{name: "https page on an http parent", parent: local, page: "https://localhost:3000/checkout"},
		{name: "an allowlisted origin other than parent_origin", page: local + "/checkout"},
		{name: "relative path", page: "/checkout"},
		{name: "relative path with a query", page: "checkout?token=" + resetToken},
		{name: "scheme-relative", page: "//shop.example.com/checkout"},
		{name: "javascript: URL", page: "javascript:alert(document.cookie)"},
		{name: "javascript: URL in upper case", page: "JAVASCRIPT:alert(1)"},
		{name: "javascript: URL shaped like the origin", page: "javascript://shop.example.com/%0aalert(1)"},
		{name: "data: URL", page: "data:text/html,<script>alert(1)</script>"},
		{name: "ftp URL", page: "ftp://shop.example.com/checkout"},
		{name: "opaque https URL", page: "https:shop.example.com/checkout"},
		{name: "no host", page: "https:///checkout"},
		{name: "empty", page: ""},
		{name: "newline in the path", page: shopOrigin + "/check\nout"},
		{name: "NUL in the path", page: shopOrigin + "/check\x00out"},
		{name: "tab in the path", page: shopOrigin + "/check\tout"},
		{name: "DEL in the path", page: shopOrigin + "/check\x7fout"},
		{name: "C1 control in the path", page: shopOrigin + "/check\u0085out"},
		{name: "escape sequence in the query", page: shopOrigin + "/checkout?x=\x1b[31m"},
		{name: "path over 1000 bytes", page: shopOrigin + maxPath + "p"},
		{name: "path over 1000 bytes with a query", page: shopOrigin + maxPath + "p?a=b"},
	}
	sessionsBefore := ts.count(t, `SELECT count(*) FROM sessions`)
	for i, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			parent := tt.parent
			if parent == "" {
				parent = shopOrigin
			}
			user := fmt.Sprintf("page-bad-%d", i)
			res := ts.postSession(t, verifiedUser(app, user, "parent_origin", parent, "page_url", tt.page))
			res.wantError(t, http.StatusBadRequest, "invalid_request")
			if n := ts.count(t, `SELECT count(*) FROM subjects WHERE user_id = ?`, user); n != 0 {
				t.Errorf("refused request created %d subjects", n)
			}
		})
	}
	// The anonymous and unverified paths check page_url too.
	t.Run("refused/anonymous visitor, another origin", func(t *testing.T) {
		ts.postSession(t, fields(app, "page_url", evilOrigin+"/")).wantError(t, http.StatusBadRequest, "invalid_request")
	})
	if got := ts.count(t, `SELECT count(*) FROM sessions`); got != sessionsBefore {
		t.Errorf("refused requests stored %d sessions, want 0", got-sessionsBefore)
	}
}

// The subject keeps the page of its latest session that sent one.
func TestCreateSessionPageURLReplaced(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	ctx := context.Background()

	first := ts.session(t, verifiedUser(app, "user-42", "page_url", shopOrigin+"/cart"))
	subj := ts.subjectOfSession(t, app, first.Token)
	if subj.LastPageURL != shopOrigin+"/cart" {
		t.Fatalf("after the first session, page = %q, want %q", subj.LastPageURL, shopOrigin+"/cart")
	}
	conv := ts.connect(t, first.Token).startConversation("where is my order?")

	second := ts.session(t, verifiedUser(app, "user-42", "page_url", shopOrigin+"/checkout?step=2#pay"))
	again := ts.subjectOfSession(t, app, second.Token)
	if again.ID != subj.ID {
		t.Fatalf("second session is for subject %s, want the same subject %s", again.ID, subj.ID)
	}
	if want := shopOrigin + "/checkout"; again.LastPageURL != want {
		t.Fatalf("after the second session, page = %q, want %q (the later page replaces the earlier)", again.LastPageURL, want)
	}

	// A session without page_url, a refused one, an unverified claim of the
	// same user_id and another user leave it alone.
	ts.session(t, verifiedUser(app, "user-42"))
	ts.postSession(t, verifiedUser(app, "user-42", "page_url", evilOrigin+"/phish")).wantError(t, http.StatusBadRequest, "invalid_request")
	claim := ts.session(t, fields(app, "user_id", "user-42", "page_url", shopOrigin+"/claimed"))
	if c := ts.subjectOfSession(t, app, claim.Token); c.ID == subj.ID || c.LastPageURL != shopOrigin+"/claimed" {
		t.Errorf("unverified claim: subject %s page %q, want its own subject with page %q", c.ID, c.LastPageURL, shopOrigin+"/claimed")
	}
	ts.session(t, verifiedUser(app, "user-43", "page_url", shopOrigin+"/other"))

	got, err := ts.DB.Subject(ctx, app.ID, subj.ID)
	if err != nil {
		t.Fatalf("Subject: %v", err)
	}
	if want := shopOrigin + "/checkout"; got.LastPageURL != want {
		t.Errorf("in the end, page = %q, want %q", got.LastPageURL, want)
	}
	// Agents see the latest page with the conversation.
	convs, err := ts.DB.AppConversations(ctx, app.ID, store.ConversationFilter{})
	if err != nil {
		t.Fatalf("AppConversations: %v", err)
	}
	if len(convs) != 1 || convs[0].ID != conv || convs[0].Subject == nil {
		t.Fatalf("AppConversations = %+v, want just %s with its subject", convs, conv)
	}
	if want := shopOrigin + "/checkout"; convs[0].Subject.LastPageURL != want {
		t.Errorf("conversation's subject page = %q, want %q", convs[0].Subject.LastPageURL, want)
	}
}
