package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/masterkey"
)

// ErrMasterKeyMismatch is returned by Open when the key given is not the
// one the database's secrets were sealed with.
var ErrMasterKeyMismatch = errors.New("store: the master key does not match this database; " +
	"start Parley with the key it was first opened with (PARLEY_MASTER_KEY or the key file)")

// ErrInUse is returned by RotateMasterKey and ResetMasterKey when another
// connection has the database open. A running server keeps the key it
// started with and reads secrets per request, so after the change it could
// open none of them, and it could seal new ones under the old key.
var ErrInUse = errors.New("store: the database is in use by another process; " +
	"stop parley serve (and any other parley command using this database) first")

// ErrMasterKeyNotLost is returned by ResetMasterKey when the key given
// opens the database: nothing is lost, so nothing should be forgotten.
var ErrMasterKeyNotLost = errors.New("store: the master key opens this database; nothing needs resetting")

// keyCheck is sealed into master_key_check; only its opening matters.
const keyCheck = "parley master key check"

var keyCheckAAD = []byte("master_key_check")

// secretAAD binds a sealed identity secret to its row, so a ciphertext
// copied into another row or app does not open there.
func secretAAD(appID, secretID string) []byte { return []byte(appID + "|" + secretID) }

func (db *DB) sealSecret(appID, secretID, plaintext string) string {
	return db.key.Seal([]byte(plaintext), secretAAD(appID, secretID))
}

func (db *DB) openSecret(appID, secretID, sealed string) (string, error) {
	b, err := db.key.Open(sealed, secretAAD(appID, secretID))
	if err != nil {
		return "", fmt.Errorf("identity secret %s of app %s: %w", secretID, appID, err)
	}
	return string(b), nil
}

// setUpEncryption checks the master key and seals any identity secret
// still in plaintext, in one transaction. The first time a database is
// opened with a key, or when plaintext was sealed, it also rebuilds the
// file: plaintext written by earlier versions (rows since rotated or
// deleted, the column 0003 dropped) survives in free pages otherwise.
func (db *DB) setUpEncryption(ctx context.Context) error {
	var first bool
	var sealed int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if first, err = db.checkKey(ctx, tx); err != nil {
			return err
		}
		sealed, err = db.sealPlaintextSecrets(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	if first || sealed > 0 {
		return db.compact(ctx)
	}
	return nil
}

// checkKey verifies the key against master_key_check, or writes the check
// value when there is none yet (first reports that).
func (db *DB) checkKey(ctx context.Context, tx *sql.Tx) (first bool, err error) {
	hasCheck, opens, err := db.keyOpens(ctx, tx)
	if err != nil {
		return false, err
	}
	if !opens {
		return false, ErrMasterKeyMismatch
	}
	if hasCheck {
		return false, nil
	}
	// The first key to write the check wins: two nodes of a cluster
	// starting at once with different keys must not both succeed.
	_, err = tx.ExecContext(ctx, `INSERT INTO master_key_check (id, sealed, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING`,
		db.key.Seal([]byte(keyCheck), keyCheckAAD), db.now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("master key check: %w", err)
	}
	if _, opens, err = db.keyOpens(ctx, tx); err != nil {
		return false, err
	}
	if !opens {
		return false, ErrMasterKeyMismatch
	}
	return true, nil
}

// keyOpens reports whether db.key opens the check value (hasCheck: there
// is one). Without one (a new database, or one from before encryption)
// any sealed secret decides, should the row have been deleted; with
// neither, no key was ever used and any key opens.
func (db *DB) keyOpens(ctx context.Context, tx *sql.Tx) (hasCheck, opens bool, err error) {
	var check string
	err = tx.QueryRowContext(ctx, `SELECT sealed FROM master_key_check WHERE id = 1`+db.forShare()).Scan(&check)
	if err == nil {
		b, err := db.key.Open(check, keyCheckAAD)
		return true, err == nil && string(b) == keyCheck, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, false, fmt.Errorf("master key check: %w", err)
	}
	var id, appID, secret string
	err = tx.QueryRowContext(ctx, `SELECT id, app_id, secret FROM identity_secrets WHERE substr(secret, 1, 3) = 'v1:' LIMIT 1`).
		Scan(&id, &appID, &secret)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, true, nil
	case err != nil:
		return false, false, fmt.Errorf("master key check: %w", err)
	}
	_, err = db.openSecret(appID, id, secret)
	return false, err == nil, nil
}

// writeKeyCheck seals the check value under key, replacing any old one.
func writeKeyCheck(ctx context.Context, tx *sql.Tx, key masterkey.Key, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO master_key_check (id, sealed, created_at) VALUES (1, ?, ?)
		ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at`,
		key.Seal([]byte(keyCheck), keyCheckAAD), now)
	if err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	return nil
}

// sealPlaintextSecrets seals the identity secrets that earlier versions
// stored in plaintext. Sealed ones are left alone, so it is idempotent.
func (db *DB) sealPlaintextSecrets(ctx context.Context, tx *sql.Tx) (int64, error) {
	todo, err := secretRows(ctx, tx, `substr(secret, 1, 3) <> 'v1:'`)
	if err != nil {
		return 0, fmt.Errorf("plaintext secrets: %w", err)
	}
	for _, p := range todo {
		if _, err := tx.ExecContext(ctx, `UPDATE identity_secrets SET secret = ? WHERE id = ?`,
			db.sealSecret(p.appID, p.id, p.secret), p.id); err != nil {
			return 0, fmt.Errorf("sealing secret %s: %w", p.id, err)
		}
	}
	return int64(len(todo)), nil
}

// secretRow is an identity_secrets row as stored.
type secretRow struct{ id, appID, secret string }

// secretRows reads the rows matching where in full before the caller
// updates any: SQLite does not promise what a scan sees of rows changed
// while it runs.
func secretRows(ctx context.Context, tx *sql.Tx, where string) ([]secretRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, app_id, secret FROM identity_secrets WHERE `+where)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []secretRow
	for rows.Next() {
		var r secretRow
		if err := rows.Scan(&r.id, &r.appID, &r.secret); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// compact rebuilds the database file and empties the WAL, so no page
// written before the secrets were sealed is left on disk. The checkpoint
// is best effort: a reader in another process can hold it back, and the
// next one (at the latest when the last connection closes) finishes it.
func (db *DB) compact(ctx context.Context) error {
	if db.postgres {
		// PostgreSQL's own VACUUM reclaims dead rows as it goes; nothing
		// written by a Parley before encryption ever ran there.
		return nil
	}
	if _, err := db.write.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("store: vacuum: %w", err)
	}
	if _, err := db.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}

// openExclusive opens the database at path on one connection that holds
// SQLite's exclusive lock until it is closed, and applies pending
// migrations. The lock is refused (ErrInUse) while any other connection,
// in this process or another, has the database open, and while it is held
// nobody else can open it: a server cannot start halfway through a change
// of key with the old one. Its caller closes db.write; there is no reader
// pool.
func openExclusive(ctx context.Context, path string, key masterkey.Key) (*DB, error) {
	if IsPostgresURL(path) {
		return openPostgresForKeyChange(ctx, path, key)
	}
	// Changing the key of a database that is not there would create one.
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// The short busy timeout comes first, for the first access that takes
	// the lock: another command's brief use of the database may end.
	db, _, err := openWriter(ctx, path, key, "_pragma=busy_timeout(1000)&_pragma=locking_mode(EXCLUSIVE)&")
	if err == nil {
		// A write transaction takes the exclusive lock, which the
		// locking mode then keeps: now, not at the first write after the
		// checks (the migrations write nothing when none is pending).
		if _, err = db.write.ExecContext(ctx, "BEGIN IMMEDIATE; COMMIT"); err != nil {
			db.write.Close()
		}
	}
	if isBusy(err) {
		return nil, ErrInUse
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// RotateMasterKey re-seals every identity secret and the key check value
// under next, in one transaction, and returns how many secrets it
// re-sealed. current must open the database (ErrMasterKeyMismatch
// otherwise, and nothing changes). The secrets themselves do not change.
// The file is then rebuilt, so that no value sealed under the old key is
// left in free pages for whoever has, or later gets, that key.
func RotateMasterKey(ctx context.Context, path string, current, next masterkey.Key) (int, error) {
	if next.IsZero() || next == current {
		return 0, &InputError{"the new master key must be another key than the current one"}
	}
	db, err := openExclusive(ctx, path, current)
	if err != nil {
		return 0, err
	}
	defer db.write.Close()
	if err := db.setUpEncryption(ctx); err != nil {
		return 0, err
	}
	var n int
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockForKeyChange(ctx, tx); err != nil {
			return err
		}
		var err error
		if n, err = db.resealSecrets(ctx, tx, next); err != nil {
			return err
		}
		if err := db.resealWebhookSecrets(ctx, tx, next); err != nil {
			return err
		}
		return writeKeyCheck(ctx, tx, next, db.now().UnixMilli())
	})
	if err != nil {
		return 0, err
	}
	db.key = next
	if err := db.compact(ctx); err != nil {
		return n, fmt.Errorf("store: the master key was rotated, but values sealed under the old one "+
			"may remain in free pages until the next VACUUM: %w", err)
	}
	return n, nil
}

// resealSecrets seals every identity secret under next. A secret that
// db.key does not open fails the whole rotation: dropping it would lose
// it, and keeping it sealed under the old key would leave it unreadable.
func (db *DB) resealSecrets(ctx context.Context, tx *sql.Tx, next masterkey.Key) (int, error) {
	all, err := secretRows(ctx, tx, `true`)
	if err != nil {
		return 0, fmt.Errorf("identity secrets: %w", err)
	}
	for _, r := range all {
		plain, err := db.openSecret(r.appID, r.id, r.secret)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE identity_secrets SET secret = ? WHERE id = ?`,
			next.Seal([]byte(plain), secretAAD(r.appID, r.id)), r.id); err != nil {
			return 0, fmt.Errorf("re-sealing secret %s: %w", r.id, err)
		}
	}
	return len(all), nil
}

// ResetSecret is an app's new identity secret after ResetMasterKey.
type ResetSecret struct {
	AppID, AppName string
	Secret         IdentitySecret
}

// ResetMasterKey is for a lost master key: it opens the database at path
// without checking the old key and, in one transaction, deletes every
// identity secret (sealed under a key nobody has, they are of no use),
// gives each app a fresh current secret sealed under next, makes next the
// database's key and ends the sessions an old secret verified, as revoking
// it would. Visitors' sessions, conversations, owners and apps stay. It
// refuses when next opens the database already (ErrMasterKeyNotLost) and,
// like RotateMasterKey, while the database is open elsewhere (ErrInUse).
func ResetMasterKey(ctx context.Context, path string, next masterkey.Key) ([]ResetSecret, error) {
	db, err := openExclusive(ctx, path, next)
	if err != nil {
		return nil, err
	}
	defer db.write.Close()
	var out []ResetSecret
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockForKeyChange(ctx, tx); err != nil {
			return err
		}
		_, opens, err := db.keyOpens(ctx, tx)
		if err != nil {
			return err
		}
		if opens {
			return ErrMasterKeyNotLost
		}
		out, err = db.resetSecrets(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := db.compact(ctx); err != nil {
		return out, fmt.Errorf("store: the master key was reset, but the old sealed secrets "+
			"may remain in free pages until the next VACUUM: %w", err)
	}
	return out, nil
}

// resetSecrets does ResetMasterKey's work within tx.
func (db *DB) resetSecrets(ctx context.Context, tx *sql.Tx) ([]ResetSecret, error) {
	now := db.now().UnixMilli()
	if err := db.endVerifiedSessions(ctx, tx, now); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM identity_secrets`); err != nil {
		return nil, fmt.Errorf("deleting identity secrets: %w", err)
	}
	if err := db.resetWebhookSecrets(ctx, tx, now); err != nil {
		return nil, err
	}
	// The new key's check comes first: insertSecret seals only under the
	// database's key.
	if err := writeKeyCheck(ctx, tx, db.key, now); err != nil {
		return nil, err
	}
	out, err := appNames(ctx, tx)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Secret = IdentitySecret{ID: identity.NewID("isk_"), Secret: identity.NewIdentitySecret(), CreatedAt: fromMillis(now)}
		if err := db.insertSecret(ctx, tx, out[i].AppID, out[i].Secret); err != nil {
			return nil, fmt.Errorf("new secret for app %s: %w", out[i].AppID, err)
		}
	}
	return out, nil
}

// endVerifiedSessions ends every session an identity secret vouched for:
// the secrets are all going, and with them what they verified.
func (db *DB) endVerifiedSessions(ctx context.Context, tx *sql.Tx, now int64) error {
	if _, err := db.endSessions(ctx, tx, EndSecretRevoked, now, `secret_id IS NOT NULL`); err != nil {
		return fmt.Errorf("ending verified sessions: %w", err)
	}
	return nil
}

// appNames lists every app, oldest first, for ResetMasterKey to fill in.
func appNames(ctx context.Context, tx *sql.Tx) ([]ResetSecret, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, name FROM apps ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	defer rows.Close()
	out := []ResetSecret{}
	for rows.Next() {
		var r ResetSecret
		if err := rows.Scan(&r.AppID, &r.AppName); err != nil {
			return nil, fmt.Errorf("apps: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
