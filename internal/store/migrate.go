package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The schema's migrations, one folder per database: numbered SQL files
// that goose (pressly/goose) applies in order, each once, in a transaction
// of its own. They are append-only: a file that has run anywhere is never
// changed (beyond goose's "-- +goose Up" annotation, which is a comment).
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migrate applies the SQLite migrations that have not run. goose records
// them in schema_migrations, the table Parley's own runner kept before
// goose, so databases made by earlier versions upgrade in place.
func (db *DB) migrate(ctx context.Context) error {
	files, err := fs.Sub(migrationFiles, "migrations/sqlite")
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectCustom, db.write, files,
		goose.WithStore(versionTable{now: db.now}), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	// goose reads what is applied before it starts, so when two processes
	// open a database being upgraded (serve and a CLI command after a
	// deploy, say), both may try the same migration; SQLite runs their
	// transactions one after the other, and the second fails. It is tried
	// again only when the migration that failed is now recorded: another
	// process applied it.
	// A connection that opens while another process switches a new file to
	// WAL can be refused as busy at once, whatever the busy timeout: that
	// is tried again too, after a moment.
	for range maxMigrationRetries {
		_, err = p.Up(ctx)
		partial := new(goose.PartialError)
		if isBusy(err) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err == nil || !errors.As(err, &partial) || partial.Failed == nil || !db.migrationRecorded(ctx, partial.Failed.Source.Version) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// maxMigrationRetries bounds the retries of migrate: each one is another
// process's migration, so a handful is more than processes that start at
// once.
const maxMigrationRetries = 20

func (db *DB) migrationRecorded(ctx context.Context, version int64) bool {
	var n int
	err := db.write.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n)
	return err == nil && n > 0
}

// MigratePostgres applies the PostgreSQL migrations that have not run, in
// goose's own goose_db_version table. Nodes that start at the same moment
// take turns on a PostgreSQL advisory lock (goose's session locker), so
// each migration runs exactly once; the others find nothing to do.
func MigratePostgres(ctx context.Context, db *sql.DB) error {
	files, err := fs.Sub(migrationFiles, "migrations/postgres")
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	// Up to 5 minutes (a second's wait, 300 times) for another node's
	// migrations to finish.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// versionTable is goose's bookkeeping in Parley's schema_migrations table
// (version, applied_at in unix milliseconds), where goose would otherwise
// keep a goose_db_version table of its own.
type versionTable struct {
	now func() time.Time
}

var _ database.StoreExtender = versionTable{}

func (versionTable) Tablename() string { return "schema_migrations" }

func (versionTable) CreateVersionTable(ctx context.Context, db database.DBTxConn) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`)
	return err
}

// TableExists keeps goose from adding a version 0 row to a database whose
// table an earlier Parley made.
func (versionTable) TableExists(ctx context.Context, db database.DBTxConn) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	return n > 0, err
}

func (t versionTable) Insert(ctx context.Context, db database.DBTxConn, req database.InsertRequest) error {
	_, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, req.Version, t.now().UnixMilli())
	return err
}

func (versionTable) Delete(ctx context.Context, db database.DBTxConn, version int64) error {
	_, err := db.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = ?`, version)
	return err
}

func (versionTable) GetMigration(ctx context.Context, db database.DBTxConn, version int64) (*database.GetMigrationResult, error) {
	var at int64
	err := db.QueryRowContext(ctx, `SELECT applied_at FROM schema_migrations WHERE version = ?`, version).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %d", database.ErrVersionNotFound, version)
	}
	if err != nil {
		return nil, err
	}
	return &database.GetMigrationResult{Timestamp: time.UnixMilli(at), IsApplied: true}, nil
}

func (versionTable) GetLatestVersion(ctx context.Context, db database.DBTxConn) (int64, error) {
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, err
	}
	if !v.Valid {
		return 0, database.ErrVersionNotFound
	}
	return v.Int64, nil
}

// ListMigrations returns the applied versions, newest first.
func (versionTable) ListMigrations(ctx context.Context, db database.DBTxConn) ([]*database.ListMigrationsResult, error) {
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*database.ListMigrationsResult
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, &database.ListMigrationsResult{Version: v, IsApplied: true})
	}
	return out, rows.Err()
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	se := new(sqlite.Error)
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}
