package chat

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gorilla/websocket"
)

// MaxAgentFrameBytes bounds what the server reads from an agent socket.
// The dashboard never sends data frames; control frames are at most 125
// bytes anyway.
const MaxAgentFrameBytes = 1 << 10

// Agent is who an agent socket belongs to: a signed-in owner watching one
// of their apps. The caller has checked the owner's session, membership
// and Origin before upgrading.
type Agent struct {
	OwnerID    string
	AppID      string
	SessionKey string    // the owner session's key, for EndAgentSession
	ExpiresAt  time.Time // the socket is closed with 4001 then; zero closes it at once
	// StillAllowed, when set, is asked every Hub.AgentRecheck whether the
	// owner's session and membership still hold. It catches what no event
	// in this process reports: a password reset from the CLI, say.
	StillAllowed func(context.Context) bool
}

// agentClient is one dashboard connection. It only receives.
type agentClient struct {
	*peer
	agent Agent
}

// ServeAgent runs an agent connection until it ends. The socket receives
// every committed message, user typing and conversation change of a.AppID
// and nothing of any other app. ctx is the upgrade request's context.
func (h *Hub) ServeAgent(ctx context.Context, conn *websocket.Conn, a Agent) {
	<-h.startAgent(ctx, conn, a)
}

// StartAgent is ServeAgent without the wait: the connection is served on
// goroutines of its own, under a context of its own, as with Start.
func (h *Hub) StartAgent(ctx context.Context, conn *websocket.Conn, a Agent) {
	h.startAgent(ctx, conn, a)
}

func (h *Hub) startAgent(ctx context.Context, conn *websocket.Conn, a Agent) <-chan struct{} {
	ended := make(chan struct{})
	if !h.admit(conn) {
		goingAway(conn)
		conn.Close()
		close(ended)
		return ended
	}
	ctx = context.Background()
	conn.SetReadLimit(MaxAgentFrameBytes)
	ac := &agentClient{agent: a}
	ac.peer = newPeer(conn, func() *slog.Logger { return h.log.With("owner", a.OwnerID, "app", a.AppID) }, a.ExpiresAt)
	ac.peer.maxFrames, ac.peer.maxBytes = agentSendQueue, agentMaxQueuedBytes
	if a.StillAllowed != nil {
		ac.recheck, ac.recheckEvery = func() bool { return a.StillAllowed(ctx) }, h.AgentRecheck
	}
	// Queued before registering, so it is the first frame, ahead of any fan-out.
	ac.queue(encode(agentWelcomeFrame{Type: "welcome"}))
	if !h.registerAgent(ac) {
		goingAway(conn)
		h.forget(conn)
		conn.Close()
		h.running.Done()
		close(ended)
		return ended
	}
	h.agentCame(a)
	go func() {
		defer close(ended)
		defer h.running.Done()
		defer conn.Close()
		defer h.agentLeft(a)
		defer h.unregisterAgent(ac)
		ac.run(ac.readPump)
	}()
	return ended
}

// readPump answers pings and keeps the connection alive on pongs; the
// first data frame ends it. NextReader returns at that frame's header, so
// its content is never read.
func (ac *agentClient) readPump() {
	ac.conn.SetReadDeadline(time.Now().Add(pongWait))
	ac.conn.SetPongHandler(func(string) error {
		return ac.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	_, _, err := ac.conn.NextReader()
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		ac.closeWith(websocket.CloseMessageTooBig, "frame too large")
	case err == nil:
		ac.closeWith(closePolicy, "agent socket is receive-only")
	}
}

func (h *Hub) registerAgent(ac *agentClient) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, ac.conn)
	if h.closing {
		return false
	}
	set := h.agents[ac.agent.AppID]
	if set == nil {
		set = map[*agentClient]struct{}{}
		h.agents[ac.agent.AppID] = set
	}
	set[ac] = struct{}{}
	return true
}

func (h *Hub) unregisterAgent(ac *agentClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.agents[ac.agent.AppID]
	delete(set, ac)
	if len(set) == 0 {
		delete(h.agents, ac.agent.AppID)
	}
}

// sendToApp queues frame on every agent socket of the app; a frame with a
// key supersedes a queued one with the same key (peer.queueLatest).
func (h *Hub) sendToApp(appID, key string, frame []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for ac := range h.agents[appID] {
		ac.enqueue(frame, key)
	}
}

// Agents returns how many agent sockets are open for an app.
func (h *Hub) Agents(appID string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.agents[appID])
}

// closeAgents closes, with 4001, the agent sockets that match, and
// returns how many.
func (h *Hub) closeAgents(match func(Agent) bool, text string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, set := range h.agents {
		for ac := range set {
			if match(ac.agent) {
				ac.closeWith(CloseSessionInvalid, text)
				n++
			}
		}
	}
	return n
}

// EndAgentSession closes the agent sockets of an owner session (sign-out).
func (h *Hub) EndAgentSession(sessionKey string) {
	h.closeAgents(func(a Agent) bool { return a.SessionKey == sessionKey }, "signed out")
}

// EndAgentAccess closes an owner's agent sockets on an app they are no
// longer a member of.
func (h *Hub) EndAgentAccess(ownerID, appID string) {
	h.closeAgents(func(a Agent) bool { return a.OwnerID == ownerID && a.AppID == appID }, "access removed")
}
