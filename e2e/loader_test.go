package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The loader a site owner pastes (/widget.js) is only the launcher and
// window.Parley; the rest (widget-chat.js: the frame and its channel) loads
// when the chat is opened, when it may have unread replies, or when the page
// asks for live state.

// loaderState is what the host page shows of the loader and the chat script.
type loaderState struct {
	Launchers int    `json:"launchers"`
	Script    bool   `json:"script"`  // a <script> for widget-chat.js is in the page
	Fetched   bool   `json:"fetched"` // the browser fetched it (Resource Timing)
	Frames    int    `json:"frames"`  // iframes in the page
	Badge     string `json:"badge"`   // the unread badge, "" when hidden
	Mark      string `json:"mark"`    // the "used the chat" mark in localStorage
}

func (e *env) loaderState() func(context.Context) (loaderState, error) {
	return js[loaderState](fmt.Sprintf(`(() => {
	const b = document.querySelector(%[1]q);
	return {
		launchers: document.querySelectorAll(%[2]q).length,
		script: !!document.querySelector('script[src*="/static/widget-chat.js"]'),
		fetched: performance.getEntriesByType('resource').some(r => r.name.includes('/static/widget-chat.js')),
		frames: document.querySelectorAll('iframe').length,
		badge: !b || b.style.display === 'none' ? '' : b.textContent,
		mark: localStorage.getItem(%[3]q) || '',
	};
})()`, badgeSel, launcherSel, "parley:c:"+e.app.ID))
}

// booted waits until the loader has booted (its launcher is on the page)
// and returns what the page shows then. The loader decides at boot whether
// to load the chat script, and adds its <script> element there and then.
func (e *env) booted(t *testing.T, tab context.Context) loaderState {
	t.Helper()
	return eventually(t, tab, "the launcher", e.loaderState(), func(s loaderState) bool { return s.Launchers == 1 })
}

// chatScriptRequests is how many times Parley served widget-chat.js.
func (e *env) chatScriptRequests() int {
	return strings.Count(e.logs.String(), "path=/static/widget-chat.js ")
}

// A fresh visitor downloads only the loader: no chat script, no frame, no
// session, until they open the chat. Commands that need no chat (hide,
// update) load nothing; opening loads the chat script once, and the chat
// works with the settings given before it loaded.
func TestChatLoadsWhenOpened(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	navigate(t, tab, e.pageURL(e.hostURL(), "u_alice"))
	if s := e.booted(t, tab); s.Script || s.Fetched || s.Frames != 0 || s.Mark != "" {
		t.Fatalf("after boot the page shows %+v, want only the launcher", s)
	}
	do(t, tab, chromedp.Evaluate[chromedp.Void](`Parley('hide'); Parley('update', {name: 'Alice Renamed'})`))
	eventually(t, tab, "the page to load", js[bool](`document.readyState === 'complete'`), func(ok bool) bool { return ok })
	if s, err := e.loaderState()(tab); err != nil || s.Script || s.Fetched || s.Frames != 0 {
		t.Fatalf("after hide and update the page shows %+v (%v), want no chat script and no frame", s, err)
	}
	if n := e.chatScriptRequests(); n != 0 {
		t.Fatalf("widget-chat.js was requested %d times before the chat was opened, want 0", n)
	}
	if n := e.count(t, `SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("%d sessions before the chat was opened, want 0", n)
	}

	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	eventually(t, frame, "the frame to be told it is open", frameOpen, func(s string) bool { return s == "true" })
	eventually(t, tab, "the chat script and the frame", e.loaderState(), func(s loaderState) bool {
		return s.Script && s.Fetched && s.Frames == 1 && s.Mark == "1"
	})
	send(t, frame, "Hello from a lazy chat")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Hello from a lazy chat"})

	var out struct {
		Conversations []struct {
			User struct {
				UserID   string `json:"user_id"`
				Name     string `json:"name"`
				Verified bool   `json:"verified"`
			} `json:"user"`
		}
	}
	e.api(t, http.MethodGet, "/api/v1/conversations", nil, &out)
	if len(out.Conversations) != 1 || out.Conversations[0].User.UserID != "u_alice" ||
		out.Conversations[0].User.Name != "Alice Renamed" || !out.Conversations[0].User.Verified {
		t.Fatalf("conversations = %+v, want one of verified u_alice named by the update", out.Conversations)
	}
	// Closing and opening again does not load it again.
	toggleChat(t, tab, frame)
	toggleChat(t, tab, frame)
	if n := e.chatScriptRequests(); n != 1 {
		t.Errorf("widget-chat.js was requested %d times, want 1", n)
	}
}

// A browser that has used the chat loads it with every page, closed, so an
// agent's reply sent while the user was away shows on the badge without
// the user opening the chat. A logout (shutdown) forgets that mark.
func TestUnreadReplyShowsOnReturn(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	question := chatMessage{Author: "me", Text: "Is the blue teapot back in stock?"}
	send(t, frame, question.Text)
	waitMessages(t, frame, question)
	toggleChat(t, tab, frame) // closed
	conv := e.conversations(t)[0].ID

	navigate(t, tab, "about:blank") // the user is away
	e.reply(t, conv, "It is, since this morning.")
	navigate(t, tab, e.pageURL(e.hostURL(), "u_alice"))
	if s := e.booted(t, tab); !s.Script || s.Mark != "1" {
		t.Fatalf("after boot the page shows %+v, want the chat script added at once", s)
	}
	s := eventually(t, tab, "the badge to show the reply", e.loaderState(), func(s loaderState) bool { return s.Badge == "1" })
	if s.Frames != 1 {
		t.Fatalf("the page shows %+v, want the one chat frame", s)
	}
	frame, _ = e.chatFrame(t, tab, "frame on return")
	waitConnected(t, frame)
	if open, err := frameOpen(frame); err != nil || open == "true" {
		t.Fatalf("frame open state = %q, %v; want the chat closed: nobody opened it", open, err)
	}
	unread := func(context.Context) (int, error) {
		return e.count(t, `SELECT count(*) FROM conversations WHERE id = ? AND user_read_seq < last_seq`, conv), nil
	}
	if n, _ := unread(t.Context()); n != 1 {
		t.Fatalf("the reply is not unread on the server, so the badge proves nothing")
	}

	toggleChat(t, tab, frame) // the user opens the chat and reads it
	waitMessages(t, frame, question, chatMessage{Author: "agent", Text: "It is, since this morning."})
	eventually(t, tab, "the badge to go", e.loaderState(), func(s loaderState) bool { return s.Badge == "" })
	eventually(t, tab, "the reply to be read", unread, func(n int) bool { return n == 0 })

	// Logging out forgets that this browser used the chat.
	do(t, tab, chromedp.Evaluate[chromedp.Void](`Parley('shutdown')`))
	if s, err := e.loaderState()(tab); err != nil || s.Mark != "" {
		t.Fatalf("after shutdown the page shows %+v (%v), want the mark deleted", s, err)
	}
	requests := e.chatScriptRequests()
	navigate(t, tab, e.pageURL(e.hostURL(), "u_alice"))
	if s := e.booted(t, tab); s.Script || s.Fetched || s.Frames != 0 {
		t.Fatalf("after a logout the next page shows %+v, want only the launcher", s)
	}
	if n := e.chatScriptRequests(); n != requests {
		t.Errorf("widget-chat.js requested %d more times after the logout, want none", n-requests)
	}
}

// A page that registers onReady or onUnreadCountChange (here queued before
// the loader runs, as the snippet allows) asks for live state: the chat
// loads, closed, and reports a reply that reached the user on another
// device. A browser whose page does not ask, and that never opened the
// chat, learns of that reply only when it opens the chat.
func TestLiveCallbacksLoadTheChat(t *testing.T) {
	e := newEnv(t)
	phone := e.newTab(t, "phone")
	frame, _ := e.openChat(t, phone, "phone frame", "u_alice")
	send(t, frame, "Sent from my phone")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Sent from my phone"})
	toggleChat(t, phone, frame) // closed, so the reply stays unread
	e.reply(t, e.conversations(t)[0].ID, "Answered while you were on the phone")
	eventually(t, phone, "the phone's badge", e.loaderState(), func(s loaderState) bool { return s.Badge == "1" })

	laptop := e.newTab(t, "laptop")
	navigate(t, laptop, e.pageURL(e.hostURL(), "u_alice"))
	if s := e.booted(t, laptop); s.Script || s.Frames != 0 || s.Badge != "" {
		t.Fatalf("a browser that never opened the chat shows %+v, want only the launcher", s)
	}

	desktop := e.newTab(t, "desktop")
	onNewDocument(t, desktop, `window.unreadCounts = []; window.readyCalls = 0;
window.Parley = window.Parley || function () { (Parley.q = Parley.q || []).push(arguments) };
Parley('onReady', () => readyCalls++);
Parley('onUnreadCountChange', n => unreadCounts.push(n));`)
	navigate(t, desktop, e.pageURL(e.hostURL(), "u_alice"))
	if s := e.booted(t, desktop); !s.Script {
		t.Fatalf("a page with live callbacks shows %+v, want the chat script added at boot", s)
	}
	type live struct {
		Ready  int   `json:"ready"`
		Counts []int `json:"counts"`
	}
	eventually(t, desktop, "onReady and the unread count", js[live](`({ready: readyCalls, counts: unreadCounts})`),
		func(l live) bool { return l.Ready == 1 && slices.Equal(l.Counts, []int{1}) })
	s := eventually(t, desktop, "the badge", e.loaderState(), func(s loaderState) bool { return s.Badge == "1" })
	if s.Frames != 1 || s.Mark != "1" {
		t.Errorf("the page shows %+v, want one frame and the mark set by the unread reply", s)
	}
	desktopFrame, _ := e.chatFrame(t, desktop, "desktop frame")
	if open, err := frameOpen(desktopFrame); err != nil || open == "true" {
		t.Errorf("frame open state = %q, %v; want the chat closed", open, err)
	}
	// onReady registered once the chat has a session is called at once.
	if n, err := chromedp.Run(desktop, chromedp.Evaluate[int](`Parley('onReady', () => readyCalls++), readyCalls`)); err != nil || n != 2 {
		t.Errorf("readyCalls after a late onReady = %d, %v; want 2", n, err)
	}
}

// Commands given while the chat script is still loading apply to the
// loader's state: a shutdown then means the script, when it arrives, adds
// no frame; boot twice leaves one launcher; a boot after all that gets a
// frame that works.
func TestCommandsWhileTheChatLoads(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	navigate(t, tab, e.pageURL(e.hostURL(), "u_alice"))
	e.booted(t, tab)
	// One task: the script cannot run between these calls.
	do(t, tab, chromedp.Evaluate[chromedp.Void](`(() => {
	Parley('show');
	const s = document.querySelector('script[src*="/static/widget-chat.js"]');
	window.chatRan = false;
	s.addEventListener('load', () => chatRan = true);
	Parley('shutdown');
})()`))
	eventually(t, tab, "the chat script to run", js[bool](`chatRan`), func(ok bool) bool { return ok })
	if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('iframe, [id^="parley-"]').length`)); err != nil || n != 0 {
		t.Fatalf("%d iframes or parley elements after a shutdown during loading (%v), want none", n, err)
	}
	if s, err := e.loaderState()(tab); err != nil || s.Mark != "" {
		t.Fatalf("after the shutdown the page shows %+v (%v), want the mark deleted", s, err)
	}

	do(t, tab, chromedp.Evaluate[chromedp.Void](`Parley('boot', window.parleySettings); Parley('boot', window.parleySettings)`))
	// The chat script is loaded now, so a boot adds the frame at once.
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	if s, err := e.loaderState()(tab); err != nil || s.Launchers != 1 || s.Frames != 1 {
		t.Fatalf("after booting twice the page shows %+v (%v), want one launcher and one frame", s, err)
	}
	do(t, tab, chromedp.Evaluate[chromedp.Void](`Parley('show')`))
	eventually(t, frame, "the frame to be told it is open", frameOpen, func(s string) bool { return s == "true" })
	e.stillAlice(t, frame, "Hello after all that")
	if n := e.chatScriptRequests(); n != 1 {
		t.Errorf("widget-chat.js was requested %d times, want 1", n)
	}
}
