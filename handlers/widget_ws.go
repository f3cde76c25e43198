package handlers

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/chat"
)

// WidgetSocket serves GET /api/widget/ws. The socket is authenticated by
// the session token in its first frame, not by a cookie or the URL, and
// only Parley's own frame (by Origin) may open it.
type WidgetSocket struct {
	Hub      *chat.Hub
	upgrader websocket.Upgrader
}

// NewWidgetSocket returns the handler; publicOrigin is the only Origin
// a browser may open the socket from.
func NewWidgetSocket(hub *chat.Hub, publicOrigin string) *WidgetSocket {
	return &WidgetSocket{Hub: hub, upgrader: upgrader(publicOrigin, "the widget socket can only be opened by Parley's chat frame")}
}

// upgrader accepts websockets from publicOrigin only, exactly, and answers
// anything else with a JSON error saying why.
func upgrader(publicOrigin, refused string) websocket.Upgrader {
	// Every open socket keeps its read buffer; writes borrow a buffer from
	// the pool for the length of one message, so an idle socket holds none.
	// 512 bytes holds a typical widget frame whole; a larger one is read
	// in a few more calls.
	return websocket.Upgrader{
		ReadBufferSize:  512,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin: func(r *http.Request) bool {
			return r.Header.Get("Origin") == publicOrigin
		},
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			code, msg := "bad_request", "expected a websocket upgrade"
			if status == http.StatusForbidden {
				code, msg = "origin_not_allowed", refused
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]*APIError{"error": {Code: code, Message: msg}})
		},
	}
}

func (h *WidgetSocket) Serve(c echo.Context) error {
	conn, err := h.upgrader.Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // the upgrader has already answered
	}
	h.Hub.Start(c.Request().Context(), conn) // serves on goroutines of its own: this handler and its buffers are done
	return nil
}
