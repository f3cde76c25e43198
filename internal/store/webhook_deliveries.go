package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/webhooks"
)

// The webhook outbox.
//
// A write that causes an event (a message, a conversation opened, closed
// or reopened) adds, in its own transaction, one webhook_deliveries row per
// endpoint of the app that wants the event, and hands the rows to the
// Outbox, which adds the jobs that deliver them to the same transaction.
// So a delivery exists exactly when its event committed: a crash after the
// commit loses nothing, and a write that rolls back sends nothing.

// Outbox queues the work that follows from a write, inside the write's
// transaction, so its jobs commit or roll back with it: the deliveries of
// webhook_deliveries rows, and e-mails (email_alerts.go).
type Outbox interface {
	EnqueueWebhooks(ctx context.Context, tx *sql.Tx, deliveryIDs []int64) error
	EnqueueMail(ctx context.Context, tx *sql.Tx, mails []MailJob) error
}

// UseOutbox has the DB record webhook events and queue their deliveries,
// and queue e-mails, through o. It is set once, before the DB serves
// writes; a DB without an outbox (the CLI's) records no events, as
// nothing would deliver them.
func (db *DB) UseOutbox(o Outbox) { db.outbox = o }

// Delivery statuses.
const (
	DeliveryPending   = "pending"   // not tried yet
	DeliveryRetrying  = "retrying"  // failed, to be tried again
	DeliveryDelivered = "delivered" // answered with a 2xx
	DeliveryFailed    = "failed"    // given up on
)

// WebhookDelivery is one event on its way to one endpoint.
type WebhookDelivery struct {
	ID int64
	// EventID is the webhook-id header: the same on every attempt and
	// resend, so receivers can drop repeats.
	EventID, EndpointID, AppID, EventType string
	Payload                               []byte
	Status                                string
	Attempts, ResponseCode                int
	// ResponseExcerpt is the start of the last response's body; Error
	// why the last attempt failed, when it did.
	ResponseExcerpt, Error string
	CreatedAt              time.Time
	AttemptedAt            time.Time // zero before the first attempt
}

// subscriber is an endpoint that wants some of an app's events.
type subscriber struct {
	id     string
	events []string
}

// webhookSubscribers returns the app's enabled endpoints, or nil when the
// DB has no outbox.
func (db *DB) webhookSubscribers(ctx context.Context, tx txn, appID string) ([]subscriber, error) {
	if db.outbox == nil {
		return nil, nil
	}
	rows, err := sqlTx(tx).QueryContext(ctx, `SELECT id, events FROM webhook_endpoints WHERE app_id = ? AND disabled_at IS NULL`, appID)
	if err != nil {
		return nil, fmt.Errorf("webhook endpoints: %w", err)
	}
	defer rows.Close()
	var subs []subscriber
	for rows.Next() {
		var s subscriber
		var events string
		if err := rows.Scan(&s.id, &events); err != nil {
			return nil, err
		}
		s.events = strings.Fields(events)
		subs = append(subs, s)
	}
	return subs, rows.Err()
}

// sqlTx is the *sql.Tx under a write transaction, which the outbox's
// jobs join.
func sqlTx(tx txn) *sql.Tx {
	if g, ok := tx.(*groupTx); ok {
		return g.tx
	}
	return tx.(*sql.Tx)
}

// recordEvents writes the deliveries of events to the subscribers that
// want them and queues them, in tx. Every event is about conversation c.
func (db *DB) recordEvents(ctx context.Context, tx txn, subs []subscriber, c Conversation, at time.Time, events []webhooks.Payload) error {
	if len(subs) == 0 || len(events) == 0 {
		return nil
	}
	user, err := webhookUser(ctx, tx, c.SubjectID)
	if err != nil {
		return err
	}
	var ids []int64
	for _, e := range events {
		e.Timestamp = at.UTC()
		e.Data.App = webhooks.App{ID: c.AppID}
		e.Data.Conversation = webhooks.Conversation{ID: c.ID, Status: c.Status, CreatedAt: c.CreatedAt.UTC()}
		e.Data.User = user
		body, err := json.Marshal(e)
		if err != nil {
			return err
		}
		eventID := identity.NewID("evt_")
		for _, s := range subs {
			if !slices.Contains(s.events, e.Type) {
				continue
			}
			var id int64
			err := tx.QueryRowContext(ctx, `INSERT INTO webhook_deliveries (event_id, endpoint_id, event_type, payload, created_at)
				VALUES (?, ?, ?, ?, ?) RETURNING id`, eventID, s.id, e.Type, string(body), at.UnixMilli()).Scan(&id)
			if err != nil {
				return fmt.Errorf("webhook delivery: %w", err)
			}
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := db.outbox.EnqueueWebhooks(ctx, sqlTx(tx), ids); err != nil {
		return fmt.Errorf("queue webhook deliveries: %w", err)
	}
	return nil
}

// webhookUser is the conversation's user as webhooks show them: the
// email only when it was signed.
func webhookUser(ctx context.Context, tx txn, subjectID string) (webhooks.User, error) {
	var kind, userID, email string
	var signed bool
	err := tx.QueryRowContext(ctx, `SELECT kind, user_id, email, email_signed FROM subjects WHERE id = ?`, subjectID).Scan(&kind, &userID, &email, &signed)
	if err != nil {
		return webhooks.User{}, fmt.Errorf("webhook user: %w", err)
	}
	u := webhooks.User{ID: subjectID, UserID: userID, Verified: kind == KindUser}
	if signed {
		u.Email = email
	}
	return u, nil
}

// messageEvent is the message.created event of m.
func messageEvent(m Message) webhooks.Payload {
	return webhooks.Payload{Type: webhooks.MessageCreated, Data: webhooks.Data{Message: &webhooks.Message{
		ID: m.ID, Seq: m.Seq, Author: m.Author, AuthorName: m.AuthorName, Body: m.Body, CreatedAt: m.CreatedAt.UTC()}}}
}

const deliveryColumns = `d.id, d.event_id, d.endpoint_id, e.app_id, d.event_type, d.payload, d.status, d.attempts, d.response_code,
	d.response_excerpt, d.error, d.created_at, d.attempted_at`

func scanDelivery(sc interface{ Scan(...any) error }, extra ...any) (WebhookDelivery, error) {
	var d WebhookDelivery
	var payload string
	var created int64
	var attempted sql.NullInt64
	err := sc.Scan(append([]any{&d.ID, &d.EventID, &d.EndpointID, &d.AppID, &d.EventType, &payload, &d.Status, &d.Attempts, &d.ResponseCode,
		&d.ResponseExcerpt, &d.Error, &created, &attempted}, extra...)...)
	d.Payload, d.CreatedAt = []byte(payload), fromMillis(created)
	if attempted.Valid {
		d.AttemptedAt = fromMillis(attempted.Int64)
	}
	return d, err
}

// WebhookDeliveryForSending returns a delivery and its endpoint, with the
// endpoint's secrets, for an attempt. A delivery whose endpoint was
// removed is ErrNotFound.
func (db *DB) WebhookDeliveryForSending(ctx context.Context, id int64) (WebhookDelivery, WebhookEndpoint, error) {
	var endpointID string
	d, err := scanDelivery(db.read.QueryRowContext(ctx, `SELECT `+deliveryColumns+`, e.id FROM webhook_deliveries d
		JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = ?`, id), &endpointID)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookDelivery{}, WebhookEndpoint{}, ErrNotFound
	}
	if err != nil {
		return WebhookDelivery{}, WebhookEndpoint{}, fmt.Errorf("store: webhook delivery: %w", err)
	}
	e, err := db.WebhookEndpointForSending(ctx, d.AppID, endpointID)
	return d, e, err
}

// WebhookAttempt is how one attempt to deliver went.
type WebhookAttempt struct {
	At        time.Time
	Delivered bool
	// Final says no attempt follows a failure: the queue gave up, or the
	// endpoint is disabled.
	Final        bool
	ResponseCode int
	Excerpt      string
	Error        string
	// DisableAfter is how long an endpoint may keep failing before it is
	// disabled.
	DisableAfter time.Duration
}

// RecordWebhookAttempt records an attempt on its delivery and on the
// endpoint's run of failures. When that run has lasted DisableAfter, the
// endpoint is disabled, and disabled reports it (this once), so its owners
// can be told.
func (db *DB) RecordWebhookAttempt(ctx context.Context, id int64, a WebhookAttempt) (disabled bool, err error) {
	status := DeliveryDelivered
	switch {
	case a.Delivered:
	case a.Final:
		status = DeliveryFailed
	default:
		status = DeliveryRetrying
	}
	now := a.At.UnixMilli()
	// In the group commit: the attempts of many deliveries share a commit
	// (on SQLite, one fsync), as messages do.
	err = db.group(ctx, func(ctx context.Context, tx txn) error {
		disabled = false
		var endpointID string
		err := tx.QueryRowContext(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, response_code = ?, response_excerpt = ?,
			error = ?, attempted_at = ? WHERE id = ? RETURNING endpoint_id`,
			status, a.ResponseCode, a.Excerpt, a.Error, now, id).Scan(&endpointID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if a.Delivered {
			_, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?`, endpointID)
			return err
		}
		var since int64
		if err := tx.QueryRowContext(ctx, `UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, ?) WHERE id = ? RETURNING failing_since`,
			now, endpointID).Scan(&since); err != nil {
			return err
		}
		if now-since < a.DisableAfter.Milliseconds() {
			return nil
		}
		reason := fmt.Sprintf("every delivery failed from %s to %s; the last error: %s",
			fromMillis(since).UTC().Format(time.RFC3339), a.At.UTC().Format(time.RFC3339), a.Error)
		res, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ? WHERE id = ? AND disabled_at IS NULL`,
			now, reason, endpointID)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		disabled = n > 0
		// The delivery goes no further; the others waiting find the
		// endpoint disabled when their turn comes.
		if _, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'failed' WHERE id = ?`, id); err != nil || !disabled {
			return err
		}
		return db.tellEndpointOff(ctx, sqlTx(tx), endpointID)
	})
	if err != nil {
		return false, fmt.Errorf("store: record webhook attempt: %w", err)
	}
	return disabled, nil
}

// WebhookDeliveries returns the most recent deliveries to one of the app's
// endpoints, newest first.
func (db *DB) WebhookDeliveries(ctx context.Context, appID, endpointID string, limit int) ([]WebhookDelivery, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d
		JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.endpoint_id = ? AND e.app_id = ? ORDER BY d.id DESC LIMIT ?`,
		endpointID, appID, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: webhook deliveries: %w", err)
	}
	defer rows.Close()
	out := []WebhookDelivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("store: webhook deliveries: %w", err)
		}
		out = append(out, d)
	}
	return out, rowsErr(rows)
}

// ErrDeliveryUnderway refuses to send again a delivery that is still
// being tried.
var ErrDeliveryUnderway = &InputError{"this delivery is still being tried; it can be sent again once it succeeded or failed"}

// ResendWebhookDelivery sends a finished delivery to one of the app's
// endpoints again, with its webhook-id, so a receiver that already has it
// can tell.
func (db *DB) ResendWebhookDelivery(ctx context.Context, appID, endpointID string, id int64) error {
	if db.outbox == nil {
		return errors.New("store: no outbox to send webhooks through")
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT d.status FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
			WHERE d.id = ? AND d.endpoint_id = ? AND e.app_id = ?`+db.forUpdate(), id, endpointID, appID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if status != DeliveryDelivered && status != DeliveryFailed {
			return ErrDeliveryUnderway
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'pending' WHERE id = ?`, id); err != nil {
			return err
		}
		return db.outbox.EnqueueWebhooks(ctx, tx, []int64{id})
	})
	if err != nil {
		return fmt.Errorf("store: resend webhook delivery: %w", err)
	}
	return nil
}

// WebhookQueueDepth counts the deliveries waiting to be sent or retried.
func (db *DB) WebhookQueueDepth(ctx context.Context) (int64, error) {
	var n int64
	err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'retrying')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: webhook queue depth: %w", err)
	}
	return n, nil
}

// PruneWebhookDeliveries deletes the finished deliveries made before
// before, and returns how many.
func (db *DB) PruneWebhookDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND created_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: prune webhook deliveries: %w", err)
	}
	return res.RowsAffected()
}

// tellEndpointOff queues, in tx, the e-mails that tell each member of the
// endpoint's app that it was turned off.
func (db *DB) tellEndpointOff(ctx context.Context, tx *sql.Tx, endpointID string) error {
	if db.outbox == nil {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT m.app_id, m.owner_id FROM app_members m JOIN webhook_endpoints e ON e.app_id = m.app_id
		WHERE e.id = ? ORDER BY m.owner_id`, endpointID)
	if err != nil {
		return err
	}
	defer rows.Close()
	var mails []MailJob
	for rows.Next() {
		m := MailJob{Kind: MailEndpointOff, EndpointID: endpointID}
		if err := rows.Scan(&m.AppID, &m.OwnerID); err != nil {
			return err
		}
		mails = append(mails, m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return db.outbox.EnqueueMail(ctx, tx, mails)
}
