package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

type appListStore interface {
	OwnerApps(ctx context.Context, ownerID string) ([]store.AppSummary, error)
	CreateApp(ctx context.Context, in store.NewApp) (store.CreatedApp, error)
}

// Apps serves the owner's app list and creates apps.
type Apps struct {
	Pages
	Store    appListStore
	Settings *Settings // a new app's settings page shows its API key once
}

// List serves GET /dashboard.
func (h *Apps) List(c echo.Context) error {
	return h.page(c, http.StatusOK, templates.NewAppForm{IdentityMode: store.ModeEnforced}) // as `parley apps create`
}

func (h *Apps) page(c echo.Context, status int, form templates.NewAppForm) error {
	apps, err := h.Store.OwnerApps(c.Request().Context(), ownerFrom(c).OwnerID)
	if err != nil {
		return err
	}
	v := templates.AppsView{Shell: h.shell(c, "Your apps", ""), Form: form}
	for _, a := range apps {
		v.Apps = append(v.Apps, templates.AppRow{ID: a.App.ID, Name: a.App.Name, Origins: a.App.Origins,
			IdentityMode: a.App.IdentityMode, Open: a.OpenConversations, Unread: a.Unread})
	}
	return render(c, status, templates.AppsPage(v))
}

// Create serves POST /dashboard/apps. The owner who creates an app is its
// first member; the new API key is shown once, on the page that follows.
func (h *Apps) Create(c echo.Context) error {
	form := templates.NewAppForm{Name: postValue(c, "name"), Origins: postValue(c, "origins"), IdentityMode: postValue(c, "identity_mode")}
	// A reload of the page that showed a new app's key posts the form
	// again; refusing a second app of the same name keeps that harmless.
	apps, err := h.Store.OwnerApps(c.Request().Context(), ownerFrom(c).OwnerID)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if strings.EqualFold(a.App.Name, strings.TrimSpace(form.Name)) {
			form.Error = fmt.Sprintf("You already have an app named %q. Pick another name, or open that app from the list above.", a.App.Name)
			return h.page(c, http.StatusConflict, form)
		}
	}
	created, err := h.Store.CreateApp(c.Request().Context(), store.NewApp{Name: form.Name, Origins: splitLines(form.Origins),
		IdentityMode: form.IdentityMode, OwnerID: ownerFrom(c).OwnerID})
	if ie := new(store.InputError); errors.As(err, &ie) {
		form.Error = ie.Msg
		return h.page(c, http.StatusBadRequest, form)
	}
	if err != nil {
		return err
	}
	c.Set(dashAppKey, &created.App)
	return h.Settings.page(c, http.StatusCreated, settingsExtras{NewAPIKey: created.APIKey,
		Notice: "App created. Add the snippet below to your site."})
}

// splitLines splits a textarea into its non-blank lines.
func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
