package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// Agents find conversations by the user's name, e-mail or user_id, or by
// what was written, word by word and by the start of a word, within
// their app, from an index on both databases.
func TestSearchConversations(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeMonitor).App
	other := mustApp(t, db, store.ModeMonitor).App
	start := func(appID string, ns store.NewSession, body string) string {
		t.Helper()
		ns.AppID, ns.ParentOrigin, ns.TTL = appID, "https://shop.example", 3600e9
		s, err := db.CreateSession(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		p, err := db.AddUserMessage(ctx, store.UserMessage{AppID: appID, SubjectID: s.SubjectID, ClientMsgID: "m1", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return p.Conversation.ID
	}
	ann := start(app.ID, store.NewSession{Kind: store.KindUser, IdentityKey: "uid:u-ann-1", UserID: "u-ann-1", Email: "ann@example.com", Name: "Ann Lee"}, "My teapot arrived chipped.")
	bob := start(app.ID, store.NewSession{Kind: store.KindUser, IdentityKey: "uid:bob", UserID: "bob", Email: "bob@shop.test", Name: "Bob"}, "Where is order 1042?")
	visitor := start(app.ID, store.NewSession{Kind: store.KindVisitor, IdentityKey: "vt:x"}, "Do you ship to Oslo?")
	start(other.ID, store.NewSession{Kind: store.KindUser, IdentityKey: "uid:zed", UserID: "zed", Name: "Zed"}, "My teapot is fine, thanks")
	if _, err := db.AddAgentMessage(ctx, app.ID, bob, "Olivia", "It left the warehouse yesterday."); err != nil {
		t.Fatal(err)
	}

	search := func(q string) []string {
		t.Helper()
		convs, err := db.AppConversations(ctx, app.ID, store.ConversationFilter{Query: q, Limit: 50})
		if err != nil {
			t.Fatalf("search %q: %v", q, err)
		}
		var ids []string
		for _, c := range convs {
			ids = append(ids, c.ID)
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	for q, want := range map[string][]string{
		"teapot":           {ann},                // not the other app's
		"TEA":              {ann},                // the start of a word, any case
		"chipped teapot":   {ann},                // every word, in any order
		"teapot order":     nil,                  // every word: no conversation has both
		"lee":              {ann},                // the name
		"ann@example.com":  {ann},                // the e-mail
		"example":          {ann},                // a word of it
		"u-ann-1":          {ann},                // the user_id
		"1042":             {bob},                // a number in a message
		"warehouse":        {bob},                // an agent's reply
		"oslo":             {visitor},            // an anonymous visitor's message
		"o":                sorted(bob, visitor), // order, Oslo
		`"and" OR near(*)`: nil,                  // query syntax is only words
		"?!":               nil,                  // no words at all
	} {
		if got := search(q); !slices.Equal(got, want) {
			t.Errorf("search %q = %v, want %v", q, got, want)
		}
	}

	// A new name is found; the old one is not.
	if _, err := db.CreateSession(ctx, store.NewSession{AppID: app.ID, Kind: store.KindUser, IdentityKey: "uid:bob", UserID: "bob",
		Name: "Robert Smith", ParentOrigin: "https://shop.example", TTL: 3600e9}); err != nil {
		t.Fatal(err)
	}
	if got := search("robert"); !slices.Equal(got, []string{bob}) {
		t.Errorf("search for the new name = %v", got)
	}

	plan, err := db.SearchPlan(ctx, app.ID, "teapot")
	if err != nil {
		t.Fatal(err)
	}
	if backend == "postgres" {
		for _, index := range []string{"messages_search", "subjects_search"} {
			if !strings.Contains(plan, index) {
				t.Errorf("the search does not use %s:\n%s", index, plan)
			}
		}
	} else if strings.Count(plan, "VIRTUAL TABLE INDEX") != 2 {
		t.Errorf("the search does not use both full-text indexes:\n%s", plan)
	}
}
