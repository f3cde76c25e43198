package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/identity"
)

// TestSIGTERMDrains runs the real binary and sends it SIGTERM while
// widget users are sending messages and an HTTP request is half way in.
// serve must stop accepting connections, finish the request, close every
// widget socket with 1001 and exit 0; every message it acked must be in
// the database, exactly once.
func TestSIGTERMDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the parley binary")
	}
	e := newBinEnv(t)
	srv := e.serve()
	clients, conns := startClients(t, e, 10)
	var acks, moreAt atomic.Int64
	enough, more := make(chan struct{}), make(chan struct{})
	moreAt.Store(-1)
	wg := stream(t, clients, conns, func() {
		switch n := acks.Add(1); n {
		case 100:
			close(enough)
		case moreAt.Load():
			close(more)
		}
	})
	select {
	case <-enough:
	case <-time.After(90 * time.Second):
		t.Fatalf("only %d acks within 90 s", acks.Load())
	}

	// An HTTP request in flight: its handler has begun reading the body
	// (the server said 100 Continue), which is half sent.
	body, _ := json.Marshal(map[string]string{"app_id": e.app.AppID, "parent_origin": e.origin,
		"user_id": "late", "user_hash": identity.UserHash(e.app.IdentitySecret, "late")})
	slow, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /api/widget/sessions HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", e.addr, e.base, len(body))
	slowR := bufio.NewReader(slow)
	slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	if resp, err := http.ReadResponse(slowR, nil); err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("before the body: %v %v, want 100 Continue", resp, err)
	}
	slow.Write(body[:len(body)/2])

	shuttingDown := srv.waitLog("shutting down")
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-shuttingDown:
	case <-time.After(30 * time.Second):
		t.Fatal(`no "shutting down" within 30 s of SIGTERM`)
	}
	// It stops accepting while the request is still in flight.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("serve still accepts connections 30 s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// While the request holds the HTTP side open, the widget sockets keep
	// working: let some more messages through, so that sends are still in
	// flight when the sockets are closed.
	moreAt.Store(acks.Load() + 30)
	select {
	case <-more:
	case <-time.After(5 * time.Second):
		t.Logf("only %d acks in 5 s after SIGTERM", acks.Load())
	}
	slow.Write(body[len(body)/2:])
	slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(slowR, nil)
	if err != nil {
		t.Fatalf("the request in flight at SIGTERM got no answer: %v", err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the request in flight at SIGTERM: %d %s", resp.StatusCode, buf.String())
	}

	waitGroup(t, wg, "widget sockets after SIGTERM")
	if err := srv.wait(t); err != nil {
		t.Fatalf("serve after SIGTERM: %v, want exit status 0", err)
	}
	for _, c := range clients {
		var ce *websocket.CloseError
		if !errors.As(c.readErr, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("%s: socket ended with %v, want close 1001", c.user, c.readErr)
		}
	}

	stored := storedUserMessages(t, e.db)
	var sent, acked, committedUnacked int
	for _, c := range clients {
		for _, id := range c.sent {
			sent++
			rows := stored[id]
			a, ok := c.acked[id]
			switch {
			case len(rows) > 1:
				t.Errorf("%s: stored %d times", id, len(rows))
			case ok && len(rows) == 0:
				t.Errorf("%s: acked as %+v but not in the database", id, a)
			case ok && (rows[0].ID != a.ID || rows[0].Seq != a.Seq):
				t.Errorf("%s: acked as %+v, stored as %+v", id, a, rows[0])
			case ok:
				acked++
			case len(rows) == 1:
				// Committed while the socket was draining, yet the ack
				// never came: not lost (a resend is a duplicate), but the
				// drain is meant to answer the frame it was handling.
				committedUnacked++
				t.Errorf("%s: stored, but its ack never reached the client before the 1001", id)
			}
		}
	}
	t.Logf("%d messages sent, %d acked and stored, %d stored without an ack, %d neither (sent after the server stopped reading)",
		sent, acked, committedUnacked, sent-acked-committedUnacked)
}
