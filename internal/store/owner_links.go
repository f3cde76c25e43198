package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/identity"
)

// Links mailed to dashboard owners: a password reset, and an invitation
// to an app for an address that has no account yet. Each is a random
// token of which only the hash is kept; it works once, and not after it
// expires.

// How long a mailed link works.
const (
	ResetLinkTTL  = time.Hour
	InviteLinkTTL = 7 * 24 * time.Hour
)

// CreateResetLink makes a password reset link for the owner with email,
// and returns its token and the owner. Earlier reset links of the owner
// stop working. An unknown email is ErrNotFound (which the caller must
// not reveal).
func (db *DB) CreateResetLink(ctx context.Context, email string) (string, Owner, error) {
	norm, err := normalizeEmail(email)
	if err != nil {
		return "", Owner{}, ErrNotFound
	}
	token := identity.NewToken("prt_")
	var o Owner
	err = db.tx(ctx, func(tx *sql.Tx) error {
		o, err = scanOwner(tx.QueryRowContext(ctx, `SELECT id, email, name, created_at FROM owners WHERE email = ?`, norm))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		now := db.now()
		if _, err := tx.ExecContext(ctx, `UPDATE owner_links SET used_at = ? WHERE owner_id = ? AND kind = 'reset' AND used_at IS NULL`, now.UnixMilli(), o.ID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO owner_links (token_hash, kind, email, owner_id, expires_at, created_at) VALUES (?, 'reset', ?, ?, ?, ?)`,
			identity.TokenHash(token), o.Email, o.ID, now.Add(ResetLinkTTL).UnixMilli(), now.UnixMilli())
		return err
	})
	if err != nil {
		return "", Owner{}, err
	}
	return token, o, nil
}

// ErrLinkInvalid refuses a link that is unknown, used or expired; which
// of them is not said.
var ErrLinkInvalid = &InputError{"this link is not valid: it was used already, it expired, or it was copied incompletely. Ask for a new one."}

// takeLink marks the unused, unexpired link of kind with token used, in
// tx, and returns its email, owner and app.
func (db *DB) takeLink(ctx context.Context, tx *sql.Tx, kind, token string) (email, ownerID, appID string, err error) {
	now := db.now().UnixMilli()
	var owner, app sql.NullString
	err = tx.QueryRowContext(ctx, `UPDATE owner_links SET used_at = ? WHERE token_hash = ? AND kind = ? AND used_at IS NULL AND expires_at > ?
		RETURNING email, owner_id, app_id`, now, identity.TokenHash(token), kind, now).Scan(&email, &owner, &app)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", "", ErrLinkInvalid
	}
	return email, owner.String, app.String, err
}

// ResetPassword sets the password of the owner a reset link names, once,
// and signs them out everywhere.
func (db *DB) ResetPassword(ctx context.Context, token, passwordHash string) (Owner, error) {
	var o Owner
	err := db.tx(ctx, func(tx *sql.Tx) error {
		_, ownerID, _, err := db.takeLink(ctx, tx, "reset", token)
		if err != nil {
			return err
		}
		if err := db.setOwnerPassword(ctx, tx, ownerID, passwordHash); err != nil {
			return err
		}
		o, err = scanOwner(tx.QueryRowContext(ctx, `SELECT id, email, name, created_at FROM owners WHERE id = ?`, ownerID))
		return err
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// ErrOwnerExists refuses to invite an address that has an account: add
// it as a member instead.
var ErrOwnerExists = errors.New("store: an owner has this email")

// CreateInvite makes an invitation to the app for an address with no
// account, and returns its token and the normalised address.
func (db *DB) CreateInvite(ctx context.Context, appID, email string) (string, string, error) {
	norm, err := normalizeEmail(email)
	if err != nil {
		return "", "", err
	}
	token := identity.NewToken("pin_")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM owners WHERE email = ?`, norm).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrOwnerExists
		}
		now := db.now()
		_, err := tx.ExecContext(ctx, `INSERT INTO owner_links (token_hash, kind, email, app_id, expires_at, created_at) VALUES (?, 'invite', ?, ?, ?, ?)`,
			identity.TokenHash(token), norm, appID, now.Add(InviteLinkTTL).UnixMilli(), now.UnixMilli())
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("store: invite: %w", err)
	}
	return token, norm, nil
}

// AcceptInvite makes the account an invitation is for, with name and
// password, a member of its app, once. If an account got the address
// meanwhile, the invitation is refused (and stays unused): that owner
// signs in and is added as a member.
func (db *DB) AcceptInvite(ctx context.Context, token, name, passwordHash string) (Owner, string, error) {
	var o Owner
	var appID string
	err := db.tx(ctx, func(tx *sql.Tx) error {
		email, _, app, err := db.takeLink(ctx, tx, "invite", token)
		if err != nil {
			return err
		}
		if app == "" {
			return ErrLinkInvalid // its app was deleted
		}
		if o, err = db.insertOwner(ctx, tx, email, name, passwordHash); err != nil {
			return err
		}
		appID = app
		return addMember(ctx, tx, app, o.ID, db.now().UnixMilli())
	})
	if err != nil {
		return Owner{}, "", err
	}
	return o, appID, nil
}

// Invite is an invitation to an app not yet accepted.
type Invite struct {
	Email     string
	ExpiresAt time.Time
}

// PendingInvites lists the app's invitations that can still be accepted,
// by address.
func (db *DB) PendingInvites(ctx context.Context, appID string) ([]Invite, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT email, max(expires_at) FROM owner_links
		WHERE app_id = ? AND kind = 'invite' AND used_at IS NULL AND expires_at > ? GROUP BY email ORDER BY email`, appID, db.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: invitations: %w", err)
	}
	defer rows.Close()
	var out []Invite
	for rows.Next() {
		var in Invite
		var exp int64
		if err := rows.Scan(&in.Email, &exp); err != nil {
			return nil, fmt.Errorf("store: invitations: %w", err)
		}
		in.ExpiresAt = fromMillis(exp)
		out = append(out, in)
	}
	return out, rows.Err()
}

// CancelInvites makes the app's invitations to email stop working.
func (db *DB) CancelInvites(ctx context.Context, appID, email string) error {
	res, err := db.write.ExecContext(ctx, `UPDATE owner_links SET used_at = ? WHERE app_id = ? AND kind = 'invite' AND email = ? AND used_at IS NULL`,
		db.now().UnixMilli(), appID, email)
	if err != nil {
		return fmt.Errorf("store: cancel invitations: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
