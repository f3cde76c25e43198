package handlers

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
	"github.com/parley-chat/parley/templates"
)

// DashWebhooks is an app's webhooks page in the dashboard: its endpoints,
// their secrets (shown once), and each one's recent deliveries, which can
// be sent again. Guard is the operator's allow list, as for the API.
type DashWebhooks struct {
	Pages
	Store    webhookStore
	Guard    webhooks.Guard
	Resolver webhooks.Resolver
}

// webhookNotices are the fixed messages a redirect back may ask for.
var webhookNotices = map[string]string{
	"removed": "Endpoint removed. Nothing more is sent to it.",
	"enabled": "Endpoint turned back on. New events are sent to it again.",
	"resent":  "Delivery queued: it is sent again with its webhook-id.",
}

// Show serves GET /dashboard/apps/:app_id/webhooks.
func (h *DashWebhooks) Show(c echo.Context) error {
	return h.page(c, http.StatusOK, templates.WebhooksView{Notice: webhookNotices[c.QueryParam("notice")]})
}

func (h *DashWebhooks) page(c echo.Context, status int, v templates.WebhooksView) error {
	app := dashAppFrom(c)
	list, err := h.Store.WebhookEndpoints(c.Request().Context(), app.ID)
	if err != nil {
		return err
	}
	v.Shell, v.BaseURL, v.AllEvents = h.shell(c, "Webhooks", "webhooks"), appPath(app.ID, "webhooks"), webhooks.Events
	if v.FormEvents == nil {
		v.FormEvents = webhooks.Events
	}
	for _, e := range list {
		v.Endpoints = append(v.Endpoints, endpointRow(e))
	}
	return render(c, status, templates.WebhooksPage(v))
}

func endpointRow(e store.WebhookEndpoint) templates.EndpointRow {
	return templates.EndpointRow{ID: e.ID, URL: e.URL, Events: strings.Join(e.Events, ", "), Disabled: e.Disabled,
		DisabledReason: e.DisabledReason, FailingSince: e.FailingSince, PreviousExpiresAt: e.PreviousExpiresAt}
}

func (h *DashWebhooks) back(c echo.Context, notice string) error {
	return c.Redirect(http.StatusSeeOther, appPath(dashAppFrom(c).ID, "webhooks")+"?notice="+notice)
}

// Add serves POST …/webhooks (url, and event checkboxes; none ticked is
// refused rather than taken as all). The new secret is shown on this
// answer only.
func (h *DashWebhooks) Add(c echo.Context) error {
	raw, events := strings.TrimSpace(postValue(c, "url")), c.Request().PostForm["event"]
	refuse := func(msg string) error {
		return h.page(c, http.StatusBadRequest, templates.WebhooksView{FormError: msg, FormURL: raw, FormEvents: events})
	}
	if raw == "" {
		return refuse("Give the URL your server receives webhooks at.")
	}
	if len(events) == 0 {
		return refuse("Tick at least one event.")
	}
	u, err := h.Guard.CheckURL(c.Request().Context(), h.Resolver, raw)
	if err != nil {
		return refuse(strings.TrimPrefix(err.Error(), "webhooks: "))
	}
	e, err := h.Store.AddWebhookEndpoint(c.Request().Context(), store.NewWebhookEndpoint{AppID: dashAppFrom(c).ID, URL: u.String(), Events: events})
	if ie := new(store.InputError); errors.As(err, &ie) {
		return refuse(ie.Msg)
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return h.page(c, http.StatusOK, templates.WebhooksView{NewSecret: e.Secret, NewSecretFor: e.URL,
		Notice: "Endpoint added. Every event is signed with its secret: put the secret on your server now, it is not shown again."})
}

// Remove serves POST …/webhooks/:id/remove.
func (h *DashWebhooks) Remove(c echo.Context) error {
	err := h.Store.RemoveWebhookEndpoint(c.Request().Context(), dashAppFrom(c).ID, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such webhook endpoint in this app.")
	}
	if err != nil {
		return err
	}
	return h.back(c, "removed")
}

// RotateSecret serves POST …/webhooks/:id/rotate (overlap: a duration,
// how long the old secret keeps signing beside the new one).
func (h *DashWebhooks) RotateSecret(c echo.Context) error {
	overlap, err := time.ParseDuration(postValue(c, "overlap"))
	if err != nil || overlap < 0 || overlap > 30*24*time.Hour {
		return echo.NewHTTPError(http.StatusBadRequest, "Choose how long the old secret keeps signing: up to 30 days, or 0 to stop it at once.")
	}
	app := dashAppFrom(c)
	secret, _, err := h.Store.RotateWebhookSecret(c.Request().Context(), app.ID, c.Param("id"), overlap)
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such webhook endpoint in this app.")
	}
	if err != nil {
		return err
	}
	list, err := h.Store.WebhookEndpoints(c.Request().Context(), app.ID)
	if err != nil {
		return err
	}
	var url string
	if i := slices.IndexFunc(list, func(e store.WebhookEndpoint) bool { return e.ID == c.Param("id") }); i >= 0 {
		url = list[i].URL
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return h.page(c, http.StatusOK, templates.WebhooksView{NewSecret: secret, NewSecretFor: url,
		Notice: "Secret rotated. Put the new one on your server now, it is not shown again; until then the old one signs too, for as long as you chose."})
}

// Enable serves POST …/webhooks/:id/enable.
func (h *DashWebhooks) Enable(c echo.Context) error {
	err := h.Store.EnableWebhookEndpoint(c.Request().Context(), dashAppFrom(c).ID, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no endpoint of this app that Parley turned off for failing. One a master key reset turned off comes back when you rotate its secret.")
	}
	if err != nil {
		return err
	}
	return h.back(c, "enabled")
}

// deliveriesShown is how many of an endpoint's deliveries its page lists.
const deliveriesShown = 50

// Deliveries serves GET …/webhooks/:id: the endpoint's recent deliveries.
func (h *DashWebhooks) Deliveries(c echo.Context) error {
	ctx, app := c.Request().Context(), dashAppFrom(c)
	list, err := h.Store.WebhookEndpoints(ctx, app.ID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(list, func(e store.WebhookEndpoint) bool { return e.ID == c.Param("id") })
	if i < 0 {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such webhook endpoint in this app.")
	}
	ds, err := h.Store.WebhookDeliveries(ctx, app.ID, list[i].ID, deliveriesShown)
	if err != nil {
		return err
	}
	v := templates.DeliveriesView{Shell: h.shell(c, "Webhook deliveries", "webhooks"), Endpoint: endpointRow(list[i]),
		BaseURL: appPath(app.ID, "webhooks", list[i].ID), BackURL: appPath(app.ID, "webhooks"), Notice: webhookNotices[c.QueryParam("notice")]}
	for _, d := range ds {
		v.Deliveries = append(v.Deliveries, templates.DeliveryRow{ID: strconv.FormatInt(d.ID, 10), WebhookID: d.EventID, Event: d.EventType,
			Status: d.Status, Attempts: d.Attempts, ResponseCode: d.ResponseCode, Excerpt: d.ResponseExcerpt, Error: d.Error,
			CreatedAt: d.CreatedAt, AttemptedAt: d.AttemptedAt,
			Resendable: d.Status == store.DeliveryDelivered || d.Status == store.DeliveryFailed})
	}
	return render(c, http.StatusOK, templates.DeliveriesPage(v))
}

// Resend serves POST …/webhooks/:id/deliveries/:delivery_id/resend.
func (h *DashWebhooks) Resend(c echo.Context) error {
	app := dashAppFrom(c)
	id, err := strconv.ParseInt(c.Param("delivery_id"), 10, 64)
	if err == nil {
		err = h.Store.ResendWebhookDelivery(c.Request().Context(), app.ID, c.Param("id"), id)
	}
	if ie := new(store.InputError); errors.As(err, &ie) {
		return echo.NewHTTPError(http.StatusConflict, ie.Msg)
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, strconv.ErrSyntax) || errors.Is(err, strconv.ErrRange) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such delivery to this endpoint.")
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, appPath(app.ID, "webhooks", c.Param("id"))+"?notice=resent")
}
