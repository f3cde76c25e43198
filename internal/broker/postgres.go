package broker

import (
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
	done      chan struct{}
}

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
	b := &Postgres{pool: pool, cancel: cancel, done: make(chan struct{})}
	go b.listen(ctx, cfg.ConnConfig, node, h, log)
	return b, nil
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
		e, err := decode([]byte(n.Payload))
		if err != nil {
			log.Warn("broker: dropped an event", "err", err)
			continue
		}
		if e.Node != node {
			h.HandleEvent(e)
		}
	}
}

func (b *Postgres) Publish(ctx context.Context, e Event) error {
	data, err := encode(e)
	if err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, "SELECT pg_notify($1, $2)", pgChannel, string(data)); err != nil {
		return fmt.Errorf("broker: notify: %w", err)
	}
	return nil
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
	b.pool.Close()
	return nil
}
