package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

// clock is a settable time source for db.SetNow.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func useClock(db *store.DB) *clock {
	c := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	db.SetNow(c.now)
	return c
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustOwner(tb testing.TB, db *store.DB, email string) store.Owner {
	tb.Helper()
	o, err := db.CreateOwner(context.Background(), email, "Sam", "hash-of-"+email)
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

func wantInputError(t *testing.T, what string, err error, contains string) {
	t.Helper()
	var ie *store.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("%s: err = %v, want an InputError", what, err)
	}
	if !strings.Contains(ie.Msg, contains) {
		t.Fatalf("%s: message %q does not say %q", what, ie.Msg, contains)
	}
}

func TestCreateOwner(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	o, err := db.CreateOwner(ctx, "  Ada@Example.COM ", " Ada ", "h1")
	if err != nil {
		t.Fatal(err)
	}
	if o.Email != "ada@example.com" || o.Name != "Ada" || !strings.HasPrefix(o.ID, "own_") || o.CreatedAt.IsZero() {
		t.Fatalf("owner = %+v", o)
	}
	got, hash, err := db.OwnerByEmail(ctx, "ADA@example.com")
	if err != nil || got.ID != o.ID || hash != "h1" {
		t.Fatalf("OwnerByEmail = %+v, %q, %v", got, hash, err)
	}
	if got, err := db.Owner(ctx, o.ID); err != nil || got.Email != "ada@example.com" {
		t.Fatalf("Owner = %+v, %v", got, err)
	}

	_, err = db.CreateOwner(ctx, "ada@EXAMPLE.com", "", "h2")
	wantInputError(t, "duplicate in another case", err, "already exists")

	for _, bad := range []string{"", "ada", "@example.com", "ada@", "a da@example.com", "ada@exa\tmple.com", "ada@ex\x00.com",
		strings.Repeat("a", 250) + "@x.com"} {
		_, err := db.CreateOwner(ctx, bad, "", "h")
		var ie *store.InputError
		if !errors.As(err, &ie) {
			t.Errorf("CreateOwner(%q) err = %v, want an InputError", bad, err)
		}
	}
	_, err = db.CreateOwner(ctx, "long@example.com", strings.Repeat("n", 101), "h")
	wantInputError(t, "long name", err, "100")
	if _, err := db.CreateOwner(ctx, "ok@example.com", strings.Repeat("é", 100), "h"); err != nil {
		t.Fatalf("a 100-character name was refused: %v", err)
	}

	for _, e := range []string{"nobody@example.com", "not an email"} {
		if _, _, err := db.OwnerByEmail(ctx, e); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("OwnerByEmail(%q) err = %v, want ErrNotFound", e, err)
		}
	}
	if _, err := db.Owner(ctx, "own_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Owner(unknown) err = %v, want ErrNotFound", err)
	}
}

func TestOwnerSessionTimeouts(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	clk := useClock(db)
	o := mustOwner(t, db, "ada@example.com")
	const idle, maxAge = time.Hour, 3 * time.Hour

	s, err := db.CreateOwnerSession(ctx, o.ID, maxAge)
	if err != nil {
		t.Fatal(err)
	}
	if !identity.LooksLikeToken("pos_", s.Token) || s.TokenHash != identity.TokenHash(s.Token) || s.Owner.Email != o.Email {
		t.Fatalf("created session = %+v", s)
	}
	got, err := db.OwnerSessionByToken(ctx, s.Token, idle)
	if err != nil || got.OwnerID != o.ID || got.Owner.Email != o.Email || got.Token != "" {
		t.Fatalf("OwnerSessionByToken = %+v, %v", got, err)
	}

	// Used every 50 minutes, the session outlives the idle timeout…
	for range 3 {
		clk.add(50 * time.Minute)
		if _, err := db.OwnerSessionByToken(ctx, s.Token, idle); err != nil {
			t.Fatalf("session in use refused at %v: %v", clk.now(), err)
		}
	}
	// …but not its absolute expiry (3h after creation; now at 2h30).
	clk.add(31 * time.Minute)
	if _, err := db.OwnerSessionByToken(ctx, s.Token, idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session past its absolute expiry: err = %v, want ErrNotFound", err)
	}

	idler, _ := db.CreateOwnerSession(ctx, o.ID, maxAge)
	clk.add(30 * time.Second)
	if _, err := db.OwnerSessionByToken(ctx, idler.Token, idle); err != nil {
		t.Fatal(err)
	}
	// That use was within the minute, so it did not count as activity.
	clk.add(idle - 30*time.Second)
	if _, err := db.OwnerSessionByToken(ctx, idler.Token, idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("idle session: err = %v, want ErrNotFound", err)
	}
	fresh, _ := db.CreateOwnerSession(ctx, o.ID, maxAge)
	if n, err := db.DeleteExpiredOwnerSessions(ctx, idle); err != nil || n != 2 {
		t.Fatalf("DeleteExpiredOwnerSessions = %d, %v; want 2", n, err)
	}
	if _, err := db.OwnerSessionByToken(ctx, fresh.Token, idle); err != nil {
		t.Fatalf("the cleanup removed a live session: %v", err)
	}
}

func TestOwnerSessionRefreshesLastSeen(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	clk := useClock(db)
	o := mustOwner(t, db, "ada@example.com")
	s, _ := db.CreateOwnerSession(ctx, o.ID, time.Hour)
	clk.add(2 * time.Minute)
	got, err := db.OwnerSessionByToken(ctx, s.Token, time.Hour)
	if err != nil || !got.LastSeenAt.Equal(clk.now()) {
		t.Fatalf("last seen = %v, %v; want %v", got, err, clk.now())
	}
}

func TestOwnerSessionEnds(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	ada := mustOwner(t, db, "ada@example.com")
	bob := mustOwner(t, db, "bob@example.com")
	s1, _ := db.CreateOwnerSession(ctx, ada.ID, time.Hour)
	s2, _ := db.CreateOwnerSession(ctx, ada.ID, time.Hour)
	other, _ := db.CreateOwnerSession(ctx, bob.ID, time.Hour)

	for _, tok := range []string{"", "pos_x", s1.Token + "x", "pst_" + s1.Token[4:], "pos_" + strings.Repeat("A", 43)} {
		if _, err := db.OwnerSessionByToken(ctx, tok, time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("OwnerSessionByToken(%q) err = %v, want ErrNotFound", tok, err)
		}
		if err := db.DeleteOwnerSession(ctx, tok); err != nil {
			t.Errorf("DeleteOwnerSession(%q) = %v, want nil", tok, err)
		}
	}

	if err := db.DeleteOwnerSession(ctx, s1.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := db.OwnerSessionByToken(ctx, s1.Token, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("signed-out session: err = %v, want ErrNotFound", err)
	}
	if _, err := db.OwnerSessionByToken(ctx, s2.Token, time.Hour); err != nil {
		t.Fatalf("signing out one session ended another: %v", err)
	}

	if err := db.SetOwnerPassword(ctx, ada.ID, "new-hash"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.OwnerSessionByToken(ctx, s2.Token, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session survived a password change: err = %v", err)
	}
	if _, err := db.OwnerSessionByToken(ctx, other.Token, time.Hour); err != nil {
		t.Fatalf("ada's password change signed bob out: %v", err)
	}
	if _, hash, _ := db.OwnerByEmail(ctx, ada.Email); hash != "new-hash" {
		t.Fatalf("password hash = %q after SetOwnerPassword", hash)
	}
	if err := db.SetOwnerPassword(ctx, "own_nope", "h"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetOwnerPassword(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := db.CreateOwnerSession(ctx, "own_nope", time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateOwnerSession(unknown owner) = %v, want ErrNotFound", err)
	}
}

// A mailed link works once and not after it expires; an invitation
// makes the account a member of its app, and is refused (and kept) when
// the address got an account meanwhile.
func TestOwnerLinks(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	ann, err := db.CreateOwner(ctx, "ann@example.com", "Ann", "hash-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CreateResetLink(ctx, "nobody@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a reset link for an unknown address: %v", err)
	}
	token, o, err := db.CreateResetLink(ctx, "ANN@example.com")
	if err != nil || o.ID != ann.ID {
		t.Fatal(o, err)
	}
	db.SetNow(func() time.Time { return time.Now().Add(store.ResetLinkTTL + time.Second) })
	if _, err := db.ResetPassword(ctx, token, "hash-2"); !errors.Is(err, store.ErrLinkInvalid) {
		t.Errorf("an expired link: %v", err)
	}
	db.SetNow(time.Now)
	token, _, _ = db.CreateResetLink(ctx, ann.Email)
	if _, err := db.ResetPassword(ctx, token, "hash-2"); err != nil {
		t.Fatal(err)
	}
	if _, hash, _ := db.OwnerByEmail(ctx, ann.Email); hash != "hash-2" {
		t.Errorf("hash %q after the reset", hash)
	}
	if _, err := db.ResetPassword(ctx, token, "hash-3"); !errors.Is(err, store.ErrLinkInvalid) {
		t.Errorf("a used link: %v", err)
	}

	app, err := db.CreateApp(ctx, store.NewApp{Name: "Shop", Origins: []string{"https://shop.example"}, OwnerID: ann.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CreateInvite(ctx, app.App.ID, ann.Email); !errors.Is(err, store.ErrOwnerExists) {
		t.Errorf("inviting an existing owner: %v", err)
	}
	invite, addr, err := db.CreateInvite(ctx, app.App.ID, " New@Example.com ")
	if err != nil || addr != "new@example.com" {
		t.Fatal(addr, err)
	}
	if _, err := db.CreateOwner(ctx, "new@example.com", "Sneaky", "hash-x"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AcceptInvite(ctx, invite, "New", "hash-n"); err == nil {
		t.Fatal("an invitation for an address that has an account made another")
	}
	invite2, _, err := db.CreateInvite(ctx, app.App.ID, "other@example.com")
	if err != nil {
		t.Fatal(err)
	}
	other, appID, err := db.AcceptInvite(ctx, invite2, "Other", "hash-o")
	if err != nil || appID != app.App.ID {
		t.Fatal(appID, err)
	}
	if _, err := db.OwnerApp(ctx, other.ID, app.App.ID); err != nil {
		t.Errorf("the invited owner is not a member: %v", err)
	}
	if _, _, err := db.AcceptInvite(ctx, invite2, "Other", "hash-o"); !errors.Is(err, store.ErrLinkInvalid) {
		t.Errorf("an invitation used twice: %v", err)
	}
}
