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
}

// Verified reports whether the site owner's backend vouched for this subject.
func (s Subject) Verified() bool { return s.Kind == KindUser }

// Anonymous reports whether this is a visitor with no claimed identity.
func (s Subject) Anonymous() bool { return s.Kind == KindVisitor }

// Subject returns one subject of the app.
func (db *DB) Subject(ctx context.Context, appID, id string) (Subject, error) {
	var s Subject
	var seen int64
	err := db.read.QueryRowContext(ctx, `SELECT id, kind, user_id, email, name, last_seen_at FROM subjects WHERE id = ? AND app_id = ?`, id, appID).
		Scan(&s.ID, &s.Kind, &s.UserID, &s.Email, &s.Name, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return Subject{}, ErrNotFound
	}
	if err != nil {
		return Subject{}, fmt.Errorf("store: subject: %w", err)
	}
	s.LastSeenAt = fromMillis(seen)
	return s, nil
}
