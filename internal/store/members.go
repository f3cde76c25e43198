package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// AddMember lets the owner see and run the app. Adding a member twice is
// fine; an unknown app or owner is ErrNotFound.
func (db *DB) AddMember(ctx context.Context, appID, ownerID string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		return addMember(ctx, tx, appID, ownerID, db.now().UnixMilli())
	})
}

func addMember(ctx context.Context, tx *sql.Tx, appID, ownerID string, now int64) error {
	// Checked first so a missing row is ErrNotFound, not a foreign key error.
	var n int
	err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM apps WHERE id = ?) + (SELECT count(*) FROM owners WHERE id = ?)`,
		appID, ownerID).Scan(&n)
	if err != nil {
		return err
	}
	if n != 2 {
		return ErrNotFound
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO app_members (app_id, owner_id, created_at) VALUES (?, ?, ?)
		ON CONFLICT (app_id, owner_id) DO NOTHING`, appID, ownerID, now)
	return err
}

// ErrNoSuchOwner is (besides an InputError) AddMemberByEmail's answer
// for an address with no account, which can be invited (CreateInvite).
var ErrNoSuchOwner = errors.New("store: no owner has this email")

// AddMemberByEmail invites an existing owner to the app by email.
func (db *DB) AddMemberByEmail(ctx context.Context, appID, email string) (Owner, error) {
	norm, err := normalizeEmail(email)
	if err != nil {
		return Owner{}, err
	}
	var o Owner
	err = db.tx(ctx, func(tx *sql.Tx) error {
		o, err = scanOwner(tx.QueryRowContext(ctx, `SELECT id, email, name, created_at FROM owners WHERE email = ?`, norm))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w%w", ErrNoSuchOwner, &InputError{fmt.Sprintf("no owner has the email %s; they need to sign up first", norm)})
		}
		if err != nil {
			return err
		}
		return addMember(ctx, tx, appID, o.ID, db.now().UnixMilli())
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// RemoveMember takes the app away from the owner. The last member cannot
// be removed: an app nobody can reach could never be fixed or deleted.
func (db *DB) RemoveMember(ctx context.Context, appID, ownerID string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		// Two members removing each other at once, on PostgreSQL, would
		// both count two and leave the app with none.
		if err := db.lockApp(ctx, tx, appID); err != nil {
			return err
		}
		var member, total int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE owner_id = ?), count(*) FROM app_members WHERE app_id = ?`,
			ownerID, appID).Scan(&member, &total)
		if err != nil {
			return err
		}
		if member == 0 {
			return ErrNotFound
		}
		if total == 1 {
			return &InputError{"an app must keep at least one member"}
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM app_members WHERE app_id = ? AND owner_id = ?`, appID, ownerID); err != nil {
			return err
		}
		return db.endOwnerAccess(ctx, tx, EndAccessRemoved, ownerID, appID, "")
	})
}

// Members lists the app's owners by email.
func (db *DB) Members(ctx context.Context, appID string) ([]Owner, error) {
	rows, err := db.readRows(ctx, `SELECT o.id, o.email, o.name, o.created_at
		FROM app_members m JOIN owners o ON o.id = m.owner_id WHERE m.app_id = ? ORDER BY o.email`, appID)
	if err != nil {
		return nil, fmt.Errorf("store: members: %w", err)
	}
	defer rows.Close()
	var out []Owner
	for rows.Next() {
		o, err := scanOwner(rows)
		if err != nil {
			return nil, fmt.Errorf("store: members: %w", err)
		}
		out = append(out, o)
	}
	return out, rowsErr(rows)
}

// AppSummary is an app as listed on an owner's dashboard.
type AppSummary struct {
	App               App
	OpenConversations int64
	Unread            int64 // conversations with user messages no agent has read
}

// OwnerApps lists the apps the owner is a member of, by name.
func (db *DB) OwnerApps(ctx context.Context, ownerID string) ([]AppSummary, error) {
	rows, err := db.readRows(ctx, `SELECT a.id,
			(SELECT count(*) FROM conversations c WHERE c.app_id = a.id AND c.status = 'open'),
			(SELECT count(*) FROM conversations c WHERE c.app_id = a.id AND `+agentUnread+`)
		FROM app_members m JOIN apps a ON a.id = m.app_id
		WHERE m.owner_id = ? ORDER BY a.name, a.id`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("store: owner apps: %w", err)
	}
	var out []AppSummary
	for rows.Next() {
		var s AppSummary
		if err := rows.Scan(&s.App.ID, &s.OpenConversations, &s.Unread); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: owner apps: %w", err)
		}
		out = append(out, s)
	}
	rows.Close()
	if err := rowsErr(rows); err != nil {
		return nil, err
	}
	apps := out[:0]
	for _, s := range out {
		a, err := db.App(ctx, s.App.ID)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		s.App = *a
		apps = append(apps, s)
	}
	return apps, nil
}

// OwnerApp returns the app if the owner is a member of it. Any other app,
// existing or not, is ErrNotFound, so app ids cannot be probed.
func (db *DB) OwnerApp(ctx context.Context, ownerID, appID string) (*App, error) {
	return db.appWhere(ctx, `id = ? AND EXISTS (SELECT 1 FROM app_members m WHERE m.app_id = apps.id AND m.owner_id = ?)`, appID, ownerID)
}
