package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/identity"
)

// startServe runs `parley serve` (plus flags) in-process until the returned stop is
// called; stop waits for the graceful shutdown to finish.
func startServe(t *testing.T, db, addr string, flags ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := append([]string{"serve", "--db", db, "--addr", addr, "--public-url", "http://" + addr}, flags...)
	go func() {
		done <- run(ctx, args, strings.NewReader(""), io.Discard, io.Discard)
	}()
	for range 200 {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return func() {
				cancel()
				if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
					t.Errorf("serve: %v", err)
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	cancel()
	t.Fatalf("serve did not start: %v", <-done)
	return nil
}

// A user loses nothing across a server restart: the session and the
// acked message are in SQLite, open sockets are told to come back (1001),
// and a resend of an acked message is recognised as a duplicate.
func TestNothingIsLostAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "parley.db")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr

	out, _, err := runCLI(t, "apps", "create", "--db", db, "--name", "Shop", "--origin", "https://shop.example", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		AppID          string `json:"app_id"`
		IdentitySecret string `json:"identity_secret"`
	}
	if err := json.Unmarshal([]byte(out), &app); err != nil {
		t.Fatal(err)
	}

	stop := startServe(t, db, addr)
	body, _ := json.Marshal(map[string]string{"app_id": app.AppID, "parent_origin": "https://shop.example",
		"user_id": "u1", "user_hash": identity.UserHash(app.IdentitySecret, "u1")})
	req, _ := http.NewRequest("POST", base+"/api/widget/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sess struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("session: %d", resp.StatusCode)
	}

	dial := func() *websocket.Conn {
		t.Helper()
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/widget/ws", http.Header{"Origin": {base}})
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		conn.WriteJSON(map[string]string{"type": "auth", "token": sess.Token})
		if f := readFrame(t, conn); f["type"] != "welcome" {
			t.Fatalf("after auth: %v", f)
		}
		return conn
	}
	send := map[string]string{"type": "send", "client_msg_id": "m1", "body": "before the restart"}
	conn := dial()
	conn.WriteJSON(send)
	ack := readFrame(t, conn)
	if ack["type"] != "ack" {
		t.Fatalf("want ack, got %v", ack)
	}
	convID := ack["message"].(map[string]any)["conversation_id"].(string)

	stop()
	_, _, err = conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("socket at shutdown: %v, want close 1001", err)
	}

	stop = startServe(t, db, addr)
	defer stop()
	conn = dial()
	defer conn.Close()
	conn.WriteJSON(map[string]any{"type": "open", "conversation_id": convID, "after_seq": 0})
	hist := readFrame(t, conn)
	msgs, _ := hist["messages"].([]any)
	if hist["type"] != "history" || len(msgs) != 1 || msgs[0].(map[string]any)["body"] != "before the restart" {
		t.Fatalf("history after restart = %v", hist)
	}
	conn.WriteJSON(send) // the widget resends what it has no ack for
	if again := readFrame(t, conn); again["type"] != "ack" || again["duplicate"] != true {
		t.Fatalf("resend after restart = %v, want a duplicate ack", again)
	}
}

func readFrame(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	var f map[string]any
	if err := conn.ReadJSON(&f); err != nil {
		t.Fatal(err)
	}
	return f
}
