package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// An identity JWT with a jti is good for one session. A single-page app
// calls Parley('update') on every navigation, with the token it already
// has: that must keep the chat going, not spend the token a second time
// and be refused as a replay.
func TestSingleUseJWTSurvivesUpdate(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "page")
	navigate(t, tab, e.hostURL()+"/?user=u_jay&jwt")
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)

	do(t, tab, chromedp.Evaluate[chromedp.Void](`Parley('update', {}); Parley('update', {}); Parley('show')`))
	send(t, frame, "first")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "first"})
	send(t, frame, "second") // a round trip after any request the updates started has ended
	waitMessages(t, frame, chatMessage{Author: "me", Text: "first"}, chatMessage{Author: "me", Text: "second"})

	convs := e.conversations(t)
	if len(convs) != 1 || convs[0].User.UserID != "u_jay" || !convs[0].User.Verified {
		t.Fatalf("conversations = %+v, want one of verified u_jay", convs)
	}
	if n := strings.Count(e.logs.String(), "path=/api/widget/sessions"); n != 1 {
		t.Errorf("%d session requests, want 1: an update with the same token must not spend it again", n)
	}
}
