package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/web"
)

// onNewDocument runs src in the tab's pages before any of their own
// scripts, as a script the host page includes ahead of the snippet would.
// It does not reach the chat frame, which is another site's document.
func onNewDocument(t *testing.T, tab context.Context, src string) {
	t.Helper()
	_, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: "if (window === top) {\n" + src + "\n}"})
	if err != nil {
		t.Fatal(err)
	}
}

// frameOpen is what the frame last heard from the loader about
// visibility: "true", "false", or "" before it heard anything.
var frameOpen = js[string](`document.body.dataset.open || ""`)

// openWidget clicks the launcher and waits until the frame knows it is open.
func openWidget(t *testing.T, tab, frame context.Context) {
	t.Helper()
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	eventually(t, frame, "the frame to be told it is open", frameOpen, func(s string) bool { return s == "true" })
}

// socketCount is how many widget sockets Parley has accepted so far.
func (e *env) socketCount() int {
	e.socketsMu.Lock()
	defer e.socketsMu.Unlock()
	return len(e.sockets)
}

// countInFrame installs a counter in the frame of every window message
// for which cond (a JS expression over the event e) holds, and returns a
// getter for the count.
func countInFrame(t *testing.T, frame context.Context, name, cond string) func(context.Context) (int, error) {
	t.Helper()
	do(t, frame, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`window.%[1]s = 0; addEventListener('message', e => { if (%[2]s) window.%[1]s++ })`, name, cond)))
	return js[int]("window." + name)
}

// stillAlice checks that the chat in frame is still Alice's and works: a
// message sent now is acked and stored as verified u_alice's, and no one
// else has a subject or more than the one session.
func (e *env) stillAlice(t *testing.T, frame context.Context, text string, before ...chatMessage) {
	t.Helper()
	want := append(slices.Clone(before), chatMessage{Author: "me", Text: text})
	send(t, frame, text)
	waitMessages(t, frame, want...)
	convs := e.conversations(t)
	if len(convs) != 1 || convs[0].User.UserID != "u_alice" || !convs[0].User.Verified {
		t.Fatalf("conversations = %+v, want one of verified u_alice", convs)
	}
	if got := e.messages(t, convs[0].ID); len(got) != len(want) || got[len(got)-1].Body != text {
		t.Fatalf("stored messages = %+v, want %d ending with %q", got, len(want), text)
	}
	if n := e.count(t, `SELECT count(*) FROM subjects WHERE user_id <> 'u_alice'`); n != 0 {
		t.Fatalf("%d subjects of someone other than u_alice, want 0", n)
	}
	if n := e.count(t, `SELECT count(*) FROM sessions`); n != 1 {
		t.Fatalf("%d sessions, want Alice's one", n)
	}
}

// A script on the host page sees the frame's ready message, nonce and all.
// Once the loader and the frame have their private channel, nothing it
// posts to the frame's window counts, even with that nonce: not another
// identity (with a hash that would pass), not a shutdown, not a visibility
// change, not a second channel.
func TestHostScriptWithTheNonceIsIgnored(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	onNewDocument(t, tab, `window.sniffed = [];
addEventListener('message', e => { if (e.data && e.data.type === 'ready') sniffed.push(e.data.nonce) });`)
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	first := chatMessage{Author: "me", Text: "Hello from Alice"}
	send(t, frame, first.Text)
	waitMessages(t, frame, first)

	nonce := eventually(t, tab, "the sniffed nonce", js[[]string](`window.sniffed`), func(n []string) bool { return len(n) > 0 })
	if len(nonce) != 1 || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(nonce[0]) {
		t.Fatalf("sniffed nonces %q, want one of 32 hex digits", nonce)
	}
	sockets := e.socketCount()
	arrived := countInFrame(t, frame, "hostile", fmt.Sprintf(`e.data && e.data.nonce === %q`, nonce[0]))
	do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
	const f = document.getElementById('parley-frame').contentWindow, nonce = %q, origin = %q;
	const stray = new MessageChannel();
	window.strayPort = stray.port1;
	f.postMessage({parley: 1, type: 'connect', nonce}, origin, [stray.port2]);
	f.postMessage({parley: 1, type: 'identity', nonce, page: location.origin + '/',
		settings: {user_id: 'u_mallory', name: 'Mallory', user_hash: %q}}, origin);
	f.postMessage({parley: 1, type: 'visibility', nonce, open: false}, origin);
	f.postMessage({parley: 1, type: 'shutdown', nonce}, origin);
	stray.port1.postMessage({parley: 1, type: 'shutdown'});
})()`, nonce[0], e.parleyURL, identity.UserHash(e.app.IdentitySecret, "u_mallory"))))
	eventually(t, frame, "the host script's messages to reach the frame", arrived, func(n int) bool { return n == 4 })

	e.stillAlice(t, frame, "Still me", first)
	if s, err := frameOpen(frame); err != nil || s != "true" {
		t.Errorf("frame open state = %q, %v; want it still open", s, err)
	}
	if n := e.socketCount(); n != sockets {
		t.Errorf("%d widget sockets opened in all, want still %d: the socket was closed", n, sockets)
	}
}

// A script on the host page that answers the frame's ready before the
// loader does, with a connect whose nonce is wrong, does not get the
// frame's channel: the frame waits for the loader's connect, whose nonce
// is right, and the chat is Alice's as her page's backend said.
func TestConnectWithAWrongNonceIsIgnored(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	// Its listener is added before the loader's, so its connect is posted,
	// and reaches the frame, first.
	onNewDocument(t, tab, fmt.Sprintf(`window.strayPorts = [];
addEventListener('message', e => {
	if (!e.data || e.data.type !== 'ready' || e.origin !== %[1]q) return;
	const stray = new MessageChannel();
	strayPorts.push(stray.port1);
	e.source.postMessage({parley: 1, type: 'connect', nonce: '0'.repeat(32)}, e.origin, [stray.port2]);
	stray.port1.postMessage({parley: 1, type: 'identity', settings: {user_id: 'u_mallory', user_hash: %[2]q}});
});`, e.parleyURL, identity.UserHash(e.app.IdentitySecret, "u_mallory")))
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`strayPorts.length`)); err != nil || n != 1 {
		t.Fatalf("the host script answered %d ready messages (%v), want 1", n, err)
	}
	e.stillAlice(t, frame, "Hello from Alice")
}

// evilPage is a page on another origin that a host page embeds (an ad, a
// third-party widget). It sprays the chat frame, through parent.frames,
// with every message the frame knows, with guessed nonces and a hash that
// would pass; and the host page with what the frame says to the loader.
const evilPage = `<!DOCTYPE html><title>ad</title><script>
const hash = %q;
let n = 0;
setInterval(() => {
	const nonce = (++n).toString(16).padStart(32, '0');
	for (let i = 0; i < parent.frames.length; i++) {
		const f = parent.frames[i];
		if (f === window) continue;
		f.postMessage({parley: 1, type: 'connect', nonce}, '*', [new MessageChannel().port2]);
		f.postMessage({parley: 1, type: 'identity', nonce, settings: {user_id: 'u_mallory', user_hash: hash}}, '*');
		f.postMessage({parley: 1, type: 'visibility', nonce, open: false}, '*');
		f.postMessage({parley: 1, type: 'shutdown', nonce}, '*');
	}
	parent.postMessage({parley: 1, type: 'ready', nonce}, '*');
	parent.postMessage({parley: 1, type: 'unread', count: 7}, '*');
	parent.postMessage({parley: 1, type: 'close'}, '*');
}, 20);
</script>`

// A cross-origin iframe on the host page gets nowhere with the chat frame,
// before the handshake or after it, nor with the loader.
func TestOtherFrameOnThePageIsIgnored(t *testing.T) {
	e := newEnv(t)
	ln := listen(t) // 127.0.0.1 on a third port: neither the host page's origin nor Parley's
	evilOrigin := "http://" + ln.Addr().String()
	serve(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, evilPage, identity.UserHash(e.app.IdentitySecret, "u_mallory"))
	}), nil)

	tab := e.newTab(t, "page")
	// In the page before the snippet, so it sprays during the handshake too.
	onNewDocument(t, tab, fmt.Sprintf(`window.fromEvil = 0;
addEventListener('message', e => { if (e.origin === %[1]q) fromEvil++ });
document.addEventListener('DOMContentLoaded', () => {
	const f = document.createElement('iframe');
	f.src = %[1]q + '/ad';
	document.body.prepend(f);
});`, evilOrigin))
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	sockets := e.socketCount()

	arrived := countInFrame(t, frame, "evil", fmt.Sprintf(`e.origin === %q`, evilOrigin))
	eventually(t, frame, "the other frame's messages to reach the chat frame", arrived, func(n int) bool { return n >= 40 })
	eventually(t, tab, "its messages to reach the host page", js[int](`fromEvil`), func(n int) bool { return n >= 30 })

	e.stillAlice(t, frame, "Hello from Alice")
	if s, err := frameOpen(frame); err != nil || s != "true" {
		t.Errorf("frame open state = %q, %v; want it still open", s, err)
	}
	if n := e.socketCount(); n != sockets {
		t.Errorf("%d widget sockets opened in all, want still %d", n, sockets)
	}
	// The loader took neither the fake close nor the fake unread count.
	host, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf(`[
		document.getElementById('parley-frame-wrap').style.display,
		document.querySelector('%s').style.display].join()`, badgeSel)))
	if err != nil || host != "block,none" {
		t.Errorf("chat, badge display = %q, %v; want block,none", host, err)
	}
}

// Reloading the chat frame gives a new document: it says ready again, and
// the loader sets up a new channel, sends the identity and the open state
// over it, and talks only over that one from then on.
func TestReloadedFrameReconnects(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	before := chatMessage{Author: "me", Text: "Before the reload"}
	send(t, frame, before.Text)
	waitMessages(t, frame, before)

	// Page.reload only works on a tab, so the frame reloads itself, as a
	// user's "Reload frame" would. It stays the same target.
	do(t, frame, chromedp.Evaluate[chromedp.Void](`window.e2eOldDocument = true; setTimeout(() => location.reload())`))
	eventually(t, frame, "the new frame document", js[bool](`!window.e2eOldDocument && document.readyState === 'complete'`),
		func(ok bool) bool { return ok })
	waitConnected(t, frame)
	waitMessages(t, frame, before) // the history is back
	eventually(t, frame, "the open state to be sent again", frameOpen, func(s string) bool { return s == "true" })

	after := chatMessage{Author: "me", Text: "After the reload"}
	send(t, frame, after.Text)
	waitMessages(t, frame, before, after)
	convs := e.conversations(t)
	if len(convs) != 1 || convs[0].User.UserID != "u_alice" {
		t.Fatalf("conversations = %+v, want one of u_alice", convs)
	}
	if got := e.messages(t, convs[0].ID); len(got) != 2 {
		t.Fatalf("stored messages = %+v, want both", got)
	}

	// Both directions of the new channel work: the loader's hide reaches
	// the frame, and the frame's close button reaches the loader.
	toggleChat(t, tab, frame)
	if s, _ := frameOpen(frame); s != "false" {
		t.Fatalf("frame open state after hiding = %q, want false", s)
	}
	openWidget(t, tab, frame)
	do(t, frame, chromedp.Click(chromedp.ID("close")))
	eventually(t, tab, "the close button to hide the chat", js[string](
		`document.getElementById('parley-frame-wrap').style.display`), func(s string) bool { return s == "none" })
}

// sentLog records the payload of every websocket frame that the frame of
// ctx sends from now on, one per line.
func sentLog(ctx context.Context) *logBuffer {
	l := &logBuffer{}
	frames := chromedp.Events(ctx, network.WebSocketFrameSent)
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

// sessionToken makes the frame authenticate its socket again and returns
// the token it sends.
func (e *env) sessionToken(t *testing.T, frame context.Context) string {
	t.Helper()
	sent := sentLog(frame)
	e.cutSockets()
	e.restoreSockets()
	re := regexp.MustCompile(`"type":"auth","token":"(pst_[^"]+)"`)
	got := eventually(t, frame, "the frame to authenticate again", func(context.Context) (string, error) {
		m := re.FindStringSubmatch(sent.String())
		if m == nil {
			return "", nil
		}
		return m[1], nil
	}, func(s string) bool { return s != "" })
	waitConnected(t, frame)
	return got
}

// authWith opens a widget socket from Parley's origin, as the frame does,
// and returns the error frame and close code that answer auth with token.
func (e *env) authWith(t *testing.T, token string) (string, int) {
	t.Helper()
	ws := "ws" + strings.TrimPrefix(e.parleyURL, "http") + "/api/widget/ws"
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), ws, http.Header{"Origin": {e.parleyURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteJSON(map[string]string{"type": "auth", "token": token}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	var f struct{ Type, Code string }
	for {
		_, data, err := conn.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return f.Code, ce.Code
		}
		if err != nil {
			t.Fatalf("reading the answer to auth: %v", err)
		}
		json.Unmarshal(data, &f)
	}
}

// Parley('shutdown') (a logout) ends the session on the server, not just in
// the page: the frame deletes it before the loader removes the frame, and
// its token is refused from then on.
func TestShutdownEndsTheSession(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	token := e.sessionToken(t, frame)
	if n := e.count(t, `SELECT count(*) FROM sessions`); n != 1 {
		t.Fatalf("%d sessions before the shutdown, want 1", n)
	}

	// The host page notes when the iframe goes.
	do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
	const f = document.getElementById('parley-frame');
	new MutationObserver(() => { if (!f.isConnected && !window.removedAfter) window.removedAfter = performance.now() - window.shutAt })
		.observe(document.body, {childList: true, subtree: true});
	window.shutAt = performance.now();
	Parley('shutdown');
	window.hiddenAtOnce = f.parentNode.style.display === 'none' && !document.querySelector('%s');
})()`, launcherSel)))
	if hidden, err := chromedp.Run(tab, chromedp.Evaluate[bool](`hiddenAtOnce`)); err != nil || !hidden {
		t.Errorf("chat hidden at once = %v, %v; want true", hidden, err)
	}
	eventually(t, tab, "the session to be deleted", func(context.Context) (int, error) {
		return e.count(t, `SELECT count(*) FROM sessions`), nil
	}, func(n int) bool { return n == 0 })
	if n := e.count(t, `SELECT count(*) FROM session_ends WHERE reason = ?`, store.EndShutdown); n != 1 {
		t.Errorf("%d shutdown session ends recorded, want 1", n)
	}
	// Removed when the frame answered, not at the loader's 1 s timeout.
	removed := eventually(t, tab, "the iframe to be removed", js[float64](`window.removedAfter || 0`),
		func(ms float64) bool { return ms > 0 })
	if removed >= 900 {
		t.Errorf("iframe removed %.0f ms after the shutdown, want it as soon as the frame answered", removed)
	}
	if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('iframe, [id^="parley-"]').length`)); err != nil || n != 0 {
		t.Errorf("%d iframes or parley elements left, %v; want none", n, err)
	}

	code, closed := e.authWith(t, token)
	if code != "unauthorized" || closed != chat.CloseSessionInvalid {
		t.Errorf("auth with the ended token = error %q, close %d; want unauthorized, %d", code, closed, chat.CloseSessionInvalid)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, e.parleyURL+"/api/widget/session", nil)
	req.Header.Set("Origin", e.parleyURL)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("ending the ended session again = %d, want 401", res.StatusCode)
	}
}

// A boot right after a shutdown, while the old frame is still ending its
// session, gets a frame of its own that works; the old one still goes.
func TestBootRightAfterShutdown(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, oldID := e.openChat(t, tab, "frame", "u_alice")
	first := chatMessage{Author: "me", Text: "Before logging out"}
	send(t, frame, first.Text)
	waitMessages(t, frame, first)

	do(t, tab, chromedp.Evaluate[chromedp.Void](`Parley('shutdown'); Parley('boot', window.parleySettings)`))
	frame, _ = e.chatFrame(t, tab, "new frame", oldID)
	waitConnected(t, frame)
	openWidget(t, tab, frame)
	waitMessages(t, frame, first)
	second := chatMessage{Author: "me", Text: "Back again"}
	send(t, frame, second.Text)
	waitMessages(t, frame, first, second)

	eventually(t, tab, "only the new frame to be left", js[[]string](
		`[...document.querySelectorAll('iframe')].map(f => f.id + ' ' + f.parentNode.id + ' ' + f.parentNode.style.display)`),
		func(got []string) bool { return slices.Equal(got, []string{"parley-frame parley-frame-wrap block"}) })
	eventually(t, tab, "the old session to be ended", func(context.Context) (int, error) {
		return e.count(t, `SELECT count(*) FROM session_ends WHERE reason = ?`, store.EndShutdown), nil
	}, func(n int) bool { return n == 1 })
	if n := e.count(t, `SELECT count(*) FROM sessions`); n != 1 {
		t.Errorf("%d sessions, want the new frame's one", n)
	}
}

// The widget says why when the server will not start a chat.
func TestWidgetShowsRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *env)
		user  string
		want  string
	}{
		{
			name: "app turned off",
			setup: func(t *testing.T, e *env) {
				if err := e.db.SetAppDisabled(t.Context(), e.app.ID, true); err != nil {
					t.Fatal(err)
				}
			},
			user: "u_alice",
			want: "Chat is turned off on this site.",
		},
		{
			name: "anonymous visitors refused",
			setup: func(t *testing.T, e *env) {
				_, err := e.db.UpdateApp(t.Context(), e.app.ID, store.AppSettings{Name: e.app.Name, Origins: e.app.Origins,
					IdentityMode: e.app.IdentityMode, RefuseAnonymous: true})
				if err != nil {
					t.Fatal(err)
				}
			},
			want: "Please sign in to chat with us.",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(t, e)
			tab := e.newTab(t, "page")
			navigate(t, tab, e.pageURL(e.hostURL(), tc.user))
			do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
			frame, _ := e.chatFrame(t, tab, "frame")
			do(t, frame, chromedp.WaitVisible(chromedp.CSS(errorSel)), chromedp.WaitNotVisible(chromedp.CSS(composerSel)))
			if msg, err := chromedp.Run(frame, chromedp.Text(chromedp.CSS(errorSel))); err != nil || msg != tc.want {
				t.Errorf("widget error = %q, %v; want %q", msg, err, tc.want)
			}
			for _, table := range []string{"sessions", "subjects"} {
				if n := e.count(t, "SELECT count(*) FROM "+table); n != 0 {
					t.Errorf("%d rows in %s, want 0", n, table)
				}
			}
		})
	}
}

// sessionRequests counts the session requests Parley answered with status.
func (e *env) sessionRequests(status int) int {
	return strings.Count(e.logs.String(), fmt.Sprintf("path=/api/widget/sessions status=%d ", status))
}

// noticeMatching waits until the frame's notice matches re and returns it.
func noticeMatching(t *testing.T, frame context.Context, re *regexp.Regexp) string {
	t.Helper()
	return eventually(t, frame, "a notice matching "+re.String(), js[string](
		`document.querySelector('[data-testid="notice"]').textContent`), re.MatchString)
}

// secondsIn returns N from a notice "… N s…".
func secondsIn(t *testing.T, notice string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(notice[strings.LastIndex(notice, " in ")+4:], "%d s", &n); err != nil {
		t.Fatalf("no seconds in notice %q: %v", notice, err)
	}
	return n
}

// A user who sends faster than Parley accepts is told so with the wait,
// and nothing is lost: each refused message is sent again after the
// server's hint, with the same client_msg_id.
func TestMessageRateLimitIsWaitedOut(t *testing.T) {
	// 2 s: four sends must meet an empty bucket, also on a busy machine.
	e := newEnvLimits(t, func(l *web.Limits) { l.Chat.Messages = ratelimit.Rate{Burst: 3, Every: 2 * time.Second} })
	tab := e.newTab(t, "page")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	want := []chatMessage{{Author: "me", Text: "Quick 0"}}
	send(t, frame, want[0].Text) // starts the conversation the rest go to
	waitMessages(t, frame, want...)

	do(t, frame, chromedp.Evaluate[chromedp.Void](`(() => {
	const c = document.getElementById('composer'), f = document.getElementById('form');
	for (let i = 1; i <= 4; i++) { c.value = 'Quick ' + i; f.requestSubmit(); }
})()`))
	for i := 1; i <= 4; i++ {
		want = append(want, chatMessage{Author: "me", Text: fmt.Sprintf("Quick %d", i)})
	}
	notice := noticeMatching(t, frame, regexp.MustCompile(`^You're sending messages quickly\. Sending again in \d+ s…$`))
	if n := secondsIn(t, notice); n < 1 || n > 2 {
		t.Errorf("notice %q, want 1 or 2 s: the limit refills a message every 2 s", notice)
	}
	waitMessages(t, frame, want...)
	noticeMatching(t, frame, regexp.MustCompile(`^$`))
	convs := e.conversations(t)
	if len(convs) != 1 || len(e.messages(t, convs[0].ID)) != 5 {
		t.Fatalf("want the 5 messages stored once each in one conversation")
	}
}

// A session request refused for coming too often is tried again when the
// server says, not on the frame's own backoff, and the user sees the wait.
func TestSessionRateLimitIsWaitedOut(t *testing.T) {
	e := newEnvLimits(t, func(l *web.Limits) { l.SessionsPerIP = ratelimit.Rate{Burst: 1, Every: 3 * time.Second} })
	tab := e.newTab(t, "page")
	_, frameID := e.openChat(t, tab, "frame", "u_alice")

	do(t, tab, chromedp.Reload())
	frame, _ := e.chatFrame(t, tab, "frame after reload", frameID)
	notice := noticeMatching(t, frame, regexp.MustCompile(`^Too many chats are starting from your network\. Trying again in \d+ s…$`))
	if n := secondsIn(t, notice); n < 1 || n > 3 {
		t.Errorf("notice %q, want 1 to 3 s", notice)
	}
	waitConnected(t, frame)
	noticeMatching(t, frame, regexp.MustCompile(`^$`))
	if n := e.sessionRequests(http.StatusTooManyRequests); n != 1 {
		t.Errorf("%d session requests refused with 429, want 1: the frame must wait as long as it was told", n)
	}
	if n := e.sessionRequests(http.StatusCreated); n != 2 {
		t.Errorf("%d sessions created, want 2", n)
	}
}

// A socket refused for reopening too often (an error frame, then close
// 4008) reconnects with the same session after the server's hint.
func TestSocketRefusalIsWaitedOut(t *testing.T) {
	e := newEnvLimits(t, func(l *web.Limits) { l.Chat.Opens = ratelimit.Rate{Burst: 1, Every: 3 * time.Second} })
	tab := e.newTab(t, "page")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")

	e.cutSockets() // the frame reconnects within a second, too soon
	e.restoreSockets()
	notice := noticeMatching(t, frame, regexp.MustCompile(`^Too many connections\. Trying again in \d+ s…$`))
	if n := secondsIn(t, notice); n < 1 || n > 3 {
		t.Errorf("notice %q, want 1 to 3 s", notice)
	}
	noticeMatching(t, frame, regexp.MustCompile(`^$`))
	waitConnected(t, frame)
	send(t, frame, "Back")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Back"})
	if n := e.socketCount(); n != 2 {
		t.Errorf("%d sockets since the cut, want 2: the refused one and the one after the wait", n)
	}
	if n := e.sessionRequests(http.StatusCreated); n != 1 {
		t.Errorf("%d sessions created, want 1: a refused socket keeps its session", n)
	}
}

// A socket closed because its session ended on the server (1008) gets one
// new session. If the server refuses that, the widget says why, and it
// never asks again in a loop.
func TestSessionEndedOnTheServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, e *env, token string)
		want string // the widget's error; "" when the chat goes on
	}{
		{
			name: "session ended",
			end: func(t *testing.T, e *env, token string) {
				if err := e.db.EndSession(t.Context(), token); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "app turned off",
			end: func(t *testing.T, e *env, _ string) {
				if err := e.db.SetAppDisabled(t.Context(), e.app.ID, true); err != nil {
					t.Fatal(err)
				}
			},
			want: "Chat is turned off on this site.",
		},
		{
			name: "identity secret replaced",
			end: func(t *testing.T, e *env, _ string) {
				if _, err := e.db.ReplaceIdentitySecret(t.Context(), e.app.ID); err != nil {
					t.Fatal(err)
				}
			},
			want: "We couldn't verify who you are, so this chat is unavailable.",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tab := e.newTab(t, "page")
			frame, _ := e.openChat(t, tab, "frame", "u_alice")
			first := chatMessage{Author: "me", Text: "Before"}
			send(t, frame, first.Text)
			waitMessages(t, frame, first)
			token := e.sessionToken(t, frame)

			tc.end(t, e, token)
			if tc.want == "" {
				eventually(t, frame, "a second session", func(context.Context) (int, error) {
					return e.sessionRequests(http.StatusCreated), nil
				}, func(n int) bool { return n == 2 })
				waitConnected(t, frame)
				e.stillAlice(t, frame, "After", first)
				return
			}
			do(t, frame, chromedp.WaitVisible(chromedp.CSS(errorSel)))
			if msg, err := chromedp.Run(frame, chromedp.Text(chromedp.CSS(errorSel))); err != nil || msg != tc.want {
				t.Errorf("widget error = %q, %v; want %q", msg, err, tc.want)
			}
			time.Sleep(1500 * time.Millisecond) // time for a loop to show
			if all, ok := strings.Count(e.logs.String(), "path=/api/widget/sessions "), e.sessionRequests(http.StatusCreated); all != 2 || ok != 1 {
				t.Errorf("%d session requests, %d of them created; want 2 and 1: one try after the end, no loop", all, ok)
			}
		})
	}
}
