package store_test

import (
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

// rawKeyCheck returns master_key_check.sealed as stored.
func rawKeyCheck(t *testing.T, path string) string {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var s string
	if err := raw.QueryRow(`SELECT sealed FROM master_key_check`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// sealedValues returns every sealed value in the file: the identity
// secrets and the key check.
func sealedValues(t *testing.T, path string) []string {
	t.Helper()
	out := []string{rawKeyCheck(t, path)}
	for _, s := range rawSecrets(t, path) {
		out = append(out, s)
	}
	return out
}

func sameStrings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// keyFixture is a closed database sealed under testKey: app a with a
// current and a previous secret, app b with one.
type keyFixture struct {
	path string
	a, b *store.App
}

func newKeyFixture(t *testing.T) keyFixture {
	t.Helper()
	ctx := context.Background()
	f := keyFixture{path: filepath.Join(t.TempDir(), "parley.db")}
	db, err := store.Open(ctx, f.path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := mustApp(t, db, store.ModeEnforced).App
	if _, err := db.RotateIdentitySecret(ctx, a.ID, 0); err != nil {
		t.Fatal(err)
	}
	if f.a, err = db.App(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	b := mustApp(t, db, store.ModeMonitor).App // monitor: it has an unverified claim too
	f.b = &b
	return f
}

func (f keyFixture) open(t *testing.T, key masterkey.Key) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), f.path, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestRotateMasterKey: after a rotation the old key is refused, the new
// one opens the database, every secret (previous ones included) is the
// same and still verifies the hashes made before, and no value sealed
// under the old key is left anywhere in the files.
func TestRotateMasterKey(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	f := newKeyFixture(t)
	old := sealedValues(t, f.path)
	next := masterkey.Generate()

	n, err := store.RotateMasterKey(ctx, f.path, testKey, next)
	if err != nil || n != 3 {
		t.Fatalf("RotateMasterKey = %d, %v; want 3 secrets re-sealed", n, err)
	}
	if _, err := store.Open(ctx, f.path, testKey); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("Open with the old key = %v, want ErrMasterKeyMismatch", err)
	}
	db := f.open(t, next)
	a, err := db.App(ctx, f.a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.IdentitySecret != f.a.IdentitySecret || a.IdentitySecretID != f.a.IdentitySecretID ||
		len(a.PreviousSecrets) != 1 || a.PreviousSecrets[0].Secret != f.a.PreviousSecrets[0].Secret {
		t.Fatalf("app a's secrets changed in the rotation: %s, %+v", a.IdentitySecretID, a.PreviousSecrets)
	}
	for _, secret := range []string{f.a.IdentitySecret, f.a.PreviousSecrets[0].Secret} {
		if !a.VerifyUserHash("u1", identity.UserHash(secret, "u1"), time.Now()) {
			t.Fatal("a hash made before the rotation no longer verifies")
		}
	}
	if b, err := db.App(ctx, f.b.ID); err != nil || b.IdentitySecret != f.b.IdentitySecret {
		t.Fatalf("app b after the rotation: %v", err)
	}
	for id, s := range rawSecrets(t, f.path) {
		if !masterkey.IsSealed(s) {
			t.Fatalf("secret %s is not sealed after the rotation", id)
		}
	}
	if found := fileHolds(t, f.path, old...); len(found) > 0 {
		t.Fatalf("values sealed under the old key left in the files: %v", found)
	}
	if found := fileHolds(t, f.path, sealedValues(t, f.path)...); len(found) == 0 {
		t.Fatal("the new sealed values are not found in the files either: the scan is not working")
	}
}

// TestRotateMasterKeyRefuses: a wrong current key, the same key again or
// a missing database change nothing.
func TestRotateMasterKeyRefuses(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	f := newKeyFixture(t)
	secrets, check := rawSecrets(t, f.path), rawKeyCheck(t, f.path)

	_, err := store.RotateMasterKey(ctx, f.path, masterkey.Generate(), masterkey.Generate())
	if !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("with a wrong current key: %v, want ErrMasterKeyMismatch", err)
	}
	var ie *store.InputError
	if _, err := store.RotateMasterKey(ctx, f.path, testKey, testKey); !errors.As(err, &ie) {
		t.Fatalf("with the current key as the new one: %v, want an InputError", err)
	}
	if !sameStrings(rawSecrets(t, f.path), secrets) || rawKeyCheck(t, f.path) != check {
		t.Fatal("a refused rotation changed the sealed values")
	}
	f.open(t, testKey)

	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, err := store.RotateMasterKey(ctx, missing, testKey, masterkey.Generate()); err == nil {
		t.Fatal("rotating a missing database succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("rotating a missing database created one")
	}
}

// TestMasterKeyChangeRefusesWhileOpen: while another handle (a running
// server) has the database open, neither rotation nor reset runs: the
// server would go on with the old key.
func TestMasterKeyChangeRefusesWhileOpen(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	f := newKeyFixture(t)
	secrets := rawSecrets(t, f.path)
	db := f.open(t, testKey)
	if _, err := db.App(ctx, f.a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RotateMasterKey(ctx, f.path, testKey, masterkey.Generate()); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("rotating an open database: %v, want ErrInUse", err)
	}
	if _, err := store.ResetMasterKey(ctx, f.path, masterkey.Generate()); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("resetting an open database: %v, want ErrInUse", err)
	}
	if !strings.Contains(store.ErrInUse.Error(), "stop parley serve") {
		t.Fatalf("ErrInUse = %q, want it to say to stop the server", store.ErrInUse)
	}
	if !sameStrings(rawSecrets(t, f.path), secrets) {
		t.Fatal("a refused change touched the secrets")
	}
	if a, err := db.App(ctx, f.a.ID); err != nil || a.IdentitySecret != f.a.IdentitySecret {
		t.Fatalf("the open handle after the refusals: %v", err)
	}
}

// TestResetMasterKey: with the key lost, a reset gives every app a new
// working secret under a new key, refuses the old secrets' hashes, ends
// the sessions they verified (recording why), and keeps everything else:
// visitors' sessions, conversations, owners and apps.
func TestResetMasterKey(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	f := newKeyFixture(t)
	db := f.open(t, testKey)
	verified := verifiedSession(t, db, f.a.ID, "u1", f.a.IdentitySecretID)
	byPrevious := verifiedSession(t, db, f.a.ID, "u2", f.a.PreviousSecrets[0].ID)
	visitor := mustSession(t, db, store.NewSession{AppID: f.b.ID, Kind: store.KindVisitor})
	unverified := mustSession(t, db, store.NewSession{AppID: f.b.ID, Kind: store.KindUnverified, IdentityKey: "uid:u3", UserID: "u3"})
	userMsg := mustSend(t, db, verified, "", "c1", "hello from a verified user")
	visitorMsg := mustSend(t, db, visitor, "", "c2", "hello from a visitor")
	owner := mustOwner(t, db, "owner@example.com")
	if err := db.AddMember(ctx, f.a.ID, owner.ID); err != nil {
		t.Fatal(err)
	}
	start, err := db.LastSessionEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	old := sealedValues(t, f.path)

	if _, err := store.ResetMasterKey(ctx, f.path, testKey); !errors.Is(err, store.ErrMasterKeyNotLost) {
		t.Fatalf("reset with the working key: %v, want ErrMasterKeyNotLost", err)
	}
	next := masterkey.Generate() // the old key is "lost"
	reset, err := store.ResetMasterKey(ctx, f.path, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(reset) != 2 || reset[0].AppID != f.a.ID || reset[1].AppID != f.b.ID || reset[0].AppName != "Shop" {
		t.Fatalf("reset = %+v, want apps a and b, oldest first", reset)
	}
	if _, err := store.Open(ctx, f.path, testKey); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("Open with the lost key = %v, want ErrMasterKeyMismatch", err)
	}
	db = f.open(t, next)
	for _, r := range reset {
		app, err := db.App(ctx, r.AppID)
		if err != nil {
			t.Fatal(err)
		}
		if app.IdentitySecret != r.Secret.Secret || app.IdentitySecretID != r.Secret.ID || len(app.PreviousSecrets) != 0 {
			t.Fatalf("app %s: current %s with %d previous, want only the new secret %s", r.AppID, app.IdentitySecretID, len(app.PreviousSecrets), r.Secret.ID)
		}
		if !app.VerifyUserHash("u1", identity.UserHash(r.Secret.Secret, "u1"), time.Now()) {
			t.Fatalf("app %s: the new secret does not verify", r.AppID)
		}
	}
	a, _ := db.App(ctx, f.a.ID)
	for _, secret := range []string{f.a.IdentitySecret, f.a.PreviousSecrets[0].Secret} {
		if a.VerifyUserHash("u1", identity.UserHash(secret, "u1"), time.Now()) {
			t.Fatal("a hash made with an old secret still verifies")
		}
	}
	if _, ok := a.SecretByID(f.a.IdentitySecretID, time.Now()); ok {
		t.Fatal("an old secret id (an identity JWT's kid) is still known")
	}

	if sessionAlive(t, db, verified) || sessionAlive(t, db, byPrevious) {
		t.Fatal("a session an old secret verified is still alive")
	}
	if !sessionAlive(t, db, visitor) || !sessionAlive(t, db, unverified) {
		t.Fatal("the reset ended sessions no secret verified")
	}
	ends := endsAfter(t, db, start)
	ended := map[string]bool{}
	for _, e := range ends {
		if e.Reason != store.EndSecretRevoked || e.AppID != f.a.ID {
			t.Fatalf("session end %+v, want secret_revoked for app a", e)
		}
		ended[e.TokenHash] = true
	}
	if len(ends) != 2 || !ended[verified.TokenHash] || !ended[byPrevious.TokenHash] {
		t.Fatalf("session ends = %+v, want one for each verified session", ends)
	}

	for _, p := range []store.Posted{userMsg, visitorMsg} {
		c, err := db.AppConversation(ctx, p.Conversation.AppID, p.Conversation.ID)
		if err != nil {
			t.Fatal(err)
		}
		page, err := db.Messages(ctx, c, 0, 10)
		if err != nil || len(page.Messages) != 1 || page.Messages[0].Body != p.Message.Body {
			t.Fatalf("conversation %s after the reset: %+v, %v", c.ID, page, err)
		}
	}
	if members, err := db.Members(ctx, f.a.ID); err != nil || len(members) != 1 || members[0].ID != owner.ID {
		t.Fatalf("app a's members after the reset: %+v, %v", members, err)
	}
	if found := fileHolds(t, f.path, old...); len(found) > 0 {
		t.Fatalf("values sealed under the lost key left in the files: %v", found)
	}
}

// TestResetMasterKeyMissingDatabase: a mistyped path is refused and does
// not become a new database.
func TestResetMasterKeyMissingDatabase(t *testing.T) {
	onlySQLite(t)
	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, err := store.ResetMasterKey(context.Background(), missing, masterkey.Generate()); err == nil {
		t.Fatal("resetting a missing database succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("resetting a missing database created one")
	}
}
