package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/identity"
)

// Subject kinds. A verified user, an unverified claim of the same user_id
// and an anonymous visitor are three different subjects and never share rows.
const (
	KindUser       = "user"
	KindUnverified = "unverified"
	KindVisitor    = "visitor"
)

// NewSession describes who a new widget session speaks for. The caller has
// already decided, from the identity proof, which Kind this is.
type NewSession struct {
	AppID string
	Kind  string
	// IdentityKey names a user: "uid:<user_id>" or "email:<email>".
	// Empty for visitors.
	IdentityKey  string
	UserID       string
	Email        string
	Name         string
	VisitorToken string // as sent back by the widget; may be empty or stale
	ParentOrigin string
	// PageURL is the page the chat was opened on, already stripped of
	// query and fragment; empty keeps the subject's previous one.
	PageURL string
	TTL     time.Duration
}

// Session is an authenticated widget session.
type Session struct {
	Token        string // only set when the session is created
	VisitorToken string // set when created for a visitor or an unverified claim
	AppID        string
	SubjectID    string
	Kind         string
	ParentOrigin string
	ExpiresAt    time.Time
}

// Verified reports whether the session's subject was vouched for by the
// site owner's backend.
func (s *Session) Verified() bool { return s.Kind == KindUser }

// CreateSession finds or creates the subject and stores a new session for
// it, returning the bearer token (stored only as a hash). It also counts
// the session for IdentityStats.
func (db *DB) CreateSession(ctx context.Context, in NewSession) (Session, error) {
	if in.Kind != KindUser && in.Kind != KindUnverified && in.Kind != KindVisitor {
		return Session{}, fmt.Errorf("store: unknown subject kind %q", in.Kind)
	}
	now := db.now()
	s := Session{
		Token:        identity.NewToken("pst_"),
		AppID:        in.AppID,
		Kind:         in.Kind,
		ParentOrigin: in.ParentOrigin,
		ExpiresAt:    fromMillis(now.Add(in.TTL).UnixMilli()),
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		key := in.IdentityKey
		if in.Kind != KindUser {
			vt, err := visitorToken(ctx, tx, in.AppID, in.VisitorToken, now)
			if err != nil {
				return err
			}
			s.VisitorToken = vt
			key = identity.TokenHash(vt)
			if in.Kind == KindUnverified {
				// An unverified claim is scoped to the browser that made it,
				// so claiming someone's user_id shows nothing of theirs.
				key = in.IdentityKey + "|" + key
			}
		}
		err := tx.QueryRowContext(ctx, `
			INSERT INTO subjects (id, app_id, kind, lookup_key, user_id, email, name, created_at, last_seen_at, last_page_url)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (app_id, kind, lookup_key) DO UPDATE SET
				user_id = excluded.user_id,
				email = CASE WHEN excluded.email != '' THEN excluded.email ELSE subjects.email END,
				name = CASE WHEN excluded.name != '' THEN excluded.name ELSE subjects.name END,
				last_seen_at = excluded.last_seen_at,
				last_page_url = CASE WHEN excluded.last_page_url != '' THEN excluded.last_page_url ELSE subjects.last_page_url END
			RETURNING id`,
			identity.NewID("sub_"), in.AppID, in.Kind, key, in.UserID, in.Email, in.Name, now.UnixMilli(), now.UnixMilli(), in.PageURL,
		).Scan(&s.SubjectID)
		if err != nil {
			return err
		}
		if err := countSession(ctx, tx, in.AppID, in.Kind, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, app_id, subject_id, parent_origin, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			identity.TokenHash(s.Token), s.AppID, s.SubjectID, s.ParentOrigin, now.UnixMilli(), s.ExpiresAt.UnixMilli())
		return err
	})
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

// visitorToken returns sent if Parley issued it for this app, and a newly
// minted token otherwise, so a client can never choose its own.
func visitorToken(ctx context.Context, tx *sql.Tx, appID, sent string, now time.Time) (string, error) {
	if identity.LooksLikeToken("pvt_", sent) {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM visitor_tokens WHERE app_id = ? AND token_hash = ?`, appID, identity.TokenHash(sent)).Scan(&n)
		if err != nil {
			return "", err
		}
		if n > 0 {
			return sent, nil
		}
	}
	vt := identity.NewToken("pvt_")
	_, err := tx.ExecContext(ctx, `INSERT INTO visitor_tokens (app_id, token_hash, created_at) VALUES (?, ?, ?)`, appID, identity.TokenHash(vt), now.UnixMilli())
	return vt, err
}

// SessionByToken returns the unexpired session with the given bearer
// token, or ErrNotFound.
func (db *DB) SessionByToken(ctx context.Context, token string) (*Session, error) {
	if !identity.LooksLikeToken("pst_", token) {
		return nil, ErrNotFound
	}
	var s Session
	var expires int64
	err := db.read.QueryRowContext(ctx, `
		SELECT s.app_id, s.subject_id, sub.kind, s.parent_origin, s.expires_at
		FROM sessions s JOIN subjects sub ON sub.id = s.subject_id
		WHERE s.token_hash = ? AND s.expires_at > ?`,
		identity.TokenHash(token), db.now().UnixMilli(),
	).Scan(&s.AppID, &s.SubjectID, &s.Kind, &s.ParentOrigin, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: session: %w", err)
	}
	s.ExpiresAt = fromMillis(expires)
	return &s, nil
}

// DeleteExpiredSessions removes sessions past their expiry.
func (db *DB) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, db.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: delete expired sessions: %w", err)
	}
	return res.RowsAffected()
}
