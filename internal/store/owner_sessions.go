package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/identity"
)

// OwnerSession is a dashboard sign-in.
type OwnerSession struct {
	Token      string // only set when the session is created
	TokenHash  string
	OwnerID    string
	Owner      Owner
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// ownerSeenEvery is how stale last_seen_at may get before a request
// refreshes it, so that not every dashboard request is a write.
const ownerSeenEvery = time.Minute

// CreateOwnerSession signs the owner in for at most maxAge, returning the
// bearer token (stored only as a hash).
func (db *DB) CreateOwnerSession(ctx context.Context, ownerID string, maxAge time.Duration) (OwnerSession, error) {
	now := fromMillis(db.now().UnixMilli())
	s := OwnerSession{Token: identity.NewToken("pos_"), OwnerID: ownerID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(maxAge)}
	s.TokenHash = identity.TokenHash(s.Token)
	err := db.tx(ctx, func(tx *sql.Tx) error {
		o, err := scanOwner(tx.QueryRowContext(ctx, `SELECT id, email, name, created_at FROM owners WHERE id = ?`, ownerID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		s.Owner = o
		_, err = tx.ExecContext(ctx, `INSERT INTO owner_sessions (token_hash, owner_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			s.TokenHash, ownerID, now.UnixMilli(), now.UnixMilli(), s.ExpiresAt.UnixMilli())
		return err
	})
	if err != nil {
		return OwnerSession{}, err
	}
	return s, nil
}

// OwnerSessionByToken returns the session with the given token unless it
// is past its absolute expiry or has been idle for idle or longer (zero
// idle therefore refuses every session). A session in use has its
// last_seen_at moved forward, at most once a minute.
func (db *DB) OwnerSessionByToken(ctx context.Context, token string, idle time.Duration) (*OwnerSession, error) {
	if !identity.LooksLikeToken("pos_", token) {
		return nil, ErrNotFound
	}
	now := db.now()
	s := OwnerSession{TokenHash: identity.TokenHash(token)}
	var created, seen, expires, ownerCreated int64
	err := db.readRow(ctx, `
		SELECT s.owner_id, s.created_at, s.last_seen_at, s.expires_at, o.email, o.name, o.created_at
		FROM owner_sessions s JOIN owners o ON o.id = s.owner_id
		WHERE s.token_hash = ? AND s.expires_at > ? AND s.last_seen_at > ?`,
		s.TokenHash, now.UnixMilli(), now.Add(-idle).UnixMilli(),
	).Scan(&s.OwnerID, &created, &seen, &expires, &s.Owner.Email, &s.Owner.Name, &ownerCreated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: owner session: %w", err)
	}
	s.Owner.ID, s.Owner.CreatedAt = s.OwnerID, fromMillis(ownerCreated)
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMillis(created), fromMillis(seen), fromMillis(expires)
	if now.Sub(s.LastSeenAt) > ownerSeenEvery {
		_, err := db.write.ExecContext(ctx, `UPDATE owner_sessions SET last_seen_at = ? WHERE token_hash = ?`, now.UnixMilli(), s.TokenHash)
		if err != nil {
			return nil, fmt.Errorf("store: owner session seen: %w", err)
		}
		s.LastSeenAt = fromMillis(now.UnixMilli())
	}
	return &s, nil
}

// DeleteOwnerSession signs a session out. An unknown or malformed token is
// not an error: signing out twice is fine.
func (db *DB) DeleteOwnerSession(ctx context.Context, token string) error {
	if !identity.LooksLikeToken("pos_", token) {
		return nil
	}
	hash := identity.TokenHash(token)
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var ownerID string
		err := tx.QueryRowContext(ctx, `DELETE FROM owner_sessions WHERE token_hash = ? RETURNING owner_id`, hash).Scan(&ownerID)
		if errors.Is(err, sql.ErrNoRows) {
			// Nothing is logged for a token with no session (anyone can
			// post /logout with any cookie). A session swept for idling
			// was not logged either: its sockets on other nodes close at
			// their access recheck (30 s), the one on this node at once.
			return nil
		}
		if err != nil {
			return err
		}
		return db.endOwnerAccess(ctx, tx, EndSignedOut, ownerID, "", hash)
	})
	if err != nil {
		return fmt.Errorf("store: delete owner session: %w", err)
	}
	return nil
}

// DeleteExpiredOwnerSessions removes sessions past their absolute expiry
// or idle for idle or longer.
func (db *DB) DeleteExpiredOwnerSessions(ctx context.Context, idle time.Duration) (int64, error) {
	now := db.now()
	res, err := db.write.ExecContext(ctx, `DELETE FROM owner_sessions WHERE expires_at <= ? OR last_seen_at <= ?`,
		now.UnixMilli(), now.Add(-idle).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: delete expired owner sessions: %w", err)
	}
	return res.RowsAffected()
}

func scanOwner(sc interface{ Scan(...any) error }) (Owner, error) {
	var o Owner
	var created int64
	err := sc.Scan(&o.ID, &o.Email, &o.Name, &created)
	o.CreatedAt = fromMillis(created)
	return o, err
}
