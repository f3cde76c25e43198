package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

// Pages is what every dashboard page needs to render: its script and
// stylesheet, which are content-hashed by the web package.
type Pages struct {
	ScriptURL, StyleURL string
}

func (p Pages) shell(c echo.Context, title, section string) templates.Shell {
	s := templates.Shell{Title: title, ScriptURL: p.ScriptURL, StyleURL: p.StyleURL, Section: section}
	if o := ownerFrom(c); o != nil {
		s.OwnerName, s.OwnerEmail = o.Owner.Name, o.Owner.Email
	}
	if a := dashAppFrom(c); a != nil {
		s.App = &templates.AppNav{ID: a.ID, Name: a.Name}
	}
	return s
}

func render(c echo.Context, status int, comp templ.Component) error {
	c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
	c.Response().WriteHeader(status)
	return comp.Render(c.Request().Context(), c.Response())
}

// DashboardHeaders are sent on every dashboard page: they may not be
// framed, load only Parley's own script and style, and are never cached.
func DashboardHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		setDashboardHeaders(c.Response().Header())
		return next(c)
	}
}

func setDashboardHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
}

// isDashboardPath reports whether errors on this path are rendered as an
// HTML page rather than JSON or text.
func isDashboardPath(p string) bool {
	for _, prefix := range []string{"/dashboard", "/login", "/logout", "/signup"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// wantsJSON reports whether the dashboard's script made the request (it
// asks for JSON) rather than a plain form post.
func wantsJSON(c echo.Context) bool {
	return strings.Contains(c.Request().Header.Get("Accept"), "application/json")
}

type dashAppStore interface {
	OwnerApp(ctx context.Context, ownerID, appID string) (*store.App, error)
}

const dashAppKey = "parley.dashboard.app"

// RequireMember loads the app named in the URL if the signed-in owner is
// one of its members. Any other app answers 404, exactly like an app that
// does not exist, so app ids cannot be probed.
func RequireMember(apps dashAppStore) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			app, err := apps.OwnerApp(c.Request().Context(), ownerFrom(c).OwnerID, c.Param("app_id"))
			if errors.Is(err, store.ErrNotFound) {
				return echo.NewHTTPError(http.StatusNotFound, "There is no such app, or you are not one of its members.")
			}
			if err != nil {
				return err
			}
			c.Set(dashAppKey, app)
			return next(c)
		}
	}
}

func dashAppFrom(c echo.Context) *store.App {
	a, _ := c.Get(dashAppKey).(*store.App)
	return a
}

func appPath(appID string, parts ...string) string {
	p := "/dashboard/apps/" + url.PathEscape(appID)
	for _, part := range parts {
		p += "/" + url.PathEscape(part)
	}
	return p
}

// postValue reads a field of a POSTed form, never the URL's query: a
// password or setting must not be accepted from a link.
func postValue(c echo.Context, name string) string {
	return c.Request().PostFormValue(name)
}
