package store

import (
	"context"
	"time"
)

// SetNow lets tests move the clock.
func (db *DB) SetNow(now func() time.Time) { db.now = now }

// GateUserMessages stops the user message writer before each transaction:
// it sends the number of messages in the batch on sizes, then waits for a
// value on gate. Call it before the first message.
func (db *DB) GateUserMessages() (sizes <-chan int, gate chan<- struct{}) {
	s, g := make(chan int), make(chan struct{})
	db.writes.beforeBatch = func(n int) {
		s <- n
		<-g
	}
	return s, g
}

// UserMessagesWaiting is how many user messages wait in the writer's queue,
// not counting a batch the writer has taken.
func (db *DB) UserMessagesWaiting() int { return len(db.writes.reqs) }

// WriterPragma reads a PRAGMA's value on the write connection.
func (db *DB) WriterPragma(name string) (int, error) {
	var v int
	err := db.write.QueryRow(`PRAGMA ` + name).Scan(&v)
	return v, err
}

// DisableWebhookEndpoint turns an endpoint off as RecordWebhookAttempt
// does once it has failed for long enough.
func (db *DB) DisableWebhookEndpoint(ctx context.Context, id, reason string) error {
	_, err := db.write.ExecContext(ctx, `UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ? WHERE id = ?`, db.now().UnixMilli(), reason, id)
	return err
}
