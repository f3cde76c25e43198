package web

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

// The dashboard tests drive the site owners' pages the way a browser
// does: form posts with a cookie jar, Origin and Sec-Fetch-Site set as
// browsers set them on a same-origin page.

// Page helpers.

// testids counts the elements with data-testid="id".
func testids(body []byte, id string) int {
	return strings.Count(string(body), `data-testid="`+id+`"`)
}

// text is the body with HTML character references decoded, for checking
// messages that contain quotes.
func text(body []byte) string { return html.UnescapeString(string(body)) }

type convRow struct {
	ID   string
	HTML string
}

var rowStart = regexp.MustCompile(`<li data-testid="conversation-row" data-id="([^"]+)"`)

// convRows returns the inbox's conversation rows in page order.
func convRows(body []byte) []convRow {
	s := string(body)
	var out []convRow
	locs := rowStart.FindAllStringSubmatchIndex(s, -1)
	for _, l := range locs {
		end := strings.Index(s[l[0]:], "</li>")
		out = append(out, convRow{ID: s[l[2]:l[3]], HTML: s[l[0] : l[0]+end]})
	}
	return out
}

func rowIDs(rows []convRow) []string {
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	return ids
}

var apiKeyRe = regexp.MustCompile(`psk_[A-Za-z0-9_-]{43}`)

// wantStatus fails unless the response has the status.
func (r httpResult) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d (Location %q, body %.600s)", r.Status, status, r.Header.Get("Location"), r.Body)
	}
}

// wantRedirect fails unless the response is a 303 to location.
func (r httpResult) wantRedirect(t *testing.T, location string) {
	t.Helper()
	r.wantStatus(t, http.StatusSeeOther)
	if got := r.Header.Get("Location"); got != location {
		t.Fatalf("Location = %q, want %q", got, location)
	}
}

// wantSignInFirst fails unless the response sends the browser to the
// sign-in page, to come back to path afterwards.
func (r httpResult) wantSignInFirst(t *testing.T, path string) {
	t.Helper()
	r.wantRedirect(t, "/login?next="+url.QueryEscape(path))
}

// setCookie returns the response's owner cookie.
func (r httpResult) setCookie(t *testing.T, name string) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// A conversation started by a widget user.

type userConv struct {
	ID     string
	Widget *wsClient
}

// converse opens a widget socket for the session request body and starts
// a conversation with one message.
func (ts *testServer) converse(t *testing.T, body map[string]any, msg string) userConv {
	t.Helper()
	w := ts.connect(t, ts.session(t, body).Token)
	return userConv{ID: w.startConversation(msg), Widget: w}
}

func convPath(app testApp, convID string, rest ...string) string {
	p := "/dashboard/apps/" + app.ID + "/conversations/" + convID
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// state is what a refused request must not have changed.
type state struct {
	Messages, Apps, Members, Secrets, Sessions, Owners                            int
	Statuses, AppNames, Origins, Modes, Webhooks, Email, Availability, Appearance string
}

func (ts *testServer) state(t *testing.T) state {
	t.Helper()
	db := ts.rawDB(t)
	one := func(q string) string {
		var s string
		if err := db.QueryRow(q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return s
	}
	return state{
		Messages: ts.count(t, `SELECT count(*) FROM messages`),
		Apps:     ts.count(t, `SELECT count(*) FROM apps`),
		Members:  ts.count(t, `SELECT count(*) FROM app_members`),
		Secrets:  ts.count(t, `SELECT count(*) FROM identity_secrets`),
		Sessions: ts.count(t, `SELECT count(*) FROM owner_sessions`),
		Owners:   ts.count(t, `SELECT count(*) FROM owners`),
		Statuses: one(`SELECT coalesce(group_concat(id || '=' || status || '@' || agent_read_seq, ','), '') FROM (SELECT * FROM conversations ORDER BY id)`),
		AppNames: one(`SELECT coalesce(group_concat(id || '=' || name || '/' || api_key_hash, ','), '') FROM (SELECT * FROM apps ORDER BY id)`),
		Origins:  one(`SELECT coalesce(group_concat(app_id || '=' || origin, ','), '') FROM (SELECT * FROM app_origins ORDER BY app_id, origin)`),
		Modes: one(`SELECT coalesce(group_concat(identity_mode || '/' || require_jwt || '/' || refuse_anonymous || '/' || coalesce(disabled_at, 'on'), ','), '')
			FROM (SELECT * FROM apps ORDER BY id)`),
		Email: one(`SELECT coalesce(group_concat(app_id || '/' || owner_id || '=' || email_alerts, ','), '') || ':' ||
			(SELECT coalesce(group_concat(coalesce(agent_email_after, 0) || '/' || coalesce(user_email_after, 0), ','), '') FROM apps)
			FROM (SELECT * FROM app_members ORDER BY app_id, owner_id)`),
		Availability: one(`SELECT coalesce(group_concat(time_zone || '/' || business_hours || '/' || greeting || '/' || away_message || '/' || reply_time, ','), '')
			FROM (SELECT * FROM apps ORDER BY id)`),
		Webhooks: one(`SELECT coalesce(group_concat(id || '=' || secret || '/' || coalesce(disabled_at, 'on'), ','), '') || ':' ||
			(SELECT count(*) FROM webhook_deliveries) FROM (SELECT * FROM webhook_endpoints ORDER BY id)`),
		Appearance: one(`SELECT coalesce(group_concat(color || '/' || position || '/' || launcher_label || '/' || team_name || '/' || locale || '/' || avatar_hash, ','), '') || ':' ||
			(SELECT count(*) FROM attachments) FROM (SELECT * FROM apps ORDER BY id)`),
	}
}

func (ts *testServer) wantState(t *testing.T, want state, what string) {
	t.Helper()
	if got := ts.state(t); got != want {
		t.Fatalf("%s changed the database:\n got %+v\nwant %+v", what, got, want)
	}
}

// mutations are every state-changing dashboard request for one app and
// one of its conversations, with valid forms.
func mutations(app testApp, convID, otherOwnerEmail string) []struct {
	path string
	form url.Values
} {
	s := "/dashboard/apps/" + app.ID + "/settings"
	w := "/dashboard/apps/" + app.ID + "/webhooks"
	return []struct {
		path string
		form url.Values
	}{
		{"/dashboard/apps", url.Values{"name": {"New"}, "origins": {"https://new.example.com"}, "identity_mode": {"monitor"}}},
		{convPath(app, convID, "messages"), url.Values{"body": {"hello"}}},
		{convPath(app, convID, "status"), url.Values{"status": {"closed"}}},
		{convPath(app, convID, "typing"), url.Values{"typing": {"true"}}},
		{convPath(app, convID, "read"), url.Values{"seq": {"1"}}},
		{s, url.Values{"name": {"Renamed"}, "origins": {"https://renamed.example.com"}, "identity_mode": {"enforced"}}},
		{s + "/secret/reveal", nil},
		{s + "/secret/rotate", url.Values{"previous_valid_for": {"now"}}},
		{s + "/secret/revoke", url.Values{"secret_id": {"isk_whatever"}}},
		{s + "/api-key/rotate", nil},
		{s + "/members", url.Values{"email": {otherOwnerEmail}}},
		{s + "/members/remove", url.Values{"owner_id": {"own_whatever"}}},
		{s + "/disable", nil},
		{s + "/enable", nil},
		{s + "/email-alerts", url.Values{"alerts": {"off"}}},
		{s + "/email-waits", url.Values{"agent_minutes": {"30"}, "user_minutes": {"30"}}},
		{s + "/invites/cancel", url.Values{"email": {"nobody@example.com"}}},
		{s + "/availability", url.Values{"time_zone": {"Europe/Paris"}, "hours": {"always"}, "greeting": {"Changed"}}},
		{s + "/appearance", url.Values{"color": {"#000000"}, "position": {"left"}, "locale": {"de"}}},
		{s + "/avatar", nil}, // multipart in real use: refused before it is read
		{s + "/avatar/remove", nil},
		{s + "/origins/allow", url.Values{"origin": {"https://allowed.example.com"}}},
		{convPath(app, convID, "attachments"), nil}, // multipart too
		{w, url.Values{"url": {"https://93.184.216.34/hook"}, "event": {"message.created"}}},
		{w + "/whe_whatever/rotate", url.Values{"overlap": {"0s"}}},
		{w + "/whe_whatever/enable", nil},
		{w + "/whe_whatever/remove", nil},
		{w + "/whe_whatever/deliveries/1/resend", nil},
	}
}

// Authentication.

func TestDashboardRequiresSignIn(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	bob := ts.newOwner(t, "Bob")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	conv := ts.converse(t, fields(app), "hi")

	// A session that has been signed out, and one that expired.
	out := ts.signIn(t, ann)
	signedOut := out.token()
	out.post(t, "/logout", nil).wantRedirect(t, "/login")
	expired := ts.signIn(t, ann).token()
	if _, err := ts.rawDB(t).Exec(`UPDATE owner_sessions SET expires_at = ? WHERE owner_id = ?`, time.Now().Add(-time.Second).UnixMilli(), ann.ID); err != nil {
		t.Fatal(err)
	}

	base := "/dashboard/apps/" + app.ID
	pages := []string{
		"/dashboard",
		base,
		base + "?status=all",
		convPath(app, conv.ID),
		convPath(app, conv.ID) + "?fragment=messages&after_seq=0",
		base + "?fragment=list",
		base + "/settings",
		"/dashboard/apps/app_doesnotexist",
	}
	clients := map[string]*browser{
		"no cookie":                   ts.browser(t),
		"garbage cookie":              ts.withCookie(t, "garbage"),
		"empty cookie":                ts.withCookie(t, `""`),
		"well-formed, never issued":   ts.withCookie(t, "pos_"+strings.Repeat("A", 43)),
		"a session token with suffix": ts.withCookie(t, expired+"x"),
		"an API key":                  ts.withCookie(t, app.APIKey),
		"signed out":                  ts.withCookie(t, signedOut),
		"expired":                     ts.withCookie(t, expired),
	}
	before := ts.state(t)
	for name, b := range clients {
		t.Run(name, func(t *testing.T) {
			for _, p := range pages {
				res := b.get(t, p)
				res.wantSignInFirst(t, p)
				if testids(res.Body, "conversation-row")+testids(res.Body, "thread-message") > 0 || strings.Contains(string(res.Body), app.ID+"/settings") {
					t.Fatalf("GET %s without a valid session leaked the page: %s", p, res.Body)
				}
				// The dashboard's script asks for JSON and gets a 401 it can act on.
				js := b.do(t, http.MethodGet, p, http.Header{"Accept": {"application/json"}}, nil)
				js.wantError(t, http.StatusUnauthorized, "unauthorized")
			}
			for _, m := range mutations(app, conv.ID, bob.Email) {
				res := b.post(t, m.path, m.form)
				res.wantStatus(t, http.StatusUnauthorized)
				if strings.Contains(string(res.Body), "psk_") || strings.Contains(string(res.Body), `"secret"`) {
					t.Fatalf("POST %s without a valid session answered with a secret: %s", m.path, res.Body)
				}
			}
			ts.wantState(t, before, "requests without a valid session")
		})
	}
	// Nothing reached the user either.
	conv.Widget.ping()
}

func TestDashboardSignInCookie(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")

	b := ts.browser(t)
	login := b.get(t, "/login")
	login.wantStatus(t, http.StatusOK)
	if login.setCookie(t, ownerCookie) != nil {
		t.Fatalf("GET /login set an owner cookie")
	}

	// A cookie value planted before sign-in (session fixation) is replaced.
	planted := "pos_" + strings.Repeat("B", 43)
	u, _ := url.Parse(ts.URL)
	b.hc.Jar.SetCookies(u, []*http.Cookie{{Name: ownerCookie, Value: planted, Path: "/"}})

	res := b.login(t, ann.Email, ann.Password, "")
	res.wantRedirect(t, "/dashboard")
	c := res.setCookie(t, ownerCookie)
	if c == nil {
		t.Fatalf("sign-in set no %s cookie; headers %v", ownerCookie, res.Header)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie = %+v, want HttpOnly, SameSite=Lax, not Secure over http, Path=/, host-only", c)
	}
	if !strings.HasPrefix(c.Value, "pos_") || c.Value == planted {
		t.Fatalf("cookie value %q, want a fresh pos_ token", c.Value)
	}
	first := b.token()
	if first != c.Value {
		t.Fatalf("the jar holds %q, want the new cookie %q", first, c.Value)
	}
	ts.withCookie(t, planted).get(t, "/dashboard").wantSignInFirst(t, "/dashboard")
	if got := ts.count(t, `SELECT count(*) FROM owner_sessions WHERE token_hash = ?`, c.Value); got != 0 {
		t.Fatalf("the token itself is stored in owner_sessions; want only its hash")
	}

	home := b.get(t, "/dashboard")
	home.wantStatus(t, http.StatusOK)
	if !strings.Contains(string(home.Body), ann.Name) {
		t.Fatalf("dashboard does not greet %s: %s", ann.Name, home.Body)
	}

	// Signing in again mints another session id, and the old one ends.
	b.login(t, ann.Email, ann.Password, "").wantRedirect(t, "/dashboard")
	second := b.token()
	if second == first || second == "" {
		t.Fatalf("second sign-in cookie = %q, want a new value (first was %q)", second, first)
	}
	ts.withCookie(t, first).get(t, "/dashboard").wantSignInFirst(t, "/dashboard")
	b.get(t, "/dashboard").wantStatus(t, http.StatusOK)

	// Another browser's sign-in does not end this one.
	ts.signIn(t, ann)
	b.get(t, "/dashboard").wantStatus(t, http.StatusOK)
	if got := ts.count(t, `SELECT count(*) FROM owner_sessions WHERE owner_id = ?`, ann.ID); got != 2 {
		t.Fatalf("%d sessions stored, want 2 (the replaced one deleted)", got)
	}
}

func TestDashboardSignInCookieOverHTTPS(t *testing.T) {
	// Parley behind a TLS-terminating proxy: the public URL is https.
	ts := newTestServer(t, func(c *Config) { c.PublicURL = "https://chat.example.com" })
	ann := ts.newOwner(t, "Ann")
	b := ts.browser(t)
	res := b.login(t, ann.Email, ann.Password, "")
	res.wantRedirect(t, "/dashboard")
	if res.setCookie(t, ownerCookie) != nil {
		t.Fatalf("over https the cookie must be the __Host- one, got %s", res.Header.Values("Set-Cookie"))
	}
	c := res.setCookie(t, "__Host-"+ownerCookie)
	if c == nil {
		t.Fatalf("no __Host-%s cookie; Set-Cookie %q", ownerCookie, res.Header.Values("Set-Cookie"))
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie = %+v, want Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", c)
	}
	// Sign-out clears the same cookie.
	out := ts.withCookie(t, "")
	r := out.do(t, http.MethodPost, "/logout", http.Header{"Cookie": {"__Host-parley_owner=" + c.Value}, "Sec-Fetch-Site": {"same-origin"}}, nil)
	r.wantRedirect(t, "/login")
	if cl := r.setCookie(t, "__Host-"+ownerCookie); cl == nil || cl.MaxAge >= 0 || !cl.Secure {
		t.Fatalf("sign-out cookie = %+v, want __Host-%s cleared (Max-Age<0), Secure", cl, ownerCookie)
	}
	if n := ts.count(t, `SELECT count(*) FROM owner_sessions`); n != 0 {
		t.Fatalf("%d sessions left after sign-out, want 0", n)
	}
}

func TestDashboardSignOut(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	b := ts.signIn(t, ann)
	other := ts.signIn(t, ann) // another device
	old := b.token()

	res := b.post(t, "/logout", nil)
	res.wantRedirect(t, "/login")
	if c := res.setCookie(t, ownerCookie); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Fatalf("sign-out Set-Cookie = %+v, want the cookie cleared", c)
	}
	if b.token() != "" {
		t.Fatalf("the browser still holds a cookie after sign-out")
	}
	// The session ended on the server: a copy of the cookie is worthless.
	stolen := ts.withCookie(t, old)
	stolen.get(t, "/dashboard").wantSignInFirst(t, "/dashboard")
	stolen.post(t, "/dashboard/apps", url.Values{"name": {"x"}, "origins": {shopOrigin}}).wantStatus(t, http.StatusUnauthorized)
	if n := ts.count(t, `SELECT count(*) FROM owner_sessions WHERE owner_id = ?`, ann.ID); n != 1 {
		t.Fatalf("%d sessions left, want 1 (the other device's)", n)
	}
	other.get(t, "/dashboard").wantStatus(t, http.StatusOK)

	// Signing out again, or without a session, is harmless.
	b.post(t, "/logout", nil).wantRedirect(t, "/login")
	stolen.post(t, "/logout", nil).wantRedirect(t, "/login")
	other.get(t, "/dashboard").wantStatus(t, http.StatusOK)
}

func TestDashboardIdleTimeout(t *testing.T) {
	const idle = 2 * time.Second
	ts := newTestServer(t, withOwnerTimeouts(idle, 0))
	ann := ts.newOwner(t, "Ann")
	b := ts.signIn(t, ann)
	tok := b.token()
	b.get(t, "/dashboard").wantStatus(t, http.StatusOK)
	time.Sleep(idle + 200*time.Millisecond)
	// Sent by hand: the session, not the cookie's lifetime, must end it.
	ts.withCookie(t, tok).get(t, "/dashboard").wantSignInFirst(t, "/dashboard")
	res := b.get(t, "/dashboard")
	res.wantSignInFirst(t, "/dashboard")
	if c := res.setCookie(t, ownerCookie); c == nil || c.MaxAge >= 0 {
		t.Fatalf("an ended session's cookie was not cleared: %+v", c)
	}
}

func TestDashboardIdleTimeoutDefault(t *testing.T) {
	// Default: 12 hours without a request. Activity moves the mark.
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	b := ts.signIn(t, ann)
	db := ts.rawDB(t)
	setSeen := func(ago time.Duration) {
		t.Helper()
		if _, err := db.Exec(`UPDATE owner_sessions SET last_seen_at = ?`, time.Now().Add(-ago).UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	setSeen(11*time.Hour + 50*time.Minute)
	b.get(t, "/dashboard").wantStatus(t, http.StatusOK)
	var seen int64
	if err := db.QueryRow(`SELECT last_seen_at FROM owner_sessions`).Scan(&seen); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(time.UnixMilli(seen)); d > time.Minute {
		t.Fatalf("a request did not refresh last_seen_at (it is %v old)", d)
	}
	setSeen(12*time.Hour + time.Minute)
	b.get(t, "/dashboard").wantSignInFirst(t, "/dashboard")
}

func TestDashboardMaxAge(t *testing.T) {
	const maxAge = 3 * time.Second
	ts := newTestServer(t, withOwnerTimeouts(0, maxAge))
	ann := ts.newOwner(t, "Ann")
	b := ts.signIn(t, ann)
	tok := b.token()
	start := time.Now()
	// Constant activity does not stretch a sign-in past its maximum age.
	for time.Since(start) < maxAge-time.Second {
		ts.withCookie(t, tok).get(t, "/dashboard").wantStatus(t, http.StatusOK)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(maxAge - time.Since(start) + 200*time.Millisecond)
	ts.withCookie(t, tok).get(t, "/dashboard").wantSignInFirst(t, "/dashboard")
	ts.withCookie(t, tok).post(t, "/dashboard/apps", url.Values{}).wantStatus(t, http.StatusUnauthorized)
}

func TestDashboardNextRedirect(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)

	// A page asked for while signed out is where sign-in leads back to.
	b := ts.browser(t)
	page := "/dashboard/apps/" + app.ID + "?status=all"
	res := b.get(t, page)
	res.wantSignInFirst(t, page)
	next, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	form := b.get(t, res.Header.Get("Location"))
	form.wantStatus(t, http.StatusOK)
	if !strings.Contains(text(form.Body), `name="next" value="`+page+`"`) {
		t.Fatalf("sign-in form does not carry next=%q: %s", page, form.Body)
	}
	b.login(t, ann.Email, ann.Password, next.Query().Get("next")).wantRedirect(t, page)
	b.get(t, page).wantStatus(t, http.StatusOK)

	// Each try is a new owner: every sign-in counts against the account's budget.
	for i, bad := range []string{
		"//evil.example",
		"https://evil.example",
		"/\\evil.example",
		"\\\\evil.example",
		"/dashboard\\..\\..\\\\evil.example",
		"/dashboard/\\evil.example",
		"/dashboard/\r\nLocation: https://evil.example",
		"/dashboardevil",
		"/login",
		"javascript:alert(1)",
		" /dashboard",
		"http:/dashboard",
	} {
		t.Run(fmt.Sprintf("next=%q", bad), func(t *testing.T) {
			o := ts.newOwner(t, fmt.Sprintf("Owner %d", i))
			ts.browser(t).login(t, o.Email, o.Password, bad).wantRedirect(t, "/dashboard")
			// The form does not echo it either.
			f := ts.browser(t).get(t, "/login?next="+url.QueryEscape(bad))
			f.wantStatus(t, http.StatusOK)
			if !strings.Contains(string(f.Body), `name="next" value="/dashboard"`) {
				t.Fatalf("sign-in form carries an unsafe next: %s", f.Body)
			}
		})
	}
	// A wrong password keeps (the safe) next for the second try.
	res = ts.browser(t).login(t, ann.Email, "wrong password", page)
	res.wantStatus(t, http.StatusUnauthorized)
	if !strings.Contains(text(res.Body), `name="next" value="`+page+`"`) {
		t.Fatalf("failed sign-in dropped next: %s", res.Body)
	}
}

// Sign-in answers and throttling.

func TestDashboardSignInSameAnswer(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")

	wrong := ts.browser(t).login(t, ann.Email, "not the password", "")
	unknown := ts.browser(t).login(t, "nobody@example.com", "not the password", "")
	empty := ts.browser(t).login(t, ann.Email, "", "")
	for name, r := range map[string]httpResult{"wrong password": wrong, "unknown email": unknown, "empty password": empty} {
		r.wantStatus(t, http.StatusUnauthorized)
		if r.setCookie(t, ownerCookie) != nil {
			t.Fatalf("%s set a cookie", name)
		}
		if !strings.Contains(string(r.Body), "Email or password is incorrect.") {
			t.Fatalf("%s: body lacks the sign-in error: %s", name, r.Body)
		}
	}
	if a, b := strings.ReplaceAll(string(wrong.Body), ann.Email, "EMAIL"), strings.ReplaceAll(string(unknown.Body), "nobody@example.com", "EMAIL"); a != b {
		t.Fatalf("unknown email and wrong password answer differently:\n%s\n%s", a, b)
	}
	if a, b := strings.Join(wrong.Header.Values("Set-Cookie"), ";"), strings.Join(unknown.Header.Values("Set-Cookie"), ";"); a != b {
		t.Fatalf("Set-Cookie differs: %q vs %q", a, b)
	}
	if n := ts.count(t, `SELECT count(*) FROM owner_sessions`); n != 0 {
		t.Fatalf("%d sessions after failed sign-ins, want 0", n)
	}
	// And in the same time: an unknown email is hashed like a known one.
	// argon2id's cost is the memory it fills, so the bytes the server
	// allocates to answer tell whether it hashed, whatever else the
	// machine is doing (their times, on a busy machine, need not).
	// Without the hash the unknown email costs about 1/100.
	cost := func(email string) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ts.browser(t).login(t, email, "not the password", "").wantStatus(t, http.StatusUnauthorized)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	// Bob's own budget of failures: Ann's is spent above.
	if known, unknown := cost(ts.newOwner(t, "Bob").Email), cost("nobody@example.com"); unknown < known*8/10 {
		t.Fatalf("answering an unknown email allocated %d bytes, a wrong password %d: its time tells which accounts exist", unknown, known)
	}
	// The email is matched without regard to case or surrounding space.
	ts.browser(t).login(t, "  "+strings.ToUpper(ann.Email)+" ", ann.Password, "").wantRedirect(t, "/dashboard")
}

func TestDashboardSignInThrottlePerAccount(t *testing.T) {
	ts := newTestServer(t, withStoppedThrottles())
	ann := ts.newOwner(t, "Ann")
	bob := ts.newOwner(t, "Bob")

	// Successful sign-ins are not throttled: more of them than the
	// burst of failures all get in.
	for range 8 {
		ts.signIn(t, ann)
	}
	sessions := ts.count(t, `SELECT count(*) FROM owner_sessions`)
	for i := range 5 {
		// Different spellings of one account are one account.
		email := ann.Email
		if i%2 == 1 {
			email = strings.ToUpper(ann.Email) + " "
		}
		ts.browser(t).login(t, email, fmt.Sprintf("guess %d", i), "").wantStatus(t, http.StatusUnauthorized)
	}
	// The 6th attempt is refused before the password is looked at: even
	// the right one.
	res := ts.browser(t).login(t, ann.Email, ann.Password, "")
	res.wantStatus(t, http.StatusTooManyRequests)
	if res.setCookie(t, ownerCookie) != nil {
		t.Fatalf("a throttled sign-in set a cookie")
	}
	ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After = %q, want 1-60 seconds", res.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(res.Body), "Too many") {
		t.Fatalf("throttled page does not say why: %s", res.Body)
	}
	if n := ts.count(t, `SELECT count(*) FROM owner_sessions`); n != sessions {
		t.Fatalf("%d sessions after a throttled sign-in, want %d", n, sessions)
	}
	// Another account from the same address is not locked out.
	ts.signIn(t, bob)
}

// The sign-in throttles hold across nodes that share the database: an
// account's failures on one node count on the other, and so do an
// address's.
func TestDashboardSignInThrottleAcrossNodes(t *testing.T) {
	a := newTestServer(t, withStoppedThrottles())
	b := a.secondNode(t, withStoppedThrottles())
	ann := a.newOwner(t, "Ann")
	for i := range 5 {
		node := []*testServer{a, b}[i%2]
		node.browser(t).login(t, ann.Email, fmt.Sprintf("guess %d", i), "").wantStatus(t, http.StatusUnauthorized)
	}
	for _, node := range []*testServer{a, b} {
		res := node.browser(t).login(t, ann.Email, ann.Password, "")
		res.wantStatus(t, http.StatusTooManyRequests)
		if res.setCookie(t, ownerCookie) != nil {
			t.Fatalf("a throttled sign-in set a cookie")
		}
	}
	// 15 more failures from this address, over other accounts and both
	// nodes, make its 20: then Bob, untouched, is refused on either.
	bob := b.newOwner(t, "Bob")
	for i := range 15 {
		node := []*testServer{a, b}[i%2]
		node.browser(t).login(t, fmt.Sprintf("nobody%d@example.com", i), "guess", "").wantStatus(t, http.StatusUnauthorized)
	}
	a.browser(t).login(t, bob.Email, bob.Password, "").wantStatus(t, http.StatusTooManyRequests)
	b.browser(t).login(t, bob.Email, bob.Password, "").wantStatus(t, http.StatusTooManyRequests)
}

func TestDashboardSignInThrottlePerIP(t *testing.T) {
	ts := newTestServer(t, withStoppedThrottles())
	ann := ts.newOwner(t, "Ann")
	// 20 failures over 20 accounts (at most 1 per account), each claiming
	// to come from somewhere else: the claims are not believed.
	for i := range 20 {
		b := ts.browser(t)
		res := b.postWith(t, "/login", url.Values{"email": {fmt.Sprintf("user%d@example.com", i)}, "password": {"guess"}},
			http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d", i+1)}, "X-Real-Ip": {fmt.Sprintf("198.51.100.%d", i+1)}})
		res.wantStatus(t, http.StatusUnauthorized)
	}
	res := ts.browser(t).postWith(t, "/login", url.Values{"email": {ann.Email}, "password": {ann.Password}},
		http.Header{"X-Forwarded-For": {"192.0.2.200"}, "X-Real-Ip": {"192.0.2.201"}})
	res.wantStatus(t, http.StatusTooManyRequests)
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After = %q, want a positive number of seconds", res.Header.Get("Retry-After"))
	}
	if res.setCookie(t, ownerCookie) != nil {
		t.Fatalf("a throttled sign-in set a cookie")
	}
	if !ts.logs.contains("failed dashboard sign-in ip=127.0.0.1") {
		t.Errorf("failed sign-ins were not logged with the peer's address")
	}
}

// Sign-up.

func TestDashboardSignupClosed(t *testing.T) {
	ts := newTestServer(t)
	ts.browser(t).get(t, "/signup").wantStatus(t, http.StatusNotFound)
	res := ts.browser(t).post(t, "/signup", url.Values{"name": {"Eve"}, "email": {"eve@example.com"}, "password": {"a long enough password"}})
	res.wantStatus(t, http.StatusNotFound)
	if res.setCookie(t, ownerCookie) != nil || ts.count(t, `SELECT count(*) FROM owners`) != 0 {
		t.Fatalf("closed sign-up created an owner or a session")
	}
	if strings.Contains(string(ts.browser(t).get(t, "/login").Body), `href="/signup"`) {
		t.Fatalf("sign-in page links to a closed sign-up")
	}
}

func TestDashboardSignup(t *testing.T) {
	ts := newTestServer(t, withSignup())
	ts.browser(t).get(t, "/signup").wantStatus(t, http.StatusOK)
	if !strings.Contains(string(ts.browser(t).get(t, "/login").Body), `href="/signup"`) {
		t.Fatalf("sign-in page does not link to the open sign-up")
	}

	b := ts.browser(t)
	res := b.post(t, "/signup", url.Values{"name": {"Eve"}, "email": {" Eve@Example.com"}, "password": {"a long enough password"}})
	res.wantRedirect(t, "/dashboard")
	if b.token() == "" {
		t.Fatalf("sign-up did not sign the new owner in")
	}
	home := b.get(t, "/dashboard")
	home.wantStatus(t, http.StatusOK)
	if !strings.Contains(string(home.Body), "eve@example.com") || !strings.Contains(string(home.Body), ">Eve<") {
		t.Fatalf("dashboard does not show the new owner: %s", home.Body)
	}
	// The password works for a later sign-in.
	ts.signIn(t, testOwner{Email: "eve@example.com", Password: "a long enough password"})

	for _, tt := range []struct {
		name string
		form url.Values
		msg  string
	}{
		{"weak password", url.Values{"name": {"Mal"}, "email": {"mal@example.com"}, "password": {"short"}}, "password is too short"},
		{"duplicate email", url.Values{"name": {"Eve again"}, "email": {"EVE@example.com"}, "password": {"another long password"}}, "an owner with this email already exists"},
		{"no name", url.Values{"name": {"  "}, "email": {"nn@example.com"}, "password": {"another long password"}}, "Please enter your name."},
		{"bad email", url.Values{"name": {"X"}, "email": {"not-an-email"}, "password": {"another long password"}}, `"not-an-email" is not an email address`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.state(t)
			res := ts.browser(t).post(t, "/signup", tt.form)
			res.wantStatus(t, http.StatusBadRequest)
			if !strings.Contains(text(res.Body), tt.msg) {
				t.Fatalf("body lacks %q: %s", tt.msg, res.Body)
			}
			if res.setCookie(t, ownerCookie) != nil {
				t.Fatalf("a refused sign-up set a cookie")
			}
			ts.wantState(t, before, "a refused sign-up")
		})
	}
	// The password is never echoed back.
	res = ts.browser(t).post(t, "/signup", url.Values{"name": {"Mal"}, "email": {"mal@example.com"}, "password": {"shortpw"}})
	if strings.Contains(string(res.Body), "shortpw") {
		t.Fatalf("the sign-up form echoed the password")
	}
}

// CSRF and safe methods.

func TestDashboardCSRF(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	bob := ts.newOwner(t, "Bob")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	conv := ts.converse(t, fields(app), "hi")
	b := ts.signIn(t, ann)

	crossSite := []struct {
		name string
		hdr  http.Header
	}{
		{"Sec-Fetch-Site cross-site", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {evilOrigin}}},
		{"Sec-Fetch-Site cross-site, no Origin", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {""}}},
		{"Sec-Fetch-Site same-site (a sibling subdomain)", http.Header{"Sec-Fetch-Site": {"same-site"}, "Origin": {"http://sub.127.0.0.1.nip.io"}}},
		{"old browser, Origin of another site", http.Header{"Sec-Fetch-Site": {""}, "Origin": {evilOrigin}}},
		{"old browser, Origin null", http.Header{"Sec-Fetch-Site": {""}, "Origin": {"null"}}},
	}
	before := ts.state(t)
	for _, cs := range crossSite {
		t.Run(cs.name, func(t *testing.T) {
			for _, m := range append(mutations(app, conv.ID, bob.Email), struct {
				path string
				form url.Values
			}{"/logout", nil}) {
				res := b.postWith(t, m.path, m.form, cs.hdr)
				res.wantStatus(t, http.StatusForbidden)
				if !strings.Contains(string(res.Body), "cross-site request forgery") || strings.Contains(string(res.Body), "psk_") {
					t.Fatalf("POST %s: body %s", m.path, res.Body)
				}
			}
			ts.wantState(t, before, "cross-site POSTs")
			b.get(t, "/dashboard").wantStatus(t, http.StatusOK) // still signed in: the sign-out was refused too

			// Login CSRF: an attacker's form can't sign the victim into the attacker's account.
			v := ts.browser(t)
			res := v.postWith(t, "/login", url.Values{"email": {bob.Email}, "password": {bob.Password}}, cs.hdr)
			res.wantStatus(t, http.StatusForbidden)
			if v.token() != "" {
				t.Fatalf("a cross-site sign-in set a cookie")
			}
		})
	}
	// Nothing reached the user's widget.
	conv.Widget.ping()

	// Same-origin requests, as the dashboard's own pages send them, work.
	ok := []struct {
		name string
		hdr  http.Header
	}{
		{"Sec-Fetch-Site same-origin", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {ts.Origin}}},
		{"old browser, Origin is Parley", http.Header{"Sec-Fetch-Site": {""}, "Origin": {ts.URL}}},
		{"not a browser: no Origin, no Sec-Fetch-Site", http.Header{"Sec-Fetch-Site": {""}, "Origin": {""}}},
	}
	for i, o := range ok {
		res := b.postWith(t, convPath(app, conv.ID, "messages"), url.Values{"body": {fmt.Sprintf("reply %d", i)}}, o.hdr)
		if res.Status != http.StatusSeeOther {
			t.Fatalf("%s: reply = %d %s, want 303", o.name, res.Status, res.Body)
		}
		if m := conv.Widget.expect("message").msg(t); m.Body != fmt.Sprintf("reply %d", i) {
			t.Fatalf("%s: widget got %+v", o.name, m)
		}
		conv.Widget.expect("unread")
		conv.Widget.expect("typing")
	}
}

func TestDashboardGETChangesNothing(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	bob := ts.newOwner(t, "Bob")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	conv := ts.converse(t, fields(app), "hi")
	b := ts.signIn(t, ann)

	before := ts.state(t)
	for _, m := range mutations(app, conv.ID, bob.Email) {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			res := b.do(t, method, m.path+"?"+m.form.Encode(), nil, nil)
			if strings.HasSuffix(m.path, "/settings") || strings.HasSuffix(m.path, "/webhooks") {
				continue // also a page; that it changed nothing is checked below
			}
			if res.Status != http.StatusNotFound && res.Status != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s = %d, want 404 or 405 (body %.300s)", method, m.path, res.Status, res.Body)
			}
			if strings.Contains(string(res.Body), app.Secret) || apiKeyRe.Match(res.Body) {
				t.Fatalf("%s %s answered with a secret", method, m.path)
			}
		}
	}
	for _, p := range []string{"/logout", "/logout?x=1"} {
		res := b.get(t, p)
		if res.Status != http.StatusNotFound && res.Status != http.StatusMethodNotAllowed {
			t.Fatalf("GET %s = %d, want 404 or 405", p, res.Status)
		}
	}
	ts.wantState(t, before, "GET requests")
	// A same-origin POST reads its values from the body only: the same
	// form in the URL's query, with an empty body, changes nothing either.
	for _, m := range mutations(app, conv.ID, bob.Email) {
		if m.form != nil {
			b.post(t, m.path+"?"+m.form.Encode(), url.Values{})
		}
	}
	ts.wantState(t, before, "POSTs with the form in the query")
	b.get(t, "/dashboard").wantStatus(t, http.StatusOK) // GET /logout did not sign out
	// Viewing a conversation does not mark it read either.
	b.get(t, convPath(app, conv.ID)).wantStatus(t, http.StatusOK)
	ts.wantState(t, before, "viewing a conversation")
	conv.Widget.ping()
}

// Headers.

func TestDashboardHeaders(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	conv := ts.converse(t, fields(app), "hi")
	b := ts.signIn(t, ann)
	anon := ts.browser(t)

	check := func(t *testing.T, what string, res httpResult) {
		t.Helper()
		csp := res.Header.Get("Content-Security-Policy")
		if fa := cspDirective(csp, "frame-ancestors"); len(fa) != 1 || fa[0] != "'none'" {
			t.Errorf("%s: CSP %q, want frame-ancestors 'none'", what, csp)
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
			t.Errorf("%s: CSP %q allows inline or any-source content", what, csp)
		}
		if src := cspDirective(csp, "script-src"); len(src) != 1 || src[0] != "'self'" {
			t.Errorf("%s: CSP %q, want script-src 'self'", what, csp)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no X-Content-Type-Options: nosniff", what)
		}
	}
	s := "/dashboard/apps/" + app.ID + "/settings"
	for what, res := range map[string]httpResult{
		"sign-in page":         anon.get(t, "/login"),
		"failed sign-in":       anon.login(t, ann.Email, "wrong", ""),
		"closed sign-up":       anon.get(t, "/signup"),
		"redirect to sign-in":  anon.get(t, "/dashboard"),
		"401":                  anon.post(t, "/dashboard/apps", nil),
		"apps":                 b.get(t, "/dashboard"),
		"inbox":                b.get(t, "/dashboard/apps/"+app.ID),
		"list fragment":        b.get(t, "/dashboard/apps/"+app.ID+"?fragment=list"),
		"conversation":         b.get(t, convPath(app, conv.ID)),
		"messages fragment":    b.get(t, convPath(app, conv.ID)+"?fragment=messages&after_seq=0"),
		"settings":             b.get(t, s),
		"secret reveal":        b.post(t, s+"/secret/reveal", nil),
		"API key rotated page": b.post(t, s+"/api-key/rotate", nil),
		"missing app":          b.get(t, "/dashboard/apps/app_nope"),
		"bad form":             b.post(t, convPath(app, conv.ID, "status"), url.Values{"status": {"x"}}),
		"unknown page":         b.get(t, "/dashboard/nope"),
		"CSRF refusal":         b.postWith(t, "/dashboard/apps", nil, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {evilOrigin}}),
	} {
		check(t, what, res)
	}
}

// Apps.

func TestDashboardAppsListOnlyMemberApps(t *testing.T) {
	ts := newTestServer(t)
	ann, bob := ts.newOwner(t, "Ann"), ts.newOwner(t, "Bob")
	a1 := ts.ownerApp(t, ann, store.ModeMonitor)
	a2 := ts.ownerApp(t, ann, store.ModeEnforced)
	b1 := ts.ownerApp(t, bob, store.ModeMonitor)
	orphan := ts.newApp(t, store.ModeMonitor) // made with the CLI, no member

	res := ts.signIn(t, ann).get(t, "/dashboard")
	res.wantStatus(t, http.StatusOK)
	if n := testids(res.Body, "app-row"); n != 2 {
		t.Fatalf("%d app rows, want 2", n)
	}
	for _, id := range []string{a1.ID, a2.ID} {
		if !strings.Contains(string(res.Body), id) {
			t.Fatalf("Ann's app %s is not listed", id)
		}
	}
	for _, id := range []string{b1.ID, orphan.ID} {
		if strings.Contains(string(res.Body), id) {
			t.Fatalf("app %s, not Ann's, is listed", id)
		}
	}
	// Unread and open counts are the app's own.
	ts.converse(t, fields(b1), "for Bob")
	ts.converse(t, fields(a1), "for Ann")
	res = ts.signIn(t, ann).get(t, "/dashboard")
	if c := strings.Count(string(res.Body), "1 unread"); c != 1 {
		t.Fatalf(`"1 unread" appears %d times, want once (a1 only): %s`, c, res.Body)
	}
	res = ts.signIn(t, ts.newOwner(t, "Cat")).get(t, "/dashboard")
	if testids(res.Body, "app-row") != 0 {
		t.Fatalf("an owner without apps sees app rows")
	}
}

func TestDashboardForeignApp(t *testing.T) {
	ts := newTestServer(t)
	ann, bob := ts.newOwner(t, "Ann"), ts.newOwner(t, "Bob")
	annApp := ts.ownerApp(t, ann, store.ModeMonitor)
	ts.ownerApp(t, bob, store.ModeMonitor) // Bob has an app of his own
	conv := ts.converse(t, fields(annApp), "private")
	b := ts.signIn(t, bob)
	missing := testApp{ID: "app_" + strings.Repeat("a", 16)}

	// Bob learns nothing about Ann's app: every URL under it answers
	// exactly what a missing app answers.
	base := func(a testApp) string { return "/dashboard/apps/" + a.ID }
	gets := []func(a testApp) string{
		func(a testApp) string { return base(a) },
		func(a testApp) string { return base(a) + "?status=all&fragment=list" },
		func(a testApp) string { return convPath(a, conv.ID) },
		func(a testApp) string { return convPath(a, conv.ID) + "?fragment=messages&after_seq=0" },
		func(a testApp) string { return base(a) + "/settings" },
	}
	before := ts.state(t)
	for _, g := range gets {
		got, want := b.get(t, g(annApp)), b.get(t, g(missing))
		got.wantStatus(t, http.StatusNotFound)
		if want.Status != got.Status || string(want.Body) != string(got.Body) {
			t.Fatalf("GET %s = %d %s\nmissing app = %d %s", g(annApp), got.Status, got.Body, want.Status, want.Body)
		}
		if strings.Contains(string(got.Body), "private") || strings.Contains(string(got.Body), "Test shop") {
			t.Fatalf("GET %s leaked the app: %s", g(annApp), got.Body)
		}
		js := b.do(t, http.MethodGet, g(annApp), http.Header{"Accept": {"application/json"}}, nil)
		js.wantError(t, http.StatusNotFound, "not_found")
	}
	for i, m := range mutations(annApp, conv.ID, bob.Email) {
		if i == 0 {
			continue // creating an app is not under an app
		}
		got := b.post(t, m.path, m.form)
		got.wantStatus(t, http.StatusNotFound)
		want := b.post(t, strings.Replace(m.path, annApp.ID, missing.ID, 1), m.form)
		if string(want.Body) != string(got.Body) {
			t.Fatalf("POST %s differs from a missing app's answer:\n%s\n%s", m.path, got.Body, want.Body)
		}
		if strings.Contains(string(got.Body), annApp.Secret) || apiKeyRe.Match(got.Body) {
			t.Fatalf("POST %s leaked a secret", m.path)
		}
	}
	ts.wantState(t, before, "another owner's requests")
	conv.Widget.ping() // neither a reply nor typing reached Ann's user

	conn, res, err := b.agentSocket(annApp.ID, ts.Origin)
	if err == nil {
		conn.Close()
		t.Fatalf("Bob opened the inbox socket of Ann's app")
	}
	if res == nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("inbox socket of another owner's app: %v (%v), want 404", err, res)
	}
}

func TestDashboardCreateApp(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	b := ts.signIn(t, ann)
	// The form starts where `parley apps create` does: enforced.
	if page := string(b.get(t, "/dashboard").Body); !strings.Contains(page, `value="enforced" checked`) || strings.Contains(page, `value="monitor" checked`) {
		t.Errorf("the new-app form does not start enforced")
	}

	before := ts.state(t)
	res := b.post(t, "/dashboard/apps", url.Values{"name": {"Shop"}, "identity_mode": {"enforced"},
		"origins": {"https://ok.example.com\nhttp://shop.example.com\n\nhttps://*.example.com\nhttps://a.example.com/path"}})
	res.wantStatus(t, http.StatusBadRequest)
	body := text(res.Body)
	for _, want := range []string{
		`"http://shop.example.com": must use https`,
		`"https://*.example.com": wildcards are not allowed`,
		`"https://a.example.com/path": must not have a path`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page does not explain %q: %s", want, body)
		}
	}
	if strings.Contains(body, `"https://ok.example.com"`) {
		t.Errorf("the good origin is reported as bad")
	}
	// What the owner typed is kept for the next try.
	if !strings.Contains(body, "https://*.example.com") || !strings.Contains(body, `value="Shop"`) {
		t.Errorf("the form lost what was typed: %s", body)
	}
	ts.wantState(t, before, "a refused app")

	for _, form := range []url.Values{
		{"name": {""}, "origins": {shopOrigin}, "identity_mode": {"monitor"}},
		{"name": {"X"}, "origins": {""}, "identity_mode": {"monitor"}},
		{"name": {"X"}, "origins": {shopOrigin}, "identity_mode": {"lax"}},
	} {
		b.post(t, "/dashboard/apps", form).wantStatus(t, http.StatusBadRequest)
	}
	ts.wantState(t, before, "refused apps")

	res = b.post(t, "/dashboard/apps", url.Values{"name": {"<i>Shop</i>"}, "identity_mode": {"monitor"},
		"origins": {"HTTPS://Shop.Example.com:443\nhttp://localhost:3000"}})
	res.wantStatus(t, http.StatusCreated)
	keys := apiKeyRe.FindAllString(string(res.Body), -1)
	if len(keys) != 1 || testids(res.Body, "new-api-key") != 1 {
		t.Fatalf("creation page shows API keys %q, want exactly one", keys)
	}
	if strings.Contains(string(res.Body), "<i>Shop</i>") || !strings.Contains(string(res.Body), "&lt;i&gt;Shop&lt;/i&gt;") {
		t.Fatalf("the app name is not escaped: %s", res.Body)
	}
	var id string
	if err := ts.rawDB(t).QueryRow(`SELECT app_id FROM app_members WHERE owner_id = ?`, ann.ID).Scan(&id); err != nil {
		t.Fatalf("the creator is not a member: %v", err)
	}
	app, err := ts.DB.App(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(app.Origins, " ") != "http://localhost:3000 https://shop.example.com" || app.IdentityMode != "monitor" {
		t.Fatalf("stored app = %+v, want canonical origins and monitor mode", app)
	}
	if !strings.Contains(string(res.Body), app.ID) {
		t.Fatalf("the page does not show the new app's snippet")
	}
	// The key works against the server API, and is never shown again.
	ts.api(t, keys[0], http.MethodGet, "/conversations", nil).wantStatus(t, http.StatusOK)
	again := b.get(t, "/dashboard/apps/"+id+"/settings")
	again.wantStatus(t, http.StatusOK)
	if apiKeyRe.Match(again.Body) || testids(again.Body, "new-api-key") != 0 {
		t.Fatalf("the settings page shows the API key again")
	}
	list := b.get(t, "/dashboard")
	if !strings.Contains(string(list.Body), id) || apiKeyRe.Match(list.Body) {
		t.Fatalf("the app list lacks the new app or shows its key")
	}

	// Posting the same form again (a reload of the page that showed the
	// key) creates no second app and says why.
	before = ts.state(t)
	dup := b.post(t, "/dashboard/apps", url.Values{"name": {"<I>shop</I> "}, "identity_mode": {"monitor"}, "origins": {shopOrigin}})
	dup.wantStatus(t, http.StatusConflict)
	if !strings.Contains(text(dup.Body), "You already have an app named") {
		t.Fatalf("a duplicate app name is refused without a reason: %s", dup.Body)
	}
	ts.wantState(t, before, "a second app of the same name")
	// Another owner may use the same name.
	ts.signIn(t, ts.newOwner(t, "Bob")).post(t, "/dashboard/apps", url.Values{"name": {"<i>Shop</i>"}, "identity_mode": {"monitor"},
		"origins": {shopOrigin}}).wantStatus(t, http.StatusCreated)
}

// Inbox.

func TestDashboardInboxList(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	other := ts.ownerApp(t, ts.newOwner(t, "Bob"), store.ModeMonitor)
	b := ts.signIn(t, ann)
	inbox := "/dashboard/apps/" + app.ID

	empty := b.get(t, inbox)
	empty.wantStatus(t, http.StatusOK)
	if testids(empty.Body, "no-conversations") != 1 || testids(empty.Body, "conversation-row") != 0 {
		t.Fatalf("an empty inbox does not say so")
	}

	ada := ts.converse(t, verifiedUser(app, "user-ada", "name", "Ada Lovelace", "email", "ada@example.com",
		"page_url", shopOrigin+"/cart?token=secret#x"), "where is my order?")
	time.Sleep(5 * time.Millisecond) // distinct last_message_at, in milliseconds
	eve := ts.converse(t, fields(app, "user_id", "u-eve", "name", `<b onmouseover="x()">Eve</b>`), `<img src=x onerror=alert(1)>`)
	time.Sleep(5 * time.Millisecond)
	anon := ts.converse(t, fields(app), "just looking")
	ts.converse(t, fields(other), "someone else's")

	res := b.get(t, inbox)
	res.wantStatus(t, http.StatusOK)
	rows := convRows(res.Body)
	if got, want := strings.Join(rowIDs(rows), " "), strings.Join([]string{anon.ID, eve.ID, ada.ID}, " "); got != want {
		t.Fatalf("rows %s, want newest first %s", got, want)
	}
	for _, tt := range []struct {
		row              convRow
		label, badge, pv string
	}{
		{rows[0], "Anonymous visitor", "Anonymous", "just looking"},
		{rows[1], "&lt;b onmouseover=&#34;x()&#34;&gt;Eve&lt;/b&gt;", "Unverified", "&lt;img src=x onerror=alert(1)&gt;"},
		{rows[2], "Ada Lovelace", "Verified", "where is my order?"},
	} {
		if !strings.Contains(tt.row.HTML, `class="person">`+tt.label+`</strong>`) {
			t.Errorf("row %s: person is not %q: %s", tt.row.ID, tt.label, tt.row.HTML)
		}
		if !strings.Contains(tt.row.HTML, `data-testid="identity-badge">`+tt.badge+`</span>`) {
			t.Errorf("row %s: badge is not %q: %s", tt.row.ID, tt.badge, tt.row.HTML)
		}
		if !strings.Contains(tt.row.HTML, tt.pv) {
			t.Errorf("row %s: preview is not %q: %s", tt.row.ID, tt.pv, tt.row.HTML)
		}
		if !strings.Contains(tt.row.HTML, `data-testid="unread-marker"`) {
			t.Errorf("row %s: no unread marker for a new user message", tt.row.ID)
		}
	}
	for _, raw := range []string{"<img", "<b onmouseover", "someone else", other.ID} {
		if strings.Contains(string(res.Body), raw) {
			t.Fatalf("the inbox contains %q: %s", raw, res.Body)
		}
	}

	// New activity moves a conversation up; an agent's reply is previewed
	// as the owner's and counts as read.
	ada.Widget.sendMessage(ada.ID, "ada-2", "hello again?")
	b.post(t, convPath(app, ada.ID, "messages"), url.Values{"body": {"On its way"}}).wantRedirect(t, convPath(app, ada.ID))
	rows = convRows(b.get(t, inbox).Body)
	if got := strings.Join(rowIDs(rows), " "); got != strings.Join([]string{ada.ID, anon.ID, eve.ID}, " ") {
		t.Fatalf("after new activity rows are %s, want %s first", got, ada.ID)
	}
	if !regexp.MustCompile(`You: </span>\s*On its way`).MatchString(rows[0].HTML) || strings.Contains(rows[0].HTML, "unread-marker") {
		t.Fatalf("replied row: %s, want the reply previewed as yours and no unread marker", rows[0].HTML)
	}
	// A reply through the server API is not the owner's, even under the
	// owner's own name: it is previewed with its name.
	ts.reply(t, app, ada.ID, "Tracking number sent") // as "Ann", like the owner
	if rows = convRows(b.get(t, inbox).Body); !regexp.MustCompile(`Ann: </span>\s*Tracking number sent`).MatchString(rows[0].HTML) {
		t.Fatalf("API reply row: %s, want it previewed with its author's name", rows[0].HTML)
	}

	// Reading clears the marker, for every agent, until the user writes again.
	b.post(t, convPath(app, eve.ID, "read"), url.Values{"seq": {"1"}}).wantStatus(t, http.StatusNoContent)
	// The user's widget is told: the widget shows the message read.
	if r := eve.Widget.expect("receipt"); r.ConversationID != eve.ID || r.AgentReadSeq != 1 || r.AgentDeliveredSeq != 1 {
		t.Fatalf("receipt %s, want read and delivered up to 1", r.raw)
	}
	rows = convRows(ts.signIn(t, ann).get(t, inbox).Body)
	if strings.Contains(rows[2].HTML, "unread-marker") || !strings.Contains(rows[1].HTML, "unread-marker") {
		t.Fatalf("after reading %s: rows %+v, want only %s unread", eve.ID, rows, anon.ID)
	}
	eve.Widget.sendMessage(eve.ID, "eve-2", "still there?")
	rows = convRows(b.get(t, inbox).Body)
	if rows[0].ID != eve.ID || !strings.Contains(rows[0].HTML, "unread-marker") {
		t.Fatalf("a new user message did not bring the marker back: %+v", rows[0])
	}
	// A read mark past the last message does not hide later messages.
	b.post(t, convPath(app, anon.ID, "read"), url.Values{"seq": {"1000"}}).wantStatus(t, http.StatusNoContent)
	if r := anon.Widget.expect("receipt"); r.AgentReadSeq != 1 {
		t.Fatalf("receipt %s, want read up to 1, the last message", r.raw)
	}
	anon.Widget.sendMessage(anon.ID, "anon-2", "hello?")
	if rows = convRows(b.get(t, inbox).Body); rows[0].ID != anon.ID || !strings.Contains(rows[0].HTML, "unread-marker") {
		t.Fatalf("read mark ran ahead of the last message: %+v", rows[0])
	}
	for _, seq := range []string{"", "-1", "x", "1.5"} {
		b.post(t, convPath(app, anon.ID, "read"), url.Values{"seq": {seq}}).wantStatus(t, http.StatusBadRequest)
	}

	// The app list counts the same unread conversations.
	if !strings.Contains(string(b.get(t, "/dashboard").Body), "2 unread") {
		t.Fatalf("app list does not show 2 unread")
	}
}

func TestDashboardInboxFilter(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	c1 := ts.converse(t, fields(app), "first")
	time.Sleep(5 * time.Millisecond)
	c2 := ts.converse(t, fields(app), "second")
	b.post(t, convPath(app, c1.ID, "status"), url.Values{"status": {"closed"}}).wantRedirect(t, convPath(app, c1.ID)+"?status=closed")

	inbox := "/dashboard/apps/" + app.ID
	for _, tt := range []struct{ query, want string }{
		{"", c2.ID},
		{"?status=open", c2.ID},
		{"?status=bogus", c2.ID},
		{"?status=closed", c1.ID},
		{"?status=all", c2.ID + " " + c1.ID},
		{"?status=all&fragment=list", c2.ID + " " + c1.ID},
		{"?status=closed&fragment=list", c1.ID},
	} {
		res := b.get(t, inbox+tt.query)
		res.wantStatus(t, http.StatusOK)
		if got := strings.Join(rowIDs(convRows(res.Body)), " "); got != tt.want {
			t.Errorf("%s lists %q, want %q", tt.query, got, tt.want)
		}
	}
	// The closed row links to its conversation with the filter kept.
	res := b.get(t, inbox+"?status=closed")
	if !strings.Contains(string(res.Body), `href="`+convPath(app, c1.ID)+`?status=closed"`) {
		t.Fatalf("closed row does not link to its conversation: %s", res.Body)
	}
}

func TestDashboardConversationPage(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	other := ts.ownerApp(t, ann, store.ModeMonitor) // Ann's too, but another app
	b := ts.signIn(t, ann)

	eve := ts.converse(t, fields(app, "user_id", "u-<eve>", "name", "<script>alert(1)</script>", "page_url", shopOrigin+"/a/<b>"), "first <i>line</i>")
	eve.Widget.sendMessage(eve.ID, "m2", "second")
	b.post(t, convPath(app, eve.ID, "messages"), url.Values{"body": {"<b>bold</b> reply"}}).wantStatus(t, http.StatusSeeOther)
	eve.Widget.expect("message")
	eve.Widget.expect("unread")
	eve.Widget.expect("typing")
	eve.Widget.sendMessage(eve.ID, "m4", "fourth")

	res := b.get(t, convPath(app, eve.ID))
	res.wantStatus(t, http.StatusOK)
	page := string(res.Body)
	if n := testids(res.Body, "thread-message"); n != 4 {
		t.Fatalf("%d thread messages, want 4", n)
	}
	for _, id := range []string{"reply-box", "reply-send", "status-toggle", "person-details", "page-url", "user-typing"} {
		if testids(res.Body, id) != 1 {
			t.Errorf("conversation page lacks data-testid=%q", id)
		}
	}
	for _, want := range []string{
		`action="` + convPath(app, eve.ID, "messages") + `"`,
		`action="` + convPath(app, eve.ID, "status") + `"`,
		`data-conversation-id="` + eve.ID + `"`,
		`data-last-seq="4"`,
		`data-ws-url="/dashboard/apps/` + app.ID + `/ws"`,
		"first &lt;i&gt;line&lt;/i&gt;",
		"&lt;b&gt;bold&lt;/b&gt; reply",
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"u-&lt;eve&gt;",
		shopOrigin + "/a/%3Cb%3E",
		`data-testid="identity-badge">Unverified`,
		">Ann · <time",
		`data-seq="3"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("conversation page lacks %q", want)
		}
	}
	for _, raw := range []string{"<script>alert", "<i>line", "<b>bold", "u-<eve>"} {
		if strings.Contains(page, raw) {
			t.Fatalf("conversation page contains unescaped %q: %s", raw, page)
		}
	}

	// The fragments the page's script fetches are just those parts.
	frag := b.get(t, convPath(app, eve.ID)+"?fragment=messages&after_seq=2")
	frag.wantStatus(t, http.StatusOK)
	if strings.Contains(string(frag.Body), "<html") || strings.Contains(string(frag.Body), "<header") || testids(frag.Body, "reply-box") != 0 {
		t.Fatalf("messages fragment is more than messages: %s", frag.Body)
	}
	if got := regexp.MustCompile(`data-seq="(\d+)"`).FindAllStringSubmatch(string(frag.Body), -1); len(got) != 2 || got[0][1] != "3" || got[1][1] != "4" {
		t.Fatalf("messages after seq 2 = %v, want seqs 3 and 4", got)
	}
	if !strings.Contains(string(frag.Body), "&lt;b&gt;bold") {
		t.Fatalf("the fragment is not escaped: %s", frag.Body)
	}
	if n := testids(b.get(t, convPath(app, eve.ID)+"?fragment=messages&after_seq=4").Body, "thread-message"); n != 0 {
		t.Fatalf("%d messages after the last one, want 0", n)
	}
	list := b.get(t, convPath(app, eve.ID)+"?fragment=list")
	list.wantStatus(t, http.StatusOK)
	if strings.Contains(string(list.Body), "<html") || len(convRows(list.Body)) != 1 || !regexp.MustCompile(`class="[^"]*\bactive\b`).Match(list.Body) {
		t.Fatalf("list fragment: %s", list.Body)
	}
	for _, q := range []string{"?fragment=messages&after_seq=-1", "?fragment=messages&after_seq=x", "?fragment=messages"} {
		b.get(t, convPath(app, eve.ID)+q).wantStatus(t, http.StatusBadRequest)
	}
	b.get(t, "/dashboard/apps/"+app.ID+"?fragment=messages&after_seq=0").wantStatus(t, http.StatusNotFound)

	// A conversation of another app, even one Ann runs, is not found under
	// this app's URL; nothing is done to it.
	oc := ts.converse(t, fields(other), "in the other app")
	before := ts.state(t)
	for _, p := range []string{convPath(app, oc.ID), convPath(app, oc.ID) + "?fragment=messages&after_seq=0", convPath(app, "cnv_doesnotexist")} {
		res := b.get(t, p)
		res.wantStatus(t, http.StatusNotFound)
		if strings.Contains(string(res.Body), "in the other app") {
			t.Fatalf("GET %s leaked the message", p)
		}
	}
	for _, m := range mutations(app, oc.ID, "")[1:5] {
		b.post(t, m.path, m.form).wantStatus(t, http.StatusNotFound)
		b.postWith(t, m.path, m.form, http.Header{"Accept": {"application/json"}}).wantError(t, http.StatusNotFound, "not_found")
	}
	ts.wantState(t, before, "requests for another app's conversation")
	oc.Widget.ping()
	// Under its own app's URL it is there.
	b.get(t, convPath(other, oc.ID)).wantStatus(t, http.StatusOK)
}

func TestDashboardReply(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann Agent")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)
	conv := ts.converse(t, verifiedUser(app, "user-42"), "help")
	tab2 := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token)
	stranger := ts.connect(t, ts.session(t, verifiedUser(app, "user-43")).Token)

	// The dashboard's script posts and asks for JSON.
	res := b.postWith(t, convPath(app, conv.ID, "messages"), url.Values{"body": {"Hi, <Ann> here"}}, http.Header{"Accept": {"application/json"}})
	res.wantStatus(t, http.StatusCreated)
	var out struct{ Message chat.MessageJSON }
	res.decode(t, &out)
	m := out.Message
	if m.ID == "" || m.Author != "agent" || m.AuthorName != "Ann Agent" || m.Body != "Hi, <Ann> here" || m.ConversationID != conv.ID || m.Seq != 2 {
		t.Fatalf("reply = %s", res.Body)
	}
	// Committed, and delivered live to every open widget of the user, with
	// the owner's name.
	stored := ts.apiMessages(t, app, conv.ID)
	if len(stored) != 2 || stored[1].ID != m.ID || stored[1].AuthorName != "Ann Agent" || stored[1].Author != "agent" {
		t.Fatalf("stored messages %+v", stored)
	}
	for name, w := range map[string]*wsClient{"tab 1": conv.Widget, "tab 2": tab2} {
		got := w.expect("message").msg(t)
		if got.ID != m.ID || got.AuthorName != "Ann Agent" || got.Body != "Hi, <Ann> here" {
			t.Fatalf("%s got %+v", name, got)
		}
		if u := w.expect("unread"); u.Count != 1 {
			t.Fatalf("%s unread = %d, want 1", name, u.Count)
		}
		if f := w.expect("typing"); f.Typing || f.AuthorName != "Ann Agent" {
			t.Fatalf("%s: after a reply the agent stops typing; got %s", name, f.raw)
		}
	}
	stranger.ping() // another user hears nothing

	// A plain form post (no script) ends on the conversation page.
	b.post(t, convPath(app, conv.ID, "messages"), url.Values{"body": {"second"}}).wantRedirect(t, convPath(app, conv.ID))
	if got := conv.Widget.expect("message").msg(t); got.Body != "second" || got.AuthorName != "Ann Agent" {
		t.Fatalf("widget got %+v", got)
	}
	conv.Widget.expect("unread")
	conv.Widget.expect("typing")
	if n := len(ts.apiMessages(t, app, conv.ID)); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}

	before := ts.state(t)
	for name, body := range map[string]string{
		"empty":              "",
		"blank":              " \n\t ",
		"4001 bytes":         strings.Repeat("a", 4001),
		"control characters": "hi\x00there",
		"invalid UTF-8":      "hi\xffthere",
	} {
		res := b.post(t, convPath(app, conv.ID, "messages"), url.Values{"body": {body}})
		res.wantStatus(t, http.StatusBadRequest)
		if !strings.Contains(string(res.Body), "Reply not sent") {
			t.Fatalf("%s reply: body %s", name, res.Body)
		}
		b.postWith(t, convPath(app, conv.ID, "messages"), url.Values{"body": {body}}, http.Header{"Accept": {"application/json"}}).
			wantError(t, http.StatusBadRequest, "bad_request")
	}
	// Exactly at the limit is fine; past the body limit is refused whole.
	big := b.post(t, convPath(app, conv.ID, "messages"), url.Values{"body": {strings.Repeat("a", 70<<10)}})
	if big.Status != http.StatusRequestEntityTooLarge && big.Status != http.StatusBadRequest {
		t.Fatalf("70 KiB reply = %d, want 413 or 400", big.Status)
	}
	b.post(t, convPath(app, "cnv_doesnotexist", "messages"), url.Values{"body": {"hi"}}).wantStatus(t, http.StatusNotFound)
	ts.wantState(t, before, "refused replies")
	conv.Widget.ping()
	b.post(t, convPath(app, conv.ID, "messages"), url.Values{"body": {strings.Repeat("é", 2000)}}).wantStatus(t, http.StatusSeeOther)
}

func TestDashboardStatus(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	conv := ts.converse(t, fields(app), "hi")
	status := func() string {
		t.Helper()
		var s struct{ Status string }
		ts.api(t, app.APIKey, http.MethodGet, "/conversations/"+conv.ID, nil).decode(t, &s)
		return s.Status
	}

	b.post(t, convPath(app, conv.ID, "status"), url.Values{"status": {"closed"}}).wantRedirect(t, convPath(app, conv.ID)+"?status=closed")
	if s := status(); s != "closed" {
		t.Fatalf("status = %q after closing", s)
	}
	page := b.get(t, convPath(app, conv.ID))
	if !strings.Contains(string(page.Body), `data-testid="status">closed`) || !strings.Contains(string(page.Body), `value="open"`) ||
		!strings.Contains(string(page.Body), ">Reopen<") {
		t.Fatalf("closed conversation page offers no reopen: %s", page.Body)
	}
	res := b.postWith(t, convPath(app, conv.ID, "status"), url.Values{"status": {"open"}}, http.Header{"Accept": {"application/json"}})
	res.wantStatus(t, http.StatusOK)
	if string(res.Body) != `{"status":"open"}`+"\n" || status() != "open" {
		t.Fatalf("reopen = %s, status %q", res.Body, status())
	}

	before := ts.state(t)
	for _, bad := range []string{"", "archived", "CLOSED", "open "} {
		res := b.post(t, convPath(app, conv.ID, "status"), url.Values{"status": {bad}})
		res.wantStatus(t, http.StatusBadRequest)
		if !strings.Contains(text(res.Body), `status must be "open" or "closed"`) {
			t.Fatalf("status %q: body %s", bad, res.Body)
		}
	}
	ts.wantState(t, before, "bad status changes")
}

func TestDashboardTyping(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	conv := ts.converse(t, fields(app), "hi")
	other := ts.converse(t, fields(app), "me too")

	for _, typing := range []bool{true, false} {
		b.post(t, convPath(app, conv.ID, "typing"), url.Values{"typing": {strconv.FormatBool(typing)}}).wantStatus(t, http.StatusNoContent)
		f := conv.Widget.expect("typing")
		if f.Typing != typing || f.Author != "agent" || f.AuthorName != "Ann" || f.ConversationID != conv.ID {
			t.Fatalf("widget got %s, want Ann typing=%v", f.raw, typing)
		}
	}
	for _, bad := range []string{"", "maybe", "yes please"} {
		b.post(t, convPath(app, conv.ID, "typing"), url.Values{"typing": {bad}}).wantStatus(t, http.StatusBadRequest)
	}
	conv.Widget.ping()
	other.Widget.ping()
}

// An inbox with more conversations than a page holds links to the older
// ones, and every conversation is on exactly one page.
func TestDashboardInboxPaging(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	ctx := context.Background()
	const total = 80 // a page is 50
	for i := range total {
		s, err := ts.DB.CreateSession(ctx, store.NewSession{AppID: app.ID, Kind: store.KindUser, IdentityKey: fmt.Sprintf("uid:u%d", i),
			UserID: fmt.Sprintf("u%d", i), ParentOrigin: shopOrigin, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.DB.AddUserMessage(ctx, store.UserMessage{AppID: app.ID, SubjectID: s.SubjectID, ClientMsgID: "m", Body: "hi"}); err != nil {
			t.Fatal(err)
		}
	}

	first := b.get(t, "/dashboard/apps/"+app.ID)
	first.wantStatus(t, http.StatusOK)
	page1 := rowIDs(convRows(first.Body))
	older := regexp.MustCompile(`href="([^"]*after=[^"]*)" data-testid="older-page"`).FindSubmatch(first.Body)
	if len(page1) != 50 || older == nil || bytes.Contains(first.Body, []byte(`data-testid="newest-page"`)) {
		t.Fatalf("first page: %d rows, older link %q; want 50 rows, an older link and no newest link", len(page1), older)
	}
	second := b.get(t, html.UnescapeString(string(older[1])))
	second.wantStatus(t, http.StatusOK)
	page2 := rowIDs(convRows(second.Body))
	if len(page2) != total-50 || bytes.Contains(second.Body, []byte(`data-testid="older-page"`)) ||
		!bytes.Contains(second.Body, []byte(`data-testid="newest-page"`)) {
		t.Fatalf("second page: %d rows; want %d, a newest link and no older link", len(page2), total-50)
	}
	seen := map[string]bool{}
	for _, id := range append(page1, page2...) {
		if seen[id] {
			t.Fatalf("%s is on both pages", id)
		}
		seen[id] = true
	}
	if len(seen) != total {
		t.Fatalf("%d conversations over both pages, want %d", len(seen), total)
	}

	for _, bad := range []string{"nope", "12", ".cnv_x", "x.cnv_x"} {
		b.get(t, "/dashboard/apps/"+app.ID+"?after="+url.QueryEscape(bad)).wantStatus(t, http.StatusBadRequest)
	}
}

// A long thread shows its latest messages, and the earlier ones on demand.
func TestDashboardEarlierMessages(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	ctx := context.Background()
	s, err := ts.DB.CreateSession(ctx, store.NewSession{AppID: app.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1",
		ParentOrigin: shopOrigin, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	conv := ""
	for i := 1; i <= 60; i++ { // a thread shows 50
		p, err := ts.DB.AddUserMessage(ctx, store.UserMessage{AppID: app.ID, SubjectID: s.SubjectID, ConversationID: conv,
			ClientMsgID: fmt.Sprintf("m%d", i), Body: fmt.Sprintf("message %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		conv = p.Conversation.ID
	}
	seqs := func(body []byte) []string {
		var out []string
		for _, m := range regexp.MustCompile(`data-testid="thread-message" data-seq="(\d+)"`).FindAllSubmatch(body, -1) {
			out = append(out, string(m[1]))
		}
		return out
	}
	page := b.get(t, convPath(app, conv))
	page.wantStatus(t, http.StatusOK)
	if got := seqs(page.Body); len(got) != 50 || got[0] != "11" || got[49] != "60" || testids(page.Body, "earlier-messages") != 1 {
		t.Fatalf("page shows %d messages (%v…), earlier button %d; want 11-60 and the button", len(got), got[:min(3, len(got))],
			testids(page.Body, "earlier-messages"))
	}
	for _, tt := range []struct {
		query, first, last string
		n                  int
	}{
		{"before_seq=11", "1", "10", 10},
		{"before_seq=60", "10", "59", 50},
		{"before_seq=1", "", "", 0},
	} {
		got := seqs(b.get(t, convPath(app, conv)+"?fragment=messages&"+tt.query).Body)
		if len(got) != tt.n || (tt.n > 0 && (got[0] != tt.first || got[len(got)-1] != tt.last)) {
			t.Errorf("%s gives %d messages %v…, want %d from %s to %s", tt.query, len(got), got[:min(3, len(got))], tt.n, tt.first, tt.last)
		}
	}
	for _, bad := range []string{"before_seq=0", "before_seq=x", "after_seq=-1", "after_seq="} {
		b.get(t, convPath(app, conv)+"?fragment=messages&"+bad).wantStatus(t, http.StatusBadRequest)
	}
}

// Behind a proxy the operator named, clients are told apart by
// X-Forwarded-For, as far as the proxy vouches: prepending addresses
// doesn't buy a fresh budget, nor does hopping within an IPv6 /64.
func TestDashboardSignInThrottleBehindProxy(t *testing.T) {
	ts := newTestServer(t, withStoppedThrottles(), func(c *Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	ann := ts.newOwner(t, "Ann")
	fail := func(xff string, want int) {
		t.Helper()
		b := ts.browser(t)
		res := b.postWith(t, "/login", url.Values{"email": {fmt.Sprintf("nobody-%d@example.com", rand.Int())}, "password": {"guess"}},
			http.Header{"X-Forwarded-For": {xff}})
		res.wantStatus(t, want)
	}
	for i := range 20 {
		fail(fmt.Sprintf("198.51.100.%d, 203.0.113.7", i), http.StatusUnauthorized)
	}
	fail("203.0.113.7", http.StatusTooManyRequests)
	// Another client behind the same proxy is not locked out.
	res := ts.browser(t).postWith(t, "/login", url.Values{"email": {ann.Email}, "password": {ann.Password}},
		http.Header{"X-Forwarded-For": {"203.0.113.8"}})
	res.wantStatus(t, http.StatusSeeOther)

	for i := range 20 {
		fail(fmt.Sprintf("2001:db8:aa:bb::%x", i+1), http.StatusUnauthorized)
	}
	fail("2001:db8:aa:bb:ffff::1", http.StatusTooManyRequests)
	fail("2001:db8:aa:bc::1", http.StatusUnauthorized)
}

func TestParseProxies(t *testing.T) {
	got, err := ParseProxies([]string{"10.0.0.0/8", " 192.0.2.1 ", "2001:db8::/32", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, n := range got {
		s = append(s, n.String())
	}
	if want := "10.0.0.0/8 192.0.2.1/32 2001:db8::/32 ::1/128"; strings.Join(s, " ") != want {
		t.Fatalf("ParseProxies = %v, want %s", s, want)
	}
	for _, bad := range []string{"", "10.0.0.0/33", "proxy.example.com", "10.0.0.1-10.0.0.9"} {
		if _, err := ParseProxies([]string{bad}); err == nil {
			t.Errorf("ParseProxies(%q) accepted", bad)
		}
		if _, err := New(Config{PublicURL: "http://127.0.0.1:1", SessionTTL: time.Hour, TrustedProxies: []string{bad}}, nil, nil, nil); err == nil {
			t.Errorf("web.New accepted trusted proxy %q", bad)
		}
	}
}
