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

// gateStore holds AddUserMessage until released, telling the test when a
// message has reached it.
type gateStore struct {
	*store.DB
	entered chan string // client_msg_id
	release chan struct{}
	once    sync.Once
}

func (s *gateStore) AddUserMessage(ctx context.Context, in store.UserMessage) (store.Posted, error) {
	s.entered <- in.ClientMsgID
	<-s.release
	return s.DB.AddUserMessage(ctx, in)
}

// TestShutdownAnswersTheFrameInHand: a message being committed when the
// server shuts down is acked before the 1001 close, and no frame after it
// is read (so nothing is committed that could not be acked).
func TestShutdownAnswersTheFrameInHand(t *testing.T) {
	gs := &gateStore{entered: make(chan string, 4), release: make(chan struct{})}
	r := newRigWith(t, func(db *store.DB) chat.Store { gs.DB = db; return gs })
	defer gs.once.Do(func() { close(gs.release) })
	shop := r.app(t, "Shop")
	ann := r.session(t, shop, "ann")
	w := r.widget(t, ann)

	sendJSON(t, w, map[string]string{"type": "send", "client_msg_id": "in-hand", "body": "being committed"})
	select {
	case id := <-gs.entered:
		if id != "in-hand" {
			t.Fatalf("store got %q", id)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the message never reached the store")
	}
	// Already on the wire, but read only after the one in hand.
	sendJSON(t, w, map[string]string{"type": "send", "client_msg_id": "after", "body": "sent during the shutdown"})

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		shutdown <- r.hub.Shutdown(ctx)
	}()
	// A new socket told to go away proves the shutdown has begun (it tells
	// the open ones to stop in the same step).
	for {
		late := r.dial(t, "/ws")
		late.SetReadDeadline(time.Now().Add(waitTimeout))
		_, _, err := late.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code == websocket.CloseGoingAway {
			break
		}
		late.Close()
		time.Sleep(5 * time.Millisecond)
	}
	gs.once.Do(func() { close(gs.release) })

	f := readFrame(t, w)
	if f["type"] != "ack" || f["client_msg_id"] != "in-hand" {
		t.Fatalf("after the shutdown began: %v, want the ack of in-hand", f)
	}
	expectClose(t, w, websocket.CloseGoingAway, "server shutting down")
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case id := <-gs.entered:
		t.Fatalf("%s reached the store after the shutdown began", id)
	default:
	}
}
