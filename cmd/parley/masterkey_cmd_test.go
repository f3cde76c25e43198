package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
)

// sealedInFile returns the sealed values as stored: every identity secret
// and the key check.
func sealedInFile(t *testing.T, dbPath string) []string {
	t.Helper()
	out := queryStrings(t, dbPath, `SELECT secret FROM identity_secrets UNION ALL SELECT sealed FROM master_key_check ORDER BY 1`)
	if len(out) < 2 {
		t.Fatalf("%d sealed values in the file, want a secret and the key check at least", len(out))
	}
	return out
}

// leftInFiles returns which of values occur in the database file or its WAL.
func leftInFiles(t *testing.T, dbPath string, values []string) []string {
	t.Helper()
	var found []string
	for _, p := range []string{dbPath, dbPath + "-wal"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				found = append(found, filepath.Base(p)+": "+v[:12]+"…")
			}
		}
	}
	return found
}

func mustKeyFile(t *testing.T, path string) masterkey.Key {
	t.Helper()
	k, err := masterkey.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sessionStatus asks a running serve for a session for user_id u1 with
// the given hash.
func sessionStatus(t *testing.T, addr, appID, hash string) int {
	t.Helper()
	base := "http://" + addr
	body, _ := json.Marshal(map[string]string{"app_id": appID, "parent_origin": "https://shop.example", "user_id": "u1", "user_hash": hash})
	req, _ := http.NewRequest("POST", base+"/api/widget/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMasterKeyRotate: after rotate the old key is refused, the new key
// file (0600) opens the database, the secrets are the same (a hash made
// before still gets a session from a server on the new key), and no value
// sealed under the old key is left in the files.
func TestMasterKeyRotate(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "parley.db")
	newKey := filepath.Join(dir, "new.key")
	app, _, err := appsCreate(t, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := mustKeyFile(t, dbPath+".key")
	old := sealedInFile(t, dbPath)

	out, stderr, err := runCLI(t, "master-key", "rotate", "--db", dbPath, "--new-key-file", newKey)
	if err != nil {
		t.Fatalf("rotate: %v (stderr %q)", err, stderr)
	}
	for _, want := range []string{"1 identity secrets", "no longer opens", "mv " + newKey + " " + dbPath + ".key",
		"--master-key-file " + newKey, "backups taken before now", "Start parley serve again"} {
		if !strings.Contains(out, want) {
			t.Errorf("rotate output %q does not say %q", out, want)
		}
	}
	if m := fileMode(t, newKey); m != 0o600 {
		t.Fatalf("new key file mode = %04o, want 0600", m)
	}
	next := mustKeyFile(t, newKey)
	if strings.Contains(out+stderr, next.Encode()) || strings.Contains(out+stderr, oldKey.Encode()) {
		t.Fatal("rotate printed a key")
	}

	if _, err := store.Open(context.Background(), dbPath, oldKey); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("Open with the old key = %v, want ErrMasterKeyMismatch", err)
	}
	if _, _, err := appsCreate(t, dbPath); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("apps create with the old key file = %v, want ErrMasterKeyMismatch", err)
	}
	if found := leftInFiles(t, dbPath, old); len(found) > 0 {
		t.Fatalf("values sealed under the old key left in the files: %v", found)
	}

	addr := freeAddr(t)
	stop := startServe(t, dbPath, addr, "--master-key-file", newKey)
	code := sessionStatus(t, addr, app.AppID, identity.UserHash(app.IdentitySecret, "u1"))
	stop()
	if code != http.StatusCreated {
		t.Fatalf("session with a hash made before the rotation: %d, want 201", code)
	}
	// The next step printed: the new key file in place of the old one.
	if err := os.Rename(newKey, dbPath+".key"); err != nil {
		t.Fatal(err)
	}
	a, err := openDB(t, dbPath).App(context.Background(), app.AppID)
	if err != nil || a.IdentitySecret != app.IdentitySecret {
		t.Fatalf("after mv, the app reads back %v, %v", a, err)
	}
}

// TestMasterKeyRotateEnv: both keys from the environment; the next steps
// say to switch PARLEY_MASTER_KEY.
func TestMasterKeyRotateEnv(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "parley.db")
	cur, next := masterkey.Generate(), masterkey.Generate()
	t.Setenv(masterKeyEnv, cur.Encode())
	app, _, err := appsCreate(t, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(newMasterKeyEnv, next.Encode())
	out, _, err := runCLI(t, "master-key", "rotate", "--db", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "set "+masterKeyEnv+" to the new key (the value of "+newMasterKeyEnv+")") || strings.Contains(out, next.Encode()) {
		t.Fatalf("rotate output %q, want the step to switch %s, without the key", out, masterKeyEnv)
	}
	db, err := store.Open(context.Background(), dbPath, next)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if a, err := db.App(context.Background(), app.AppID); err != nil || a.IdentitySecret != app.IdentitySecret {
		t.Fatalf("App under the new key = %v, %v", a, err)
	}
}

// TestMasterKeyRotateRefuses: wrong current key, a running server, and
// usage mistakes change nothing and leave no new key file behind.
func TestMasterKeyRotateRefuses(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "parley.db")
	newKey := filepath.Join(dir, "new.key")
	if _, _, err := appsCreate(t, dbPath); err != nil {
		t.Fatal(err)
	}
	sealed := sealedInFile(t, dbPath)
	unchanged := func(what string) {
		t.Helper()
		if !slices.Equal(sealedInFile(t, dbPath), sealed) {
			t.Fatalf("%s: the sealed values changed", what)
		}
		if _, err := os.Stat(newKey); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the new key file was left behind", what)
		}
	}

	t.Setenv(masterKeyEnv, masterkey.Generate().Encode())
	_, _, err := runCLI(t, "master-key", "rotate", "--db", dbPath, "--new-key-file", newKey)
	if !errors.Is(err, store.ErrMasterKeyMismatch) || exitCode(err) != 1 {
		t.Fatalf("with a wrong current key: %v, want ErrMasterKeyMismatch", err)
	}
	unchanged("wrong current key")
	os.Unsetenv(masterKeyEnv)

	addr := freeAddr(t)
	stop := startServe(t, dbPath, addr)
	_, _, err = runCLI(t, "master-key", "rotate", "--db", dbPath, "--new-key-file", newKey)
	stop()
	if !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "stop parley serve") {
		t.Fatalf("while serve runs: %v, want a refusal saying to stop the server", err)
	}
	unchanged("serve running")

	missing := filepath.Join(dir, "missing.db")
	t.Setenv(newMasterKeyEnv, "")
	os.Unsetenv(newMasterKeyEnv)
	for name, args := range map[string][]string{
		"no new key":         {"master-key", "rotate", "--db", dbPath},
		"no db":              {"master-key", "rotate", "--new-key-file", newKey},
		"same key":           {"master-key", "rotate", "--db", dbPath, "--new-key-file", dbPath + ".key"},
		"missing db":         {"master-key", "rotate", "--db", missing, "--new-key-file", newKey},
		"stray arg":          {"master-key", "rotate", "--db", dbPath, "--new-key-file", newKey, "now"},
		"unknown subcommand": {"master-key", "show", "--db", dbPath},
	} {
		t.Setenv("PARLEY_DB", "")
		out, _, err := runCLI(t, args...)
		if exitCode(err) != 2 || out != "" {
			t.Errorf("%s: err = %v, stdout %q; want a usage error (exit 2) and no output", name, err, out)
		}
		unchanged(name)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("rotate created a database at a mistyped path")
	}

	bad := masterkey.Generate().Encode()[:20]
	t.Setenv(newMasterKeyEnv, bad)
	_, _, err = runCLI(t, "master-key", "rotate", "--db", dbPath)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), newMasterKeyEnv+" is not a valid master key") || strings.Contains(err.Error(), bad) {
		t.Fatalf("bad %s: %v, want exit 2 without the value", newMasterKeyEnv, err)
	}
	if _, _, err = runCLI(t, "master-key", "rotate", "--db", dbPath, "--new-key-file", newKey); exitCode(err) != 2 {
		t.Fatalf("both %s and --new-key-file: %v, want exit 2", newMasterKeyEnv, err)
	}
	unchanged("bad new key")
}

// resetFixture is a database with two apps whose key file is then lost:
// app a has a chat verified by its secret and an owner; app b a visitor's
// chat.
type resetFixture struct {
	dbPath       string
	a, b         createdApp
	verified     store.Session
	visitor      store.Session
	userConv     string
	visitorConv  string
	ownerEmail   string
	endsBefore   int64
	sealedBefore []string
}

func newResetFixture(t *testing.T) resetFixture {
	t.Helper()
	ctx := context.Background()
	f := resetFixture{dbPath: filepath.Join(t.TempDir(), "parley.db"), ownerEmail: "owner@example.com"}
	var err error
	if f.a, _, err = appsCreate(t, f.dbPath); err != nil {
		t.Fatal(err)
	}
	if f.b, _, err = appsCreate(t, f.dbPath); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "owners", "create", "--db", f.dbPath, "--email", f.ownerEmail, "--app", f.a.AppID); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, f.dbPath, mustKeyFile(t, f.dbPath+".key"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := db.App(ctx, f.a.AppID)
	if err != nil {
		t.Fatal(err)
	}
	f.verified = newSession(t, db, store.NewSession{AppID: a.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1", SecretID: a.IdentitySecretID})
	f.visitor = newSession(t, db, store.NewSession{AppID: f.b.AppID, Kind: store.KindVisitor})
	f.userConv = send(t, db, f.verified, "hello from a verified user")
	f.visitorConv = send(t, db, f.visitor, "hello from a visitor")
	if f.endsBefore, err = db.LastSessionEnd(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f.sealedBefore = sealedInFile(t, f.dbPath)
	if err := os.Remove(f.dbPath + ".key"); err != nil { // the key is lost
		t.Fatal(err)
	}
	return f
}

func newSession(t *testing.T, db *store.DB, in store.NewSession) store.Session {
	t.Helper()
	in.TTL, in.ParentOrigin = time.Hour, "https://shop.example"
	s, err := db.CreateSession(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func send(t *testing.T, db *store.DB, s store.Session, body string) string {
	t.Helper()
	p, err := db.AddUserMessage(context.Background(), store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID, ClientMsgID: body, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return p.Conversation.ID
}

type resetOutput struct {
	Apps []struct {
		AppID            string `json:"app_id"`
		Name             string `json:"name"`
		IdentitySecretID string `json:"identity_secret_id"`
		IdentitySecret   string `json:"identity_secret"`
	} `json:"apps"`
}

// TestMasterKeyResetRefusesWithoutFlag: without --forget-identity-secrets
// reset explains what it would do (exit 2) and touches nothing: no
// secret, no key file.
func TestMasterKeyResetRefusesWithoutFlag(t *testing.T) {
	f := newResetFixture(t)
	out, _, err := runCLI(t, "master-key", "reset", "--db", f.dbPath)
	if exitCode(err) != 2 || out != "" {
		t.Fatalf("reset without the flag: %v, stdout %q; want exit 2", err, out)
	}
	for _, want := range []string{"lost master key", "deletes every app's identity secrets", "--forget-identity-secrets"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if !slices.Equal(sealedInFile(t, f.dbPath), f.sealedBefore) {
		t.Fatal("the refused reset changed the sealed values")
	}
	if _, err := os.Stat(f.dbPath + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the refused reset created a key file")
	}
}

// TestMasterKeyReset: with the key lost, reset --json makes a new key file
// (0600) and a new working secret per app, printed as one JSON object. The
// old hashes are refused, the sessions they verified ended (with
// session_ends rows); the visitor's session, the conversations, the owner
// and the apps stay.
func TestMasterKeyReset(t *testing.T) {
	ctx := context.Background()
	f := newResetFixture(t)
	out, stderr, err := runCLI(t, "master-key", "reset", "--db", f.dbPath, "--forget-identity-secrets", "--json")
	if err != nil {
		t.Fatalf("reset: %v (stderr %q)", err, stderr)
	}
	var got resetOutput
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || dec.More() {
		t.Fatalf("reset --json printed %q: %v, want one JSON object", out, err)
	}
	if len(got.Apps) != 2 || got.Apps[0].AppID != f.a.AppID || got.Apps[1].AppID != f.b.AppID || got.Apps[0].Name != "Shop" {
		t.Fatalf("apps = %+v, want a and b", got.Apps)
	}
	if m := fileMode(t, f.dbPath+".key"); m != 0o600 {
		t.Fatalf("new key file mode = %04o", m)
	}
	if !strings.Contains(stderr, "back it up") {
		t.Errorf("stderr %q, want the note to back the new key file up", stderr)
	}

	db := openDB(t, f.dbPath) // with the new key file
	for _, g := range got.Apps {
		a, err := db.App(ctx, g.AppID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(g.IdentitySecretID, "isk_") || a.IdentitySecretID != g.IdentitySecretID || a.IdentitySecret != g.IdentitySecret {
			t.Fatalf("app %s: current secret %s, printed %s", g.AppID, a.IdentitySecretID, g.IdentitySecretID)
		}
		if !a.VerifyUserHash("u1", identity.UserHash(g.IdentitySecret, "u1"), time.Now()) {
			t.Fatalf("app %s: the new secret does not verify", g.AppID)
		}
	}
	for _, old := range []createdApp{f.a, f.b} {
		a, _ := db.App(ctx, old.AppID)
		if a.VerifyUserHash("u1", identity.UserHash(old.IdentitySecret, "u1"), time.Now()) {
			t.Fatalf("app %s: a hash made with the old secret still verifies", old.AppID)
		}
	}
	if _, err := db.SessionByToken(ctx, f.verified.Token); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the session the old secret verified: %v, want it ended", err)
	}
	if _, err := db.SessionByToken(ctx, f.visitor.Token); err != nil {
		t.Fatalf("the visitor's session: %v, want it alive", err)
	}
	ends, err := db.SessionEndsAfter(ctx, f.endsBefore, 10)
	if err != nil || len(ends) != 1 || ends[0].TokenHash != f.verified.TokenHash || ends[0].Reason != store.EndSecretRevoked {
		t.Fatalf("session ends = %+v, %v; want one secret_revoked end for the verified session", ends, err)
	}
	for app, conv := range map[string]string{f.a.AppID: f.userConv, f.b.AppID: f.visitorConv} {
		c, err := db.AppConversation(ctx, app, conv)
		if err != nil {
			t.Fatal(err)
		}
		if page, err := db.Messages(ctx, c, 0, 10); err != nil || len(page.Messages) != 1 {
			t.Fatalf("conversation %s after the reset: %+v, %v", conv, page, err)
		}
	}
	owner, _, err := db.OwnerByEmail(ctx, f.ownerEmail)
	if err != nil {
		t.Fatal(err)
	}
	if apps, err := db.OwnerApps(ctx, owner.ID); err != nil || len(apps) != 1 || apps[0].App.ID != f.a.AppID {
		t.Fatalf("the owner's apps after the reset: %+v, %v", apps, err)
	}
	if found := leftInFiles(t, f.dbPath, f.sealedBefore); len(found) > 0 {
		t.Fatalf("values sealed under the lost key left in the files: %v", found)
	}
	db.Close()

	// Nothing is lost any more: a second reset is refused.
	_, _, err = runCLI(t, "master-key", "reset", "--db", f.dbPath, "--forget-identity-secrets")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "nothing was lost") {
		t.Fatalf("a second reset: %v, want exit 2 saying nothing was lost", err)
	}
}

// TestMasterKeyResetKeySources: a key file that is there but does not open
// the database is not adopted (move it away, or name a new one); the text
// output lists each app's new secret id but not the secret; a key from
// PARLEY_MASTER_KEY is used as it is.
func TestMasterKeyResetKeySources(t *testing.T) {
	f := newResetFixture(t)
	stray := masterkey.Generate()
	if err := os.WriteFile(f.dbPath+".key", []byte(stray.Encode()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "master-key", "reset", "--db", f.dbPath, "--forget-identity-secrets")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "move that file away") || !strings.Contains(err.Error(), "--master-key-file") {
		t.Fatalf("reset with a non-matching key file: %v, want exit 2 saying to move it away or pass --master-key-file", err)
	}
	if !slices.Equal(sealedInFile(t, f.dbPath), f.sealedBefore) || mustKeyFile(t, f.dbPath+".key") != stray {
		t.Fatal("the refused reset changed something")
	}

	newKey := filepath.Join(filepath.Dir(f.dbPath), "new.key")
	out, _, err := runCLI(t, "master-key", "reset", "--db", f.dbPath, "--forget-identity-secrets", "--master-key-file", newKey)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), f.dbPath, mustKeyFile(t, newKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range []createdApp{f.a, f.b} {
		a, err := db.App(context.Background(), app.AppID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, app.AppID) || !strings.Contains(out, a.IdentitySecretID) || strings.Contains(out, a.IdentitySecret) {
			t.Fatalf("reset output %q, want app %s and its new secret id, not the secret", out, app.AppID)
		}
	}
	db.Close()
	for _, want := range []string{"Shop", "reveal the new identity secret", "dashboard", "deploy", "refused", newKey} {
		if !strings.Contains(out, want) {
			t.Errorf("reset output %q does not say %q", out, want)
		}
	}

	// A lost env key: the new PARLEY_MASTER_KEY is used, no file is made.
	g := newResetFixture(t)
	envKey := masterkey.Generate()
	t.Setenv(masterKeyEnv, envKey.Encode())
	if _, _, err := runCLI(t, "master-key", "reset", "--db", g.dbPath, "--forget-identity-secrets"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.dbPath + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("reset made a key file although the key came from the env")
	}
	db, err = store.Open(context.Background(), g.dbPath, envKey)
	if err != nil {
		t.Fatalf("after reset, the env key does not open the database: %v", err)
	}
	db.Close()
}
