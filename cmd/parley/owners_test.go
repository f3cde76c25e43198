package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/password"
	"github.com/parley-chat/parley/internal/store"
)

func openDB(t *testing.T, path string) *store.DB {
	t.Helper()
	// The key file the CLI made next to the database at its first start.
	key, _, err := masterkey.LoadOrCreateFile(path + ".key")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), path, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// passwordOf returns the stored hash of the owner with that email, or ""
// when there is no such owner.
func passwordOf(t *testing.T, dbPath, email string) (store.Owner, string) {
	t.Helper()
	o, hash, err := openDB(t, dbPath).OwnerByEmail(context.Background(), email)
	if errors.Is(err, store.ErrNotFound) {
		return store.Owner{}, ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return o, hash
}

func verifies(t *testing.T, hash, pw string) bool {
	t.Helper()
	ok, err := password.Verify(hash, pw)
	if err != nil {
		t.Fatalf("stored hash %q: %v", hash, err)
	}
	return ok
}

func createApp(t *testing.T, dbPath string, extra ...string) string {
	t.Helper()
	args := append([]string{"apps", "create", "--db", dbPath, "--name", "Shop", "--origin", "https://shop.example", "--json"}, extra...)
	out, _, err := runCLI(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		AppID string `json:"app_id"`
	}
	if err := json.Unmarshal([]byte(out), &app); err != nil || app.AppID == "" {
		t.Fatalf("apps create output %q: %v", out, err)
	}
	return app.AppID
}

func TestOwnersCreatePasswordFromStdin(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	// Only the line ending is trimmed: spaces inside and at the end are
	// part of the password.
	const pw = "  correct horse battery staple "
	out, _, err := runCLIStdin(t, pw+"\r\nsecond line ignored\n",
		"owners", "create", "--db", db, "--email", " Alice@Example.COM ", "--password-stdin")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "password") || strings.Contains(out, "horse") {
		t.Fatalf("output mentions the password the operator supplied: %q", out)
	}
	o, hash := passwordOf(t, db, "alice@example.com")
	if hash == "" {
		t.Fatal("no owner alice@example.com after owners create")
	}
	if !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("stored hash %q is not argon2id", hash)
	}
	if !verifies(t, hash, pw) {
		t.Fatal("the stdin password does not verify against the stored hash")
	}
	if verifies(t, hash, strings.TrimSpace(pw)) || verifies(t, hash, pw+"\r") {
		t.Fatal("the stored password is not exactly the first line without its line ending")
	}
	if o.Name != "Alice" || o.Email != "alice@example.com" {
		t.Fatalf("owner = %+v, want name Alice (from the email) and a lower-cased email", o)
	}
	if !strings.Contains(out, o.ID) {
		t.Fatalf("output %q does not show the owner id %s", out, o.ID)
	}
}

func TestOwnersCreateStdinWithoutNewline(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	if _, _, err := runCLIStdin(t, "no newline at the end", "owners", "create", "--db", db, "--email", "a@example.com", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	if _, hash := passwordOf(t, db, "a@example.com"); !verifies(t, hash, "no newline at the end") {
		t.Fatal("password without a trailing newline does not verify")
	}
}

var passwordLine = regexp.MustCompile(`(?m)^password: (\S+)$`)

func TestOwnersCreateGeneratesPassword(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	out, stderr, err := runCLI(t, "owners", "create", "--db", db, "--email", "bob@example.com", "--name", "Bob B.")
	if err != nil {
		t.Fatal(err)
	}
	m := passwordLine.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		t.Fatalf("want the password printed exactly once, got %d in %q", len(m), out)
	}
	pw := m[0][1]
	if strings.Count(out+stderr, pw) != 1 {
		t.Fatalf("the password appears more than once in %q / %q", out, stderr)
	}
	if !strings.Contains(out, "not shown again") {
		t.Fatalf("no not-shown-again note in %q", out)
	}
	o, hash := passwordOf(t, db, "bob@example.com")
	if !verifies(t, hash, pw) {
		t.Fatalf("printed password %q does not verify", pw)
	}
	if o.Name != "Bob B." {
		t.Fatalf("name = %q, want the --name given", o.Name)
	}

	// A second owner gets a different password.
	out2, _, err := runCLI(t, "owners", "create", "--db", db, "--email", "carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if m2 := passwordLine.FindStringSubmatch(out2); m2 == nil || m2[1] == pw {
		t.Fatalf("second generated password: %q", out2)
	}
}

func TestOwnersCreateJSON(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	appID := createApp(t, db)
	out, _, err := runCLI(t, "owners", "create", "--db", db, "--email", "dana@example.com", "--app", appID, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		OwnerID  string   `json:"owner_id"`
		Email    string   `json:"email"`
		Name     string   `json:"name"`
		Password string   `json:"password"`
		Apps     []string `json:"apps"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("output is not JSON: %q", out)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value: %q", out)
	}
	if got.OwnerID == "" || got.Email != "dana@example.com" || got.Name != "dana" || len(got.Apps) != 1 || got.Apps[0] != appID {
		t.Fatalf("JSON = %+v", got)
	}
	_, hash := passwordOf(t, db, "dana@example.com")
	if !verifies(t, hash, got.Password) {
		t.Fatalf("generated password %q in the JSON does not verify", got.Password)
	}
	members, err := openDB(t, db).Members(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].ID != got.OwnerID {
		t.Fatalf("members of %s = %+v, want the new owner", appID, members)
	}

	// With --password-stdin there is no password in the JSON.
	out, _, err = runCLIStdin(t, "a fine password\n", "owners", "create", "--db", db, "--email", "eve@example.com", "--password-stdin", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatal(err)
	}
	if _, ok := obj["password"]; ok {
		t.Fatalf("JSON echoes the supplied password: %q", out)
	}
}

func TestOwnersCreateRefusesBadInput(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	appID := createApp(t, db)
	if _, _, err := runCLIStdin(t, "the first password\n", "owners", "create", "--db", db, "--email", "taken@example.com", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	_, takenHash := passwordOf(t, db, "taken@example.com")

	for _, tc := range []struct {
		name, stdin, email string
		args               []string
	}{
		{"duplicate email", "", "taken@example.com", nil},
		{"duplicate email, other case", "", " TAKEN@example.com", nil},
		{"bad email", "", "not-an-email", nil},
		{"email without domain", "", "x@", nil},
		{"no email", "", "", nil},
		{"weak password", "short\n", "weak@example.com", []string{"--password-stdin"}},
		{"empty stdin", "", "empty@example.com", []string{"--password-stdin"}},
		{"overlong password", strings.Repeat("x", 300) + "\n", "long@example.com", []string{"--password-stdin"}},
		{"unknown app", "", "lost@example.com", []string{"--app", appID, "--app", "app_doesnotexist"}},
		{"name too long", "", "named@example.com", []string{"--name", strings.Repeat("n", 101)}},
		{"stray argument", "", "stray@example.com", []string{"extra"}},
	} {
		args := append([]string{"owners", "create", "--db", db, "--email", tc.email}, tc.args...)
		_, _, err := runCLIStdin(t, tc.stdin, args...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("%s: err = %v, want a usage error (exit 2)", tc.name, err)
			continue
		}
		if tc.email == "" {
			continue
		}
		if o, hash := passwordOf(t, db, tc.email); strings.Contains(tc.name, "duplicate") {
			if hash != takenHash {
				t.Errorf("%s: the existing owner's password hash changed", tc.name)
			}
		} else if hash != "" {
			t.Errorf("%s: owner %+v was created anyway", tc.name, o)
		}
	}
	members, err := openDB(t, db).Members(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 0 {
		t.Fatalf("refused commands left members on the app: %+v", members)
	}
}

func TestAppsCreateWithOwner(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	if _, _, err := runCLI(t, "owners", "create", "--db", db, "--email", "olga@example.com"); err != nil {
		t.Fatal(err)
	}
	owner, _ := passwordOf(t, db, "olga@example.com")
	appID := createApp(t, db, "--owner", "OLGA@example.com")
	members, err := openDB(t, db).Members(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].ID != owner.ID {
		t.Fatalf("members = %+v, want %s", members, owner.ID)
	}

	_, _, err = runCLI(t, "apps", "create", "--db", db, "--name", "Orphan", "--origin", "https://o.example", "--owner", "nobody@example.com")
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "nobody@example.com") {
		t.Fatalf("unknown --owner: err = %v, want a usage error naming the email", err)
	}
	if _, err := openDB(t, db).AppByName(context.Background(), "Orphan"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("app created despite the unknown owner: err = %v", err)
	}
}

// The demo owner is created once, is a member of the demo app, and gets a
// new password at every start; the old one stops working.
func TestDemoOwner(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "demo.db"))
	app, _, err := demoApp(ctx, db, "http://localhost:8081")
	if err != nil {
		t.Fatal(err)
	}
	first, err := demoOwner(ctx, db, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	second, err := demoOwner(ctx, db, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	o, hash, err := db.OwnerByEmail(ctx, demoOwnerEmail)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != demoOwnerName {
		t.Fatalf("demo owner name = %q", o.Name)
	}
	if first == second || verifies(t, hash, first) || !verifies(t, hash, second) {
		t.Fatal("the demo password is not replaced at every start")
	}
	members, err := db.Members(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].ID != o.ID {
		t.Fatalf("demo app members = %+v", members)
	}
}

func TestServeSignupFlag(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   string
		flags []string
		want  int
	}{
		{"default", "", nil, http.StatusNotFound},
		{"flag", "", []string{"--signup"}, http.StatusOK},
		{"env", "1", nil, http.StatusOK},
		{"flag overrides env", "1", []string{"--signup=false"}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PARLEY_SIGNUP", tc.env)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			stop := startServe(t, filepath.Join(t.TempDir(), "p.db"), addr, tc.flags...)
			defer stop()
			resp, err := http.Get(fmt.Sprintf("http://%s/signup", addr))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("GET /signup = %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// setPasswordFixture creates an owner with a known password and a live
// dashboard session, and returns the database path, the owner and the
// session token.
func setPasswordFixture(t *testing.T) (string, store.Owner, string) {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "p.db")
	if _, _, err := runCLIStdin(t, "the old password\n", "owners", "create", "--db", dbPath, "--email", "fay@example.com", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	o, _ := passwordOf(t, dbPath, "fay@example.com")
	s, err := openDB(t, dbPath).CreateOwnerSession(context.Background(), o.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return dbPath, o, s.Token
}

func sessionLive(t *testing.T, dbPath, token string) bool {
	t.Helper()
	_, err := openDB(t, dbPath).OwnerSessionByToken(context.Background(), token, time.Hour)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func TestOwnersSetPasswordFromStdin(t *testing.T) {
	dbPath, o, token := setPasswordFixture(t)
	if !sessionLive(t, dbPath, token) {
		t.Fatal("fixture session is not live")
	}
	const pw = " a brand new passphrase "
	out, _, err := runCLIStdin(t, pw+"\nignored\n", "owners", "set-password", "--db", dbPath, "--email", " FAY@example.com ", "--password-stdin")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "password:") || strings.Contains(out, "passphrase") {
		t.Fatalf("output mentions the password the operator supplied: %q", out)
	}
	if !strings.Contains(out, "All of this owner's dashboard sessions were ended.") || !strings.Contains(out, o.ID) {
		t.Fatalf("output %q lacks the owner id or the signed-out note", out)
	}
	_, hash := passwordOf(t, dbPath, "fay@example.com")
	if !verifies(t, hash, pw) {
		t.Fatal("the new password does not verify")
	}
	if verifies(t, hash, "the old password") {
		t.Fatal("the old password still verifies")
	}
	if sessionLive(t, dbPath, token) {
		t.Fatal("the owner's session survived the password change")
	}
}

func TestOwnersSetPasswordGenerates(t *testing.T) {
	dbPath, _, token := setPasswordFixture(t)
	out, stderr, err := runCLI(t, "owners", "set-password", "--db", dbPath, "--email", "fay@example.com")
	if err != nil {
		t.Fatal(err)
	}
	m := passwordLine.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		t.Fatalf("want the password printed exactly once, got %d in %q", len(m), out)
	}
	pw := m[0][1]
	if strings.Count(out+stderr, pw) != 1 {
		t.Fatalf("the password appears more than once in %q / %q", out, stderr)
	}
	if !strings.Contains(out, "not shown again") || !strings.Contains(out, "All of this owner's dashboard sessions were ended.") {
		t.Fatalf("missing notes in %q", out)
	}
	_, hash := passwordOf(t, dbPath, "fay@example.com")
	if !verifies(t, hash, pw) || verifies(t, hash, "the old password") {
		t.Fatalf("printed password %q does not verify, or the old one still does", pw)
	}
	if sessionLive(t, dbPath, token) {
		t.Fatal("the owner's session survived the password change")
	}
}

func TestOwnersSetPasswordJSON(t *testing.T) {
	dbPath, o, _ := setPasswordFixture(t)
	out, stderr, err := runCLI(t, "owners", "set-password", "--db", dbPath, "--email", "fay@example.com", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		OwnerID  string `json:"owner_id"`
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&got); err != nil || dec.More() {
		t.Fatalf("output is not one JSON object: %q", out)
	}
	if got.OwnerID != o.ID || got.Email != "fay@example.com" {
		t.Fatalf("JSON = %+v", got)
	}
	if !strings.Contains(stderr, "All of this owner's dashboard sessions were ended.") {
		t.Fatalf("stderr %q lacks the signed-out note", stderr)
	}
	if _, hash := passwordOf(t, dbPath, "fay@example.com"); !verifies(t, hash, got.Password) {
		t.Fatalf("password %q in the JSON does not verify", got.Password)
	}

	out, _, err = runCLIStdin(t, "yet another passphrase\n", "owners", "set-password", "--db", dbPath, "--email", "fay@example.com", "--password-stdin", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatal(err)
	}
	if _, ok := obj["password"]; ok {
		t.Fatalf("JSON echoes the supplied password: %q", out)
	}
}

func TestOwnersSetPasswordRefusesBadInput(t *testing.T) {
	dbPath, _, token := setPasswordFixture(t)
	_, before := passwordOf(t, dbPath, "fay@example.com")
	for _, tc := range []struct {
		name, stdin, email string
		args               []string
		mention            string
	}{
		{"unknown email", "", "nobody@example.com", nil, "nobody@example.com"},
		{"unknown email with stdin", "a perfectly fine password\n", "ghost@example.com", []string{"--password-stdin"}, "ghost@example.com"},
		{"weak password", "short\n", "fay@example.com", []string{"--password-stdin"}, ""},
		{"empty stdin", "", "fay@example.com", []string{"--password-stdin"}, ""},
		{"overlong password", strings.Repeat("x", 300) + "\n", "fay@example.com", []string{"--password-stdin"}, ""},
		{"no email", "", "", nil, ""},
		{"stray argument", "", "fay@example.com", []string{"extra"}, ""},
	} {
		args := append([]string{"owners", "set-password", "--db", dbPath, "--email", tc.email}, tc.args...)
		out, _, err := runCLIStdin(t, tc.stdin, args...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("%s: err = %v, want a usage error (exit 2)", tc.name, err)
			continue
		}
		if tc.mention != "" && !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.mention)
		}
		if out != "" {
			t.Errorf("%s: printed %q", tc.name, out)
		}
		if _, hash := passwordOf(t, dbPath, "fay@example.com"); hash != before {
			t.Errorf("%s: the owner's password hash changed", tc.name)
		}
	}
	if !sessionLive(t, dbPath, token) {
		t.Fatal("a refused set-password ended the owner's session")
	}

	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, _, err := runCLI(t, "owners", "set-password", "--db", missing, "--email", "fay@example.com"); err == nil || exitCode(err) != 2 {
		t.Fatalf("missing database: err = %v, want a usage error", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("set-password created a database at a mistyped path: %v", err)
	}

	if _, _, err := runCLI(t, "owners", "reset", "--db", dbPath); err == nil || exitCode(err) != 2 {
		t.Fatalf("unknown owners subcommand: err = %v, want a usage error", err)
	}
}
