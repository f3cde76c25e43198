package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/password"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/web"
)

const (
	testTimeout  = 60 * time.Second // everything one test does in the browser
	waitTimeout  = 10 * time.Second // one condition that must become true
	pollInterval = 50 * time.Millisecond
)

// browserCtx is the one Chromium every test shares. Each test opens its tabs
// in browser contexts of their own (see newTab), so no cookies or storage
// leak from one test, or one user, to another.
var browserCtx context.Context

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	path := chromiumPath()
	if testing.Short() || path == "" {
		return pgtest.Main(m) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "parley-e2e-chromium-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// Nothing here needs the network, and the machine may have none.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, bound to ctx
		fmt.Fprintln(os.Stderr, "e2e: starting Chromium:", err)
		return 1
	}
	browserCtx = ctx
	return pgtest.Main(m) // stops the cluster test's PostgreSQL, if one started
}

// chromiumPath is $CHROMIUM_PATH, or Debian's Chromium, if it exists.
func chromiumPath() string {
	p := os.Getenv("CHROMIUM_PATH")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func requireBrowser(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test; skipped with -short")
	}
	if browserCtx == nil {
		t.Skip("no Chromium found; install chromium or set CHROMIUM_PATH")
	}
}

// env is one test's world: Parley with its own database and app, and a
// second server standing in for the site owner's website (the host page).
type env struct {
	db        *store.DB // Parley's database, for setting up what a test needs
	raw       *sql.DB   // Parley's database file, for checks the API cannot make
	app       store.App
	apiKey    string
	parleyURL string // Parley's origin, http://127.0.0.1:Q
	// tokensMade counts the identity JWTs the host's backend made for its
	// page's onTokenNeeded.
	tokensMade atomic.Int64
	hostPort   string
	logs       *logBuffer

	socketsCut atomic.Bool // refuse widget sockets
	socketsMu  sync.Mutex
	sockets    []net.Conn // widget sockets, for cutSockets

	hostSecret atomic.Pointer[string] // the identity secret the host page signs with, if not the app's first
}

// newEnv starts Parley and the host page server. The app allowlists origins,
// or, when none are given, the host page as hostURL names it.
func newEnv(t *testing.T, origins ...string) *env {
	t.Helper()
	return newEnvLimits(t, nil, origins...)
}

// newEnvLimits is newEnv with some of its (generous) limits changed: tests
// open many sessions and sockets from 127.0.0.1 in a hurry.
func newEnvLimits(t *testing.T, change func(*web.Limits), origins ...string) *env {
	t.Helper()
	requireBrowser(t)
	e := &env{logs: &logBuffer{}}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_LOG") != "" { // E2E_LOG=1 shows it always
			t.Logf("server and browser log:\n%s", e.logs)
		}
	})
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	ctx := t.Context()

	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := store.Open(ctx, path, masterkey.Generate())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	e.raw = raw

	// Both servers need their addresses before they are built: the app's
	// allowlist names the host page, and Parley needs its public URL.
	hostLn := listen(t)
	_, e.hostPort, _ = net.SplitHostPort(hostLn.Addr().String())
	parleyLn := listen(t)
	e.parleyURL = "http://" + parleyLn.Addr().String()

	if len(origins) == 0 {
		origins = []string{e.hostURL()}
	}
	created, err := db.CreateApp(ctx, store.NewApp{Name: "E2E shop", Origins: origins, IdentityMode: store.ModeEnforced})
	if err != nil {
		t.Fatal(err)
	}
	e.app, e.apiKey = created.App, created.APIKey

	lots := ratelimit.Rate{Burst: 1 << 20, Every: time.Microsecond}
	limits := web.Limits{SessionsPerIP: lots, SessionsPerApp: lots, SocketOpensPerIP: lots,
		Chat: chat.Limits{Sockets: 1000, Opens: lots, Messages: lots}}
	if change != nil {
		change(&limits)
	}
	hub := chat.NewHub(db, log)
	handler, err := web.New(web.Config{PublicURL: e.parleyURL, SessionTTL: time.Hour, Limits: limits}, db, hub, log)
	if err != nil {
		t.Fatal(err)
	}
	// As in `parley serve`; it stops when the test ends.
	if err := hub.WatchSessionEnds(ctx, chat.DefaultEndPoll); err != nil {
		t.Fatal(err)
	}
	serve(t, parleyLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.socketsCut.Load() && r.URL.Path == "/api/widget/ws" {
			http.Error(w, "sockets are cut", http.StatusServiceUnavailable)
			return
		}
		handler.ServeHTTP(w, r)
	}), func(c net.Conn, s http.ConnState) {
		if s == http.StateHijacked { // a widget socket
			e.socketsMu.Lock()
			e.sockets = append(e.sockets, c)
			e.socketsMu.Unlock()
		}
	})
	t.Cleanup(func() {
		// httptest does not wait for hijacked connections; the hub does.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hub.Shutdown(sctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
	})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", e.serveHostPage)
	// The site's backend, asked for a fresh identity JWT by its page.
	mux.HandleFunc("GET /jwt", func(w http.ResponseWriter, r *http.Request) {
		e.tokensMade.Add(1)
		w.Write([]byte(e.userJWT(r.URL.Query().Get("user"))))
	})
	serve(t, hostLn, mux, nil)
	return e
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serve runs h on ln until the test ends; connState, if not nil, sees
// every connection change.
func serve(t *testing.T, ln net.Listener, h http.Handler, connState func(net.Conn, http.ConnState)) {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ConnState = connState // Start wraps it
	srv.Start()
	t.Cleanup(srv.Close)
}

// cutSockets closes the widget sockets and refuses new ones until
// restoreSockets, as if they could not get through to Parley. Pages and
// session requests still work.
func (e *env) cutSockets() {
	e.socketsCut.Store(true)
	e.socketsMu.Lock()
	defer e.socketsMu.Unlock()
	for _, c := range e.sockets {
		c.Close()
	}
	e.sockets = nil
}

func (e *env) restoreSockets() { e.socketsCut.Store(false) }

// hostURL is the host page's origin as browsers see it. The page server
// listens on 127.0.0.1 like Parley, but "localhost" makes it another site,
// as a real shop and its chat host are; Chromium then runs the chat frame
// out of process, as a target of its own.
func (e *env) hostURL() string { return "http://localhost:" + e.hostPort }

// pageURL is the host page for a logged-in user (anonymous when userID is
// empty) at the given origin.
func (e *env) pageURL(origin, userID string) string {
	if userID == "" {
		return origin + "/"
	}
	return origin + "/?user=" + url.QueryEscape(userID)
}

// forgedPageURL is the page for a user whose user_hash was not made with
// the app's identity secret.
func (e *env) forgedPageURL(userID string) string {
	return e.pageURL(e.hostURL(), userID) + "&forge=1"
}

var hostPage = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>E2E shop</title><link rel="icon" href="data:,"></head>
<body>
<h1>E2E shop</h1>
<!-- The snippet a site owner pastes, with the settings their backend rendered. -->
<script>window.parleySettings = {{.Settings}};</script>
{{if .TokenURL}}<!-- A fresh identity JWT from the backend whenever the widget's was spent. -->
<script>window.tokensAsked = 0;
window.Parley = window.Parley || function () { (Parley.q = Parley.q || []).push(arguments); };
Parley('onTokenNeeded', function () { tokensAsked++; return fetch({{.TokenURL}}).then(function (r) { return r.text(); }); });</script>{{end}}
<script async src="{{.WidgetURL}}"></script>
</body>
</html>
`))

// useIdentitySecret makes the host page sign with secret from now on, as a
// site owner's servers do once they have the new secret after a rotation.
func (e *env) useIdentitySecret(secret string) { e.hostSecret.Store(&secret) }

// serveHostPage plays the site owner's backend: for ?user=ID it vouches for
// that user with identity.UserHash, or with a wrong secret when ?forge is set.
// ?name= sets the user's display name. With ?jwt it vouches with a
// single-use identity JWT (a fresh jti for every page) instead.
func (e *env) serveHostPage(w http.ResponseWriter, r *http.Request) {
	settings := map[string]string{"app_id": e.app.ID}
	tokenURL := ""
	if id := r.URL.Query().Get("user"); id != "" && r.URL.Query().Has("jwt") {
		settings["user_jwt"] = e.userJWT(id)
		if r.URL.Query().Has("tokens") {
			tokenURL = "/jwt?user=" + url.QueryEscape(id)
		}
	} else if id != "" {
		secret := e.app.IdentitySecret
		if s := e.hostSecret.Load(); s != nil {
			secret = *s
		}
		if r.URL.Query().Has("forge") {
			secret = "not-the-identity-secret"
		}
		settings["user_id"] = id
		settings["name"] = "User " + id
		if name := r.URL.Query().Get("name"); name != "" {
			settings["name"] = name
		}
		settings["email"] = id + "@example.com"
		settings["user_hash"] = identity.UserHash(secret, id)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if l := r.URL.Query().Get("locale"); l != "" {
		settings["locale"] = l
	}
	err := hostPage.Execute(w, map[string]any{"Settings": settings, "WidgetURL": e.parleyURL + "/widget.js", "TokenURL": tokenURL})
	if err != nil {
		fmt.Fprintln(e.logs, "host page:", err)
	}
}

// userJWT is an identity JWT for userID, as the examples on the settings
// page make it: ten minutes, and a jti that makes it single-use.
func (e *env) userJWT(userID string) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": userID, "aud": e.app.ID, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": rand.Text(),
	})
	tok.Header["kid"] = e.app.IdentitySecretID
	signed, err := tok.SignedString([]byte(e.app.IdentitySecret))
	if err != nil {
		panic(err) // HS256 with a []byte key does not fail
	}
	return signed
}

// newTab opens a tab in a browser context of its own: a separate cookie
// jar and storage, like another person's browser. The tab, and everything
// done in it, ends after testTimeout at the latest.
func (e *env) newTab(t *testing.T, name string) context.Context {
	t.Helper()
	tctx, cancelTimeout := context.WithTimeout(browserCtx, testTimeout)
	ctx, cancel := chromedp.NewContext(tctx, chromedp.WithNewBrowserContext())
	t.Cleanup(func() {
		cancel()
		cancelTimeout()
	})
	if err := chromedp.Do(ctx); err != nil { // opens the tab, bound to ctx
		t.Fatalf("opening a tab: %v", err)
	}
	e.captureConsole(ctx, name)
	return ctx
}

func navigate(t *testing.T, tab context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigating to %s: %v", url, err)
	}
}

// chatFrame finds the tab's chat iframe and attaches to it. The frame is
// cross-site, so Chromium runs it as a target of its own that the tab's
// DOM does not reach. Targets in skip (the frame from before a reload) are
// passed over.
func (e *env) chatFrame(t *testing.T, tab context.Context, name string, skip ...target.ID) (context.Context, target.ID) {
	t.Helper()
	prefix := e.parleyURL + "/w/" + e.app.ID
	id := eventually(t, tab, "the chat frame target", func(ctx context.Context) (target.ID, error) {
		frames, err := childFrames(ctx)
		for _, info := range frames {
			if strings.HasPrefix(info.URL, prefix) && !slices.Contains(skip, info.TargetID) {
				return info.TargetID, nil
			}
		}
		return "", err
	}, func(id target.ID) bool { return id != "" })
	return e.attach(t, tab, id, name), id
}

// childFrames lists the iframe targets whose parent is the tab of ctx.
// Chromium names the parent by parentId from version 150 or so; before,
// only by parentFrameId, the frame that holds the iframe, which for an
// iframe in the page itself is the page's main frame, whose id is the
// tab's target id. Debian's Chromium has been either.
func childFrames(ctx context.Context) ([]*target.Info, error) {
	infos, err := chromedp.Targets(ctx)
	if err != nil {
		return nil, err
	}
	tabID := chromedp.FromContext(ctx).Target.TargetID
	var out []*target.Info
	for _, info := range infos {
		if info.Type == "iframe" && (info.ParentID == tabID || string(info.ParentFrameID) == string(tabID)) {
			out = append(out, info)
		}
	}
	return out, nil
}

// attach returns a context that runs actions in the frame target id.
func (e *env) attach(t *testing.T, tab context.Context, id target.ID, name string) context.Context {
	t.Helper()
	// Detach on cancel: closing an iframe target would close its whole tab.
	ctx, cancel := chromedp.NewContext(tab, chromedp.WithTargetID(id), chromedp.WithDetachOnCancel())
	t.Cleanup(cancel)
	// The first Run attaches, and the attachment lasts as long as the
	// context it is given, so it must be ctx itself, not a short-lived child.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("attaching to the chat frame: %v", err)
	}
	e.captureConsole(ctx, name)
	return ctx
}

// captureConsole copies a tab's or frame's console and uncaught exceptions
// into the log that a failing test prints.
func (e *env) captureConsole(ctx context.Context, name string) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			fmt.Fprintf(e.logs, "[%s] console.%s %s:%d %s\n", name, m.Type, m.URL, m.Line+1, m)
		}
	}()
}

// socketLog records the payload of every websocket frame that the page or
// frame of ctx receives from now on, one per line.
func socketLog(ctx context.Context) *logBuffer {
	l := &logBuffer{}
	frames := chromedp.Events(ctx, network.WebSocketFrameReceived) // subscribes now
	go func() {
		for ev, err := range frames {
			if err != nil {
				return
			}
			fmt.Fprintf(l, "%s\n", ev.Response.PayloadData)
		}
	}()
	return l
}

// eventually calls get until ok accepts what it returns, and fails the test
// with the last value and error if that does not happen within waitTimeout.
func eventually[T any](t *testing.T, ctx context.Context, what string, get func(context.Context) (T, error), ok func(T) bool) T {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	var last T
	var lastErr error
	for {
		v, err := get(wctx)
		switch {
		case err == nil && ok(v):
			return v
		case err == nil:
			last, lastErr = v, nil
		case wctx.Err() == nil: // not just the deadline cutting the call short
			lastErr = err
		}
		select {
		case <-wctx.Done():
			t.Fatalf("timed out waiting for %s; last value %+v, error %v", what, last, lastErr)
		case <-time.After(pollInterval):
		}
	}
}

// js is a getter for eventually that evaluates expr in a tab or frame.
func js[T any](expr string) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	}
}

// do runs actions with a deadline, so a missing element fails the test
// instead of hanging it.
func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(dctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// Selectors of the loader's and the frame's test hooks.
const (
	launcherSel = `[data-testid="parley-launcher"]`
	badgeSel    = `[data-testid="parley-unread"]`
	composerSel = `[data-testid="composer"]`
	sendSel     = `[data-testid="send"]`
	errorSel    = `[data-testid="widget-error"]`
)

// chatMessage is one row of the frame's thread.
type chatMessage struct {
	Author  string `json:"author"` // "me" or "agent"
	Text    string `json:"text"`
	Pending bool   `json:"pending"` // shown, but not acked by the server yet
}

var frameMessages = js[[]chatMessage](`[...document.querySelectorAll('[data-testid="message"]')].map(m => ({
	author: m.dataset.author,
	text: m.querySelector('.text').textContent,
	pending: m.dataset.pending === 'true',
}))`)

// waitMessages waits until the frame shows exactly want, in order.
func waitMessages(t *testing.T, frame context.Context, want ...chatMessage) {
	t.Helper()
	eventually(t, frame, fmt.Sprintf("messages %+v", want), frameMessages, func(got []chatMessage) bool {
		return slices.Equal(got, want)
	})
}

// openChat loads the host page in tab as userID, opens the chat with the
// launcher (which loads the chat script and adds the frame) and returns the
// chat frame once it is connected and knows it is open.
func (e *env) openChat(t *testing.T, tab context.Context, name, userID string) (context.Context, target.ID) {
	t.Helper()
	navigate(t, tab, e.pageURL(e.hostURL(), userID))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, id := e.chatFrame(t, tab, name)
	waitConnected(t, frame)
	eventually(t, frame, "the frame to be told it is open", frameOpen, func(s string) bool { return s == "true" })
	return frame, id
}

// waitConnected waits until the frame has authenticated its socket and
// received the user's conversation list, which it renders (hidden) even
// when it is empty.
func waitConnected(t *testing.T, frame context.Context) {
	t.Helper()
	eventually(t, frame, "the frame to list conversations", js[bool](`document.getElementById('list').childElementCount > 0`),
		func(ok bool) bool { return ok })
}

// toggleChat clicks the launcher, and returns once the frame has taken in
// the visibility message the loader sends it over their private channel
// (the frame marks its body with data-open).
func toggleChat(t *testing.T, tab, frame context.Context) {
	t.Helper()
	state := js[string](`document.body.dataset.open || "false"`)
	was, err := state(frame)
	if err != nil {
		t.Fatal(err)
	}
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	eventually(t, frame, "the frame to take in the visibility change", state, func(s string) bool { return s != was })
}

// send types text into the open widget and presses its send button.
func send(t *testing.T, frame context.Context, text string) {
	t.Helper()
	do(t, frame, chromedp.SendKeys(chromedp.CSS(composerSel), text), chromedp.Click(chromedp.CSS(sendSel)))
}

// pressEnter presses Enter in the focused element the way a keyboard does:
// a keyDown that carries the text, then a keyUp. (SendKeys sends the text
// as a separate char event, which cancelling the keydown does not stop.)
// While an IME is composing, browsers report the keyDown as keyCode 229.
func pressEnter(composing bool) chromedp.Action[chromedp.Void] {
	down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter",
		Text: "\r", UnmodifiedText: "\r", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
	if composing {
		down = input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeRawKeyDown, Key: "Enter", Code: "Enter",
			WindowsVirtualKeyCode: 229, NativeVirtualKeyCode: 13}
	}
	up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: "Enter", Code: "Enter",
		WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, p := range []input.DispatchKeyEventParams{down, up} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// imeCompose types text through an input method: it stays a composition
// in the focused element until imeCommit.
func imeCompose(text string) chromedp.Action[chromedp.Void] {
	n := int64(len([]rune(text)))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.ImeSetComposition, input.ImeSetCompositionParams{Text: text, SelectionStart: n, SelectionEnd: n})
		return err
	})
}

func imeCommit(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// apiConversation is the part of a server API conversation the tests read.
type apiConversation struct {
	ID   string `json:"id"`
	User struct {
		UserID   string `json:"user_id"`
		Verified bool   `json:"verified"`
	} `json:"user"`
}

type apiMessage struct {
	Author string `json:"author"`
	Body   string `json:"body"`
}

func (e *env) conversations(t *testing.T) []apiConversation {
	t.Helper()
	var out struct{ Conversations []apiConversation }
	e.api(t, http.MethodGet, "/api/v1/conversations", nil, &out)
	return out.Conversations
}

func (e *env) messages(t *testing.T, convID string) []apiMessage {
	t.Helper()
	var out struct{ Messages []apiMessage }
	e.api(t, http.MethodGet, "/api/v1/conversations/"+convID+"/messages", nil, &out)
	return out.Messages
}

// reply posts an agent message, as the site owner's backend would.
func (e *env) reply(t *testing.T, convID, body string) {
	t.Helper()
	e.api(t, http.MethodPost, "/api/v1/conversations/"+convID+"/messages",
		map[string]string{"body": body, "author_name": "Support"}, nil)
}

// api calls Parley's server API with the app's key and fails the test on
// anything but a 2xx answer.
func (e *env) api(t *testing.T, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.parleyURL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.apiKey)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// count runs a SELECT count(*) query against the database file.
func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.raw.QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// logBuffer collects the server's log and the browser's console; a failing
// test prints it. Goroutines may still write to it after the test ends.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// owner is a site owner's dashboard account.
type owner struct {
	ID, Email, Name, Password string
}

// createOwner adds a dashboard account, as `parley owners create` does,
// and makes it a member of apps.
func (e *env) createOwner(t *testing.T, name string, apps ...string) owner {
	t.Helper()
	first, _, _ := strings.Cut(name, " ")
	o := owner{Email: strings.ToLower(first) + "@owners.example.com", Name: name, Password: "pw-" + rand.Text()}
	hash, err := password.Hash(o.Password)
	if err != nil {
		t.Fatal(err)
	}
	created, err := e.db.CreateOwner(t.Context(), o.Email, o.Name, hash)
	if err != nil {
		t.Fatal(err)
	}
	o.ID = created.ID
	for _, id := range apps {
		if err := e.db.AddMember(t.Context(), id, o.ID); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// Selectors of the dashboard's test hooks.
const (
	convRowSel    = `[data-testid="conversation-row"]`
	threadMsgSel  = `[data-testid="thread-message"]`
	replyBoxSel   = `[data-testid="reply-box"]`
	replySendSel  = `[data-testid="reply-send"]`
	userTypingSel = `[data-testid="user-typing"]`
	statusBtnSel  = `[data-testid="status-toggle"]`
	formErrorSel  = `[data-testid="form-error"]`
)

// signIn opens a browser of the owner's own and signs in through the real
// /login form. It returns the tab once it shows the owner's app list.
func (e *env) signIn(t *testing.T, o owner, name string) context.Context {
	t.Helper()
	tab := e.newTab(t, name)
	e.submitLogin(t, tab, o.Email, o.Password)
	waitPath(t, tab, "/dashboard")
	return tab
}

// submitLogin fills in the sign-in form and submits it.
func (e *env) submitLogin(t *testing.T, tab context.Context, email, pw string) {
	t.Helper()
	navigate(t, tab, e.parleyURL+"/login")
	do(t, tab,
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), pw),
		chromedp.Click(chromedp.CSS(`[data-testid="sign-in"]`)))
}

// waitPath waits until the tab shows a page at path (the query aside).
func waitPath(t *testing.T, tab context.Context, path string) {
	t.Helper()
	eventually(t, tab, "the page "+path, js[string](`document.readyState === 'complete' ? location.pathname : ''`),
		func(p string) bool { return p == path })
}
