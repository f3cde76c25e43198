package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/identity"
)

// Reasons a session ended before its expiry, as recorded in session_ends.
const (
	EndSecretRevoked = "secret_revoked" // the identity secret that vouched for it was revoked or expired
	EndAppDisabled   = "app_disabled"
	EndShutdown      = "shutdown" // the widget was shut down (Parley('shutdown'), i.e. a logout)
	// EndSettingsChanged: the owner tightened who may chat (enforced the
	// identity mode, required JWTs or refused anonymous visitors) and the
	// new settings no longer allow the session.
	EndSettingsChanged = "settings_changed"

	// Ends of an owner's dashboard access, which close inbox sockets
	// (SessionEnd.OwnerID is set on these only).
	EndSignedOut       = "signed_out"       // TokenHash: the owner session's
	EndPasswordChanged = "password_changed" // every session of OwnerID
	EndAccessRemoved   = "access_removed"   // OwnerID's access to AppID
)

// SessionEnd records sessions ended early. TokenHash names one session;
// empty means every session of AppID.
type SessionEnd struct {
	ID        int64
	AppID     string
	TokenHash string
	// OwnerID is the owner whose dashboard access ended, for the reasons
	// that end it (IsOwnerEnd).
	OwnerID   string
	Reason    string
	CreatedAt time.Time
}

// EndSession ends the session with the given bearer token at once, as a
// widget does on Parley('shutdown'). An unknown or expired token is
// ErrNotFound.
func (db *DB) EndSession(ctx context.Context, token string) error {
	if !identity.LooksLikeToken("pst_", token) {
		return ErrNotFound
	}
	hash := identity.TokenHash(token)
	// A made-up token is turned away on the read pool, so guessing costs
	// the single writer nothing.
	if _, err := db.SessionByToken(ctx, token); err != nil {
		return err
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		now := db.now().UnixMilli()
		n, err := db.endSessions(ctx, tx, EndShutdown, now, `token_hash = ? AND expires_at > ?`, hash, now)
		if err == nil && n == 0 {
			return ErrNotFound
		}
		return err
	})
}

// endSessions ends, for reason, every session matching where (an SQL
// condition on sessions, with its args): each is logged in session_ends,
// for the hubs to close its sockets, then deleted. It returns how many
// ended.
func (db *DB) endSessions(ctx context.Context, tx *sql.Tx, reason string, now int64, where string, args ...any) (int64, error) {
	if err := db.lockSessionEnds(ctx, tx); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO session_ends (app_id, token_hash, reason, created_at)
		SELECT app_id, token_hash, ?, ? FROM sessions WHERE `+where, append([]any{reason, now}, args...)...)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE `+where, args...)
	return n, err
}

// endSessionsOfSecret ends every session the secret vouched for.
func (db *DB) endSessionsOfSecret(ctx context.Context, tx *sql.Tx, secretID, reason string, now int64) error {
	if secretID == "" {
		return nil
	}
	_, err := db.endSessions(ctx, tx, reason, now, `secret_id = ?`, secretID)
	return err
}

// EndSessionsOfExpiredSecrets ends sessions whose identity secret has
// expired since they were made (a rotation's grace period ran out), and
// returns how many ended.
func (db *DB) EndSessionsOfExpiredSecrets(ctx context.Context) (int64, error) {
	var n int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		now := db.now().UnixMilli()
		const stale = `secret_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM identity_secrets i
			WHERE i.id = sessions.secret_id AND (i.expires_at IS NULL OR i.expires_at > ?))`
		var err error
		n, err = db.endSessions(ctx, tx, EndSecretRevoked, now, stale, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: end sessions of expired secrets: %w", err)
	}
	return n, nil
}

// SessionEndsAfter returns up to limit session ends recorded after id,
// oldest first.
func (db *DB) SessionEndsAfter(ctx context.Context, id int64, limit int) ([]SessionEnd, error) {
	rows, err := db.readRows(ctx, `SELECT id, app_id, coalesce(token_hash, ''), coalesce(owner_id, ''), reason, created_at
		FROM session_ends WHERE id > ? ORDER BY id LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("store: session ends: %w", err)
	}
	defer rows.Close()
	var out []SessionEnd
	for rows.Next() {
		var e SessionEnd
		var created int64
		if err := rows.Scan(&e.ID, &e.AppID, &e.TokenHash, &e.OwnerID, &e.Reason, &created); err != nil {
			return nil, fmt.Errorf("store: session ends: %w", err)
		}
		e.CreatedAt = fromMillis(created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: session ends: %w", err)
	}
	return out, nil
}

// LastSessionEnd returns the id of the newest session end, 0 if none: a
// server starting up has no sockets from before it to close.
func (db *DB) LastSessionEnd(ctx context.Context) (int64, error) {
	var id int64
	if err := db.readRow(ctx, `SELECT coalesce(max(id), 0) FROM session_ends`).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: last session end: %w", err)
	}
	return id, nil
}

// DeleteSessionEndsBefore forgets session ends older than t; every server
// has long since closed their sockets.
func (db *DB) DeleteSessionEndsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM session_ends WHERE created_at < ?`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: delete session ends: %w", err)
	}
	return res.RowsAffected()
}

// SetAppDisabled turns an app's widget off or back on. Turning it off ends
// every session of the app; its conversations, dashboard and server API
// stay as they are.
func (db *DB) SetAppDisabled(ctx context.Context, appID string, disabled bool) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockApp(ctx, tx, appID); err != nil {
			return err
		}
		now := db.now().UnixMilli()
		var at any // NULL: enabled
		if disabled {
			at = now
		}
		res, err := tx.ExecContext(ctx, `UPDATE apps SET disabled_at = CASE WHEN CAST(? AS bigint) IS NULL THEN NULL ELSE coalesce(disabled_at, ?) END WHERE id = ?`, at, now, appID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if !disabled {
			return nil
		}
		if err := db.lockSessionEnds(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO session_ends (app_id, reason, created_at) VALUES (?, ?, ?)`, appID, EndAppDisabled, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE app_id = ?`, appID)
		return err
	})
}

// sessionEndsLock is the PostgreSQL advisory lock that writers of
// session_ends hold until they commit.
const sessionEndsLock = 0x7061726c6579 // "parley"

// lockSessionEnds makes session_ends ids commit in order. Every node
// reads the table by "id after the last one I saw"; PostgreSQL hands out
// identity values at insert, so without the lock a transaction that took
// id 7 could commit after another's id 8 was read, and 7 would never be
// seen. Holding one lock from the insert to the commit makes the ids
// commit one after the other. Ends are rare (logouts, revocations), so
// they can wait for each other; SQLite's single writer does this already.
func (db *DB) lockSessionEnds(ctx context.Context, tx *sql.Tx) error {
	if !db.postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, sessionEndsLock)
	return err
}

// IsOwnerEnd reports whether e ended dashboard access (inbox sockets)
// rather than widget sessions.
func (e SessionEnd) IsOwnerEnd() bool {
	return e.Reason == EndSignedOut || e.Reason == EndPasswordChanged || e.Reason == EndAccessRemoved
}

// endOwnerAccess logs the end of some of an owner's dashboard access for
// every process to close the inbox sockets concerned: one owner session
// (tokenHash), all of them, or (appID) those on one app.
func (db *DB) endOwnerAccess(ctx context.Context, tx *sql.Tx, reason, ownerID, appID, tokenHash string) error {
	if err := db.lockSessionEnds(ctx, tx); err != nil {
		return err
	}
	var hash any // NULL unless one session ends
	if tokenHash != "" {
		hash = tokenHash
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO session_ends (app_id, token_hash, owner_id, reason, created_at) VALUES (?, ?, ?, ?, ?)`,
		appID, hash, ownerID, reason, db.now().UnixMilli())
	return err
}
