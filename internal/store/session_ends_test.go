package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

// verifiedSession makes a KindUser session vouched for by secretID.
func verifiedSession(tb testing.TB, db *store.DB, appID, userID, secretID string) store.Session {
	tb.Helper()
	return mustSession(tb, db, store.NewSession{AppID: appID, Kind: store.KindUser, IdentityKey: "uid:" + userID,
		UserID: userID, SecretID: secretID})
}

func sessionAlive(tb testing.TB, db *store.DB, s store.Session) bool {
	tb.Helper()
	_, err := db.SessionByToken(context.Background(), s.Token)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		tb.Fatal(err)
	}
	return err == nil
}

func endsAfter(tb testing.TB, db *store.DB, id int64) []store.SessionEnd {
	tb.Helper()
	ends, err := db.SessionEndsAfter(context.Background(), id, 100)
	if err != nil {
		tb.Fatal(err)
	}
	return ends
}

func TestRevokingASecretEndsItsSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeEnforced)
	old := a.App.IdentitySecretID
	byOld := verifiedSession(t, db, a.App.ID, "u1", old)
	visitor := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindVisitor})

	if _, err := db.RotateIdentitySecret(ctx, a.App.ID, 0); err != nil {
		t.Fatal(err)
	}
	app, err := db.App(ctx, a.App.ID)
	if err != nil {
		t.Fatal(err)
	}
	byNew := verifiedSession(t, db, a.App.ID, "u2", app.IdentitySecretID)
	if !sessionAlive(t, db, byOld) {
		t.Fatal("rotation alone ended the old secret's session; it should live until the secret is revoked")
	}
	start, err := db.LastSessionEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := db.RevokeIdentitySecret(ctx, a.App.ID, old); err != nil {
		t.Fatal(err)
	}
	if sessionAlive(t, db, byOld) {
		t.Error("the revoked secret's session still works")
	}
	if !sessionAlive(t, db, byNew) || !sessionAlive(t, db, visitor) {
		t.Error("revoking one secret ended sessions it did not vouch for")
	}
	ends := endsAfter(t, db, start)
	if len(ends) != 1 || ends[0].TokenHash != byOld.TokenHash || ends[0].AppID != a.App.ID || ends[0].Reason != store.EndSecretRevoked {
		t.Fatalf("session ends = %+v, want one secret_revoked end for the old secret's session", ends)
	}
}

func TestReplacingTheSecretEndsItsSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeEnforced)
	s := verifiedSession(t, db, a.App.ID, "u1", a.App.IdentitySecretID)
	if _, err := db.ReplaceIdentitySecret(ctx, a.App.ID); err != nil {
		t.Fatal(err)
	}
	if sessionAlive(t, db, s) {
		t.Error("rotating the secret now left its session working")
	}
	if got := endsAfter(t, db, 0); len(got) != 1 || got[0].TokenHash != s.TokenHash {
		t.Errorf("session ends = %+v, want the replaced secret's session", got)
	}
}

func TestExpiredSecretsEndTheirSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	clk := useClock(db)
	a := mustApp(t, db, store.ModeEnforced)
	s := verifiedSession(t, db, a.App.ID, "u1", a.App.IdentitySecretID)
	if _, err := db.RotateIdentitySecret(ctx, a.App.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := db.EndSessionsOfExpiredSecrets(ctx); err != nil || n != 0 {
		t.Fatalf("before expiry: ended %d, %v; want 0", n, err)
	}
	clk.add(time.Hour)
	if n, err := db.EndSessionsOfExpiredSecrets(ctx); err != nil || n != 1 {
		t.Fatalf("after expiry: ended %d, %v; want 1", n, err)
	}
	if sessionAlive(t, db, s) {
		t.Error("a session of an expired secret still works")
	}
}

func TestDisablingAnAppEndsItsSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeEnforced)
	other := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindVisitor})
	keep := mustSession(t, db, store.NewSession{AppID: other.App.ID, Kind: store.KindVisitor})

	if err := db.SetAppDisabled(ctx, a.App.ID, true); err != nil {
		t.Fatal(err)
	}
	app, err := db.App(ctx, a.App.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !app.Disabled() {
		t.Error("app not disabled")
	}
	if sessionAlive(t, db, s) || !sessionAlive(t, db, keep) {
		t.Error("disabling must end the app's sessions and only those")
	}
	ends := endsAfter(t, db, 0)
	if len(ends) != 1 || ends[0].AppID != a.App.ID || ends[0].TokenHash != "" || ends[0].Reason != store.EndAppDisabled {
		t.Fatalf("session ends = %+v, want one app-wide end", ends)
	}
	if err := db.SetAppDisabled(ctx, a.App.ID, false); err != nil {
		t.Fatal(err)
	}
	if app, _ := db.App(ctx, a.App.ID); app.Disabled() {
		t.Error("app still disabled after enabling")
	}
	if err := db.SetAppDisabled(ctx, "app_missing", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown app: err = %v, want ErrNotFound", err)
	}
}

func TestEndSession(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeEnforced)
	s := verifiedSession(t, db, a.App.ID, "u1", a.App.IdentitySecretID)
	tab2 := verifiedSession(t, db, a.App.ID, "u1", a.App.IdentitySecretID)
	if err := db.EndSession(ctx, s.Token); err != nil {
		t.Fatal(err)
	}
	if sessionAlive(t, db, s) || !sessionAlive(t, db, tab2) {
		t.Error("EndSession must end that session only")
	}
	for _, tok := range []string{s.Token, "pst_nonsense", ""} {
		if err := db.EndSession(ctx, tok); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("EndSession(%q) = %v, want ErrNotFound", tok, err)
		}
	}
	if ends := endsAfter(t, db, 0); len(ends) != 1 || ends[0].Reason != store.EndShutdown {
		t.Errorf("session ends = %+v", ends)
	}
	if n, err := db.DeleteSessionEndsBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("DeleteSessionEndsBefore = %d, %v", n, err)
	}
}

func TestJWTIDsAreSingleUse(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	clk := useClock(db)
	a := mustApp(t, db, store.ModeEnforced)
	other := mustApp(t, db, store.ModeEnforced)
	in := store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1", TTL: time.Hour,
		ParentOrigin: "https://shop.example", JWTID: "j1", JWTExpiresAt: clk.now().Add(10 * time.Minute)}
	if _, err := db.CreateSession(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSession(ctx, in); !errors.Is(err, store.ErrJWTReplayed) {
		t.Fatalf("replay: err = %v, want ErrJWTReplayed", err)
	}
	in2 := in
	in2.AppID = other.App.ID
	if _, err := db.CreateSession(ctx, in2); err != nil {
		t.Errorf("the same jti in another app: %v", err)
	}
	clk.add(11 * time.Minute)
	if n, err := db.DeleteExpiredJWTIDs(ctx); err != nil || n != 2 {
		t.Errorf("DeleteExpiredJWTIDs = %d, %v; want 2", n, err)
	}
}

func TestSessionRecordsItsSecretOnlyWhenVerified(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeMonitor)
	// A secret id sent along with an unverified claim must not tie the
	// session to the secret (and must not matter for revocation).
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUnverified, IdentityKey: "uid:u1", UserID: "u1",
		SecretID: a.App.IdentitySecretID})
	if _, err := db.ReplaceIdentitySecret(ctx, a.App.ID); err != nil {
		t.Fatal(err)
	}
	if !sessionAlive(t, db, s) {
		t.Error("an unverified session ended with a secret that never vouched for it")
	}
}

func TestSecretLookupForHashesAndJWTs(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	clk := useClock(db)
	a := mustApp(t, db, store.ModeEnforced)
	oldID, oldSecret := a.App.IdentitySecretID, a.App.IdentitySecret
	if _, err := db.RotateIdentitySecret(ctx, a.App.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	app, err := db.App(ctx, a.App.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := clk.now()
	if got, ok := app.SecretByID(app.IdentitySecretID, now); !ok || got != app.IdentitySecret {
		t.Error("current secret not found by id")
	}
	if got, ok := app.SecretByID(oldID, now); !ok || got != oldSecret {
		t.Error("previous secret within its grace period not found by id")
	}
	if _, ok := app.SecretByID(oldID, now.Add(time.Hour)); ok {
		t.Error("expired previous secret still found by id")
	}
	if _, ok := app.SecretByID("isk_unknown", now); ok {
		t.Error("unknown id found")
	}
	hash := identity.UserHash(oldSecret, "u1")
	if id, ok := app.MatchUserHash("u1", hash, now); !ok || id != oldID {
		t.Errorf("MatchUserHash = %q, %v; want the previous secret's id", id, ok)
	}
	if _, ok := app.MatchUserHash("u1", hash, now.Add(time.Hour)); ok {
		t.Error("hash of an expired secret still matches")
	}
}

// A session request checks the app and the proof before its transaction;
// a disable or a revocation that commits in between must still win, or the
// session would outlive the kill switch it raced.
func TestSessionRacingARevocationIsRefused(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeEnforced)
	checked := store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1", TTL: time.Hour,
		ParentOrigin: "https://shop.example", SecretID: a.App.IdentitySecretID, Proof: store.ProofHash}

	if _, err := db.ReplaceIdentitySecret(ctx, a.App.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSession(ctx, checked); !errors.Is(err, store.ErrSecretRevoked) {
		t.Fatalf("session of a secret revoked after the check: err = %v, want ErrSecretRevoked", err)
	}

	visitor := store.NewSession{AppID: a.App.ID, Kind: store.KindVisitor, TTL: time.Hour, ParentOrigin: "https://shop.example"}
	if err := db.SetAppDisabled(ctx, a.App.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSession(ctx, visitor); !errors.Is(err, store.ErrAppDisabled) {
		t.Fatalf("session of an app disabled after the check: err = %v, want ErrAppDisabled", err)
	}
	if err := db.SetAppDisabled(ctx, a.App.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSession(ctx, visitor); err != nil {
		t.Fatalf("after enabling again: %v", err)
	}
}
