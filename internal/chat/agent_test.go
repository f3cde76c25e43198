package chat_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
)

const waitTimeout = 5 * time.Second // for socket reads and polling, never for speed

// rig is a real hub behind a real HTTP server on 127.0.0.1, on a real
// SQLite file: /ws serves widgets, /agent?k=N serves the Agent registered
// under N.
type rig struct {
	ctx  context.Context
	db   *store.DB
	hub  *chat.Hub
	url  string
	logs *syncBuffer

	mu     sync.Mutex
	agents map[string]chat.Agent
}

func newRig(t *testing.T) *rig {
	return newRigWith(t, func(db *store.DB) chat.Store { return db })
}

// newRigWith lets a test wrap the store the hub uses.
func newRigWith(t *testing.T, wrap func(*store.DB) chat.Store) *rig {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "parley.db"), masterkey.Generate())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logs := &syncBuffer{}
	r := &rig{ctx: ctx, db: db, logs: logs, agents: map[string]chat.Agent{},
		hub: chat.NewHub(wrap(db), slog.New(slog.NewTextHandler(logs, nil)))}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		conn, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		switch req.URL.Path {
		case "/ws":
			r.hub.Serve(req.Context(), conn)
		case "/agent":
			r.mu.Lock()
			a := r.agents[req.URL.Query().Get("k")]
			r.mu.Unlock()
			r.hub.ServeAgent(req.Context(), conn, a)
		}
	}))
	t.Cleanup(srv.Close)
	// Runs before srv.Close: every connection the test left open must end.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := r.hub.Shutdown(ctx); err != nil {
			t.Errorf("hub.Shutdown: %v (a connection did not end)", err)
		}
	})
	r.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return r
}

func (r *rig) app(t *testing.T, name string) store.App {
	t.Helper()
	app, err := r.db.CreateApp(r.ctx, store.NewApp{Name: name, Origins: []string{"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	return app.App
}

func (r *rig) session(t *testing.T, app store.App, user string) store.Session {
	t.Helper()
	s, err := r.db.CreateSession(r.ctx, store.NewSession{AppID: app.ID, Kind: store.KindUser, IdentityKey: "uid:" + user,
		UserID: user, ParentOrigin: "https://shop.example", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// conversation starts a conversation of the session's subject (straight in
// the store, so no agent hears of it).
func (r *rig) conversation(t *testing.T, s store.Session) store.Conversation {
	t.Helper()
	p, err := r.db.AddUserMessage(r.ctx, store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID,
		ClientMsgID: fmt.Sprintf("seed-%d", time.Now().UnixNano()), Body: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	return p.Conversation
}

func (r *rig) dial(t *testing.T, path string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(r.url+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// widget connects and authenticates a widget, reading its welcome.
func (r *rig) widget(t *testing.T, s store.Session) *websocket.Conn {
	t.Helper()
	conn := r.dial(t, "/ws")
	if err := conn.WriteJSON(map[string]string{"type": "auth", "token": s.Token}); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, conn); f["type"] != "welcome" {
		t.Fatalf("widget welcome = %v", f)
	}
	return conn
}

// agent opens an agent socket and checks that its first frame is exactly
// the welcome.
func (r *rig) agent(t *testing.T, a chat.Agent) *websocket.Conn {
	t.Helper()
	conn := r.agentNoWelcome(t, a)
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	kind, data, err := conn.ReadMessage()
	if err != nil || kind != websocket.TextMessage || string(data) != `{"type":"welcome"}` {
		t.Fatalf("agent's first frame = %d %q, %v; want {\"type\":\"welcome\"}", kind, data, err)
	}
	return conn
}

func (r *rig) agentNoWelcome(t *testing.T, a chat.Agent) *websocket.Conn {
	t.Helper()
	r.mu.Lock()
	k := fmt.Sprint(len(r.agents))
	r.agents[k] = a
	r.mu.Unlock()
	return r.dial(t, "/agent?k="+k)
}

// waitAgents polls until the app has n agent sockets registered.
func (r *rig) waitAgents(t *testing.T, appID string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for r.hub.Agents(appID) != n {
		if time.Now().After(deadline) {
			t.Fatalf("app %s has %d agent sockets, want %d", appID, r.hub.Agents(appID), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readFrame(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	var f map[string]any
	if err := conn.ReadJSON(&f); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectClose reads the next frame and requires it to be a close frame
// with code (and, when text is not empty, that reason).
func expectClose(t *testing.T, conn *websocket.Conn, code int, text string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	_, data, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("got frame %q, error %v; want close %d", data, err, code)
	}
	if ce.Code != code || (text != "" && ce.Text != text) {
		t.Fatalf("close %d %q, want %d %q", ce.Code, ce.Text, code, text)
	}
}

// sentinel marks a point in an agent socket's stream: a conversation frame
// for conv. Frames are queued in order, so reading the sentinel next
// proves nothing else was queued for that socket before it.
func (r *rig) sentinel(t *testing.T, conv store.Conversation, conns ...*websocket.Conn) {
	t.Helper()
	conv.Status = "sentinel"
	r.hub.ConversationChanged(conv)
	for i, conn := range conns {
		if f := readFrame(t, conn); f["type"] != "conversation" || f["status"] != "sentinel" || f["conversation_id"] != conv.ID {
			t.Fatalf("socket %d: got %v before the sentinel", i, f)
		}
	}
}

func sendJSON(t *testing.T, conn *websocket.Conn, v any) {
	t.Helper()
	if err := conn.WriteJSON(v); err != nil {
		t.Fatal(err)
	}
}

func wantKeys(t *testing.T, f map[string]any, keys ...string) {
	t.Helper()
	var got []string
	for k := range f {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Fatalf("frame %v has keys %v, want %v", f, got, keys)
	}
}

func wantMessage(t *testing.T, f map[string]any, convID, author, body string) {
	t.Helper()
	if f["type"] != "message" || f["conversation_id"] != convID {
		t.Fatalf("got %v, want a message frame of %s", f, convID)
	}
	wantKeys(t, f, "type", "conversation_id", "message")
	m, _ := f["message"].(map[string]any)
	if m["conversation_id"] != convID || m["author"] != author || m["body"] != body || m["seq"] == nil || m["id"] == nil {
		t.Fatalf("message = %v, want %s's %q in %s", m, author, body, convID)
	}
}

// TestAgentReceivesItsAppsMessages: an agent sees its app's user messages
// (once, not their resends) and agent replies, and never another app's.
func TestAgentReceivesItsAppsMessages(t *testing.T) {
	r := newRig(t)
	shop, other := r.app(t, "Shop"), r.app(t, "Other")
	ann := r.session(t, shop, "ann")
	bob := r.session(t, other, "bob")
	otherConv := r.conversation(t, bob)

	agentShop := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "k1", ExpiresAt: time.Now().Add(time.Hour)})
	agentOther := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: other.ID, SessionKey: "k1", ExpiresAt: time.Now().Add(time.Hour)})
	r.waitAgents(t, shop.ID, 1)
	r.waitAgents(t, other.ID, 1)

	w := r.widget(t, ann)
	sendJSON(t, w, map[string]any{"type": "send", "client_msg_id": "m1", "body": "where is my order?"})
	ack := readFrame(t, w)
	if ack["type"] != "ack" {
		t.Fatalf("widget got %v, want ack", ack)
	}
	convID := ack["conversation"].(map[string]any)["id"].(string)
	wantMessage(t, readFrame(t, agentShop), convID, "user", "where is my order?")

	// A resend is acked as a duplicate and not announced again: the next
	// frame the agent gets is the next new message.
	sendJSON(t, w, map[string]any{"type": "send", "conversation_id": convID, "client_msg_id": "m1", "body": "where is my order?"})
	if f := readFrame(t, w); f["type"] != "ack" || f["duplicate"] != true {
		t.Fatalf("resend answered %v, want a duplicate ack", f)
	}
	sendJSON(t, w, map[string]any{"type": "send", "conversation_id": convID, "client_msg_id": "m2", "body": "hello?"})
	if f := readFrame(t, w); f["type"] != "ack" || f["duplicate"] != false {
		t.Fatalf("send answered %v, want an ack", f)
	}
	wantMessage(t, readFrame(t, agentShop), convID, "user", "hello?")

	// An agent reply reaches the widget and the app's agents.
	p, err := r.db.AddAgentMessage(r.ctx, shop.ID, convID, "Sam", "on its way")
	if err != nil {
		t.Fatal(err)
	}
	r.hub.AgentMessage(r.ctx, p)
	wantMessage(t, readFrame(t, agentShop), convID, "agent", "on its way")
	if f := readFrame(t, w); f["type"] != "message" {
		t.Fatalf("widget got %v, want the agent's message", f)
	}

	// All of the shop's activity is done (the second send's fan-out ran
	// after the first's), and the other app's agent heard none of it.
	r.sentinel(t, otherConv, agentOther)

	// And the other way round.
	p, err = r.db.AddAgentMessage(r.ctx, other.ID, otherConv.ID, "Olga", "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	r.hub.AgentMessage(r.ctx, p)
	wantMessage(t, readFrame(t, agentOther), otherConv.ID, "agent", "hi bob")
	shopConv, err := r.db.AppConversation(r.ctx, shop.ID, convID)
	if err != nil {
		t.Fatal(err)
	}
	r.sentinel(t, shopConv, agentShop)
}

// TestAgentReceivesUserTyping: a widget's typing frame reaches its app's
// agents, but only for the subject's own conversation.
func TestAgentReceivesUserTyping(t *testing.T) {
	r := newRig(t)
	shop, other := r.app(t, "Shop"), r.app(t, "Other")
	ann, eve := r.session(t, shop, "ann"), r.session(t, shop, "eve")
	annConv, eveConv := r.conversation(t, ann), r.conversation(t, eve)
	otherConv := r.conversation(t, r.session(t, other, "bob"))

	agent := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "k1", ExpiresAt: time.Now().Add(time.Hour)})
	agentOther := r.agent(t, chat.Agent{OwnerID: "own_2", AppID: other.ID, SessionKey: "k2", ExpiresAt: time.Now().Add(time.Hour)})
	r.waitAgents(t, shop.ID, 1)
	r.waitAgents(t, other.ID, 1)
	w := r.widget(t, ann)

	sendJSON(t, w, map[string]any{"type": "typing", "conversation_id": annConv.ID, "typing": true})
	f := readFrame(t, agent)
	wantKeys(t, f, "type", "conversation_id", "author", "typing")
	if f["type"] != "typing" || f["conversation_id"] != annConv.ID || f["author"] != "user" || f["typing"] != true {
		t.Fatalf("agent got %v, want ann typing", f)
	}

	// Typing in someone else's conversation is refused and not relayed.
	sendJSON(t, w, map[string]any{"type": "typing", "conversation_id": eveConv.ID, "typing": true})
	if f := readFrame(t, w); f["type"] != "error" || f["code"] != "not_found" {
		t.Fatalf("widget got %v, want not_found", f)
	}
	sendJSON(t, w, map[string]any{"type": "typing", "conversation_id": annConv.ID, "typing": false})
	f = readFrame(t, agent)
	if f["type"] != "typing" || f["conversation_id"] != annConv.ID || f["typing"] != false {
		t.Fatalf("agent got %v, want ann stopped typing (and nothing about eve's conversation)", f)
	}
	r.sentinel(t, otherConv, agentOther)
}

// TestAgentConversationChanged: status changes reach the app's agents only.
func TestAgentConversationChanged(t *testing.T) {
	r := newRig(t)
	shop, other := r.app(t, "Shop"), r.app(t, "Other")
	conv := r.conversation(t, r.session(t, shop, "ann"))
	otherConv := r.conversation(t, r.session(t, other, "bob"))
	agent := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "k1", ExpiresAt: time.Now().Add(time.Hour)})
	agentOther := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: other.ID, SessionKey: "k1", ExpiresAt: time.Now().Add(time.Hour)})
	r.waitAgents(t, shop.ID, 1)
	r.waitAgents(t, other.ID, 1)

	conv.Status = "closed"
	r.hub.ConversationChanged(conv)
	f := readFrame(t, agent)
	wantKeys(t, f, "type", "conversation_id", "status")
	if f["type"] != "conversation" || f["conversation_id"] != conv.ID || f["status"] != "closed" {
		t.Fatalf("agent got %v, want conversation closed", f)
	}
	r.sentinel(t, otherConv, agentOther)
}

// TestAgentSocketIsReceiveOnly: control frames are answered, any data
// frame ends the socket.
func TestAgentSocketIsReceiveOnly(t *testing.T) {
	r := newRig(t)
	shop := r.app(t, "Shop")
	conv := r.conversation(t, r.session(t, shop, "ann"))
	a := chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "k1", ExpiresAt: time.Now().Add(time.Hour)}

	// A ping is answered and the socket stays open.
	conn := r.agent(t, a)
	r.waitAgents(t, shop.ID, 1)
	pong := make(chan string, 1)
	conn.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := conn.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	frames := make(chan map[string]any, 4)
	go func() {
		for {
			var f map[string]any
			if conn.ReadJSON(&f) != nil {
				close(frames)
				return
			}
			frames <- f
		}
	}()
	select {
	case s := <-pong:
		if s != "p1" {
			t.Fatalf("pong %q, want p1", s)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no pong")
	}
	conv.Status = "closed"
	r.hub.ConversationChanged(conv)
	select {
	case f := <-frames:
		if f["type"] != "conversation" {
			t.Fatalf("got %v after the ping, want the conversation frame", f)
		}
	case <-time.After(waitTimeout):
		t.Fatal("socket stopped delivering after a ping")
	}
	conn.Close()
	r.waitAgents(t, shop.ID, 0)

	for _, tc := range []struct {
		name    string
		kind    int
		payload []byte
		code    int
		text    string
	}{
		{"text frame", websocket.TextMessage, []byte(`{"type":"send","body":"hi"}`), websocket.ClosePolicyViolation, "agent socket is receive-only"},
		{"empty text frame", websocket.TextMessage, nil, websocket.ClosePolicyViolation, "agent socket is receive-only"},
		{"binary frame", websocket.BinaryMessage, []byte{1, 2, 3}, websocket.ClosePolicyViolation, "agent socket is receive-only"},
		{"frame over the read limit", websocket.TextMessage, bytes.Repeat([]byte("a"), chat.MaxAgentFrameBytes+1), websocket.CloseMessageTooBig, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := r.agent(t, a)
			r.waitAgents(t, shop.ID, 1)
			if err := conn.WriteMessage(tc.kind, tc.payload); err != nil {
				t.Fatal(err)
			}
			expectClose(t, conn, tc.code, tc.text)
			r.waitAgents(t, shop.ID, 0)
		})
	}
}

// TestEndAgentSessionAndAccess: sign-out closes that session's sockets;
// losing membership closes that owner's sockets on that app; nothing else.
func TestEndAgentSessionAndAccess(t *testing.T) {
	r := newRig(t)
	shop, other := r.app(t, "Shop"), r.app(t, "Other")
	shopConv := r.conversation(t, r.session(t, shop, "ann"))
	otherConv := r.conversation(t, r.session(t, other, "bob"))
	exp := time.Now().Add(time.Hour)

	s1 := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "key1", ExpiresAt: exp})
	s2 := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "key2", ExpiresAt: exp})
	o2 := r.agent(t, chat.Agent{OwnerID: "own_2", AppID: shop.ID, SessionKey: "key3", ExpiresAt: exp})
	s1Other := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: other.ID, SessionKey: "key2", ExpiresAt: exp})
	r.waitAgents(t, shop.ID, 3)
	r.waitAgents(t, other.ID, 1)

	r.hub.EndAgentSession("key1")
	expectClose(t, s1, chat.CloseSessionInvalid, "")
	r.waitAgents(t, shop.ID, 2)
	r.sentinel(t, shopConv, s2, o2)
	r.sentinel(t, otherConv, s1Other)

	r.hub.EndAgentAccess("own_1", shop.ID)
	expectClose(t, s2, chat.CloseSessionInvalid, "")
	r.waitAgents(t, shop.ID, 1)
	r.sentinel(t, shopConv, o2)
	r.sentinel(t, otherConv, s1Other) // the same owner on another app keeps its socket

	r.hub.EndAgentSession("key2")
	expectClose(t, s1Other, chat.CloseSessionInvalid, "")
	r.waitAgents(t, other.ID, 0)
	r.sentinel(t, shopConv, o2)
}

// TestAgentSocketExpires: the socket is closed with 4001 when the owner's
// session expires, not before; an already expired one is closed at once.
func TestAgentSocketExpires(t *testing.T) {
	r := newRig(t)
	shop := r.app(t, "Shop")
	expires := time.Now().Add(time.Second)
	conn := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "k1", ExpiresAt: expires})
	expectClose(t, conn, chat.CloseSessionInvalid, "session expired")
	if time.Now().Before(expires) {
		t.Fatal("agent socket closed before its session expired")
	}
	r.waitAgents(t, shop.ID, 0)

	for _, exp := range []time.Time{{}, time.Now().Add(-time.Minute)} {
		conn := r.agentNoWelcome(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "k1", ExpiresAt: exp})
		if f := readFrame(t, conn); f["type"] != "welcome" {
			t.Fatalf("got %v, want welcome", f)
		}
		expectClose(t, conn, chat.CloseSessionInvalid, "session expired")
	}
	r.waitAgents(t, shop.ID, 0)
}

// TestSlowAgentIsCut: an agent socket that stops reading is dropped with
// its queue full, while another agent of the app keeps receiving.
func TestSlowAgentIsCut(t *testing.T) {
	r := newRig(t)
	shop := r.app(t, "Shop")
	conv := r.conversation(t, r.session(t, shop, "ann"))
	exp := time.Now().Add(time.Hour)
	slow := r.agent(t, chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "slow", ExpiresAt: exp})
	_ = slow // never read again
	healthy := r.agent(t, chat.Agent{OwnerID: "own_2", AppID: shop.ID, SessionKey: "healthy", ExpiresAt: exp})
	r.waitAgents(t, shop.ID, 2)

	got := make(chan struct{})
	go func() {
		defer close(got)
		for {
			var f struct {
				Type    string
				Message struct{ Body string }
			}
			if healthy.ReadJSON(&f) != nil {
				return
			}
			if f.Message.Body == "still here" {
				return
			}
		}
	}()

	// The cut must come from the full queue, well before a blocked write
	// would reach its 10 s deadline and end the socket anyway.
	big := strings.Repeat("x", chat.MaxBodyBytes)
	deadline := time.Now().Add(7 * time.Second)
	for r.hub.Agents(shop.ID) > 1 {
		if time.Now().After(deadline) {
			t.Fatal("slow agent was not cut when its queue filled")
		}
		for range 50 {
			r.hub.AgentMessage(r.ctx, store.Posted{Conversation: conv, Message: store.Message{ID: "m", ConversationID: conv.ID, Author: "agent", Body: big}})
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.hub.AgentMessage(r.ctx, store.Posted{Conversation: conv, Message: store.Message{ID: "m2", ConversationID: conv.ID, Author: "agent", Body: "still here"}})
	select {
	case <-got:
	case <-time.After(waitTimeout):
		t.Fatal("the healthy agent stopped receiving")
	}
	if n := r.hub.Agents(shop.ID); n != 1 {
		t.Fatalf("agent sockets = %d, want the healthy one", n)
	}
	if !strings.Contains(r.logs.String(), "dropping slow client") {
		t.Fatalf("no slow-client warning logged:\n%s", r.logs.String())
	}
}

// TestShutdownClosesAgents: shutdown says going away to agent sockets as
// to widgets, waits for them, and admits no new ones.
func TestShutdownClosesAgents(t *testing.T) {
	r := newRig(t)
	shop := r.app(t, "Shop")
	ann := r.session(t, shop, "ann")
	a := chat.Agent{OwnerID: "own_1", AppID: shop.ID, SessionKey: "k1", ExpiresAt: time.Now().Add(time.Hour)}
	agent := r.agent(t, a)
	w := r.widget(t, ann)
	r.waitAgents(t, shop.ID, 1)

	ctx, cancel := context.WithTimeout(r.ctx, waitTimeout)
	defer cancel()
	if err := r.hub.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	expectClose(t, agent, websocket.CloseGoingAway, "server shutting down")
	expectClose(t, w, websocket.CloseGoingAway, "server shutting down")
	if n := r.hub.Agents(shop.ID); n != 0 {
		t.Fatalf("agent sockets after shutdown = %d", n)
	}

	late := r.agentNoWelcome(t, a)
	expectClose(t, late, websocket.CloseGoingAway, "server shutting down")
}

// touchStore records TouchSubject calls and can make them fail.
type touchStore struct {
	*store.DB
	fail error

	mu      sync.Mutex
	touched []string
}

func (s *touchStore) TouchSubject(ctx context.Context, subjectID string) error {
	s.mu.Lock()
	s.touched = append(s.touched, subjectID)
	s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	return s.DB.TouchSubject(ctx, subjectID)
}

func (s *touchStore) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.touched)
}

// TestWidgetAuthTouchesSubject: a widget that authenticates marks its
// subject as seen; a refused one does not; a failing touch is logged and
// the chat goes on.
func TestWidgetAuthTouchesSubject(t *testing.T) {
	for _, fail := range []error{nil, errors.New("disk on fire")} {
		t.Run(fmt.Sprint("fail=", fail), func(t *testing.T) {
			var ts *touchStore
			r := newRigWith(t, func(db *store.DB) chat.Store {
				ts = &touchStore{DB: db, fail: fail}
				return ts
			})
			shop := r.app(t, "Shop")
			ann := r.session(t, shop, "ann")

			bad := r.dial(t, "/ws")
			sendJSON(t, bad, map[string]string{"type": "auth", "token": "pst_nope"})
			expectCloseAfterError(t, bad)
			if got := ts.calls(); len(got) != 0 {
				t.Fatalf("a refused auth touched %v", got)
			}

			w := r.widget(t, ann)
			if got := ts.calls(); !slices.Equal(got, []string{ann.SubjectID}) {
				t.Fatalf("touched %v, want [%s]", got, ann.SubjectID)
			}
			sendJSON(t, w, map[string]any{"type": "list"})
			if f := readFrame(t, w); f["type"] != "conversations" {
				t.Fatalf("widget got %v, want conversations", f)
			}
			logged := strings.Contains(r.logs.String(), "disk on fire")
			if logged != (fail != nil) {
				t.Fatalf("touch error logged = %v, want %v:\n%s", logged, fail != nil, r.logs.String())
			}
		})
	}
}

func expectCloseAfterError(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	if f := readFrame(t, conn); f["type"] != "error" {
		t.Fatalf("got %v, want an error frame", f)
	}
	expectClose(t, conn, chat.CloseSessionInvalid, "")
}

// syncBuffer is a log sink safe to read while server goroutines write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
