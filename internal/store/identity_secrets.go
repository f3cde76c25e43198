package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/identity"
)

// IdentitySecret is one of an app's HMAC keys for user hashes.
type IdentitySecret struct {
	ID        string
	Secret    string
	CreatedAt time.Time
	RetiredAt time.Time // zero for the current secret
	ExpiresAt time.Time // zero: verifies until revoked
}

// VerifyUserHash reports whether hash vouches for claim under the current
// secret or a previous one that has not expired by now.
func (a *App) VerifyUserHash(claim, hash string, now time.Time) bool {
	_, ok := a.MatchUserHash(claim, hash, now)
	return ok
}

// MatchUserHash returns the id of the secret under which hash vouches for
// claim: the current secret or a previous one that has not expired by now.
// Owners' backends switch to a new secret one deploy at a time; until every
// one has, their hashes must keep working. The id is kept with the session,
// so revoking that secret ends it.
func (a *App) MatchUserHash(claim, hash string, now time.Time) (secretID string, ok bool) {
	if identity.VerifyUserHash(a.IdentitySecret, claim, hash) {
		return a.IdentitySecretID, true
	}
	for _, s := range a.PreviousSecrets {
		if s.ExpiredBy(now) {
			continue
		}
		if identity.VerifyUserHash(s.Secret, claim, hash) {
			return s.ID, true
		}
	}
	return "", false
}

// SecretByID returns the secret with the given id (an identity JWT's kid)
// if it is the current one or a previous one that has not expired by now.
func (a *App) SecretByID(id string, now time.Time) (string, bool) {
	if id == a.IdentitySecretID {
		return a.IdentitySecret, true
	}
	for _, s := range a.PreviousSecrets {
		if s.ID == id && !s.ExpiredBy(now) {
			return s.Secret, true
		}
	}
	return "", false
}

// ExpiredBy reports whether a retired secret has stopped verifying by now.
func (s IdentitySecret) ExpiredBy(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// loadSecrets fills the app's current secret and the previous ones that
// still verify.
func (db *DB) loadSecrets(ctx context.Context, a *App) error {
	rows, err := db.readRows(ctx, `SELECT id, secret, created_at, retired_at, expires_at FROM identity_secrets
		WHERE app_id = ? AND (retired_at IS NULL OR expires_at IS NULL OR expires_at > ?)
		ORDER BY created_at DESC, rowid DESC`, a.ID, db.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("store: identity secrets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s IdentitySecret
		var created int64
		var retired, expires sql.NullInt64
		if err := rows.Scan(&s.ID, &s.Secret, &created, &retired, &expires); err != nil {
			return fmt.Errorf("store: identity secrets: %w", err)
		}
		if s.Secret, err = db.openSecret(a.ID, s.ID, s.Secret); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		s.CreatedAt = fromMillis(created)
		if expires.Valid {
			s.ExpiresAt = fromMillis(expires.Int64)
		}
		if !retired.Valid {
			a.IdentitySecret, a.IdentitySecretID, a.IdentitySecretCreatedAt = s.Secret, s.ID, s.CreatedAt
			continue
		}
		s.RetiredAt = fromMillis(retired.Int64)
		a.PreviousSecrets = append(a.PreviousSecrets, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: identity secrets: %w", err)
	}
	if a.IdentitySecretID == "" {
		return fmt.Errorf("store: app %s has no current identity secret", a.ID)
	}
	return nil
}

// RotateIdentitySecret makes a fresh secret current and returns it. The
// previous one keeps verifying for previousValidFor, or until revoked when
// that is 0. Secrets that have already expired are deleted on the way.
func (db *DB) RotateIdentitySecret(ctx context.Context, appID string, previousValidFor time.Duration) (IdentitySecret, error) {
	if previousValidFor < 0 {
		return IdentitySecret{}, &InputError{"the previous secret's validity must not be negative"}
	}
	return db.swapSecret(ctx, appID, func(tx *sql.Tx, now int64) (sql.Result, error) {
		var expires any // NULL: until revoked
		if previousValidFor > 0 {
			expires = now + previousValidFor.Milliseconds()
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM identity_secrets WHERE app_id = ? AND expires_at <= ?`, appID, now); err != nil {
			return nil, err
		}
		return tx.ExecContext(ctx, `UPDATE identity_secrets SET retired_at = ?, expires_at = ? WHERE app_id = ? AND retired_at IS NULL`,
			now, expires, appID)
	})
}

// ReplaceIdentitySecret makes a fresh secret current and deletes the old
// one in the same transaction, so hashes made with it stop verifying at
// once, with no moment where the owner was told so and it still works.
// The sessions it vouched for end with it.
func (db *DB) ReplaceIdentitySecret(ctx context.Context, appID string) (IdentitySecret, error) {
	return db.swapSecret(ctx, appID, func(tx *sql.Tx, now int64) (sql.Result, error) {
		var id string
		err := tx.QueryRowContext(ctx, `SELECT id FROM identity_secrets WHERE app_id = ? AND retired_at IS NULL`, appID).Scan(&id)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		if err := db.endSessionsOfSecret(ctx, tx, id, EndSecretRevoked, now); err != nil {
			return nil, err
		}
		return tx.ExecContext(ctx, `DELETE FROM identity_secrets WHERE app_id = ? AND retired_at IS NULL`, appID)
	})
}

// swapSecret makes a fresh secret current in one transaction, after
// endCurrent has retired or deleted the current one. An app without a
// current secret does not exist.
func (db *DB) swapSecret(ctx context.Context, appID string, endCurrent func(tx *sql.Tx, now int64) (sql.Result, error)) (IdentitySecret, error) {
	now := db.now().UnixMilli()
	s := IdentitySecret{ID: identity.NewID("isk_"), Secret: identity.NewIdentitySecret(), CreatedAt: fromMillis(now)}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockApp(ctx, tx, appID); err != nil {
			return err
		}
		res, err := endCurrent(tx, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return db.insertSecret(ctx, tx, appID, s)
	})
	if err != nil {
		return IdentitySecret{}, err
	}
	return s, nil
}

// insertSecret stores s sealed with the master key: the secret has to be
// read back to verify hashes, so it cannot be hashed, but a copy of the
// database file alone must not reveal it.
//
// It seals only under the database's own key: a node still running with
// the old key after a master key change on a shared PostgreSQL database
// is refused (ErrMasterKeyMismatch) rather than seal a secret nobody
// could open.
func (db *DB) insertSecret(ctx context.Context, tx *sql.Tx, appID string, s IdentitySecret) error {
	if err := db.sealsUnderTheDatabaseKey(ctx, tx); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_secrets (id, app_id, secret, created_at) VALUES (?, ?, ?, ?)`,
		s.ID, appID, db.sealSecret(appID, s.ID, s.Secret), s.CreatedAt.UnixMilli())
	return err
}

// RevokeIdentitySecret deletes one of the app's previous secrets, so hashes
// made with it stop verifying at once, and the sessions it vouched for end.
// The current secret can only be replaced by rotating; a secret of another
// app is ErrNotFound.
func (db *DB) RevokeIdentitySecret(ctx context.Context, appID, secretID string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockApp(ctx, tx, appID); err != nil {
			return err
		}
		var retired sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT retired_at FROM identity_secrets WHERE id = ? AND app_id = ?`, secretID, appID).Scan(&retired)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !retired.Valid {
			return &InputError{"the current identity secret cannot be revoked; rotate it first"}
		}
		if err := db.endSessionsOfSecret(ctx, tx, secretID, EndSecretRevoked, db.now().UnixMilli()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM identity_secrets WHERE id = ?`, secretID)
		return err
	})
}
