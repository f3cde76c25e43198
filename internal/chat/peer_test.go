package chat

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testPeer returns a peer on the server end of a real websocket, not yet
// running: nothing drains its queue, as for a client that stops reading.
// client is the other end.
func testPeer(t *testing.T) (p *peer, client *websocket.Conn, logs *bytes.Buffer) {
	t.Helper()
	conns := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		conns <- conn
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	conn := <-conns
	t.Cleanup(func() { conn.Close() })
	logs = &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	return newPeer(conn, func() *slog.Logger { return log }, time.Now().Add(time.Hour)), client, logs
}

func queuedFrames(p *peer) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, f := range p.queued {
		out = append(out, string(f.data))
	}
	return out
}

// Frames that state a whole state (the unread count, a typing indicator,
// a conversation's status) replace a queued one of the same key and move
// to the back; messages are never replaced or dropped.
func TestQueueLatestSupersedes(t *testing.T) {
	p, _, _ := testPeer(t)
	p.queue([]byte("message A"))
	p.queueLatest(unreadKey, []byte("unread 1"))
	p.queueLatest(typingKey("cnv_1", "agent", "Bo"), []byte("Bo typing in 1"))
	p.queueLatest(typingKey("cnv_1", "agent", "Cy"), []byte("Cy typing in 1"))
	p.queue([]byte("message B"))
	p.queueLatest(unreadKey, []byte("unread 2"))
	p.queueLatest(typingKey("cnv_1", "agent", "Bo"), []byte("Bo stopped in 1"))
	p.queueLatest(typingKey("cnv_2", "agent", "Bo"), []byte("Bo typing in 2"))
	p.queueLatest(conversationKey("cnv_1"), []byte("cnv_1 closed"))
	p.queue([]byte("message B")) // the same bytes again are a new message, not a duplicate
	p.queueLatest(conversationKey("cnv_1"), []byte("cnv_1 open"))
	want := []string{"message A", "Cy typing in 1", "message B", "unread 2", "Bo stopped in 1", "Bo typing in 2", "message B", "cnv_1 open"}
	if got := queuedFrames(p); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("queued %q\nwant   %q", got, want)
	}
	p.mu.Lock()
	n := 0
	for _, f := range want {
		n += len(f)
	}
	if p.queuedBytes != n {
		t.Errorf("queuedBytes = %d, want %d", p.queuedBytes, n)
	}
	p.mu.Unlock()
	if p.isClosing() {
		t.Fatal("closed")
	}
}

// A client that does not read while its unread count changes a thousand
// times holds one unread frame, and is not cut off for it.
func TestSupersededFramesDoNotFillTheQueue(t *testing.T) {
	p, _, _ := testPeer(t)
	for i := range 1000 {
		p.queueLatest(unreadKey, fmt.Appendf(nil, `{"type":"unread","count":%d}`, i))
		p.queueLatest(typingKey("cnv_1", "agent", "Bo"), fmt.Appendf(nil, `{"typing":%v}`, i%2 == 0))
	}
	if got := queuedFrames(p); len(got) != 2 || got[0] != `{"type":"unread","count":999}` || got[1] != `{"typing":false}` {
		t.Fatalf("queued %q", got)
	}
	// Messages are never coalesced: the count bound still cuts.
	for i := 0; i < sendQueue-2; i++ {
		p.queue([]byte("m"))
	}
	if p.isClosing() {
		t.Fatal("cut with a full queue, not an overfull one")
	}
	p.queue([]byte("one too many"))
	if !p.isClosing() || p.closeCode != websocket.CloseAbnormalClosure {
		t.Fatalf("closing %v code %d, want cut without a close frame (1006)", p.isClosing(), p.closeCode)
	}
}

// A client that does not read holds at most maxQueuedBytes of queued
// frames, well before the count bound, and is then cut off: its socket is
// closed at once, with no close frame, and its queue let go.
func TestQueueIsBoundedByBytes(t *testing.T) {
	p, client, logs := testPeer(t)
	frame := bytes.Repeat([]byte("x"), 10_000)
	n := 0
	for !p.isClosing() {
		p.queue(frame)
		p.mu.Lock()
		if p.queuedBytes > maxQueuedBytes {
			t.Fatalf("%d bytes queued, bound %d", p.queuedBytes, maxQueuedBytes)
		}
		p.mu.Unlock()
		if n++; n > sendQueue {
			t.Fatalf("not cut after %d frames of %d bytes", n, len(frame))
		}
	}
	if want := maxQueuedBytes/len(frame) + 1; n != want {
		t.Errorf("cut at frame %d, want %d", n, want)
	}
	if p.closeCode != websocket.CloseAbnormalClosure {
		t.Errorf("close %d %q, want a cut without a close frame (1006)", p.closeCode, p.closeText)
	}
	p.mu.Lock()
	if p.queued != nil || p.queuedBytes != 0 {
		t.Errorf("the cut client still holds %d frames, %d bytes", len(p.queued), p.queuedBytes)
	}
	p.mu.Unlock()
	if !strings.Contains(logs.String(), "dropping slow client") {
		t.Errorf("no warning logged: %s", logs)
	}
	p.queue(frame) // after the cut: dropped, not queued
	if q := queuedFrames(p); len(q) != 0 {
		t.Errorf("%d frames queued after the cut", len(q))
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := client.ReadMessage(); err == nil || websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("the cut client read %v, want its connection gone", err)
	}
}

// One frame larger than the byte bound (a long history) is queued when it
// is alone; the next frame behind it cuts the client unless it is written.
func TestQueueTakesOneLargeFrameAlone(t *testing.T) {
	p, _, _ := testPeer(t)
	p.queue(bytes.Repeat([]byte("h"), 2*maxQueuedBytes))
	if p.isClosing() {
		t.Fatal("a large frame alone cut the client")
	}
	p.queue([]byte("next"))
	if !p.isClosing() || p.closeCode != websocket.CloseAbnormalClosure {
		t.Fatal("a frame behind one over the bound did not cut the client")
	}
}

// A running peer writes what is queued in order, superseded frames
// excepted, and an idle one keeps no queue and no writer.
func TestPeerWritesQueueInOrder(t *testing.T) {
	p, client, _ := testPeer(t)
	read := make(chan struct{})
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		p.run(func() { <-read })
	}()
	p.queue([]byte("1"))
	p.queueLatest(unreadKey, []byte("u"))
	p.queue([]byte("2"))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []string
	for len(got) < 3 {
		_, b, err := client.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	if fmt.Sprint(got) != "[1 u 2]" {
		t.Fatalf("read %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		idle := !p.writing && p.queued == nil
		p.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not stop with the queue empty")
		}
		time.Sleep(time.Millisecond)
	}
	p.queue([]byte("3")) // a new writer starts
	if _, b, err := client.ReadMessage(); err != nil || string(b) != "3" {
		t.Fatalf("read %q, %v", b, err)
	}
	close(read)
	<-ran
	_, _, err := client.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the read pump ended: %v, want close 1000", err)
	}
	if _, err := io.ReadAll(client.UnderlyingConn()); err != nil {
		t.Logf("after close: %v", err)
	}
}

// An inbox socket, which gets every message of its app, takes a burst
// that would cut a widget socket, and is still cut at its own bounds.
func TestAgentQueueIsWider(t *testing.T) {
	widget, _, _ := testPeer(t)
	agent, _, _ := testPeer(t)
	agent.maxFrames, agent.maxBytes = agentSendQueue, agentMaxQueuedBytes
	frame := bytes.Repeat([]byte("m"), 300) // a short message's frame
	for range sendQueue + 100 {
		widget.queue(frame)
		agent.queue(frame)
	}
	if !widget.isClosing() {
		t.Fatal("widget socket took a burst past its bound")
	}
	if agent.isClosing() {
		t.Fatalf("inbox socket cut after %d frames; its bound is %d", sendQueue+100, agentSendQueue)
	}
	for range agentSendQueue {
		agent.queue(frame)
	}
	if !agent.isClosing() {
		t.Fatal("inbox socket never cut")
	}
}

// A read pump waits while half the queue is taken, by count or by bytes,
// so a client's own answers never reach the bound that cuts slow readers;
// it goes on once the writer has made room, and stops waiting (and
// reading) when the connection closes.
func TestReaderWaitsForRoom(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"count", []byte("ack")},
		{"bytes", bytes.Repeat([]byte("h"), maxQueuedBytes/2)},
	} {
		t.Run(tc.name+"/writer drains", func(t *testing.T) {
			p, client, _ := testPeer(t)
			fill(p, tc.frame)
			waited := make(chan bool)
			go func() { waited <- p.waitForRoom() }()
			select {
			case <-waited:
				t.Fatalf("the reader went on with %d frames queued", len(queuedFrames(p)))
			case <-time.After(50 * time.Millisecond):
			}
			read := make(chan struct{})
			ran := make(chan struct{})
			go func() { defer close(ran); p.run(func() { <-read }) }()
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := client.ReadMessage(); err != nil { // the writer drains
				t.Fatal(err)
			}
			if ok := <-waited; !ok {
				t.Fatal("waitForRoom = false on an open connection")
			}
			close(read)
			client.Close()
			<-ran
		})
		t.Run(tc.name+"/server stops", func(t *testing.T) {
			p, _, _ := testPeer(t)
			fill(p, tc.frame)
			waited := make(chan bool)
			go func() { waited <- p.waitForRoom() }()
			p.stopReading()
			if ok := <-waited; ok {
				t.Fatal("waitForRoom = true after stopReading: a frame would be read during shutdown")
			}
		})
		t.Run(tc.name+"/connection closes", func(t *testing.T) {
			p, _, _ := testPeer(t)
			fill(p, tc.frame)
			waited := make(chan bool)
			go func() { waited <- p.waitForRoom() }()
			p.closeWith(closePolicy, "rate limit exceeded")
			if ok := <-waited; ok {
				t.Fatal("waitForRoom = true on a closing connection")
			}
		})
	}
}

// fill queues frame until a reader would wait.
func fill(p *peer, frame []byte) {
	for {
		p.mu.Lock()
		full := p.full()
		p.mu.Unlock()
		if full {
			return
		}
		p.queue(frame)
	}
}
