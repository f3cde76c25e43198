package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/hours"
	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

type settingsStore interface {
	SetAppearance(ctx context.Context, appID string, a store.Appearance) error
	SetAvatar(ctx context.Context, appID, typ string, data []byte) error
	RefusedOrigins(ctx context.Context, appID string, since time.Time) ([]store.RefusedOrigin, error)
	AllowOrigin(ctx context.Context, appID, origin string) (*store.App, error)
	UpdateApp(ctx context.Context, appID string, s store.AppSettings) (*store.App, error)
	IdentityStats(ctx context.Context, appID string, since time.Time) (store.IdentityStats, error)
	RotateIdentitySecret(ctx context.Context, appID string, previousValidFor time.Duration) (store.IdentitySecret, error)
	ReplaceIdentitySecret(ctx context.Context, appID string) (store.IdentitySecret, error)
	RevokeIdentitySecret(ctx context.Context, appID, secretID string) error
	RotateAPIKey(ctx context.Context, appID string) (string, error)
	Members(ctx context.Context, appID string) ([]store.Owner, error)
	AddMemberByEmail(ctx context.Context, appID, email string) (store.Owner, error)
	RemoveMember(ctx context.Context, appID, ownerID string) error
	SetAppDisabled(ctx context.Context, appID string, disabled bool) error
	EmailAlerts(ctx context.Context, appID, ownerID string) (bool, error)
	SetEmailAlerts(ctx context.Context, appID, ownerID string, on bool) error
	SetEmailWaits(ctx context.Context, appID string, agent, user time.Duration) error
	CreateInvite(ctx context.Context, appID, email string) (string, string, error)
	SetAvailability(ctx context.Context, appID string, a store.Availability) error
	TakeTokens(ctx context.Context, now time.Time, buckets ...store.Bucket) (bool, time.Duration, error)
	PendingInvites(ctx context.Context, appID string) ([]store.Invite, error)
	CancelInvites(ctx context.Context, appID, email string) error
}

// agentAccess ends a removed member's open inbox sockets.
type agentAccess interface {
	EndAgentAccess(ownerID, appID string)
}

// Settings is an app's settings page: the allowlist, identity mode and
// secret, the API key, the install snippet and the members.
type Settings struct {
	Pages
	Store     settingsStore
	Agents    agentAccess
	PublicURL string // Parley's origin, for the snippet's script URL
	// MailOn says the server sends e-mail; EmailWaits are its default
	// waits before it does.
	MailOn     bool
	EmailWaits store.EmailWaits
	// Mail sends invitations to addresses with no account; nil when the
	// server sends no e-mail.
	Mail *mail.Sender
}

const statsDays = 7

// notices are the fixed messages a redirect back to the page may ask
// for; nothing from the URL is ever shown as such.
var notices = map[string]string{
	"saved":            "Settings saved.",
	"rotated":          "Identity secret rotated. Put the new secret on your servers; the old one works as long as you chose.",
	"revoked":          "Secret revoked. Hashes made with it are refused from now on.",
	"member-added":     "Member added.",
	"invited":          "Invitation sent. The link in it works once, for 7 days.",
	"invite-cancelled": "Invitation cancelled: its link no longer works.",
	"member-removed":   "Member removed.",
	"disabled":         "Widget turned off. Every open chat has ended and no new one starts until you turn it back on.",
	"enabled":          "Widget turned on. Chats can start again.",
	"email-alerts":     "Your e-mail choice is saved.",
	"email-waits":      "The waits before e-mail are saved.",
	"availability":     "Availability saved. Open chats show it within a minute.",
	"appearance":       "Appearance saved. Your site shows it within a minute; chats opened after that show it too.",
	"avatar":           "Team picture saved.",
	"avatar-removed":   "Team picture removed.",
	"origin-allowed":   "Origin allowed: pages there show the chat within a minute.",
}

type settingsExtras struct {
	NewAPIKey, Notice, FormError, MemberError, EmailError string
	// Availability is the availability form as typed, when saving failed.
	Availability *templates.AvailabilitySettings
	// Appearance is the appearance form as typed, when saving failed.
	Appearance *templates.AppearanceSettings
	Form       *store.AppSettings // what the owner typed, when saving failed
}

// Show serves GET /dashboard/apps/:app_id/settings.
func (h *Settings) Show(c echo.Context) error {
	return h.page(c, http.StatusOK, settingsExtras{Notice: notices[c.QueryParam("notice")]})
}

func (h *Settings) page(c echo.Context, status int, x settingsExtras) error {
	ctx := c.Request().Context()
	app := dashAppFrom(c)
	since := time.Now().Add(-statsDays * 24 * time.Hour)
	stats, err := h.Store.IdentityStats(ctx, app.ID, since)
	if err != nil {
		return err
	}
	members, err := h.Store.Members(ctx, app.ID)
	if err != nil {
		return err
	}
	form := store.AppSettings{Name: app.Name, Origins: app.Origins, IdentityMode: app.IdentityMode,
		RequireJWT: app.RequireJWT, RefuseAnonymous: app.RefuseAnonymous}
	if x.Form != nil {
		form = *x.Form
	}
	v := templates.SettingsView{
		Shell: h.shell(c, "Settings", "settings"), AppID: app.ID, Name: form.Name, Origins: strings.Join(form.Origins, "\n"), IdentityMode: form.IdentityMode,
		RequireJWT: form.RequireJWT, RefuseAnonymous: form.RefuseAnonymous, DisabledAt: app.DisabledAt,
		FormError: x.FormError, Notice: x.Notice, NewAPIKey: x.NewAPIKey, MemberError: x.MemberError,
		Stats:       templates.IdentityStats{Days: statsDays, Verified: stats.Verified, Unverified: stats.Unverified, Anonymous: stats.Anonymous},
		Secret:      templates.SecretView{ID: app.IdentitySecretID, CreatedAt: app.IdentitySecretCreatedAt},
		Snippet:     Snippet(h.PublicURL, app.ID),
		Examples:    HashExamples(app),
		JWTSnippet:  JWTSnippet(h.PublicURL, app.ID),
		JWTExamples: JWTExamples(app),
		BaseURL:     appPath(app.ID, "settings"),
	}
	for _, s := range app.PreviousSecrets {
		v.Previous = append(v.Previous, templates.SecretView{ID: s.ID, CreatedAt: s.CreatedAt, RetiredAt: s.RetiredAt, ExpiresAt: s.ExpiresAt})
	}
	me := ownerFrom(c).OwnerID
	alerts, err := h.Store.EmailAlerts(ctx, app.ID, me)
	if err != nil {
		return err
	}
	v.Email = templates.EmailSettings{On: h.MailOn, MyAlerts: alerts, Error: x.EmailError,
		DefaultAgentWait: minutes(h.EmailWaits.Agent), DefaultUserWait: minutes(h.EmailWaits.User)}
	if app.AgentEmailAfter > 0 {
		v.Email.AgentWait = minutes(app.AgentEmailAfter)
	}
	if app.UserEmailAfter > 0 {
		v.Email.UserWait = minutes(app.UserEmailAfter)
	}
	invites, err := h.Store.PendingInvites(ctx, app.ID)
	if err != nil {
		return err
	}
	for _, in := range invites {
		v.Invites = append(v.Invites, templates.InviteRow{Email: in.Email, ExpiresAt: in.ExpiresAt})
	}
	v.Availability = availabilityForm(app.Availability)
	if x.Availability != nil {
		v.Availability = *x.Availability
	}
	v.Appearance = appearanceForm(app, app.Appearance)
	if x.Appearance != nil {
		v.Appearance = *x.Appearance
	}
	refused, err := h.Store.RefusedOrigins(ctx, app.ID, time.Now().Add(-refusedDays*24*time.Hour))
	if err != nil {
		return err
	}
	for _, r := range refused {
		v.Refused = append(v.Refused, templates.RefusedOriginRow{Origin: r.Origin, Count: r.Count, LastAt: r.LastAt})
	}
	for _, m := range members {
		v.Members = append(v.Members, templates.MemberRow{ID: m.ID, Name: m.Name, Email: m.Email, You: m.ID == me})
	}
	return render(c, status, templates.SettingsPage(v))
}

func (h *Settings) back(c echo.Context, notice string) error {
	return c.Redirect(http.StatusSeeOther, appPath(dashAppFrom(c).ID, "settings")+"?notice="+notice)
}

// Save serves POST …/settings: name, allowed origins, identity mode and
// the require_jwt and refuse_anonymous checkboxes. Origins go through the
// same canonicalisation as the CLI; any bad entry refuses the whole form
// and the page says which and why. A checkbox left out is off, as a
// browser leaves an unticked one out: the form always posts every field.
func (h *Settings) Save(c echo.Context) error {
	in := store.AppSettings{Name: postValue(c, "name"), Origins: splitLines(postValue(c, "origins")), IdentityMode: postValue(c, "identity_mode"),
		RequireJWT: postValue(c, "require_jwt") == "on", RefuseAnonymous: postValue(c, "refuse_anonymous") == "on"}
	app, err := h.Store.UpdateApp(c.Request().Context(), dashAppFrom(c).ID, in)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return h.page(c, http.StatusBadRequest, settingsExtras{FormError: ie.Msg, Form: &in})
	}
	if err != nil {
		return err
	}
	c.Set(dashAppKey, app)
	return h.back(c, "saved")
}

// Disable serves POST …/settings/disable: the widget is turned off, which
// ends every open chat at once (their sockets close) and refuses new
// ones. Conversations, the dashboard and the server API stay.
func (h *Settings) Disable(c echo.Context) error { return h.setDisabled(c, true) }

// Enable serves POST …/settings/enable: the widget is turned back on.
func (h *Settings) Enable(c echo.Context) error { return h.setDisabled(c, false) }

func (h *Settings) setDisabled(c echo.Context, disabled bool) error {
	if err := h.Store.SetAppDisabled(c.Request().Context(), dashAppFrom(c).ID, disabled); err != nil {
		return err
	}
	if disabled {
		return h.back(c, "disabled")
	}
	return h.back(c, "enabled")
}

// RevealSecret serves POST …/settings/secret/reveal. The secret is not in
// the page until asked for, so it doesn't end up in screenshots or
// screen shares by accident; it is a POST so no cache or history keeps it.
func (h *Settings) RevealSecret(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]string{"secret": dashAppFrom(c).IdentitySecret})
}

// RotateSecret serves POST …/settings/secret/rotate. previous_valid_for
// is how long hashes made with the old secret keep working: a duration
// ("24h"), "0" for until revoked, or "now".
func (h *Settings) RotateSecret(c echo.Context) error {
	ctx := c.Request().Context()
	app := dashAppFrom(c)
	choice := postValue(c, "previous_valid_for")
	if choice == "now" {
		if _, err := h.Store.ReplaceIdentitySecret(ctx, app.ID); err != nil {
			return err
		}
		return h.back(c, "rotated")
	}
	keep, err := time.ParseDuration(choice)
	if err != nil || keep < 0 || keep > 90*24*time.Hour {
		return echo.NewHTTPError(http.StatusBadRequest, "Choose how long the old secret keeps working: up to 90 days, 0 for until revoked, or now.")
	}
	if _, err := h.Store.RotateIdentitySecret(ctx, app.ID, keep); err != nil {
		return err
	}
	return h.back(c, "rotated")
}

// RevokeSecret serves POST …/settings/secret/revoke (secret_id).
func (h *Settings) RevokeSecret(c echo.Context) error {
	err := h.Store.RevokeIdentitySecret(c.Request().Context(), dashAppFrom(c).ID, postValue(c, "secret_id"))
	if ie := new(store.InputError); errors.As(err, &ie) {
		return echo.NewHTTPError(http.StatusBadRequest, ie.Msg)
	}
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such secret in this app.")
	}
	if err != nil {
		return err
	}
	return h.back(c, "revoked")
}

// RotateAPIKey serves POST …/settings/api-key/rotate. The old key stops
// working at once; the new one is shown on this response only.
func (h *Settings) RotateAPIKey(c echo.Context) error {
	key, err := h.Store.RotateAPIKey(c.Request().Context(), dashAppFrom(c).ID)
	if err != nil {
		return err
	}
	return h.page(c, http.StatusOK, settingsExtras{NewAPIKey: key, Notice: "API key rotated. The old key no longer works."})
}

// AddMember serves POST …/settings/members (email). An existing owner
// becomes a member at once; when the server sends e-mail, an address
// with no account is sent an invitation instead.
func (h *Settings) AddMember(c echo.Context) error {
	_, err := h.Store.AddMemberByEmail(c.Request().Context(), dashAppFrom(c).ID, postValue(c, "email"))
	if errors.Is(err, store.ErrNoSuchOwner) && h.Mail != nil {
		return h.invite(c, postValue(c, "email"))
	}
	if ie := new(store.InputError); errors.As(err, &ie) {
		return h.page(c, http.StatusBadRequest, settingsExtras{MemberError: ie.Msg})
	}
	if err != nil {
		return err
	}
	return h.back(c, "member-added")
}

// RemoveMember serves POST …/settings/members/remove (owner_id). Their
// open inbox sockets for this app close at once.
func (h *Settings) RemoveMember(c echo.Context) error {
	app, ownerID := dashAppFrom(c), postValue(c, "owner_id")
	err := h.Store.RemoveMember(c.Request().Context(), app.ID, ownerID)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return h.page(c, http.StatusBadRequest, settingsExtras{MemberError: ie.Msg})
	}
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "That owner is not a member of this app.")
	}
	if err != nil {
		return err
	}
	h.Agents.EndAgentAccess(ownerID, app.ID)
	if ownerID == ownerFrom(c).OwnerID {
		return c.Redirect(http.StatusSeeOther, "/dashboard")
	}
	return h.back(c, "member-removed")
}

func minutes(d time.Duration) string { return strconv.FormatInt(int64(d/time.Minute), 10) }

// SetEmailAlerts serves POST …/settings/email-alerts (alerts=on or
// off; the form sends off after the checkbox, so the first value is the
// choice): the signed-in member's own choice.
func (h *Settings) SetEmailAlerts(c echo.Context) error {
	choice := postValue(c, "alerts")
	if choice != "on" && choice != "off" {
		return echo.NewHTTPError(http.StatusBadRequest, "alerts must be on or off.")
	}
	if err := h.Store.SetEmailAlerts(c.Request().Context(), dashAppFrom(c).ID, ownerFrom(c).OwnerID, choice == "on"); err != nil {
		return err
	}
	return h.back(c, "email-alerts")
}

// SetEmailWaits serves POST …/settings/email-waits: agent_minutes and
// user_minutes, each empty for the server's default.
func (h *Settings) SetEmailWaits(c echo.Context) error {
	var waits [2]time.Duration
	for i, name := range []string{"agent_minutes", "user_minutes"} {
		v := strings.TrimSpace(postValue(c, name))
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 7*24*60 {
			return h.page(c, http.StatusBadRequest, settingsExtras{EmailError: "A wait is a whole number of minutes, from 1 to 10080 (7 days), or empty for the server's default."})
		}
		waits[i] = time.Duration(n) * time.Minute
	}
	err := h.Store.SetEmailWaits(c.Request().Context(), dashAppFrom(c).ID, waits[0], waits[1])
	if ie := new(store.InputError); errors.As(err, &ie) {
		return h.page(c, http.StatusBadRequest, settingsExtras{EmailError: ie.Msg})
	}
	if err != nil {
		return err
	}
	return h.back(c, "email-waits")
}

// invite mails an invitation to the app to an address with no account.
func (h *Settings) invite(c echo.Context, email string) error {
	ctx, app, me := c.Request().Context(), dashAppFrom(c), ownerFrom(c)
	// Each invitation mails an address the owner typed: a budget per
	// owner keeps Parley from being made to mail anybody at length.
	ok, _, err := h.Store.TakeTokens(ctx, time.Now(), store.Bucket{Key: "invite:" + me.OwnerID, Burst: 20, Every: 30 * time.Minute})
	if err != nil {
		return err
	}
	if !ok {
		return h.page(c, http.StatusTooManyRequests, settingsExtras{MemberError: "You have sent many invitations lately. Try again later."})
	}
	token, addr, err := h.Store.CreateInvite(ctx, app.ID, email)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return h.page(c, http.StatusBadRequest, settingsExtras{MemberError: ie.Msg})
	}
	if err != nil {
		return err
	}
	mctx, cancel := context.WithTimeout(ctx, mailTimeout)
	defer cancel()
	err = h.Mail.Send(mctx, mail.Message{To: addr, Subject: me.Owner.Name + " invited you to answer " + app.Name + "'s chats",
		Text: fmt.Sprintf("%s (%s) invited you to answer the chats of %s on Parley.\n\nMake your account and join, within 7 days:\n%s/invite#%s\n\n"+
			"Or open %s/invite and paste this code:\n%s\n\nIf you did not expect this, ignore it.\n",
			me.Owner.Name, me.Owner.Email, app.Name, h.PublicURL, token, h.PublicURL, token)})
	if err != nil {
		return h.page(c, http.StatusBadGateway, settingsExtras{MemberError: "The invitation could not be sent just now. Try again in a moment."})
	}
	return h.back(c, "invited")
}

// weekOrder lists the days Monday first, as the form shows them.
var weekOrder = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

// availabilityForm is the form of saved settings; days without hours
// offer 09:00–17:00.
func availabilityForm(a store.Availability) templates.AvailabilitySettings {
	f := templates.AvailabilitySettings{TimeZone: a.TimeZone, AlwaysOpen: !a.Hours.Set, Greeting: a.Greeting, AwayMessage: a.AwayMessage, ReplyTime: a.ReplyTime}
	for _, d := range weekOrder {
		sp := a.Hours.Days[d]
		row := templates.DayHours{Key: hours.DayName(d), Label: d.String(), On: sp.On, From: "09:00", To: "17:00"}
		if sp.On {
			row.From, row.To = hours.Clock(sp.From), hours.Clock(sp.To)
		}
		f.Days = append(f.Days, row)
	}
	return f
}

// SaveAvailability serves POST …/settings/availability.
func (h *Settings) SaveAvailability(c echo.Context) error {
	a := store.Availability{TimeZone: strings.TrimSpace(postValue(c, "time_zone")), Greeting: strings.TrimSpace(postValue(c, "greeting")),
		AwayMessage: strings.TrimSpace(postValue(c, "away_message")), ReplyTime: postValue(c, "reply_time")}
	form := availabilityForm(a)
	form.AlwaysOpen = postValue(c, "hours") != "set"
	a.Hours.Set = !form.AlwaysOpen
	var problem string
	for i, d := range weekOrder {
		key := hours.DayName(d)
		row := &form.Days[i]
		row.On, row.From, row.To = postValue(c, "open_"+key) == "on", postValue(c, "from_"+key), postValue(c, "to_"+key)
		if !row.On {
			continue
		}
		sp, err := hours.NewSpan(row.From, row.To)
		if err != nil && problem == "" {
			problem = d.String() + ": " + strings.TrimPrefix(err.Error(), "hours: ")
		}
		a.Hours.Days[d] = sp
	}
	refuse := func(msg string) error {
		form.Error = msg
		return h.page(c, http.StatusBadRequest, settingsExtras{Availability: &form})
	}
	if problem != "" && a.Hours.Set {
		return refuse(problem)
	}
	if !a.Hours.Set {
		a.Hours = hours.Week{}
	}
	err := h.Store.SetAvailability(c.Request().Context(), dashAppFrom(c).ID, a)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return refuse(ie.Msg)
	}
	if err != nil {
		return err
	}
	return h.back(c, "availability")
}

// CancelInvite serves POST …/settings/invites/cancel (email).
func (h *Settings) CancelInvite(c echo.Context) error {
	err := h.Store.CancelInvites(c.Request().Context(), dashAppFrom(c).ID, postValue(c, "email"))
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no pending invitation to that address.")
	}
	if err != nil {
		return err
	}
	return h.back(c, "invite-cancelled")
}
