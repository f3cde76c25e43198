package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/identity"
)

// Owner is a site owner who signs in to the dashboard.
type Owner struct {
	ID        string
	Email     string
	Name      string
	CreatedAt time.Time
}

// CreateOwner stores a new owner. passwordHash is whatever the caller's
// password hashing produced; the store never sees the password.
func (db *DB) CreateOwner(ctx context.Context, email, name, passwordHash string) (Owner, error) {
	var o Owner
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		o, err = db.insertOwner(ctx, tx, email, name, passwordHash)
		return err
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

func (db *DB) insertOwner(ctx context.Context, tx *sql.Tx, email, name, passwordHash string) (Owner, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return Owner{}, err
	}
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > 100 {
		return Owner{}, &InputError{"name must be at most 100 characters"}
	}
	if !printable(name) {
		return Owner{}, &InputError{"name must be valid UTF-8 without control characters"}
	}
	if passwordHash == "" {
		return Owner{}, errors.New("store: create owner: empty password hash")
	}
	o := Owner{ID: identity.NewID("own_"), Email: email, Name: name, CreatedAt: fromMillis(db.now().UnixMilli())}
	// The email's unique key decides, also between two nodes signing the
	// same address up at once.
	res, err := tx.ExecContext(ctx, `INSERT INTO owners (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, o.ID, o.Email, o.Name, passwordHash, o.CreatedAt.UnixMilli())
	if err != nil {
		return Owner{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Owner{}, &InputError{"an owner with this email already exists"}
	}
	return o, nil
}

// OwnerByEmail returns the owner with the given email, in any case, and
// their password hash.
func (db *DB) OwnerByEmail(ctx context.Context, email string) (Owner, string, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return Owner{}, "", ErrNotFound
	}
	var o Owner
	var hash string
	var created int64
	err = db.readRow(ctx, `SELECT id, email, name, password_hash, created_at FROM owners WHERE email = ?`, email).
		Scan(&o.ID, &o.Email, &o.Name, &hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Owner{}, "", ErrNotFound
	}
	if err != nil {
		return Owner{}, "", fmt.Errorf("store: owner: %w", err)
	}
	o.CreatedAt = fromMillis(created)
	return o, hash, nil
}

// Owner returns the owner with the given id.
func (db *DB) Owner(ctx context.Context, id string) (Owner, error) {
	o, err := scanOwner(db.readRow(ctx, `SELECT id, email, name, created_at FROM owners WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Owner{}, ErrNotFound
	}
	if err != nil {
		return Owner{}, fmt.Errorf("store: owner: %w", err)
	}
	return o, nil
}

// SetOwnerPassword replaces the owner's password hash and signs them out
// everywhere: whoever knew the old password must not stay signed in.
func (db *DB) SetOwnerPassword(ctx context.Context, ownerID, passwordHash string) error {
	if passwordHash == "" {
		return errors.New("store: set owner password: empty password hash")
	}
	return db.tx(ctx, func(tx *sql.Tx) error { return db.setOwnerPassword(ctx, tx, ownerID, passwordHash) })
}

func (db *DB) setOwnerPassword(ctx context.Context, tx *sql.Tx, ownerID, passwordHash string) error {
	res, err := tx.ExecContext(ctx, `UPDATE owners SET password_hash = ? WHERE id = ?`, passwordHash, ownerID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	if _, err = tx.ExecContext(ctx, `DELETE FROM owner_sessions WHERE owner_id = ?`, ownerID); err != nil {
		return err
	}
	return db.endOwnerAccess(ctx, tx, EndPasswordChanged, ownerID, "", "")
}

// normalizeEmail trims and lower-cases an email and checks it has the
// shape something@something. Deliverability is not the store's business;
// the point is one spelling per address.
func normalizeEmail(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	if len(e) > 254 {
		return "", &InputError{"email must be at most 254 bytes"}
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || !printable(e) || strings.IndexFunc(e, unicode.IsSpace) >= 0 {
		return "", &InputError{fmt.Sprintf("%q is not an email address", raw)}
	}
	return e, nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}
