package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The commands that take --db take --database-url, with the master key
// from the environment or a key file that exists.
func TestCommandsOnPostgres(t *testing.T) {
	url := pgtest.URL(t)
	key := masterkey.Generate()
	t.Setenv(masterKeyEnv, key.Encode())
	t.Chdir(t.TempDir()) // a key file made next to the URL would land here

	out, _, err := runCLI(t, "apps", "create", "--database-url", url, "--name", "Shop", "--origin", "https://shop.example", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		AppID string `json:"app_id"`
	}
	if err := json.Unmarshal([]byte(out), &app); err != nil || app.AppID == "" {
		t.Fatalf("apps create --json printed %q (%v)", out, err)
	}
	if _, _, err := runCLIStdin(t, "a long enough password 1\n", "owners", "create", "--database-url", url, "--email", "ann@example.com",
		"--password-stdin", "--app", app.AppID); err != nil {
		t.Fatal(err)
	}
	t.Setenv(databaseURLEnv, url) // the environment names the database as well as the flag
	out, _, err = runCLI(t, "apps", "show", "--app", app.AppID, "--json")
	if err != nil || !strings.Contains(out, "ann@example.com") {
		t.Fatalf("apps show from PARLEY_DATABASE_URL: %q, %v", out, err)
	}
	if _, _, err := runCLI(t, "apps", "disable", "--app", app.AppID); err != nil {
		t.Fatal(err)
	}

	next := masterkey.Generate()
	t.Setenv(newMasterKeyEnv, next.Encode())
	out, _, err = runCLI(t, "master-key", "rotate")
	if err != nil || !strings.Contains(out, "1 identity secrets") {
		t.Fatalf("master-key rotate: %q, %v", out, err)
	}
	if strings.Contains(out, "pass") && strings.Contains(out, url) {
		t.Error("the output shows the database URL with its password")
	}
	if _, _, err := runCLI(t, "apps", "list"); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("apps list with the old key: %v, want the key mismatch", err)
	}
	t.Setenv(masterKeyEnv, next.Encode())
	if out, _, err := runCLI(t, "apps", "list"); err != nil || !strings.Contains(out, app.AppID) {
		t.Fatalf("apps list with the new key: %q, %v", out, err)
	}
	if entries, _ := os.ReadDir("."); len(entries) > 0 {
		t.Errorf("commands on a URL wrote files: %v", entries)
	}
}

func TestDatabaseFlagRefusals(t *testing.T) {
	t.Setenv(dbEnv, "")
	t.Setenv(databaseURLEnv, "")
	dir := t.TempDir()
	t.Chdir(dir)
	dbFile := filepath.Join(dir, "p.db")
	url := "postgres://parley:hunter2@127.0.0.1:1/parley?sslmode=disable"
	t.Setenv(masterKeyEnv, "") // restored after the test
	os.Unsetenv(masterKeyEnv)
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"both flags":         {args: []string{"--db", dbFile, "--database-url", url}, want: "--db (a SQLite file) and --database-url"},
		"both in the env":    {env: map[string]string{dbEnv: dbFile, databaseURLEnv: url}, want: "PARLEY_DB (a SQLite file) and PARLEY_DATABASE_URL"},
		"not postgres":       {args: []string{"--database-url", "mysql://u:hunter2@h/db"}, want: "must be a PostgreSQL URL"},
		"no key for the URL": {args: []string{"--database-url", url}, want: "give the master key"},
	} {
		for k, v := range tc.env {
			os.Setenv(k, v)
		}
		for _, cmd := range [][]string{{"serve"}, {"apps", "list"}, {"apps", "create", "--name", "x", "--origin", "https://a.example"},
			{"owners", "create", "--email", "a@example.com"}, {"master-key", "rotate", "--new-key-file", "new.key"}, {"master-key", "reset", "--forget-identity-secrets"}, {"demo"}} {
			_, _, err := runCLI(t, append(cmd, tc.args...)...)
			if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %s: err = %v, want exit 2 saying %q", name, strings.Join(cmd, " "), err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: %s: the message shows the password: %v", name, strings.Join(cmd, " "), err)
			}
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("refused commands wrote files: %v", entries)
	}
}

// serve on PostgreSQL answers /readyz, and stops when told.
func TestServeOnPostgres(t *testing.T) {
	url := pgtest.URL(t)
	t.Setenv(masterKeyEnv, masterkey.Generate().Encode())
	status, stop := serveInProcess(t, freeAddr(t), "/readyz", "--database-url", url)
	if status != http.StatusOK {
		t.Fatalf("readyz = %d, want 200", status)
	}
	if err := stop(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("serve returned %v", err)
	}
}
