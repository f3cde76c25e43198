package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
)

type createdApp struct {
	AppID          string `json:"app_id"`
	IdentitySecret string `json:"identity_secret"`
}

func appsCreate(t *testing.T, dbPath string, extra ...string) (createdApp, string, error) {
	t.Helper()
	args := append([]string{"apps", "create", "--db", dbPath, "--name", "Shop", "--origin", "https://shop.example", "--json"}, extra...)
	out, stderr, err := runCLI(t, args...)
	var app createdApp
	if err == nil {
		if err := json.Unmarshal([]byte(out), &app); err != nil {
			t.Fatalf("apps create output %q: %v", out, err)
		}
	}
	return app, stderr, err
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestDefaultKeyFile is the path every fresh install takes: apps create
// makes parley.db.key (0600) beside the database, and serve, started the
// same way with no key settings, reads the sealed secret back: a hash
// made with the printed secret gets a session.
func TestDefaultKeyFile(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "parley.db")
	app, stderr, err := appsCreate(t, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, dbPath+".key"); m != 0o600 {
		t.Fatalf("key file mode = %04o, want 0600", m)
	}
	if !strings.Contains(stderr, dbPath+".key") || !strings.Contains(stderr, "back it up") {
		t.Errorf("stderr = %q, want a note that the key file was created and must be backed up", stderr)
	}
	key, err := masterkey.LoadFile(dbPath + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, key.Encode()) {
		t.Fatal("apps create printed the master key")
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	stop := startServe(t, dbPath, addr)
	defer stop()
	base := "http://" + addr
	body, _ := json.Marshal(map[string]string{"app_id": app.AppID, "parent_origin": "https://shop.example",
		"user_id": "u1", "user_hash": identity.UserHash(app.IdentitySecret, "u1")})
	req, _ := http.NewRequest("POST", base+"/api/widget/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("session with the printed secret's hash: %d, want 201", resp.StatusCode)
	}
	if m := fileMode(t, dbPath+".key"); m != 0o600 {
		t.Fatalf("key file mode after serve = %04o", m)
	}
}

// TestMasterKeyEnv: PARLEY_MASTER_KEY wins over the key file, which is
// then neither needed nor created.
func TestMasterKeyEnv(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "parley.db")
	key := masterkey.Generate()
	t.Setenv(masterKeyEnv, key.Encode())
	app, _, err := appsCreate(t, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dbPath + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file was made although %s was set: %v", masterKeyEnv, err)
	}
	db, err := store.Open(context.Background(), dbPath, key)
	if err != nil {
		t.Fatalf("the database does not open with the env key: %v", err)
	}
	a, err := db.App(context.Background(), app.AppID)
	db.Close()
	if err != nil || a.IdentitySecret != app.IdentitySecret {
		t.Fatalf("App = %v, %v", a, err)
	}
	// An explicit key file does not override the env either.
	other := filepath.Join(dir, "other.key")
	if _, _, err := appsCreate(t, dbPath, "--master-key-file", other); err != nil {
		t.Fatalf("with env and --master-key-file: %v", err)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("--master-key-file was used although the env key takes precedence")
	}

	// Without the env, the default key file is a new key: refused, and the
	// useless new file is not left behind to hide the missing one.
	os.Unsetenv(masterKeyEnv)
	_, _, err = appsCreate(t, dbPath)
	if !errors.Is(err, store.ErrMasterKeyMismatch) || !strings.Contains(err.Error(), "restore it from your backup") {
		t.Fatalf("without the env key: %v, want the mismatch error with a hint", err)
	}
	if _, err := os.Stat(dbPath + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the key file made for the refused start was left behind")
	}
}

func TestBadMasterKeyEnv(t *testing.T) {
	dir := t.TempDir()
	key := masterkey.Generate().Encode()
	for name, v := range map[string]string{
		"empty":        "",
		"short":        key[:20],
		"typo":         key[:10] + "!" + key[11:],
		"two keys":     key + " " + key,
		"hex too long": strings.Repeat("ab", 33),
	} {
		t.Setenv(masterKeyEnv, v)
		dbPath := filepath.Join(dir, name+".db")
		_, _, err := appsCreate(t, dbPath)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), masterKeyEnv+" is not a valid master key") || !strings.Contains(err.Error(), "parley keygen") {
			t.Errorf("%s: err = %v, want exit 2 saying %s is not valid", name, err, masterKeyEnv)
			continue
		}
		if v != "" && strings.Contains(err.Error(), v) {
			t.Errorf("%s: the error repeats the env value", name)
		}
		if _, err := os.Stat(dbPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a database was created with no usable key", name)
		}
	}
}

func TestMasterKeyFileFlag(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "parley.db")
	keyPath := filepath.Join(dir, "secrets", "parley.key")
	os.Mkdir(filepath.Dir(keyPath), 0o700)
	if _, _, err := appsCreate(t, dbPath, "--master-key-file", keyPath); err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, keyPath); m != 0o600 {
		t.Fatalf("key file mode = %04o", m)
	}
	if _, err := os.Stat(dbPath + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the default key file was made although --master-key-file was given")
	}
	// Every command that opens the database takes the flag.
	if _, _, err := runCLIStdin(t, "a long enough passphrase\n", "owners", "create", "--db", dbPath, "--email", "a@example.com",
		"--password-stdin", "--master-key-file", keyPath); err != nil {
		t.Fatalf("owners create: %v", err)
	}
	if _, _, err := runCLI(t, "owners", "set-password", "--db", dbPath, "--email", "a@example.com", "--master-key-file", keyPath); err != nil {
		t.Fatalf("owners set-password: %v", err)
	}
	// The default key file holds another key: refused with the clear error.
	if _, _, err := appsCreate(t, dbPath); err == nil || !strings.Contains(err.Error(), "the master key does not match this database") {
		t.Fatalf("with the wrong key file: %v", err)
	}

	os.Chmod(keyPath, 0o644)
	_, _, err := appsCreate(t, dbPath, "--master-key-file", keyPath)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+keyPath) {
		t.Fatalf("with a 0644 key file: %v, want a refusal saying to chmod 600", err)
	}
}

// TestMasterKeySourceIsLogged: serve says where its key came from, and
// never the key.
func TestMasterKeySourceIsLogged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := masterkey.Generate()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	db, err := openStore(ctx, filepath.Join(dir, "a.db"), "", log)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	fileKey, _ := masterkey.LoadFile(filepath.Join(dir, "a.db.key"))
	if out := logs.String(); !strings.Contains(out, "source=file") || !strings.Contains(out, "a.db.key") || strings.Contains(out, fileKey.Encode()) {
		t.Fatalf("log = %q, want the file source and its path, not the key", out)
	}

	logs.Reset()
	t.Setenv(masterKeyEnv, key.Encode())
	db, err = openStore(ctx, filepath.Join(dir, "b.db"), "", log)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if out := logs.String(); !strings.Contains(out, masterKeyEnv) || strings.Contains(out, key.Encode()) || strings.Count(out, "master key") != 1 {
		t.Fatalf("log = %q, want one line naming the env source, not the key", out)
	}
}

func TestKeygen(t *testing.T) {
	first, _, err := runCLI(t, "keygen")
	if err != nil {
		t.Fatal(err)
	}
	second, _, _ := runCLI(t, "keygen")
	a, err := masterkey.Parse(first)
	if err != nil || !strings.HasSuffix(first, "\n") || strings.Count(first, "\n") != 1 {
		t.Fatalf("keygen printed %q: %v", first, err)
	}
	if b, _ := masterkey.Parse(second); a == b {
		t.Fatal("keygen printed the same key twice")
	}
	if _, _, err := runCLI(t, "keygen", "extra"); exitCode(err) != 2 {
		t.Fatalf("keygen with an argument: %v", err)
	}
}
