package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Each test gets a database of its own on a real server: what one writes,
// another does not see.
func TestDatabasesAreSeparate(t *testing.T) {
	ctx := context.Background()
	a, b := connect(t, pgtest.URL(t)), connect(t, pgtest.URL(t))
	if _, err := a.Exec(ctx, `CREATE TABLE notes (body text NOT NULL); INSERT INTO notes VALUES ('hello')`); err != nil {
		t.Fatal(err)
	}
	var body string
	if err := a.QueryRow(ctx, `SELECT body FROM notes`).Scan(&body); err != nil || body != "hello" {
		t.Fatalf("read back %q, %v", body, err)
	}
	var n int
	if err := b.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'notes'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the other database has %d notes tables (%v), want 0", n, err)
	}
	var version string
	if err := b.QueryRow(ctx, `SHOW server_version`).Scan(&version); err != nil || version == "" {
		t.Fatalf("server_version %q, %v", version, err)
	}
	t.Logf("PostgreSQL %s", version)
}

// A database is dropped when its test ends.
func TestDatabaseIsDroppedAfterTheTest(t *testing.T) {
	var name string
	t.Run("uses one", func(t *testing.T) {
		conn := connect(t, pgtest.URL(t))
		if err := conn.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	conn := connect(t, pgtest.URL(t))
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %s still exists after its test (%d, %v)", name, n, err)
	}
}
