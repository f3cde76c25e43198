package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Group commit.
//
// With synchronous=FULL every commit waits for an fsync of the WAL, and
// SQLite has one writer, so committing each write in a transaction of its
// own caps the write rate at one write per fsync. Instead the frequent
// writes (user messages, new sessions, a socket's "last seen") go to one
// goroutine that takes those waiting in a queue, up to maxBatch of them,
// runs them all in one BEGIN IMMEDIATE transaction, and answers each caller
// only after that transaction commits: one fsync for the whole group, and
// an answered write is still a durable one. Each write runs inside a
// SAVEPOINT of its own, so one that fails (a conversation out of scope, a
// replayed JWT) is rolled back alone and the others commit.
//
// A group also prepares each statement once for all its writes: parsing
// SQL was a fifth of the server's CPU under sustained writes before.

// maxBatch caps the writes in one transaction, so that one commit does not
// hold the write connection for long.
const maxBatch = 256

// errClosed answers writes sent after Close.
var errClosed = errors.New("store: closed")

type writer struct {
	db   *DB
	reqs chan *writeRequest
	// mu guards closed and the closing of reqs: senders hold it shared, so
	// Close can never close the queue under a send.
	mu     sync.RWMutex
	closed bool
	done   chan struct{} // closed when the loop has drained the queue

	// beforeBatch, set by tests before the first write, sees the size of
	// each batch before its transaction begins.
	beforeBatch func(n int)
}

// writeRequest is one write waiting for its group. run does the work in
// the group's transaction, through q for its statements.
type writeRequest struct {
	ctx  context.Context
	run  func(ctx context.Context, q *groupTx) error
	done chan error // buffered: the writer never waits for a caller
}

// groupTx is the group's transaction as the writes see it: *sql.Tx's
// methods, with each statement prepared once per group rather than once
// per write. (The statements cannot outlive the transaction: preparing one
// for good needs a second connection, and the writer has only one.)
type groupTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (q *groupTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := q.stmts[query]; ok {
		return s, nil
	}
	s, err := q.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	q.stmts[query] = s
	return s, nil
}

func (q *groupTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := q.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (q *groupTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := q.stmt(ctx, query)
	if err != nil {
		return q.tx.QueryRowContext(ctx, query, args...) // fails the same way, as a *sql.Row
	}
	return s.QueryRowContext(ctx, args...)
}

// txn is a write transaction as the statements see it: an *sql.Tx, or the
// group's transaction.
type txn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// group runs fn in the group commit and returns once its write is durable
// or has failed alone. fn runs on the writer's goroutine under a context of
// its own; ctx only decides whether it starts. A DB without a writer (the
// exclusive connection of a master key change) runs fn in a transaction of
// its own.
func (db *DB) group(ctx context.Context, fn func(ctx context.Context, tx txn) error) error {
	if db.writes == nil {
		return db.tx(ctx, func(tx *sql.Tx) error { return fn(ctx, tx) })
	}
	return db.writes.do(ctx, func(ctx context.Context, q *groupTx) error { return fn(ctx, q) })
}

func (db *DB) startWriter() *writer {
	w := &writer{db: db, reqs: make(chan *writeRequest, maxBatch), done: make(chan struct{})}
	go w.loop()
	return w
}

// do queues one write and waits for its commit or for ctx to end. When ctx
// ends first the write is either committed whole or not at all.
func (w *writer) do(ctx context.Context, run func(ctx context.Context, q *groupTx) error) error {
	r := &writeRequest{ctx: ctx, run: run, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errClosed
	}
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops new writes, lets the loop commit those already queued and
// waits for it. A DB without a writer (nil) has nothing to close.
func (w *writer) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.reqs)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *writer) loop() {
	defer close(w.done)
	batch := make([]*writeRequest, 0, maxBatch)
	for r := range w.reqs {
		batch = append(batch[:0], r)
	gather:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		if w.beforeBatch != nil {
			w.beforeBatch(len(batch))
		}
		w.commit(batch)
		clear(batch) // let the answered requests go
	}
}

// commit runs batch in one transaction and answers every request in it.
// The statements run under a context of their own, not the callers': a
// caller giving up must not interrupt the transaction the others share.
func (w *writer) commit(batch []*writeRequest) {
	ctx := context.Background()
	results := make([]error, len(batch))
	start := time.Now()
	err := w.run(ctx, batch, results)
	if err == nil {
		committed := 0
		for _, res := range results {
			if res == nil {
				committed++
			}
		}
		w.db.observeCommit(start, committed)
	}
	for i, r := range batch {
		res := results[i]
		if err != nil && res == nil {
			res = err
		}
		r.done <- res
	}
}

// run fills results and commits; an error it returns means nothing in the
// batch was committed.
func (w *writer) run(ctx context.Context, batch []*writeRequest, results []error) error {
	tx, err := w.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback() // a no-op once committed; closes the statements too
	q := &groupTx{tx: tx, stmts: make(map[string]*sql.Stmt)}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err // its caller has left: not started, not committed
			continue
		}
		if _, err := q.ExecContext(ctx, `SAVEPOINT w`); err != nil {
			return fmt.Errorf("store: savepoint: %w", err)
		}
		if err := r.run(ctx, q); err != nil {
			results[i] = wrapTxError(err)
			// This fails if SQLite rolled back the whole transaction
			// (it does after some errors): then the batch fails.
			if _, err := q.ExecContext(ctx, `ROLLBACK TO w`); err != nil {
				return fmt.Errorf("store: rollback to savepoint: %w", err)
			}
		}
		if _, err := q.ExecContext(ctx, `RELEASE w`); err != nil {
			return fmt.Errorf("store: release savepoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
