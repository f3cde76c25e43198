package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// TestUnreadMarksMatchTheMessages: the unread counts, read off the seq
// marks alone, equal what counting the messages gives, after any mix of
// user messages, agent replies and read marks from both sides.
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
		switch rng.IntN(4) {
		case 0:
			mustSend(t, db, s, id, fmt.Sprint("m", step), "user")
		case 1:
			if _, err := db.AddAgentMessage(ctx, a.App.ID, id, "Ann", "agent"); err != nil {
				t.Fatal(err)
			}
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
