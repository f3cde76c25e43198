package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/hours"
	"github.com/parley-chat/parley/internal/store"
)

// An app's availability: saved and read back, refused when it could not
// have been meant, and read as open or not at a moment, with whether an
// agent is online.
func TestAvailability(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeMonitor).App
	ann, bob := mustOwner(t, db, "ann@example.com"), mustOwner(t, db, "bob@example.com")

	p, err := db.PresenceAt(ctx, app.ID, time.Now())
	if err != nil || !p.Open || p.AgentsOnline || p.TimeZone != "UTC" {
		t.Fatalf("a new app: %+v, %v; want open, nobody online, UTC", p, err)
	}
	week, _ := hours.Parse("mon=09:00-17:00")
	a := store.Availability{TimeZone: "America/New_York", Hours: week, Greeting: "Hi! Ask us anything.", AwayMessage: "We're back Monday at 9.", ReplyTime: "hours"}
	if err := db.SetAvailability(ctx, app.ID, a); err != nil {
		t.Fatal(err)
	}
	got, _ := db.App(ctx, app.ID)
	if got.Availability.TimeZone != a.TimeZone || got.Availability.Hours.String() != "mon=09:00-17:00" || got.Availability.Greeting != a.Greeting {
		t.Errorf("read back %+v", got.Availability)
	}
	monday9NY, _ := time.Parse(time.RFC3339, "2026-12-07T14:30:00Z") // Monday 09:30 in New York
	if p, _ := db.PresenceAt(ctx, app.ID, monday9NY); !p.Open || p.AwayMessage != a.AwayMessage {
		t.Errorf("Monday 09:30 in New York: %+v, want open", p)
	}
	if p, _ := db.PresenceAt(ctx, app.ID, monday9NY.Add(-time.Hour)); p.Open {
		t.Errorf("Monday 08:30 in New York: open")
	}

	for _, bad := range []store.Availability{
		{TimeZone: "Mars/Olympus"},
		{TimeZone: ""},
		{TimeZone: "UTC", Greeting: strings.Repeat("x", 501)},
		{TimeZone: "UTC", ReplyTime: "never"},
	} {
		if err := db.SetAvailability(ctx, app.ID, bad); !errors.As(err, new(*store.InputError)) {
			t.Errorf("%+v: %v, want an InputError", bad, err)
		}
	}

	now := time.Now()
	if err := db.AgentPresent(ctx, app.ID, ann.ID, "node_a", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.AgentPresent(ctx, app.ID, bob.ID, "node_b", now.Add(-time.Second)); err != nil { // expired: its node died
		t.Fatal(err)
	}
	online, err := db.OnlineAgents(ctx, app.ID, now)
	if err != nil || len(online) != 1 || online[0].ID != ann.ID {
		t.Fatalf("online %+v, %v; want Ann only", online, err)
	}
	if p, _ := db.PresenceAt(ctx, app.ID, now); !p.AgentsOnline {
		t.Error("Ann is online, the presence says nobody")
	}
	if err := db.AgentAbsent(ctx, app.ID, ann.ID, "node_a"); err != nil {
		t.Fatal(err)
	}
	if p, _ := db.PresenceAt(ctx, app.ID, now); p.AgentsOnline {
		t.Error("nobody is online, the presence says someone")
	}
}

// Uploads no message carried are pruned after a while; sent ones stay.
func TestPruneUnsentAttachments(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeMonitor).App
	s, err := db.CreateSession(ctx, store.NewSession{AppID: app.ID, Kind: store.KindUser, IdentityKey: "uid:u", UserID: "u", ParentOrigin: "https://shop.example", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	q := store.AttachmentQuotas{PerUser: 1 << 20, PerApp: 1 << 20}
	kept, err := db.AddAttachment(ctx, store.NewAttachment{AppID: app.ID, SubjectID: s.SubjectID, Name: "a.txt", Type: "text/plain; charset=utf-8", Data: []byte("a")}, q)
	if err != nil {
		t.Fatal(err)
	}
	unsent, err := db.AddAttachment(ctx, store.NewAttachment{AppID: app.ID, SubjectID: s.SubjectID, Name: "b.txt", Type: "text/plain; charset=utf-8", Data: []byte("b")}, q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddUserMessage(ctx, store.UserMessage{AppID: app.ID, SubjectID: s.SubjectID, ClientMsgID: "m1", Body: "see file", AttachmentIDs: []string{kept.ID}}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PruneUnsentAttachments(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the unsent one", n, err)
	}
	if _, _, err := db.UserAttachment(ctx, s.SubjectID, unsent.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the unsent upload is still there: %v", err)
	}
	if _, data, err := db.UserAttachment(ctx, s.SubjectID, kept.ID); err != nil || string(data) != "a" {
		t.Errorf("the sent one: %q %v", data, err)
	}
}
