package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-chat/parley/internal/store"
)

// launcherState is what the host page's launcher says about itself.
var launcherState = js[map[string]string](`(l => l ? {
	label: l.getAttribute('aria-label'),
	expanded: l.getAttribute('aria-expanded'),
	controls: l.getAttribute('aria-controls') || '',
	icon: l.querySelector('path').getAttribute('d'),
	text: l.textContent,
	background: getComputedStyle(l).backgroundColor,
	color: getComputedStyle(l).color,
	display: getComputedStyle(l).display,
	focused: String(document.activeElement === l),
} : null)(document.getElementById('parley-launcher'))`)

// statuses are the data-status of the user's own messages, in order.
var statuses = js[[]string](`[...document.querySelectorAll('[data-testid="message"][data-author="me"] [data-testid="status"]')].map(s => s.dataset.status)`)

// messageLinks are the links in the messages, as the frame made them.
var messageLinks = js[[]map[string]string](`[...document.querySelectorAll('[data-testid="message"] a[href]')].map(a => ({
	href: a.getAttribute('href'), text: a.textContent, rel: a.rel, target: a.target }))`)

func (e *env) setLook(t *testing.T, a store.Appearance) {
	t.Helper()
	if err := e.db.SetAppearance(t.Context(), e.app.ID, a); err != nil {
		t.Fatal(err)
	}
}

// The widget as a site owner sets it up and a user sees it: the owner's
// colour with readable text, the team's name, greeting and reply time;
// a launcher that says what it does and becomes a close button; local
// timestamps, links that are only http(s) links, sent → delivered → read
// from the agents' real read marks, replies announced once, an unread
// separator, and Escape that closes the chat and gives the keyboard back.
func TestWidgetLookAndMessages(t *testing.T) {
	e := newEnv(t)
	e.setLook(t, store.Appearance{Color: "#0b6e4f", Position: "right", LauncherLabel: "Chat with us", TeamName: "Teapot Support", Locale: "en"})
	if err := e.db.SetAvailability(t.Context(), e.app.ID, store.Availability{TimeZone: "UTC",
		Greeting: "Hi! Ask us anything about your teapot.", ReplyTime: "hour"}); err != nil {
		t.Fatal(err)
	}
	tab := e.newTab(t, "user")
	navigate(t, tab, e.pageURL(e.hostURL(), "u_ann")+"&name=Ann+Lee")
	closed := eventually(t, tab, "the launcher", launcherState, func(l map[string]string) bool { return l != nil })
	checkA11y(t, tab, "the closed launcher", "#parley-launcher")
	if closed["label"] != "Chat with us" || closed["expanded"] != "false" || closed["icon"] != "M4 5h16v11H9l-5 4z" ||
		closed["text"] != "Chat with us" || closed["background"] != "rgb(11, 110, 79)" || closed["color"] != "rgb(255, 255, 255)" {
		t.Errorf("the closed launcher: %v", closed)
	}
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	open := eventually(t, tab, "the launcher to say the chat is open", launcherState, func(l map[string]string) bool { return l["expanded"] == "true" })
	if open["label"] != "Close chat" || open["controls"] != "parley-frame-wrap" || open["icon"] != "M6 6l12 12M18 6L6 18" {
		t.Errorf("the open launcher: %v", open)
	}
	head, _ := chromedp.Run(frame, chromedp.Evaluate[map[string]string](`({
		team: document.querySelector('h1').textContent,
		avatar: document.querySelector('.avatar').textContent,
		background: getComputedStyle(document.querySelector('header')).backgroundColor,
		reply: document.getElementById('reply-time').textContent,
		greeting: document.getElementById('greeting').hidden ? '' : document.getElementById('greeting').textContent })`))
	if head["team"] != "Teapot Support" || head["avatar"] != "T" || head["background"] != "rgb(11, 110, 79)" ||
		head["reply"] != "Usually replies within an hour" || head["greeting"] != "Hi! Ask us anything about your teapot." {
		t.Errorf("the empty chat: %v", head)
	}
	checkA11y(t, frame, "the empty chat")
	checkA11y(t, tab, "the open launcher and frame", "[id^=parley-]")
	screenshot(t, tab, "widget-empty.png", 1280, 800, false)

	// Sent; an agent opens the inbox: delivered; then the conversation:
	// read. These are the agents' real marks.
	send(t, frame, "My order https://localhost/orders/42 is late.")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "My order https://localhost/orders/42 is late."})
	eventually(t, frame, "the message sent", statuses, func(s []string) bool { return len(s) == 1 && s[0] == "sent" })
	conv := e.conversations(t)[0].ID
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	dash := e.signIn(t, olivia, "dashboard")
	navigate(t, dash, e.parleyURL+"/dashboard/apps/"+e.app.ID)
	waitLive(t, dash)
	eventually(t, frame, "the message delivered", statuses, func(s []string) bool { return len(s) == 1 && s[0] == "delivered" })
	navigate(t, dash, e.parleyURL+"/dashboard/apps/"+e.app.ID+"/conversations/"+conv)
	waitLive(t, dash)
	eventually(t, frame, "the message read", statuses, func(s []string) bool { return len(s) == 1 && s[0] == "read" })

	// The agent's reply with links: only http(s) becomes one.
	e.apiReply(t, conv, "Sorry! Track it at https://track.example/42. Not links: javascript:alert(1), ftp://files.example, <a href=x>x</a>")
	links := eventually(t, frame, "the reply's link", messageLinks, func(l []map[string]string) bool { return len(l) == 2 })
	if l := links[1]; l["href"] != "https://track.example/42" || l["text"] != "https://track.example/42" || l["rel"] != "noopener noreferrer" || l["target"] != "_blank" {
		t.Errorf("the reply's link: %v", l)
	}
	if l := links[0]; l["href"] != "https://localhost/orders/42" {
		t.Errorf("the user's link: %v", l)
	}
	announced := eventually(t, frame, "the reply announced", js[string](`document.getElementById('announce').textContent`),
		func(s string) bool { return s != "" })
	if !strings.HasPrefix(announced, "Ann: Sorry! Track it at") {
		t.Errorf("announced %q", announced)
	}
	stamps := eventually(t, frame, "a timestamp over the group", js[[]string](`[...document.querySelectorAll('[data-testid="timestamp"]')].map(s => s.textContent)`),
		func(s []string) bool { return len(s) > 0 })
	if len(stamps) != 1 || !strings.HasPrefix(stamps[0], "Today · ") {
		t.Errorf("timestamps %q, want one, today's", stamps)
	}
	checkA11y(t, frame, "a conversation")
	do(t, frame, chromedp.Click(chromedp.ID("list-btn")))
	eventually(t, frame, "the list of conversations", js[int](`document.querySelectorAll('[data-testid="conversation"]').length`), func(n int) bool { return n == 1 })
	checkA11y(t, frame, "the list of conversations")
	do(t, frame, chromedp.Click(chromedp.CSS(`[data-testid="conversation"]`)))
	eventually(t, frame, "the conversation again", frameMessages, func(m []chatMessage) bool { return len(m) == 2 })
	screenshot(t, tab, "widget-conversation.png", 1280, 800, false)

	// Escape in the chat closes it, and the keyboard is back on the launcher.
	do(t, frame, chromedp.KeyEvent(kb.Escape))
	eventually(t, tab, "the chat closed by Escape", launcherState, func(l map[string]string) bool {
		return l["expanded"] == "false" && l["focused"] == "true" && l["label"] == "Chat with us"
	})
	// Replies while it is closed: the label counts them, and they start
	// under a separator.
	e.apiReply(t, conv, "Found it: it ships today.")
	e.apiReply(t, conv, "You'll get an e-mail.")
	eventually(t, tab, "the launcher to count the unread replies", launcherState, func(l map[string]string) bool {
		return l["label"] == "Chat with us (2 unread)"
	})
	sep := js[[]string](`[...document.getElementById('thread').children].filter(c => c.matches('.unread-sep, [data-testid=message]')).map(c => c.matches('.unread-sep') ? '--' : c.querySelector('.text').textContent)`)
	eventually(t, frame, "the separator above the unread replies", sep, func(s []string) bool {
		return strings.Join(s, "|") == "My order https://localhost/orders/42 is late.|Sorry! Track it at https://track.example/42. Not links: javascript:alert(1), ftp://files.example, <a href=x>x</a>|--|Found it: it ships today.|You'll get an e-mail."
	})
}

// apiReply posts an agent reply through the server API, as Ann.
func (e *env) apiReply(t *testing.T, conv, body string) {
	t.Helper()
	e.api(t, http.MethodPost, "/api/v1/conversations/"+conv+"/messages", map[string]string{"body": body, "author_name": "Ann"}, nil)
}

// The widget speaks the page's language, right to left for Arabic, and
// switches at once when the page says so.
func TestWidgetLanguages(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "user")
	navigate(t, tab, e.pageURL(e.hostURL(), "u_ann")+"&locale=ar")
	l := eventually(t, tab, "the launcher", launcherState, func(l map[string]string) bool { return l != nil })
	if l["label"] != "افتح المحادثة" {
		t.Errorf("the launcher in Arabic: %q", l["label"])
	}
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	page := js[map[string]string](`({ lang: document.documentElement.lang, dir: document.documentElement.dir,
		placeholder: document.getElementById('composer').placeholder, close: document.getElementById('close').getAttribute('aria-label'),
		closeLeft: String(document.getElementById('close').getBoundingClientRect().left < document.querySelector('h1').getBoundingClientRect().left) })`)
	ar := eventually(t, frame, "the frame in Arabic", page, func(p map[string]string) bool { return p["lang"] == "ar" })
	if ar["dir"] != "rtl" || ar["placeholder"] != "اكتب رسالة…" || ar["close"] != "أغلق المحادثة" || ar["closeLeft"] != "true" {
		t.Errorf("the frame in Arabic: %v", ar)
	}
	send(t, frame, "مرحبا، أين طلبي؟")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "مرحبا، أين طلبي؟"})
	e.apiReply(t, e.conversations(t)[0].ID, "سيصل غدًا.")
	eventually(t, frame, "the reply", frameMessages, func(m []chatMessage) bool { return len(m) == 2 })
	checkA11y(t, frame, "the chat in Arabic")
	screenshot(t, tab, "widget-arabic.png", 1280, 800, false)

	do(t, tab, chromedp.Evaluate[chromedp.Void](`Parley('update', {locale: 'de-AT'})`))
	de := eventually(t, frame, "the frame in German", page, func(p map[string]string) bool { return p["lang"] == "de" })
	if de["dir"] != "ltr" || de["placeholder"] != "Nachricht schreiben…" || de["close"] != "Chat schließen" {
		t.Errorf("the frame in German: %v", de)
	}
	if s, _ := chromedp.Run(frame, chromedp.Evaluate[string](`document.querySelector('[data-testid="timestamp"]').textContent`)); !strings.HasPrefix(s, "Heute · ") {
		t.Errorf("the timestamp in German: %q", s)
	}
	eventually(t, tab, "the launcher in German", launcherState, func(l map[string]string) bool { return l["label"] == "Chat schließen" })
}

// On a phone the chat takes the whole screen, the launcher steps aside,
// the composer's text is 16px (no zoom on focus) and closing is a big
// target.
func TestWidgetOnAPhone(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "phone")
	do(t, tab, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	navigate(t, tab, e.pageURL(e.hostURL(), "u_ann"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	eventually(t, tab, "the chat to cover the screen", js[map[string]float64](`(r => ({x: r.x, y: r.y, w: r.width, h: r.height}))(document.getElementById('parley-frame-wrap').getBoundingClientRect())`),
		func(b map[string]float64) bool { return b["w"] == 390 && b["h"] == 844 && b["x"] == 0 && b["y"] == 0 })
	if l, _ := launcherState(tab); l["display"] != "none" {
		t.Errorf("the launcher shows over the open chat: %v", l)
	}
	got, _ := chromedp.Run(frame, chromedp.Evaluate[map[string]float64](`({
		font: parseFloat(getComputedStyle(document.getElementById('composer')).fontSize),
		closeW: document.getElementById('close').getBoundingClientRect().width,
		closeH: document.getElementById('close').getBoundingClientRect().height })`))
	if got["font"] < 16 || got["closeW"] < 44 || got["closeH"] < 44 {
		t.Errorf("on a phone: %v, want 16px text and a 44×44 close button", got)
	}
	send(t, frame, "Hello from my phone")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Hello from my phone"})
	checkA11y(t, frame, "the chat on a phone")
	screenshot(t, tab, "widget-phone.png", 390, 844, true)
	do(t, frame, chromedp.Click(chromedp.ID("close")))
	eventually(t, tab, "the launcher back", launcherState, func(l map[string]string) bool { return l["display"] == "flex" && l["expanded"] == "false" })
}

// With the system in dark mode the chat is dark, its text still readable.
func TestWidgetDarkMode(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "user")
	dark := func(ctx context.Context) {
		t.Helper()
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
			t.Fatal(err)
		}
	}
	dark(tab)
	navigate(t, tab, e.pageURL(e.hostURL(), "u_ann"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	dark(frame) // a cross-site frame is a target of its own
	waitConnected(t, frame)
	send(t, frame, "Is the blue teapot back in stock?")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Is the blue teapot back in stock?"})
	e.apiReply(t, e.conversations(t)[0].ID, "Yes, since this morning!")
	eventually(t, frame, "the reply", frameMessages, func(m []chatMessage) bool { return len(m) == 2 })
	eventually(t, frame, "the dark scheme", js[string](`getComputedStyle(document.body).backgroundColor`),
		func(s string) bool { return s == "rgb(20, 23, 29)" })
	checkA11y(t, frame, "the chat in dark mode")
	screenshot(t, tab, "widget-dark.png", 1280, 800, false)
}

// When the app is turned off mid-chat, the chat says so under its header,
// keeps what was said, and offers nothing that cannot work.
func TestWidgetTurnedOff(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "user")
	navigate(t, tab, e.pageURL(e.hostURL(), "u_ann"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	send(t, frame, "Hello?")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Hello?"})
	if err := e.db.SetAppDisabled(t.Context(), e.app.ID, true); err != nil {
		t.Fatal(err)
	}
	state := js[map[string]string](`({
		error: (document.querySelector('[data-testid="widget-error"]') || {}).textContent || '',
		inHeader: String(!!document.querySelector('header [data-testid="widget-error"]')),
		newHidden: String(document.getElementById('new').hidden), listHidden: String(document.getElementById('list-btn').hidden),
		formHidden: String(document.getElementById('form').hidden),
		messages: String(document.querySelectorAll('[data-testid="message"]').length) })`)
	got := eventually(t, frame, "the chat to say it is turned off", state, func(s map[string]string) bool { return s["error"] != "" })
	want := map[string]string{"error": "Chat is turned off on this site.", "inHeader": "false", "newHidden": "true", "listHidden": "true", "formHidden": "true", "messages": "1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (%v)", k, got[k], v, got)
		}
	}
	checkA11y(t, frame, "the turned-off chat")
	screenshot(t, tab, "widget-error.png", 1280, 800, false)
}

// A single-use identity JWT is spent by the first session. When the frame
// reloads (and would replay it), the widget asks the page for a new one
// (Parley('onTokenNeeded', fn)) and the chat goes on.
func TestOnTokenNeeded(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "user")
	navigate(t, tab, e.hostURL()+"/?user=u_jay&jwt&tokens")
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	send(t, frame, "first")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "first"})
	if n := e.tokensMade.Load(); n != 0 {
		t.Fatalf("%d tokens asked for before one was spent", n)
	}

	// Page.reload only works on a tab: the frame reloads itself, and
	// stays the same target.
	do(t, frame, chromedp.Evaluate[chromedp.Void](`window.e2eOldDocument = true; setTimeout(() => location.reload())`))
	eventually(t, frame, "the new frame document", js[bool](`!window.e2eOldDocument && document.readyState === 'complete'`),
		func(ok bool) bool { return ok })
	again := frame
	waitConnected(t, again)
	eventually(t, again, "the history back", frameMessages, func(m []chatMessage) bool { return len(m) == 1 })
	send(t, again, "second")
	waitMessages(t, again, chatMessage{Author: "me", Text: "first"}, chatMessage{Author: "me", Text: "second"})
	if n := e.tokensMade.Load(); n != 1 {
		t.Errorf("%d fresh tokens made, want 1", n)
	}
	if n, _ := chromedp.Run(tab, chromedp.Evaluate[int](`tokensAsked`)); n != 1 {
		t.Errorf("the page was asked %d times, want 1", n)
	}
	if convs := e.conversations(t); len(convs) != 1 || !convs[0].User.Verified || convs[0].User.UserID != "u_jay" {
		t.Errorf("conversations %+v, want one of verified u_jay", convs)
	}
}
