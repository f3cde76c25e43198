package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/locales"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

type appFinder interface {
	App(ctx context.Context, id string) (*store.App, error)
}

// Frame serves GET /w/:app_id, the chat page the loader puts in an iframe.
type Frame struct {
	Apps         appFinder
	PublicOrigin string
	// Asset URLs carry a content hash so a new release is picked up at once.
	ScriptURL, StyleURL string
}

func (h *Frame) Show(c echo.Context) error {
	app, err := h.Apps.App(c.Request().Context(), c.Param("app_id"))
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "app_not_found", "no such app")
	}
	if err != nil {
		return err
	}
	origins, _ := json.Marshal(app.Origins)
	look := Look(app)
	lookJSON, _ := json.Marshal(look)
	hdr := c.Response().Header()
	// frame-ancestors makes browsers refuse to show the frame on any site
	// the owner did not list. The rest keeps the page to its own assets.
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "+
		"connect-src 'self' "+wsOrigin(h.PublicOrigin)+"; base-uri 'none'; form-action 'none'; frame-ancestors "+strings.Join(app.Origins, " "))
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Vary", "Accept-Language")
	hdr.Set("Referrer-Policy", "no-referrer")
	c.Response().WriteHeader(http.StatusOK)
	return templates.Frame(templates.FrameView{
		AppID: app.ID, OriginsJSON: string(origins),
		ScriptURL: h.ScriptURL, StyleURL: h.StyleURL,
		Strings:     locales.Match(app.Appearance.Locale, c.Request().Header.Get("Accept-Language")),
		LocalesJSON: localesJSON,
		LookJSON:    string(lookJSON), TeamName: look.TeamName, AvatarURL: look.AvatarURL,
	}).Render(c.Request().Context(), c.Response())
}

// localesJSON maps each language to its catalog's URL, which carries its
// hash and is cached for good.
var localesJSON = func() string {
	m := map[string]string{}
	for _, tag := range locales.Tags() {
		c, _ := locales.Get(tag)
		m[tag] = "/api/widget/locales/" + tag + "?v=" + c.Hash
	}
	b, _ := json.Marshal(m)
	return string(b)
}()

// Locale serves GET /api/widget/locales/:tag, one language's strings.
func Locale(c echo.Context) error {
	cat, ok := locales.Get(c.Param("tag"))
	if !ok {
		return apiError(http.StatusNotFound, "not_found", "no such language")
	}
	if c.QueryParam("v") == cat.Hash {
		c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
	}
	return c.JSONBlob(http.StatusOK, cat.JSON)
}

// wsOrigin is the websocket form of Parley's origin, for connect-src.
func wsOrigin(origin string) string {
	if rest, ok := strings.CutPrefix(origin, "https://"); ok {
		return "wss://" + rest
	}
	return "ws://" + strings.TrimPrefix(origin, "http://")
}
