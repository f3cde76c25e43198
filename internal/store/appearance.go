package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"
)

// Appearance is how an app's widget looks. The greeting and "usually
// replies within …" are part of Availability.
type Appearance struct {
	// Color is the app's colour, #rrggbb; the widget picks the text
	// colour on it (package theme).
	Color string
	// Position is the launcher's corner: "right" or "left".
	Position string
	// LauncherLabel is shown beside the launcher's icon ("" for the icon
	// alone); TeamName heads the chat ("" for the app's name).
	LauncherLabel, TeamName string
	// Locale is the language the widget speaks when neither the page nor
	// the browser names one it has (a BCP 47 tag: en, pt-BR).
	Locale string
	// AvatarHash names the team's picture ("" for none); it changes with
	// the picture.
	AvatarHash string
}

// DefaultAppearance is a new app's.
var DefaultAppearance = Appearance{Color: "#2457d6", Position: "right", Locale: "en"}

var (
	hexColor  = regexp.MustCompile(`^#[0-9a-f]{6}$`)
	localeTag = regexp.MustCompile(`^[a-z]{2,3}(-[A-Z]{2})?$`)
)

func checkAppearance(a Appearance) error {
	if !hexColor.MatchString(a.Color) {
		return &InputError{fmt.Sprintf("the colour must be written #rrggbb, not %q", a.Color)}
	}
	if a.Position != "right" && a.Position != "left" {
		return &InputError{"the launcher goes in the right or the left corner"}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"the launcher's label", a.LauncherLabel, 40}, {"the team's name", a.TeamName, 60}} {
		if !printable(f.v) || utf8.RuneCountInString(f.v) > f.max {
			return &InputError{fmt.Sprintf("%s is at most %d characters on one line", f.name, f.max)}
		}
	}
	if !localeTag.MatchString(a.Locale) {
		return &InputError{fmt.Sprintf("%q is not a language tag like en or pt-BR", a.Locale)}
	}
	return nil
}

// SetAppearance saves how the app's widget looks (its picture apart:
// SetAvatar).
func (db *DB) SetAppearance(ctx context.Context, appID string, a Appearance) error {
	if err := checkAppearance(a); err != nil {
		return err
	}
	res, err := db.write.ExecContext(ctx, `UPDATE apps SET color = ?, position = ?, launcher_label = ?, team_name = ?, locale = ? WHERE id = ?`,
		a.Color, a.Position, a.LauncherLabel, a.TeamName, a.Locale, appID)
	if err != nil {
		return fmt.Errorf("store: appearance: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetAvatar keeps the team's picture, already checked and cleaned
// (package attachments); nil data removes it.
func (db *DB) SetAvatar(ctx context.Context, appID, typ string, data []byte) error {
	hash := ""
	if data != nil {
		sum := sha256.Sum256(append([]byte(typ+"\x00"), data...))
		hash = hex.EncodeToString(sum[:8])
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE apps SET avatar_hash = ? WHERE id = ?`, hash, appID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if data == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM app_avatars WHERE app_id = ?`, appID)
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO app_avatars (app_id, type, data) VALUES (?, ?, ?)
			ON CONFLICT (app_id) DO UPDATE SET type = excluded.type, data = excluded.data`, appID, typ, data)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("store: avatar: %w", err)
	}
	return err
}

// Avatar returns the team's picture and its hash.
func (db *DB) Avatar(ctx context.Context, appID string) (typ, hash string, data []byte, err error) {
	err = db.readRow(ctx, `SELECT v.type, a.avatar_hash, v.data FROM app_avatars v JOIN apps a ON a.id = v.app_id WHERE v.app_id = ?`, appID).
		Scan(&typ, &hash, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil, ErrNotFound
	}
	if err != nil {
		return "", "", nil, fmt.Errorf("store: avatar: %w", err)
	}
	return typ, hash, data, nil
}

// maxRefusedOrigins bounds what is kept per app: a page can send any
// Origin it likes, so the list must not grow with them.
const maxRefusedOrigins = 20

// RefusedOrigin is an origin whose pages asked for the widget and were
// refused.
type RefusedOrigin struct {
	Origin string
	Count  int64
	LastAt time.Time
}

// NoteRefusedOrigin counts a refusal of origin for the app, keeping the
// most recent few origins.
func (db *DB) NoteRefusedOrigin(ctx context.Context, appID, origin string) error {
	now := db.now().UnixMilli()
	err := db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO refused_origins (app_id, origin, count, last_at) VALUES (?, ?, 1, ?)
			ON CONFLICT (app_id, origin) DO UPDATE SET count = refused_origins.count + 1, last_at = excluded.last_at`, appID, origin, now)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM refused_origins WHERE app_id = ? AND origin NOT IN
			(SELECT origin FROM refused_origins WHERE app_id = ? ORDER BY last_at DESC, origin LIMIT ?)`, appID, appID, maxRefusedOrigins)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: refused origin: %w", err)
	}
	return nil
}

// RefusedOrigins lists the app's refused origins seen since since, the
// most recent first, leaving out those allowed meanwhile.
func (db *DB) RefusedOrigins(ctx context.Context, appID string, since time.Time) ([]RefusedOrigin, error) {
	rows, err := db.readRows(ctx, `SELECT r.origin, r.count, r.last_at FROM refused_origins r
		WHERE r.app_id = ? AND r.last_at >= ? AND NOT EXISTS (SELECT 1 FROM app_origins o WHERE o.app_id = r.app_id AND o.origin = r.origin)
		ORDER BY r.last_at DESC, r.origin`, appID, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: refused origins: %w", err)
	}
	defer rows.Close()
	var out []RefusedOrigin
	for rows.Next() {
		var r RefusedOrigin
		var last int64
		if err := rows.Scan(&r.Origin, &r.Count, &last); err != nil {
			return nil, fmt.Errorf("store: refused origins: %w", err)
		}
		r.LastAt = fromMillis(last)
		out = append(out, r)
	}
	return out, rowsErr(rows)
}

// AllowOrigin adds one origin to the app's allowlist (a refused one the
// owner recognised), leaving the rest as they are, even if someone saves
// the settings meanwhile.
func (db *DB) AllowOrigin(ctx context.Context, appID, origin string) (*App, error) {
	origins, err := CanonicalOrigins([]string{origin})
	if err != nil {
		return nil, err
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockApp(ctx, tx, appID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO app_origins (app_id, origin) SELECT id, ? FROM apps WHERE id = ? ON CONFLICT DO NOTHING`, origins[0], appID)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: allow origin: %w", err)
	}
	if err != nil {
		return nil, err
	}
	return db.App(ctx, appID)
}
