package chat

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/internal/broker"
	"github.com/parley-chat/parley/internal/store"
)

// Delivery across nodes.
//
// The database is the truth and the broker a hint (see internal/broker).
// Every committed message reaches this node's sockets through one path,
// deliver, which keeps per conversation the last seq it delivered:
//   - a message committed here is delivered as it is when it is the next
//     seq, and published for the other nodes;
//   - a hint from another node, a gap (a seq beyond the next), or a poll
//     that finds a conversation further on than delivered, read the
//     missing messages from the database, in seq order (commit order:
//     see store), and deliver those;
//   - a seq at or below the last delivered was delivered already.
//
// So a socket gets each message once and in order whichever way it came,
// and a lost hint costs only latency: the poll (DefaultClusterPoll) finds every
// conversation with recent messages of the apps this node serves, and a
// resync (the broker reconnected, or fell behind) polls at once, from
// before the outage.

// Publisher is the broker as the hub uses it.
type Publisher interface {
	Publish(ctx context.Context, e broker.Event) error
}

// ClusterStore is what delivery across nodes reads.
type ClusterStore interface {
	ConversationByID(ctx context.Context, id string) (store.Conversation, error)
	ActiveConversations(ctx context.Context, appIDs []string, since time.Time) ([]store.ConversationHead, error)
}

// DefaultClusterPoll is how often a node of a cluster looks for
// conversations it has fallen behind on, in case a hint was lost: the
// longest a lost hint delays a message.
const DefaultClusterPoll = time.Second

const (
	// pollMargin reaches back before the last poll: a message's time is
	// taken when its transaction starts, on the clock of the node that
	// wrote it, and commits a moment later.
	pollMargin = 5 * time.Second
	// maxEventReads bounds the database reads that events run at once.
	maxEventReads = 32
	// trackedFor is how long a conversation's delivered seq is kept after
	// its last message.
	trackedFor = 10 * time.Minute
)

// cluster is the hub's part in a cluster; nil on a single node.
type cluster struct {
	ctx     context.Context // ends when the node stops
	every   time.Duration
	pub     Publisher
	node    string
	store   ClusterStore
	resync  chan struct{} // a poll now, please (buffered, 1)
	reads   chan struct{} // a semaphore of the reads events start
	resyncs atomic.Int64  // HandleResync calls, for metrics
	// since is where the poll window begins (unix ms): what was written
	// before it, this node has had every chance to hear of.
	since atomic.Int64

	mu    sync.Mutex
	convs map[string]*followed
}

// followed is one conversation as this node delivers it.
type followed struct {
	mu               sync.Mutex // held while delivering: one conversation's messages go out in order
	appID, subjectID string     // from the database, never from a hint
	last             int64      // seq of the last message delivered
	// touched is when the state was last handed out (unix ns), under
	// cluster.mu: forget, under the same lock, never drops a state that a
	// goroutine is about to use.
	touched atomic.Int64
}

// JoinCluster makes the hub deliver what other nodes commit, told by b's
// events (the hub is b's Handler) and by polling st, and publish what is
// committed here. It polls until ctx ends. node names this node in what
// it publishes.
//
// every is how often it polls (DefaultClusterPoll).
func (h *Hub) JoinCluster(ctx context.Context, pub Publisher, node string, st ClusterStore, every time.Duration) {
	cl := &cluster{ctx: ctx, every: every, pub: pub, node: node, store: st, resync: make(chan struct{}, 1), reads: make(chan struct{}, maxEventReads),
		convs: map[string]*followed{}}
	cl.since.Store(time.Now().Add(-pollMargin).UnixMilli())
	h.cluster.Store(cl)
	go h.poll(ctx, cl)
}

// HandleEvent applies another node's event (broker.Handler).
func (h *Hub) HandleEvent(e broker.Event) {
	cl := h.cluster.Load()
	if cl == nil {
		return
	}
	ctx := cl.ctx
	switch e.Kind {
	case broker.KindMessage:
		if !h.interested(e.AppID, e.SubjectID) {
			return
		}
		// Each read runs beside the others: one after the other, the
		// broker's single delivery goroutine would wait for the database
		// per event and fall behind. Order needs no queue: catchUp
		// delivers by seq whichever event comes first. The semaphore
		// bounds the reads; when it is full the broker waits, and NATS
		// reports a slow consumer, which resyncs.
		select {
		case cl.reads <- struct{}{}:
		case <-ctx.Done():
			return
		}
		go func() {
			defer func() { <-cl.reads }()
			f, err := h.follow(ctx, cl, e.ConversationID, e.Seq, nil)
			if err != nil {
				h.logFollow(e.ConversationID, err)
				return
			}
			if err := h.catchUp(ctx, cl, f, e.ConversationID, e.Seq, nil, nil); err != nil {
				h.log.Warn("reading missed messages", "conversation", e.ConversationID, "err", err) // the poll tries again
			}
		}()
	case broker.KindTyping:
		if !h.interested(e.AppID, e.SubjectID) {
			return
		}
		c, err := cl.store.ConversationByID(ctx, e.ConversationID)
		if err != nil {
			h.logFollow(e.ConversationID, err)
			return
		}
		if e.Author == store.AuthorAgent {
			h.agentTypingHere(c, e.AuthorName, e.Typing)
		} else {
			h.userTypingHere(c, e.Typing)
		}
	case broker.KindConversation:
		if !h.interested(e.AppID, e.SubjectID) {
			return
		}
		c, err := cl.store.ConversationByID(ctx, e.ConversationID)
		if err != nil {
			h.logFollow(e.ConversationID, err)
			return
		}
		h.conversationChangedHere(c, e.SubjectID != "")
	case broker.KindUnread:
		if h.Connections(e.SubjectID) > 0 {
			h.pushUnread(ctx, e.SubjectID)
		}
	}
}

// HandleResync polls at once (broker.Handler).
func (h *Hub) HandleResync() {
	if cl := h.cluster.Load(); cl != nil {
		cl.resyncs.Add(1)
		select {
		case cl.resync <- struct{}{}:
		default:
		}
	}
}

func (h *Hub) logFollow(conversationID string, err error) {
	if !errors.Is(err, store.ErrNotFound) { // deleted since: nothing to deliver
		h.log.Error("following a conversation", "conversation", conversationID, "err", err)
	}
}

// interested reports whether this node has a socket that a conversation
// of appID and subjectID concerns.
func (h *Hub) interested(appID, subjectID string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.agents[appID]) > 0 || (subjectID != "" && len(h.subjects[subjectID]) > 0)
}

// follow returns the conversation's state. On first sight (nothing of it
// delivered here yet) it starts at the first message written since the
// poll window began, or at upTo if that is earlier: those are what this
// node may have missed hints of. Whose conversation it is, and how far it
// goes, come from known (a commit here, or the poll's row) or from the
// database, never from an event: a forged seq could otherwise make the
// node skip messages or replay a whole history.
func (h *Hub) follow(ctx context.Context, cl *cluster, conversationID string, upTo int64, known *store.Conversation) (*followed, error) {
	if f := cl.get(conversationID); f != nil {
		return f, nil
	}
	if known == nil {
		c, err := cl.store.ConversationByID(ctx, conversationID)
		if err != nil {
			return nil, err
		}
		known, upTo = &c, c.LastSeq
	}
	first, err := h.firstInWindow(ctx, cl, conversationID, upTo)
	if err != nil {
		return nil, err
	}
	return cl.add(known.ID, known.AppID, known.SubjectID, first-1), nil
}

// get returns the conversation's state, if it has one, marked as in use.
func (cl *cluster) get(conversationID string) *followed {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	f := cl.convs[conversationID]
	if f != nil {
		f.touched.Store(time.Now().UnixNano())
	}
	return f
}

// firstInWindow is the seq of the conversation's first message written
// since the poll window began, if it is below upTo; else upTo.
func (h *Hub) firstInWindow(ctx context.Context, cl *cluster, conversationID string, upTo int64) (int64, error) {
	if upTo <= 1 {
		return upTo, nil
	}
	page, err := h.store.Messages(ctx, store.Conversation{ID: conversationID}, max(0, upTo-1-historyMax), historyMax)
	if err != nil {
		return 0, err
	}
	since := time.UnixMilli(cl.since.Load())
	for _, m := range page.Messages {
		if m.Seq >= upTo {
			break
		}
		if !m.CreatedAt.Before(since) {
			return m.Seq, nil
		}
	}
	return upTo, nil
}

// add records a conversation delivered up to last, unless another
// goroutine got there first.
func (cl *cluster) add(id, appID, subjectID string, last int64) *followed {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	f := cl.convs[id]
	if f == nil {
		f = &followed{appID: appID, subjectID: subjectID, last: last}
		cl.convs[id] = f
	}
	f.touched.Store(time.Now().UnixNano())
	return f
}

// committed delivers a message committed on this node and tells the
// other nodes. skip is the socket that sent it, which has its ack.
func (h *Hub) committed(ctx context.Context, p store.Posted, skip *Client) {
	cl := h.cluster.Load()
	if cl == nil {
		h.deliver(ctx, p.Conversation.AppID, p.Conversation.SubjectID, []store.Message{p.Message}, skip)
		return
	}
	f, err := h.follow(ctx, cl, p.Conversation.ID, p.Message.Seq, &p.Conversation)
	if err != nil {
		// Delivered as it is, and not followed: the poll then follows the
		// conversation from its window, earlier messages included (a
		// socket may see this one twice; it drops it by id).
		h.logFollow(p.Conversation.ID, err)
		h.deliver(ctx, p.Conversation.AppID, p.Conversation.SubjectID, []store.Message{p.Message}, skip)
	} else if err := h.catchUp(ctx, cl, f, p.Conversation.ID, p.Message.Seq, &p.Message, skip); err != nil {
		h.log.Warn("reading missed messages", "conversation", p.Conversation.ID, "err", err) // the poll tries again
	}
	h.publish(ctx, cl, broker.Event{Kind: broker.KindMessage, AppID: p.Conversation.AppID, SubjectID: p.Conversation.SubjectID,
		ConversationID: p.Conversation.ID, Seq: p.Message.Seq})
}

// catchUp delivers the conversation up to seq at least: inHand alone when
// it is the next, else what the database has after the last delivered.
// An error leaves the rest for the next try.
func (h *Hub) catchUp(ctx context.Context, cl *cluster, f *followed, conversationID string, seq int64, inHand *store.Message, skip *Client) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq <= f.last {
		return nil // delivered already
	}
	if inHand != nil && seq == f.last+1 {
		h.deliver(ctx, f.appID, f.subjectID, []store.Message{*inHand}, skip)
		f.last = seq
		return nil
	}
	// From the database the committing socket is known by its
	// client_msg_id (Client.isSending), not by skip: skip would also
	// hide the others' messages in the batch from it.
	return h.readAndDeliver(ctx, f, conversationID)
}

// readAndDeliver delivers from the database what f has not delivered;
// f.mu is held.
func (h *Hub) readAndDeliver(ctx context.Context, f *followed, conversationID string) error {
	for {
		page, err := h.store.Messages(ctx, store.Conversation{ID: conversationID}, f.last, historyMax)
		if err != nil {
			return err
		}
		if len(page.Messages) == 0 {
			return nil
		}
		h.deliver(ctx, f.appID, f.subjectID, page.Messages, nil)
		f.last = page.Messages[len(page.Messages)-1].Seq
		if !page.HasMore {
			return nil
		}
	}
}

// deliver sends committed messages to this node's sockets of the
// conversation's subject (but skip) and app, followed by the subject's
// unread count when an agent wrote.
func (h *Hub) deliver(ctx context.Context, appID, subjectID string, msgs []store.Message, skip *Client) {
	agentWrote := false
	for _, m := range msgs {
		msg := NewMessageJSON(m)
		h.sendMessageToSubject(subjectID, encode(messageFrame{Type: "message", Message: msg}), m, skip)
		h.sendToApp(appID, "", encode(agentMessageFrame{Type: "message", ConversationID: m.ConversationID, Message: msg}))
		agentWrote = agentWrote || m.Author == store.AuthorAgent
	}
	if agentWrote {
		h.pushUnread(ctx, subjectID)
	}
}

// sendMessageToSubject queues a message frame on the subject's sockets but
// skip and the one committing m, which get an ack instead.
func (h *Hub) sendMessageToSubject(subjectID string, frame []byte, m store.Message, skip *Client) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.subjects[subjectID] {
		if c != skip && !(m.Author == store.AuthorUser && c.isSending(m.ClientMsgID)) {
			c.enqueue(frame, "")
		}
	}
}

// publish tells the other nodes; a failure loses nothing but time, as
// their polls find the commit.
func (h *Hub) publish(ctx context.Context, cl *cluster, e broker.Event) {
	if cl == nil {
		return
	}
	e.Node = cl.node
	if err := cl.pub.Publish(ctx, e); err != nil {
		h.log.Warn("publishing to the other nodes", "err", err)
	}
}

// poll looks, every clusterPoll or at once on a resync, for the
// conversations of the apps this node serves that moved on since the
// last poll, and delivers what this node has not. Until a poll succeeds
// its start does not move, so an outage of the database is covered too.
func (h *Hub) poll(ctx context.Context, cl *cluster) {
	t := time.NewTicker(cl.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-cl.resync:
		}
		start := time.Now()
		cl.forget(start.Add(-trackedFor))
		if err := h.pollOnce(ctx, cl, time.UnixMilli(cl.since.Load())); err != nil {
			if ctx.Err() == nil {
				h.log.Warn("looking for missed messages", "err", err)
			}
			continue // the window stays where it was, for the next try
		}
		cl.since.Store(start.Add(-pollMargin).UnixMilli())
	}
}

func (h *Hub) pollOnce(ctx context.Context, cl *cluster, since time.Time) error {
	apps := h.servedApps()
	if len(apps) == 0 {
		return nil
	}
	heads, err := cl.store.ActiveConversations(ctx, apps, since)
	if err != nil {
		return err
	}
	var failed error
	for _, head := range heads {
		if !h.interested(head.AppID, head.SubjectID) {
			continue
		}
		f, err := h.follow(ctx, cl, head.ID, head.LastSeq+1, &store.Conversation{ID: head.ID, AppID: head.AppID, SubjectID: head.SubjectID})
		if err == nil {
			err = h.catchUp(ctx, cl, f, head.ID, head.LastSeq, nil, nil)
		}
		if err != nil {
			failed = fmt.Errorf("conversation %s: %w", head.ID, err)
		}
	}
	return failed
}

// servedApps are the apps with a socket on this node.
func (h *Hub) servedApps() []string {
	h.mu.RLock()
	apps := map[string]bool{}
	for appID, set := range h.agents {
		if len(set) > 0 {
			apps[appID] = true
		}
	}
	for _, set := range h.subjects {
		for c := range set {
			apps[c.session.AppID] = true
			break
		}
	}
	h.mu.RUnlock()
	return slices.Sorted(maps.Keys(apps))
}

// forget drops the conversations not handed out since before.
func (cl *cluster) forget(before time.Time) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for id, f := range cl.convs {
		if f.touched.Load() < before.UnixNano() {
			delete(cl.convs, id)
		}
	}
}
