package chat_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
)

// TestSlowClientIsCut: a widget that stops reading must not hold the
// server's memory or delay others; once its queue is full it is dropped.
func TestSlowClientIsCut(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "parley.db"), masterkey.Generate())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	app, err := db.CreateApp(ctx, store.NewApp{Name: "Shop", Origins: []string{"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	newSession := func(user string) store.Session {
		s, err := db.CreateSession(ctx, store.NewSession{AppID: app.App.ID, Kind: store.KindUser, IdentityKey: "uid:" + user,
			UserID: user, ParentOrigin: "https://shop.example", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	slow, healthy := newSession("slow"), newSession("healthy")

	hub := chat.NewHub(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		hub.Serve(r.Context(), conn)
	}))
	defer srv.Close()
	dial := func(s store.Session) *websocket.Conn {
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		conn.WriteJSON(map[string]string{"type": "auth", "token": s.Token})
		var welcome map[string]any
		if err := conn.ReadJSON(&welcome); err != nil || welcome["type"] != "welcome" {
			t.Fatalf("welcome = %v, %v", welcome, err)
		}
		return conn
	}
	slowConn := dial(slow)
	defer slowConn.Close()
	healthyConn := dial(healthy)
	defer healthyConn.Close()
	conv := func(s store.Session) store.Conversation {
		p, err := db.AddUserMessage(ctx, store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID, ClientMsgID: "c1", Body: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		return p.Conversation
	}
	slowConv, healthyConv := conv(slow), conv(healthy)

	// Nothing reads slowConn. Big frames fill the socket buffers, then the
	// queue; the hub must then cut the connection.
	// The cut must come from the full queue, well before a blocked write
	// would reach its 10 s deadline and end the socket anyway.
	big := strings.Repeat("x", chat.MaxBodyBytes)
	deadline := time.Now().Add(7 * time.Second)
	for hub.Connections(slow.SubjectID) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow client was not cut when its queue filled")
		}
		for range 50 {
			hub.AgentMessage(ctx, store.Posted{Conversation: slowConv, Message: store.Message{ID: "m", ConversationID: slowConv.ID, Author: "agent", Body: big}})
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The healthy client is unaffected and still receives its messages.
	hub.AgentMessage(ctx, store.Posted{Conversation: healthyConv, Message: store.Message{ID: "m2", ConversationID: healthyConv.ID, Author: "agent", Body: "still here"}})
	healthyConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got map[string]any
	if err := healthyConn.ReadJSON(&got); err != nil {
		t.Fatal(err)
	}
	if got["type"] != "message" || got["message"].(map[string]any)["body"] != "still here" {
		t.Fatalf("healthy client got %v", got)
	}
	if n := hub.Connections(healthy.SubjectID); n != 1 {
		t.Fatalf("healthy connections = %d, want 1", n)
	}
}
