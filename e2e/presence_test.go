package e2e

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/hours"
	"github.com/parley-chat/parley/internal/store"
)

var presenceView = js[map[string]any](`({
	greeting: document.getElementById("greeting").hidden ? "" : document.getElementById("greeting").textContent,
	replyTime: document.getElementById("reply-time").hidden ? "" : document.getElementById("reply-time").textContent,
	notice: document.getElementById("presence").hidden ? "" : document.getElementById("presence").textContent,
})`)

// The widget shows the team's availability: the greeting on an empty
// conversation, how soon they reply, the away message outside the hours
// (and the user can still write), and, live, whether anybody is online.
func TestWidgetShowsAvailability(t *testing.T) {
	e := newEnv(t)
	closed, _ := hours.Parse("none")
	if err := e.db.SetAvailability(context.Background(), e.app.ID, store.Availability{TimeZone: "Europe/Berlin", Hours: closed,
		Greeting: "Hi there! <b>How can we help?</b>", AwayMessage: "We're closed today; we'll answer tomorrow.", ReplyTime: "hour"}); err != nil {
		t.Fatal(err)
	}
	tab := e.newTab(t, "user")
	navigate(t, tab, e.pageURL(e.hostURL(), "u_ann"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	v := eventually(t, frame, "the availability", presenceView, func(v map[string]any) bool { return v["notice"] != "" })
	if v["greeting"] != "Hi there! <b>How can we help?</b>" || v["replyTime"] != "Usually replies within an hour" ||
		v["notice"] != "We're closed today; we'll answer tomorrow." {
		t.Errorf("shown %v", v)
	}
	send(t, frame, "Is anyone there?")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Is anyone there?"})
	eventually(t, frame, "the greeting gone once the conversation has a message", presenceView, func(v map[string]any) bool { return v["greeting"] == "" })

	// Open all day now, and nobody online: the widget says so; then an
	// agent opens the inbox, and the note goes, live.
	if err := e.db.SetAvailability(context.Background(), e.app.ID, store.Availability{TimeZone: "UTC", ReplyTime: "hour"}); err != nil {
		t.Fatal(err)
	}
	navigate(t, tab, e.pageURL(e.hostURL(), "u_ann"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ = e.chatFrame(t, tab, "frame-2")
	waitConnected(t, frame)
	eventually(t, frame, "the note that nobody is online", presenceView, func(v map[string]any) bool {
		return v["notice"] == "Nobody is online right now. Leave a message and we'll answer as soon as we can."
	})
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	dash := e.signIn(t, olivia, "dashboard")
	navigate(t, dash, e.parleyURL+"/dashboard/apps/"+e.app.ID)
	waitLive(t, dash)
	eventually(t, frame, "the note gone once an agent is online", presenceView, func(v map[string]any) bool { return v["notice"] == "" })
}
