package handlers

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
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
	EnableWebhookEndpoint(ctx context.Context, appID, id string) error
	WebhookDeliveries(ctx context.Context, appID, endpointID string, limit int) ([]store.WebhookDelivery, error)
	ResendWebhookDelivery(ctx context.Context, appID, endpointID string, id int64) error
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
	DisabledReason          string     `json:"disabled_reason,omitempty"`
	FailingSince            *time.Time `json:"failing_since,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
	Secret                  string     `json:"secret,omitempty"` // only when just made
}

func newWebhookJSON(e store.WebhookEndpoint) webhookJSON {
	j := webhookJSON{ID: e.ID, URL: e.URL, Events: e.Events, Disabled: e.Disabled, DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt}
	if !e.FailingSince.IsZero() {
		t := e.FailingSince
		j.FailingSince = &t
	}
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

// Enable serves POST /api/v1/webhooks/:id/enable: an endpoint Parley
// disabled because it kept failing is turned back on.
func (h *Webhooks) Enable(c echo.Context) error {
	ctx, app := c.Request().Context(), appFrom(c)
	err := h.Store.EnableWebhookEndpoint(ctx, app.ID, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_found", "no endpoint of this app that Parley disabled for failing; one a master key reset turned off comes back when its secret is rotated")
	}
	if err != nil {
		return err
	}
	list, err := h.Store.WebhookEndpoints(ctx, app.ID)
	if err != nil {
		return err
	}
	for _, e := range list {
		if e.ID == c.Param("id") {
			return c.JSON(http.StatusOK, newWebhookJSON(e))
		}
	}
	return errWebhookNotFound
}

type deliveryJSON struct {
	ID              int64      `json:"id"`
	WebhookID       string     `json:"webhook_id"`
	Event           string     `json:"event"`
	Status          string     `json:"status"`
	Attempts        int        `json:"attempts"`
	ResponseCode    int        `json:"response_code,omitempty"`
	ResponseExcerpt string     `json:"response_excerpt,omitempty"`
	Error           string     `json:"error,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	AttemptedAt     *time.Time `json:"attempted_at,omitempty"`
}

func newDeliveryJSON(d store.WebhookDelivery) deliveryJSON {
	j := deliveryJSON{ID: d.ID, WebhookID: d.EventID, Event: d.EventType, Status: d.Status, Attempts: d.Attempts, ResponseCode: d.ResponseCode,
		ResponseExcerpt: d.ResponseExcerpt, Error: d.Error, CreatedAt: d.CreatedAt}
	if !d.AttemptedAt.IsZero() {
		t := d.AttemptedAt
		j.AttemptedAt = &t
	}
	return j
}

// Deliveries serves GET /api/v1/webhooks/:id/deliveries: the endpoint's
// most recent deliveries, newest first (limit, default and at most 100).
func (h *Webhooks) Deliveries(c echo.Context) error {
	limit, err := intParam(c, "limit", 100, 1, 100)
	if err != nil {
		return err
	}
	ctx, app := c.Request().Context(), appFrom(c)
	list, err := h.Store.WebhookDeliveries(ctx, app.ID, c.Param("id"), int(limit))
	if err != nil {
		return err
	}
	if len(list) == 0 {
		endpoints, err := h.Store.WebhookEndpoints(ctx, app.ID)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(endpoints, func(e store.WebhookEndpoint) bool { return e.ID == c.Param("id") }) {
			return errWebhookNotFound
		}
	}
	out := make([]deliveryJSON, 0, len(list))
	for _, d := range list {
		out = append(out, newDeliveryJSON(d))
	}
	return c.JSON(http.StatusOK, map[string]any{"deliveries": out})
}

// Resend serves POST /api/v1/webhooks/:id/deliveries/:delivery_id/resend:
// a delivery that succeeded or failed is sent again, with its webhook-id.
func (h *Webhooks) Resend(c echo.Context) error {
	ctx, app := c.Request().Context(), appFrom(c)
	id, err := strconv.ParseInt(c.Param("delivery_id"), 10, 64)
	notFound := apiError(http.StatusNotFound, "not_found", "no such delivery to this endpoint")
	if err != nil {
		return notFound
	}
	err = h.Store.ResendWebhookDelivery(ctx, app.ID, c.Param("id"), id)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return apiError(http.StatusConflict, "delivery_underway", ie.Msg)
	}
	if errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusAccepted)
}
