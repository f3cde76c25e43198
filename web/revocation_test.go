package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/store"
)

// The promise: a socket of an ended session is closed within a second of
// the call that ended it. The hub polls for ends every 250 ms.
const endWithin = time.Second

// expectEndedBy reads until the server ends the socket, which must happen
// by deadline: a session_ended error frame, then close 1008 with reason.
// Frames queued before the end (an unread count, say) are skipped.
func (c *wsClient) expectEndedBy(deadline time.Time, reason string) {
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
		if f.Code != "session_ended" || len(f.Message) < 3 {
			c.t.Fatalf("got error frame %s, want session_ended with a message", data)
		}
		break
	}
	_, data, err := c.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != reason {
		c.t.Fatalf("after session_ended: frame %s, error %v; want close 1008 %q by the deadline", data, err, reason)
	}
}

func (c *wsClient) parse(data []byte) serverFrame {
	c.t.Helper()
	var f serverFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("frame %q is not JSON: %v", data, err)
	}
	f.raw = string(data)
	return f
}

// wantTokenDead checks that a session token no longer opens a socket.
func (ts *testServer) wantTokenDead(t *testing.T, token string) {
	t.Helper()
	c := ts.open(t)
	c.send(map[string]any{"type": "auth", "token": token})
	c.expectError("unauthorized")
	c.expectClose(4001)
}

// withSecret is app as its backend sees it after switching to secret.
func withSecret(app testApp, secret string) testApp {
	app.Secret = secret
	return app
}

func (ts *testServer) previousSecretID(t *testing.T, app testApp) string {
	t.Helper()
	a, err := ts.DB.App(context.Background(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.PreviousSecrets) != 1 {
		t.Fatalf("app has %d previous secrets, want 1", len(a.PreviousSecrets))
	}
	return a.PreviousSecrets[0].ID
}

// TestRevokedSecretClosesItsSockets: revoking a retired identity secret,
// from the dashboard or in the store, closes the sockets of the sessions
// it verified within a second; a visitor's socket and one verified by the
// current secret stay open and keep working.
func TestRevokedSecretClosesItsSockets(t *testing.T) {
	for _, via := range []string{"dashboard", "store"} {
		t.Run(via, func(t *testing.T) {
			ts := newTestServer(t)
			ann := ts.newOwner(t, "Ann")
			app := ts.ownerApp(t, ann, store.ModeEnforced)
			b := ts.signIn(t, ann)

			old := ts.session(t, verifiedUser(app, "u-old"))
			b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {"0"}}).wantStatus(t, http.StatusSeeOther)
			current := withSecret(app, b.reveal(t, app))
			fresh := ts.session(t, verifiedUser(current, "u-new"))
			visitor := ts.session(t, fields(app))
			oldAgain := ts.session(t, verifiedUser(app, "u-old")) // the old secret still verifies until revoked
			wOld, wOldAgain := ts.connect(t, old.Token), ts.connect(t, oldAgain.Token)
			wFresh, wVisitor := ts.connect(t, fresh.Token), ts.connect(t, visitor.Token)

			prev := ts.previousSecretID(t, app)
			if via == "dashboard" {
				b.post(t, settingsPath(app, "secret", "revoke"), url.Values{"secret_id": {prev}}).wantRedirect(t, settingsPath(app)+"?notice=revoked")
			} else if err := ts.DB.RevokeIdentitySecret(context.Background(), app.ID, prev); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(endWithin)
			wOld.expectEndedBy(deadline, store.EndSecretRevoked)
			wOldAgain.expectEndedBy(deadline, store.EndSecretRevoked)

			wFresh.ping()
			wFresh.startConversation("still here")
			wVisitor.ping()
			wVisitor.startConversation("me too")
			ts.wantTokenDead(t, old.Token)
			ts.wantHashRefused(t, app, app.Secret, "the revoked secret")
		})
	}
}

// TestRotateNowEndsTheOldSecretsSessions: "rotate now" (ReplaceIdentitySecret)
// ends the sessions of the secret it replaces, and only those.
func TestRotateNowEndsTheOldSecretsSessions(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)
	old := ts.session(t, verifiedUser(app, "u1"))
	visitor := ts.session(t, fields(app))
	wOld, wVisitor := ts.connect(t, old.Token), ts.connect(t, visitor.Token)

	b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {"now"}}).wantStatus(t, http.StatusSeeOther)
	wOld.expectEndedBy(time.Now().Add(endWithin), store.EndSecretRevoked)
	wVisitor.ping()

	current := withSecret(app, b.reveal(t, app))
	ts.connect(t, ts.session(t, verifiedUser(current, "u1")).Token).ping()
}

// TestDisabledAppClosesItsWidgets: disabling an app closes every widget
// socket of that app, verified or not, and none of another app; its inbox
// socket stays and still hears the app's activity; enabling it again lets
// new chats in.
func TestDisabledAppClosesItsWidgets(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	other := ts.ownerApp(t, ann, store.ModeEnforced)
	inbox := ts.signIn(t, ann).inbox(t, app.ID)

	user, visitor := ts.session(t, verifiedUser(app, "u1")), ts.session(t, fields(app))
	wUser, wVisitor := ts.connect(t, user.Token), ts.connect(t, visitor.Token)
	wOther := ts.connect(t, ts.session(t, verifiedUser(other, "u1")).Token)
	convID := wUser.startConversation("hello")
	inbox.waitFor("message")

	if err := ts.DB.SetAppDisabled(context.Background(), app.ID, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(endWithin)
	wUser.expectEndedBy(deadline, store.EndAppDisabled)
	wVisitor.expectEndedBy(deadline, store.EndAppDisabled)
	wOther.ping()

	// The dashboard and the server API go on: a reply reaches the inbox.
	ts.reply(t, app, convID, "we are closed for now")
	if f := inbox.waitFor("message"); f.ConversationID != convID {
		t.Fatalf("inbox got %s, want the reply in %s", f.raw, convID)
	}
	ts.postSession(t, fields(app)).wantError(t, http.StatusForbidden, "app_disabled")
	// The sessions are gone, not just their sockets: a reconnect is refused.
	ts.wantTokenDead(t, user.Token)
	ts.wantTokenDead(t, visitor.Token)

	if err := ts.DB.SetAppDisabled(context.Background(), app.ID, false); err != nil {
		t.Fatal(err)
	}
	ts.wantTokenDead(t, user.Token) // turning it back on does not revive them
	ts.connect(t, ts.session(t, verifiedUser(app, "u1")).Token).ping()
}

// TestEndSessionClosesOnlyThatSession: a widget shutdown (a logout in one
// tab) ends that tab's session; the same user's other tab, with a session
// of its own, stays.
func TestEndSessionClosesOnlyThatSession(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	tab1, tab2 := ts.session(t, verifiedUser(app, "u1")), ts.session(t, verifiedUser(app, "u1"))
	w1, w1Again, w2 := ts.connect(t, tab1.Token), ts.connect(t, tab1.Token), ts.connect(t, tab2.Token)

	if err := ts.DB.EndSession(context.Background(), tab1.Token); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(endWithin)
	w1.expectEndedBy(deadline, store.EndShutdown)
	w1Again.expectEndedBy(deadline, store.EndShutdown)
	w2.ping()
	w2.startConversation("still logged in here")
	ts.wantTokenDead(t, tab1.Token)
}

// TestExpiredSecretSweepEndsSessions: when a rotated-out secret's grace
// period runs out, the sweep ends the sessions it verified and their
// sockets close; sessions of the current secret stay.
func TestExpiredSecretSweepEndsSessions(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	ctx := context.Background()
	old := ts.session(t, verifiedUser(app, "u1"))
	wOld := ts.connect(t, old.Token)
	const grace = 300 * time.Millisecond
	s, err := ts.DB.RotateIdentitySecret(ctx, app.ID, grace)
	if err != nil {
		t.Fatal(err)
	}
	fresh := ts.session(t, verifiedUser(withSecret(app, s.Secret), "u2"))
	wFresh := ts.connect(t, fresh.Token)

	// Before the grace period ends, the sweep ends nothing.
	if n, err := ts.DB.EndSessionsOfExpiredSecrets(ctx); err != nil || n != 0 {
		t.Fatalf("sweep within the grace period = %d, %v; want 0", n, err)
	}
	time.Sleep(grace + 50*time.Millisecond)
	if n, err := ts.DB.EndSessionsOfExpiredSecrets(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the grace period = %d, %v; want 1", n, err)
	}
	wOld.expectEndedBy(time.Now().Add(endWithin), store.EndSecretRevoked)
	wFresh.ping()
}

// TestAPIKeyRotationIsImmediate: no session or socket hangs off the API
// key; it is looked up on every request, so the old key is refused on the
// very next one, even on a connection that just used it. Widgets are not
// affected.
func TestAPIKeyRotationIsImmediate(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	w := ts.connect(t, ts.session(t, verifiedUser(app, "u1")).Token)
	ts.api(t, app.APIKey, http.MethodGet, "/conversations", nil).wantStatus(t, http.StatusOK) // keeps the connection alive
	key, err := ts.DB.RotateAPIKey(context.Background(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	ts.api(t, app.APIKey, http.MethodGet, "/conversations", nil).wantError(t, http.StatusUnauthorized, "unauthorized")
	ts.api(t, key, http.MethodGet, "/conversations", nil).wantStatus(t, http.StatusOK)
	w.ping()
	ts.wantHashAccepted(t, app, app.Secret, "the identity secret after an API key rotation")
}
