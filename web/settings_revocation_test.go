package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

// settingsChangedMessage is what the widget is told when the site
// tightened who may chat.
const settingsChangedMessage = "this chat session has ended: the site changed who may chat"

// whoMayChat is the settings form of an app made by newApp, with the
// identity mode and the two checkboxes as given; an unticked checkbox is
// left out, as browsers do.
func whoMayChat(mode string, requireJWT, refuseAnonymous bool) url.Values {
	f := settingsForm(requireJWT, refuseAnonymous)
	f.Set("identity_mode", mode)
	return f
}

// widgets are open widget sockets of one app, one of each kind of session
// an owner can tighten away.
type widgets struct {
	hash, jwt, unverified, visitor *wsClient
	tokens                         map[*wsClient]string
}

// openWidgets starts a session of each kind in app (which must be in
// monitor mode, letting everyone in) and opens its socket. The users'
// ids start with user, so each call's users are their own.
func (ts *testServer) openWidgets(t *testing.T, app testApp, user string) widgets {
	t.Helper()
	w := widgets{tokens: map[*wsClient]string{}}
	for _, c := range []struct {
		dst  **wsClient
		body map[string]any
		kind string
	}{
		{&w.hash, verifiedUser(app, user+"-hash"), "verified"},
		{&w.jwt, jwtUser(app, ts.userJWT(t, app, user+"-jwt")), "verified"},
		{&w.unverified, fields(app, "user_id", user+"-claim"), "unverified"},
		{&w.visitor, fields(app), "anonymous"},
	} {
		s := ts.session(t, c.body)
		kind := "unverified"
		if s.Verified {
			kind = "verified"
		} else if s.Anonymous {
			kind = "anonymous"
		}
		if kind != c.kind {
			t.Fatalf("session %+v is %s, want %s", s, kind, c.kind)
		}
		*c.dst = ts.connect(t, s.Token)
		w.tokens[*c.dst] = s.Token
	}
	return w
}

// expectSettingsChangedBy reads until the server ends the socket, which
// must happen by deadline: a session_ended frame saying the site changed
// who may chat, then close 1008 settings_changed.
func (c *wsClient) expectSettingsChangedBy(deadline time.Time) {
	c.t.Helper()
	c.conn.SetReadDeadline(deadline)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("socket ended with %v before a session_ended frame, or not by the deadline", err)
		}
		f := c.parse(data)
		if f.Type != "error" {
			continue
		}
		var msg string
		if f.Code != "session_ended" || json.Unmarshal(f.Message, &msg) != nil || msg != settingsChangedMessage {
			c.t.Fatalf("got error frame %s, want session_ended %q", data, settingsChangedMessage)
		}
		break
	}
	_, data, err := c.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != store.EndSettingsChanged {
		c.t.Fatalf("after session_ended: frame %s, error %v; want close 1008 %q by the deadline", data, err, store.EndSettingsChanged)
	}
}

// stillWorks proves each socket is open and usable.
func stillWorks(sockets ...*wsClient) {
	for _, w := range sockets {
		w.ping()
		w.startConversation("still here")
	}
}

// TestTighteningWhoMayChatClosesTheirSockets: saving the settings form with
// a tighter "who may chat" ends, within a second, exactly the open chats
// the new settings would refuse (session_ended, close 1008) and their
// sessions; every other chat, and every chat of another app, goes on.
// Saving unchanged or looser settings ends nothing.
func TestTighteningWhoMayChatClosesTheirSockets(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	other := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	if page := text(b.get(t, settingsPath(app)).Body); !strings.Contains(page, "ends at once the open chats they no longer allow") {
		t.Error("the settings page does not say that tightening ends open chats")
	}
	w := ts.openWidgets(t, app, "u")
	o := ts.openWidgets(t, other, "u")
	save := func(form url.Values) time.Time {
		t.Helper()
		b.post(t, settingsPath(app), form).wantRedirect(t, settingsPath(app)+"?notice=saved")
		return time.Now().Add(endWithin)
	}

	// Saving the settings as they are ends nothing.
	save(whoMayChat(store.ModeMonitor, false, false))
	time.Sleep(2 * chat.DefaultEndPoll) // long enough for the hub to have seen an end
	stillWorks(w.hash, w.jwt, w.unverified, w.visitor)

	// Requiring JWTs ends the user_hash session only.
	w.hash.expectSettingsChangedBy(save(whoMayChat(store.ModeMonitor, true, false)))
	stillWorks(w.jwt, w.unverified, w.visitor)
	ts.wantTokenDead(t, w.tokens[w.hash])
	ts.postSession(t, verifiedUser(app, "u-hash")).wantError(t, http.StatusUnauthorized, "identity_jwt_required")

	// Refusing anonymous visitors ends the visitor's.
	w.visitor.expectSettingsChangedBy(save(whoMayChat(store.ModeMonitor, true, true)))
	stillWorks(w.jwt, w.unverified)
	ts.wantTokenDead(t, w.tokens[w.visitor])
	ts.postSession(t, fields(app)).wantError(t, http.StatusForbidden, "anonymous_not_allowed")

	// Enforcing the identity mode ends the unverified claim's.
	w.unverified.expectSettingsChangedBy(save(whoMayChat(store.ModeEnforced, true, true)))
	stillWorks(w.jwt)
	ts.wantTokenDead(t, w.tokens[w.unverified])
	ts.postSession(t, fields(app, "user_id", "u-claim")).wantError(t, http.StatusUnauthorized, "identity_hash_missing")

	// Loosening everything again ends nothing, and lets them back in.
	save(whoMayChat(store.ModeMonitor, false, false))
	again := ts.openWidgets(t, app, "again")
	save(whoMayChat(store.ModeMonitor, false, false))
	time.Sleep(2 * chat.DefaultEndPoll)
	stillWorks(w.jwt, again.hash, again.jwt, again.unverified, again.visitor)

	// Another app's chats were never touched.
	stillWorks(o.hash, o.jwt, o.unverified, o.visitor)
}

// TestTighteningEverythingAtOnce: one save that turns on all three ends
// the three kinds of session it no longer allows together, within a second.
func TestTighteningEverythingAtOnce(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	w := ts.openWidgets(t, app, "u")

	b.post(t, settingsPath(app), whoMayChat(store.ModeEnforced, true, true)).wantRedirect(t, settingsPath(app)+"?notice=saved")
	deadline := time.Now().Add(endWithin)
	w.hash.expectSettingsChangedBy(deadline)
	w.unverified.expectSettingsChangedBy(deadline)
	w.visitor.expectSettingsChangedBy(deadline)
	stillWorks(w.jwt)
	// The widget's new session keeps working under the new settings.
	ts.connect(t, ts.session(t, jwtUser(app, ts.userJWT(t, app, "u-jwt"))).Token).ping()
}
