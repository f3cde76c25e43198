package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
)

type sessionEnder interface {
	EndSession(ctx context.Context, token string) error
}

// WidgetSession serves DELETE /api/widget/session: the chat frame ends its
// own session when the host page shuts the widget down (a logout), so the
// token stops working at once instead of at its expiry.
type WidgetSession struct {
	Store        sessionEnder
	PublicOrigin string
}

func (h *WidgetSession) End(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	// As for creating sessions: a browser can't forge Origin, so another
	// site's script can't use a visitor's browser for this; the token is
	// what actually names the session.
	if c.Request().Header.Get("Origin") != h.PublicOrigin {
		return apiError(http.StatusForbidden, "origin_not_allowed", "sessions can only be ended by Parley's chat frame")
	}
	token, ok := bearer(c.Request().Header.Get("Authorization"))
	if !ok {
		return invalidToken(c, "send the session token as Authorization: Bearer <token>")
	}
	err := h.Store.EndSession(c.Request().Context(), token)
	if errors.Is(err, store.ErrNotFound) {
		return invalidToken(c, "the session token is unknown or has expired")
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// bearer returns the credentials of an Authorization: Bearer header. The
// scheme is case-insensitive (RFC 9110); the token is not.
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

func invalidToken(c echo.Context, msg string) error {
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="parley", error="invalid_token"`)
	return apiError(http.StatusUnauthorized, "invalid_token", msg)
}
