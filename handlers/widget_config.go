package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/locales"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/theme"
)

type widgetConfigStore interface {
	App(ctx context.Context, id string) (*store.App, error)
	Avatar(ctx context.Context, appID string) (typ, hash string, data []byte, err error)
	NoteRefusedOrigin(ctx context.Context, appID, origin string) error
}

// WidgetConfig serves what the loader needs before it shows a launcher
// (GET /api/widget/config.js): how it looks, or why it must not appear on
// this page. It is a script, not JSON to fetch, so that a host page whose
// CSP allows Parley's scripts needs nothing more (no connect-src). Its
// data is public, like the app id.
type WidgetConfig struct {
	Store widgetConfigStore
	Log   *slog.Logger
	notes refusalNotes
}

// WidgetLook is an app's appearance as the loader and the frame use it.
type WidgetLook struct {
	Color         string `json:"color"`
	TextColor     string `json:"text_color"`
	Position      string `json:"position"`
	LauncherLabel string `json:"launcher_label"`
	TeamName      string `json:"team_name"`
	AvatarURL     string `json:"avatar_url"`
	Locale        string `json:"locale"`
}

// Look is the app's appearance, with the text colour picked for its
// colour and the team named by the app when the owner gave no name.
func Look(app *store.App) WidgetLook {
	a := app.Appearance
	l := WidgetLook{Color: a.Color, TextColor: theme.TextOn(a.Color), Position: a.Position, LauncherLabel: a.LauncherLabel,
		TeamName: a.TeamName, Locale: a.Locale}
	if l.TeamName == "" {
		l.TeamName = app.Name
	}
	if a.AvatarHash != "" {
		l.AvatarURL = "/api/widget/avatar/" + app.ID + "?v=" + a.AvatarHash
	}
	return l
}

// Show answers with a call of Parley.c(config): the look and the
// launcher's words when origin (the page's, as the loader read it) is on
// the app's allowlist, else {"error":{…}} naming the origin, so that the
// loader can tell the site owner in the console which origin to add.
// Refusals are kept for the dashboard. The origin is the page's own word:
// the browser's frame-ancestors check, not this, keeps the chat off other
// sites; this only spares their visitors a launcher that cannot work.
func (h *WidgetConfig) Show(c echo.Context) error {
	hdr := c.Response().Header()
	hdr.Set("Content-Type", "text/javascript; charset=utf-8")
	hdr.Set("Vary", "Accept-Language")
	// Always 200: browsers do not run a script answered with an error
	// status, and the loader must read the refusal to report it.
	var out any
	refused := true
	app, err := h.Store.App(c.Request().Context(), c.QueryParam("app_id"))
	origin := c.QueryParam("origin")
	canonical, originErr := identity.CanonicalOrigin(origin)
	switch {
	case errors.Is(err, store.ErrNotFound):
		out = apiError(http.StatusNotFound, "app_not_found", "no app has the app_id "+strconv.Quote(c.QueryParam("app_id"))+": copy the snippet again from the dashboard")
	case err != nil:
		return err
	case originErr != nil || !app.AllowsOrigin(canonical):
		if originErr == nil {
			h.note(c.Request().Context(), app.ID, canonical)
		}
		out = apiError(http.StatusForbidden, "origin_not_allowed",
			"this page's origin "+strconv.Quote(origin)+" is not one of the app's allowed origins: add it in the dashboard (Settings → Allowed origins)")
	default:
		// The launcher's words, in the page's language (&locale=, from
		// the settings), else the browser's, else the app's.
		refused = false
		cat := locales.Match(app.Appearance.Locale, c.QueryParam("locale"), c.Request().Header.Get("Accept-Language"))
		look := Look(app)
		out = widgetConfigJSON{WidgetLook: look, Strings: map[string]string{
			"open": cat.T("open_chat"), "close": cat.T("close_chat"), "unread": cat.T("unread")},
			LauncherCSS: launcherCSS(look), BadgeCSS: "position:absolute;top:-4px;right:-4px;min-width:20px;border-radius:10px;" +
				"background:#c81e1e;color:#fff;font:700 12px/20px system-ui,sans-serif;display:none;padding:0 4px"}
	}
	if !refused {
		// A minute: a change of colour shows soon, and a site's every
		// page view does not ask again.
		hdr.Set("Cache-Control", "public, max-age=60")
	} else {
		hdr.Set("Cache-Control", "no-store")
		out = map[string]any{"error": out}
	}
	// json.Marshal escapes <, > and &, and U+2028/2029, so nothing in the
	// data can end the call or the script.
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", append(append([]byte("Parley.c("), b...), ");"...))
}

type widgetConfigJSON struct {
	WidgetLook
	Strings map[string]string `json:"strings"`
	// The launcher's and its badge's styles, set through the CSSOM (which
	// a host's style-src does not govern): written here, from the look,
	// to keep the loader small.
	LauncherCSS string `json:"launcher_css"`
	BadgeCSS    string `json:"badge_css"`
}

// launcherCSS places the launcher in its corner, in the app's colours.
// Colours come from the store's checked #rrggbb, and the position is
// left or right: nothing an owner typed reaches the CSS unchecked.
func launcherCSS(l WidgetLook) string {
	side := "right"
	if l.Position == "left" {
		side = "left"
	}
	return "position:fixed;" + side + ":20px;bottom:20px;min-width:56px;height:56px;border-radius:28px;border:0;" +
		"background:" + l.Color + ";color:" + l.TextColor + ";font:600 15px system-ui,sans-serif;cursor:pointer;z-index:2147483000;" +
		"box-shadow:0 4px 12px rgba(0,0,0,.25);padding:0 16px;align-items:center;justify-content:center;gap:8px"
}

// note records a refused origin, once a minute per origin and app at
// most: a misconfigured site refuses every page view, and anyone can send
// any Origin.
func (h *WidgetConfig) note(ctx context.Context, appID, origin string) {
	if !h.notes.due(appID + " " + origin) {
		return
	}
	if err := h.Store.NoteRefusedOrigin(context.WithoutCancel(ctx), appID, origin); err != nil {
		h.Log.Warn("widget config: refused origin not noted", "app_id", appID, "err", err)
	}
}

type refusalNotes struct {
	mu    sync.Mutex
	last  map[string]time.Time
	limit *rate.Limiter // all apps: ten notes a second, so forged origins cost little
}

func (n *refusalNotes) due(key string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	if n.last == nil || len(n.last) > 10000 {
		n.last = map[string]time.Time{}
		n.limit = rate.NewLimiter(10, 20)
	}
	if now.Sub(n.last[key]) < time.Minute || !n.limit.AllowN(now, 1) {
		return false
	}
	n.last[key] = now
	return true
}

// Avatar serves GET /api/widget/avatar/:app_id?v=hash, the team's
// picture: public, and cached for good, since its URL changes with it.
func (h *WidgetConfig) Avatar(c echo.Context) error {
	typ, hash, data, err := h.Store.Avatar(c.Request().Context(), c.Param("app_id"))
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_found", "this app has no picture")
	}
	if err != nil {
		return err
	}
	hdr := c.Response().Header()
	if c.QueryParam("v") == hash {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "public, max-age=60")
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin") // the frame and the dashboard show it
	return c.Blob(http.StatusOK, typ, data)
}
