package handlers

import (
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/attachments"
	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/locales"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/theme"
	"github.com/parley-chat/parley/templates"
)

// refusedDays is how far back the settings page lists refused origins.
const refusedDays = 7

// maxAvatarBytes bounds the team's picture: it is shown at 36 pixels.
const maxAvatarBytes = 1 << 20

func appearanceForm(app *store.App, a store.Appearance) templates.AppearanceSettings {
	f := templates.AppearanceSettings{Color: a.Color, TextColor: theme.TextOn(a.Color), Position: a.Position,
		LauncherLabel: a.LauncherLabel, TeamName: a.TeamName, AppName: app.Name, Locale: a.Locale, AvatarURL: Look(app).AvatarURL}
	for _, tag := range locales.Tags() {
		c, _ := locales.Get(tag)
		f.Locales = append(f.Locales, templates.LocaleOption{Tag: tag, Name: c.T("_name")})
	}
	return f
}

// SaveAppearance serves POST …/settings/appearance.
func (h *Settings) SaveAppearance(c echo.Context) error {
	app := dashAppFrom(c)
	a := store.Appearance{Color: postValue(c, "color"), Position: postValue(c, "position"), LauncherLabel: postValue(c, "launcher_label"),
		TeamName: postValue(c, "team_name"), Locale: postValue(c, "locale"), AvatarHash: app.Appearance.AvatarHash}
	var err error = &store.InputError{Msg: "choose the language from the list"}
	if _, ok := locales.Get(a.Locale); ok {
		err = h.Store.SetAppearance(c.Request().Context(), app.ID, a)
	}
	if ie := new(store.InputError); errors.As(err, &ie) {
		form := appearanceForm(app, a)
		form.Error = ie.Msg
		return h.page(c, http.StatusBadRequest, settingsExtras{Appearance: &form})
	}
	if err != nil {
		return err
	}
	return h.back(c, "appearance")
}

// UploadAvatar serves POST …/settings/avatar: the team's picture, an
// image decided from its bytes and kept without its metadata.
func (h *Settings) UploadAvatar(c echo.Context) error {
	app := dashAppFrom(c)
	refuse := func(msg string) error {
		form := appearanceForm(app, app.Appearance)
		form.Error = msg
		return h.page(c, http.StatusBadRequest, settingsExtras{Appearance: &form})
	}
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxAvatarBytes+16<<10)
	f, _, err := c.Request().FormFile("file")
	if err != nil {
		return refuse("Choose a picture of 1 MB at most.")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAvatarBytes+1))
	if err != nil || len(data) > maxAvatarBytes || len(data) == 0 {
		return refuse("Choose a picture of 1 MB at most.")
	}
	typ, err := attachments.Sniff(data)
	if err != nil || !attachments.Inline(typ) {
		return refuse("The picture must be a PNG, JPEG or GIF image.")
	}
	if data, err = attachments.Clean(typ, data); err != nil {
		return refuse("The picture could not be read.")
	}
	if err := h.Store.SetAvatar(c.Request().Context(), app.ID, typ, data); err != nil {
		return err
	}
	return h.back(c, "avatar")
}

// RemoveAvatar serves POST …/settings/avatar/remove.
func (h *Settings) RemoveAvatar(c echo.Context) error {
	if err := h.Store.SetAvatar(c.Request().Context(), dashAppFrom(c).ID, "", nil); err != nil {
		return err
	}
	return h.back(c, "avatar-removed")
}

// AllowOrigin serves POST …/settings/origins/allow (origin): one of the
// recently refused origins joins the allowlist.
func (h *Settings) AllowOrigin(c echo.Context) error {
	app := dashAppFrom(c)
	origin, err := identity.CanonicalOrigin(postValue(c, "origin"))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "That is not an origin: "+err.Error())
	}
	updated, err := h.Store.AllowOrigin(c.Request().Context(), app.ID, origin)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return h.page(c, http.StatusBadRequest, settingsExtras{FormError: ie.Msg})
	}
	if err != nil {
		return err
	}
	c.Set(dashAppKey, updated)
	return h.back(c, "origin-allowed")
}
