package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrMasterKeyMismatch is returned by Open when the key given is not the
// one the database's secrets were sealed with.
var ErrMasterKeyMismatch = errors.New("store: the master key does not match this database; " +
	"start Parley with the key it was first opened with (PARLEY_MASTER_KEY or the key file)")

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
	var check string
	err = tx.QueryRowContext(ctx, `SELECT sealed FROM master_key_check WHERE id = 1`).Scan(&check)
	if err == nil {
		if b, err := db.key.Open(check, keyCheckAAD); err != nil || string(b) != keyCheck {
			return false, ErrMasterKeyMismatch
		}
		return false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("master key check: %w", err)
	}
	// No check value: a new database or one from before encryption. Should
	// sealed secrets exist anyway (the row was deleted), they decide.
	var id, appID, secret string
	err = tx.QueryRowContext(ctx, `SELECT id, app_id, secret FROM identity_secrets WHERE substr(secret, 1, 3) = 'v1:' LIMIT 1`).
		Scan(&id, &appID, &secret)
	switch {
	case err == nil:
		if _, err := db.openSecret(appID, id, secret); err != nil {
			return false, ErrMasterKeyMismatch
		}
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("master key check: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO master_key_check (id, sealed, created_at) VALUES (1, ?, ?)`,
		db.key.Seal([]byte(keyCheck), keyCheckAAD), db.now().UnixMilli())
	return true, err
}

// sealPlaintextSecrets seals the identity secrets that earlier versions
// stored in plaintext. Sealed ones are left alone, so it is idempotent.
func (db *DB) sealPlaintextSecrets(ctx context.Context, tx *sql.Tx) (int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, app_id, secret FROM identity_secrets WHERE substr(secret, 1, 3) <> 'v1:'`)
	if err != nil {
		return 0, fmt.Errorf("plaintext secrets: %w", err)
	}
	type plain struct{ id, appID, secret string }
	var todo []plain
	for rows.Next() {
		var p plain
		if err := rows.Scan(&p.id, &p.appID, &p.secret); err != nil {
			rows.Close()
			return 0, fmt.Errorf("plaintext secrets: %w", err)
		}
		todo = append(todo, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
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

// compact rebuilds the database file and empties the WAL, so no page
// written before the secrets were sealed is left on disk. The checkpoint
// is best effort: a reader in another process can hold it back, and the
// next one (at the latest when the last connection closes) finishes it.
func (db *DB) compact(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("store: vacuum: %w", err)
	}
	if _, err := db.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}
