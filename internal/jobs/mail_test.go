package jobs_test

import (
	"context"
	netmail "net/mail"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/jobs"
	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/smtptest"
	"github.com/parley-chat/parley/internal/store"
)

// waits are the tests' default waits before e-mail.
var waits = store.EmailWaits{Agent: 5 * time.Minute, User: 10 * time.Minute}

// mailNode is a node that sends e-mail to a real SMTP server.
func mailNode(t *testing.T, location string) (node, *smtptest.Server) {
	t.Helper()
	srv := smtptest.Start(t, "parley", "s3cret")
	sender, err := mail.New("smtp://parley:s3cret@"+srv.Addr, "Parley <chat@parley.example>")
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, location, jobs.Config{Guard: loopback(t), Mail: sender, EmailWaits: waits, PublicURL: "https://chat.example"}), srv
}

// letter is a received e-mail, decoded.
type letter struct {
	to, subject, body string
	header            netmail.Header
}

func read(t *testing.T, m smtptest.Mail) letter {
	t.Helper()
	header, subject, body, err := m.Read()
	if err != nil {
		t.Fatal(err)
	}
	return letter{to: strings.Join(m.To, ","), subject: subject, body: body, header: header}
}

// member makes an owner who is a member of app, and returns their email.
func member(t *testing.T, db *store.DB, appID, name string) store.Owner {
	t.Helper()
	o, err := db.CreateOwner(context.Background(), name+"@shop.example", name, "not-a-real-hash")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddMember(context.Background(), appID, o.ID); err != nil {
		t.Fatal(err)
	}
	return o
}

// due runs the sweep as it would run after d.
func due(t *testing.T, db *store.DB, d time.Duration) int {
	t.Helper()
	n, err := db.QueueDueEmails(context.Background(), time.Now().Add(d), waits, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAgentsAreMailedOncePerWindow: messages no agent saw are mailed to
// each member who wants it, once for the whole window, after the wait
// and not before; what an agent saw or answered is not mailed.
func TestAgentsAreMailedOncePerWindow(t *testing.T) {
	databases(t, func(t *testing.T, location string) {
		ctx := context.Background()
		n, smtp := mailNode(t, location)
		c := newChat(t, n.db, newReceiver(t))
		ann, bob := member(t, n.db, c.app.ID, "ann"), member(t, n.db, c.app.ID, "bob")
		if err := n.db.SetEmailAlerts(ctx, c.app.ID, bob.ID, false); err != nil {
			t.Fatal(err)
		}

		first := c.say(t, n.db, "", "where is my order?")
		conv := first.Conversation.ID
		c.say(t, n.db, conv, "it was due on Monday")
		c.say(t, n.db, conv, "order 1234")
		if got := due(t, n.db, 4*time.Minute); got != 0 {
			t.Fatalf("%d e-mails queued before the wait ran out", got)
		}
		if got := due(t, n.db, 6*time.Minute); got != 1 {
			t.Fatalf("%d e-mails queued after the wait, want 1 (Ann; Bob turned them off)", got)
		}
		mails := smtp.Wait(1, time.Minute)
		if len(mails) != 1 {
			t.Fatalf("%d e-mails", len(mails))
		}
		l := read(t, mails[0])
		if l.to != ann.Email || !strings.Contains(l.subject, "3 new messages") {
			t.Errorf("to %s, subject %q", l.to, l.subject)
		}
		for _, want := range []string{"> where is my order?", "> it was due on Monday", "> order 1234",
			"https://chat.example/dashboard/apps/" + c.app.ID + "/conversations/" + conv} {
			if !strings.Contains(l.body, want) {
				t.Errorf("the e-mail lacks %q:\n%s", want, l.body)
			}
		}
		if got := due(t, n.db, time.Hour); got != 0 {
			t.Errorf("%d e-mails queued again for the same window", got)
		}

		// Seen by an agent before the wait ran out: nothing.
		p := c.say(t, n.db, conv, "hello?")
		if err := n.db.MarkAgentRead(ctx, c.app.ID, conv, p.Message.Seq); err != nil {
			t.Fatal(err)
		}
		// Answered: nothing either.
		c.say(t, n.db, conv, "anyone?")
		reply, err := n.db.AddAgentMessage(ctx, c.app.ID, conv, "Grace", "here!")
		if err != nil {
			t.Fatal(err)
		}
		// (The user saw the reply: no e-mail to them either.)
		if err := n.db.MarkRead(ctx, c.user.SubjectID, conv, reply.Message.Seq); err != nil {
			t.Fatal(err)
		}
		if got := due(t, n.db, time.Hour); got != 0 {
			t.Errorf("%d e-mails about messages an agent saw or answered", got)
		}

		// A new window mails only what is new.
		c.say(t, n.db, conv, "one more thing")
		if got := due(t, n.db, 6*time.Minute); got != 1 {
			t.Fatalf("%d e-mails in the new window", got)
		}
		mails = smtp.Wait(2, time.Minute)
		if l := read(t, mails[len(mails)-1]); !strings.Contains(l.body, "> one more thing") || strings.Contains(l.body, "order 1234") {
			t.Errorf("the second e-mail:\n%s", l.body)
		}
	})
}

// TestUsersAreMailedRepliesOnlyAtSignedAddresses: a reply the user did
// not see goes to a signed address, with a link back and one that stops
// them; an address the page merely claimed gets nothing, and neither
// does a user who saw the reply or unsubscribed.
func TestUsersAreMailedRepliesOnlyAtSignedAddresses(t *testing.T) {
	ctx := context.Background()
	n, smtp := mailNode(t, filepath.Join(t.TempDir(), "parley.db"))
	c := newChat(t, n.db, newReceiver(t)) // ada@example.com, signed
	conv := c.say(t, n.db, "", "hello").Conversation.ID
	if _, err := n.db.AddAgentMessage(ctx, c.app.ID, conv, "Grace", "Your order ships today."); err != nil {
		t.Fatal(err)
	}
	if got := due(t, n.db, 9*time.Minute); got != 0 {
		t.Fatalf("%d e-mails before the wait ran out", got)
	}
	if got := due(t, n.db, 11*time.Minute); got != 1 {
		t.Fatalf("%d e-mails after it", got)
	}
	l := read(t, smtp.Wait(1, time.Minute)[0])
	if l.to != "ada@example.com" || !strings.Contains(l.body, "> Your order ships today.") || !strings.Contains(l.body, "Grace") {
		t.Fatalf("to %s:\n%s", l.to, l.body)
	}
	link := regexp.MustCompile(`https://chat\.example/email/unsubscribe\?token=\S+`).FindString(l.body)
	if link == "" || l.header.Get("List-Unsubscribe") != "<"+link+">" || l.header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Fatalf("unsubscribe link %q, headers %q %q", link, l.header.Get("List-Unsubscribe"), l.header.Get("List-Unsubscribe-Post"))
	}

	// Read in the widget: nothing.
	p, err := n.db.AddAgentMessage(ctx, c.app.ID, conv, "Grace", "Anything else?")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.db.MarkRead(ctx, c.user.SubjectID, conv, p.Message.Seq); err != nil {
		t.Fatal(err)
	}
	if got := due(t, n.db, time.Hour); got != 0 {
		t.Errorf("%d e-mails of a reply the user saw", got)
	}

	// A claimed address: nothing.
	claimed, err := n.db.CreateSession(ctx, store.NewSession{AppID: c.app.ID, Kind: store.KindUnverified, IdentityKey: "uid:u9", UserID: "u9",
		Email: "victim@example.com", ParentOrigin: "https://shop.example", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	other := chat{app: c.app, user: claimed}
	conv2 := other.say(t, n.db, "", "hi").Conversation.ID
	if _, err := n.db.AddAgentMessage(ctx, c.app.ID, conv2, "Grace", "Hello victim"); err != nil {
		t.Fatal(err)
	}
	if got := due(t, n.db, time.Hour); got != 0 {
		t.Errorf("%d e-mails to an address the page only claimed", got)
	}

	// Unsubscribed: nothing more.
	u, _ := url.Parse(link)
	if app, err := n.db.Unsubscribe(ctx, u.Query().Get("token")); err != nil || app != c.app.Name {
		t.Fatalf("unsubscribe: %q %v", app, err)
	}
	if _, err := n.db.AddAgentMessage(ctx, c.app.ID, conv, "Grace", "Still there?"); err != nil {
		t.Fatal(err)
	}
	if got := due(t, n.db, time.Hour); got != 0 {
		t.Errorf("%d e-mails after unsubscribing", got)
	}
	if _, err := n.db.Unsubscribe(ctx, "mk1:forged"); err == nil {
		t.Error("a forged token unsubscribed someone")
	}
	if got := len(smtp.Mails()); got != 1 {
		t.Errorf("%d e-mails sent in all, want 1", got)
	}
}

// TestOldConversationsAreNotMailedAtOnce: turning e-mail on after a time
// without it does not mail every conversation left unseen long ago.
func TestOldConversationsAreNotMailedAtOnce(t *testing.T) {
	n, smtp := mailNode(t, filepath.Join(t.TempDir(), "parley.db"))
	c := newChat(t, n.db, newReceiver(t))
	member(t, n.db, c.app.ID, "ann")
	c.say(t, n.db, "", "long ago")
	if got := due(t, n.db, 48*time.Hour); got != 0 {
		t.Errorf("%d e-mails about a message two days unseen", got)
	}
	if got := due(t, n.db, 49*time.Hour); got != 0 {
		t.Errorf("%d e-mails the next time", got)
	}
	if len(smtp.Mails()) != 0 {
		t.Error("an e-mail was sent")
	}
}

// The members of an app are e-mailed when Parley turns one of its
// endpoints off, queued with the change itself.
func TestMembersAreToldOfAnEndpointTurnedOff(t *testing.T) {
	srv := smtptest.Start(t, "parley", "s3cret")
	sender, err := mail.New("smtp://parley:s3cret@"+srv.Addr, "Parley <chat@parley.example>")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, filepath.Join(t.TempDir(), "parley.db"), jobs.Config{Guard: loopback(t), Mail: sender, EmailWaits: waits,
		PublicURL: "https://chat.example", DisableAfter: time.Nanosecond})
	r := newReceiver(t)
	r.answer = func(int) int { return 500 }
	c := newChat(t, n.db, r, "message.created")
	ann := member(t, n.db, c.app.ID, "ann")
	c.say(t, n.db, "", "hello")
	mails := srv.Wait(1, time.Minute)
	if len(mails) != 1 {
		t.Fatalf("%d e-mails, want 1 to the member", len(mails))
	}
	l := read(t, mails[0])
	if l.to != ann.Email || !strings.Contains(l.subject, "Webhook endpoint turned off") || !strings.Contains(l.body, "the endpoint answered 500") ||
		!strings.Contains(l.body, "https://chat.example/dashboard/apps/"+c.app.ID+"/webhooks") {
		t.Errorf("to %s, %q:\n%s", l.to, l.subject, l.body)
	}
}
