package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
)

type apiKeyFinder interface {
	AppByAPIKey(ctx context.Context, key string) (*store.App, error)
}

const appKey = "parley.app"

// RequireAPIKey authenticates the server API: Authorization: Bearer
// <api_key>. The key is looked up by its hash, never compared in the clear.
func RequireAPIKey(apps apiKeyFinder) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set("Cache-Control", "no-store")
			// The scheme is case-insensitive (RFC 9110); the key is not.
			scheme, key, ok := strings.Cut(c.Request().Header.Get("Authorization"), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
				return apiError(http.StatusUnauthorized, "unauthorized", "send the app's API key as Authorization: Bearer <api_key>")
			}
			app, err := apps.AppByAPIKey(c.Request().Context(), strings.TrimSpace(key))
			if errors.Is(err, store.ErrNotFound) {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="parley", error="invalid_token"`)
				return apiError(http.StatusUnauthorized, "unauthorized", "API key is not valid")
			}
			if err != nil {
				return err
			}
			c.Set(appKey, app)
			return next(c)
		}
	}
}

func appFrom(c echo.Context) *store.App {
	return c.Get(appKey).(*store.App)
}
