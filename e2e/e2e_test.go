package e2e

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

// A verified user sends a message: the frame shows it, the server acks it,
// it is stored and visible through the server API, and it is still there
// after the host page reloads.
func TestVerifiedUserChatSurvivesReload(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, frameID := e.openChat(t, tab, "frame", "u_alice")

	send(t, frame, "Where is my teapot?")
	// Exact match: one row, from "me", no longer pending, so acked.
	mine := chatMessage{Author: "me", Text: "Where is my teapot?"}
	waitMessages(t, frame, mine)

	// An ack is sent after the commit, so the message is stored by now.
	convs := e.conversations(t)
	if len(convs) != 1 || convs[0].User.UserID != "u_alice" || !convs[0].User.Verified {
		t.Fatalf("conversations = %+v, want one of verified u_alice", convs)
	}
	want := []apiMessage{{Author: "user", Body: "Where is my teapot?"}}
	if got := e.messages(t, convs[0].ID); !slices.Equal(got, want) {
		t.Fatalf("stored messages = %+v, want %+v", got, want)
	}

	// This browser has used the chat, so the chat loads with the page,
	// without the launcher.
	do(t, tab, chromedp.Reload())
	frame, _ = e.chatFrame(t, tab, "frame after reload", frameID)
	waitMessages(t, frame, mine)
}

// Enter in the composer sends the message, but the Enter that confirms an
// IME composition (Japanese, Chinese, …) only ends the composition.
func TestComposerEnterKey(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	composer := chromedp.Value(chromedp.CSS(composerSel))

	do(t, frame, chromedp.SendKeys(chromedp.CSS(composerSel), "Hello"), pressEnter(false))
	hello := chatMessage{Author: "me", Text: "Hello"}
	waitMessages(t, frame, hello)
	if got, err := chromedp.Run(frame, composer); err != nil || got != "" {
		t.Errorf("composer after sending = %q, %v; want it empty", got, err)
	}

	// Input.dispatchKeyEvent returns once the page has handled the key, so
	// anything the Enter did is on the page when it returns.
	do(t, frame, imeCompose("こんにちは"), pressEnter(true))
	if got, err := chromedp.Run(frame, composer); err != nil || got != "こんにちは" {
		t.Errorf("composer after confirming the composition = %q, %v; want こんにちは", got, err)
	}
	if got, err := frameMessages(frame); err != nil || !slices.Equal(got, []chatMessage{hello}) {
		t.Fatalf("messages after confirming the composition = %+v, %v; want only %+v", got, err, hello)
	}
	do(t, frame, imeCommit("こんにちは"), pressEnter(false))
	waitMessages(t, frame, hello, chatMessage{Author: "me", Text: "こんにちは"})
}

// An agent's reply through the server API reaches the open widget live.
// While the widget is open the reply is read at once (the host page never
// sees it counted as unread); while it is closed
// the host page's badge and onUnreadCountChange show it as unread until
// the user opens the chat.
func TestAgentReplyArrivesLive(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	// The host page listens as a site owner's script would.
	do(t, tab, chromedp.Evaluate[chromedp.Void](`window.unreadCounts = []; Parley("onUnreadCountChange", n => unreadCounts.push(n))`))

	send(t, frame, "Do you ship to Norway?")
	question := chatMessage{Author: "me", Text: "Do you ship to Norway?"}
	waitMessages(t, frame, question)
	convs := e.conversations(t)
	if len(convs) != 1 {
		t.Fatalf("got %d conversations, want 1", len(convs))
	}
	conv := convs[0].ID

	e.reply(t, conv, "Yes, in 3 to 5 days.")
	answer := chatMessage{Author: "agent", Text: "Yes, in 3 to 5 days."}
	waitMessages(t, frame, question, answer)
	allRead := func(context.Context) (int, error) {
		return e.count(t, `SELECT count(*) FROM conversations WHERE id = ? AND user_read_seq = last_seq`, conv), nil
	}
	eventually(t, tab, "the open widget to mark the reply read", allRead, func(n int) bool { return n == 1 })

	toggleChat(t, tab, frame) // closes the chat
	e.reply(t, conv, "Anything else?")
	followUp := chatMessage{Author: "agent", Text: "Anything else?"}
	waitMessages(t, frame, question, answer, followUp)
	// Exactly [1]: the reply that arrived while the chat was open was read
	// at once and never flashed on the badge.
	eventually(t, tab, "one unread reply on the host page", hostUnread, func(u unreadState) bool {
		return u.Badge == "1" && slices.Equal(u.Counts, []int{1})
	})

	toggleChat(t, tab, frame) // opens it again
	eventually(t, tab, "no unread replies on the host page", hostUnread, func(u unreadState) bool {
		return u.Badge == "" && u.last() == 0
	})
	eventually(t, tab, "the reopened widget to mark the reply read", allRead, func(n int) bool { return n == 1 })
}

// unreadState is what the host page shows of the unread count: the
// launcher's badge ("" when hidden) and every onUnreadCountChange call.
type unreadState struct {
	Badge  string `json:"badge"`
	Counts []int  `json:"counts"`
}

func (u unreadState) last() int {
	if len(u.Counts) == 0 {
		return 0
	}
	return u.Counts[len(u.Counts)-1]
}

var hostUnread = js[unreadState](`(b => ({
	badge: b.style.display === 'none' ? '' : b.textContent,
	counts: window.unreadCounts,
}))(document.querySelector('` + badgeSel + `'))`)

// A user_hash not made with the app's identity secret gets an error in the
// frame, no chat, and no session or subject in the database. When the host
// page then sends a valid identity, the widget recovers.
func TestForgedUserHashIsRefused(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	navigate(t, tab, e.forgedPageURL("u_alice"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")

	do(t, frame, chromedp.WaitVisible(chromedp.CSS(errorSel)), chromedp.WaitNotVisible(chromedp.CSS(composerSel)))
	msg, err := chromedp.Run(frame, chromedp.Text(chromedp.CSS(errorSel)))
	if err != nil || !strings.Contains(msg, "verify") {
		t.Errorf("widget error = %q, %v; want the identity failure", msg, err)
	}
	// The error is shown only after the session request was refused.
	for _, table := range []string{"sessions", "subjects"} {
		if n := e.count(t, "SELECT count(*) FROM "+table); n != 0 {
			t.Fatalf("%d rows in %s, want 0", n, table)
		}
	}

	do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`Parley("update", {user_id: "u_alice", user_hash: %q})`,
		identity.UserHash(e.app.IdentitySecret, "u_alice"))))
	do(t, frame, chromedp.WaitNotPresent(chromedp.CSS(errorSel)))
	send(t, frame, "Hello again")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Hello again"})
}

// A message that could not be sent stays with its author: it is sent after
// a reload, when the socket is back, but after a logout the next user of
// the tab never sends it as theirs.
func TestUnsentMessageStaysWithItsAuthor(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, frameID := e.openChat(t, tab, "frame", "u_alice")

	e.cutSockets()
	send(t, frame, "Alice's first note")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Alice's first note", Pending: true})
	if n := e.count(t, "SELECT count(*) FROM messages"); n != 0 {
		t.Fatalf("%d messages stored while the socket was cut, want 0", n)
	}
	do(t, tab, chromedp.Reload())
	frame, frameID = e.chatFrame(t, tab, "frame after reload", frameID)
	e.restoreSockets()
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Alice's first note"})

	// A note that starts a new conversation names none, so nothing but
	// its owner could stop another user's session from sending it.
	e.cutSockets()
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	do(t, frame, chromedp.Click(chromedp.ID("new")))
	send(t, frame, "Alice's second note")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Alice's second note", Pending: true})
	// Log out as the demo shop does, then let Bob log in on the same tab.
	do(t, tab, chromedp.Evaluate[chromedp.Void](`Parley("shutdown")`))
	e.restoreSockets()
	navigate(t, tab, e.pageURL(e.hostURL(), "u_bob"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel))) // the logout forgot that the chat was used
	frame, _ = e.chatFrame(t, tab, "bob frame", frameID)
	waitConnected(t, frame)
	// A restored outbox is sent before anything new, so once Bob's own
	// message is acked, Alice's would have been sent too.
	send(t, frame, "Bob's question")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Bob's question"})

	byUser := map[string][]apiMessage{}
	for _, c := range e.conversations(t) {
		byUser[c.User.UserID] = append(byUser[c.User.UserID], e.messages(t, c.ID)...)
	}
	want := map[string][]apiMessage{
		"u_alice": {{Author: "user", Body: "Alice's first note"}},
		"u_bob":   {{Author: "user", Body: "Bob's question"}},
	}
	if !reflect.DeepEqual(byUser, want) {
		t.Fatalf("stored messages by user = %+v, want %+v", byUser, want)
	}
}

// A page whose origin the app does not allowlist gets no chat. The loader
// shows no launcher and says in one console line which origin to add, and
// the dashboard learns of the refusal. A page that frames the chat anyway
// is refused by the browser (CSP frame-ancestors): no Parley document
// runs in it and no session is created.
func TestFrameRefusedOnOtherOrigins(t *testing.T) {
	for _, tc := range []struct {
		name    string
		origins []string            // the app's allowlist; nil means the host page's origin
		page    func(e *env) string // the page URL, off the allowlist
		origin  func(e *env) string // its origin
	}{
		{
			// Same site as Parley (127.0.0.1), so the frame runs in the tab's process.
			name:   "page origin not allowlisted",
			page:   func(e *env) string { return e.pageURL("http://127.0.0.1:"+e.hostPort, "u_alice") },
			origin: func(e *env) string { return "http://127.0.0.1:" + e.hostPort },
		},
		{
			// Another site, so the frame is a target of its own.
			name:    "allowlist names another site",
			origins: []string{"https://shop.example.com"},
			page:    func(e *env) string { return e.pageURL(e.hostURL(), "u_alice") },
			origin:  func(e *env) string { return e.hostURL() },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.origins...)
			tab := e.newTab(t, "page")
			cctx, cancel := context.WithTimeout(tab, waitTimeout)
			defer cancel()
			console := chromedp.Console(cctx) // subscribed before the page loads
			navigate(t, tab, tc.page(e))
			want := `Parley: the chat is not shown: this page's origin "` + tc.origin(e) + `" is not one of the app's allowed origins`
			for m, err := range console {
				if err != nil {
					t.Fatalf("the loader logged no refusal: %v", err)
				}
				if strings.HasPrefix(m.Text, "Parley:") {
					if !strings.HasPrefix(m.Text, want) {
						t.Fatalf("the loader logged %q, want %q…", m.Text, want)
					}
					break
				}
			}
			if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('[id^="parley-"]').length`)); err != nil || n != 0 {
				t.Errorf("%d Parley elements on the refused page (%v), want none", n, err)
			}
			if n := e.count(t, `SELECT count(*) FROM refused_origins WHERE app_id = ? AND origin = ?`, e.app.ID, tc.origin(e)); n != 1 {
				t.Errorf("the refusal was not kept for the dashboard")
			}

			// A page that frames the chat itself.
			do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
	const f = document.createElement('iframe');
	f.src = %q;
	document.body.append(f);
})()`, e.parleyURL+"/w/"+e.app.ID+"#origin="+url.QueryEscape(tc.origin(e)))))
			for m, err := range console {
				if err != nil {
					t.Fatalf("no frame-ancestors violation was logged: %v", err)
				}
				if strings.Contains(m.Text, `Content Security Policy directive: "frame-ancestors`) {
					break
				}
			}
			if docs := e.frameDocuments(t, tab); len(docs) == 0 || slices.ContainsFunc(docs, func(u string) bool {
				return strings.HasPrefix(u, e.parleyURL)
			}) {
				t.Errorf("frame documents = %q, want only error pages", docs)
			}
			for _, table := range []string{"sessions", "subjects"} {
				if n := e.count(t, "SELECT count(*) FROM "+table); n != 0 {
					t.Errorf("%d rows in %s, want 0", n, table)
				}
			}
		})
	}
}

// The frame's own checks, behind frame-ancestors, on an allowlisted page
// that frames the chat with a wrong #origin hint. A hint off the allowlist
// ("*", which would send the nonce to whatever document framed it) is
// refused outright; one on the allowlist but not the page's own origin
// gets the ready message, which is posted to the hint's origin only, so
// the browser drops it. Either way the page hears nothing from the frame.
func TestFrameRefusesAWrongHint(t *testing.T) {
	e := newEnv(t)
	const other = "https://other.example.com"
	if _, err := e.db.UpdateApp(t.Context(), e.app.ID, store.AppSettings{Name: e.app.Name,
		Origins: []string{e.hostURL(), other}, IdentityMode: store.ModeEnforced}); err != nil {
		t.Fatal(err)
	}
	tab := e.newTab(t, "page")
	onNewDocument(t, tab, `window.rogueMessages = 0;
addEventListener('message', e => {
	if ([...document.querySelectorAll('.rogue')].some(f => e.source === f.contentWindow)) rogueMessages++;
});`)
	navigate(t, tab, e.pageURL(e.hostURL(), "u_alice"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	_, loaderFrame := e.chatFrame(t, tab, "frame")
	seen := []target.ID{loaderFrame}
	for _, tc := range []struct{ hint, error string }{
		{"*", "This chat can't be shown on this page."},
		{other, ""}, // it waits for a connect that can't come
	} {
		do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
	const f = document.createElement('iframe');
	f.className = 'rogue';
	f.src = %q;
	document.body.append(f);
})()`, e.parleyURL+"/w/"+e.app.ID+"#origin="+url.QueryEscape(tc.hint))))
		rogue, id := e.chatFrame(t, tab, "rogue "+tc.hint, seen...)
		seen = append(seen, id)
		eventually(t, rogue, "the frame's script to run", js[bool](`document.readyState === 'complete'`), func(ok bool) bool { return ok })
		if tc.error != "" {
			eventually(t, rogue, "the frame to refuse the page", js[string](
				`(document.querySelector('`+errorSel+`') || {}).textContent || ""`),
				func(s string) bool { return s == tc.error })
		}
	}
	time.Sleep(500 * time.Millisecond) // time for a message, which is not coming
	if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`rogueMessages`)); err != nil || n != 0 {
		t.Errorf("the mis-hinted frames posted %d messages to the page (%v), want 0", n, err)
	}
}

// frameDocuments returns the URLs of the documents in the tab's child
// frames: those in the tab's process from its frame tree, and those that
// run out of process by asking each of them.
func (e *env) frameDocuments(t *testing.T, tab context.Context) []string {
	t.Helper()
	tree, err := chromedp.Call(tab, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, child := range tree.FrameTree.ChildFrames {
		docs = append(docs, child.Frame.URL)
	}
	frames, err := childFrames(tab)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range frames {
		frame := e.attach(t, tab, info.TargetID, "frame")
		href, err := chromedp.Run(frame, chromedp.Evaluate[string](`location.href`))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, href)
	}
	return docs
}

// Two verified users on the same site, in separate browsers: each sees
// only their own conversation, and a message reaches only its author's
// sockets, not just the screen of the other user.
func TestUsersSeeOnlyTheirOwnChat(t *testing.T) {
	e := newEnv(t)
	alice := e.newTab(t, "alice")
	aliceFrame, _ := e.openChat(t, alice, "alice frame", "u_alice")
	send(t, aliceFrame, "Alice's order 1234 is wrong")
	aliceMsg := chatMessage{Author: "me", Text: "Alice's order 1234 is wrong"}
	waitMessages(t, aliceFrame, aliceMsg)
	// The frame ignores messages of conversations it does not know, so a
	// leak would not show on screen: watch what reaches the sockets.
	aliceSocket := socketLog(aliceFrame)

	bob := e.newTab(t, "bob") // a browser context of its own
	navigate(t, bob, e.pageURL(e.hostURL(), "u_bob"))
	do(t, bob, chromedp.Click(chromedp.CSS(launcherSel)))
	bobFrame, _ := e.chatFrame(t, bob, "bob frame")
	bobSocket := socketLog(bobFrame)
	waitConnected(t, bobFrame)
	// The conversation list and any history are rendered into the frame, so
	// its text holds everything the server told Bob.
	text, err := chromedp.Run(bobFrame, chromedp.Evaluate[string](`document.body.textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "1234") {
		t.Fatalf("Bob's frame shows Alice's message: %q", text)
	}
	if got, err := frameMessages(bobFrame); err != nil || len(got) != 0 {
		t.Fatalf("Bob's frame shows messages %+v (%v), want none", got, err)
	}

	send(t, bobFrame, "Bob needs a kettle")
	bobMsg := chatMessage{Author: "me", Text: "Bob needs a kettle"}
	waitMessages(t, bobFrame, bobMsg)

	convOf := map[string]string{}
	byUser := map[string][]apiMessage{}
	for _, c := range e.conversations(t) {
		convOf[c.User.UserID] = c.ID
		byUser[c.User.UserID] = append(byUser[c.User.UserID], e.messages(t, c.ID)...)
	}
	want := map[string][]apiMessage{
		"u_alice": {{Author: "user", Body: "Alice's order 1234 is wrong"}},
		"u_bob":   {{Author: "user", Body: "Bob needs a kettle"}},
	}
	if !reflect.DeepEqual(byUser, want) {
		t.Fatalf("stored messages by user = %+v, want %+v", byUser, want)
	}

	// A reply is queued on its user's socket after anything that an earlier
	// message put there, so once the replies have arrived, a leak would have.
	e.reply(t, convOf["u_alice"], "We will fix order 1234")
	e.reply(t, convOf["u_bob"], "Kettles are in stock")
	for _, s := range []struct {
		user         string
		log          *logBuffer
		reply, other string
	}{
		{"Alice", aliceSocket, "We will fix order 1234", "Bob needs a kettle"},
		{"Bob", bobSocket, "Kettles are in stock", "1234"},
	} {
		got := eventually(t, alice, s.user+"'s reply on the socket", func(context.Context) (string, error) {
			return s.log.String(), nil
		}, func(got string) bool { return strings.Contains(got, s.reply) })
		if strings.Contains(got, s.other) {
			t.Errorf("%s's socket received %q:\n%s", s.user, s.other, got)
		}
	}
	waitMessages(t, aliceFrame, aliceMsg, chatMessage{Author: "agent", Text: "We will fix order 1234"})
	waitMessages(t, bobFrame, bobMsg, chatMessage{Author: "agent", Text: "Kettles are in stock"})
}

// A user can start a new conversation, list them, and open an older one;
// an agent's typing shows while it lasts; and markup in a message, from
// either side, is shown as the text it is.
func TestConversationsTypingAndText(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")

	first := chatMessage{Author: "me", Text: "About my order"}
	send(t, frame, first.Text)
	waitMessages(t, frame, first)
	do(t, frame, chromedp.Click(chromedp.ID("new")))
	waitMessages(t, frame)
	markup := `<img src=x onerror="window.pwned=1"><b>bold?</b>`
	second := chatMessage{Author: "me", Text: markup}
	send(t, frame, markup)
	waitMessages(t, frame, second)

	convs := e.conversations(t)
	if len(convs) != 2 {
		t.Fatalf("%d conversations, want 2", len(convs))
	}
	// Newest activity first: convs[0] is the one just started.
	e.reply(t, convs[0].ID, `<script>window.pwned=2</script>`)
	waitMessages(t, frame, second, chatMessage{Author: "agent", Text: `<script>window.pwned=2</script>`})
	injected := js[bool](`!!document.querySelector('#thread img, #thread b, #thread script') || !!window.pwned`)
	if got := eventually(t, frame, "the thread", injected, func(bool) bool { return true }); got {
		t.Fatal("message text was rendered as HTML")
	}

	// Agent typing: shown while it lasts, gone when the agent stops.
	typing := js[string](`(el => el.hidden ? '' : el.textContent)(document.querySelector('[data-testid="typing"]'))`)
	e.api(t, "POST", "/api/v1/conversations/"+convs[0].ID+"/typing", map[string]any{"typing": true, "author_name": "Sam"}, nil)
	eventually(t, frame, "the typing indicator", typing, func(s string) bool { return s == "Sam is typing…" })
	e.api(t, "POST", "/api/v1/conversations/"+convs[0].ID+"/typing", map[string]any{"typing": false}, nil)
	eventually(t, frame, "the typing indicator to go", typing, func(s string) bool { return s == "" })

	// The list shows both conversations; opening the older one shows only
	// its own messages.
	do(t, frame, chromedp.Click(chromedp.ID("list-btn")))
	rows := js[int](`document.querySelectorAll('[data-testid="conversation"]').length`)
	eventually(t, frame, "two conversations listed", rows, func(n int) bool { return n == 2 })
	do(t, frame, chromedp.Click(chromedp.CSS(`[data-testid="conversation"]:last-child`)))
	waitMessages(t, frame, first)
}
