package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
)

type webhookStore interface {
	AddWebhookEndpoint(ctx context.Context, in store.NewWebhookEndpoint) (store.WebhookEndpoint, error)
	WebhookEndpoints(ctx context.Context, appID string) ([]store.WebhookEndpoint, error)
	RemoveWebhookEndpoint(ctx context.Context, appID, id string) error
	RotateWebhookSecret(ctx context.Context, appID, id string, overlap time.Duration) (string, bool, error)
}

// Webhooks is the server API's management of the app's webhook
// endpoints (/api/v1/webhooks). Guard is the operator's allow list.
type Webhooks struct {
	Store    webhookStore
	Guard    webhooks.Guard
	Resolver webhooks.Resolver
}

type webhookJSON struct {
	ID                      string     `json:"id"`
	URL                     string     `json:"url"`
	Events                  []string   `json:"events"`
	Disabled                bool       `json:"disabled"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
	Secret                  string     `json:"secret,omitempty"` // only when just made
}

func newWebhookJSON(e store.WebhookEndpoint) webhookJSON {
	j := webhookJSON{ID: e.ID, URL: e.URL, Events: e.Events, Disabled: e.Disabled, CreatedAt: e.CreatedAt}
	if !e.PreviousExpiresAt.IsZero() {
		t := e.PreviousExpiresAt
		j.PreviousSecretExpiresAt = &t
	}
	return j
}

var errWebhookNotFound = apiError(http.StatusNotFound, "not_found", "no such webhook endpoint")

// List serves GET /api/v1/webhooks.
func (h *Webhooks) List(c echo.Context) error {
	list, err := h.Store.WebhookEndpoints(c.Request().Context(), appFrom(c).ID)
	if err != nil {
		return err
	}
	out := make([]webhookJSON, 0, len(list))
	for _, e := range list {
		out = append(out, newWebhookJSON(e))
	}
	return c.JSON(http.StatusOK, map[string]any{"webhooks": out})
}

type addWebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// Add serves POST /api/v1/webhooks: the answer is the only time the
// endpoint's secret is shown.
func (h *Webhooks) Add(c echo.Context) error {
	var req addWebhookRequest
	if err := decodeJSON(c, 16<<10, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.URL) == "" {
		return apiError(http.StatusBadRequest, "invalid_request", "url is required")
	}
	u, err := h.Guard.CheckURL(c.Request().Context(), h.Resolver, req.URL)
	if err != nil {
		return apiError(http.StatusBadRequest, "invalid_url", strings.TrimPrefix(err.Error(), "webhooks: "))
	}
	if _, err := webhooks.ParseEvents(req.Events); err != nil {
		return apiError(http.StatusBadRequest, "invalid_request", strings.TrimPrefix(err.Error(), "webhooks: "))
	}
	e, err := h.Store.AddWebhookEndpoint(c.Request().Context(), store.NewWebhookEndpoint{AppID: appFrom(c).ID, URL: u.String(), Events: req.Events})
	if ie := new(store.InputError); errors.As(err, &ie) {
		return apiError(http.StatusBadRequest, "invalid_request", ie.Msg)
	}
	if err != nil {
		return err
	}
	j := newWebhookJSON(e)
	j.Secret = e.Secret
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, j)
}

// Remove serves DELETE /api/v1/webhooks/:id.
func (h *Webhooks) Remove(c echo.Context) error {
	err := h.Store.RemoveWebhookEndpoint(c.Request().Context(), appFrom(c).ID, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return errWebhookNotFound
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type rotateWebhookRequest struct {
	// OverlapSeconds is how long the old secret keeps signing; absent is
	// a day.
	OverlapSeconds *int64 `json:"overlap_seconds"`
}

// RotateSecret serves POST /api/v1/webhooks/:id/rotate-secret.
func (h *Webhooks) RotateSecret(c echo.Context) error {
	var req rotateWebhookRequest
	if err := decodeJSON(c, 1<<10, &req); err != nil {
		return err
	}
	overlap := 24 * time.Hour
	if req.OverlapSeconds != nil {
		if *req.OverlapSeconds < 0 || *req.OverlapSeconds > 30*24*3600 {
			return apiError(http.StatusBadRequest, "invalid_request", "overlap_seconds must be between 0 and 2592000 (30 days)")
		}
		overlap = time.Duration(*req.OverlapSeconds) * time.Second
	}
	secret, _, err := h.Store.RotateWebhookSecret(c.Request().Context(), appFrom(c).ID, c.Param("id"), overlap)
	if errors.Is(err, store.ErrNotFound) {
		return errWebhookNotFound
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]string{"id": c.Param("id"), "secret": secret})
}
