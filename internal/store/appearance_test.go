package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// An app's look: a new app's defaults, saved and read back, and refused
// when it could not have been meant (it ends up in CSS and on pages).
func TestAppearance(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeMonitor).App
	if got, _ := db.App(ctx, app.ID); got.Appearance != store.DefaultAppearance {
		t.Fatalf("a new app looks %+v, want %+v", got.Appearance, store.DefaultAppearance)
	}
	want := store.Appearance{Color: "#ffd400", Position: "left", LauncherLabel: "Chat with us", TeamName: "Teapot Support", Locale: "pt-BR"}
	if err := db.SetAppearance(ctx, app.ID, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.App(ctx, app.ID); got.Appearance != want {
		t.Errorf("read back %+v, want %+v", got.Appearance, want)
	}
	for name, a := range map[string]store.Appearance{
		"a colour that is CSS":     {Color: "red;background:url(//evil)", Position: "right", Locale: "en"},
		"a short colour":           {Color: "#fff", Position: "right", Locale: "en"},
		"upper-case hex":           {Color: "#FFD400", Position: "right", Locale: "en"},
		"a corner that is not one": {Color: "#ffd400", Position: "top", Locale: "en"},
		"a label on two lines":     {Color: "#ffd400", Position: "right", LauncherLabel: "Chat\nnow", Locale: "en"},
		"a long team name":         {Color: "#ffd400", Position: "right", TeamName: string(make([]rune, 61)), Locale: "en"},
		"a locale that is not one": {Color: "#ffd400", Position: "right", Locale: "english"},
	} {
		var ie *store.InputError
		if err := db.SetAppearance(ctx, app.ID, a); !errors.As(err, &ie) {
			t.Errorf("%s: %v, want an input error", name, err)
		}
	}
	if got, _ := db.App(ctx, app.ID); got.Appearance != want {
		t.Errorf("a refused change changed the look: %+v", got.Appearance)
	}
}

// The team's picture: kept with a hash that changes with it, and gone
// when removed.
func TestAvatar(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeMonitor).App
	if _, _, _, err := db.Avatar(ctx, app.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no picture yet: %v", err)
	}
	if err := db.SetAvatar(ctx, app.ID, "image/png", []byte("one")); err != nil {
		t.Fatal(err)
	}
	typ, first, data, err := db.Avatar(ctx, app.ID)
	if err != nil || typ != "image/png" || string(data) != "one" || first == "" {
		t.Fatalf("Avatar = %q %q %q, %v", typ, first, data, err)
	}
	if got, _ := db.App(ctx, app.ID); got.Appearance.AvatarHash != first {
		t.Errorf("the app names picture %q, want %q", got.Appearance.AvatarHash, first)
	}
	db.SetAvatar(ctx, app.ID, "image/png", []byte("two"))
	if _, second, data, _ := db.Avatar(ctx, app.ID); second == first || string(data) != "two" {
		t.Errorf("a new picture kept the hash %q", second)
	}
	db.SetAvatar(ctx, app.ID, "", nil)
	if _, _, _, err := db.Avatar(ctx, app.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after removal: %v", err)
	}
	if got, _ := db.App(ctx, app.ID); got.Appearance.AvatarHash != "" {
		t.Errorf("after removal the app names picture %q", got.Appearance.AvatarHash)
	}
	if err := db.SetAvatar(ctx, "app_nope", "image/png", []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another app: %v", err)
	}
}

// Refused origins are counted, listed newest first, bounded (anyone can
// send any Origin), and drop off the list once allowed.
func TestRefusedOrigins(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeMonitor).App
	for range 3 {
		if err := db.NoteRefusedOrigin(ctx, app.ID, "https://www.shop.example"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.RefusedOrigins(ctx, app.ID, time.Now().Add(-time.Hour))
	if err != nil || len(got) != 1 || got[0].Origin != "https://www.shop.example" || got[0].Count != 3 {
		t.Fatalf("RefusedOrigins = %+v, %v", got, err)
	}
	for i := range 30 {
		db.NoteRefusedOrigin(ctx, app.ID, fmt.Sprintf("https://forged-%d.example", i))
	}
	if got, _ := db.RefusedOrigins(ctx, app.ID, time.Time{}); len(got) != 20 {
		t.Errorf("%d refused origins kept, want 20 at most", len(got))
	}
	db.NoteRefusedOrigin(ctx, app.ID, "https://shop.example") // on the allowlist meanwhile
	for _, r := range mustRefused(t, db, app.ID) {
		if r.Origin == "https://shop.example" {
			t.Errorf("an allowed origin is listed as refused")
		}
	}
}

func mustRefused(t *testing.T, db *store.DB, appID string) []store.RefusedOrigin {
	t.Helper()
	got, err := db.RefusedOrigins(context.Background(), appID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A user's message is delivered when it reaches an agent's open inbox: at
// once when one is open, else when one opens.
func TestDeliveredMarks(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeMonitor).App
	ann := mustOwner(t, db, "ann@example.com")
	s := mustSession(t, db, store.NewSession{AppID: app.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1"})
	first, err := db.AddUserMessage(ctx, store.UserMessage{AppID: app.ID, SubjectID: s.SubjectID, ClientMsgID: "m1", Body: "anyone there?"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Conversation.AgentDeliveredSeq != 0 {
		t.Fatalf("delivered up to %d with nobody online", first.Conversation.AgentDeliveredSeq)
	}
	if err := db.AgentPresent(ctx, app.ID, ann.ID, "node-1", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c, _ := db.AppConversation(ctx, app.ID, first.Conversation.ID)
	if c.AgentDeliveredSeq != 1 {
		t.Errorf("after an agent came online: delivered up to %d, want 1", c.AgentDeliveredSeq)
	}
	// The common case: an existing conversation (PostgreSQL's one-statement
	// path), with an agent online.
	second, err := db.AddUserMessage(ctx, store.UserMessage{AppID: app.ID, SubjectID: s.SubjectID, ConversationID: c.ID, ClientMsgID: "m2", Body: "hello?"})
	if err != nil || second.Conversation.AgentDeliveredSeq != 2 {
		t.Errorf("a message while an agent is online: delivered up to %d (%v), want 2", second.Conversation.AgentDeliveredSeq, err)
	}
	db.AgentAbsent(ctx, app.ID, ann.ID, "node-1")
	third, _ := db.AddUserMessage(ctx, store.UserMessage{AppID: app.ID, SubjectID: s.SubjectID, ConversationID: c.ID, ClientMsgID: "m3", Body: "gone?"})
	if third.Conversation.AgentDeliveredSeq != 2 {
		t.Errorf("a message once the agent left: delivered up to %d, want 2", third.Conversation.AgentDeliveredSeq)
	}
}

// Allowing a refused origin adds it alone, once; what is not an origin is
// refused.
func TestAllowOrigin(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeMonitor).App
	for range 2 {
		got, err := db.AllowOrigin(ctx, app.ID, "https://www.shop.example")
		if err != nil || !slices.Equal(got.Origins, []string{"https://shop.example", "https://www.shop.example"}) {
			t.Fatalf("AllowOrigin = %v, %v", got, err)
		}
	}
	var ie *store.InputError
	if _, err := db.AllowOrigin(ctx, app.ID, "https://*.shop.example"); !errors.As(err, &ie) {
		t.Errorf("a wildcard: %v, want an input error", err)
	}
	if _, err := db.AllowOrigin(ctx, "app_nope", "https://x.example"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another app: %v", err)
	}
}
