package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Subject is a user or visitor as the site owner sees them.
type Subject struct {
	ID         string
	Kind       string
	UserID     string
	Email      string
	Name       string
	LastSeenAt time.Time
	// LastPageURL is the page the subject last opened the chat on, without
	// query or fragment; empty when unknown.
	LastPageURL string
	// EmailSigned and NameSigned say the email and name came in an
	// identity JWT; otherwise they are only what the page said.
	EmailSigned, NameSigned bool
}

// Verified reports whether the site owner's backend vouched for this subject.
func (s Subject) Verified() bool { return s.Kind == KindUser }

// Anonymous reports whether this is a visitor with no claimed identity.
func (s Subject) Anonymous() bool { return s.Kind == KindVisitor }

// Subject returns one subject of the app.
func (db *DB) Subject(ctx context.Context, appID, id string) (Subject, error) {
	var s Subject
	var seen int64
	err := db.readRow(ctx, `SELECT id, kind, user_id, email, name, last_seen_at, last_page_url, email_signed, name_signed
		FROM subjects WHERE id = ? AND app_id = ?`, id, appID).
		Scan(&s.ID, &s.Kind, &s.UserID, &s.Email, &s.Name, &seen, &s.LastPageURL, &s.EmailSigned, &s.NameSigned)
	if errors.Is(err, sql.ErrNoRows) {
		return Subject{}, ErrNotFound
	}
	if err != nil {
		return Subject{}, fmt.Errorf("store: subject: %w", err)
	}
	s.LastSeenAt = fromMillis(seen)
	return s, nil
}

// TouchSubject records that the subject is around now (a widget socket
// connected), for the inbox's "last seen".
func (db *DB) TouchSubject(ctx context.Context, subjectID string) error {
	now := db.now().UnixMilli()
	err := db.group(ctx, func(ctx context.Context, tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE subjects SET last_seen_at = ? WHERE id = ?`, now, subjectID)
		if err != nil {
			return fmt.Errorf("touch subject: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	return err
}
