package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Group commit for user messages.
//
// With synchronous=FULL every commit waits for an fsync of the WAL, and
// SQLite has one writer, so committing each message in a transaction of its
// own caps the write rate at one message per fsync. Instead one goroutine
// takes the user messages waiting in a queue, up to maxBatch of them, runs
// them all in one BEGIN IMMEDIATE transaction, and answers each caller only
// after that transaction commits: one fsync for the whole group, and an
// answered message is still a durable one. Each message runs inside a
// SAVEPOINT of its own, so one that fails (a conversation out of scope, say)
// is rolled back alone and the others commit.

// maxBatch caps the messages in one transaction, so that one commit does
// not hold the write connection for long.
const maxBatch = 256

// errClosed answers messages sent after Close.
var errClosed = errors.New("store: closed")

type writer struct {
	db   *DB
	reqs chan *userRequest
	// mu guards closed and the closing of reqs: senders hold it shared, so
	// Close can never close the queue under a send.
	mu     sync.RWMutex
	closed bool
	done   chan struct{} // closed when the loop has drained the queue

	// beforeBatch, set by tests before the first message, sees the size
	// of each batch before its transaction begins.
	beforeBatch func(n int)
}

type userRequest struct {
	ctx    context.Context
	in     UserMessage
	result chan userResult // buffered: the writer never waits for a caller
}

type userResult struct {
	p   Posted
	err error
}

func (db *DB) startWriter() *writer {
	w := &writer{db: db, reqs: make(chan *userRequest, maxBatch), done: make(chan struct{})}
	go w.loop()
	return w
}

// add queues one message and waits for its commit or for ctx to end.
func (w *writer) add(ctx context.Context, in UserMessage) (Posted, error) {
	r := &userRequest{ctx: ctx, in: in, result: make(chan userResult, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return Posted{}, errClosed
	}
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		w.mu.RUnlock()
		return Posted{}, ctx.Err()
	}
	w.mu.RUnlock()
	select {
	case res := <-r.result:
		return res.p, res.err
	case <-ctx.Done():
		// The writer still runs the message unless it has not started
		// it yet; either way it is committed whole or not at all.
		return Posted{}, ctx.Err()
	}
}

// close stops new messages, lets the loop commit those already queued and
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
	batch := make([]*userRequest, 0, maxBatch)
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
func (w *writer) commit(batch []*userRequest) {
	ctx := context.Background()
	results := make([]userResult, len(batch))
	err := w.run(ctx, batch, results)
	for i, r := range batch {
		res := results[i]
		if err != nil && res.err == nil {
			res = userResult{err: err}
		}
		r.result <- res
	}
}

// run fills results and commits; an error it returns means nothing in the
// batch was committed.
func (w *writer) run(ctx context.Context, batch []*userRequest, results []userResult) error {
	tx, err := w.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback() // a no-op once committed
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i].err = err // its caller has left: not started, not committed
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT msg`); err != nil {
			return fmt.Errorf("store: savepoint: %w", err)
		}
		p, err := w.db.addUserMessage(ctx, tx, r.in)
		if err != nil {
			results[i].err = wrapTxError(err)
			// This fails if SQLite rolled back the whole transaction
			// (it does after some errors): then the batch fails.
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO msg`); err != nil {
				return fmt.Errorf("store: rollback to savepoint: %w", err)
			}
		} else {
			results[i].p = p
		}
		if _, err := tx.ExecContext(ctx, `RELEASE msg`); err != nil {
			return fmt.Errorf("store: release savepoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
