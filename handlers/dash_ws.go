package handlers

import (
	"context"
	"errors"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

// AgentSocket serves GET /dashboard/apps/:app_id/ws, the inbox's live
// feed. It is authenticated by the owner's cookie, which the browser
// attaches for any site that opens it, so its Origin must be Parley's own,
// exactly: that is what stops cross-site websocket hijacking.
type AgentSocket struct {
	Hub      *chat.Hub
	Access   agentAccessStore
	Idle     time.Duration // the owners' idle timeout, as OwnerAuth has it
	upgrader websocket.Upgrader
}

type agentAccessStore interface {
	OwnerSessionByToken(ctx context.Context, token string, idle time.Duration) (*store.OwnerSession, error)
	OwnerApp(ctx context.Context, ownerID, appID string) (*store.App, error)
}

// NewAgentSocket returns the handler; publicOrigin is the only Origin a
// browser may open the socket from.
func NewAgentSocket(hub *chat.Hub, publicOrigin string, access agentAccessStore, idle time.Duration) *AgentSocket {
	return &AgentSocket{Hub: hub, Access: access, Idle: idle, upgrader: upgrader(publicOrigin, "the inbox socket can only be opened by Parley's dashboard")}
}

func (h *AgentSocket) Serve(c echo.Context) error {
	owner, app := ownerFrom(c), dashAppFrom(c)
	conn, err := h.upgrader.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // the upgrader has already answered
	}
	h.Hub.StartAgent(c.Request().Context(), conn, chat.Agent{OwnerID: owner.OwnerID, AppID: app.ID,
		SessionKey: owner.TokenHash, ExpiresAt: owner.ExpiresAt, StillAllowed: h.stillAllowed(owner.Token, owner.OwnerID, app.ID)})
	return nil
}

// stillAllowed checks what sign-out and member removal in this process
// report at once, and what they can't: a password reset from the CLI ends
// the session in the database only. Looking the session up counts as
// activity, so an open inbox keeps its sign-in alive up to its max age.
func (h *AgentSocket) stillAllowed(token, ownerID, appID string) func(context.Context) bool {
	return func(ctx context.Context) bool {
		if _, err := h.Access.OwnerSessionByToken(ctx, token, h.Idle); errors.Is(err, store.ErrNotFound) {
			return false
		}
		_, err := h.Access.OwnerApp(ctx, ownerID, appID)
		return !errors.Is(err, store.ErrNotFound) // a database hiccup doesn't end anyone's inbox
	}
}
