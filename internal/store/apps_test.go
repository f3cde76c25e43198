package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

func mustOwnedApp(tb testing.TB, db *store.DB, name string, owner store.Owner) store.App {
	tb.Helper()
	a, err := db.CreateApp(context.Background(), store.NewApp{Name: name, Origins: []string{"https://shop.example"}, OwnerID: owner.ID})
	if err != nil {
		tb.Fatal(err)
	}
	return a.App
}

func TestMembership(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	ada := mustOwner(t, db, "ada@example.com")
	bob := mustOwner(t, db, "bob@example.com")
	zoo := mustOwnedApp(t, db, "Zoo", ada)
	bike := mustOwnedApp(t, db, "Bikes", ada)
	bobs := mustOwnedApp(t, db, "Bob's", bob)
	mustApp(t, db, store.ModeEnforced) // nobody's

	list, err := db.OwnerApps(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].App.ID != bike.ID || list[1].App.ID != zoo.ID {
		t.Fatalf("ada's apps = %+v, want Bikes then Zoo", list)
	}
	if list[0].App.IdentitySecret == "" || len(list[0].App.Origins) != 1 {
		t.Fatalf("listed app is not fully loaded: %+v", list[0].App)
	}
	if got, err := db.OwnerApp(ctx, ada.ID, zoo.ID); err != nil || got.ID != zoo.ID {
		t.Fatalf("OwnerApp(member) = %v, %v", got, err)
	}
	for name, id := range map[string]string{"bob's app": bobs.ID, "missing app": "app_nope"} {
		if _, err := db.OwnerApp(ctx, ada.ID, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("OwnerApp(%s) err = %v, want ErrNotFound", name, err)
		}
	}

	// Invite bob to Zoo by email, in any case; twice is fine.
	for range 2 {
		o, err := db.AddMemberByEmail(ctx, zoo.ID, " BOB@example.com")
		if err != nil || o.ID != bob.ID {
			t.Fatalf("AddMemberByEmail = %+v, %v", o, err)
		}
	}
	if _, err := db.OwnerApp(ctx, bob.ID, zoo.ID); err != nil {
		t.Fatalf("invited member cannot open the app: %v", err)
	}
	members, err := db.Members(ctx, zoo.ID)
	if err != nil || len(members) != 2 || members[0].ID != ada.ID || members[1].ID != bob.ID {
		t.Fatalf("members = %+v, %v", members, err)
	}
	_, err = db.AddMemberByEmail(ctx, zoo.ID, "carol@example.com")
	wantInputError(t, "unknown email", err, "no owner has the email carol@example.com")
	if _, err := db.AddMemberByEmail(ctx, "app_nope", bob.Email); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AddMemberByEmail(missing app) = %v, want ErrNotFound", err)
	}
	_, err = db.CreateApp(ctx, store.NewApp{Name: "Ghost's", Origins: []string{"https://a.example"}, OwnerID: "own_nope"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateApp(unknown owner) = %v, want ErrNotFound", err)
	}
	if err := db.AddMember(ctx, zoo.ID, "own_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AddMember(missing owner) = %v, want ErrNotFound", err)
	}

	if err := db.RemoveMember(ctx, zoo.ID, ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.OwnerApp(ctx, ada.ID, zoo.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed member still opens the app: %v", err)
	}
	err = db.RemoveMember(ctx, zoo.ID, bob.ID)
	wantInputError(t, "last member", err, "at least one member")
	if _, err := db.OwnerApp(ctx, bob.ID, zoo.ID); err != nil {
		t.Fatalf("refused removal removed the member anyway: %v", err)
	}
	if err := db.RemoveMember(ctx, zoo.ID, ada.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveMember(non-member) = %v, want ErrNotFound", err)
	}

	if err := db.AddMember(ctx, bobs.ID, ada.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := db.OwnerApps(ctx, ada.ID); len(list) != 2 || list[0].App.ID != bike.ID || list[1].App.ID != bobs.ID {
		t.Fatalf("ada's apps after changes = %+v, want Bikes then Bob's", list)
	}
}

func TestOwnerAppsCounts(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	ada := mustOwner(t, db, "ada@example.com")
	app := mustOwnedApp(t, db, "Shop", ada)
	u := mustSession(t, db, store.NewSession{AppID: app.ID, Kind: store.KindUser, IdentityKey: "uid:u", UserID: "u"})
	answered := mustSend(t, db, u, "", "a", "hi").Message.ConversationID
	if _, err := db.AddAgentMessage(ctx, app.ID, answered, "Sam", "hello"); err != nil {
		t.Fatal(err)
	}
	mustSend(t, db, u, "", "b", "waiting")
	closed := mustSend(t, db, u, "", "c", "also waiting").Message.ConversationID
	if _, err := db.SetConversationStatus(ctx, app.ID, closed, "closed"); err != nil {
		t.Fatal(err)
	}
	list, err := db.OwnerApps(ctx, ada.ID)
	if err != nil || len(list) != 1 {
		t.Fatalf("OwnerApps = %+v, %v", list, err)
	}
	if list[0].OpenConversations != 2 || list[0].Unread != 2 {
		t.Fatalf("open, unread = %d, %d; want 2, 2", list[0].OpenConversations, list[0].Unread)
	}
}

func TestIdentitySecretRotation(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	clk := useClock(db)
	created := mustApp(t, db, store.ModeEnforced).App
	other := mustApp(t, db, store.ModeEnforced).App
	hashWith := func(secret string) string { return identity.UserHash(secret, "u1") }
	load := func() *store.App {
		t.Helper()
		a, err := db.App(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	a := load()
	if a.IdentitySecret != created.IdentitySecret || a.IdentitySecretID != created.IdentitySecretID || len(a.PreviousSecrets) != 0 {
		t.Fatalf("loaded app secrets = %q %q %v, want the created one only", a.IdentitySecret, a.IdentitySecretID, a.PreviousSecrets)
	}
	first := created.IdentitySecret
	if !a.VerifyUserHash("u1", hashWith(first), clk.now()) || a.VerifyUserHash("u2", hashWith(first), clk.now()) {
		t.Fatal("the current secret does not verify exactly its own hashes")
	}

	// Rotate with no expiry: the first secret verifies until revoked.
	second, err := db.RotateIdentitySecret(ctx, created.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Second)
	// Rotate again, the second one valid for a day.
	third, err := db.RotateIdentitySecret(ctx, created.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a = load()
	if a.IdentitySecret != third.Secret || a.IdentitySecretID != third.ID {
		t.Fatalf("current secret = %s, want the newest %s", a.IdentitySecretID, third.ID)
	}
	if len(a.PreviousSecrets) != 2 || a.PreviousSecrets[0].ID != second.ID || a.PreviousSecrets[1].Secret != first {
		t.Fatalf("previous secrets = %+v, want second then first", a.PreviousSecrets)
	}
	if !a.PreviousSecrets[1].ExpiresAt.IsZero() || !a.PreviousSecrets[0].ExpiresAt.Equal(clk.now().Add(24*time.Hour)) {
		t.Fatalf("expiries = %v, %v", a.PreviousSecrets[0].ExpiresAt, a.PreviousSecrets[1].ExpiresAt)
	}
	for _, s := range []string{first, second.Secret, third.Secret} {
		if !a.VerifyUserHash("u1", hashWith(s), clk.now()) {
			t.Fatalf("hash with %s… refused right after rotation", s[:6])
		}
	}
	if a.VerifyUserHash("u1", hashWith(other.IdentitySecret), clk.now()) {
		t.Fatal("another app's secret verifies")
	}

	// An App loaded before the expiry still refuses the hash after it.
	if a.VerifyUserHash("u1", hashWith(second.Secret), clk.now().Add(24*time.Hour)) {
		t.Fatal("expired secret verified through an App loaded earlier")
	}
	clk.add(24*time.Hour - time.Millisecond)
	if !load().VerifyUserHash("u1", hashWith(second.Secret), clk.now()) {
		t.Fatal("secret refused just before its expiry")
	}
	clk.add(time.Millisecond)
	a = load()
	if len(a.PreviousSecrets) != 1 || a.VerifyUserHash("u1", hashWith(second.Secret), clk.now()) {
		t.Fatalf("expired secret still loaded or verifying: %+v", a.PreviousSecrets)
	}
	if !a.VerifyUserHash("u1", hashWith(first), clk.now()) {
		t.Fatal("the secret without expiry stopped verifying")
	}

	// Revoking.
	err = db.RevokeIdentitySecret(ctx, created.ID, third.ID)
	wantInputError(t, "revoke current", err, "current")
	if err := db.RevokeIdentitySecret(ctx, other.ID, a.PreviousSecrets[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking through another app: err = %v, want ErrNotFound", err)
	}
	if err := db.RevokeIdentitySecret(ctx, created.ID, a.PreviousSecrets[0].ID); err != nil {
		t.Fatal(err)
	}
	a = load()
	if len(a.PreviousSecrets) != 0 || a.VerifyUserHash("u1", hashWith(first), clk.now()) {
		t.Fatal("revoked secret still verifies")
	}
	if !a.VerifyUserHash("u1", hashWith(third.Secret), clk.now()) {
		t.Fatal("revoking a previous secret broke the current one")
	}
	if !load().VerifyUserHash("u1", hashWith(third.Secret), clk.now()) {
		t.Fatal("current secret lost")
	}

	if _, err := db.RotateIdentitySecret(ctx, "app_nope", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotating a missing app: err = %v, want ErrNotFound", err)
	}
	_, err = db.RotateIdentitySecret(ctx, created.ID, -time.Hour)
	wantInputError(t, "negative validity", err, "negative")
	if o, _ := db.App(ctx, other.ID); o.IdentitySecret != other.IdentitySecret {
		t.Fatal("rotating one app changed another's secret")
	}
}

func TestUpdateApp(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced).App
	for name, in := range map[string]store.AppSettings{
		"no origins": {Name: "Shop", IdentityMode: store.ModeMonitor},
		"bad origin": {Name: "Shop", Origins: []string{"https://a.example/path"}, IdentityMode: store.ModeMonitor},
		"no name":    {Name: " ", Origins: []string{"https://a.example"}, IdentityMode: store.ModeMonitor},
		"long name":  {Name: strings.Repeat("n", 101), Origins: []string{"https://a.example"}, IdentityMode: store.ModeMonitor},
		"escape":     {Name: "Shop\x1b[2J", Origins: []string{"https://a.example"}, IdentityMode: store.ModeMonitor},
		"line break": {Name: "Shop\nowned", Origins: []string{"https://a.example"}, IdentityMode: store.ModeMonitor},
		"bad mode":   {Name: "Shop", Origins: []string{"https://a.example"}, IdentityMode: "off"},
		"no mode":    {Name: "Shop", Origins: []string{"https://a.example"}},
	} {
		_, err := db.UpdateApp(ctx, a.ID, in)
		var ie *store.InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: err = %v, want an InputError", name, err)
		}
	}
	if got, _ := db.App(ctx, a.ID); got.Name != "Shop" || got.IdentityMode != store.ModeEnforced || got.Origins[0] != "https://shop.example" {
		t.Fatalf("a refused update changed the app: %+v", got)
	}
	got, err := db.UpdateApp(ctx, a.ID, store.AppSettings{Name: " Bikes ", Origins: []string{"HTTPS://bikes.example:443", "http://localhost:8080"},
		IdentityMode: store.ModeMonitor})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Bikes" || got.IdentityMode != store.ModeMonitor || strings.Join(got.Origins, " ") != "http://localhost:8080 https://bikes.example" {
		t.Fatalf("updated app = %+v", got)
	}
	if got.IdentitySecret != a.IdentitySecret {
		t.Fatal("updating settings changed the identity secret")
	}
	if again, _ := db.App(ctx, a.ID); !again.AllowsOrigin("https://bikes.example") || again.AllowsOrigin("https://shop.example") {
		t.Fatalf("origins after update = %v", again.Origins)
	}
	_, err = db.UpdateApp(ctx, "app_nope", store.AppSettings{Name: "X", Origins: []string{"https://a.example"}, IdentityMode: store.ModeMonitor})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateApp(missing) = %v, want ErrNotFound", err)
	}
}

func TestIdentityStats(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	clk := useClock(db)
	a := mustApp(t, db, store.ModeMonitor).App
	other := mustApp(t, db, store.ModeMonitor).App
	session := func(appID, kind string) {
		mustSession(t, db, store.NewSession{AppID: appID, Kind: kind, IdentityKey: "uid:u", UserID: "u"})
	}
	session(a.ID, store.KindUser) // 8 days ago: outside a 7-day window
	clk.add(8 * 24 * time.Hour)
	windowStart := clk.now().Add(-7 * 24 * time.Hour)
	for range 3 {
		session(a.ID, store.KindUser)
	}
	session(a.ID, store.KindUnverified)
	session(a.ID, store.KindVisitor)
	session(a.ID, store.KindVisitor)
	session(other.ID, store.KindUnverified)
	clk.add(-3 * 24 * time.Hour) // a session on another day inside the window
	session(a.ID, store.KindUnverified)

	st, err := db.IdentityStats(ctx, a.ID, windowStart)
	if err != nil {
		t.Fatal(err)
	}
	if st.Verified != 3 || st.Unverified != 2 || st.Anonymous != 2 {
		t.Fatalf("stats = %+v, want 3 verified, 2 unverified, 2 anonymous", st)
	}
	if want := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC); !st.Since.Equal(want) {
		t.Fatalf("since = %v, want the start of the window's first day %v", st.Since, want)
	}
	if st, _ := db.IdentityStats(ctx, a.ID, windowStart.Add(-24*time.Hour)); st.Verified != 4 {
		t.Fatalf("a wider window counts %d verified, want 4", st.Verified)
	}
}

// TestMigrationKeepsSecrets builds a database as the first release left
// it, then opens it with the current migrations.
func TestMigrationKeepsSecrets(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	init, err := os.ReadFile("migrations/sqlite/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// A verified user's session and a visitor's, from before sessions
	// recorded the secret and proof that verified them.
	userToken, visitorToken := identity.NewToken("pst_"), identity.NewToken("pst_")
	future := time.Now().Add(time.Hour).UnixMilli()
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		string(init),
		`INSERT INTO schema_migrations VALUES (1, 0)`,
		`INSERT INTO apps VALUES ('app_old', 'Old', 'enforced', 'oldsecret', 'keyhash', 1000)`,
		`INSERT INTO subjects (id, app_id, kind, lookup_key, created_at, last_seen_at) VALUES ('sub_1', 'app_old', 'user', 'uid:u', 1, 1)`,
		`INSERT INTO conversations (id, app_id, subject_id, created_at, last_message_at, last_seq) VALUES ('cnv_1', 'app_old', 'sub_1', 1, 1, 3)`,
		`INSERT INTO messages (id, conversation_id, seq, author, author_subject_id, body, created_at) VALUES
			('m1', 'cnv_1', 1, 'user', 'sub_1', 'hi', 1), ('m3', 'cnv_1', 3, 'user', 'sub_1', 'again', 3)`,
		`INSERT INTO messages (id, conversation_id, seq, author, body, created_at) VALUES ('m2', 'cnv_1', 2, 'agent', 'hello', 2)`,
		`INSERT INTO subjects (id, app_id, kind, lookup_key, created_at, last_seen_at) VALUES ('sub_2', 'app_old', 'visitor', 'vt', 1, 1)`,
		fmt.Sprintf(`INSERT INTO sessions VALUES ('%s', 'app_old', 'sub_1', 'https://shop.example', 1, %d), ('%s', 'app_old', 'sub_2', 'https://shop.example', 1, %d)`,
			identity.TokenHash(userToken), future, identity.TokenHash(visitorToken), future),
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := db.App(ctx, "app_old")
	if err != nil {
		t.Fatal(err)
	}
	if a.IdentitySecret != "oldsecret" || !strings.HasPrefix(a.IdentitySecretID, "isk_") {
		t.Fatalf("migrated secret = %q (%s)", a.IdentitySecret, a.IdentitySecretID)
	}
	// Nothing ties the old verified session to a secret or a proof, so no
	// revocation could end it: the upgrade does. The visitor's stays.
	if _, err := db.SessionByToken(ctx, userToken); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a verified session from before the upgrade survived it: %v", err)
	}
	if _, err := db.SessionByToken(ctx, visitorToken); err != nil {
		t.Errorf("a visitor's session from before the upgrade: %v", err)
	}
	if !a.VerifyUserHash("u1", identity.UserHash("oldsecret", "u1"), time.Now()) {
		t.Fatal("a hash made before the migration no longer verifies")
	}
	if _, err := db.RotateIdentitySecret(ctx, a.ID, 0); err != nil {
		t.Fatal(err)
	}
	if a, _ = db.App(ctx, "app_old"); !a.VerifyUserHash("u1", identity.UserHash("oldsecret", "u1"), time.Now()) {
		t.Fatal("the migrated secret stopped verifying after a rotation")
	}
	c, err := db.AppConversation(ctx, "app_old", "cnv_1")
	if err != nil {
		t.Fatal(err)
	}
	if c.AgentReadSeq != 2 || !c.AgentUnread {
		t.Fatalf("migrated read mark = %d, unread %v; want 2 (the last agent reply), true", c.AgentReadSeq, c.AgentUnread)
	}
}

func TestCreatedAppVerifiesAfterReopen(t *testing.T) {
	ctx := context.Background()
	path := newLocation(t)
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	created := mustApp(t, db, store.ModeEnforced).App
	db.Close()
	db, err = store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := db.App(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !a.VerifyUserHash("u1", identity.UserHash(created.IdentitySecret, "u1"), time.Now()) {
		t.Fatal("an app's secret does not verify after a restart")
	}
}

func TestReplaceIdentitySecret(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	other := mustApp(t, db, store.ModeEnforced)
	oldHash := identity.UserHash(a.App.IdentitySecret, "u1")
	// An earlier rotation's previous secret is left alone.
	if _, err := db.RotateIdentitySecret(ctx, a.App.ID, 0); err != nil {
		t.Fatal(err)
	}
	mid, _ := db.App(ctx, a.App.ID)
	midHash := identity.UserHash(mid.IdentitySecret, "u1")

	s, err := db.ReplaceIdentitySecret(ctx, a.App.ID)
	if err != nil {
		t.Fatal(err)
	}
	app, err := db.App(ctx, a.App.ID)
	if err != nil || app.IdentitySecret != s.Secret || app.IdentitySecretID != s.ID {
		t.Fatalf("after replace: %+v, %v; want the new secret current", app, err)
	}
	now := time.Now()
	if app.VerifyUserHash("u1", midHash, now) {
		t.Fatal("the replaced secret still verifies")
	}
	if !app.VerifyUserHash("u1", oldHash, now) || !app.VerifyUserHash("u1", identity.UserHash(s.Secret, "u1"), now) {
		t.Fatal("the new secret, or the older previous one kept until revoked, does not verify")
	}
	if _, err := db.ReplaceIdentitySecret(ctx, "app_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replace on a missing app: %v", err)
	}
	if o, _ := db.App(ctx, other.App.ID); o.IdentitySecret != other.App.IdentitySecret {
		t.Fatal("another app's secret changed")
	}
}
