package chat

import (
	"context"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// DefaultEndPoll is how often WatchSessionEnds looks for new session ends:
// a revoked secret or a disabled app closes its sockets well within a
// second, for one indexed query of an empty result most of the time.
const DefaultEndPoll = 250 * time.Millisecond

// endBatch is how many session ends one query reads.
const endBatch = 500

// EndSessions closes the widget sockets of sessions that ended early: the
// socket of each session named by TokenHash, and every widget socket of
// AppID when TokenHash is empty. Each is sent a session_ended error frame,
// then closed with 1008 and the end's reason. The ends of dashboard
// access (store.SessionEnd.IsOwnerEnd) close inbox sockets instead. It
// returns how many sockets it closed.
func (h *Hub) EndSessions(ends []store.SessionEnd) int {
	if len(ends) == 0 {
		return 0
	}
	n := h.endOwnerAccess(ends)
	byToken, byApp := map[string]string{}, map[string]string{}
	for _, e := range ends {
		if e.IsOwnerEnd() {
			continue
		}
		if e.TokenHash == "" {
			byApp[e.AppID] = e.Reason
		} else {
			byToken[e.TokenHash] = e.Reason
		}
	}
	// One pass over the sockets whatever the number of ends: revoking a
	// busy secret ends thousands of sessions at once.
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.subjects {
		for c := range set {
			reason, ok := byToken[c.session.TokenHash]
			if !ok {
				reason, ok = byApp[c.session.AppID]
			}
			if ok {
				c.endSession(reason)
				n++
			}
		}
	}
	return n
}

// endOwnerAccess closes the inbox sockets of the ends of dashboard
// access among ends, and returns how many.
func (h *Hub) endOwnerAccess(ends []store.SessionEnd) int {
	n := 0
	for _, e := range ends {
		switch e.Reason {
		case store.EndSignedOut:
			n += h.closeAgents(func(a Agent) bool { return a.SessionKey == e.TokenHash }, "signed out")
		case store.EndPasswordChanged:
			n += h.closeAgents(func(a Agent) bool { return a.OwnerID == e.OwnerID }, "password changed")
		case store.EndAccessRemoved:
			n += h.closeAgents(func(a Agent) bool { return a.OwnerID == e.OwnerID && a.AppID == e.AppID }, "access removed")
		}
	}
	return n
}

// endSession tells the widget why, then closes the socket with 1008.
func (c *Client) endSession(reason string) {
	c.queue(encode(sessionEndedFrame(reason)))
	c.closeWith(closePolicy, reason)
}

func sessionEndedFrame(reason string) errorFrame {
	msg := "this chat session has ended"
	switch reason {
	case store.EndSecretRevoked:
		msg = "this chat session has ended: the site revoked the key that verified you"
	case store.EndAppDisabled:
		msg = "this chat has been turned off by the site"
	case store.EndShutdown:
		msg = "this chat session has ended: you were logged out"
	case store.EndSettingsChanged:
		msg = "this chat session has ended: the site changed who may chat"
	}
	return errorFrame{Type: "error", Code: "session_ended", Message: msg}
}

// WatchSessionEnds applies, with EndSessions, every session end recorded
// from now on, by this process or by another on the same database (the
// CLI's `apps disable`, another server), checking every `every` until ctx
// ends. Polling the table is what reaches other processes; nothing else
// is shared between them.
//
// It returns once it has read where "now" is, then watches on its own
// goroutine, so no end recorded after it returns is missed.
func (h *Hub) WatchSessionEnds(ctx context.Context, every time.Duration) error {
	last, err := h.store.LastSessionEnd(ctx)
	if err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				last = h.applySessionEnds(ctx, last)
			}
		}
	}()
	return nil
}

// applySessionEnds applies the ends recorded after id and returns the id
// of the last one applied.
func (h *Hub) applySessionEnds(ctx context.Context, after int64) int64 {
	for {
		ends, err := h.store.SessionEndsAfter(ctx, after, endBatch)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("reading session ends", "err", err)
			}
			return after // tried again at the next tick
		}
		if n := h.EndSessions(ends); n > 0 {
			h.log.Info("closed the sockets of ended sessions", "sockets", n)
		}
		if len(ends) > 0 {
			after = ends[len(ends)-1].ID
		}
		if len(ends) < endBatch {
			return after
		}
	}
}
