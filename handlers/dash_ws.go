package handlers

import (
	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/chat"
)

// AgentSocket serves GET /dashboard/apps/:app_id/ws, the inbox's live
// feed. It is authenticated by the owner's cookie, which the browser
// attaches for any site that opens it, so its Origin must be Parley's own,
// exactly: that is what stops cross-site websocket hijacking.
type AgentSocket struct {
	Hub      *chat.Hub
	upgrader websocket.Upgrader
}

// NewAgentSocket returns the handler; publicOrigin is the only Origin a
// browser may open the socket from.
func NewAgentSocket(hub *chat.Hub, publicOrigin string) *AgentSocket {
	return &AgentSocket{Hub: hub, upgrader: upgrader(publicOrigin, "the inbox socket can only be opened by Parley's dashboard")}
}

func (h *AgentSocket) Serve(c echo.Context) error {
	owner, app := ownerFrom(c), dashAppFrom(c)
	conn, err := h.upgrader.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // the upgrader has already answered
	}
	h.Hub.ServeAgent(c.Request().Context(), conn, chat.Agent{OwnerID: owner.OwnerID, AppID: app.ID,
		SessionKey: owner.TokenHash, ExpiresAt: owner.ExpiresAt})
	return nil
}
