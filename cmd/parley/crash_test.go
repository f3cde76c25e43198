package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// crashClient is one widget user of the crash test: one session, one
// conversation, and a record of everything it sent and every ack it got.
type crashClient struct {
	n     int
	user  string
	token string
	conv  string

	mu      sync.Mutex
	sent    []string               // client_msg_ids in the order they were first sent
	acked   map[string]wireMessage // by client_msg_id, as the ack named it
	refused int                    // error frames naming a send (rate limits): resent later
	readErr error                  // why the socket's reading ended (stream)
}

func (c *crashClient) body(id string) string { return "message " + id + " from " + c.user }

// outstanding is how many sent messages have neither an ack nor a refusal.
func (c *crashClient) outstanding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sent) - len(c.acked) - c.refused
}

// maxAckedSeq is the highest seq the client has seen acked: what a widget
// asks `open` with after a reconnect.
func (c *crashClient) maxAckedSeq() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var max int64
	for _, m := range c.acked {
		if m.Seq > max {
			max = m.Seq
		}
	}
	return max
}

// serverFrame is any frame the widget socket sends; only the fields the
// crash test reads.
type serverFrame struct {
	Type        string        `json:"type"`
	ClientMsgID string        `json:"client_msg_id"`
	Duplicate   bool          `json:"duplicate"`
	Message     wireMessage   `json:"message"`
	Messages    []wireMessage `json:"messages"`
	HasMore     bool          `json:"has_more"`
	Code        string        `json:"code"`
	RetryAfter  int64         `json:"retry_after_ms"`
}

// TestAckedMessagesSurviveSIGKILL runs the real binary, has 20 widget
// users send messages continuously, kills the server with SIGKILL after a
// random few hundred acks, restarts it on the same database and has every
// user reconnect with its session token and resend what was not acked.
// Every acked message must then be stored exactly once, with the seq its
// ack named; every resend must be stored once (a resend of a message that
// was committed but not acked is answered as a duplicate); and each user's
// history after the reconnect must have no gaps and no duplicates.
//
// Both durability settings are run: a SIGKILL is a crash of the process,
// which synchronous=NORMAL survives too (it only gives up power loss).
func TestAckedMessagesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the parley binary")
	}
	for _, mode := range []string{"full", "normal"} {
		t.Run(mode, func(t *testing.T) { ackedSurviveSIGKILL(t, mode) })
	}
}

func ackedSurviveSIGKILL(t *testing.T, mode string) {
	e := newBinEnv(t)
	srv := e.serve("--synchronous", mode)

	clients, conns := startClients(t, e, 20)
	killAt := int64(200 + rand.IntN(200))
	var acks atomic.Int64
	reached := make(chan struct{})
	var reachedOnce sync.Once
	wg := stream(t, clients, conns, func() {
		if acks.Add(1) == killAt {
			reachedOnce.Do(func() { close(reached) })
		}
	})
	select {
	case <-reached:
	case <-time.After(90 * time.Second):
		t.Fatalf("only %d of %d acks within 90 s", acks.Load(), killAt)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.wait(t) // killed: its exit status says so
	// Every socket breaks with the process; the readers and writers end.
	waitGroup(t, wg, "clients after the kill")
	for _, conn := range conns {
		conn.Close()
	}
	var totalSent, totalAcked int
	for _, c := range clients {
		totalSent += len(c.sent)
		totalAcked += len(c.acked)
	}
	t.Logf("killed after %d acks (target %d): %d messages sent, %d acked", acks.Load(), killAt, totalSent, totalAcked)

	srv = e.serve("--synchronous", mode)
	var wg2 sync.WaitGroup
	var resent, duplicates atomic.Int64
	for _, c := range clients {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			r, d, err := c.afterRestart(e)
			if err != nil {
				t.Errorf("%s: %v", c.user, err)
			}
			resent.Add(int64(r))
			duplicates.Add(int64(d))
		}()
	}
	waitGroup(t, &wg2, "clients after the restart")
	t.Logf("after the restart: %d messages resent, %d of them committed before the kill (answered as duplicates)", resent.Load(), duplicates.Load())
	if t.Failed() {
		return
	}

	// The database, read after a clean stop, holds each message exactly once.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.wait(t); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	stored := storedUserMessages(t, e.db)
	want := 0
	for _, c := range clients {
		for _, id := range c.sent {
			want++
			rows := stored[id]
			if len(rows) != 1 {
				t.Errorf("%s: %d rows in the database, want 1", id, len(rows))
				continue
			}
			if a, ok := c.acked[id]; ok && (rows[0].ID != a.ID || rows[0].Seq != a.Seq || rows[0].Body != c.body(id)) {
				t.Errorf("%s: stored %+v, acked %+v", id, rows[0], a)
			}
		}
	}
	if len(stored) != want {
		t.Errorf("the database has %d distinct user messages, the clients sent %d", len(stored), want)
	}
}

// startClients creates n widget users, each with a session, a socket and
// a conversation started by its first (acked) message.
func startClients(t *testing.T, e *binEnv, n int) ([]*crashClient, []*websocket.Conn) {
	t.Helper()
	clients := make([]*crashClient, n)
	conns := make([]*websocket.Conn, n)
	for i := range clients {
		c := &crashClient{n: i, user: fmt.Sprintf("user-%02d", i), acked: map[string]wireMessage{}}
		var err error
		if c.token, err = e.newSession(c.user); err != nil {
			t.Fatal(err)
		}
		conns[i], err = e.dialWidget(c.token)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conns[i].Close() })
		first := fmt.Sprintf("c%02d-0000", i)
		c.sent = append(c.sent, first)
		conns[i].WriteJSON(map[string]string{"type": "send", "client_msg_id": first, "body": c.body(first)})
		f := readUntil(t, conns[i], "ack")
		if f.ClientMsgID != first || f.Message.Seq != 1 {
			t.Fatalf("first ack = %+v", f)
		}
		c.acked[first], c.conv = f.Message, f.Message.ConversationID
		clients[i] = c
	}
	return clients, conns
}

// stream has every client send about 9 messages a second (under the
// per-connection frame limit of 10), keeping at most 4 unacked, until its
// socket breaks; onAck is called for each ack. The returned group is done
// when every socket has broken; each client's readErr is then set.
func stream(t *testing.T, clients []*crashClient, conns []*websocket.Conn, onAck func()) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, c := range clients {
		conn := conns[i]
		readerDone := make(chan struct{})
		wg.Add(2)
		go func() { // reader
			defer wg.Done()
			defer close(readerDone)
			for {
				var f serverFrame
				if err := conn.ReadJSON(&f); err != nil {
					c.mu.Lock()
					c.readErr = err
					c.mu.Unlock()
					return
				}
				switch {
				case f.Type == "ack":
					c.mu.Lock()
					if _, dup := c.acked[f.ClientMsgID]; dup || f.Duplicate {
						t.Errorf("%s: second ack for %s: %+v", c.user, f.ClientMsgID, f)
					}
					c.acked[f.ClientMsgID] = f.Message
					c.mu.Unlock()
					onAck()
				case f.Type == "error" && f.ClientMsgID != "":
					c.mu.Lock()
					c.refused++
					c.mu.Unlock()
				}
			}
		}()
		go func() { // writer
			defer wg.Done()
			tick := time.NewTicker(110 * time.Millisecond)
			defer tick.Stop()
			for n := 1; ; {
				select {
				case <-readerDone:
					return
				case <-tick.C:
				}
				if c.outstanding() >= 4 {
					continue
				}
				id := fmt.Sprintf("c%02d-%04d", c.n, n)
				n++
				c.mu.Lock()
				c.sent = append(c.sent, id) // before the write: the server may have it
				c.mu.Unlock()
				conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
				if err := conn.WriteJSON(map[string]string{"type": "send", "conversation_id": c.conv, "client_msg_id": id, "body": c.body(id)}); err != nil {
					return
				}
			}
		}()
	}
	return &wg
}

// afterRestart reconnects with the same session token, asks for what it
// missed, resends every message it has no ack for, and checks the
// conversation's whole history, over the socket and the server API. It
// returns how many messages it resent and how many of those were answered
// as duplicates.
func (c *crashClient) afterRestart(e *binEnv) (resent, duplicates int, err error) {
	err = c.reconnectAndCheck(e, &resent, &duplicates)
	return resent, duplicates, err
}

func (c *crashClient) reconnectAndCheck(e *binEnv, resent, duplicates *int) error {
	conn, err := e.dialWidget(c.token)
	if err != nil {
		return fmt.Errorf("reconnect: %w", err)
	}
	defer conn.Close()
	after := c.maxAckedSeq()
	missed, err := history(conn, c.conv, after)
	if err != nil {
		return err
	}
	// What it missed is what was committed but not acked before the kill:
	// seqs right after the last ack, in order, each once.
	committed := map[string]wireMessage{}
	unacked := map[string]bool{}
	for _, id := range c.sent {
		if _, ok := c.acked[id]; !ok {
			unacked[id] = true
		}
	}
	for i, m := range missed {
		if m.Seq != after+int64(i)+1 {
			return fmt.Errorf("history after seq %d: %s has seq %d, want %d (gap or duplicate)", after, m.ClientMsgID, m.Seq, after+int64(i)+1)
		}
		if !unacked[m.ClientMsgID] {
			return fmt.Errorf("history after seq %d has %s, which was acked or never sent", after, m.ClientMsgID)
		}
		if _, dup := committed[m.ClientMsgID]; dup {
			return fmt.Errorf("history after seq %d has %s twice", after, m.ClientMsgID)
		}
		committed[m.ClientMsgID] = m
	}

	// Resend, as the widget's outbox does, in the original order.
	for _, id := range c.sent {
		if !unacked[id] {
			continue
		}
		for {
			conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := conn.WriteJSON(map[string]string{"type": "send", "conversation_id": c.conv, "client_msg_id": id, "body": c.body(id)}); err != nil {
				return err
			}
			f, err := readFrameOf(conn, "ack", "error")
			if err != nil {
				return err
			}
			if f.Type == "error" && f.Code == "rate_limited" {
				time.Sleep(time.Duration(f.RetryAfter+10) * time.Millisecond)
				continue
			}
			if f.Type != "ack" || f.ClientMsgID != id {
				return fmt.Errorf("resend of %s answered %+v", id, f)
			}
			if m, ok := committed[id]; ok {
				if !f.Duplicate || f.Message.ID != m.ID || f.Message.Seq != m.Seq {
					return fmt.Errorf("resend of %s, committed before the kill as %+v, answered %+v", id, m, f)
				}
			} else if f.Duplicate {
				return fmt.Errorf("resend of %s, not in the history, answered as a duplicate: %+v", id, f)
			}
			c.acked[id] = f.Message
			*resent++
			if f.Duplicate {
				*duplicates++
			}
			break
		}
		time.Sleep(110 * time.Millisecond) // under the per-connection frame limit
	}

	// The whole conversation: 1..N, each message once, every one sent.
	full, err := history(conn, c.conv, 0)
	if err != nil {
		return err
	}
	byAPI, err := e.apiMessages(c.conv)
	if err != nil {
		return err
	}
	if len(byAPI) != len(full) {
		return fmt.Errorf("socket history has %d messages, the server API %d", len(full), len(byAPI))
	}
	seen := map[string]bool{}
	for i, m := range full {
		if m.Seq != int64(i)+1 || byAPI[i].ID != m.ID || byAPI[i].Seq != m.Seq {
			return fmt.Errorf("history position %d: socket %+v, API %+v", i, m, byAPI[i])
		}
		if seen[m.ClientMsgID] {
			return fmt.Errorf("%s is in the history twice", m.ClientMsgID)
		}
		seen[m.ClientMsgID] = true
		a, ok := c.acked[m.ClientMsgID]
		if !ok {
			return fmt.Errorf("history has %s, never acked", m.ClientMsgID)
		}
		if a.ID != m.ID || a.Seq != m.Seq || m.Body != c.body(m.ClientMsgID) {
			return fmt.Errorf("%s: acked %+v, stored %+v", m.ClientMsgID, a, m)
		}
	}
	if len(full) != len(c.sent) {
		return fmt.Errorf("history has %d messages, %d were sent", len(full), len(c.sent))
	}
	return nil
}

// history asks `open` with after_seq (following has_more) and returns the
// messages.
func history(conn *websocket.Conn, conv string, after int64) ([]wireMessage, error) {
	var all []wireMessage
	for {
		conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := conn.WriteJSON(map[string]any{"type": "open", "conversation_id": conv, "after_seq": after}); err != nil {
			return nil, err
		}
		f, err := readFrameOf(conn, "history", "error")
		if err != nil {
			return nil, err
		}
		if f.Type != "history" {
			return nil, fmt.Errorf("open after %d answered %+v", after, f)
		}
		all = append(all, f.Messages...)
		if !f.HasMore || len(f.Messages) == 0 {
			return all, nil
		}
		after = f.Messages[len(f.Messages)-1].Seq
		time.Sleep(110 * time.Millisecond)
	}
}

// readFrameOf reads frames until one of the given types arrives.
func readFrameOf(conn *websocket.Conn, types ...string) (serverFrame, error) {
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for {
		var f serverFrame
		if err := conn.ReadJSON(&f); err != nil {
			return f, err
		}
		for _, typ := range types {
			if f.Type == typ {
				return f, nil
			}
		}
	}
}

func readUntil(t *testing.T, conn *websocket.Conn, typ string) serverFrame {
	t.Helper()
	f, err := readFrameOf(conn, typ, "error")
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != typ {
		t.Fatalf("want %s, got %+v", typ, f)
	}
	return f
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("%s did not finish within 90 s", what)
	}
}
