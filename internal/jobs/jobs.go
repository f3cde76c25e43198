// Package jobs is Parley's durable work queue: River (riverqueue/river),
// with its tables in Parley's database (SQLite or PostgreSQL), delivers
// webhooks with retries.
//
// A job is added in the transaction of the write it follows from (the
// store's outbox calls Enqueue), so it exists exactly when that write
// committed; River then runs it on whichever node fetches it first, one
// node at a time, and tries it again on failure.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
)

// Timing of attempts.
const (
	// attemptTimeout bounds one attempt, the 10 s HTTP request and the
	// bookkeeping around it. River cancels the attempt after it.
	attemptTimeout = 15 * time.Second
	// rescueAfter is when River takes an attempt still marked running
	// (its node died during it) as lost and schedules it again. It must
	// exceed attemptTimeout, or an attempt still under way could be
	// started a second time beside itself; River's rescuer looks every
	// 30 s, and the retry comes 5 s later, so a lost attempt runs again
	// within a minute.
	rescueAfter = 20 * time.Second
	// pollEvery is how often a node looks for jobs that became due when
	// nothing told it (on SQLite, and on PostgreSQL besides LISTEN).
	pollEvery = 500 * time.Millisecond
	// fetchCooldown is the least time between two fetches of a node.
	fetchCooldown = 25 * time.Millisecond
	// DefaultDisableAfter is how long an endpoint may fail every delivery
	// before it is disabled.
	DefaultDisableAfter = 5 * 24 * time.Hour
	// keepDeliveries is how long finished deliveries stay in the
	// dashboard's log.
	keepDeliveries = 14 * 24 * time.Hour
)

// retrySchedule is the wait after each failed attempt, as the Standard
// Webhooks specification suggests: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
// 10 h, so the eighth and last attempt comes about 27.6 hours after the
// first (at least 24.8 hours with the ±10% jitter).
var retrySchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// maxAttempts is the first attempt and one per wait.
var maxAttempts = len(retrySchedule) + 1

// Config is what the queue needs.
type Config struct {
	Store *store.DB
	// DatabaseURL is the PostgreSQL database's URL, where River gets
	// connections of its own; empty on SQLite, where River shares the
	// store's one write connection.
	DatabaseURL string
	// Guard is where webhooks may be sent (serve --webhook-allow).
	Guard webhooks.Guard
	// DisableAfter is how long an endpoint may fail every delivery
	// before it is disabled; 0 is DefaultDisableAfter.
	DisableAfter time.Duration
	// Mail sends e-mail through the operator's SMTP server (serve
	// --smtp-url); nil turns e-mail off.
	Mail *mail.Sender
	// EmailWaits are how long a message may go unseen before it is
	// e-mailed, unless its app says otherwise.
	EmailWaits store.EmailWaits
	// PublicURL is Parley's origin, for the links in e-mails.
	PublicURL string
	Log       *slog.Logger
}

// Queue runs and queues the jobs.
type Queue struct {
	cfg    Config
	client *river.Client[*sql.Tx]
	http   *http.Client
	// closers release River's own PostgreSQL connections.
	closers []func()
	// attempts counts this node's webhook attempts by outcome.
	attempts struct{ delivered, failed, refused atomic.Int64 }
	// mails counts this node's e-mails.
	mails    struct{ sent, failed atomic.Int64 }
	stopOnce sync.Once
}

// Attempts are this node's webhook attempts since it started, by
// outcome: delivered (a 2xx), failed, or refused (the guard refused the
// address before any request).
func (q *Queue) Attempts() (delivered, failed, refused int64) {
	return q.attempts.delivered.Load(), q.attempts.failed.Load(), q.attempts.refused.Load()
}

// Open makes the queue; Start starts working it. Jobs can be added
// before.
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	if cfg.DisableAfter <= 0 {
		cfg.DisableAfter = DefaultDisableAfter
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{cfg: cfg, http: newHTTPClient(cfg.Guard)}
	driver, err := q.driver(ctx)
	if err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &deliverWorker{q: q})
	river.AddWorker(workers, &pruneWorker{q: q})
	river.AddWorker(workers, &mailWorker{q: q})
	river.AddWorker(workers, &sweepWorker{q: q})
	periodic := []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return pruneArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true})}
	// A node fetches up to a queue's free workers at a time, at most once
	// per fetchCooldown: 50 workers and 25 ms let it start 2,000
	// deliveries a second, where 20 and River's default 100 ms capped it
	// near 200 (make bench, workload 8).
	queues := map[string]river.QueueConfig{webhookQueue: {MaxWorkers: 50}, river.QueueDefault: {MaxWorkers: 2}}
	if cfg.Mail != nil {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(sweepEvery),
			func() (river.JobArgs, *river.InsertOpts) { return sweepArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true}))
		queues[mailQueue] = river.QueueConfig{MaxWorkers: 4}
	}
	q.client, err = river.NewClient(driver, &river.Config{
		Queues:               queues,
		Workers:              workers,
		JobTimeout:           attemptTimeout,
		RescueStuckJobsAfter: rescueAfter,
		FetchPollInterval:    pollEvery,
		FetchCooldown:        fetchCooldown,
		MaxAttempts:          maxAttempts,
		RetryPolicy:          retryPolicy{},
		PeriodicJobs:         periodic,
		// River logs what goes wrong; what goes well is in the metrics.
		Logger: slog.New(warnings{cfg.Log.Handler()}),
	})
	if err != nil {
		q.close()
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return q, nil
}

// driver is River's access to the database: on SQLite the store's write
// connection (SQLite has one writer per file, and River's jobs join the
// store's transactions); on PostgreSQL a small pool of River's own,
// without the store's rewriting of "?" placeholders (River's SQL uses "?"
// as a JSON operator), and a connection that LISTENs, so that a job added
// on one node wakes the others at once.
func (q *Queue) driver(ctx context.Context) (riverdriver.Driver[*sql.Tx], error) {
	if q.cfg.DatabaseURL == "" {
		return riversqlite.New(q.cfg.Store.SQLiteWriter()), nil
	}
	pool, err := newPool(ctx, q.cfg.DatabaseURL, 4)
	if err != nil {
		return nil, err
	}
	q.closers = append(q.closers, pool.Close)
	listen, err := newPool(ctx, q.cfg.DatabaseURL, 1)
	if err != nil {
		q.close()
		return nil, err
	}
	q.closers = append(q.closers, listen.Close)
	db := stdlib.OpenDBFromPool(pool)
	q.closers = append(q.closers, func() { db.Close() })
	return riverdatabasesql.NewWithPgxListener(db, listen), nil
}

func newPool(ctx context.Context, dbURL string, conns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("jobs: the database URL %s is not one PostgreSQL understands", store.RedactURL(dbURL))
	}
	cfg.MaxConns = conns
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: connect to %s: %w", store.RedactURL(dbURL), err)
	}
	return pool, nil
}

func (q *Queue) close() {
	for i := len(q.closers) - 1; i >= 0; i-- {
		q.closers[i]()
	}
	q.closers = nil
}

// Start works the queue until Stop.
func (q *Queue) Start(ctx context.Context) error {
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	return nil
}

// Stop lets the attempts under way finish (until ctx ends; those cut off
// run again later) and releases the queue's connections. Only the first
// call does anything.
func (q *Queue) Stop(ctx context.Context) error {
	var err error
	q.stopOnce.Do(func() { err = q.stop(ctx) })
	return err
}

func (q *Queue) stop(ctx context.Context) error {
	err := q.client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = q.client.StopAndCancel(context.Background())
	}
	q.close()
	if err != nil && !errors.Is(err, river.ErrNotFound) {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// EnqueueWebhooks adds the jobs that deliver webhook_deliveries rows ids,
// in tx, the transaction that wrote them (store.Outbox).
func (q *Queue) EnqueueWebhooks(ctx context.Context, tx *sql.Tx, ids []int64) error {
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: deliverArgs{DeliveryID: id}}
	}
	if _, err := q.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("jobs: enqueue: %w", err)
	}
	return nil
}

// retryPolicy waits retrySchedule's time after each failed attempt, ±10%
// so that the retries of many deliveries that failed together (an
// endpoint down) do not all arrive at once.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	i := min(max(job.Attempt, 1), len(retrySchedule)) - 1
	wait := retrySchedule[i]
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(wait))
	return time.Now().Add(wait + jitter)
}

// warnings passes on River's warnings and errors, not its chatter.
type warnings struct{ slog.Handler }

func (w warnings) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

// keepUnsent is how long an upload waits for the message that carries it.
const keepUnsent = 24 * time.Hour

// pruneArgs is the hourly job that deletes old finished deliveries and
// uploads no message carried.
type pruneArgs struct{}

func (pruneArgs) Kind() string { return "prune_webhook_deliveries" }

type pruneWorker struct {
	river.WorkerDefaults[pruneArgs]
	q *Queue
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[pruneArgs]) error {
	_, err := w.q.cfg.Store.PruneWebhookDeliveries(ctx, time.Now().Add(-keepDeliveries))
	_, err2 := w.q.cfg.Store.PruneUnsentAttachments(ctx, time.Now().Add(-keepUnsent))
	return errors.Join(err, err2)
}
