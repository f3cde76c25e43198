package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

// burstFrames is how many send frames a flooding client writes at once:
// more than the frame limit's burst (30) plus its 50 refusals, so the
// burst ends in the 1008 cut with frames still unread on the server.
const burstFrames = 100

// burstResult is what a client that sent a burst of send frames read back.
type burstResult struct {
	acked   map[string]bool // client_msg_id → acked
	refused map[string]bool // client_msg_id → named by a rate_limited error
	other   []string        // any other frame
	end     error           // what ended the read: the close
}

// sendBurst authenticates token's socket, writes burstFrames send frames
// into conv with no pause between writes, and reads everything the server
// answers, promptly, until the connection ends.
func (ts *testServer) sendBurst(t *testing.T, token, conv, prefix string) burstResult {
	t.Helper()
	c := ts.connect(t, token)
	frames := make([][]byte, burstFrames)
	for i := range frames {
		frames[i], _ = json.Marshal(map[string]any{"type": "send", "conversation_id": conv,
			"client_msg_id": fmt.Sprintf("%s-%03d", prefix, i), "body": "flood"})
	}
	go func() {
		// Writes after the server's close fail; the reader reports that.
		for _, f := range frames {
			if c.conn.WriteMessage(websocket.TextMessage, f) != nil {
				return
			}
		}
	}()
	res := burstResult{acked: map[string]bool{}, refused: map[string]bool{}}
	c.conn.SetReadDeadline(time.Now().Add(4 * waitTimeout))
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			res.end = err
			return res
		}
		var f serverFrame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("frame %q is not JSON: %v", data, err)
		}
		switch {
		case f.Type == "ack":
			res.acked[f.ClientMsgID] = true
		case f.Type == "error" && f.Code == "rate_limited" && f.ClientMsgID != "":
			res.refused[f.ClientMsgID] = true
		default:
			res.other = append(res.other, string(data))
		}
	}
}

// TestSocketBurstIsAnsweredInFull: a client that writes a burst of 100
// messages at once but reads what comes back is a flooder, not a slow
// reader. Every message that was committed is acked, every refused one is
// named by a rate_limited error, and the 1008 that ends it reaches the
// client as a close frame (not a reset, and not a "too slow" cut). It runs
// many times, while other clients create sessions, because the losses it
// guards against depend on how the server's reader and writer interleave.
func TestSocketBurstIsAnsweredInFull(t *testing.T) {
	ts := newTestServer(t, withLimits(func(l *Limits) { l.Chat = chat.DefaultLimits() }))
	app := ts.newApp(t, store.ModeEnforced)

	// Load: sessions created without pause beside the bursts.
	ctx, stop := context.WithCancel(context.Background())
	var load sync.WaitGroup
	for w := range 3 {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; ctx.Err() == nil; i++ {
				body, _ := json.Marshal(verifiedUser(app, fmt.Sprintf("load-%d-%d", w, i)))
				req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/widget/sessions", bytes.NewReader(body))
				req.Header.Set("Origin", ts.Origin)
				req.Header.Set("Content-Type", "application/json")
				if res, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		}()
	}
	defer func() { stop(); load.Wait() }()

	db := ts.rawDB(t)
	for run := range 25 {
		user := fmt.Sprintf("flooder-%d", run)
		token := ts.session(t, verifiedUser(app, user)).Token
		conv := ts.connect(t, token).startConversation("hello")
		prefix := fmt.Sprintf("r%d", run)
		res := ts.sendBurst(t, token, conv, prefix)

		if ce := (*websocket.CloseError)(nil); !errors.As(res.end, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("run %d: the socket ended with %v after %d acks and %d refusals, want a close frame %d",
				run, res.end, len(res.acked), len(res.refused), websocket.ClosePolicyViolation)
		}
		if len(res.other) > 0 {
			t.Errorf("run %d: unexpected frames %q", run, res.other)
		}
		rows, err := db.Query(`SELECT client_msg_id FROM messages WHERE conversation_id = ? AND client_msg_id LIKE ?`, conv, prefix+"-%")
		if err != nil {
			t.Fatal(err)
		}
		var stored []string
		for rows.Next() {
			var id string
			rows.Scan(&id)
			stored = append(stored, id)
		}
		rows.Close()
		var acked []string
		for id := range res.acked {
			acked = append(acked, id)
			if res.refused[id] {
				t.Errorf("run %d: %s was both acked and refused", run, id)
			}
		}
		sort.Strings(stored)
		sort.Strings(acked)
		if fmt.Sprint(acked) != fmt.Sprint(stored) {
			t.Fatalf("run %d: acked %d messages %v, but the database holds %d: %v", run, len(acked), acked, len(stored), stored)
		}
		// 10 messages a subject (the hello took one), then one a second,
		// which a slow machine may reach during the burst; then refusals,
		// and the frame limit's 50 refusals end it.
		if got, want := len(acked), 9; got < want {
			t.Errorf("run %d: %d acks, want at least %d (the message limit's burst less the first message)", run, got, want)
		}
		if got := len(res.refused); got < 50 {
			t.Errorf("run %d: %d rate_limited refusals named a client_msg_id, want at least 50", run, got)
		}
	}
	if ts.logs.contains("dropping slow client") {
		t.Errorf("a flooding client that reads was cut as a slow reader")
	}
}
