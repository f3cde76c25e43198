package chat

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/broker"
	"github.com/parley-chat/parley/internal/store"
)

// Hub knows every authenticated widget connection, keyed by subject, so
// that a committed message reaches all of that subject's open widgets and
// nobody else's; and every agent connection, keyed by app, so that the
// dashboard sees all of its app's activity and no other app's.
type Hub struct {
	store Store
	log   *slog.Logger
	// AgentRecheck is how often an agent socket's Agent.StillAllowed is
	// asked (NewHub: 30 seconds).
	AgentRecheck time.Duration
	limits       atomic.Pointer[subjectLimits] // SetLimits
	cluster      atomic.Pointer[cluster]       // JoinCluster; nil on a single node

	mu       sync.RWMutex
	subjects map[string]map[*Client]struct{}
	agents   map[string]map[*agentClient]struct{}
	// pending are connections still waiting for their auth frame. Shutdown
	// ends them too; otherwise one idle socket would hold it up for authWait
	// and then go on to register after the hub had closed the others.
	pending map[*websocket.Conn]struct{}
	closing bool           // set by Shutdown: no connection is admitted after it
	running sync.WaitGroup // connections being served
	// presence keeps this node's agents' presence rows (presence.go).
	presence *presence
}

// NewHub returns an empty hub with DefaultLimits.
func NewHub(st Store, log *slog.Logger) *Hub {
	h := &Hub{store: st, log: log, AgentRecheck: 30 * time.Second, subjects: map[string]map[*Client]struct{}{}, agents: map[string]map[*agentClient]struct{}{},
		pending: map[*websocket.Conn]struct{}{}, presence: newPresence()}
	h.SetLimits(Limits{})
	return h
}

// admit records a new, not yet authenticated connection. It reports false
// once the hub is shutting down. The WaitGroup is added to under the lock
// that Shutdown takes before it waits, so no Add races the Wait.
func (h *Hub) admit(conn *websocket.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.running.Add(1)
	h.pending[conn] = struct{}{}
	return true
}

// forget drops a connection from pending (a no-op once it registered).
func (h *Hub) forget(conn *websocket.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, conn)
}

// Outcomes of register.
const (
	registered  = iota
	hubClosing  // the hub began shutting down during authentication
	subjectFull // the subject already has its maximum of sockets open
)

// register moves an authenticated connection from pending to its subject,
// unless the subject already holds maxSockets. Counting and adding under
// one lock keeps parallel opens from all squeezing in.
func (h *Hub) register(c *Client, maxSockets int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, c.conn)
	if h.closing {
		return hubClosing
	}
	set := h.subjects[c.session.SubjectID]
	if len(set) >= maxSockets {
		return subjectFull
	}
	if set == nil {
		set = map[*Client]struct{}{}
		h.subjects[c.session.SubjectID] = set
	}
	set[c] = struct{}{}
	return registered
}

func (h *Hub) unregister(c *Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subjects[c.session.SubjectID]
	delete(set, c)
	if len(set) == 0 {
		delete(h.subjects, c.session.SubjectID)
	}
}

// sendToSubject queues frame on every connection of the subject except
// skip; a frame with a key supersedes a queued one with the same key
// (peer.queueLatest).
func (h *Hub) sendToSubject(subjectID, key string, frame []byte, skip *Client) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.subjects[subjectID] {
		if c != skip {
			c.enqueue(frame, key)
		}
	}
}

// Keys of the frames that supersede queued ones of the same key: each
// states the whole of what it reports, so only the latest matters.
const unreadKey = "unread"

// typingKey: one typist's indicator in one conversation.
func typingKey(conversationID, author, authorName string) string {
	return "typing\x00" + conversationID + "\x00" + author + "\x00" + authorName
}

// receiptKey: how far the agents read a conversation (widget sockets).
func receiptKey(conversationID string) string { return "receipt\x00" + conversationID }

// conversationKey: a conversation's status (agent sockets).
func conversationKey(conversationID string) string {
	return "conversation\x00" + conversationID
}

// Sockets returns how many widget and agent sockets are open.
func (h *Hub) Sockets() (widget, agent int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.subjects {
		widget += len(set)
	}
	for _, set := range h.agents {
		agent += len(set)
	}
	return widget, agent
}

// Resyncs returns how often the broker said events may have been lost.
func (h *Hub) Resyncs() int64 {
	if cl := h.cluster.Load(); cl != nil {
		return cl.resyncs.Load()
	}
	return 0
}

// Connections returns how many widget sockets are open for a subject.
func (h *Hub) Connections(subjectID string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subjects[subjectID])
}

// AgentMessage delivers a committed agent reply to the subject's open
// widgets, followed by their new unread count, and to the app's agents,
// on every node.
func (h *Hub) AgentMessage(ctx context.Context, p store.Posted) {
	h.committed(ctx, p, nil)
}

// ConversationChanged tells the app's agents, on every node, a
// conversation's status changed.
func (h *Hub) ConversationChanged(c store.Conversation) {
	h.conversationChangedHere(c, false)
	h.publish(context.Background(), h.cluster.Load(), broker.Event{Kind: broker.KindConversation, AppID: c.AppID, ConversationID: c.ID})
}

// AgentsRead tells the app's agents, on every node, that a conversation's
// agent read mark moved, and the user's widgets how far the agents read.
// Its event names the subject; a status change's does not.
func (h *Hub) AgentsRead(c store.Conversation) {
	h.conversationChangedHere(c, true)
	h.publish(context.Background(), h.cluster.Load(), broker.Event{Kind: broker.KindConversation, AppID: c.AppID, SubjectID: c.SubjectID, ConversationID: c.ID})
}

func (h *Hub) conversationChangedHere(c store.Conversation, read bool) {
	h.sendToApp(c.AppID, conversationKey(c.ID), encode(conversationFrame{Type: "conversation", ConversationID: c.ID, Status: c.Status}))
	if read {
		h.sendToSubject(c.SubjectID, receiptKey(c.ID), encode(newReceipt(c)), nil)
	}
}

// AgentTyping tells the subject's open widgets, on every node, that an
// agent is (or stopped) typing in a conversation.
func (h *Hub) AgentTyping(c store.Conversation, authorName string, typing bool) {
	h.agentTypingHere(c, authorName, typing)
	h.publish(context.Background(), h.cluster.Load(), broker.Event{Kind: broker.KindTyping, AppID: c.AppID, SubjectID: c.SubjectID,
		ConversationID: c.ID, Author: store.AuthorAgent, AuthorName: authorName, Typing: typing})
}

func (h *Hub) agentTypingHere(c store.Conversation, authorName string, typing bool) {
	h.sendToSubject(c.SubjectID, typingKey(c.ID, store.AuthorAgent, authorName), encode(typingFrame{Type: "typing",
		ConversationID: c.ID, Author: store.AuthorAgent, AuthorName: authorName, Typing: typing}), nil)
}

// userTyping tells the app's agents, on every node, that the user is (or
// stopped) typing.
func (h *Hub) userTyping(c store.Conversation, typing bool) {
	h.userTypingHere(c, typing)
	h.publish(context.Background(), h.cluster.Load(), broker.Event{Kind: broker.KindTyping, AppID: c.AppID, SubjectID: c.SubjectID,
		ConversationID: c.ID, Author: store.AuthorUser, Typing: typing})
}

func (h *Hub) userTypingHere(c store.Conversation, typing bool) {
	h.sendToApp(c.AppID, typingKey(c.ID, store.AuthorUser, ""),
		encode(typingFrame{Type: "typing", ConversationID: c.ID, Author: store.AuthorUser, Typing: typing}))
}

// unreadChanged pushes the subject's unread count to its widgets on every
// node.
func (h *Hub) unreadChanged(ctx context.Context, appID, subjectID string) {
	h.pushUnread(ctx, subjectID)
	h.publish(ctx, h.cluster.Load(), broker.Event{Kind: broker.KindUnread, AppID: appID, SubjectID: subjectID})
}

func (h *Hub) pushUnread(ctx context.Context, subjectID string) {
	n, err := h.store.UnreadCount(ctx, subjectID)
	if err != nil {
		h.log.Error("unread count", "err", err)
		return
	}
	h.sendToSubject(subjectID, unreadKey, encode(unreadFrame{Type: "unread", Count: n}), nil)
}

// Shutdown closes every connection with a going-away code and waits,
// until ctx ends, for their handlers to finish. A widget connection first
// finishes the frame it is handling: a message being committed is acked
// before the close, and no frame after it is read.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	for _, set := range h.subjects {
		for c := range set {
			c.stopReading()
		}
	}
	for _, set := range h.agents {
		for ac := range set {
			ac.closeWith(closeGoingAway, "server shutting down")
		}
	}
	pending := make([]*websocket.Conn, 0, len(h.pending))
	for conn := range h.pending {
		pending = append(pending, conn)
	}
	h.mu.Unlock()
	// Closing a pending connection ends its wait for the auth frame.
	for _, conn := range pending {
		goingAway(conn)
		conn.Close()
	}
	done := make(chan struct{})
	go func() {
		h.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready reports whether the hub takes sockets: not once Shutdown has
// begun, so that a balancer sends no new chats to a node that is stopping.
func (h *Hub) Ready(context.Context) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closing {
		return errors.New("chat: shutting down")
	}
	return nil
}

// goingAway tells a client the server is shutting down (best effort).
func goingAway(conn *websocket.Conn) {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeGoingAway, "server shutting down"), time.Now().Add(time.Second))
}
