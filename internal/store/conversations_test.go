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

func TestConversationStatus(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	b := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	conv := mustSend(t, db, s, "", "c1", "help").Message.ConversationID

	c, err := db.SetConversationStatus(ctx, a.App.ID, conv, "closed")
	if err != nil || c.Status != "closed" || c.ID != conv || c.LastMessage == nil {
		t.Fatalf("SetConversationStatus = %+v, %v", c, err)
	}
	if list, _ := db.AppConversations(ctx, a.App.ID, store.ConversationFilter{Status: "open"}); len(list) != 0 {
		t.Fatalf("closed conversation listed as open")
	}
	if c, err := db.SetConversationStatus(ctx, a.App.ID, conv, "open"); err != nil || c.Status != "open" {
		t.Fatalf("reopen = %+v, %v", c, err)
	}
	_, err = db.SetConversationStatus(ctx, a.App.ID, conv, "archived")
	wantInputError(t, "bad status", err, "archived")
	if _, err := db.SetConversationStatus(ctx, b.App.ID, conv, "closed"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("app b closed app a's conversation: %v", err)
	}
	if c, _ := db.AppConversation(ctx, a.App.ID, conv); c.Status != "open" {
		t.Fatalf("status = %q after a refused change, want open", c.Status)
	}
}

func TestAgentReadMark(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	b := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	conv := mustSend(t, db, s, "", "c1", "one").Message.ConversationID
	mustSend(t, db, s, conv, "c2", "two")
	unread := func() (int64, bool) {
		t.Helper()
		c, err := db.AppConversation(ctx, a.App.ID, conv)
		if err != nil {
			t.Fatal(err)
		}
		return c.AgentReadSeq, c.AgentUnread
	}
	if seq, u := unread(); seq != 0 || !u {
		t.Fatalf("new conversation: read seq %d, unread %v; want 0, true", seq, u)
	}
	if err := db.MarkAgentRead(ctx, a.App.ID, conv, 1); err != nil {
		t.Fatal(err)
	}
	if seq, u := unread(); seq != 1 || !u {
		t.Fatalf("read up to 1 of 2: read seq %d, unread %v", seq, u)
	}
	if err := db.MarkAgentRead(ctx, a.App.ID, conv, 0); err != nil { // never backwards
		t.Fatal(err)
	}
	if err := db.MarkAgentRead(ctx, a.App.ID, conv, 99); err != nil { // clamped to the last message
		t.Fatal(err)
	}
	if seq, u := unread(); seq != 2 || u {
		t.Fatalf("read all: read seq %d, unread %v; want 2, false", seq, u)
	}
	if err := db.MarkAgentRead(ctx, b.App.ID, conv, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("app b marked app a's conversation: %v", err)
	}

	mustSend(t, db, s, conv, "c3", "three")
	if _, u := unread(); !u {
		t.Fatal("a new user message did not make the conversation unread")
	}
	p, err := db.AddAgentMessage(ctx, a.App.ID, conv, "Sam", "answer")
	if err != nil {
		t.Fatal(err)
	}
	if p.Conversation.AgentReadSeq != p.Message.Seq || p.Conversation.AgentUnread {
		t.Fatalf("after an agent reply: %+v, want read up to the reply", p.Conversation)
	}
	if list, _ := db.AppConversations(ctx, a.App.ID, store.ConversationFilter{}); len(list) != 1 || list[0].AgentUnread {
		t.Fatalf("listing = %+v", list)
	}
	// Agent messages alone never make a conversation unread for agents.
	if err := db.MarkRead(ctx, s.SubjectID, conv, 99); err != nil {
		t.Fatal(err)
	}
	if _, u := unread(); u {
		t.Fatal("unread for agents with only their own reply after the mark")
	}
}

func TestPageURLAndLastSeen(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	clk := useClock(db)
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x",
		PageURL: "https://shop.example/cart"})
	mustSend(t, db, s, "", "c1", "help")
	page := func() string {
		t.Helper()
		list, err := db.AppConversations(ctx, a.App.ID, store.ConversationFilter{})
		if err != nil || len(list) != 1 {
			t.Fatalf("AppConversations = %v, %v", list, err)
		}
		return list[0].Subject.LastPageURL
	}
	if got := page(); got != "https://shop.example/cart" {
		t.Fatalf("page = %q", got)
	}
	mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	if got := page(); got != "https://shop.example/cart" {
		t.Fatalf("a session without a page erased the last one: %q", got)
	}
	mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x",
		PageURL: "https://shop.example/checkout"})
	if got := page(); got != "https://shop.example/checkout" {
		t.Fatalf("page after a new session = %q", got)
	}
	if sub, _ := db.Subject(ctx, a.App.ID, s.SubjectID); sub.LastPageURL != "https://shop.example/checkout" {
		t.Fatalf("Subject().LastPageURL = %q", sub.LastPageURL)
	}

	clk.add(time.Hour)
	if err := db.TouchSubject(ctx, s.SubjectID); err != nil {
		t.Fatal(err)
	}
	if sub, _ := db.Subject(ctx, a.App.ID, s.SubjectID); !sub.LastSeenAt.Equal(clk.now()) {
		t.Fatalf("last seen = %v, want %v", sub.LastSeenAt, clk.now())
	}
	if err := db.TouchSubject(ctx, "sub_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TouchSubject(unknown) = %v, want ErrNotFound", err)
	}
}

// Paging through the listing visits every conversation once, in order,
// including ones whose last activity falls in the same millisecond.
func TestAppConversationsPaging(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	db.SetNow(func() time.Time { return at })
	for i := range 8 {
		if i%3 == 0 {
			at = at.Add(time.Second) // groups of conversations share a timestamp
		}
		mustSend(t, db, s, "", fmt.Sprintf("c%d", i), "hello")
	}
	all, err := db.AppConversations(ctx, a.App.ID, store.ConversationFilter{})
	if err != nil || len(all) != 8 {
		t.Fatalf("full listing: %d, %v", len(all), err)
	}
	var paged []string
	f := store.ConversationFilter{Limit: 3}
	for range 10 {
		page, err := db.AppConversations(ctx, a.App.ID, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			paged = append(paged, c.ID)
		}
		last := page[len(page)-1]
		f.After = &store.ConversationCursor{LastMessageAt: last.LastMessageAt, ID: last.ID}
	}
	var want []string
	for _, c := range all {
		want = append(want, c.ID)
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged = %v\nwant    %v", paged, want)
	}
}
