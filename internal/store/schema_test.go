package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

// TestMain runs the store's tests twice, on SQLite and then on
// PostgreSQL: one conformance suite for both databases. Tests of what is
// one database's alone skip the other round (onlySQLite, onlyOnce).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(bothDatabases{m})) }

type bothDatabases struct{ m *testing.M }

func (b bothDatabases) Run() int {
	code := b.m.Run()
	if testing.Short() {
		fmt.Println("store: -short skips the PostgreSQL round of the conformance suite")
		return code
	}
	backend = "postgres"
	fmt.Println("store: the same tests again, on PostgreSQL")
	return max(code, b.m.Run())
}

// backend is the database of the round running.
var backend = "sqlite"

// onlySQLite skips a test of what is SQLite's alone in the PostgreSQL
// round.
func onlySQLite(tb testing.TB) {
	tb.Helper()
	if backend != "sqlite" {
		tb.Skip("SQLite's alone")
	}
}

// onlyOnce skips a test that opens both databases itself in the second
// round.
func onlyOnce(tb testing.TB) {
	tb.Helper()
	if backend != "sqlite" {
		tb.Skip("ran in the first round")
	}
}

// column is what the two schemas must agree on about a column.
type column struct {
	Type    string // text, integer or boolean
	NotNull bool
	Key     bool // part of the primary key
}

// index is a unique constraint or index, by its columns.
type index struct {
	Columns string
	Unique  bool
	Partial bool
}

// flagColumns are SQLite INTEGER columns that hold 0 or 1: boolean on
// PostgreSQL, so that the store passes Go bools to both.
var flagColumns = []string{"apps.require_jwt", "apps.refuse_anonymous", "subjects.email_signed", "subjects.name_signed", "app_members.email_alerts"}

// TestPostgresSchemaMatchesSQLite: the PostgreSQL schema has the tables,
// columns (type, nullability, primary keys) and indexes (columns,
// uniqueness, partial or not) that SQLite has after all its migrations, so
// that one store's SQL runs on both. Only the migrations' own bookkeeping
// table is SQLite's alone.
func TestPostgresSchemaMatchesSQLite(t *testing.T) {
	onlyOnce(t)
	sqliteCols, sqliteIdx := sqliteSchema(t)
	pgCols, pgIdx := postgresSchema(t)
	delete(sqliteCols, "schema_migrations")
	delete(sqliteIdx, "schema_migrations")
	// SQLite's implicit rowid, made explicit on PostgreSQL (0003).
	delete(pgCols["identity_secrets"], "rowid")
	// River's tables are made by its own migrations for each database,
	// for its own SQL (jobs' TestRiverSchemaIsCurrent checks them).
	// Full-text search is each database's own: FTS5 tables (and their
	// shadow tables) on SQLite, GIN indexes over expressions on PostgreSQL
	// (postgresSchema leaves those out); TestSearchConversations checks
	// that both answer alike.
	for _, m := range []map[string]map[string]column{sqliteCols, pgCols} {
		for table := range m {
			if strings.HasPrefix(table, "river_") || strings.HasPrefix(table, "search_") {
				delete(m, table)
			}
		}
	}

	for _, table := range union(sqliteCols, pgCols) {
		s, p := sqliteCols[table], pgCols[table]
		if s == nil || p == nil {
			t.Errorf("table %s: on SQLite %v, on PostgreSQL %v", table, s != nil, p != nil)
			continue
		}
		for _, name := range union(s, p) {
			if s[name] != p[name] {
				t.Errorf("%s.%s: SQLite %+v, PostgreSQL %+v", table, name, s[name], p[name])
			}
		}
		if a, b := fmt.Sprint(sqliteIdx[table]), fmt.Sprint(pgIdx[table]); a != b {
			t.Errorf("%s indexes:\n  SQLite     %s\n  PostgreSQL %s", table, a, b)
		}
	}
}

func union[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sqliteSchema(t *testing.T) (map[string]map[string]column, map[string][]index) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schema.db")
	db, err := store.Open(context.Background(), path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cols := map[string]map[string]column{}
	idx := map[string][]index{}
	tables := queryStrings(t, raw, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	for _, table := range tables {
		cols[table] = map[string]column{}
		rows, err := raw.Query(`SELECT name, type, "notnull", pk FROM pragma_table_info(?)`, table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, typ string
			var notNull, pk int
			if err := rows.Scan(&name, &typ, &notNull, &pk); err != nil {
				t.Fatal(err)
			}
			typ = strings.ToLower(typ)
			if slices.Contains(flagColumns, table+"."+name) {
				typ = "boolean"
			}
			// A primary key column is NOT NULL on PostgreSQL whatever it
			// says; SQLite lets a TEXT key hold NULL unless told otherwise.
			cols[table][name] = column{Type: typ, NotNull: notNull == 1 || pk > 0, Key: pk > 0}
		}
		rows.Close()
		for _, name := range queryStrings(t, raw, `SELECT name FROM pragma_index_list(?) WHERE origin != 'pk'`, table) {
			var unique, partial int
			if err := raw.QueryRow(`SELECT "unique", partial FROM pragma_index_list(?) WHERE name = ?`, table, name).Scan(&unique, &partial); err != nil {
				t.Fatal(err)
			}
			on := queryStrings(t, raw, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, name)
			idx[table] = append(idx[table], index{Columns: strings.Join(on, ","), Unique: unique == 1, Partial: partial == 1})
		}
		sortIndexes(idx[table])
	}
	return cols, idx
}

func postgresSchema(t *testing.T) (map[string]map[string]column, map[string][]index) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	files, err := filepath.Glob("migrations/postgres/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no PostgreSQL migrations: %v", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	cols := map[string]map[string]column{}
	rows, err := conn.Query(ctx, `
		SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO',
			EXISTS (SELECT 1 FROM information_schema.table_constraints tc
				JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name)
				WHERE tc.constraint_type = 'PRIMARY KEY' AND k.table_name = c.table_name AND k.column_name = c.column_name)
		FROM information_schema.columns c WHERE c.table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, name, typ string
		var notNull, key bool
		if err := rows.Scan(&table, &name, &typ, &notNull, &key); err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "bigint", "integer":
			typ = "integer"
		case "double precision":
			typ = "real"
		case "bytea":
			typ = "blob"
		}
		if cols[table] == nil {
			cols[table] = map[string]column{}
		}
		cols[table][name] = column{Type: typ, NotNull: notNull, Key: key}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	idx := map[string][]index{}
	rows, err = conn.Query(ctx, `
		SELECT t.relname, ix.indisunique, ix.indpred IS NOT NULL,
			(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum)
		FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = 'public' AND NOT ix.indisprimary AND ix.indexprs IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, on string
		var unique, partial bool
		if err := rows.Scan(&table, &unique, &partial, &on); err != nil {
			t.Fatal(err)
		}
		idx[table] = append(idx[table], index{Columns: on, Unique: unique, Partial: partial})
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for table := range idx {
		sortIndexes(idx[table])
	}
	return cols, idx
}

func sortIndexes(ix []index) {
	slices.SortFunc(ix, func(a, b index) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
