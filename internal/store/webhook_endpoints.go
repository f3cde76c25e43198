package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/webhooks"
)

// WebhookEndpoint is where an app's events are sent. Secret and
// PreviousSecret are filled in only when read for sending or just made.
type WebhookEndpoint struct {
	ID, AppID, URL string
	Events         []string
	Secret         string `json:"-"`
	// PreviousSecret signs beside Secret until PreviousExpiresAt, after a
	// rotation, so receivers can switch without losing a delivery.
	PreviousSecret    string `json:"-"`
	PreviousExpiresAt time.Time
	Disabled          bool
	// DisabledReason says why Parley disabled the endpoint, when it did
	// (it kept failing); FailingSince is when its current run of failed
	// deliveries began, zero while deliveries succeed.
	DisabledReason string
	FailingSince   time.Time
	CreatedAt      time.Time
}

// maxWebhookEndpoints bounds an app's endpoints.
const maxWebhookEndpoints = 20

// NewWebhookEndpoint is an endpoint to add; the caller has checked URL
// with the operator's guard (webhooks.Guard) and events with
// webhooks.ParseEvents.
type NewWebhookEndpoint struct {
	AppID, URL string
	Events     []string
}

// webhookAAD binds a sealed endpoint secret to its endpoint and slot.
func webhookAAD(appID, endpointID, slot string) []byte {
	return []byte("webhook|" + appID + "|" + endpointID + "|" + slot)
}

// AddWebhookEndpoint stores a new endpoint with a new secret, returned
// once here and otherwise only ever read for signing.
func (db *DB) AddWebhookEndpoint(ctx context.Context, in NewWebhookEndpoint) (WebhookEndpoint, error) {
	events, err := webhooks.ParseEvents(in.Events)
	if err != nil {
		return WebhookEndpoint{}, &InputError{strings.TrimPrefix(err.Error(), "webhooks: ")}
	}
	now := db.now()
	e := WebhookEndpoint{ID: identity.NewID("whe_"), AppID: in.AppID, URL: in.URL, Events: events,
		Secret: webhooks.NewSecret(), CreatedAt: fromMillis(now.UnixMilli())}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockApp(ctx, tx, in.AppID); err != nil {
			return err
		}
		if err := db.sealsUnderTheDatabaseKey(ctx, tx); err != nil {
			return err
		}
		var apps, n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM apps WHERE id = ?`, in.AppID).Scan(&apps); err != nil {
			return err
		}
		if apps == 0 {
			return ErrNotFound
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM webhook_endpoints WHERE app_id = ?`, in.AppID).Scan(&n); err != nil {
			return err
		}
		if n >= maxWebhookEndpoints {
			return &InputError{fmt.Sprintf("an app has at most %d webhook endpoints", maxWebhookEndpoints)}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (id, app_id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			e.ID, e.AppID, e.URL, strings.Join(e.Events, " "), db.key.Seal([]byte(e.Secret), webhookAAD(e.AppID, e.ID, "current")), now.UnixMilli())
		return err
	})
	if err != nil {
		return WebhookEndpoint{}, err
	}
	return e, nil
}

const webhookColumns = `id, app_id, url, events, secret, coalesce(previous_secret, ''), previous_expires_at, disabled_at, created_at,
	disabled_reason, failing_since`

// scanWebhook reads an endpoint, opening its secrets when withSecrets.
func (db *DB) scanWebhook(sc interface{ Scan(...any) error }, withSecrets bool) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	var events, secret, previous string
	var prevExp, disabled, failing sql.NullInt64
	var created int64
	if err := sc.Scan(&e.ID, &e.AppID, &e.URL, &events, &secret, &previous, &prevExp, &disabled, &created, &e.DisabledReason, &failing); err != nil {
		return e, err
	}
	e.Events, e.Disabled, e.CreatedAt = strings.Fields(events), disabled.Valid, fromMillis(created)
	if failing.Valid {
		e.FailingSince = fromMillis(failing.Int64)
	}
	now := db.now()
	if prevExp.Valid && now.Before(fromMillis(prevExp.Int64)) {
		e.PreviousExpiresAt = fromMillis(prevExp.Int64)
	} else {
		previous = ""
	}
	if !withSecrets {
		return e, nil
	}
	b, err := db.key.Open(secret, webhookAAD(e.AppID, e.ID, "current"))
	if err != nil {
		return e, fmt.Errorf("webhook endpoint %s: %w", e.ID, ErrMasterKeyMismatch)
	}
	e.Secret = string(b)
	if previous != "" {
		b, err := db.key.Open(previous, webhookAAD(e.AppID, e.ID, "previous"))
		if err != nil {
			return e, fmt.Errorf("webhook endpoint %s: %w", e.ID, ErrMasterKeyMismatch)
		}
		e.PreviousSecret = string(b)
	}
	return e, nil
}

// WebhookEndpoints lists the app's endpoints, oldest first, without their
// secrets.
func (db *DB) WebhookEndpoints(ctx context.Context, appID string) ([]WebhookEndpoint, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhook_endpoints WHERE app_id = ? ORDER BY created_at, id`, appID)
	if err != nil {
		return nil, fmt.Errorf("store: webhook endpoints: %w", err)
	}
	defer rows.Close()
	out := []WebhookEndpoint{}
	for rows.Next() {
		e, err := db.scanWebhook(rows, false)
		if err != nil {
			return nil, fmt.Errorf("store: webhook endpoints: %w", err)
		}
		out = append(out, e)
	}
	return out, rowsErr(rows)
}

// WebhookEndpointForSending is one of the app's endpoints with its
// secrets, for signing.
func (db *DB) WebhookEndpointForSending(ctx context.Context, appID, id string) (WebhookEndpoint, error) {
	e, err := db.scanWebhook(db.read.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhook_endpoints WHERE id = ? AND app_id = ?`, id, appID), true)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookEndpoint{}, ErrNotFound
	}
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("store: webhook endpoint: %w", err)
	}
	return e, nil
}

// RemoveWebhookEndpoint deletes one of the app's endpoints.
func (db *DB) RemoveWebhookEndpoint(ctx context.Context, appID, id string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE id = ? AND app_id = ?`, id, appID)
	if err != nil {
		return fmt.Errorf("store: remove webhook endpoint: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// EnableWebhookEndpoint turns back on one of the app's endpoints that
// Parley disabled because it kept failing, with its run of failures
// forgotten. (One a master key reset disabled has a secret nobody knows:
// rotating its secret turns it back on.)
func (db *DB) EnableWebhookEndpoint(ctx context.Context, appID, id string) error {
	res, err := db.write.ExecContext(ctx, `UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = '', failing_since = NULL
		WHERE id = ? AND app_id = ? AND disabled_reason != ''`, id, appID)
	if err != nil {
		return fmt.Errorf("store: enable webhook endpoint: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RotateWebhookSecret gives one of the app's endpoints a new secret and
// returns it. The old one keeps signing beside it for overlap (0: it
// stops at once). It also turns back on an endpoint that was turned off.
// It reports whether the old secret keeps signing (not when the endpoint
// was off, or its secret no longer opened).
func (db *DB) RotateWebhookSecret(ctx context.Context, appID, id string, overlap time.Duration) (string, bool, error) {
	if overlap < 0 {
		return "", false, &InputError{"the overlap must not be negative"}
	}
	secret := webhooks.NewSecret()
	overlapped := false
	err := db.tx(ctx, func(tx *sql.Tx) error {
		// Rotations of one app's endpoints take turns (on PostgreSQL):
		// two at once would both keep the same old secret, and one's new
		// secret, already shown, would never sign.
		if err := db.lockApp(ctx, tx, appID); err != nil {
			return err
		}
		if err := db.sealsUnderTheDatabaseKey(ctx, tx); err != nil {
			return err
		}
		e, err := db.scanWebhook(tx.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhook_endpoints WHERE id = ? AND app_id = ?`, id, appID), true)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil && !errors.Is(err, ErrMasterKeyMismatch) {
			return err
		}
		now := db.now()
		var previous, expires any // NULL: no overlap
		// An endpoint that is off (a master key reset turns them off,
		// with secrets nobody has) or whose secret the key no longer opens
		// has nobody to overlap with.
		overlapped = overlap > 0 && err == nil && !e.Disabled
		if overlapped {
			previous = db.key.Seal([]byte(e.Secret), webhookAAD(appID, id, "previous"))
			expires = now.Add(overlap).UnixMilli()
		}
		res, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, previous_expires_at = ?, disabled_at = NULL,
			disabled_reason = '', failing_since = NULL WHERE id = ? AND app_id = ?`, db.key.Seal([]byte(secret), webhookAAD(appID, id, "current")), previous, expires, id, appID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return "", false, err
	}
	return secret, overlapped, nil
}

// sealsUnderTheDatabaseKey refuses a write that would seal with a key the
// database no longer has: a node left running with the old key after a
// master key change on a shared PostgreSQL database (insertSecret does the
// same for identity secrets).
func (db *DB) sealsUnderTheDatabaseKey(ctx context.Context, tx *sql.Tx) error {
	if _, opens, err := db.keyOpens(ctx, tx); err != nil {
		return err
	} else if !opens {
		return ErrMasterKeyMismatch
	}
	return nil
}

// resealWebhookSecrets seals every endpoint's secrets under next, in a
// master key rotation's transaction.
func (db *DB) resealWebhookSecrets(ctx context.Context, tx *sql.Tx, next masterkey.Key) error {
	rows, err := tx.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhook_endpoints`)
	if err != nil {
		return fmt.Errorf("webhook secrets: %w", err)
	}
	var all []WebhookEndpoint
	for rows.Next() {
		e, err := db.scanWebhook(rows, true)
		if err != nil {
			rows.Close()
			return fmt.Errorf("webhook secrets: %w", err)
		}
		all = append(all, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("webhook secrets: %w", err)
	}
	for _, e := range all {
		var previous any
		if e.PreviousSecret != "" {
			previous = next.Seal([]byte(e.PreviousSecret), webhookAAD(e.AppID, e.ID, "previous"))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET secret = ?, previous_secret = ? WHERE id = ?`,
			next.Seal([]byte(e.Secret), webhookAAD(e.AppID, e.ID, "current")), previous, e.ID); err != nil {
			return fmt.Errorf("webhook secrets: %w", err)
		}
	}
	return nil
}

// resetWebhookSecrets, when the master key was lost, gives every endpoint
// a secret nobody knows and turns it off: nothing is sent that its
// receiver could not verify, until the owner rotates its secret (which
// shows the new one and turns it back on).
func (db *DB) resetWebhookSecrets(ctx context.Context, tx *sql.Tx, now int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, app_id FROM webhook_endpoints`)
	if err != nil {
		return fmt.Errorf("webhook secrets: %w", err)
	}
	type endpoint struct{ id, appID string }
	var all []endpoint
	for rows.Next() {
		var e endpoint
		if err := rows.Scan(&e.id, &e.appID); err != nil {
			rows.Close()
			return fmt.Errorf("webhook secrets: %w", err)
		}
		all = append(all, e)
	}
	rows.Close()
	for _, e := range all {
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET secret = ?, previous_secret = NULL, previous_expires_at = NULL,
			disabled_at = coalesce(disabled_at, ?), disabled_reason = '' WHERE id = ?`, db.key.Seal([]byte(webhooks.NewSecret()), webhookAAD(e.appID, e.id, "current")), now, e.id); err != nil {
			return fmt.Errorf("webhook secrets: %w", err)
		}
	}
	return rows.Err()
}
