package chat_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

// alive proves a widget socket still works: list is answered at once.
func alive(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	sendJSON(t, conn, map[string]any{"type": "list"})
	if f := readFrame(t, conn); f["type"] != "conversations" {
		t.Fatalf("got %v, want conversations", f)
	}
}

// expectEnded reads the session_ended error frame and the 1008 close with
// reason.
func expectEnded(t *testing.T, conn *websocket.Conn, reason string) {
	t.Helper()
	f := readFrame(t, conn)
	if f["type"] != "error" || f["code"] != "session_ended" || f["message"] == "" {
		t.Fatalf("got %v, want a session_ended error frame", f)
	}
	wantKeys(t, f, "type", "code", "message")
	expectClose(t, conn, websocket.ClosePolicyViolation, reason)
}

// waitConnections polls until the subject has n widget sockets registered.
func (r *rig) waitConnections(t *testing.T, subjectID string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for r.hub.Connections(subjectID) != n {
		if time.Now().After(deadline) {
			t.Fatalf("subject %s has %d widget sockets, want %d", subjectID, r.hub.Connections(subjectID), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEndSessions: an end naming a token closes that session's sockets
// only; an app-wide end closes every widget socket of the app and none of
// another app's; agent sockets stay either way.
func TestEndSessions(t *testing.T) {
	r := newRig(t)
	shop, other := r.app(t, "Shop"), r.app(t, "Other")
	tab1, tab2 := r.session(t, shop, "ann"), r.session(t, shop, "ann") // one user, two tabs
	bob := r.session(t, shop, "bob")
	olga := r.session(t, other, "olga")
	shopConv := r.conversation(t, bob)

	w1, w2, wBob, wOlga := r.widget(t, tab1), r.widget(t, tab2), r.widget(t, bob), r.widget(t, olga)
	tab1Again := r.widget(t, tab1) // the same session on a second socket
	agent := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "k1", ExpiresAt: time.Now().Add(time.Hour)})
	r.waitAgents(t, shop.ID, 1)

	if n := r.hub.EndSessions([]store.SessionEnd{{AppID: shop.ID, TokenHash: tab1.TokenHash, Reason: store.EndShutdown}}); n != 2 {
		t.Fatalf("EndSessions closed %d sockets, want the 2 of the session", n)
	}
	expectEnded(t, w1, store.EndShutdown)
	expectEnded(t, tab1Again, store.EndShutdown)
	alive(t, w2)
	alive(t, wBob)
	r.waitConnections(t, tab1.SubjectID, 1)

	if n := r.hub.EndSessions([]store.SessionEnd{{AppID: shop.ID, Reason: store.EndAppDisabled}}); n != 2 {
		t.Fatalf("EndSessions closed %d sockets, want the shop's 2 left", n)
	}
	expectEnded(t, w2, store.EndAppDisabled)
	expectEnded(t, wBob, store.EndAppDisabled)
	alive(t, wOlga)
	r.sentinel(t, shopConv, agent) // the agent socket is open and got nothing else
	if r.hub.EndSessions(nil) != 0 {
		t.Fatal("no ends closed something")
	}
}

// TestWatchSessionEnds: ends written to the database after the watcher
// started close their sockets within a second, whoever wrote them; ends
// from before it started are not replayed.
func TestWatchSessionEnds(t *testing.T) {
	r := newRig(t)
	shop := r.app(t, "Shop")
	// An app-wide end from before the watcher, then the app back on.
	if err := r.db.SetAppDisabled(r.ctx, shop.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := r.db.SetAppDisabled(r.ctx, shop.ID, false); err != nil {
		t.Fatal(err)
	}
	ann, bob := r.session(t, shop, "ann"), r.session(t, shop, "bob")
	wAnn, wBob := r.widget(t, ann), r.widget(t, bob)

	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	if err := r.hub.WatchSessionEnds(ctx, chat.DefaultEndPoll); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * chat.DefaultEndPoll) // a few polls: the old end must not close anything
	alive(t, wAnn)

	start := time.Now()
	if err := r.db.EndSession(r.ctx, ann.Token); err != nil {
		t.Fatal(err)
	}
	expectEndedBy(t, wAnn, store.EndShutdown, start.Add(time.Second))
	alive(t, wBob)

	// Once the watcher's context ends, nothing more is applied.
	cancel()
	time.Sleep(2 * chat.DefaultEndPoll)
	if err := r.db.EndSession(r.ctx, bob.Token); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * chat.DefaultEndPoll)
	alive(t, wBob)
}

// expectEndedBy is expectEnded with a deadline instead of waitTimeout.
func expectEndedBy(t *testing.T, conn *websocket.Conn, reason string, deadline time.Time) {
	t.Helper()
	conn.SetReadDeadline(deadline)
	var f map[string]any
	if err := conn.ReadJSON(&f); err != nil {
		t.Fatalf("no session_ended frame by the deadline: %v", err)
	}
	if f["type"] != "error" || f["code"] != "session_ended" {
		t.Fatalf("got %v, want a session_ended error frame", f)
	}
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != reason {
		t.Fatalf("after session_ended: %v, want close 1008 %q", err, reason)
	}
}

// endingStore ends a session just after the hub has looked it up, as a
// revocation landing between the lookup and the registration would.
type endingStore struct {
	*store.DB
	mu   sync.Mutex
	done bool
}

func (s *endingStore) SessionByToken(ctx context.Context, token string) (*store.Session, error) {
	sess, err := s.DB.SessionByToken(ctx, token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && !s.done {
		s.done = true
		if err := s.DB.EndSession(ctx, token); err != nil {
			return nil, err
		}
	}
	return sess, err
}

// TestSessionEndedDuringAuth: a session that ends after the socket looked
// it up but before it registered (so no EndSessions could find it) does not
// survive: the socket is refused once it is registered.
func TestSessionEndedDuringAuth(t *testing.T) {
	r := newRigWith(t, func(db *store.DB) chat.Store { return &endingStore{DB: db} })
	shop := r.app(t, "Shop")
	ann := r.session(t, shop, "ann")
	conn := r.dial(t, "/ws")
	sendJSON(t, conn, map[string]string{"type": "auth", "token": ann.Token})
	if f := readFrame(t, conn); f["type"] != "error" || f["code"] != "session_ended" {
		t.Fatalf("got %v, want session_ended", f)
	}
	expectClose(t, conn, websocket.ClosePolicyViolation, "")
	r.waitConnections(t, ann.SubjectID, 0)
}
