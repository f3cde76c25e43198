package store

import (
	"context"
	"fmt"
	"strings"
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

// SearchPlan is the database's plan for AppConversations with a search:
// SQLite's EXPLAIN QUERY PLAN, or PostgreSQL's EXPLAIN with sequential
// scans priced out, so that a test tiny table still shows whether an
// index can serve the search.
func (db *DB) SearchPlan(ctx context.Context, appID, query string) (string, error) {
	q, args, _ := db.appConversationsQuery(appID, ConversationFilter{Query: query})
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	explain := `EXPLAIN QUERY PLAN `
	if db.postgres {
		explain = `EXPLAIN `
		if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return "", err
		}
	}
	rows, err := tx.QueryContext(ctx, explain+q, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var plan []string
	for rows.Next() {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		if err := rows.Scan(vals...); err != nil {
			return "", err
		}
		for _, v := range vals {
			plan = append(plan, fmt.Sprint(*(v.(*any))))
		}
	}
	return strings.Join(plan, "\n"), rows.Err()
}
