package web

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/jobs"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/password"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
)

// The tests run a real Parley server (web.New, the real hub) over real
// HTTP on a real SQLite file. Nothing is mocked.

const (
	shopOrigin  = "https://shop.example.com"
	evilOrigin  = "https://evil.example.net"
	waitTimeout = 5 * time.Second // for polling and socket reads, never for speed
)

// testServer is one running Parley server with its own database file.
type testServer struct {
	URL    string // http://127.0.0.1:port, also Parley's public URL
	Origin string // the Origin Parley's own frame sends
	WSURL  string
	DB     *store.DB
	Hub    *chat.Hub
	Queue  *jobs.Queue
	dbPath string
	key    masterkey.Key
	logs   *logRecorder
}

type serverOption func(*Config)

func withSessionTTL(d time.Duration) serverOption {
	return func(c *Config) { c.SessionTTL = d }
}

// generousLimits are newTestServer's: tests make many sessions and sockets
// from 127.0.0.1 in a hurry, which real widgets do not.
func generousLimits() Limits {
	lots := ratelimit.Rate{Burst: 1 << 20, Every: time.Microsecond}
	return Limits{SessionsPerIP: lots, SessionsPerApp: lots, SocketOpensPerIP: lots,
		Chat: chat.Limits{Sockets: 1000, Opens: lots, Messages: lots}}
}

// withLimits changes some of the (generous) limits, for tests of a limit.
func withLimits(change func(*Limits)) serverOption {
	return func(c *Config) { change(&c.Limits) }
}

// newTestServer starts Parley on a fresh database. When the test ends it
// checks that the server still answers /healthz, that no request failed
// with an unexpected (logged) error, and that every socket shuts down.
func newTestServer(t *testing.T, opts ...serverOption) *testServer {
	t.Helper()
	return startTestServer(t, filepath.Join(t.TempDir(), "parley.db"), masterkey.Generate(), opts...)
}

// secondNode starts another server on ts's database file, as a second
// node sharing the database would be.
func (ts *testServer) secondNode(t *testing.T, opts ...serverOption) *testServer {
	t.Helper()
	return startTestServer(t, ts.dbPath, ts.key, opts...)
}

func startTestServer(t *testing.T, dbPath string, key masterkey.Key, opts ...serverOption) *testServer {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbPath, key)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })

	logs := &logRecorder{}
	log := slog.New(logs)
	hub := chat.NewHub(db, log)
	hub.AgentRecheck = 100 * time.Millisecond // so tests see a changed session or membership at once

	// The listener exists before the handler, so the public URL is known.
	srv := httptest.NewUnstartedServer(nil)
	cfg := Config{PublicURL: "http://" + srv.Listener.Addr().String(), SessionTTL: time.Hour, Limits: generousLimits()}
	for _, o := range opts {
		o(&cfg)
	}
	// As in `parley serve`: webhook events are queued and delivered.
	q, err := jobs.Open(ctx, jobs.Config{Store: db, Guard: cfg.WebhookGuard, Log: log})
	if err != nil {
		srv.Listener.Close()
		t.Fatalf("jobs.Open: %v", err)
	}
	db.UseOutbox(q)
	if err := q.Start(ctx); err != nil {
		srv.Listener.Close()
		t.Fatalf("jobs: %v", err)
	}
	t.Cleanup(func() { q.Stop(context.Background()) })
	h, err := New(cfg, db, hub, log)
	if err != nil {
		srv.Listener.Close()
		t.Fatalf("web.New: %v", err)
	}
	// As in `parley serve`; it stops when the test ends.
	if err := hub.WatchSessionEnds(t.Context(), chat.DefaultEndPoll); err != nil {
		srv.Listener.Close()
		t.Fatalf("WatchSessionEnds: %v", err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Errorf("hub.Shutdown: %v (a widget connection did not end)", err)
		}
	})

	ts := &testServer{URL: srv.URL, Origin: srv.URL, WSURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/widget/ws",
		DB: db, Hub: hub, Queue: q, dbPath: dbPath, key: key, logs: logs}
	// Runs first (cleanups are LIFO): whatever the test threw at it, the
	// server must still be healthy and must not have hit an internal error.
	t.Cleanup(func() {
		res := ts.do(t, http.MethodGet, "/healthz", nil, nil)
		if res.Status != http.StatusOK || string(res.Body) != "ok\n" {
			t.Errorf("after the test, GET /healthz = %d %q, want 200 ok", res.Status, res.Body)
		}
		if errs := logs.errors(); len(errs) > 0 {
			t.Errorf("server logged errors:\n%s", strings.Join(errs, "\n"))
		}
		if t.Failed() {
			t.Logf("server log:\n%s", strings.Join(logs.all(), "\n"))
		}
	})
	return ts
}

// logRecorder is a slog.Handler that keeps records in memory; it never
// calls t.Log, so late log lines from server goroutines are harmless.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	errs  []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, b.String())
	if rec.Level >= slog.LevelError {
		r.errs = append(r.errs, b.String())
	}
	return nil
}

func (r *logRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

func (r *logRecorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// contains reports whether a log line contains s.
func (r *logRecorder) contains(s string) bool {
	for _, l := range r.all() {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// rawDB opens the database file directly, to check what was (not) written.
func (ts *testServer) rawDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+ts.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("open raw db: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// count runs a SELECT count(*) … on the database file.
func (ts *testServer) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := ts.rawDB(t).QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Apps.

type testApp struct {
	ID, Secret, APIKey string
	Origins            []string
}

// newApp creates an app; origins default to shopOrigin.
func (ts *testServer) newApp(t *testing.T, mode string, origins ...string) testApp {
	t.Helper()
	if len(origins) == 0 {
		origins = []string{shopOrigin}
	}
	c, err := ts.DB.CreateApp(context.Background(), store.NewApp{Name: "Test shop", Origins: origins, IdentityMode: mode})
	if err != nil {
		t.Fatalf("CreateApp: %v", err)
	}
	return testApp{ID: c.App.ID, Secret: c.App.IdentitySecret, APIKey: c.APIKey, Origins: c.App.Origins}
}

// HTTP.

type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

// decode unmarshals the JSON body into v.
func (r httpResult) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response body %q is not the expected JSON: %v", r.Body, err)
	}
}

// errorCode checks the {"error":{"code","message"}} shape and returns the code.
func (r httpResult) errorCode(t *testing.T) string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error response Content-Type = %q, want JSON (body %q)", ct, r.Body)
	}
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	r.decode(t, &e)
	if e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body %q lacks {\"error\":{\"code\",\"message\"}}", r.Body)
	}
	return e.Error.Code
}

// wantError checks an error response's status and code.
func (r httpResult) wantError(t *testing.T, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d (body %s)", r.Status, status, r.Body)
	}
	if got := r.errorCode(t); got != code {
		t.Fatalf("error code = %q, want %q (body %s)", got, code, r.Body)
	}
}

func (ts *testServer) do(t *testing.T, method, path string, hdr http.Header, body io.Reader) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	maps.Copy(req.Header, hdr)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return httpResult{Status: res.StatusCode, Header: res.Header, Body: b}
}

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	if s, ok := v.(string); ok {
		return strings.NewReader(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return bytes.NewReader(b)
}

// Sessions.

// fields builds a session request for app: app_id and parent_origin plus
// the given key/value pairs. A nil value removes the key.
func fields(app testApp, kv ...any) map[string]any {
	m := map[string]any{"app_id": app.ID, "parent_origin": app.Origins[0]}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
			continue
		}
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// verifiedUser is the request of a user the owner's backend vouched for.
func verifiedUser(app testApp, userID string, kv ...any) map[string]any {
	return fields(app, append([]any{"user_id", userID, "user_hash", identity.UserHash(app.Secret, userID)}, kv...)...)
}

// postSession sends body (a value to marshal, or a raw string) to
// POST /api/widget/sessions from Parley's own origin.
func (ts *testServer) postSession(t *testing.T, body any) httpResult {
	t.Helper()
	return ts.postSessionFrom(t, ts.Origin, body)
}

func (ts *testServer) postSessionFrom(t *testing.T, origin string, body any) httpResult {
	t.Helper()
	hdr := http.Header{"Content-Type": {"application/json"}}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	return ts.do(t, http.MethodPost, "/api/widget/sessions", hdr, jsonBody(t, body))
}

type sessionJSON struct {
	Token        string    `json:"token"`
	ExpiresAt    time.Time `json:"expires_at"`
	Verified     bool      `json:"verified"`
	Anonymous    bool      `json:"anonymous"`
	VisitorToken string    `json:"visitor_token"`
}

// session creates a session and fails the test unless it is a 201.
func (ts *testServer) session(t *testing.T, body any) sessionJSON {
	t.Helper()
	res := ts.postSession(t, body)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /api/widget/sessions = %d %s, want 201", res.Status, res.Body)
	}
	var s sessionJSON
	res.decode(t, &s)
	if s.Token == "" {
		t.Fatalf("session response %s has no token", res.Body)
	}
	return s
}

// Server API.

func (ts *testServer) api(t *testing.T, key, method, path string, body any) httpResult {
	t.Helper()
	hdr := http.Header{}
	if key != "" {
		hdr.Set("Authorization", "Bearer "+key)
	}
	var r io.Reader
	if body != nil {
		hdr.Set("Content-Type", "application/json")
		r = jsonBody(t, body)
	}
	return ts.do(t, method, "/api/v1"+path, hdr, r)
}

// reply posts an agent reply through the server API.
func (ts *testServer) reply(t *testing.T, app testApp, convID, body string) chat.MessageJSON {
	t.Helper()
	res := ts.api(t, app.APIKey, http.MethodPost, "/conversations/"+convID+"/messages", map[string]any{"body": body, "author_name": "Ann"})
	if res.Status != http.StatusCreated {
		t.Fatalf("agent reply = %d %s, want 201", res.Status, res.Body)
	}
	var out struct{ Message chat.MessageJSON }
	res.decode(t, &out)
	return out.Message
}

// apiMessages lists a conversation's messages through the server API.
func (ts *testServer) apiMessages(t *testing.T, app testApp, convID string) []chat.MessageJSON {
	t.Helper()
	res := ts.api(t, app.APIKey, http.MethodGet, "/conversations/"+convID+"/messages", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET messages = %d %s, want 200", res.Status, res.Body)
	}
	var out struct{ Messages []chat.MessageJSON }
	res.decode(t, &out)
	return out.Messages
}

// Widget sockets.

// dial opens a widget socket with the given Origin header ("" sends none).
func (ts *testServer) dial(origin string) (*websocket.Conn, *http.Response, error) {
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	return d.Dial(ts.WSURL, hdr)
}

// wsClient is a widget socket as the chat frame would use it.
type wsClient struct {
	t       *testing.T
	conn    *websocket.Conn
	welcome serverFrame
}

// open dials from Parley's origin without authenticating.
func (ts *testServer) open(t *testing.T) *wsClient {
	t.Helper()
	conn, res, err := ts.dial(ts.Origin)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial widget socket: %v (status %d)", err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

// connect dials, authenticates with token and reads the welcome frame.
func (ts *testServer) connect(t *testing.T, token string) *wsClient {
	t.Helper()
	c := ts.open(t)
	c.send(map[string]any{"type": "auth", "token": token})
	c.welcome = c.expect("welcome")
	return c
}

// serverFrame holds the fields of every server frame type.
type serverFrame struct {
	Type           string                  `json:"type"`
	Code           string                  `json:"code"`
	Message        json.RawMessage         `json:"message"` // a string in error frames, an object otherwise
	ClientMsgID    string                  `json:"client_msg_id"`
	RetryAfterMS   int64                   `json:"retry_after_ms"`
	Duplicate      bool                    `json:"duplicate"`
	Verified       bool                    `json:"verified"`
	Anonymous      bool                    `json:"anonymous"`
	Unread         int64                   `json:"unread"`
	ExpiresAt      time.Time               `json:"expires_at"`
	Count          int64                   `json:"count"`
	ConversationID string                  `json:"conversation_id"`
	Conversations  []chat.ConversationJSON `json:"conversations"`
	Conversation   chat.ConversationJSON   `json:"conversation"`
	Messages       []chat.MessageJSON      `json:"messages"`
	HasMore        bool                    `json:"has_more"`
	Author         string                  `json:"author"`
	AuthorName     string                  `json:"author_name"`
	Typing         bool                    `json:"typing"`
	Status         string                  `json:"status"`        // agent socket conversation frames
	Presence       chat.PresenceJSON       `json:"presence"`      // welcome frames
	AgentsOnline   bool                    `json:"agents_online"` // presence frames
	Open           bool                    `json:"open"`          // presence frames
	// receipt frames
	AgentDeliveredSeq int64 `json:"agent_delivered_seq"`
	AgentReadSeq      int64 `json:"agent_read_seq"`
	raw               string
}

// msg returns the message object of an ack or message frame.
func (f serverFrame) msg(t *testing.T) chat.MessageJSON {
	t.Helper()
	var m chat.MessageJSON
	if err := json.Unmarshal(f.Message, &m); err != nil {
		t.Fatalf("frame %s has no message object: %v", f.raw, err)
	}
	return m
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatalf("marshal frame: %v", err)
	}
	c.sendRaw(websocket.TextMessage, b)
}

func (c *wsClient) sendRaw(kind int, data []byte) {
	c.t.Helper()
	if err := c.conn.WriteMessage(kind, data); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// next reads the next frame, failing the test if none comes in time.
func (c *wsClient) next() serverFrame {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	kind, data, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("reading frame: %v", err)
	}
	if kind != websocket.TextMessage {
		c.t.Fatalf("got a frame of kind %d, want text", kind)
	}
	var f serverFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("frame %q is not JSON: %v", data, err)
	}
	f.raw = string(data)
	return f
}

// expect reads the next frame and checks its type.
func (c *wsClient) expect(typ string) serverFrame {
	c.t.Helper()
	f := c.next()
	if f.Type != typ {
		c.t.Fatalf("got frame %s, want a %q frame", f.raw, typ)
	}
	return f
}

// expectError reads the next frame and checks it is an error with code.
func (c *wsClient) expectError(code string) serverFrame {
	c.t.Helper()
	f := c.expect("error")
	if f.Code != code {
		c.t.Fatalf("got error frame %s, want code %q", f.raw, code)
	}
	return f
}

// waitFor skips frames until one of type typ arrives.
func (c *wsClient) waitFor(typ string) serverFrame {
	c.t.Helper()
	for range 500 {
		if f := c.next(); f.Type == typ {
			return f
		}
	}
	c.t.Fatalf("no %q frame among the next 500", typ)
	return serverFrame{}
}

// expectClose reads until the server closes the socket and checks the code.
func (c *wsClient) expectClose(code int) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, data, err := c.conn.ReadMessage()
		if err == nil {
			continue // frames sent before the close
		}
		if !websocket.IsCloseError(err, code) {
			c.t.Fatalf("socket ended with %v (last frame %s), want close code %d", err, data, code)
		}
		c.conn.Close() // as a browser does once the server has closed
		return
	}
}

// ping proves the connection still works: a list frame is answered with
// the conversations frame, which must be the very next frame.
func (c *wsClient) ping() serverFrame {
	c.t.Helper()
	c.send(map[string]any{"type": "list"})
	return c.expect("conversations")
}

// sendMessage sends a message and returns the ack frame.
func (c *wsClient) sendMessage(convID, clientMsgID, body string) serverFrame {
	c.t.Helper()
	f := map[string]any{"type": "send", "client_msg_id": clientMsgID, "body": body}
	if convID != "" {
		f["conversation_id"] = convID
	}
	c.send(f)
	ack := c.expect("ack")
	if ack.ClientMsgID != clientMsgID {
		c.t.Fatalf("ack %s is for another client_msg_id, want %q", ack.raw, clientMsgID)
	}
	return ack
}

// startConversation opens a new conversation with one message and returns its id.
func (c *wsClient) startConversation(body string) string {
	c.t.Helper()
	ack := c.sendMessage("", fmt.Sprintf("start-%d", time.Now().UnixNano()), body)
	if ack.Conversation.ID == "" {
		c.t.Fatalf("ack %s has no conversation id", ack.raw)
	}
	return ack.Conversation.ID
}

// Dashboard.

// withLoopbackWebhooks lets webhooks reach receivers on 127.0.0.1, as
// an operator's --webhook-allow 127.0.0.0/8 does.
func withLoopbackWebhooks() serverOption {
	return func(c *Config) {
		g, err := webhooks.ParseAllow([]string{"127.0.0.0/8"})
		if err != nil {
			panic(err)
		}
		c.WebhookGuard = g
	}
}

func withSignup() serverOption {
	return func(c *Config) { c.Signup = true }
}

// withStoppedThrottles stops the sign-in throttles' clock: a test that
// counts a burst of failed sign-ins (each an argon2id hash, slow under the
// race detector on a busy machine) must not see a token refill midway.
func withStoppedThrottles() serverOption {
	stopped := time.Now()
	return func(c *Config) { c.ThrottleClock = func() time.Time { return stopped } }
}

func withOwnerTimeouts(idle, maxAge time.Duration) serverOption {
	return func(c *Config) { c.OwnerIdle, c.OwnerMaxAge = idle, maxAge }
}

// testOwner is a site owner with a dashboard account.
type testOwner struct {
	ID, Email, Name, Password string
}

// newOwner creates an owner as `parley owners create` does; the email is
// the name, lower-cased, at example.com.
func (ts *testServer) newOwner(t *testing.T, name string) testOwner {
	t.Helper()
	o := testOwner{Email: strings.ToLower(strings.ReplaceAll(name, " ", ".")) + "@example.com", Name: name,
		Password: "correct horse " + name}
	hash, err := password.Hash(o.Password)
	if err != nil {
		t.Fatalf("password.Hash: %v", err)
	}
	created, err := ts.DB.CreateOwner(context.Background(), o.Email, o.Name, hash)
	if err != nil {
		t.Fatalf("CreateOwner: %v", err)
	}
	o.ID = created.ID
	return o
}

// ownerApp creates an app (as newApp does) with o as its only member.
func (ts *testServer) ownerApp(t *testing.T, o testOwner, mode string, origins ...string) testApp {
	t.Helper()
	app := ts.newApp(t, mode, origins...)
	if err := ts.DB.AddMember(context.Background(), app.ID, o.ID); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	return app
}

const ownerCookie = "parley_owner"

// browser is a dashboard client that, like a browser, keeps cookies and
// sends Origin and Sec-Fetch-Site: same-origin on its POSTs. It does not
// follow redirects, so tests see them.
type browser struct {
	ts     *testServer
	hc     *http.Client
	cookie *string // when set, sent verbatim as the owner cookie instead of the jar's
}

func (ts *testServer) browser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatalf("cookie jar: %v", err)
	}
	return &browser{ts: ts, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// withCookie is a client that sends exactly this owner cookie value, as
// someone who copied (or kept) it would.
func (ts *testServer) withCookie(t *testing.T, value string) *browser {
	t.Helper()
	b := ts.browser(t)
	b.hc.Jar, b.cookie = nil, &value
	return b
}

// signIn signs o in through POST /login and returns the signed-in browser.
func (ts *testServer) signIn(t *testing.T, o testOwner) *browser {
	t.Helper()
	b := ts.browser(t)
	res := b.login(t, o.Email, o.Password, "")
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard" {
		t.Fatalf("sign-in of %s = %d Location %q, want 303 to /dashboard (body %s)", o.Email, res.Status, res.Header.Get("Location"), res.Body)
	}
	if b.token() == "" {
		t.Fatalf("sign-in of %s set no %s cookie", o.Email, ownerCookie)
	}
	return b
}

func (b *browser) login(t *testing.T, email, pw, next string) httpResult {
	t.Helper()
	return b.post(t, "/login", url.Values{"email": {email}, "password": {pw}, "next": {next}})
}

// token is the owner cookie the browser holds ("" for none).
func (b *browser) token() string {
	if b.cookie != nil {
		return *b.cookie
	}
	u, _ := url.Parse(b.ts.URL)
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == ownerCookie {
			return c.Value
		}
	}
	return ""
}

func (b *browser) get(t *testing.T, path string) httpResult {
	t.Helper()
	return b.do(t, http.MethodGet, path, nil, nil)
}

// post sends a form as the dashboard's own pages would.
func (b *browser) post(t *testing.T, path string, form url.Values) httpResult {
	t.Helper()
	return b.postWith(t, path, form, nil)
}

// postWith sends a form with extra (or overriding) headers.
func (b *browser) postWith(t *testing.T, path string, form url.Values, hdr http.Header) httpResult {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {b.ts.Origin}, "Sec-Fetch-Site": {"same-origin"}}
	for k, v := range hdr {
		if len(v) == 0 || v[0] == "" {
			h.Del(k)
			continue
		}
		h[k] = v
	}
	return b.do(t, http.MethodPost, path, h, strings.NewReader(form.Encode()))
}

func (b *browser) do(t *testing.T, method, path string, hdr http.Header, body io.Reader) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, b.ts.URL+path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	maps.Copy(req.Header, hdr)
	if b.cookie != nil && *b.cookie != "" {
		req.Header.Add("Cookie", ownerCookie+"="+*b.cookie)
	}
	res, err := b.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return httpResult{Status: res.StatusCode, Header: res.Header, Body: data}
}

// agentSocket dials an app's inbox socket with the browser's cookie and
// the given Origin ("" sends none).
func (b *browser) agentSocket(appID, origin string) (*websocket.Conn, *http.Response, error) {
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	if tok := b.token(); tok != "" {
		hdr.Set("Cookie", ownerCookie+"="+tok)
	}
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	return d.Dial("ws"+strings.TrimPrefix(b.ts.URL, "http")+"/dashboard/apps/"+appID+"/ws", hdr)
}

// inbox opens the app's inbox socket from Parley's origin and reads the
// welcome frame.
func (b *browser) inbox(t *testing.T, appID string) *wsClient {
	t.Helper()
	conn, res, err := b.agentSocket(appID, b.ts.Origin)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial inbox socket: %v (status %d)", err, status)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: t, conn: conn}
	c.welcome = c.expect("welcome")
	return c
}
