package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgChannel is the LISTEN/NOTIFY channel of every node.
const pgChannel = "parley_events"

// Postgres is a broker over PostgreSQL's LISTEN/NOTIFY, for a cluster
// that has a database and nothing else. It listens on a connection of its
// own (a transaction-pooling bouncer would lose the LISTEN: point it at
// PostgreSQL itself or a session-pooling one) and notifies from a small
// pool, outside any transaction, after the commit. PostgreSQL keeps no
// notification for a listener that was away, so on every (re)connection
// the handler is told to resync.
type Postgres struct {
	pool      *pgxpool.Pool
	listening atomic.Bool
	cancel    context.CancelFunc
	done      chan struct{} // closed when the listener has stopped
	sent      chan struct{} // closed when the notifier has stopped
	// queue holds the events waiting for a NOTIFY: the notifier sends
	// all that wait in one, as a JSON array, so a NOTIFY (a round trip
	// and a turn at PostgreSQL's notification queue lock) carries a
	// group of commits rather than one.
	queue chan Event
	log   *slog.Logger
}

// pgQueue is how many events may wait for a NOTIFY; beyond it an event
// is dropped (and found by the other nodes' polls).
const pgQueue = 8192

// pgBatchBytes keeps a NOTIFY's payload under PostgreSQL's 8,000 bytes.
const pgBatchBytes = 7000

// pgPing is how long the listener waits for a notification before it
// checks that its connection still works: a server that vanished without
// closing the connection is noticed within this.
const pgPing = 5 * time.Second

// OpenPostgres starts listening on the database at dbURL, handing other
// nodes' events to h, and returns at once; it reconnects for as long as
// the node runs, and Ready says when it is listening.
func OpenPostgres(dbURL, node string, h Handler, log *slog.Logger) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, errors.New("broker: the database URL is not one PostgreSQL understands")
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Postgres{pool: pool, cancel: cancel, done: make(chan struct{}), sent: make(chan struct{}), queue: make(chan Event, pgQueue), log: log}
	go b.listen(ctx, cfg.ConnConfig, node, h, log)
	go b.notify(ctx)
	return b, nil
}

// notify sends the queued events, as many as fit in one NOTIFY at a time.
func (b *Postgres) notify(ctx context.Context) {
	defer close(b.sent)
	for {
		var first Event
		select {
		case <-ctx.Done():
			return
		case first = <-b.queue:
		}
		batch := [][]byte{mustEncode(first)}
		size := len(batch[0])
	gather:
		for size < pgBatchBytes {
			select {
			case e := <-b.queue:
				data := mustEncode(e)
				if size+len(data)+1 > pgBatchBytes {
					b.send(ctx, batch)
					batch, size = nil, 0
				}
				batch = append(batch, data)
				size += len(data) + 1
			default:
				break gather
			}
		}
		b.send(ctx, batch)
	}
}

func (b *Postgres) send(ctx context.Context, batch [][]byte) {
	if len(batch) == 0 {
		return
	}
	payload := "[" + string(bytes.Join(batch, []byte(","))) + "]"
	if _, err := b.pool.Exec(ctx, "SELECT pg_notify($1, $2)", pgChannel, payload); err != nil && ctx.Err() == nil {
		// Lost, not retried: the other nodes' polls find these commits.
		b.log.Warn("broker: notify", "events", len(batch), "err", err)
	}
}

// mustEncode encodes an event Publish has already checked.
func mustEncode(e Event) []byte {
	data, _ := encode(e)
	return data
}

func (b *Postgres) listen(ctx context.Context, cfg *pgx.ConnConfig, node string, h Handler, log *slog.Logger) {
	defer close(b.done)
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, cfg, node, h, log)
		b.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		log.Warn("broker: not listening to PostgreSQL; trying again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// listenOnce listens on one connection until it fails.
func (b *Postgres) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, node string, h Handler, log *slog.Logger) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgChannel); err != nil {
		return err
	}
	b.listening.Store(true)
	h.HandleResync() // whatever was notified while nobody here listened
	for {
		wctx, cancel := context.WithTimeout(ctx, pgPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			if err := conn.Ping(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		events, err := decodeBatch([]byte(n.Payload))
		if err != nil {
			log.Warn("broker: dropped events", "err", err)
			continue
		}
		for _, e := range events {
			if e.Node != node {
				h.HandleEvent(e)
			}
		}
	}
}

// Publish queues e for the next NOTIFY and returns at once.
func (b *Postgres) Publish(ctx context.Context, e Event) error {
	if _, err := encode(e); err != nil {
		return err
	}
	select {
	case b.queue <- e:
		return nil
	default:
		return errors.New("broker: too many events waiting for PostgreSQL; dropped one")
	}
}

func (b *Postgres) Ready(context.Context) error {
	if !b.listening.Load() {
		return errors.New("broker: not listening to PostgreSQL")
	}
	return nil
}

func (b *Postgres) Close() error {
	b.cancel()
	<-b.done
	<-b.sent
	b.pool.Close()
	return nil
}
