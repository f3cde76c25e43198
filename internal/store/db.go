// Package store is Parley's SQLite storage: plain SQL, one file per table.
//
// SQLite allows one writer at a time, so the DB keeps one dedicated write
// connection (transactions start with BEGIN IMMEDIATE, so a read-then-write
// never fails half way with SQLITE_BUSY) and a pool of read-only connections
// that WAL lets run beside it. The frequent writes (messages, sessions) are
// committed in groups by one goroutine (writer.go).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/parley-chat/parley/internal/masterkey"
)

// ErrNotFound is returned when a row does not exist or is outside the
// caller's scope; the two are deliberately indistinguishable.
var ErrNotFound = errors.New("store: not found")

// DB is the storage handle shared by the whole server.
type DB struct {
	write *sql.DB
	read  *sql.DB // on PostgreSQL, the same pool as write
	// postgres says the database is PostgreSQL (postgres.go), not SQLite.
	postgres bool
	reads    readStmts // prepared on read
	// checkpoints copies the WAL into the database file in the background;
	// nil on the exclusive connection of a master key change.
	checkpoints *checkpointer
	now         func() time.Time
	// key seals the values that must be read back (identity secrets).
	key masterkey.Key
	// writes commits the frequent writes in groups (writer.go); nil on
	// the exclusive connection of a master key change.
	writes *writer
	stats  counters
	// outbox queues the deliveries of webhook events (webhook_deliveries.go).
	outbox Outbox
}

// counters are what the store has done since it opened, for metrics.
type counters struct {
	userMessages, agentMessages, sessions atomic.Int64
	// onCommit, when set, sees each commit's duration and how many writes
	// it carried (a group on SQLite, one on PostgreSQL).
	onCommit atomic.Pointer[func(time.Duration, int)]
}

// Stats are the store's counts since it opened.
type Stats struct {
	UserMessages, AgentMessages, Sessions int64
}

// Stats returns the store's counts since it opened.
func (db *DB) Stats() Stats {
	return Stats{UserMessages: db.stats.userMessages.Load(), AgentMessages: db.stats.agentMessages.Load(), Sessions: db.stats.sessions.Load()}
}

// ObserveCommits has fn called after every commit of a write, with its
// duration and the number of writes it carried.
func (db *DB) ObserveCommits(fn func(d time.Duration, writes int)) { db.stats.onCommit.Store(&fn) }

func (db *DB) observeCommit(start time.Time, writes int) {
	if fn := db.stats.onCommit.Load(); fn != nil {
		(*fn)(time.Since(start), writes)
	}
}

// Synchronous is SQLite's synchronous setting for commits, which decides
// what an acknowledged write survives.
type Synchronous string

const (
	// SyncFull fsyncs the WAL at every commit: an acked write survives a
	// crash of the process and also of the machine (power loss, kernel
	// panic). The default.
	SyncFull Synchronous = "full"
	// SyncNormal fsyncs only at checkpoints: an acked write survives a
	// crash of the process (SIGKILL, OOM), but the last ones before a power
	// loss or kernel crash can be rolled back. The database stays
	// consistent either way.
	SyncNormal Synchronous = "normal"
)

// ParseSynchronous reads a synchronous setting as an operator writes it.
func ParseSynchronous(s string) (Synchronous, error) {
	switch v := Synchronous(strings.ToLower(strings.TrimSpace(s))); v {
	case SyncFull, SyncNormal:
		return v, nil
	}
	return "", fmt.Errorf("store: synchronous must be full or normal, not %q", s)
}

// Options are the database settings an operator may choose; the zero
// value is the default.
type Options struct {
	Synchronous Synchronous // "" is SyncFull
	// Log gets what goes wrong in the background (checkpoints); nil
	// discards it.
	Log *slog.Logger
	// MaxConns caps the connections to PostgreSQL; 0 is 10.
	MaxConns int
}

// Open opens (creating if needed) the database at path with the default
// options, applies any pending migrations, checks that key is the
// database's master key and encrypts identity secrets left in plaintext by
// earlier versions.
func Open(ctx context.Context, path string, key masterkey.Key) (*DB, error) {
	return OpenWith(ctx, path, key, Options{})
}

// OpenWith is Open with options. A path that is a postgres:// URL opens
// that PostgreSQL database instead (OpenPostgres).
func OpenWith(ctx context.Context, path string, key masterkey.Key, opts Options) (*DB, error) {
	if IsPostgresURL(path) {
		return OpenPostgres(ctx, path, key, PostgresOptions{MaxConns: opts.MaxConns, Log: opts.Log})
	}
	sync := opts.Synchronous
	if sync == "" {
		sync = SyncFull
	}
	if _, err := ParseSynchronous(string(sync)); err != nil {
		return nil, err
	}
	syncPragma := "_pragma=synchronous(" + strings.ToUpper(string(sync)) + ")&"
	// The checkpointer (checkpoint.go) checkpoints instead of the writer.
	db, base, err := openWriter(ctx, path, key, syncPragma+"_pragma=wal_autocheckpoint(0)&")
	if err != nil {
		return nil, err
	}
	if err := db.setUpEncryption(ctx); err != nil {
		db.write.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", base+"?mode=ro&_pragma=query_only(1)&"+pragmas)
	if err != nil {
		db.write.Close()
		return nil, fmt.Errorf("store: open readers: %w", err)
	}
	r.SetMaxOpenConns(max(4, runtime.NumCPU()*2))
	db.read = r
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if db.checkpoints, err = startCheckpointer(base+"?"+syncPragma+pragmas, checkpointEvery, log); err != nil {
		r.Close()
		db.write.Close()
		return nil, err
	}
	db.writes = db.startWriter()
	return db, nil
}

const pragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"

// openWriter opens the write connection, its DSN starting with the extra
// pragmas given (synchronous is FULL unless they say otherwise), and
// applies pending migrations. It returns the DSN base for further
// connections.
func openWriter(ctx context.Context, path string, key masterkey.Key, extra string) (*DB, string, error) {
	if path == "" {
		return nil, "", errors.New("store: empty database path")
	}
	if key.IsZero() {
		return nil, "", errors.New("store: no master key")
	}
	if dir := filepath.Dir(path); dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, "", fmt.Errorf("store: database folder %s does not exist", dir)
		}
	}
	base := "file:" + (&url.URL{Path: path}).EscapedPath()
	if !strings.Contains(extra, "synchronous(") {
		extra += "_pragma=synchronous(FULL)&"
	}
	// The busy timeout comes before journal_mode(WAL): switching a new
	// file to WAL takes a lock that another process opening it at the same
	// moment may hold, and without a timeout yet that fails at once.
	if !strings.Contains(extra, "busy_timeout(") {
		extra = "_pragma=busy_timeout(5000)&" + extra
	}
	// secure_delete zeroes what the writer frees, so deleted rows (old
	// sessions, revoked secrets, messages) do not linger in the file.
	// temp_store keeps the savepoints' journals of the group commit in
	// memory instead of writing them to a temporary file, and a 16 MiB page
	// cache (the default is 2 MiB) keeps the writer from re-reading the
	// index pages that random conversation ids scatter its writes over.
	w, err := sql.Open("sqlite", base+"?"+extra+"_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=secure_delete(1)&_pragma=temp_store(MEMORY)&_pragma=cache_size(-16384)&"+pragmas)
	if err != nil {
		return nil, "", fmt.Errorf("store: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db := &DB{write: w, now: time.Now, key: key}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, "", err
	}
	return db, base, nil
}

// Close commits the writes already queued, then closes both pools.
func (db *DB) Close() error {
	db.writes.close()
	db.reads.close()
	if db.postgres {
		return db.write.Close()
	}
	return errors.Join(db.checkpoints.close(), db.read.Close(), db.write.Close())
}

// SQLiteWriter is the SQLite database's one write connection, for a job
// queue that keeps its tables in the same file and joins the store's
// transactions; nil on PostgreSQL.
func (db *DB) SQLiteWriter() *sql.DB {
	if db.postgres {
		return nil
	}
	return db.write
}

// Ready reports whether the database answers a query, for the node's
// readiness check.
func (db *DB) Ready(ctx context.Context) error {
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT 1`).Scan(&n); err != nil {
		return fmt.Errorf("store: ready: %w", err)
	}
	return nil
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE on SQLite) and
// commits it. On PostgreSQL a transaction that lost a deadlock or a
// serialization conflict to another one is run again.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.tx1(ctx, fn)
		if !db.postgres || attempt == maxTxAttempts || !retryablePG(err) {
			return err
		}
	}
}

// maxTxAttempts bounds the runs of a PostgreSQL transaction that keeps
// meeting conflicts.
const maxTxAttempts = 5

func (db *DB) tx1(ctx context.Context, fn func(*sql.Tx) error) error {
	start := time.Now()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return wrapTxError(err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	db.observeCommit(start, 1)
	return nil
}

// wrapTxError passes the store's own refusals through as they are and
// marks anything else as a storage failure.
func wrapTxError(err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrJWTReplayed) || errors.Is(err, ErrAppDisabled) || errors.Is(err, ErrSecretRevoked) || errors.Is(err, ErrSettingsChanged) || errors.Is(err, ErrMasterKeyMismatch) || errors.Is(err, ErrMasterKeyNotLost) || errors.As(err, new(*InputError)) || errors.As(err, new(*RateLimitedError)) {
		return err
	}
	return fmt.Errorf("store: %w", err)
}

// InputError is a refusal the caller can show to whoever sent the input.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Times are stored as Unix milliseconds.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
