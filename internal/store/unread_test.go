package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// TestUnreadMarksMatchTheMessages: the unread counts, read off the seq
// marks alone, equal what counting the messages gives, after any mix of
// user messages, agent replies and read marks from both sides; and the
// conversation a post returns is the one a read finds.
func TestUnreadMarksMatchTheMessages(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	var convs []string
	for i := range 3 {
		convs = append(convs, mustSend(t, db, s, "", fmt.Sprint("start", i), "hi").Message.ConversationID)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 300 {
		id := convs[rng.IntN(len(convs))]
		c, err := db.AppConversation(ctx, a.App.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		// The conversation a post returns is the one a read finds after it.
		samePosted := func(p store.Posted) {
			t.Helper()
			read, err := db.AppConversation(ctx, a.App.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Conversation, read) {
				t.Fatalf("step %d: posted %+v (last %+v)\nread   %+v (last %+v)", step, p.Conversation, p.Conversation.LastMessage, read, read.LastMessage)
			}
		}
		switch rng.IntN(4) {
		case 0:
			samePosted(mustSend(t, db, s, id, fmt.Sprint("m", step), "user"))
		case 1:
			p, err := db.AddAgentMessage(ctx, a.App.ID, id, "Ann", "agent")
			if err != nil {
				t.Fatal(err)
			}
			samePosted(p)
		case 2:
			if err := db.MarkRead(ctx, s.SubjectID, id, rng.Int64N(c.LastSeq+2)); err != nil {
				t.Fatal(err)
			}
		case 3:
			if err := db.MarkAgentRead(ctx, a.App.ID, id, rng.Int64N(c.LastSeq+2)); err != nil {
				t.Fatal(err)
			}
		}
		var total int64
		for _, id := range convs {
			c, err := db.AppConversation(ctx, a.App.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			page, err := db.Messages(ctx, c, 0, 200)
			if err != nil {
				t.Fatal(err)
			}
			var unread int64
			var agentUnread bool
			for _, m := range page.Messages {
				if m.Author == store.AuthorAgent && m.Seq > c.UserReadSeq {
					unread++
				}
				if m.Author == store.AuthorUser && m.Seq > c.AgentReadSeq {
					agentUnread = true
				}
			}
			if c.Unread != unread || c.AgentUnread != agentUnread {
				t.Fatalf("step %d, %s: Unread %d, AgentUnread %v; the messages say %d, %v", step, id, c.Unread, c.AgentUnread, unread, agentUnread)
			}
			total += unread
		}
		if got, err := db.UnreadCount(ctx, s.SubjectID); err != nil || got != total {
			t.Fatalf("step %d: UnreadCount = %d, %v; the messages say %d", step, got, err, total)
		}
	}
}
