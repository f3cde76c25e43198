package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

func TestSocketOriginCheck(t *testing.T) {
	ts := newTestServer(t)
	for _, origin := range []string{
		"",                      // no Origin header at all
		evilOrigin,              // another site
		shopOrigin,              // the host page itself
		"null",                  // sandboxed iframe, file://
		ts.Origin + "/",         // not an exact origin
		"https" + ts.Origin[4:], // right host, wrong scheme
		strings.ToUpper(ts.Origin),
	} {
		t.Run(fmt.Sprintf("Origin %q", origin), func(t *testing.T) {
			conn, res, err := ts.dial(origin)
			if err == nil {
				conn.Close()
				t.Fatalf("handshake with Origin %q succeeded, want 403", origin)
			}
			if res == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			defer res.Body.Close()
			if got, want := res.StatusCode, http.StatusForbidden; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			var body struct{ Error struct{ Code string } }
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Error.Code != "origin_not_allowed" {
				t.Fatalf("body error code = %q (%v), want origin_not_allowed", body.Error.Code, err)
			}
		})
	}

	// Not an upgrade at all.
	res := ts.do(t, http.MethodGet, "/api/widget/ws", http.Header{"Origin": {ts.Origin}}, nil)
	res.wantError(t, http.StatusBadRequest, "bad_request")

	// Parley's own origin is let in.
	conn, _, err := ts.dial(ts.Origin)
	if err != nil {
		t.Fatalf("dial from Parley's origin: %v", err)
	}
	conn.Close()
}

func TestSocketAuthRefused(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	visitor := ts.session(t, fields(app))

	tests := []struct {
		name  string
		kind  int
		frame string
		code  string
	}{
		{"no auth frame, a list frame first", websocket.TextMessage, `{"type":"list"}`, "unauthorized"},
		{"a list frame carrying a valid token", websocket.TextMessage, `{"type":"list","token":"` + visitor.Token + `"}`, "unauthorized"},
		{"garbage token", websocket.TextMessage, `{"type":"auth","token":"garbage"}`, "unauthorized"},
		{"well-formed token never issued", websocket.TextMessage, `{"type":"auth","token":"pst_` + strings.Repeat("A", 43) + `"}`, "unauthorized"},
		{"visitor token instead of a session token", websocket.TextMessage, `{"type":"auth","token":"` + visitor.VisitorToken + `"}`, "unauthorized"},
		{"session token with a suffix", websocket.TextMessage, `{"type":"auth","token":"` + visitor.Token + `x"}`, "unauthorized"},
		{"auth without a token", websocket.TextMessage, `{"type":"auth"}`, "unauthorized"},
		{"auth with an unknown field", websocket.TextMessage, `{"type":"auth","token":"` + visitor.Token + `","admin":true}`, "unauthorized"},
		{"not JSON", websocket.TextMessage, `hello`, "unauthorized"},
		{"binary frame", websocket.BinaryMessage, `{"type":"auth","token":"` + visitor.Token + `"}`, "bad_frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.open(t)
			c.sendRaw(tt.kind, []byte(tt.frame))
			c.expectError(tt.code)
			c.expectClose(chat.CloseSessionInvalid)
		})
	}
	// The real token still works.
	ts.connect(t, visitor.Token).ping()
}

func TestSocketExpiredSession(t *testing.T) {
	const ttl = 2 * time.Second
	ts := newTestServer(t, withSessionTTL(ttl))
	app := ts.newApp(t, store.ModeEnforced)

	live := ts.session(t, verifiedUser(app, "user-42"))
	stale := ts.session(t, verifiedUser(app, "user-42"))
	c := ts.connect(t, live.Token)
	if got := c.welcome.ExpiresAt; !got.Equal(live.ExpiresAt) {
		t.Errorf("welcome expires_at = %v, want the session's %v", got, live.ExpiresAt)
	}

	// A connected widget is cut off when its session expires…
	c.conn.SetReadDeadline(time.Now().Add(ttl + waitTimeout))
	if _, data, err := c.conn.ReadMessage(); !websocket.IsCloseError(err, chat.CloseSessionInvalid) {
		t.Fatalf("got frame %q, error %v; want close %d at expiry", data, err, chat.CloseSessionInvalid)
	}
	if time.Now().Before(live.ExpiresAt) {
		t.Fatalf("socket closed before the session expired")
	}

	// …and an expired token is refused.
	time.Sleep(time.Until(stale.ExpiresAt) + 10*time.Millisecond)
	s := ts.open(t)
	s.send(map[string]any{"type": "auth", "token": stale.Token})
	s.expectError("unauthorized")
	s.expectClose(chat.CloseSessionInvalid)

	// A new session works.
	ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token).ping()
}

func TestSocketSendAckAndResend(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	token := ts.session(t, verifiedUser(app, "user-42")).Token
	a, b := ts.connect(t, token), ts.connect(t, token)

	ack := a.sendMessage("", "m-1", "Where is my order?")
	msg := ack.msg(t)
	conv := ack.Conversation.ID
	if ack.Duplicate || msg.Seq != 1 || msg.Author != "user" || msg.Body != "Where is my order?" || msg.ClientMsgID != "m-1" || msg.ConversationID != conv {
		t.Fatalf("ack = %s, want a new message seq 1 by the user in the new conversation", ack.raw)
	}
	if ack.Conversation.LastSeq != 1 || ack.Conversation.Status != "open" {
		t.Fatalf("ack conversation = %+v, want open with last_seq 1", ack.Conversation)
	}
	// Acked means committed: the message is readable at once, no polling.
	if got := ts.apiMessages(t, app, conv); len(got) != 1 || got[0].ID != msg.ID {
		t.Fatalf("API shows %+v right after the ack, want the acked message", got)
	}
	if got := b.expect("message").msg(t); got.ID != msg.ID {
		t.Fatalf("second tab got message %+v, want %s", got, msg.ID)
	}

	// A resend after a lost ack: same message, flagged, not stored twice,
	// not delivered twice.
	for name, c := range map[string]*wsClient{"same socket": a, "reconnected socket": ts.connect(t, token)} {
		dup := c.sendMessage(conv, "m-1", "Where is my order?")
		if got := dup.msg(t); !dup.Duplicate || got.ID != msg.ID || got.Seq != 1 {
			t.Fatalf("%s: resend ack = %s, want duplicate of %s", name, dup.raw, msg.ID)
		}
	}
	// Even with another body or no conversation id, the client id decides.
	if dup := a.sendMessage("", "m-1", "something else"); !dup.Duplicate || dup.msg(t).ID != msg.ID {
		t.Fatalf("resend with another body = %s, want duplicate of %s", dup.raw, msg.ID)
	}
	if got := ts.count(t, `SELECT count(*) FROM messages`); got != 1 {
		t.Fatalf("%d message rows after resends, want 1", got)
	}
	if got := ts.count(t, `SELECT count(*) FROM conversations`); got != 1 {
		t.Fatalf("%d conversations after resends, want 1", got)
	}
	if f := b.ping(); len(f.Conversations) != 1 {
		t.Fatalf("second tab lists %s", f.raw)
	}

	// The next message continues the sequence.
	if got := a.sendMessage(conv, "m-2", "Order 1234").msg(t); got.Seq != 2 {
		t.Fatalf("second message seq = %d, want 2", got.Seq)
	}
	if got := b.expect("message").msg(t); got.Seq != 2 {
		t.Fatalf("second tab got seq %d, want 2", got.Seq)
	}
}

// Ids of conversations that are not the subject's own, whether of another
// subject of the same app or of another app, are simply not found.
func TestSocketForeignConversations(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	otherApp := ts.newApp(t, store.ModeEnforced)

	victim := ts.connect(t, ts.session(t, verifiedUser(app, "victim")).Token)
	sameApp := victim.startConversation("secret: my address is 1 Main St")
	ts.reply(t, app, sameApp, "secret: shipped to 1 Main St")
	victim.waitFor("unread")
	otherAppConv := ts.connect(t, ts.session(t, verifiedUser(otherApp, "victim")).Token).startConversation("secret: other app")

	attacker := ts.connect(t, ts.session(t, verifiedUser(app, "attacker")).Token)
	for name, id := range map[string]string{
		"another subject's conversation": sameApp,
		"another app's conversation":     otherAppConv,
		"no such conversation":           "cnv_aaaaaaaaaaaaaaaa",
	} {
		t.Run(name, func(t *testing.T) {
			frames := []map[string]any{
				{"type": "open", "conversation_id": id},
				{"type": "open", "conversation_id": id, "after_seq": 1},
				{"type": "typing", "conversation_id": id, "typing": true},
				{"type": "read", "conversation_id": id, "seq": 2},
				{"type": "send", "conversation_id": id, "client_msg_id": "x-" + id, "body": "injected"},
			}
			for _, f := range frames {
				attacker.send(f)
				e := attacker.expectError("not_found")
				if strings.Contains(e.raw, "secret") || strings.Contains(e.raw, "victim") {
					t.Fatalf("error frame leaks data: %s", e.raw)
				}
				if f["type"] == "send" && e.ClientMsgID != f["client_msg_id"] {
					t.Fatalf("send refusal %s does not name the client_msg_id", e.raw)
				}
			}
			attacker.ping()
		})
	}
	if got := ts.count(t, `SELECT count(*) FROM messages WHERE body = 'injected'`); got != 0 {
		t.Fatalf("%d injected messages stored, want 0", got)
	}
	if got := ts.count(t, `SELECT user_read_seq FROM conversations WHERE id = ?`, sameApp); got != 1 {
		t.Fatalf("victim's read mark = %d, want 1 (the attacker's read frame must not move it)", got)
	}
	// The victim heard nothing: no typing, message or unread frame.
	victim.ping()
}

func TestSocketOversizedFrame(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	token := ts.session(t, verifiedUser(app, "user-42")).Token

	// Exactly the limit is fine: a list frame padded with spaces.
	c := ts.connect(t, token)
	list := `{"type":"list"}`
	c.sendRaw(websocket.TextMessage, []byte(list+strings.Repeat(" ", chat.MaxFrameBytes-len(list))))
	c.expect("conversations")

	// One byte more closes the connection with 1009.
	c.sendRaw(websocket.TextMessage, []byte(list+strings.Repeat(" ", chat.MaxFrameBytes+1-len(list))))
	c.expectClose(websocket.CloseMessageTooBig)

	// So does a huge frame before authenticating.
	u := ts.open(t)
	u.sendRaw(websocket.TextMessage, []byte(`{"type":"auth","token":"`+strings.Repeat("A", chat.MaxFrameBytes)+`"}`))
	u.expectClose(websocket.CloseMessageTooBig)

	// The server keeps serving.
	ts.connect(t, token).ping()
}

func TestSocketMalformedFrames(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	token := ts.session(t, verifiedUser(app, "user-42")).Token
	// Started in the store, so no "message" frame can reach the sockets below.
	sess, err := ts.DB.SessionByToken(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ts.DB.AddUserMessage(context.Background(), store.UserMessage{AppID: app.ID, SubjectID: sess.SubjectID, ClientMsgID: "first", Body: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	conv := first.Conversation.ID
	long := strings.Repeat("a", chat.MaxBodyBytes+1)
	sendFrame := func(body string) string {
		b, _ := json.Marshal(map[string]any{"type": "send", "conversation_id": conv, "client_msg_id": "c-1", "body": body})
		return string(b)
	}

	tests := []struct {
		name  string
		kind  int
		frame string
		code  string
	}{
		{"bad JSON", websocket.TextMessage, `{"type":`, "bad_frame"},
		{"not an object", websocket.TextMessage, `[1,2,3]`, "bad_frame"},
		{"empty frame", websocket.TextMessage, ``, "bad_frame"},
		{"no type", websocket.TextMessage, `{}`, "bad_frame"},
		{"unknown type", websocket.TextMessage, `{"type":"delete_all"}`, "bad_frame"},
		{"unknown field", websocket.TextMessage, `{"type":"list","admin":true}`, "bad_frame"},
		{"field of the wrong type", websocket.TextMessage, `{"type":"open","conversation_id":42}`, "bad_frame"},
		{"trailing data", websocket.TextMessage, `{"type":"list"}{"type":"list"}`, "bad_frame"},
		{"invalid UTF-8", websocket.TextMessage, "{\"type\":\"list\",\"x\":\"\xff\"}", "bad_frame"},
		{"binary frame", websocket.BinaryMessage, `{"type":"list"}`, "bad_frame"},
		{"auth again", websocket.TextMessage, `{"type":"auth","token":"` + token + `"}`, "bad_frame"},
		{"open without an id", websocket.TextMessage, `{"type":"open"}`, "bad_frame"},
		{"open with a path-like id", websocket.TextMessage, `{"type":"open","conversation_id":"../cnv_x"}`, "bad_frame"},
		{"open with a negative after_seq", websocket.TextMessage, `{"type":"open","conversation_id":"` + conv + `","after_seq":-1}`, "bad_frame"},
		{"read with a negative seq", websocket.TextMessage, `{"type":"read","conversation_id":"` + conv + `","seq":-5}`, "bad_frame"},
		{"typing without an id", websocket.TextMessage, `{"type":"typing","typing":true}`, "bad_frame"},
		{"send without client_msg_id", websocket.TextMessage, `{"type":"send","conversation_id":"` + conv + `","body":"hi"}`, "bad_frame"},
		{"send with a bad client_msg_id", websocket.TextMessage, `{"type":"send","client_msg_id":"a b","body":"hi"}`, "bad_frame"},
		{"send with a too long client_msg_id", websocket.TextMessage, `{"type":"send","client_msg_id":"` + strings.Repeat("a", 65) + `","body":"hi"}`, "bad_frame"},
		{"send with an empty body", websocket.TextMessage, sendFrame(""), "empty_message"},
		{"send with only whitespace", websocket.TextMessage, sendFrame(" \n\t "), "empty_message"},
		{"send with a body over 4000 bytes", websocket.TextMessage, sendFrame(long), "message_too_long"},
		{"send with 4000 bytes of multi-byte runes plus one", websocket.TextMessage, sendFrame(strings.Repeat("é", chat.MaxBodyBytes/2) + "a"), "message_too_long"},
		{"send with a control character", websocket.TextMessage, sendFrame("hi\x07there"), "bad_message"},
		{"send with an escape sequence", websocket.TextMessage, sendFrame("\x1b[2Jhi"), "bad_message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.connect(t, token)
			c.sendRaw(tt.kind, []byte(tt.frame))
			e := c.expectError(tt.code)
			if strings.Contains(tt.frame, `"client_msg_id":"c-1"`) && e.ClientMsgID != "c-1" {
				t.Errorf("refusal %s does not name the client_msg_id", e.raw)
			}
			// The same connection keeps working.
			c.ping()
		})
	}
	if got := ts.count(t, `SELECT count(*) FROM messages`); got != 1 {
		t.Fatalf("%d messages stored, want only the first", got)
	}

	// The limits are not off by one: 4000 bytes, newlines and tabs are fine.
	c := ts.connect(t, token)
	for i, body := range []string{strings.Repeat("a", chat.MaxBodyBytes), strings.Repeat("é", chat.MaxBodyBytes/2), "line 1\n\tline 2"} {
		if got := c.sendMessage(conv, fmt.Sprintf("ok-%d", i), body).msg(t); got.Body != body {
			t.Fatalf("stored body differs from the sent one")
		}
	}
}

func TestSocketRateLimit(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	token := ts.session(t, verifiedUser(app, "user-42")).Token

	t.Run("send frames", func(t *testing.T) {
		c := ts.connect(t, token)
		const n = 60 // well past the burst
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				f, _ := json.Marshal(map[string]any{"type": "send", "client_msg_id": fmt.Sprintf("flood-%d", i), "body": "spam"})
				if c.conn.WriteMessage(websocket.TextMessage, f) != nil {
					return
				}
			}
		}()
		acks, limited := 0, 0
		for range n {
			switch f := c.next(); {
			case f.Type == "ack":
				acks++
			case f.Type == "error" && f.Code == "rate_limited":
				limited++
				if f.RetryAfterMS <= 0 || !strings.HasPrefix(f.ClientMsgID, "flood-") {
					t.Fatalf("rate_limited frame %s lacks retry_after_ms or client_msg_id", f.raw)
				}
			default:
				t.Fatalf("unexpected frame %s", f.raw)
			}
		}
		if limited == 0 {
			t.Fatalf("%d frames at once were all accepted, want rate_limited errors", n)
		}
		if got := ts.count(t, `SELECT count(*) FROM messages`); got != acks {
			t.Fatalf("%d messages stored, want %d (one per ack, none for refused frames)", got, acks)
		}
		wg.Wait()
		recovers(t, c)
	})

	t.Run("binary frames", func(t *testing.T) {
		c := ts.connect(t, token)
		const n = 60
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if c.conn.WriteMessage(websocket.BinaryMessage, []byte("x")) != nil {
					return
				}
			}
		}()
		limited := 0
		for range n {
			if f := c.expect("error"); f.Code == "rate_limited" {
				limited++
			}
		}
		if limited == 0 {
			t.Fatalf("%d binary frames at once were all answered, want rate_limited errors", n)
		}
		wg.Wait()
		recovers(t, c)
	})
}

// recovers waits as told by rate_limited frames until c is served again.
func recovers(t *testing.T, c *wsClient) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		c.send(map[string]any{"type": "list"})
		f := c.next()
		if f.Type == "conversations" {
			return
		}
		if f.Code != "rate_limited" {
			t.Fatalf("unexpected frame %s", f.raw)
		}
		time.Sleep(time.Duration(f.RetryAfterMS) * time.Millisecond)
	}
	t.Fatalf("connection still rate limited after %v", waitTimeout)
}

func TestSocketRateLimitCutsOffFlood(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	token := ts.session(t, verifiedUser(app, "user-42")).Token
	c := ts.connect(t, token)

	// A client that ignores rate_limited and keeps going is cut off with
	// 1008. It sends in lockstep (one frame, one answer), far faster than
	// the rate limit allows: that keeps the send queue short, so it is the
	// limit and not the slow-client guard that ends it, and the client is
	// not mid-write when the server closes (which could reset the
	// connection before the close frame is read).
	limited, cut := 0, false
	// Bounded in frames sent too: without a limit no rate_limited ever
	// comes, and the loop must still end.
	for sent := 0; !cut && limited < 1000 && sent < 5000; sent++ {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"list"}`)); err != nil {
			t.Fatalf("write: %v", err)
		}
		c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
		_, data, err := c.conn.ReadMessage()
		if websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			cut = true
			continue
		}
		if err != nil {
			t.Fatalf("socket ended with %v after %d rate_limited frames, want close %d", err, limited, websocket.ClosePolicyViolation)
		}
		if strings.Contains(string(data), `"rate_limited"`) {
			limited++
		}
	}
	if !cut {
		t.Fatalf("still connected after %d rate_limited frames", limited)
	}
	ts.connect(t, token).ping()
}

func TestSocketReconnectCatchUp(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	token := ts.session(t, verifiedUser(app, "user-42")).Token

	c := ts.connect(t, token)
	conv := c.startConversation("first")
	if got := c.sendMessage(conv, "m-2", "second").msg(t).Seq; got != 2 {
		t.Fatalf("seq = %d, want 2", got)
	}
	c.conn.Close()

	// While the widget is away, the agent answers twice.
	r1 := ts.reply(t, app, conv, "reply one")
	r2 := ts.reply(t, app, conv, "reply two")

	c = ts.connect(t, token)
	if got, want := c.welcome.Unread, int64(2); got != want {
		t.Fatalf("welcome unread = %d, want %d", got, want)
	}
	c.send(map[string]any{"type": "open", "conversation_id": conv, "after_seq": 2})
	h := c.expect("history")
	if h.ConversationID != conv || h.HasMore || len(h.Messages) != 2 ||
		h.Messages[0].ID != r1.ID || h.Messages[0].Seq != 3 || h.Messages[1].ID != r2.ID || h.Messages[1].Seq != 4 {
		t.Fatalf("catch-up history = %s, want exactly the two replies, seq 3 then 4", h.raw)
	}
	if m := h.Messages[0]; m.Author != "agent" || m.AuthorName != "Ann" || m.Body != "reply one" {
		t.Fatalf("reply = %+v, want agent Ann's \"reply one\"", m)
	}

	// From the start: everything, in order.
	c.send(map[string]any{"type": "open", "conversation_id": conv})
	h = c.expect("history")
	for i, m := range h.Messages {
		if m.Seq != int64(i+1) {
			t.Fatalf("history seqs out of order: %s", h.raw)
		}
	}
	if len(h.Messages) != 4 {
		t.Fatalf("full history has %d messages, want 4", len(h.Messages))
	}
	// Nothing newer than the last seq.
	c.send(map[string]any{"type": "open", "conversation_id": conv, "after_seq": 4})
	if h := c.expect("history"); len(h.Messages) != 0 || h.HasMore {
		t.Fatalf("history after the last seq = %s, want empty", h.raw)
	}
}

func TestSocketHistoryPages(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	token := ts.session(t, verifiedUser(app, "user-42")).Token
	c := ts.connect(t, token)
	conv := c.startConversation("first")
	for i := range 204 {
		if _, err := ts.DB.AddAgentMessage(context.Background(), app.ID, conv, "Ann", fmt.Sprintf("reply %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []int64
	after := int64(0)
	for range 3 {
		c.send(map[string]any{"type": "open", "conversation_id": conv, "after_seq": after})
		h := c.expect("history")
		for _, m := range h.Messages {
			seqs = append(seqs, m.Seq)
		}
		if !h.HasMore {
			break
		}
		after = h.Messages[len(h.Messages)-1].Seq
	}
	if len(seqs) != 205 {
		t.Fatalf("paged through %d messages, want 205", len(seqs))
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("seq %d at position %d, want %d", s, i, i+1)
		}
	}
}

func TestSocketFanOut(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	token := ts.session(t, verifiedUser(app, "user-42")).Token
	tab1, tab2 := ts.connect(t, token), ts.connect(t, token)
	otherUser := ts.connect(t, ts.session(t, verifiedUser(app, "user-43")).Token)
	claim := ts.connect(t, ts.session(t, fields(app, "user_id", "user-42")).Token)
	visitor := ts.connect(t, ts.session(t, fields(app)).Token)

	ack := tab1.sendMessage("", "m-1", "hello from tab 1")
	got := tab2.expect("message").msg(t)
	if got.ID != ack.msg(t).ID || got.Body != "hello from tab 1" {
		t.Fatalf("tab 2 got %+v, want the message tab 1 sent", got)
	}
	// Tab 2 answers in the same conversation; tab 1 sees it.
	tab2.sendMessage(ack.Conversation.ID, "m-2", "hello from tab 2")
	if got := tab1.expect("message").msg(t); got.Body != "hello from tab 2" || got.Seq != 2 {
		t.Fatalf("tab 1 got %+v, want tab 2's message", got)
	}
	// Nobody else heard anything, and the senders got no echo of their own
	// messages besides the acks: the next frame of each socket is the
	// answer to ping.
	for name, c := range map[string]*wsClient{"tab 1": tab1, "tab 2": tab2, "other user": otherUser, "unverified claim": claim, "visitor": visitor} {
		if f := c.ping(); name != "tab 1" && name != "tab 2" && len(f.Conversations) != 0 {
			t.Errorf("%s lists %s, want nothing", name, f.raw)
		}
	}
}

func TestSocketAgentReplyAndRead(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	token := ts.session(t, verifiedUser(app, "user-42")).Token
	tab1, tab2 := ts.connect(t, token), ts.connect(t, token)
	other := ts.connect(t, ts.session(t, verifiedUser(app, "user-43")).Token)
	conv := tab1.startConversation("help")
	tab2.expect("message")

	r1 := ts.reply(t, app, conv, "on it")
	for name, c := range map[string]*wsClient{"tab 1": tab1, "tab 2": tab2} {
		m := c.expect("message").msg(t)
		if m.ID != r1.ID || m.Author != "agent" || m.AuthorName != "Ann" || m.Body != "on it" || m.ConversationID != conv {
			t.Fatalf("%s got %+v, want the agent's reply", name, m)
		}
		if u := c.expect("unread"); u.Count != 1 {
			t.Fatalf("%s unread = %d, want 1", name, u.Count)
		}
	}
	r2 := ts.reply(t, app, conv, "done")
	for _, c := range []*wsClient{tab1, tab2} {
		c.expect("message")
		if u := c.expect("unread"); u.Count != 2 {
			t.Fatalf("unread = %d, want 2", u.Count)
		}
	}
	other.ping() // nothing for another subject

	// Reading up to the first reply leaves one unread, on every tab.
	tab1.send(map[string]any{"type": "read", "conversation_id": conv, "seq": r1.Seq})
	for _, c := range []*wsClient{tab1, tab2} {
		if u := c.expect("unread"); u.Count != 1 {
			t.Fatalf("unread after reading seq %d = %d, want 1", r1.Seq, u.Count)
		}
	}
	// The read mark never moves back…
	tab1.send(map[string]any{"type": "read", "conversation_id": conv, "seq": 0})
	for _, c := range []*wsClient{tab1, tab2} {
		if u := c.expect("unread"); u.Count != 1 {
			t.Fatalf("unread after reading seq 0 = %d, want still 1", u.Count)
		}
	}
	// …and never past the last message, so later replies count as unread.
	tab1.send(map[string]any{"type": "read", "conversation_id": conv, "seq": 1 << 40})
	if u := tab1.expect("unread"); u.Count != 0 {
		t.Fatalf("unread after reading everything = %d, want 0", u.Count)
	}
	tab2.expect("unread")
	ts.reply(t, app, conv, "anything else?")
	tab1.expect("message")
	if u := tab1.expect("unread"); u.Count != 1 {
		t.Fatalf("unread after a new reply = %d, want 1 (read mark must not run ahead of last_seq %d)", u.Count, r2.Seq)
	}
	if c := ts.connect(t, token); c.welcome.Unread != 1 {
		t.Fatalf("welcome unread = %d, want 1", c.welcome.Unread)
	}
	// The listing carries the same numbers.
	l := tab1.ping()
	if len(l.Conversations) != 1 || l.Conversations[0].Unread != 1 || l.Conversations[0].LastSeq != 4 || l.Conversations[0].ReadSeq != 3 {
		t.Fatalf("list = %s, want unread 1, last_seq 4, read_seq 3", l.raw)
	}
}

func TestSocketShutdownSaysGoingAway(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	c := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ts.Hub.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.expectClose(websocket.CloseGoingAway)
}

func TestSocketShutdownEndsUnauthenticated(t *testing.T) {
	ts := newTestServer(t)
	c := ts.open(t) // connected, never authenticates
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ts.Hub.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a socket that has not authenticated: %v", err)
	}
	c.expectClose(websocket.CloseGoingAway)

	// Sockets opened after the shutdown are turned away too.
	late := ts.open(t)
	late.expectClose(websocket.CloseGoingAway)
}
