package chat

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/store"
)

// Store is what the sockets need from storage.
type Store interface {
	SessionByToken(ctx context.Context, token string) (*store.Session, error)
	SubjectConversations(ctx context.Context, subjectID string, limit int) ([]store.Conversation, error)
	SubjectConversation(ctx context.Context, subjectID, id string) (store.Conversation, error)
	Messages(ctx context.Context, c store.Conversation, afterSeq int64, limit int) (store.MessagePage, error)
	AddUserMessage(ctx context.Context, in store.UserMessage) (store.Posted, error)
	MarkRead(ctx context.Context, subjectID, id string, seq int64) error
	UnreadCount(ctx context.Context, subjectID string) (int64, error)
	TouchSubject(ctx context.Context, subjectID string) error
	// For WatchSessionEnds.
	LastSessionEnd(ctx context.Context) (int64, error)
	SessionEndsAfter(ctx context.Context, id int64, limit int) ([]store.SessionEnd, error)
}

// Timing and flow limits of a connection.
const (
	authWait   = 10 * time.Second
	writeWait  = 10 * time.Second
	pongWait   = 60 * time.Second
	pingPeriod = pongWait * 9 / 10
	historyMax = 200
	frameRate  = 10 // frames per second per connection, sustained
	frameBurst = 30
	maxStrikes = 50 // rate-limited frames before the connection is cut
)

// Close codes beyond RFC 6455's.
const (
	closeGoingAway      = websocket.CloseGoingAway
	closePolicy         = websocket.ClosePolicyViolation
	CloseSessionInvalid = 4001 // create a new session, then reconnect
	CloseRateLimited    = 4008 // a per-subject limit refused the socket; reconnect after retry_after_ms
)

// Client is one authenticated widget connection.
type Client struct {
	*peer
	hub     *Hub
	session *store.Session
	// sending is the client_msg_id of the message this socket is
	// committing, if any: that message is answered with an ack, so
	// delivery skips it here even when it reaches this node from the
	// database before the ack is queued.
	sending atomic.Pointer[string]
}

// isSending reports whether this socket is committing the message with
// client_msg_id id.
func (c *Client) isSending(id string) bool {
	p := c.sending.Load()
	return p != nil && id != "" && *p == id
}

// Serve runs a widget connection until it ends: it waits for the auth
// frame, then serves the connection as Start does. It returns when the
// connection is closed.
func (h *Hub) Serve(ctx context.Context, conn *websocket.Conn) {
	<-h.start(ctx, conn)
}

// Start is Serve without the wait: it authenticates the connection on the
// calling goroutine, then hands it to a read goroutine of its own (and a
// writer goroutine while frames are queued, see peer) and returns. An
// HTTP handler that calls it can
// return at once, which frees the hijacked request's buffers and the
// handler's goroutine (whose stack the request and the session lookups
// grew) for as long as the socket stays open. ctx is used for the
// authentication only; the connection's frames are then handled under a
// context of their own, never canceled (a request's context ends when its
// handler returns, and keeping it would keep the request's values alive).
// Hub.Shutdown ends the connection and waits for it.
func (h *Hub) Start(ctx context.Context, conn *websocket.Conn) {
	h.start(ctx, conn)
}

// start returns a channel closed once the connection has ended.
func (h *Hub) start(ctx context.Context, conn *websocket.Conn) <-chan struct{} {
	ended := make(chan struct{})
	if !h.admit(conn) {
		goingAway(conn)
		conn.Close()
		close(ended)
		return ended
	}
	c, ok := h.accept(ctx, conn)
	if !ok {
		h.forget(conn)
		conn.Close()
		h.running.Done()
		close(ended)
		return ended
	}
	ctx = context.Background()
	go func() {
		defer close(ended)
		defer h.running.Done()
		defer conn.Close()
		defer h.unregister(c)
		c.run(func() {
			c.readPump(ctx)
			// Out of the subject's count now, not after the close's
			// linger: a closing socket no longer holds a place.
			h.unregister(c)
		})
	}()
	return ended
}

// accept authenticates and registers a connection; on false it has been
// refused (and answered) and is not registered.
func (h *Hub) accept(ctx context.Context, conn *websocket.Conn) (*Client, bool) {
	conn.SetReadLimit(MaxFrameBytes)
	sess, token, ok := h.authenticate(ctx, conn)
	if !ok {
		return nil, false
	}
	c, ok := h.join(ctx, conn, sess)
	if !ok {
		return nil, false
	}
	if !h.stillLive(ctx, conn, token) {
		h.unregister(c)
		return nil, false
	}
	return c, true
}

// join registers an authenticated connection with its subject, within the
// subject's limits, and queues its welcome. On false the connection has
// been refused.
func (h *Hub) join(ctx context.Context, conn *websocket.Conn, sess *store.Session) (*Client, bool) {
	lim := h.limits.Load()
	if ok, wait := lim.opens.Reserve(sess.SubjectID); !ok {
		refuse(conn, rateLimited("this chat is reconnecting too often; try again shortly", wait), CloseRateLimited, "rate_limited")
		return nil, false
	}
	// Last seen is a hint for the dashboard, not worth refusing a chat over.
	if err := h.store.TouchSubject(ctx, sess.SubjectID); err != nil {
		h.log.Error("touch subject", "subject", sess.SubjectID, "err", err)
	}
	c := &Client{hub: h, session: sess}
	c.peer = newPeer(conn, c.log, sess.ExpiresAt)
	// welcome is queued before the client is registered, so it is always
	// the first frame, ahead of any broadcast.
	unread, err := h.store.UnreadCount(ctx, sess.SubjectID)
	if err != nil {
		c.log().Error("unread count", "err", err)
	}
	c.queue(encode(welcomeFrame{Type: "welcome", Verified: sess.Verified(), Anonymous: sess.Kind == store.KindVisitor,
		Unread: unread, ExpiresAt: sess.ExpiresAt, Presence: h.welcomePresence(ctx, sess.AppID)}))
	switch h.register(c, lim.sockets) {
	case hubClosing:
		goingAway(conn)
		return nil, false
	case subjectFull:
		refuse(conn, rateLimited("this chat is open in too many tabs or windows; close some and try again", socketsRetry), CloseRateLimited, "rate_limited")
		return nil, false
	}
	return c, true
}

// stillLive looks the session up once more now that the socket is
// registered. A session that ended between the first lookup and the
// registration was ended while EndSessions could not find this socket;
// any end after the registration finds it. The write pump has not started,
// so this writes the refusal itself.
func (h *Hub) stillLive(ctx context.Context, conn *websocket.Conn, token string) bool {
	_, err := h.store.SessionByToken(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		refuse(conn, sessionEndedFrame(""), closePolicy, "session ended")
		return false
	case err != nil:
		h.log.Error("session recheck", "err", err)
		refuse(conn, errorFrame{Type: "error", Code: "unavailable", Message: "try again"}, websocket.CloseTryAgainLater, "unavailable")
		return false
	}
	return true
}

// refuse sends one error frame and closes the connection with code, for
// connections whose write pump is not running.
func refuse(conn *websocket.Conn, f errorFrame, code int, reason string) {
	conn.SetWriteDeadline(time.Now().Add(writeWait))
	conn.WriteMessage(websocket.TextMessage, encode(f))
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
}

func rateLimited(msg string, retry time.Duration) errorFrame {
	return errorFrame{Type: "error", Code: "rate_limited", Message: msg, RetryAfterMS: retryMS(retry)}
}

// retryMS rounds up, so a client that waits that long finds a token.
func retryMS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// authenticate reads the auth frame and returns its session and token.
func (h *Hub) authenticate(ctx context.Context, conn *websocket.Conn) (*store.Session, string, bool) {
	conn.SetReadDeadline(time.Now().Add(authWait))
	reject := func(code, msg string) (*store.Session, string, bool) {
		refuse(conn, errorFrame{Type: "error", Code: code, Message: msg}, CloseSessionInvalid, code)
		return nil, "", false
	}
	kind, data, err := conn.ReadMessage()
	if err != nil {
		return nil, "", false
	}
	if kind != websocket.TextMessage {
		return reject("bad_frame", "the first frame must be a text auth frame")
	}
	f, ferr := DecodeClientFrame(data)
	if ferr != nil || f.Type != TypeAuth {
		return reject("unauthorized", "the first frame must be {\"type\":\"auth\",\"token\":…}")
	}
	sess, err := h.store.SessionByToken(ctx, f.Token)
	if errors.Is(err, store.ErrNotFound) {
		return reject("unauthorized", "session token is invalid or expired")
	}
	if err != nil {
		h.log.Error("session lookup", "err", err)
		return reject("unavailable", "try again")
	}
	return sess, f.Token, true
}

func (c *Client) readPump(ctx context.Context) {
	c.extendRead(pongWait)
	c.conn.SetPongHandler(func(string) error {
		return c.extendRead(pongWait)
	})
	var limiter *rate.Limiter // made at the first frame: an idle socket never needs one
	strikes := 0
	for c.waitForRoom() {
		kind, data, err := c.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.closeWith(websocket.CloseMessageTooBig, "frame too large")
			}
			return
		}
		c.extendRead(pongWait)
		var f ClientFrame
		ferr := &FrameError{Code: "bad_frame", Message: "only text frames are accepted"}
		if kind == websocket.TextMessage {
			f, ferr = DecodeClientFrame(data)
		}
		// Binary frames count against the limit like any other, or a flood
		// of them would have the server write error frames without end.
		if limiter == nil {
			limiter = rate.NewLimiter(frameRate, frameBurst) // full, as it would have been from the start
		}
		if !limiter.Allow() {
			strikes++
			if strikes > maxStrikes {
				c.closeWith(closePolicy, "rate limit exceeded")
				return
			}
			retry := &FrameError{Code: "rate_limited", Message: "too many frames; slow down"}
			retry.ClientMsgID = f.ClientMsgID
			c.queueError(retry, time.Second/frameRate)
			continue
		}
		if ferr != nil {
			c.queueError(ferr, 0)
			continue
		}
		// Messages are paced per subject, across all of its sockets, so
		// more tabs do not mean more messages.
		if f.Type == TypeSend {
			if ok, wait := c.hub.limits.Load().messages.Reserve(c.session.SubjectID); !ok {
				c.queueError(&FrameError{Code: "rate_limited", Message: "you're sending messages too quickly; slow down", ClientMsgID: f.ClientMsgID}, wait)
				continue
			}
		}
		if err := c.handle(ctx, f); err != nil {
			c.queueError(err, 0)
		}
		if c.isStopping() { // the answer is queued; the server is shutting down
			return
		}
	}
}

// log is the hub's logger with the connection's subject, made only when
// something is logged: a clone per connection would cost every idle socket
// its memory.
func (c *Client) log() *slog.Logger { return c.hub.log.With("subject", c.session.SubjectID) }

func (c *Client) queueError(e *FrameError, retry time.Duration) {
	c.queue(encode(errorFrame{Type: "error", Code: e.Code, Message: e.Message, ClientMsgID: e.ClientMsgID,
		RetryAfterMS: retryMS(retry)}))
}
