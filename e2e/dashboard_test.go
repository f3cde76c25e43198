package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

// An owner signs in through the form and opens the inbox. A verified user
// writes in the widget on the host page's origin: the conversation shows
// up in the open inbox, and the next message in the open thread, without
// a reload. Each side sees the other typing, the owner's reply reaches the
// widget live under the owner's name, markup stays text, and the owner can
// close and reopen the conversation.
func TestDashboardLiveInbox(t *testing.T) {
	e := newEnv(t)
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	dash := e.signIn(t, olivia, "dashboard")
	// The session cookie is HttpOnly: no script on the page can read it.
	if c, err := chromedp.Run(dash, chromedp.Evaluate[string](`document.cookie`)); err != nil || strings.Contains(c, "parley_owner") {
		t.Fatalf("document.cookie = %q, %v; the session cookie must not be readable by scripts", c, err)
	}
	do(t, dash, chromedp.Click(chromedp.CSS(`[data-testid="app-row"] a`)))
	waitPath(t, dash, "/dashboard/apps/"+e.app.ID)
	waitLive(t, dash)
	if rows, err := inboxRows(dash); err != nil || len(rows) != 0 {
		t.Fatalf("inbox rows = %+v, %v; want none yet", rows, err)
	}
	page := markPage(t, dash)

	user := e.newTab(t, "user")
	navigate(t, user, e.pageURL(e.hostURL(), "u_alice")+"&name=Alice+Martin")
	do(t, user, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, user, "frame")
	waitConnected(t, frame)
	first := "Hi! My teapot arrived with a chipped lid."
	send(t, frame, first)
	waitMessages(t, frame, chatMessage{Author: "me", Text: first})

	rows := eventually(t, dash, "the new conversation in the open inbox", inboxRows, func(r []inboxRow) bool {
		return len(r) == 1 && r[0].Preview == first
	})
	if want := (inboxRow{ID: rows[0].ID, Person: "Alice Martin", Badge: "Verified", Unread: true, Preview: first}); rows[0] != want {
		t.Errorf("inbox row = %+v, want %+v", rows[0], want)
	}
	page.unchanged(t)

	// Opening the conversation shows the thread and who wrote it, and
	// marks it read for every agent.
	conv := rows[0].ID
	do(t, dash, chromedp.Click(chromedp.CSS(convRowSel+` a`)))
	waitPath(t, dash, "/dashboard/apps/"+e.app.ID+"/conversations/"+conv)
	waitLive(t, dash)
	alice := func(body string) threadMessage { return threadMessage{Author: "Alice Martin", Body: body} }
	waitThread(t, dash, alice(first))
	details, err := chromedp.Run(dash, chromedp.Text(chromedp.CSS(`[data-testid="person-details"]`)))
	if err != nil || !strings.Contains(details, "u_alice@example.com") || !strings.Contains(details, "u_alice") ||
		!strings.Contains(details, "on "+e.hostURL()+"/") {
		t.Errorf("person details = %q, %v; want the email, user_id and the page the user is on", details, err)
	}
	eventually(t, dash, "the unread marker to clear", inboxRows, func(r []inboxRow) bool { return len(r) == 1 && !r[0].Unread })
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE id = ? AND agent_read_seq = last_seq`, conv); n != 1 {
		t.Errorf("conversation not marked read by agents after opening it")
	}
	page = markPage(t, dash)

	// The user types: the owner sees it until the message arrives.
	second := "It's order 1042."
	do(t, frame, chromedp.SendKeys(chromedp.CSS(composerSel), second))
	eventually(t, dash, "the user's typing indicator", userTyping, func(s string) bool { return s == "Alice Martin is typing…" })
	do(t, frame, chromedp.Click(chromedp.CSS(sendSel)))
	waitThread(t, dash, alice(first), alice(second))
	eventually(t, dash, "the typing indicator to go", userTyping, func(s string) bool { return s == "" })
	page.unchanged(t)

	// The owner replies. The widget shows the owner typing, then the
	// reply with the owner's name, live.
	reply := "Sorry about that! A new lid is on its way; no need to send anything back."
	do(t, dash, chromedp.SendKeys(chromedp.CSS(replyBoxSel), reply))
	eventually(t, frame, "the owner's typing indicator in the widget", agentTyping, func(s string) bool {
		return s == "Olivia Park is typing…"
	})
	do(t, dash, chromedp.Click(chromedp.CSS(replySendSel)))
	waitMessages(t, frame, chatMessage{Author: "me", Text: first}, chatMessage{Author: "me", Text: second},
		chatMessage{Author: "agent", Text: reply})
	eventually(t, frame, "the owner's name on the reply", frameAgentNames, func(n []string) bool {
		return slices.Equal(n, []string{"Olivia Park"})
	})
	eventually(t, frame, "the owner's typing indicator to go", agentTyping, func(s string) bool { return s == "" })
	waitThread(t, dash, alice(first), alice(second), threadMessage{Agent: true, Author: "Olivia Park", Body: reply})
	if v, err := chromedp.Run(dash, chromedp.Value(chromedp.CSS(replyBoxSel))); err != nil || v != "" {
		t.Errorf("reply box after sending = %q, %v; want it empty", v, err)
	}
	want := []apiMessage{{Author: "user", Body: first}, {Author: "user", Body: second}, {Author: "agent", Body: reply}}
	if got := e.messages(t, conv); !slices.Equal(got, want) {
		t.Errorf("stored messages = %+v, want %+v", got, want)
	}
	page.unchanged(t)

	screenshot(t, dash, "dashboard-inbox.png", 1100, 700, false)
	screenshot(t, dash, "dashboard-phone.png", 390, 800, true)
	// On a phone the open thread takes the whole width: the list is one
	// tap away, and nothing is wider than the screen.
	phone, err := chromedp.Run(dash, chromedp.Evaluate[map[string]any](`({
		list: getComputedStyle(document.querySelector('.inbox .list')).display,
		back: getComputedStyle(document.querySelector('.thread .back')).display,
		overflow: document.documentElement.scrollWidth > innerWidth,
	})`))
	if err != nil || phone["list"] != "none" || phone["back"] == "none" || phone["overflow"] != false {
		t.Errorf("phone layout = %v, %v; want the list hidden, the back link shown and no horizontal overflow", phone, err)
	}
	do(t, dash, chromedp.ResetViewport())

	// What users write is shown as text, live and after a reload.
	markup := `<img src=x onerror="window.pwned=1"><b>bold?</b>`
	send(t, frame, markup)
	waitThread(t, dash, alice(first), alice(second), threadMessage{Agent: true, Author: "Olivia Park", Body: reply}, alice(markup))
	eventually(t, dash, "the markup as the row's preview", inboxRows, func(r []inboxRow) bool { return len(r) == 1 && r[0].Preview == markup })
	injected := js[bool](`!!document.querySelector('#messages img, #messages b, #conversations img, #conversations b') || !!window.pwned`)
	if got, err := injected(dash); err != nil || got {
		t.Fatalf("markup rendered as HTML in the inbox (%v)", err)
	}
	page.unchanged(t)

	// Close, then reopen: each is a plain form post that comes back to
	// the conversation.
	for _, s := range []struct{ status, button string }{{"closed", "Reopen"}, {"open", "Close"}} {
		do(t, dash, chromedp.Click(chromedp.CSS(statusBtnSel)))
		eventually(t, dash, "the conversation "+s.status, statusView, func(v conversationStatus) bool {
			return v.Loaded && v.Query == "?status="+s.status && v.Label == s.status && v.Button == s.button
		})
		if n := e.count(t, `SELECT count(*) FROM conversations WHERE id = ? AND status = ?`, conv, s.status); n != 1 {
			t.Fatalf("conversation not stored as %s", s.status)
		}
		waitThread(t, dash, alice(first), alice(second), threadMessage{Agent: true, Author: "Olivia Park", Body: reply}, alice(markup))
	}
	waitLive(t, dash)
	if injected, err := injected(dash); err != nil || injected {
		t.Fatalf("markup rendered as HTML in the inbox after a reload (%v)", err)
	}
}

// A second owner, signed in in a browser of their own, gets a 404 for the
// first owner's app and conversation, wherever they try it, and sees none
// of it in their own inbox, not even on its live socket.
func TestDashboardOtherOwnerCannotOpen(t *testing.T) {
	e := newEnv(t)
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	bruno := e.createOwner(t, "Bruno Diaz")
	created, err := e.db.CreateApp(t.Context(), store.NewApp{Name: "Bruno's bikes", Origins: []string{"https://bikes.example.com"},
		IdentityMode: store.ModeEnforced, OwnerID: bruno.ID})
	if err != nil {
		t.Fatal(err)
	}
	brunoApp := created.App.ID

	user := e.newTab(t, "user")
	frame, _ := e.openChat(t, user, "frame", "u_alice")
	secret := "Please send it to 12 Elm Street."
	send(t, frame, secret)
	waitMessages(t, frame, chatMessage{Author: "me", Text: secret})
	convs := e.conversations(t)
	if len(convs) != 1 {
		t.Fatalf("%d conversations, want 1", len(convs))
	}
	conv := convs[0].ID

	oliviaTab := e.signIn(t, olivia, "olivia")
	navigate(t, oliviaTab, e.parleyURL+"/dashboard/apps/"+e.app.ID)
	waitLive(t, oliviaTab)
	eventually(t, oliviaTab, "the conversation in Olivia's inbox", inboxRows, func(r []inboxRow) bool {
		return len(r) == 1 && r[0].ID == conv
	})

	// Bruno's browser. A wrong password gets the form's error, not a session.
	brunoTab := e.newTab(t, "bruno")
	e.submitLogin(t, brunoTab, bruno.Email, "not-"+bruno.Password)
	msg := eventually(t, brunoTab, "the sign-in error", js[string](
		`(el => el ? el.textContent : '')(document.querySelector('`+formErrorSel+`'))`), func(s string) bool { return s != "" })
	if msg != "Email or password is incorrect." {
		t.Errorf("sign-in error = %q", msg)
	}
	e.submitLogin(t, brunoTab, bruno.Email, bruno.Password)
	waitPath(t, brunoTab, "/dashboard")
	apps, err := chromedp.Run(brunoTab, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-testid="app-row"] strong')].map(s => s.textContent)`))
	if err != nil || !slices.Equal(apps, []string{"Bruno's bikes"}) {
		t.Fatalf("Bruno's apps = %q, %v; want only his own", apps, err)
	}

	oliviaApp := e.parleyURL + "/dashboard/apps/" + e.app.ID
	for _, u := range []string{
		oliviaApp + "/conversations/" + conv,
		oliviaApp,
		oliviaApp + "/settings",
		e.parleyURL + "/dashboard/apps/" + brunoApp + "/conversations/" + conv, // his app, her conversation
		e.parleyURL + "/dashboard/apps/" + brunoApp + "/conversations/" + conv + "?fragment=messages&after_seq=0",
	} {
		resp, err := chromedp.Run(brunoTab, chromedp.NavigateResponse(u))
		if err != nil {
			t.Fatal(err)
		}
		body, err := chromedp.Run(brunoTab, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusNotFound || !strings.Contains(body, "Not Found") || strings.Contains(body, "Elm Street") {
			t.Errorf("Bruno opening %s: %d, page %q; want a 404 page that shows nothing of it", u, resp.Status, body)
		}
	}

	// Nor can he change it from his dashboard's pages: reply, close, mark read.
	for _, post := range []struct{ path, body string }{
		{"/messages", "body=Not+Olivia"},
		{"/status", "status=closed"},
		{"/read", "seq=1"},
	} {
		path := "/dashboard/apps/" + e.app.ID + "/conversations/" + conv + post.path
		status, err := chromedp.Run(brunoTab, chromedp.Evaluate[int](fmt.Sprintf(`fetch(%q, {method: 'POST',
			headers: {'Accept': 'application/json', 'Content-Type': 'application/x-www-form-urlencoded'}, body: %q}).then(r => r.status)`,
			path, post.body), chromedp.EvalAwaitPromise))
		if err != nil || status != http.StatusNotFound {
			t.Errorf("Bruno's POST %s: %d, %v; want 404", path, status, err)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE id = ? AND status = 'open' AND agent_read_seq = 0 AND last_seq = 1`, conv); n != 1 {
		t.Errorf("Olivia's conversation was changed by Bruno's requests")
	}

	// Nor can his inbox's script open her app's live socket.
	opened, err := chromedp.Run(brunoTab, chromedp.Evaluate[string](fmt.Sprintf(`new Promise(done => {
		const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + %q);
		ws.onopen = () => done('open');
		ws.onclose = ev => done('closed ' + ev.code);
	})`, "/dashboard/apps/"+e.app.ID+"/ws"), chromedp.EvalAwaitPromise))
	if err != nil || opened != "closed 1006" {
		t.Errorf("Bruno's socket to Olivia's app: %q, %v; want it refused", opened, err)
	}

	// His own inbox, every conversation, live: nothing of hers, before or
	// after the user writes again.
	brunoSocket := socketLog(brunoTab)
	navigate(t, brunoTab, e.parleyURL+"/dashboard/apps/"+brunoApp+"?status=all")
	waitLive(t, brunoTab)
	next := "Actually, make that 14 Elm Street."
	send(t, frame, next)
	// Olivia's inbox refreshes on her socket's frame; Bruno's socket, if
	// it leaked, would have had the same frame by then.
	eventually(t, oliviaTab, "the new message in Olivia's inbox", inboxRows, func(r []inboxRow) bool {
		return len(r) == 1 && r[0].Preview == next
	})
	if log := brunoSocket.String(); !strings.Contains(log, `"welcome"`) || strings.Contains(log, conv) || strings.Contains(log, "Elm Street") {
		t.Errorf("Bruno's inbox socket received:\n%s\nwant its welcome and nothing of Olivia's app", log)
	}
	text, err := chromedp.Run(brunoTab, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := inboxRows(brunoTab); err != nil || len(rows) != 0 || strings.Contains(text, "Elm Street") || strings.Contains(text, "u_alice") {
		t.Errorf("Bruno's inbox: rows %+v (%v), text %q; want nothing of Olivia's conversation", rows, err, text)
	}
}

// The owner rotates the identity secret and keeps the old one until they
// revoke it: sessions with old hashes still start, from a real widget and
// from the session API, and so do ones with the new secret. After the
// revoke, an old hash gets 401 and the widget says it can't verify the
// user, while the new secret, read from the settings page, works.
func TestDashboardSecretRotation(t *testing.T) {
	e := newEnv(t)
	oldSecret := e.app.IdentitySecret
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	tab := e.signIn(t, olivia, "settings")

	if status, code := e.widgetSession(t, "u_carol", identity.UserHash(oldSecret, "u_carol")); status != http.StatusCreated {
		t.Fatalf("session before rotating: %d %s, want 201", status, code)
	}
	do(t, tab, chromedp.Click(chromedp.CSS(`[data-testid="app-row"] a[href$="/settings"]`)))
	waitPath(t, tab, "/dashboard/apps/"+e.app.ID+"/settings")
	stats, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`[data-testid="identity-stats"]`)))
	if err != nil || !strings.Contains(stats, "100% verified") || !strings.Contains(stats, "1 verified") {
		t.Errorf("identity stats = %q, %v; want the one verified session", stats, err)
	}
	screenshot(t, tab, "dashboard-settings.png", 1100, 700, false)
	do(t, tab, chromedp.ResetViewport())

	// Rotate, keeping the old secret until it is revoked.
	do(t, tab, chromedp.SetValue(chromedp.CSS(`[data-testid="rotate-grace"]`), "0"),
		chromedp.Click(chromedp.CSS(`[data-testid="secret-rotate"]`)))
	eventually(t, tab, "the rotation notice", notice, func(s string) bool { return strings.HasPrefix(s, "Identity secret rotated.") })
	prev, err := chromedp.Run(tab, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-testid="previous-secret"]')].map(li => li.textContent)`))
	if err != nil || len(prev) != 1 || !strings.Contains(prev[0], "accepted until you revoke it") {
		t.Fatalf("previous secrets = %q, %v; want the old one, until revoked", prev, err)
	}
	masked, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`[data-testid="secret-value"]`)))
	if err != nil || strings.Trim(masked, "•") != "" {
		t.Fatalf("secret before reveal = %q, %v; want it masked", masked, err)
	}
	do(t, tab, chromedp.Click(chromedp.CSS(`[data-testid="secret-reveal"]`)))
	newSecret := eventually(t, tab, "the revealed secret", js[string](`document.querySelector('[data-testid="secret-value"]').textContent`),
		func(s string) bool { return s != masked })
	if newSecret == oldSecret || len(newSecret) < 32 {
		t.Fatalf("revealed secret %q: want a new secret", newSecret)
	}

	// Both secrets work while the old one is kept.
	for _, s := range []struct{ name, secret string }{{"old", oldSecret}, {"new", newSecret}} {
		if status, code := e.widgetSession(t, "u_carol", identity.UserHash(s.secret, "u_carol")); status != http.StatusCreated {
			t.Errorf("session with the %s secret before the revoke: %d %s, want 201", s.name, status, code)
		}
	}
	oldPage := e.newTab(t, "old hash")
	frame, _ := e.openChat(t, oldPage, "old hash frame", "u_alice") // the host page still signs with the old secret
	send(t, frame, "Signed with the old secret")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Signed with the old secret"})

	do(t, tab, chromedp.Click(chromedp.CSS(`[data-testid="secret-revoke"]`)))
	eventually(t, tab, "the revoke notice", notice, func(s string) bool { return strings.HasPrefix(s, "Secret revoked.") })
	if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="previous-secret"]').length`)); err != nil || n != 0 {
		t.Fatalf("%d previous secrets listed after the revoke (%v), want 0", n, err)
	}

	// The old hash is refused, over the API and in a fresh widget.
	if status, code := e.widgetSession(t, "u_carol", identity.UserHash(oldSecret, "u_carol")); status != http.StatusUnauthorized || code != "identity_hash_invalid" {
		t.Errorf("session with the old secret after the revoke: %d %s, want 401 identity_hash_invalid", status, code)
	}
	refused := e.newTab(t, "revoked hash")
	navigate(t, refused, e.pageURL(e.hostURL(), "u_alice"))
	do(t, refused, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ = e.chatFrame(t, refused, "revoked hash frame")
	do(t, frame, chromedp.WaitVisible(chromedp.CSS(errorSel)), chromedp.WaitNotVisible(chromedp.CSS(composerSel)))
	if msg, err := chromedp.Run(frame, chromedp.Text(chromedp.CSS(errorSel))); err != nil || !strings.Contains(msg, "verify") {
		t.Errorf("widget error = %q, %v; want the identity failure", msg, err)
	}

	// The site switches to the new secret: it works, in the API and the widget.
	if status, code := e.widgetSession(t, "u_carol", identity.UserHash(newSecret, "u_carol")); status != http.StatusCreated {
		t.Errorf("session with the new secret after the revoke: %d %s, want 201", status, code)
	}
	e.useIdentitySecret(newSecret)
	newPage := e.newTab(t, "new hash")
	frame, _ = e.openChat(t, newPage, "new hash frame", "u_alice")
	send(t, frame, "Signed with the new secret")
	// The same verified user: the conversation from before is theirs.
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Signed with the old secret"},
		chatMessage{Author: "me", Text: "Signed with the new secret"})
}

// widgetSession asks for a widget session as the chat frame on the host
// page would, and returns the status and the error code, if any.
func (e *env) widgetSession(t *testing.T, userID, hash string) (int, string) {
	t.Helper()
	b, err := json.Marshal(map[string]string{"app_id": e.app.ID, "parent_origin": e.hostURL(), "user_id": userID, "user_hash": hash})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.parleyURL+"/api/widget/sessions", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", e.parleyURL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Error struct{ Code string } `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Error.Code
}

// waitLive waits until the inbox's socket is up, so what happens from now
// on reaches the page live.
func waitLive(t *testing.T, tab context.Context) {
	t.Helper()
	eventually(t, tab, "the inbox to be live", js[string](`(el => el ? el.dataset.state || '' : '')(document.getElementById('live'))`),
		func(s string) bool { return s == "live" })
}

// pageMark is a value set on a page's window: still there later means the
// page has not been reloaded or left in between.
type pageMark struct {
	tab   context.Context
	value string
}

func markPage(t *testing.T, tab context.Context) pageMark {
	t.Helper()
	m := pageMark{tab: tab, value: rand.Text()}
	do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`window.e2eMark = %q`, m.value)))
	return m
}

func (m pageMark) unchanged(t *testing.T) {
	t.Helper()
	if got, err := chromedp.Run(m.tab, chromedp.Evaluate[string](`window.e2eMark || ''`)); err != nil || got != m.value {
		t.Fatalf("the page was reloaded (mark %q, %v)", got, err)
	}
}

// inboxRow is one conversation-row of the inbox, as the owner sees it.
type inboxRow struct {
	ID      string `json:"id"`
	Person  string `json:"person"`
	Badge   string `json:"badge"`
	Unread  bool   `json:"unread"`
	Preview string `json:"preview"`
}

var inboxRows = js[[]inboxRow](`[...document.querySelectorAll('` + convRowSel + `')].map(r => ({
	id: r.dataset.id,
	person: r.querySelector('.person').textContent,
	badge: r.querySelector('[data-testid="identity-badge"]').textContent,
	unread: !!r.querySelector('[data-testid="unread-marker"]'),
	preview: r.querySelector('.preview').textContent.replace(/\s+/g, ' ').trim(),
}))`)

// threadMessage is one thread-message of the open conversation.
type threadMessage struct {
	Agent  bool   `json:"agent"`
	Author string `json:"author"`
	Body   string `json:"body"`
}

var threadMessages = js[[]threadMessage](`[...document.querySelectorAll('` + threadMsgSel + `')].map(m => ({
	agent: m.classList.contains('agent'),
	author: m.querySelector('.meta').textContent.split(' · ')[0].trim(),
	body: m.querySelector('.body').textContent,
}))`)

// waitThread waits until the open conversation shows exactly want, in order.
func waitThread(t *testing.T, tab context.Context, want ...threadMessage) {
	t.Helper()
	eventually(t, tab, fmt.Sprintf("thread %+v", want), threadMessages, func(got []threadMessage) bool {
		return slices.Equal(got, want)
	})
}

// userTyping is the inbox's typing indicator for the user, "" when hidden.
var userTyping = js[string](`(el => el.hidden ? '' : el.textContent)(document.querySelector('` + userTypingSel + `'))`)

// agentTyping is the widget's typing indicator for the agent.
var agentTyping = js[string](`(el => el.hidden ? '' : el.textContent)(document.querySelector('[data-testid="typing"]'))`)

// frameAgentNames are the names the widget shows on agents' messages.
var frameAgentNames = js[[]string](`[...document.querySelectorAll('[data-testid="message"][data-author="agent"] .who')].map(w => w.textContent)`)

var notice = js[string](`(el => el ? el.textContent : '')(document.querySelector('[data-testid="notice"]'))`)

// conversationStatus is what the open conversation shows of its status.
type conversationStatus struct {
	Loaded bool   `json:"loaded"`
	Query  string `json:"query"`
	Label  string `json:"label"`
	Button string `json:"button"`
}

var statusView = js[conversationStatus](`({
	loaded: document.readyState === 'complete',
	query: location.search,
	label: document.querySelector('[data-testid="status"]').textContent,
	button: document.querySelector('` + statusBtnSel + `').textContent,
})`)

// maxScreenshot keeps the PNGs committed for the README small.
const maxScreenshot = 150 << 10

// screenshot captures the tab's viewport at width×height and checks it is
// a PNG of that size. With PARLEY_SCREENSHOTS=1 it also writes it to
// docs/screenshots/name, for the README (`make screenshots`).
func screenshot(t *testing.T, tab context.Context, name string, width, height int64, mobile bool) {
	t.Helper()
	screenshotAt(t, tab, name, width, height, mobile, "")
}

// screenshotAt is screenshot with the element of selector scrolled to the
// top ("" for the page's top).
func screenshotAt(t *testing.T, tab context.Context, name string, width, height int64, mobile bool, selector string) {
	t.Helper()
	var opts []chromedp.EmulateViewportOption
	if mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	scroll := `window.scrollTo(0, 0)`
	if selector != "" {
		scroll = fmt.Sprintf(`document.querySelector(%q).scrollIntoView()`, selector)
	}
	do(t, tab, chromedp.EmulateViewport(width, height, opts...),
		// The page scrolls the newest message into view and focuses the
		// reply box; show it from the top, at rest.
		chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); `+scroll))
	time.Sleep(300 * time.Millisecond) // the chat's short fade-ins end: a picture, not a timing
	buf, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if int64(cfg.Width) != width || int64(cfg.Height) != height {
		t.Errorf("screenshot %s is %dx%d, want %dx%d", name, cfg.Width, cfg.Height, width, height)
	}
	if len(buf) > maxScreenshot {
		t.Errorf("screenshot %s is %d bytes, want at most %d", name, len(buf), maxScreenshot)
	}
	if os.Getenv("PARLEY_SCREENSHOTS") != "1" {
		return
	}
	dir := filepath.Join("..", "docs", "screenshots") // go test runs in the package's directory
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", filepath.Join(dir, name), len(buf))
}

// A long thread opens at its latest messages; "Show earlier messages"
// brings the rest in above them, in order, and goes away at the first.
func TestDashboardEarlierMessages(t *testing.T) {
	e := newEnv(t)
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	ctx := t.Context()
	s, err := e.db.CreateSession(ctx, store.NewSession{AppID: e.app.ID, Kind: store.KindUser, IdentityKey: "uid:u_long",
		UserID: "u_long", ParentOrigin: e.hostURL(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const total = 120 // a thread shows 50 at first, and 50 more a click
	conv := ""
	for i := 1; i <= total; i++ {
		p, err := e.db.AddUserMessage(ctx, store.UserMessage{AppID: e.app.ID, SubjectID: s.SubjectID, ConversationID: conv,
			ClientMsgID: fmt.Sprintf("m%d", i), Body: fmt.Sprintf("message %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		conv = p.Conversation.ID
	}

	tab := e.signIn(t, olivia, "olivia")
	navigate(t, tab, e.parleyURL+"/dashboard/apps/"+e.app.ID+"/conversations/"+conv)
	waitLive(t, tab)
	bodies := js[[]string](`[...document.querySelectorAll('` + threadMsgSel + ` .body')].map(b => b.textContent)`)
	want := func(from int) []string {
		var out []string
		for i := from; i <= total; i++ {
			out = append(out, fmt.Sprintf("message %d", i))
		}
		return out
	}
	eventually(t, tab, "the latest 50 messages", bodies, func(got []string) bool { return slices.Equal(got, want(71)) })
	for _, from := range []int{21, 1} {
		do(t, tab, chromedp.Click(chromedp.CSS(`[data-testid="earlier-messages"]`)))
		eventually(t, tab, fmt.Sprintf("messages %d to %d", from, total), bodies, func(got []string) bool { return slices.Equal(got, want(from)) })
	}
	if shown, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(b => !!b && !b.hidden)(document.querySelector('[data-testid="earlier-messages"]'))`)); err != nil || shown {
		t.Fatalf("the button still shows at the first message (%v)", err)
	}
}

// When the sign-in ends (here: signed out from another tab of the same
// browser), the open inbox says so instead of silently going stale.
func TestDashboardSessionEndShown(t *testing.T) {
	e := newEnv(t)
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	tab := e.signIn(t, olivia, "olivia")
	navigate(t, tab, e.parleyURL+"/dashboard/apps/"+e.app.ID)
	waitLive(t, tab)
	status, err := chromedp.Run(tab, chromedp.Evaluate[int](`fetch('/logout', {method: 'POST', redirect: 'manual'}).then(r => r.type === 'opaqueredirect' ? 303 : r.status)`,
		chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusSeeOther {
		t.Fatalf("sign-out from the page = %d, %v", status, err)
	}
	msg := eventually(t, tab, "the inbox to say the session ended", js[string](`(el => el.dataset.state === 'ended' ? el.textContent : '')(document.getElementById('live'))`),
		func(s string) bool { return s != "" })
	if !strings.Contains(msg, "sign in again") {
		t.Fatalf("the inbox says %q", msg)
	}
}
