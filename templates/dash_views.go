package templates

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The dashboard's view models are shaped like its screens: handlers fill
// them from the store, the components only lay them out.

// Shell is what every signed-in dashboard page shows around its content.
type Shell struct {
	Title      string
	OwnerName  string
	OwnerEmail string
	ScriptURL  string
	StyleURL   string
	// App is set on an app's pages, which get the app's navigation.
	App     *AppNav
	Section string // "inbox" or "settings" on an app's pages
}

// AppNav names the app whose pages are shown.
type AppNav struct {
	ID   string
	Name string
}

// AuthView is the sign-in or sign-up page.
type AuthView struct {
	ScriptURL, StyleURL string
	Email, Name         string
	Next                string // where to go after signing in (a dashboard path)
	Error               string
	SignupEnabled       bool
}

// AppsView is the list of the owner's apps and the form for a new one.
type AppsView struct {
	Shell
	Apps []AppRow
	Form NewAppForm
}

// AppRow is one app on the apps page.
type AppRow struct {
	ID, Name     string
	Origins      []string
	IdentityMode string
	Open, Unread int64
}

// NewAppForm keeps what the owner typed when creating an app fails.
type NewAppForm struct {
	Name, Origins, IdentityMode string
	Error                       string
}

// InboxView is the conversation list, with one conversation open or none.
type InboxView struct {
	Shell
	Filter  string // open, closed or all
	Query   string // the search, "" for none
	List    ListView
	Thread  *ThreadView
	ListURL string // the list fragment, for live refreshes
	WSURL   string
	// Online are the names of the app's agents with the inbox open.
	Online []string
	// WebhooksOff counts the app's webhook endpoints Parley turned off for
	// failing; WebhooksURL is the page that shows them.
	WebhooksOff int
	WebhooksURL string
}

// ListView is one page of the inbox's list.
type ListView struct {
	Rows      []ConversationRow
	OlderURL  string // the next page, when there is one
	NewestURL string // back to the first page, when this is not it
	Searched  bool   // the rows are a search's
}

// Person is a widget user as the inbox shows them.
type Person struct {
	Name, Email, UserID string
	Kind                string // verified, unverified or anonymous
	LastSeen            time.Time
	PageURL             string
	// EmailSigned and NameSigned: the email and name came in an identity
	// JWT rather than from the page.
	EmailSigned, NameSigned bool
}

// LabelSigned is "name" or "email" when Label is a signed name or email,
// and "" when it is not signed.
func (p Person) LabelSigned() string {
	switch {
	case p.Name != "" && p.NameSigned:
		return "name"
	case p.Name == "" && p.Email != "" && p.EmailSigned:
		return "email"
	}
	return ""
}

// Label is the best short name for the person.
func (p Person) Label() string {
	switch {
	case p.Name != "":
		return p.Name
	case p.Email != "":
		return p.Email
	case p.UserID != "":
		return p.UserID
	}
	return "Anonymous visitor"
}

// ConversationRow is one line of the inbox.
type ConversationRow struct {
	ID, URL string
	Person  Person
	Status  string
	Preview string
	// PreviewBy names the last message's agent: "You" for the owner
	// looking, else their name ("" for the user's own message).
	PreviewBy    string
	LastActivity time.Time
	Unread       bool
	Active       bool
}

// ThreadView is one open conversation.
type ThreadView struct {
	ID       string
	Person   Person
	Status   string
	Messages []MessageView
	LastSeq  int64
	HasOlder bool
	BaseURL  string // …/conversations/{id}; the actions are below it
	InboxURL string // the list, with the filter the owner came from
}

// MessageView is one message of a thread.
type MessageView struct {
	Seq         int64
	FromAgent   bool
	AuthorName  string
	Body        string
	At          time.Time
	Attachments []AttachmentView
}

// AttachmentView is a file a message carries: images are shown, other
// files offered by name.
type AttachmentView struct {
	URL, Name, Type string
	Size            int64
	Image           bool
}

// EmailSettings is the e-mail section of an app's settings page. The
// waits are in minutes; empty is the server's default.
type EmailSettings struct {
	On                                bool // the server sends e-mail
	MyAlerts                          bool // the signed-in member's choice
	AgentWait, UserWait               string
	DefaultAgentWait, DefaultUserWait string
	Error                             string
}

// AvailabilitySettings is the availability section of an app's settings
// page: the time zone, each day's hours (Monday first), and what the
// widget says.
type AvailabilitySettings struct {
	TimeZone                         string
	AlwaysOpen                       bool
	Days                             []DayHours
	Greeting, AwayMessage, ReplyTime string
	Error                            string
}

// AppearanceSettings is the appearance form, and what its live preview
// starts from.
type AppearanceSettings struct {
	Color, TextColor, Position       string
	LauncherLabel, TeamName, AppName string
	Locale                           string
	Locales                          []LocaleOption
	AvatarURL                        string
	Error                            string
}

// LocaleOption is a language the widget speaks.
type LocaleOption struct{ Tag, Name string }

// RefusedOriginRow is an origin whose pages were refused the widget.
type RefusedOriginRow struct {
	Origin string
	Count  int64
	LastAt time.Time
}

// DayHours is one day's row in the hours form.
type DayHours struct {
	Key, Label string // mon, Monday
	On         bool
	From, To   string // HH:MM
}

// InviteRow is an invitation to the app not yet accepted.
type InviteRow struct {
	Email     string
	ExpiresAt time.Time
}

// SettingsView is an app's settings page.
type SettingsView struct {
	Shell
	Invites                     []InviteRow
	Email                       EmailSettings
	Availability                AvailabilitySettings
	Appearance                  AppearanceSettings
	Refused                     []RefusedOriginRow
	AppID                       string
	Name, Origins, IdentityMode string
	RequireJWT, RefuseAnonymous bool
	DisabledAt                  time.Time // when the widget was turned off; zero while it is on
	FormError, Saved            string
	Stats                       IdentityStats
	Secret                      SecretView
	Previous                    []SecretView
	NewAPIKey                   string // shown once, right after creation or rotation
	Notice                      string
	Snippet                     string
	Examples                    []CodeExample
	JWTSnippet                  string
	JWTExamples                 []CodeExample
	Members                     []MemberRow
	MemberError                 string
	BaseURL                     string
}

// IdentityStats is how many recent sessions were verified.
type IdentityStats struct {
	Days                            int
	Verified, Unverified, Anonymous int64
}

// Identified is every session that claimed a user.
func (s IdentityStats) Identified() int64 { return s.Verified + s.Unverified }

// VerifiedShare is the verified share of identified sessions, in percent.
func (s IdentityStats) VerifiedShare() string {
	if s.Identified() == 0 {
		return "–"
	}
	return fmt.Sprintf("%d%%", s.Verified*100/s.Identified())
}

// SecretView is an identity secret without its value: the value is only
// fetched when the owner asks to reveal it.
type SecretView struct {
	ID        string
	CreatedAt time.Time
	RetiredAt time.Time
	ExpiresAt time.Time // zero: until revoked
}

// CodeExample is a user_hash or identity JWT example in one language.
type CodeExample struct {
	Lang, Code string
}

// MemberRow is one owner with access to the app.
type MemberRow struct {
	ID, Name, Email string
	You             bool
}

// ErrorView is a dashboard error page.
type ErrorView struct {
	ScriptURL, StyleURL string
	Status              int
	Message             string
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2 Jan 2006")
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func badge(kind string) string {
	switch kind {
	case "verified":
		return "Verified"
	case "unverified":
		return "Unverified"
	}
	return "Anonymous"
}

func filterLabel(f string) string {
	switch f {
	case "open":
		return "Open"
	case "closed":
		return "Closed"
	}
	return "All"
}

func agentName(n string) string {
	if n == "" {
		return "Agent"
	}
	return n
}

func joinOrigins(o []string) string { return strings.Join(o, " ") }

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Error"
}

// pagePath is the path part of a stored page URL, short enough for a row.
func pagePath(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
			return u[i+3+j:]
		}
	}
	return u
}

// count is "1 session", "2 sessions".
func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// WebhooksView is an app's webhooks page.
type WebhooksView struct {
	Shell
	BaseURL   string
	AllEvents []string
	Endpoints []EndpointRow
	Notice    string
	// NewSecret is an endpoint's secret, just made (added or rotated),
	// shown this once; NewSecretFor is the endpoint's URL.
	NewSecret, NewSecretFor string
	// The add form as typed, when it was refused.
	FormError, FormURL string
	FormEvents         []string
}

// EndpointRow is one webhook endpoint.
type EndpointRow struct {
	ID, URL, Events   string
	Disabled          bool
	DisabledReason    string // set when Parley disabled it for failing
	FailingSince      time.Time
	PreviousExpiresAt time.Time // while a rotated secret still signs
}

// DeliveriesView is one endpoint's recent deliveries.
type DeliveriesView struct {
	Shell
	Endpoint         EndpointRow
	BaseURL, BackURL string
	Notice           string
	Deliveries       []DeliveryRow
}

// DeliveryRow is one event's delivery to the endpoint.
type DeliveryRow struct {
	ID, WebhookID, Event, Status string
	Attempts, ResponseCode       int
	Excerpt, Error               string
	CreatedAt, AttemptedAt       time.Time
	Resendable                   bool
}

// LinkView is the page of a link mailed to an owner: forgot, reset or
// invite.
type LinkView struct {
	ScriptURL, StyleURL string
	Email, Name         string
	Error, Notice       string
	MailOn              bool // the server sends e-mail
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func itThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

func fileSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// initial is the first letter of name, for a picture-less avatar.
func initial(name string) string {
	for _, r := range name {
		return strings.ToUpper(string(r))
	}
	return "?"
}

// teamName is the name the chat shows: the team's, else the app's.
func teamName(a AppearanceSettings) string {
	if a.TeamName != "" {
		return a.TeamName
	}
	return a.AppName
}

// isoStamp is t as a <time datetime>: RFC 3339, in UTC.
func isoStamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// SearchParam is &q=… to keep a search in a link, "" for none.
func SearchParam(q string) string {
	if q == "" {
		return ""
	}
	return "&q=" + url.QueryEscape(q)
}
