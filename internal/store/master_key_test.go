package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
)

// rawSecrets returns identity_secrets.secret as stored, by secret id.
func rawSecrets(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT id, secret FROM identity_secrets`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, s string
		if err := rows.Scan(&id, &s); err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	return out
}

// fileHolds reports which of the strings occur anywhere in the database
// file or its WAL, free pages included.
func fileHolds(t *testing.T, path string, secrets ...string) []string {
	t.Helper()
	var found []string
	for _, p := range []string{path, path + "-wal", path + "-journal"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				found = append(found, filepath.Base(p)+": "+s[:8]+"…")
			}
		}
	}
	return found
}

// TestIdentitySecretsAreSealed: secrets round-trip through App, yet the
// column holds only sealed values and no byte of the file (or its WAL)
// holds a secret, across creation, rotation, replacement and revocation.
func TestIdentitySecretsAreSealed(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	a := mustApp(t, db, store.ModeEnforced).App
	b := mustApp(t, db, store.ModeMonitor).App
	secrets := []string{a.IdentitySecret, b.IdentitySecret}
	kept, err := db.RotateIdentitySecret(ctx, a.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, kept.Secret)
	if _, err := db.RotateIdentitySecret(ctx, a.ID, 0); err != nil { // kept becomes a previous one
		t.Fatal(err)
	}
	got, _ := db.App(ctx, a.ID)
	secrets = append(secrets, got.IdentitySecret)
	if err := db.RevokeIdentitySecret(ctx, a.ID, a.IdentitySecretID); err != nil {
		t.Fatal(err)
	}
	replaced, err := db.ReplaceIdentitySecret(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, replaced.Secret)

	got, err = db.App(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.IdentitySecret != secrets[3] || len(got.PreviousSecrets) != 1 || got.PreviousSecrets[0].Secret != kept.Secret {
		t.Fatalf("app a reads back %q (previous %+v), want the secrets it was given", got.IdentitySecret, got.PreviousSecrets)
	}
	if !got.VerifyUserHash("u1", identity.UserHash(kept.Secret, "u1"), time.Now()) {
		t.Fatal("a hash made with a sealed previous secret does not verify")
	}
	if gotB, err := db.App(ctx, b.ID); err != nil || gotB.IdentitySecret != replaced.Secret {
		t.Fatalf("app b reads back %v, %v", gotB, err)
	}

	stored := rawSecrets(t, path)
	if len(stored) != 3 {
		t.Fatalf("%d secret rows, want 3 (a: current and kept; b: replaced)", len(stored))
	}
	for id, s := range stored {
		if !strings.HasPrefix(s, "v1:") {
			t.Fatalf("secret %s is stored as %q…, want the sealed v1: form", id, s[:min(8, len(s))])
		}
	}
	if found := fileHolds(t, path, secrets...); len(found) > 0 {
		t.Fatalf("plaintext secrets in the open database's files: %v", found)
	}
	db.Close()
	if found := fileHolds(t, path, secrets...); len(found) > 0 {
		t.Fatalf("plaintext secrets in the closed database's files: %v", found)
	}
	db, err = store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.App(ctx, a.ID); err != nil || got.IdentitySecret != secrets[3] {
		t.Fatalf("after reopening: %v, %v", got, err)
	}
}

// TestSealedSecretIsBoundToItsRow: a ciphertext copied over another row
// (another app's, or another secret of the same app) does not open, so
// whoever can write the file cannot move a known secret to another app.
func TestSealedSecretIsBoundToItsRow(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := mustApp(t, db, store.ModeEnforced).App
	b := mustApp(t, db, store.ModeEnforced).App
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE identity_secrets SET secret = (SELECT secret FROM identity_secrets WHERE app_id = ?) WHERE app_id = ?`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := db.App(ctx, b.ID); err == nil {
		t.Fatalf("app b loaded with app a's sealed secret: %q", got.IdentitySecret)
	}
	if _, err := db.App(ctx, a.ID); err != nil {
		t.Fatalf("app a itself: %v", err)
	}
}

// TestOpenRefusesAnotherKey: a wrong key is refused at Open with a clear
// error, whether or not the database holds secrets yet, and the database
// still opens with the right one afterwards.
func TestOpenRefusesAnotherKey(t *testing.T) {
	ctx := context.Background()
	for name, withApp := range map[string]bool{"empty": false, "with an app": true} {
		path := newLocation(t)
		db, err := store.Open(ctx, path, testKey)
		if err != nil {
			t.Fatal(err)
		}
		var appID string
		if withApp {
			appID = mustApp(t, db, store.ModeEnforced).App.ID
		}
		db.Close()

		_, err = store.Open(ctx, path, masterkey.Generate())
		if !errors.Is(err, store.ErrMasterKeyMismatch) || !strings.Contains(err.Error(), "the master key does not match this database") {
			t.Fatalf("%s: Open with another key = %v, want ErrMasterKeyMismatch", name, err)
		}
		db, err = store.Open(ctx, path, testKey)
		if err != nil {
			t.Fatalf("%s: reopening with the right key: %v", name, err)
		}
		if withApp {
			if _, err := db.App(ctx, appID); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		db.Close()
	}
}

// TestOpenChecksKeyWithoutCheckRow: should the check value be lost, the
// sealed secrets themselves still refuse another key.
func TestOpenChecksKeyWithoutCheckRow(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	mustApp(t, db, store.ModeEnforced)
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DELETE FROM master_key_check`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := store.Open(ctx, path, masterkey.Generate()); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("Open with another key = %v, want ErrMasterKeyMismatch", err)
	}
	db, err = store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestOpenRefusesNoKey(t *testing.T) {
	_, err := store.Open(context.Background(), newLocation(t), masterkey.Key{})
	if err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("Open with the zero key = %v, want a refusal", err)
	}
}

// TestPlaintextDatabaseIsSealedOnUpgrade builds a database as 0003 left
// it, secrets in plaintext (including the copy 0003's dropped column and a
// deleted row leave in free space), and opens it: every secret is sealed,
// still verifies, and no plaintext is left anywhere in the files.
func TestPlaintextDatabaseIsSealedOnUpgrade(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	current := "plain-current-" + identity.NewIdentitySecret()
	previous := "plain-previous-" + identity.NewIdentitySecret()
	deleted := "plain-deleted-" + identity.NewIdentitySecret()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	run := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	migration := func(name string) string {
		t.Helper()
		b, err := os.ReadFile("migrations/sqlite/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	run(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`)
	run(migration("0001_init.sql"))
	run(`INSERT INTO apps VALUES ('app_old', 'Old', 'enforced', ?, 'keyhash', 1000)`, current)
	run(migration("0002_dashboard.sql"))
	run(migration("0003_hardening.sql"))
	run(`INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0)`)
	run(`INSERT INTO identity_secrets (id, app_id, secret, created_at, retired_at) VALUES ('isk_prev', 'app_old', ?, 500, 900)`, previous)
	run(`INSERT INTO identity_secrets (id, app_id, secret, created_at, retired_at) VALUES ('isk_gone', 'app_old', ?, 400, 800)`, deleted)
	run(`DELETE FROM identity_secrets WHERE id = 'isk_gone'`)
	raw.Close()
	if found := fileHolds(t, path, current, previous, deleted); len(found) < 3 {
		t.Fatalf("the pre-0004 database should hold every plaintext secret (that is what is tested), found only %v", found)
	}

	for range 2 { // the second open finds nothing left to seal
		db, err := store.Open(ctx, path, testKey)
		if err != nil {
			t.Fatal(err)
		}
		a, err := db.App(ctx, "app_old")
		if err != nil {
			t.Fatal(err)
		}
		if a.IdentitySecret != current || len(a.PreviousSecrets) != 1 || a.PreviousSecrets[0].Secret != previous {
			t.Fatalf("upgraded secrets read back as %q, %+v", a.IdentitySecret, a.PreviousSecrets)
		}
		if !a.VerifyUserHash("u1", identity.UserHash(current, "u1"), time.Now()) {
			t.Fatal("a hash made before the upgrade no longer verifies")
		}
		for id, s := range rawSecrets(t, path) {
			if !strings.HasPrefix(s, "v1:") {
				t.Fatalf("secret %s was left unsealed", id)
			}
		}
		if found := fileHolds(t, path, current, previous, deleted); len(found) > 0 {
			t.Fatalf("plaintext left in the upgraded database's files: %v", found)
		}
		db.Close()
	}
	if _, err := store.Open(ctx, path, masterkey.Generate()); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("the upgraded database opened with another key: %v", err)
	}
}

// TestTokensAreStoredOnlyAsHashes: the bearer values Parley does not need
// to read back (API keys, widget session tokens, visitor tokens, dashboard
// session tokens) appear nowhere in the file, not even sealed: only their
// SHA-256 is kept.
func TestTokensAreStoredOnlyAsHashes(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	created := mustApp(t, db, store.ModeEnforced)
	apiKey := created.APIKey
	rotated, err := db.RotateAPIKey(ctx, created.App.ID)
	if err != nil {
		t.Fatal(err)
	}
	user := mustSession(t, db, store.NewSession{AppID: created.App.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1"})
	visitor := mustSession(t, db, store.NewSession{AppID: created.App.ID, Kind: store.KindVisitor})
	if visitor.VisitorToken == "" {
		t.Fatal("no visitor token issued")
	}
	owner := mustOwner(t, db, "o@example.com")
	osess, err := db.CreateOwnerSession(ctx, owner.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{apiKey, rotated, user.Token, visitor.Token, visitor.VisitorToken, osess.Token}
	if found := fileHolds(t, path, tokens...); len(found) > 0 {
		t.Fatalf("tokens stored in the clear: %v", found)
	}
	if found := fileHolds(t, path, identity.TokenHash(rotated), identity.TokenHash(user.Token), identity.TokenHash(osess.Token)); len(found) == 0 {
		t.Fatal("no token hash found in the files: the scan itself is not working")
	}
}
