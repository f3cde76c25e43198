package web

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
)

// never is a bucket that does not refill within a test.
const never = time.Hour

func withTrustedLocalProxy() serverOption {
	return func(c *Config) { c.TrustedProxies = []string{"127.0.0.1"} }
}

// wantRateLimited checks a 429 as every rate limit answers it and returns
// the retry time it gives.
func (r httpResult) wantRateLimited(t *testing.T) time.Duration {
	t.Helper()
	r.wantError(t, http.StatusTooManyRequests, "rate_limited")
	var body struct {
		Error struct {
			RetryAfterMS int64 `json:"retry_after_ms"`
		} `json:"error"`
	}
	r.decode(t, &body)
	ms := body.Error.RetryAfterMS
	if ms <= 0 {
		t.Fatalf("429 body %s has no retry_after_ms", r.Body)
	}
	secs, err := strconv.ParseInt(r.Header.Get("Retry-After"), 10, 64)
	if err != nil || secs != (ms+999)/1000 {
		t.Fatalf("Retry-After = %q, want %d (retry_after_ms %d rounded up to seconds)", r.Header.Get("Retry-After"), (ms+999)/1000, ms)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("429 has Cache-Control %q, want no-store", cc)
	}
	return time.Duration(ms) * time.Millisecond
}

// postSessionAs posts a session request as the client xff names (through
// a trusted proxy, or forged when there is none).
func (ts *testServer) postSessionAs(t *testing.T, xff string, body any) httpResult {
	t.Helper()
	hdr := http.Header{"Content-Type": {"application/json"}, "Origin": {ts.Origin}}
	if xff != "" {
		hdr.Set("X-Forwarded-For", xff)
	}
	return ts.do(t, http.MethodPost, "/api/widget/sessions", hdr, jsonBody(t, body))
}

// TestSessionsPerIP: an address gets its burst of sessions, then a 429
// that says when to come back, and gets in again once it waited that long.
// A forged X-Forwarded-For changes nothing when no proxy is trusted.
func TestSessionsPerIP(t *testing.T) {
	ts := newTestServer(t, withLimits(func(l *Limits) {
		// 3 s: the burst and the refusals below must all fit in one
		// refill, also on a busy machine under the race detector.
		l.SessionsPerIP = ratelimit.Rate{Burst: 2, Every: 3 * time.Second}
	}))
	app := ts.newApp(t, store.ModeEnforced)
	ts.session(t, fields(app))
	ts.session(t, verifiedUser(app, "u1"))
	before := ts.count(t, `SELECT count(*) FROM sessions`)
	wait := ts.postSession(t, fields(app)).wantRateLimited(t)
	if wait > 3*time.Second {
		t.Fatalf("retry after %v, want at most the 3 s refill", wait)
	}
	for _, forged := range []string{"203.0.113.9", "198.51.100.1, 203.0.113.10", "2001:db8::1"} {
		ts.postSessionAs(t, forged, fields(app)).wantRateLimited(t)
	}
	if n := ts.count(t, `SELECT count(*) FROM sessions`); n != before {
		t.Fatalf("refused requests stored sessions: %d, want %d", n, before)
	}
	time.Sleep(wait)
	ts.session(t, fields(app))
}

// TestSessionsPerIPBehindProxy: behind a trusted proxy each client counts
// by the nearest address the proxy did not add; IPv6 clients count by /64.
func TestSessionsPerIPBehindProxy(t *testing.T) {
	ts := newTestServer(t, withTrustedLocalProxy(), withLimits(func(l *Limits) {
		l.SessionsPerIP = ratelimit.Rate{Burst: 1, Every: never}
	}))
	app := ts.newApp(t, store.ModeEnforced)
	ok := func(xff string) {
		t.Helper()
		if res := ts.postSessionAs(t, xff, fields(app)); res.Status != http.StatusCreated {
			t.Fatalf("as %q: %d %s, want 201", xff, res.Status, res.Body)
		}
	}
	ok("203.0.113.5")
	ts.postSessionAs(t, "203.0.113.5", fields(app)).wantRateLimited(t)
	// What the client itself put in front of its address is not believed.
	ts.postSessionAs(t, "198.51.100.7, 203.0.113.5", fields(app)).wantRateLimited(t)
	ok("203.0.113.6") // another client

	ok("2001:db8:1:2::1")
	ts.postSessionAs(t, "2001:db8:1:2:ffff::9", fields(app)).wantRateLimited(t) // the same /64
	ok("2001:db8:1:3::1")
}

// TestSessionsPerApp: an app gets its burst of sessions from all addresses
// together; another app is not affected, and requests refused for another
// reason cost the app nothing.
func TestSessionsPerApp(t *testing.T) {
	ts := newTestServer(t, withTrustedLocalProxy(), withLimits(func(l *Limits) {
		l.SessionsPerApp = ratelimit.Rate{Burst: 2, Every: never}
	}))
	app, other := ts.newApp(t, store.ModeEnforced), ts.newApp(t, store.ModeEnforced)
	for i := range 5 { // wrong hashes: refused before any session is made
		ts.postSessionAs(t, "203.0.113."+strconv.Itoa(i), fields(app, "user_id", "u1", "user_hash", strings.Repeat("0", 64))).
			wantError(t, http.StatusUnauthorized, "identity_hash_invalid")
	}
	for i, xff := range []string{"203.0.113.1", "203.0.113.2"} {
		if res := ts.postSessionAs(t, xff, fields(app)); res.Status != http.StatusCreated {
			t.Fatalf("session %d: %d %s, want 201", i+1, res.Status, res.Body)
		}
	}
	res := ts.postSessionAs(t, "203.0.113.3", fields(app))
	res.wantRateLimited(t)
	if !strings.Contains(string(res.Body), "this site") {
		t.Fatalf("per-app 429 %s does not say it is the site's limit", res.Body)
	}
	if res := ts.postSessionAs(t, "203.0.113.3", fields(other)); res.Status != http.StatusCreated {
		t.Fatalf("another app: %d %s, want 201", res.Status, res.Body)
	}
	// Verified users are not charged: a flood of anonymous requests that
	// spent the app's budget must not lock the site's real users out.
	for i := range 3 {
		if res := ts.postSessionAs(t, "203.0.113.4", verifiedUser(app, "u"+strconv.Itoa(i))); res.Status != http.StatusCreated {
			t.Fatalf("verified user %d after the budget was spent: %d %s, want 201", i, res.Status, res.Body)
		}
	}
}

// TestSessionsPerAppAcrossNodes: the app's budget is one for every node
// sharing the database.
func TestSessionsPerAppAcrossNodes(t *testing.T) {
	limit := withLimits(func(l *Limits) { l.SessionsPerApp = ratelimit.Rate{Burst: 2, Every: never} })
	a := newTestServer(t, limit)
	b := a.secondNode(t, limit)
	app := a.newApp(t, store.ModeEnforced)
	a.session(t, fields(app))
	b.session(t, fields(app))
	a.postSession(t, fields(app)).wantRateLimited(t)
	b.postSession(t, fields(app)).wantRateLimited(t)
}

// TestEndSessionsPerIP: ending sessions shares the address's session
// budget, so made-up tokens can't keep the database's writer busy.
func TestEndSessionsPerIP(t *testing.T) {
	ts := newTestServer(t, withLimits(func(l *Limits) {
		l.SessionsPerIP = ratelimit.Rate{Burst: 2, Every: never}
	}))
	hdr := http.Header{"Origin": {ts.Origin}, "Authorization": {"Bearer pst_" + strings.Repeat("A", 43)}}
	for range 2 {
		ts.do(t, http.MethodDelete, "/api/widget/session", hdr, nil).wantError(t, http.StatusUnauthorized, "invalid_token")
	}
	ts.do(t, http.MethodDelete, "/api/widget/session", hdr, nil).wantRateLimited(t)
}

// TestSocketOpensPerIP: too many socket opens from one address are
// refused with a JSON 429 before the upgrade.
func TestSocketOpensPerIP(t *testing.T) {
	ts := newTestServer(t, withLimits(func(l *Limits) {
		l.SocketOpensPerIP = ratelimit.Rate{Burst: 2, Every: never}
	}))
	app := ts.newApp(t, store.ModeEnforced)
	s := ts.session(t, fields(app))
	ts.connect(t, s.Token)
	ts.connect(t, s.Token)
	conn, res, err := ts.dial(ts.Origin)
	if err == nil {
		conn.Close()
		t.Fatal("a third socket from the address was upgraded")
	}
	if res == nil {
		t.Fatalf("dial: %v, want a 429 response", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	httpResult{Status: res.StatusCode, Header: res.Header, Body: body}.wantRateLimited(t)
}

// TestSocketsPerSubject: a subject holds at most Chat.Sockets sockets,
// whatever sessions they come from; the next is told rate_limited, with a
// retry hint, and closed with 4008. Another user is not affected.
func TestSocketsPerSubject(t *testing.T) {
	ts := newTestServer(t, withLimits(func(l *Limits) { l.Chat.Sockets = 2 }))
	app := ts.newApp(t, store.ModeEnforced)
	ann1, ann2 := ts.session(t, verifiedUser(app, "ann")), ts.session(t, verifiedUser(app, "ann"))
	first := ts.connect(t, ann1.Token)
	ts.connect(t, ann2.Token)

	c := ts.open(t)
	c.send(map[string]any{"type": "auth", "token": ann2.Token})
	if f := c.expectError("rate_limited"); f.RetryAfterMS <= 0 {
		t.Fatalf("refusal %s has no retry_after_ms", f.raw)
	}
	c.expectClose(chat.CloseRateLimited)

	ts.connect(t, ts.session(t, verifiedUser(app, "bob")).Token).ping()
	first.ping() // the refused socket cost the others nothing
}

// nextNot reads frames, skipping those of the given types (fan-out from
// the subject's other socket), and returns the first other one.
func (c *wsClient) nextNot(skip ...string) serverFrame {
	c.t.Helper()
	for {
		f := c.next()
		if !strings.Contains(","+strings.Join(skip, ",")+",", ","+f.Type+",") {
			return f
		}
	}
}

// TestMessagesPerSubject: messages are paced per subject across all of its
// sockets; the refused send gets rate_limited with its client_msg_id and a
// retry time after which it goes through. Another subject is unaffected.
func TestMessagesPerSubject(t *testing.T) {
	ts := newTestServer(t, withLimits(func(l *Limits) {
		// 2 s: three commits and a refusal must fit in one refill, also
		// on a busy machine.
		l.Chat.Messages = ratelimit.Rate{Burst: 3, Every: 2 * time.Second}
	}))
	app := ts.newApp(t, store.ModeEnforced)
	a := ts.connect(t, ts.session(t, verifiedUser(app, "ann")).Token)
	b := ts.connect(t, ts.session(t, verifiedUser(app, "ann")).Token)
	bob := ts.connect(t, ts.session(t, verifiedUser(app, "bob")).Token)

	conv := a.startConversation("one")
	send := func(c *wsClient, id, body string) serverFrame {
		c.t.Helper()
		c.send(map[string]any{"type": "send", "conversation_id": conv, "client_msg_id": id, "body": body})
		return c.nextNot("message", "unread")
	}
	if f := send(b, "m2", "two"); f.Type != "ack" {
		t.Fatalf("second message: %s, want ack", f.raw)
	}
	if f := send(a, "m3", "three"); f.Type != "ack" {
		t.Fatalf("third message: %s, want ack", f.raw)
	}
	f := send(b, "m4", "four")
	if f.Type != "error" || f.Code != "rate_limited" || f.ClientMsgID != "m4" || f.RetryAfterMS <= 0 || f.RetryAfterMS > 2000 {
		t.Fatalf("fourth message from the subject's other socket: %s, want rate_limited for m4 with retry_after_ms in (0, 2000]", f.raw)
	}
	for range 3 { // another subject has a budget of its own
		bob.startConversation("hi")
	}
	time.Sleep(time.Duration(f.RetryAfterMS) * time.Millisecond)
	if f := send(b, "m4", "four"); f.Type != "ack" || f.Duplicate {
		t.Fatalf("after the retry time: %s, want a new ack", f.raw)
	}
	msgs := ts.apiMessages(t, app, conv)
	if len(msgs) != 4 {
		t.Fatalf("conversation has %d messages, want 4", len(msgs))
	}
}

// TestOversizedBodies: every route refuses a body over its limit, or over
// the 1 MB backstop, with 413 or 400, in JSON on the API, and stores
// nothing.
func TestOversizedBodies(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	w := ts.connect(t, ts.session(t, verifiedUser(app, "u1")).Token)
	conv := w.startConversation("hello")
	before := ts.state(t)
	sessions := ts.count(t, `SELECT count(*) FROM sessions`)

	huge := `{"app_id":"` + app.ID + `","pad":"` + strings.Repeat("x", 2<<20) + `"}`
	big := `{"body":"` + strings.Repeat("x", 100<<10) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		chunked                  bool
		status                   int
		code                     string
	}{
		{"session, 2 MB", http.MethodPost, "/api/widget/sessions", huge, false, http.StatusRequestEntityTooLarge, "request_entity_too_large"},
		{"session, 2 MB chunked", http.MethodPost, "/api/widget/sessions", huge, true, http.StatusBadRequest, "body_too_large"},
		{"session, 20 KB", http.MethodPost, "/api/widget/sessions", `{"app_id":"` + strings.Repeat("x", 20<<10) + `"}`, false, http.StatusBadRequest, "body_too_large"},
		{"reply, 2 MB", http.MethodPost, "/api/v1/conversations/" + conv + "/messages", huge, false, http.StatusRequestEntityTooLarge, "request_entity_too_large"},
		{"reply, 100 KB", http.MethodPost, "/api/v1/conversations/" + conv + "/messages", big, false, http.StatusBadRequest, "body_too_large"},
		{"reply, 100 KB chunked", http.MethodPost, "/api/v1/conversations/" + conv + "/messages", big, true, http.StatusBadRequest, "body_too_large"},
		{"status, 2 MB", http.MethodPatch, "/api/v1/conversations/" + conv, huge, false, http.StatusRequestEntityTooLarge, "request_entity_too_large"},
		{"typing, 2 MB chunked", http.MethodPost, "/api/v1/conversations/" + conv + "/typing", huge, true, http.StatusBadRequest, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", ts.Origin)
			req.Header.Set("Authorization", "Bearer "+app.APIKey)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(res.Body)
			res.Body.Close()
			httpResult{Status: res.StatusCode, Header: res.Header, Body: data}.wantError(t, tc.status, tc.code)
		})
	}
	// The dashboard's forms: 413, as a page, over its own 64 KiB limit
	// (100 KB) as well as over the 1 MB backstop (2 MB).
	for _, size := range []int{100 << 10, 2 << 20} {
		res := ts.do(t, http.MethodPost, "/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {ts.Origin},
			"Sec-Fetch-Site": {"same-origin"}}, bytes.NewReader(bytes.Repeat([]byte("a"), size)))
		if res.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d KB sign-in form: %d, want 413", size>>10, res.Status)
		}
	}

	ts.wantState(t, before, "oversized bodies")
	if n := ts.count(t, `SELECT count(*) FROM sessions`); n != sessions {
		t.Fatalf("sessions: %d, want %d", n, sessions)
	}
	w.ping()
}

// TestDefaultLimitsFitTheContractCheck: with the defaults, a burst of
// sessions and sockets from one address, like the contract check's or a
// person opening a dozen tabs, is not refused.
func TestDefaultLimitsFitTheContractCheck(t *testing.T) {
	ts := newTestServer(t, withLimits(func(l *Limits) { *l = Limits{} }))
	app := ts.newApp(t, store.ModeEnforced)
	for i := range 12 {
		s := ts.session(t, verifiedUser(app, "u"+strconv.Itoa(i%3)))
		ts.connect(t, s.Token).ping()
	}
	d := DefaultLimits()
	if d.SessionsPerIP.Burst < 12 || d.SocketOpensPerIP.Burst < 12 {
		t.Fatalf("DefaultLimits %+v", d)
	}
}
