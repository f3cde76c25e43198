package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

// Each SQLite migration runs once: a reopened database runs none again
// and records nothing new.
func TestMigrationsRunOnce(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	versions := func() string {
		t.Helper()
		raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		return fmt.Sprint(queryStrings(t, raw, `SELECT version || '@' || applied_at FROM schema_migrations WHERE version > 0 ORDER BY version`))
	}
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	first := versions()
	if n := len(queryStringsOf(t, path, `SELECT version FROM schema_migrations WHERE version > 0`)); n != 17 {
		t.Fatalf("%d migrations recorded, want 17: %s", n, first)
	}
	db, err = store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if again := versions(); again != first {
		t.Fatalf("reopening changed the migrations: %s, then %s", first, again)
	}
}

func queryStringsOf(t *testing.T, path, q string) []string {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	return queryStrings(t, raw, q)
}

// Nodes that start at the same moment migrate one PostgreSQL database
// once: each waits its turn on goose's advisory lock, and finds nothing to
// do when it gets it.
func TestPostgresMigrationsRunOnceAcrossNodes(t *testing.T) {
	onlyOnce(t)
	// Several rounds, each on a new database: without the lock the nodes
	// collide only now and then.
	for round := range 4 {
		migrateAtOnce(t, round, pgtest.URL(t), 6)
	}
}

func migrateAtOnce(t *testing.T, round int, url string, nodes int) {
	t.Helper()
	ctx := context.Background()
	errs := make([]error, nodes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg, err := pgx.ParseConfig(url)
			if err != nil {
				errs[i] = err
				return
			}
			db := stdlib.OpenDB(*cfg)
			defer db.Close()
			if err := db.PingContext(ctx); err != nil { // connected before the start
				errs[i] = err
				return
			}
			<-start
			errs[i] = store.MigratePostgres(ctx, db)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("round %d, node %d: %v", round, i, err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var applied, tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&applied); err != nil || applied != 1 {
		t.Fatalf("round %d: migration 1 recorded %d times (%v), want once", round, applied, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'messages'`).Scan(&tables); err != nil || tables != 1 {
		t.Fatalf("round %d: messages table: %d, %v", round, tables, err)
	}
}

// Processes that open one new database at the same moment all start: the
// migrations run once, and whoever finds one applied by another moves on.
func TestSQLiteMigrationsWhenProcessesStartTogether(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	for round := range 3 {
		path := filepath.Join(t.TempDir(), "parley.db")
		const procs = 4
		errs := make([]error, procs)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				db, err := store.Open(ctx, path, testKey)
				if err == nil {
					db.Close()
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, process %d: %v", round, i, err)
			}
		}
		if n := len(queryStringsOf(t, path, `SELECT version FROM schema_migrations WHERE version > 0`)); n != 17 {
			t.Fatalf("round %d: %d migrations recorded, want 17", round, n)
		}
	}
}
