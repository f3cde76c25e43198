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
	// Budget, when set, is a bucket the session takes a token from in its
	// own transaction, or is refused with a *RateLimitedError: a budget
	// every node sharing the database counts. A session refused for any
	// other reason takes nothing.
	Budget *Bucket
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
	// SecretID is the identity secret that vouched for a KindUser session;
	// revoking it ends the session.
	SecretID string
	// Proof is how a KindUser session's user was vouched for: ProofHash or
	// ProofJWT. Requiring JWTs ends the ProofHash ones.
	Proof string
	// EmailSigned and NameSigned say the email and name came signed, in an
	// identity JWT, rather than as hints from the page.
	EmailSigned, NameSigned bool
	// JWTID, when set, is the identity JWT's jti: it is used up by this
	// session, and a second session with it is ErrJWTReplayed. It is
	// remembered until JWTExpiresAt.
	JWTID        string
	JWTExpiresAt time.Time
}

// Proofs of a verified session.
const (
	ProofHash = "hash"
	ProofJWT  = "jwt"
)

// ErrAppDisabled refuses a session for an app whose widget was turned off
// after the caller read it.
var ErrAppDisabled = errors.New("store: app disabled")

// ErrSettingsChanged refuses a session that the app's settings stopped
// allowing after the caller checked them (UpdateApp ends the ones made
// before).
var ErrSettingsChanged = errors.New("store: the app's settings changed")

// ErrSecretRevoked refuses a verified session whose identity secret was
// revoked (or expired) after the caller checked the proof with it.
var ErrSecretRevoked = errors.New("store: identity secret revoked")

// ErrJWTReplayed refuses a session whose identity JWT's jti was used before.
var ErrJWTReplayed = errors.New("store: identity JWT already used")

// Session is an authenticated widget session.
type Session struct {
	Token        string // only set when the session is created
	TokenHash    string // names the session in session_ends
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
	s.TokenHash = identity.TokenHash(s.Token)
	err := db.group(ctx, func(ctx context.Context, tx txn) error {
		if err := db.stillAdmissible(ctx, tx, in, now); err != nil {
			return err
		}
		if in.Budget != nil {
			if err := db.takeToken(ctx, tx, *in.Budget, now); err != nil {
				return err
			}
		}
		if in.JWTID != "" {
			if err := useJWTID(ctx, tx, in.AppID, in.JWTID, in.JWTExpiresAt, now); err != nil {
				return err
			}
		}
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
			INSERT INTO subjects (id, app_id, kind, lookup_key, user_id, email, name, email_signed, name_signed, created_at, last_seen_at, last_page_url)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (app_id, kind, lookup_key) DO UPDATE SET
				user_id = excluded.user_id,
				email = CASE WHEN excluded.email != '' THEN excluded.email ELSE subjects.email END,
				name = CASE WHEN excluded.name != '' THEN excluded.name ELSE subjects.name END,
				email_signed = CASE WHEN excluded.email != '' THEN excluded.email_signed ELSE subjects.email_signed END,
				name_signed = CASE WHEN excluded.name != '' THEN excluded.name_signed ELSE subjects.name_signed END,
				last_seen_at = excluded.last_seen_at,
				last_page_url = CASE WHEN excluded.last_page_url != '' THEN excluded.last_page_url ELSE subjects.last_page_url END
			RETURNING id`,
			identity.NewID("sub_"), in.AppID, in.Kind, key, in.UserID, in.Email, in.Name, in.EmailSigned, in.NameSigned, now.UnixMilli(), now.UnixMilli(), in.PageURL,
		).Scan(&s.SubjectID)
		if err != nil {
			return err
		}
		if !db.postgres {
			if err := countSession(ctx, tx, in.AppID, in.Kind, now); err != nil {
				return err
			}
		}
		var secretID, proof any // NULL unless a secret vouched for the session
		if in.Kind == KindUser && in.SecretID != "" {
			secretID, proof = in.SecretID, in.Proof
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, app_id, subject_id, parent_origin, secret_id, proof, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			s.TokenHash, s.AppID, s.SubjectID, s.ParentOrigin, secretID, proof, now.UnixMilli(), s.ExpiresAt.UnixMilli())
		return err
	})
	if err != nil {
		return Session{}, err
	}
	if db.postgres {
		db.countSessionApart(ctx, in.AppID, in.Kind, now)
	}
	db.stats.sessions.Add(1)
	return s, nil
}

// countSessionApart counts a session committed on PostgreSQL in a
// transaction of its own that does not wait for its commit to reach the
// disk. The count is one row per app, day and kind that every new session
// updates: inside the session's transaction, its lock would be held
// through that transaction's commit and make every session of the app
// wait for the one before. A count is a statistic: losing the last few to
// a crash of PostgreSQL costs nothing, and failing to count one does not
// undo the session.
func (db *DB) countSessionApart(ctx context.Context, appID, kind string, now time.Time) {
	ctx = context.WithoutCancel(ctx) // the session is made: count it even if its caller left
	db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		return countSession(ctx, tx, appID, kind, now)
	})
}

// stillAdmissible checks, inside the session's transaction, what the
// caller checked before it: that the app's widget is on, that its settings
// still allow this kind of session, and that the secret that vouched for
// the user still verifies. A session either commits before a revocation,
// and is ended by it, or sees it here: on SQLite the single writer runs
// them one after the other; on PostgreSQL the session holds the app's row
// shared until it commits, and every write that ends an app's sessions
// locks that row first (lockApp).
func (db *DB) stillAdmissible(ctx context.Context, tx txn, in NewSession, now time.Time) error {
	var disabled sql.NullInt64
	var mode string
	var requireJWT, refuseAnonymous bool
	err := tx.QueryRowContext(ctx, `SELECT disabled_at, identity_mode, require_jwt, refuse_anonymous FROM apps WHERE id = ?`+db.forKeyShare(), in.AppID).
		Scan(&disabled, &mode, &requireJWT, &refuseAnonymous)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if disabled.Valid {
		return ErrAppDisabled
	}
	if (in.Kind == KindUnverified && mode == ModeEnforced) || (in.Kind == KindVisitor && refuseAnonymous) ||
		(in.Kind == KindUser && in.Proof == ProofHash && requireJWT) {
		return ErrSettingsChanged
	}
	if in.Kind != KindUser || in.SecretID == "" {
		return nil
	}
	var n int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM identity_secrets WHERE id = ? AND app_id = ? AND (expires_at IS NULL OR expires_at > ?)`,
		in.SecretID, in.AppID, now.UnixMilli()).Scan(&n)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrSecretRevoked
	}
	return nil
}

// useJWTID records a JWT's jti as used, or refuses it if it was used before
// and has not expired.
func useJWTID(ctx context.Context, tx txn, appID, jti string, expires, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM jwt_ids WHERE app_id = ? AND jti = ? AND expires_at <= ?`, appID, jti, now.UnixMilli()); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO jwt_ids (app_id, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, appID, jti, expires.UnixMilli())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrJWTReplayed
	}
	return nil
}

// DeleteExpiredJWTIDs forgets used jtis whose tokens have expired: a
// replay of those is refused for its exp anyway.
func (db *DB) DeleteExpiredJWTIDs(ctx context.Context) (int64, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM jwt_ids WHERE expires_at <= ?`, db.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: delete expired jwt ids: %w", err)
	}
	return res.RowsAffected()
}

// visitorToken returns sent if Parley issued it for this app, and a newly
// minted token otherwise, so a client can never choose its own.
func visitorToken(ctx context.Context, tx txn, appID, sent string, now time.Time) (string, error) {
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
	err := db.readRow(ctx, `
		SELECT s.app_id, s.subject_id, sub.kind, s.parent_origin, s.expires_at
		FROM sessions s JOIN subjects sub ON sub.id = s.subject_id JOIN apps a ON a.id = s.app_id
		WHERE s.token_hash = ? AND s.expires_at > ? AND a.disabled_at IS NULL`,
		identity.TokenHash(token), db.now().UnixMilli(),
	).Scan(&s.AppID, &s.SubjectID, &s.Kind, &s.ParentOrigin, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: session: %w", err)
	}
	s.ExpiresAt = fromMillis(expires)
	s.TokenHash = identity.TokenHash(token)
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
