package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

// testKey is this test run's master key: random, but the same for every
// reopen of a file within the run.
var testKey = masterkey.Generate()

// newLocation is where a new, empty database of the round's backend can
// be opened: a path in a temp dir, or a new PostgreSQL database's URL.
func newLocation(tb testing.TB) string {
	tb.Helper()
	if backend == "postgres" {
		return pgtest.URL(tb)
	}
	return filepath.Join(tb.TempDir(), "parley.db")
}

// MustOpenDB opens a fresh database of the round's backend (a file in a
// temp dir, or a new PostgreSQL database), closed at cleanup.
func MustOpenDB(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), newLocation(tb), testKey)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		db.Close()
		if tb.Failed() {
			tb.Logf("on %s", backend)
		}
	})
	return db
}

func mustApp(tb testing.TB, db *store.DB, mode string) store.CreatedApp {
	tb.Helper()
	a, err := db.CreateApp(context.Background(), store.NewApp{Name: "Shop", Origins: []string{"https://shop.example"}, IdentityMode: mode})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func mustSession(tb testing.TB, db *store.DB, in store.NewSession) store.Session {
	tb.Helper()
	if in.TTL == 0 {
		in.TTL = time.Hour
	}
	if in.ParentOrigin == "" {
		in.ParentOrigin = "https://shop.example"
	}
	s, err := db.CreateSession(context.Background(), in)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustSend(tb testing.TB, db *store.DB, s store.Session, conv, clientID, body string) store.Posted {
	tb.Helper()
	p, err := db.AddUserMessage(context.Background(), store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID,
		ConversationID: conv, ClientMsgID: clientID, Body: body})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestOpenAppliesMigrationsOnce(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	a, err := db.CreateApp(ctx, store.NewApp{Name: "Shop", Origins: []string{"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = store.Open(ctx, path, testKey) // second start: migrations must not run again
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.App(ctx, a.App.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Shop" || got.IdentityMode != store.ModeEnforced || len(got.Origins) != 1 {
		t.Fatalf("app after reopen = %+v", got)
	}
}

func TestCreateAppValidates(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	for name, in := range map[string]store.NewApp{
		"no origins":  {Name: "Shop"},
		"bad origin":  {Name: "Shop", Origins: []string{"https://a.example/path"}},
		"one bad":     {Name: "Shop", Origins: []string{"https://a.example", "*"}},
		"no name":     {Name: " ", Origins: []string{"https://a.example"}},
		"bad mode":    {Name: "Shop", Origins: []string{"https://a.example"}, IdentityMode: "off"},
		"http remote": {Name: "Shop", Origins: []string{"http://a.example"}},
	} {
		_, err := db.CreateApp(ctx, in)
		var ie *store.InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: err = %v, want an InputError", name, err)
		}
	}
	a, err := db.CreateApp(ctx, store.NewApp{Name: "Shop", Origins: []string{"HTTPS://A.example:443", "https://a.example", "http://localhost:3000"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(a.App.Origins, " "), "https://a.example http://localhost:3000"; got != want {
		t.Fatalf("origins = %q, want %q", got, want)
	}
	if len(a.App.IdentitySecret) != 64 || !strings.HasPrefix(a.App.ID, "app_") || !strings.HasPrefix(a.APIKey, "psk_") {
		t.Fatalf("created app = %+v", a)
	}
}

func TestAPIKeyLookupAndRotation(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	got, err := db.AppByAPIKey(ctx, a.APIKey)
	if err != nil || got.ID != a.App.ID {
		t.Fatalf("AppByAPIKey = %v, %v", got, err)
	}
	// One character changed: whatever the key ends with, "A" or "B" differs.
	last := "A"
	if strings.HasSuffix(a.APIKey, last) {
		last = "B"
	}
	for _, key := range []string{"", "wrong", a.APIKey[:len(a.APIKey)-1] + last, a.App.IdentitySecret} {
		if _, err := db.AppByAPIKey(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AppByAPIKey(%q) err = %v, want ErrNotFound", key, err)
		}
	}
	newKey, err := db.RotateAPIKey(ctx, a.App.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppByAPIKey(ctx, a.APIKey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old key still works after rotation: %v", err)
	}
	if got, err := db.AppByAPIKey(ctx, newKey); err != nil || got.ID != a.App.ID {
		t.Fatalf("new key: %v, %v", got, err)
	}
}

func TestSessionsAreScopedToSubjects(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeMonitor)
	verified := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	again := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	claim := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUnverified, IdentityKey: "uid:x", UserID: "x"})
	otherClaim := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUnverified, IdentityKey: "uid:x", UserID: "x"})
	visitor := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindVisitor, Email: "x@example.com"})

	if verified.SubjectID != again.SubjectID {
		t.Fatal("two verified sessions of one user_id got different subjects")
	}
	seen := map[string]string{}
	for name, s := range map[string]store.Session{"verified": verified, "claim": claim, "other claim": otherClaim, "visitor": visitor} {
		if prev, dup := seen[s.SubjectID]; dup {
			t.Fatalf("%s and %s share subject %s", name, prev, s.SubjectID)
		}
		seen[s.SubjectID] = name
	}
	if claim.VisitorToken == "" || visitor.VisitorToken == "" {
		t.Fatal("unverified and anonymous sessions need a visitor token")
	}
	// The same browser (visitor token) claiming x again is the same subject.
	same := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUnverified, IdentityKey: "uid:x", UserID: "x", VisitorToken: claim.VisitorToken})
	if same.SubjectID != claim.SubjectID || same.VisitorToken != claim.VisitorToken {
		t.Fatal("a returning browser's unverified claim got a new subject")
	}
	// A visitor token Parley never issued is replaced, not adopted.
	forged := "pvt_" + strings.Repeat("A", 43)
	fresh := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindVisitor, VisitorToken: forged})
	if fresh.VisitorToken == forged {
		t.Fatal("a client-chosen visitor token was adopted")
	}

	mustSend(t, db, verified, "", "m1", "secret order details")
	for name, s := range map[string]store.Session{"claim": claim, "visitor": visitor} {
		convs, err := db.SubjectConversations(ctx, s.SubjectID, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(convs) != 0 {
			t.Fatalf("%s sees %d of the verified user's conversations", name, len(convs))
		}
	}
}

func TestSessionByToken(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	got, err := db.SessionByToken(ctx, s.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got.SubjectID != s.SubjectID || got.AppID != a.App.ID || !got.Verified() {
		t.Fatalf("SessionByToken = %+v", got)
	}
	for _, tok := range []string{"", "pst_x", s.Token + "x", s.VisitorToken, "pst_" + strings.Repeat("A", 43)} {
		if _, err := db.SessionByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionByToken(%q) err = %v, want ErrNotFound", tok, err)
		}
	}
	short := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x", TTL: time.Millisecond})
	time.Sleep(5 * time.Millisecond)
	if _, err := db.SessionByToken(ctx, short.Token); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: err = %v, want ErrNotFound", err)
	}
	if n, err := db.DeleteExpiredSessions(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredSessions = %d, %v; want 1", n, err)
	}
}

func TestUserMessagesAreIdempotentAndOrdered(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})

	first := mustSend(t, db, s, "", "c1", "hello")
	conv := first.Message.ConversationID
	if first.Duplicate || first.Message.Seq != 1 || !strings.HasPrefix(conv, "cnv_") {
		t.Fatalf("first message = %+v", first)
	}
	resend := mustSend(t, db, s, "", "c1", "hello")
	if !resend.Duplicate || resend.Message.ID != first.Message.ID {
		t.Fatalf("resend = %+v, want the stored message", resend)
	}
	second := mustSend(t, db, s, conv, "c2", "second")
	if second.Message.Seq != 2 {
		t.Fatalf("second seq = %d", second.Message.Seq)
	}
	convs, _ := db.SubjectConversations(ctx, s.SubjectID, 50)
	if len(convs) != 1 {
		t.Fatalf("%d conversations, want 1 (the resend must not start another)", len(convs))
	}
	c, err := db.SubjectConversation(ctx, s.SubjectID, conv)
	if err != nil {
		t.Fatal(err)
	}
	page, err := db.Messages(ctx, c, 1, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Body != "second" || page.HasMore {
		t.Fatalf("messages after seq 1 = %+v", page)
	}
}

func TestConcurrentSendsGetDistinctSeqs(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	conv := mustSend(t, db, s, "", "c0", "start").Message.ConversationID
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.AddUserMessage(ctx, store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID, ConversationID: conv,
				ClientMsgID: fmt.Sprintf("c%d", i+1), Body: "x"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err) // SQLITE_BUSY would surface here
		}
	}
	c, _ := db.SubjectConversation(ctx, s.SubjectID, conv)
	page, _ := db.Messages(ctx, c, 0, 200)
	if len(page.Messages) != 41 {
		t.Fatalf("%d messages, want 41", len(page.Messages))
	}
	for i, m := range page.Messages {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d: gaps or duplicates", i, m.Seq)
		}
	}
}

func TestScopedLookups(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	b := mustApp(t, db, store.ModeEnforced)
	alice := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:alice", UserID: "alice"})
	bob := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:bob", UserID: "bob"})
	conv := mustSend(t, db, alice, "", "a1", "alice's").Message.ConversationID

	if _, err := db.SubjectConversation(ctx, bob.SubjectID, conv); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob opened alice's conversation: %v", err)
	}
	_, err := db.AddUserMessage(ctx, store.UserMessage{AppID: bob.AppID, SubjectID: bob.SubjectID, ConversationID: conv, ClientMsgID: "b1", Body: "hi"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob wrote into alice's conversation: %v", err)
	}
	if err := db.MarkRead(ctx, bob.SubjectID, conv, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob marked alice's conversation read: %v", err)
	}
	if _, err := db.AppConversation(ctx, b.App.ID, conv); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("app b read app a's conversation: %v", err)
	}
	if _, err := db.AddAgentMessage(ctx, b.App.ID, conv, "", "hi"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("app b replied in app a's conversation: %v", err)
	}
	if _, err := db.Subject(ctx, b.App.ID, alice.SubjectID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("app b read app a's subject: %v", err)
	}
	list, _ := db.AppConversations(ctx, b.App.ID, store.ConversationFilter{})
	if len(list) != 0 {
		t.Fatalf("app b lists %d of app a's conversations", len(list))
	}
}

func TestUnreadAndAgentReplies(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x", Name: "Xena", Email: "x@example.com"})
	conv := mustSend(t, db, s, "", "c1", "help").Message.ConversationID
	for _, body := range []string{"hello", "how can we help?"} {
		if _, err := db.AddAgentMessage(ctx, a.App.ID, conv, "Sam", body); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := db.UnreadCount(ctx, s.SubjectID); n != 2 {
		t.Fatalf("unread = %d, want 2", n)
	}
	if err := db.MarkRead(ctx, s.SubjectID, conv, 2); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.UnreadCount(ctx, s.SubjectID); n != 1 {
		t.Fatalf("unread after reading seq 2 = %d, want 1", n)
	}
	if err := db.MarkRead(ctx, s.SubjectID, conv, 1000); err != nil { // beyond the end: clamped
		t.Fatal(err)
	}
	if n, _ := db.UnreadCount(ctx, s.SubjectID); n != 0 {
		t.Fatalf("unread after reading all = %d, want 0", n)
	}
	list, err := db.AppConversations(ctx, a.App.ID, store.ConversationFilter{Status: "open"})
	if err != nil || len(list) != 1 {
		t.Fatalf("AppConversations = %v, %v", list, err)
	}
	c := list[0]
	if c.Subject.Name != "Xena" || c.Subject.UserID != "x" || !c.Subject.Verified() || c.LastMessage.Body != "how can we help?" || c.LastSeq != 3 {
		t.Fatalf("listed conversation = %+v subject %+v", c, c.Subject)
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := newLocation(t)
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	p := mustSend(t, db, s, "", "c1", "durable")
	db.Close()

	db, err = store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.SessionByToken(ctx, s.Token)
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.SubjectConversation(ctx, got.SubjectID, p.Message.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := db.Messages(ctx, c, 0, 10)
	if len(page.Messages) != 1 || page.Messages[0].Body != "durable" {
		t.Fatalf("after reopen: %+v", page.Messages)
	}
}

func TestOpenExplainsAMissingFolder(t *testing.T) {
	onlySQLite(t)
	_, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "no", "such", "parley.db"), testKey)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v, want one that says the folder does not exist", err)
	}
}
