package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/hours"
	"github.com/parley-chat/parley/internal/identity"
)

// Identity modes: enforced refuses an identified user without a valid
// hash; monitor accepts them as unverified while owners roll hashes out.
const (
	ModeEnforced = "enforced"
	ModeMonitor  = "monitor"
)

// App is a tenant: one site owner's site.
type App struct {
	ID           string
	Name         string
	IdentityMode string
	// IdentitySecret is the current secret, the one owners are told to use.
	IdentitySecret   string
	IdentitySecretID string
	// IdentitySecretCreatedAt is when the current secret was made.
	IdentitySecretCreatedAt time.Time
	// PreviousSecrets are retired secrets that still verify, newest first.
	PreviousSecrets []IdentitySecret
	Origins         []string
	// RequireJWT refuses a plain user_hash: users must come with an
	// identity JWT, which expires.
	RequireJWT bool
	// RefuseAnonymous refuses visitors who carry no identity at all.
	RefuseAnonymous bool
	// DisabledAt is when the app's widget was turned off; zero when on.
	DisabledAt time.Time
	// AgentEmailAfter and UserEmailAfter are how long a message may go
	// unseen before it is e-mailed (to the members, to the user); zero is
	// the server's default.
	AgentEmailAfter, UserEmailAfter time.Duration
	// Availability is when the team is usually there, and what the
	// widget says about it.
	Availability Availability
	// Appearance is how its widget looks.
	Appearance Appearance
	CreatedAt  time.Time
}

// Disabled reports whether the app's widget is turned off.
func (a *App) Disabled() bool { return !a.DisabledAt.IsZero() }

// AllowsOrigin reports whether origin (already canonical, as browsers send
// it) is on the app's allowlist. Exact match only.
func (a *App) AllowsOrigin(origin string) bool {
	for _, o := range a.Origins {
		if o == origin {
			return true
		}
	}
	return false
}

// NewApp is what an owner supplies to create an app.
type NewApp struct {
	Name            string
	Origins         []string
	IdentityMode    string
	RequireJWT      bool
	RefuseAnonymous bool
	// OwnerID, when set, makes that owner the app's first member; an
	// unknown owner refuses the app with ErrNotFound.
	OwnerID string
}

// CreatedApp carries the secrets that are shown once at creation.
type CreatedApp struct {
	App    App
	APIKey string
}

// CreateApp validates and stores a new app with a fresh identity secret and
// API key. Origins are canonicalised; any bad one refuses the whole app.
func (db *DB) CreateApp(ctx context.Context, in NewApp) (CreatedApp, error) {
	if in.IdentityMode == "" {
		in.IdentityMode = ModeEnforced
	}
	s, err := checkAppSettings(AppSettings{Name: in.Name, Origins: in.Origins, IdentityMode: in.IdentityMode,
		RequireJWT: in.RequireJWT, RefuseAnonymous: in.RefuseAnonymous})
	if err != nil {
		return CreatedApp{}, err
	}
	now := db.now().UnixMilli()
	app := App{
		ID:                      identity.NewID("app_"),
		Name:                    s.Name,
		IdentityMode:            s.IdentityMode,
		IdentitySecret:          identity.NewIdentitySecret(),
		IdentitySecretID:        identity.NewID("isk_"),
		IdentitySecretCreatedAt: fromMillis(now),
		Origins:                 s.Origins,
		RequireJWT:              s.RequireJWT,
		RefuseAnonymous:         s.RefuseAnonymous,
		CreatedAt:               fromMillis(now),
	}
	key := identity.NewToken("psk_")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO apps (id, name, identity_mode, require_jwt, refuse_anonymous, api_key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			app.ID, app.Name, app.IdentityMode, app.RequireJWT, app.RefuseAnonymous, identity.TokenHash(key), now)
		if err != nil {
			return err
		}
		err = db.insertSecret(ctx, tx, app.ID, IdentitySecret{ID: app.IdentitySecretID, Secret: app.IdentitySecret, CreatedAt: app.IdentitySecretCreatedAt})
		if err != nil {
			return err
		}
		if err := insertOrigins(ctx, tx, app.ID, app.Origins); err != nil {
			return err
		}
		if in.OwnerID == "" {
			return nil
		}
		return addMember(ctx, tx, app.ID, in.OwnerID, now)
	})
	if err != nil {
		return CreatedApp{}, err
	}
	return CreatedApp{App: app, APIKey: key}, nil
}

// AppSettings are the parts of an app its owners can change.
type AppSettings struct {
	Name         string
	Origins      []string
	IdentityMode string
	// RequireJWT and RefuseAnonymous: see App.
	RequireJWT      bool
	RefuseAnonymous bool
}

// UpdateApp replaces the app's name, allowed origins and identity mode,
// validated as CreateApp does, except that the mode has no default: a form
// that forgot it must not silently change it. Open sessions that the new
// settings no longer allow end with it (see endSessionsNoLongerAllowed).
func (db *DB) UpdateApp(ctx context.Context, appID string, in AppSettings) (*App, error) {
	s, err := checkAppSettings(in)
	if err != nil {
		return nil, err
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockApp(ctx, tx, appID); err != nil {
			return err
		}
		var old AppSettings
		err := tx.QueryRowContext(ctx, `SELECT identity_mode, require_jwt, refuse_anonymous FROM apps WHERE id = ?`, appID).
			Scan(&old.IdentityMode, &old.RequireJWT, &old.RefuseAnonymous)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE apps SET name = ?, identity_mode = ?, require_jwt = ?, refuse_anonymous = ? WHERE id = ?`,
			s.Name, s.IdentityMode, s.RequireJWT, s.RefuseAnonymous, appID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM app_origins WHERE app_id = ?`, appID); err != nil {
			return err
		}
		if err := insertOrigins(ctx, tx, appID, s.Origins); err != nil {
			return err
		}
		return db.endSessionsNoLongerAllowed(ctx, tx, appID, old, s, db.now().UnixMilli())
	})
	if err != nil {
		return nil, err
	}
	return db.App(ctx, appID)
}

// endSessionsNoLongerAllowed ends the app's open sessions that the old
// settings let in and the new ones would refuse, so tightening who may chat
// takes effect on open chats too, not only on new ones:
//   - monitor to enforced ends unverified claims;
//   - requiring JWTs ends sessions verified by a user_hash;
//   - refusing anonymous visitors ends the visitors' sessions.
//
// Loosening a setting, or saving it unchanged, ends nothing.
func (db *DB) endSessionsNoLongerAllowed(ctx context.Context, tx *sql.Tx, appID string, from, to AppSettings, now int64) error {
	const ofKind = `subject_id IN (SELECT id FROM subjects WHERE app_id = ? AND kind = ?)`
	var refused []string // conditions on the app's sessions
	var args []any
	if from.IdentityMode == ModeMonitor && to.IdentityMode == ModeEnforced {
		refused, args = append(refused, ofKind), append(args, appID, KindUnverified)
	}
	if !from.RequireJWT && to.RequireJWT {
		refused, args = append(refused, `proof = ?`), append(args, ProofHash)
	}
	if !from.RefuseAnonymous && to.RefuseAnonymous {
		refused, args = append(refused, ofKind), append(args, appID, KindVisitor)
	}
	if len(refused) == 0 {
		return nil
	}
	_, err := db.endSessions(ctx, tx, EndSettingsChanged, now, `app_id = ? AND (`+strings.Join(refused, " OR ")+`)`, append([]any{appID}, args...)...)
	return err
}

// checkAppSettings returns the settings trimmed and canonicalised, or an
// InputError naming what is wrong.
func checkAppSettings(in AppSettings) (AppSettings, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" || len(name) > 100 {
		return AppSettings{}, &InputError{"app name must be 1-100 characters"}
	}
	// Names reach terminals (apps list) and pages: no escape sequences,
	// tabs or line breaks.
	if !printable(name) {
		return AppSettings{}, &InputError{"app name must be text without control characters"}
	}
	if in.IdentityMode != ModeEnforced && in.IdentityMode != ModeMonitor {
		return AppSettings{}, &InputError{fmt.Sprintf("identity mode must be %q or %q, not %q", ModeEnforced, ModeMonitor, in.IdentityMode)}
	}
	origins, err := CanonicalOrigins(in.Origins)
	if err != nil {
		return AppSettings{}, err
	}
	return AppSettings{Name: name, Origins: origins, IdentityMode: in.IdentityMode, RequireJWT: in.RequireJWT, RefuseAnonymous: in.RefuseAnonymous}, nil
}

func insertOrigins(ctx context.Context, tx *sql.Tx, appID string, origins []string) error {
	for _, o := range origins {
		if _, err := tx.ExecContext(ctx, `INSERT INTO app_origins (app_id, origin) VALUES (?, ?)`, appID, o); err != nil {
			return err
		}
	}
	return nil
}

// CanonicalOrigins canonicalises an allowlist, reporting every bad entry
// at once and dropping duplicates.
func CanonicalOrigins(raw []string) ([]string, error) {
	if len(raw) == 0 {
		return nil, &InputError{"at least one allowed origin is required"}
	}
	var out, bad []string
	seen := map[string]bool{}
	for _, r := range raw {
		o, err := identity.CanonicalOrigin(strings.TrimSpace(r))
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	if len(bad) > 0 {
		return nil, &InputError{strings.Join(bad, "; ")}
	}
	return out, nil
}

// App returns the app with the given public id.
func (db *DB) App(ctx context.Context, id string) (*App, error) {
	return db.appWhere(ctx, `id = ?`, id)
}

// Apps returns every app, oldest first (for the CLI's apps list).
func (db *DB) Apps(ctx context.Context) ([]*App, error) {
	rows, err := db.readRows(ctx, `SELECT id FROM apps ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: apps: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: apps: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rowsErr(rows); err != nil {
		return nil, err
	}
	apps := make([]*App, 0, len(ids))
	for _, id := range ids {
		a, err := db.App(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		apps = append(apps, a)
	}
	return apps, nil
}

// AppByAPIKey returns the app whose API key is key. The lookup is by the
// key's SHA-256, so no secret is ever compared byte by byte in SQL.
func (db *DB) AppByAPIKey(ctx context.Context, key string) (*App, error) {
	if !identity.LooksLikeToken("psk_", key) {
		return nil, ErrNotFound
	}
	return db.appWhere(ctx, `api_key_hash = ?`, identity.TokenHash(key))
}

// AppByName returns the oldest app with the given name (used by the demo to
// find its app again across restarts).
func (db *DB) AppByName(ctx context.Context, name string) (*App, error) {
	return db.appWhere(ctx, `name = ? ORDER BY created_at LIMIT 1`, name)
}

func (db *DB) appWhere(ctx context.Context, where string, args ...any) (*App, error) {
	var a App
	var created int64
	var disabled, agentAfter, userAfter sql.NullInt64
	var week string
	err := db.readRow(ctx, `SELECT id, name, identity_mode, require_jwt, refuse_anonymous, disabled_at, created_at, agent_email_after, user_email_after,
			time_zone, business_hours, greeting, away_message, reply_time,
			color, position, launcher_label, team_name, locale, avatar_hash
		FROM apps WHERE `+where, args...).
		Scan(&a.ID, &a.Name, &a.IdentityMode, &a.RequireJWT, &a.RefuseAnonymous, &disabled, &created, &agentAfter, &userAfter,
			&a.Availability.TimeZone, &week, &a.Availability.Greeting, &a.Availability.AwayMessage, &a.Availability.ReplyTime,
			&a.Appearance.Color, &a.Appearance.Position, &a.Appearance.LauncherLabel, &a.Appearance.TeamName, &a.Appearance.Locale, &a.Appearance.AvatarHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: app: %w", err)
	}
	a.CreatedAt = fromMillis(created)
	if disabled.Valid {
		a.DisabledAt = fromMillis(disabled.Int64)
	}
	a.AgentEmailAfter = time.Duration(agentAfter.Int64) * time.Millisecond
	a.UserEmailAfter = time.Duration(userAfter.Int64) * time.Millisecond
	a.Availability.Hours, _ = hours.Parse(week)
	rows, err := db.readRows(ctx, `SELECT origin FROM app_origins WHERE app_id = ? ORDER BY origin`, a.ID)
	if err != nil {
		return nil, fmt.Errorf("store: app origins: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, fmt.Errorf("store: app origins: %w", err)
		}
		a.Origins = append(a.Origins, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: app origins: %w", err)
	}
	if err := db.loadSecrets(ctx, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// RotateAPIKey replaces the app's API key and returns the new one. The old
// key stops working at once.
func (db *DB) RotateAPIKey(ctx context.Context, appID string) (string, error) {
	key := identity.NewToken("psk_")
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE apps SET api_key_hash = ? WHERE id = ?`, identity.TokenHash(key), appID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return key, nil
}
