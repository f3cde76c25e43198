package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// Presence: who of an app's team has the inbox open, and whether it is
// within the app's hours, as the widget shows it.
//
// Each node writes a row per (app, owner) with agent sockets here, valid
// for presenceTTL and refreshed every presenceEvery while they stay open,
// and deletes it when the last one closes; a node that dies stops
// counting when its rows expire. Every presenceEvery the node also reads
// the presence of the apps it has widgets for and sends a "presence"
// frame to them when it changed (an agent elsewhere came or went, the
// hours began or ended); an agent coming or going here is told at once.

const (
	presenceEvery = 20 * time.Second
	presenceTTL   = 3 * presenceEvery
)

// presenceStore is the storage presence needs.
type presenceStore interface {
	PresenceAt(ctx context.Context, appID string, now time.Time) (store.Presence, error)
	AgentPresent(ctx context.Context, appID, ownerID, node string, until time.Time) error
	RefreshAgentPresence(ctx context.Context, appID, ownerID, node string, until time.Time) error
	AgentAbsent(ctx context.Context, appID, ownerID, node string) error
}

// PresenceJSON is what the widget shows about the team: in the welcome
// frame and in "presence" frames.
type PresenceJSON struct {
	Greeting     string `json:"greeting,omitempty"`
	AwayMessage  string `json:"away_message,omitempty"`
	ReplyTime    string `json:"reply_time,omitempty"`
	Open         bool   `json:"open"`
	AgentsOnline bool   `json:"agents_online"`
}

func presenceJSON(p store.Presence) PresenceJSON {
	return PresenceJSON{Greeting: p.Greeting, AwayMessage: p.AwayMessage, ReplyTime: p.ReplyTime, Open: p.Open, AgentsOnline: p.AgentsOnline}
}

type presenceFrame struct {
	Type string `json:"type"`
	PresenceJSON
}

// presence is the hub's part of it.
type presence struct {
	node string
	mu   sync.Mutex
	sent map[string]PresenceJSON // by app: what its widgets here were last told
}

func newPresence() *presence {
	b := make([]byte, 8)
	rand.Read(b)
	return &presence{node: "node_" + hex.EncodeToString(b), sent: map[string]PresenceJSON{}}
}

// presenceOf is the app's presence now, for a welcome; the zero value
// (open, nobody online) when the store cannot say.
func (h *Hub) presenceOf(ctx context.Context, appID string) PresenceJSON {
	ps, ok := h.store.(presenceStore)
	if !ok {
		return PresenceJSON{Open: true}
	}
	p, err := ps.PresenceAt(ctx, appID, time.Now())
	if err != nil {
		h.log.Error("presence", "app", appID, "err", err)
		return PresenceJSON{Open: true}
	}
	return presenceJSON(p)
}

// agentCame and agentLeft keep this node's presence rows, and tell the
// app's widgets here at once.
func (h *Hub) agentCame(a Agent) {
	if ps, ok := h.store.(presenceStore); ok {
		if err := ps.AgentPresent(context.Background(), a.AppID, a.OwnerID, h.presence.node, time.Now().Add(presenceTTL)); err != nil {
			h.log.Error("agent presence", "err", err)
		}
		h.tellPresence(context.Background(), a.AppID)
	}
}

func (h *Hub) agentLeft(a Agent) {
	h.mu.RLock()
	still := false
	for ac := range h.agents[a.AppID] {
		still = still || ac.agent.OwnerID == a.OwnerID
	}
	h.mu.RUnlock()
	ps, ok := h.store.(presenceStore)
	if still || !ok {
		return
	}
	if err := ps.AgentAbsent(context.Background(), a.AppID, a.OwnerID, h.presence.node); err != nil {
		h.log.Error("agent presence", "err", err)
	}
	h.tellPresence(context.Background(), a.AppID)
}

// welcomePresence is the app's presence for a welcome. If it is news to
// the app's other widgets here, they are told too.
func (h *Hub) welcomePresence(ctx context.Context, appID string) PresenceJSON {
	p := h.presenceOf(ctx, appID)
	h.presence.mu.Lock()
	last, told := h.presence.sent[appID]
	h.presence.mu.Unlock()
	if !told || last != p {
		h.sendPresence(appID, p)
	}
	return p
}

// tellPresence sends the app's widgets here its presence, if it changed
// since they were last told.
func (h *Hub) tellPresence(ctx context.Context, appID string) {
	h.sendPresence(appID, h.presenceOf(ctx, appID))
}

func (h *Hub) sendPresence(appID string, p PresenceJSON) {
	// Held while queueing, so that two callers' frames go out in the order
	// of what sent records. (h.mu is never held while taking this lock.)
	h.presence.mu.Lock()
	defer h.presence.mu.Unlock()
	last, told := h.presence.sent[appID]
	h.presence.sent[appID] = p
	if told && last == p {
		return
	}
	frame := encode(presenceFrame{Type: "presence", PresenceJSON: p})
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.subjects {
		for c := range set {
			if c.session.AppID == appID {
				c.queueLatest("presence", frame)
			}
		}
	}
}

// WatchPresence refreshes this node's presence rows and tells widgets of
// changes, until ctx ends.
func (h *Hub) WatchPresence(ctx context.Context) {
	ps, ok := h.store.(presenceStore)
	if !ok {
		return
	}
	go func() {
		t := time.NewTicker(presenceEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			until := time.Now().Add(presenceTTL)
			type key struct{ app, owner string }
			agents, apps := map[key]bool{}, map[string]bool{}
			h.mu.RLock()
			for app, set := range h.agents {
				for ac := range set {
					agents[key{app, ac.agent.OwnerID}] = true
				}
			}
			for _, set := range h.subjects {
				for c := range set {
					apps[c.session.AppID] = true
				}
			}
			h.mu.RUnlock()
			for k := range agents {
				// Only rows still there: an agent who left since the
				// snapshot is not brought back.
				if err := ps.RefreshAgentPresence(ctx, k.app, k.owner, h.presence.node, until); err != nil {
					h.log.Error("agent presence", "err", err)
				}
			}
			for app := range apps {
				h.tellPresence(ctx, app)
			}
		}
	}()
}
