package handlers

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

type unsubscribeStore interface {
	Unsubscribe(ctx context.Context, token string) (string, error)
}

// Unsubscribe is the link at the bottom of the e-mails to users
// (/email/unsubscribe?token=…): it works without signing in, since the
// token is sealed under the master key and names one user of one app.
type Unsubscribe struct {
	Pages
	Store unsubscribeStore
}

// Show serves GET /email/unsubscribe: the button that confirms.
func (h *Unsubscribe) Show(c echo.Context) error {
	return render(c, http.StatusOK, templates.UnsubscribePage(templates.UnsubscribeView{
		StyleURL: h.StyleURL, ScriptURL: h.ScriptURL, Token: c.QueryParam("token")}))
}

// Do serves POST /email/unsubscribe: the form's button, and mail
// programs' one-click unsubscribe (RFC 8058), which posts to the link
// itself. Either way the token comes in the form or the query.
func (h *Unsubscribe) Do(c echo.Context) error {
	token := c.Request().PostFormValue("token")
	if token == "" {
		token = c.QueryParam("token")
	}
	v := templates.UnsubscribeView{StyleURL: h.StyleURL, ScriptURL: h.ScriptURL}
	app, err := h.Store.Unsubscribe(c.Request().Context(), token)
	if errors.Is(err, store.ErrNotFound) {
		v.Invalid = true
		return render(c, http.StatusNotFound, templates.UnsubscribePage(v))
	}
	if err != nil {
		return err
	}
	v.Done = app
	return render(c, http.StatusOK, templates.UnsubscribePage(v))
}
