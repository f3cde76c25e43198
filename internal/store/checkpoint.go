package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Checkpoints.
//
// SQLite's automatic checkpoint runs inside the commit that pushes the WAL
// past 1,000 pages: that commit, and every write waiting in the group
// behind it, pays for copying the WAL into the database file and an fsync
// of it. Instead the writer's automatic checkpoint is off and a goroutine
// of its own runs PASSIVE checkpoints on a connection of its own, which
// never wait for the writer or the readers: the tail of the write path
// does not stall on them. The WAL starts over from its beginning once a
// checkpoint has copied all of it and no reader still needs it.

// checkpointEvery is how often the checkpointer looks at the WAL.
const checkpointEvery = time.Second

type checkpointer struct {
	conn *sql.DB
	stop chan struct{}
	done chan struct{}
	log  *slog.Logger
	once sync.Once
}

func startCheckpointer(dsn string, every time.Duration, log *slog.Logger) (*checkpointer, error) {
	conn, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open checkpointer: %w", err)
	}
	conn.SetMaxOpenConns(1)
	c := &checkpointer{conn: conn, stop: make(chan struct{}), done: make(chan struct{}), log: log}
	go c.loop(every)
	return c, nil
}

func (c *checkpointer) loop(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if _, _, err := c.checkpoint(context.Background()); err != nil {
				c.log.Warn("wal checkpoint", "err", err)
			}
		}
	}
}

// checkpoint copies what it can of the WAL into the database without
// waiting for anyone; it returns the WAL's frames and those copied.
func (c *checkpointer) checkpoint(ctx context.Context) (walFrames, copied int, err error) {
	var busy int
	err = c.conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &walFrames, &copied)
	return walFrames, copied, err
}

func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	var err error
	c.once.Do(func() { // DB.Close may be called twice
		close(c.stop)
		<-c.done
		err = c.conn.Close()
	})
	return err
}
