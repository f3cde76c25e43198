package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// waitQueued waits until n user messages wait in the writer's queue.
func waitQueued(t *testing.T, db *store.DB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for db.UserMessagesWaiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages queued, want %d", db.UserMessagesWaiting(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type sendResult struct {
	p   store.Posted
	err error
}

// sendAsync sends in a goroutine; the result arrives on the channel.
func sendAsync(ctx context.Context, db *store.DB, s store.Session, conv, clientID string) <-chan sendResult {
	c := make(chan sendResult, 1)
	go func() {
		p, err := db.AddUserMessage(ctx, store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID, ConversationID: conv, ClientMsgID: clientID, Body: clientID})
		c <- sendResult{p, err}
	}()
	return c
}

// holdWriter sends one message and stops the writer before its commit, so
// that the messages sent next wait in the queue and go in one batch.
func holdWriter(t *testing.T, db *store.DB, s store.Session) (sizes <-chan int, gate chan<- struct{}, held <-chan sendResult) {
	t.Helper()
	sizes, gate = db.GateUserMessages()
	held = sendAsync(context.Background(), db, s, "", "held")
	if n := <-sizes; n != 1 {
		t.Fatalf("first batch has %d messages, want 1", n)
	}
	return sizes, gate, held
}

func TestGroupCommitManySendersGapFreeSeqs(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	type conv struct {
		s  store.Session
		id string
	}
	var convs []conv
	for i := range 4 {
		s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: fmt.Sprintf("uid:%d", i), UserID: fmt.Sprint(i)})
		for j := range 3 {
			convs = append(convs, conv{s, mustSend(t, db, s, "", fmt.Sprintf("start-%d", j), "start").Message.ConversationID})
		}
	}
	const perConv = 40
	var wg sync.WaitGroup
	results := make(chan sendResult, len(convs)*perConv)
	for i := range perConv {
		for _, c := range convs {
			wg.Go(func() {
				p, err := db.AddUserMessage(ctx, store.UserMessage{AppID: c.s.AppID, SubjectID: c.s.SubjectID, ConversationID: c.id,
					ClientMsgID: fmt.Sprintf("%s-%d", c.id, i), Body: "x"})
				results <- sendResult{p, err}
			})
		}
	}
	wg.Wait()
	close(results)
	acked := map[string]int64{} // message id -> seq
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.p.Duplicate {
			t.Fatalf("fresh message reported as duplicate: %+v", r.p)
		}
		acked[r.p.Message.ID] = r.p.Message.Seq
	}
	if len(acked) != len(convs)*perConv {
		t.Fatalf("%d distinct messages acked, want %d", len(acked), len(convs)*perConv)
	}
	for _, c := range convs {
		got, err := db.SubjectConversation(ctx, c.s.SubjectID, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.LastSeq != perConv+1 {
			t.Fatalf("conversation %s last_seq = %d, want %d", c.id, got.LastSeq, perConv+1)
		}
		page, err := db.Messages(ctx, got, 0, 200)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) != perConv+1 {
			t.Fatalf("conversation %s has %d messages, want %d", c.id, len(page.Messages), perConv+1)
		}
		for i, m := range page.Messages {
			if m.Seq != int64(i+1) {
				t.Fatalf("conversation %s: message %d has seq %d: gaps or duplicates", c.id, i, m.Seq)
			}
			if i > 0 && acked[m.ID] != m.Seq {
				t.Fatalf("stored message %s has seq %d, acked with %d", m.ID, m.Seq, acked[m.ID])
			}
		}
	}
}

func TestGroupCommitGroups(t *testing.T) {
	onlySQLite(t)
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	sizes, gate, held := holdWriter(t, db, s)
	const n = 100
	var sent []<-chan sendResult
	for i := range n {
		sent = append(sent, sendAsync(context.Background(), db, s, "", fmt.Sprintf("m%d", i)))
	}
	waitQueued(t, db, n)
	gate <- struct{}{}
	if got := <-sizes; got != n {
		t.Fatalf("%d concurrent sends went in a batch of %d, want all in one", n, got)
	}
	gate <- struct{}{}
	if r := <-held; r.err != nil {
		t.Fatal(r.err)
	}
	for _, c := range sent {
		if r := <-c; r.err != nil || r.p.Message.Seq != 1 {
			t.Fatalf("send = %+v, %v", r.p, r.err)
		}
	}
}

func TestGroupCommitDuplicateAndFailureInOneBatch(t *testing.T) {
	onlySQLite(t)
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	other := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:y", UserID: "y"})
	sizes, gate, held := holdWriter(t, db, s)
	// In queue order: a new message, its resend, a send into another
	// subject's conversation, one into an unknown conversation, and one
	// more into the first message's conversation, which is not known yet:
	// all in the same batch.
	first := sendAsync(ctx, db, s, "", "dup")
	waitQueued(t, db, 1)
	resend := sendAsync(ctx, db, s, "", "dup")
	waitQueued(t, db, 2)
	foreign := sendAsync(ctx, db, other, "", "o1")
	waitQueued(t, db, 3)
	unknown := sendAsync(ctx, db, s, "cnv_nope", "u1")
	waitQueued(t, db, 4)
	after := sendAsync(ctx, db, s, "", "after")
	waitQueued(t, db, 5)
	gate <- struct{}{}
	if n := <-sizes; n != 5 {
		t.Fatalf("batch of %d, want 5", n)
	}
	gate <- struct{}{}
	if r := <-held; r.err != nil {
		t.Fatal(r.err)
	}

	f, r := <-first, <-resend
	if f.err != nil || f.p.Duplicate || f.p.Message.Seq != 1 {
		t.Fatalf("first = %+v, %v", f.p, f.err)
	}
	if r.err != nil || !r.p.Duplicate || r.p.Message.ID != f.p.Message.ID || r.p.Conversation.ID != f.p.Message.ConversationID {
		t.Fatalf("resend in the same batch = %+v, %v; want the first message as a duplicate", r.p, r.err)
	}
	if r := <-unknown; !errors.Is(r.err, store.ErrNotFound) {
		t.Fatalf("send into an unknown conversation: %v, want ErrNotFound", r.err)
	}
	o := <-foreign
	if o.err != nil || o.p.Message.Seq != 1 {
		t.Fatalf("other subject's message = %+v, %v", o.p, o.err)
	}
	if r := <-after; r.err != nil || r.p.Duplicate || r.p.Message.Seq != 1 {
		t.Fatalf("message after the failure = %+v, %v", r.p, r.err)
	}
	// The other subject writing into s's conversation fails, in a batch,
	// without touching it.
	sizes2 := sendAsync(ctx, db, other, f.p.Message.ConversationID, "o2")
	if n := <-sizes; n != 1 {
		t.Fatalf("batch of %d, want 1", n)
	}
	gate <- struct{}{}
	if r := <-sizes2; !errors.Is(r.err, store.ErrNotFound) {
		t.Fatalf("send into another subject's conversation: %v, want ErrNotFound", r.err)
	}
	c, err := db.SubjectConversation(ctx, s.SubjectID, f.p.Message.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := db.Messages(ctx, c, 0, 10)
	if c.LastSeq != 1 || len(page.Messages) != 1 || page.Messages[0].ID != f.p.Message.ID {
		t.Fatalf("conversation = %+v with %+v, want the one message", c, page.Messages)
	}
	convs, _ := db.SubjectConversations(ctx, s.SubjectID, 50)
	if len(convs) != 3 { // held, dup, after
		t.Fatalf("%d conversations, want 3", len(convs))
	}
}

func TestGroupCommitCallerThatGivesUp(t *testing.T) {
	onlySQLite(t)
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	sizes, gate, held := holdWriter(t, db, s)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := sendAsync(ctx, db, s, "", "gave-up")
	waitQueued(t, db, 1)
	cancel()
	if r := <-gaveUp; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", r.err)
	}
	gate <- struct{}{}
	<-sizes // the given-up message, still queued
	gate <- struct{}{}
	if r := <-held; r.err != nil {
		t.Fatal(r.err)
	}
	// It was not begun, so a resend is not a duplicate.
	resend := sendAsync(context.Background(), db, s, "", "gave-up")
	<-sizes
	gate <- struct{}{}
	if r := <-resend; r.err != nil || r.p.Duplicate {
		t.Fatalf("resend = %+v, %v; want a fresh message", r.p, r.err)
	}
}

func TestCloseCommitsQueuedMessages(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	sizes, gate, held := holdWriter(t, db, s)
	var sent []<-chan sendResult
	for i := range 10 {
		sent = append(sent, sendAsync(ctx, db, s, "", fmt.Sprintf("m%d", i)))
	}
	waitQueued(t, db, 10)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	gate <- struct{}{}
	if n := <-sizes; n != 10 {
		t.Fatalf("batch of %d, want 10", n)
	}
	gate <- struct{}{}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if r := <-held; r.err != nil {
		t.Fatal(r.err)
	}
	for _, c := range sent {
		if r := <-c; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if _, err := db.AddUserMessage(ctx, store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID, ClientMsgID: "late", Body: "x"}); err == nil {
		t.Fatal("a message sent after Close was accepted")
	}

	db, err = store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	convs, err := db.SubjectConversations(ctx, s.SubjectID, 50)
	if err != nil || len(convs) != 11 {
		t.Fatalf("%d conversations after reopen (%v), want 11", len(convs), err)
	}
}

// TestGroupCommitMixesWrites: sessions, agent replies and last-seen
// updates share a group with user messages; a session refused in the
// group (a replayed JWT id) is rolled back alone.
func TestGroupCommitMixesWrites(t *testing.T) {
	onlySQLite(t)
	db := MustOpenDB(t)
	ctx := context.Background()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	conv := mustSend(t, db, s, "", "start", "start").Message.ConversationID
	sizes, gate, held := holdWriter(t, db, s)

	newSession := func(key, jti string) <-chan error {
		c := make(chan error, 1)
		go func() {
			_, err := db.CreateSession(ctx, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: key, UserID: key,
				TTL: time.Hour, ParentOrigin: "https://shop.example", JWTID: jti, JWTExpiresAt: time.Now().Add(time.Minute)})
			c <- err
		}()
		return c
	}
	first := newSession("uid:a", "j1")
	waitQueued(t, db, 1)
	replay := newSession("uid:b", "j1")
	waitQueued(t, db, 2)
	reply := make(chan error, 1)
	go func() {
		_, err := db.AddAgentMessage(ctx, a.App.ID, conv, "Ann", "hello")
		reply <- err
	}()
	waitQueued(t, db, 3)
	touch := make(chan error, 1)
	go func() { touch <- db.TouchSubject(ctx, s.SubjectID) }()
	waitQueued(t, db, 4)
	msg := sendAsync(ctx, db, s, conv, "m1")
	waitQueued(t, db, 5)

	gate <- struct{}{}
	if n := <-sizes; n != 5 {
		t.Fatalf("batch of %d, want 5", n)
	}
	gate <- struct{}{}
	if r := <-held; r.err != nil {
		t.Fatal(r.err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first session: %v", err)
	}
	if err := <-replay; !errors.Is(err, store.ErrJWTReplayed) {
		t.Fatalf("session with a used JWT id in the same group: %v, want ErrJWTReplayed", err)
	}
	if err := <-reply; err != nil {
		t.Fatalf("agent reply: %v", err)
	}
	if err := <-touch; err != nil {
		t.Fatalf("touch: %v", err)
	}
	r := <-msg
	// In queue order: "start" is 1, the agent's reply 2, this message 3.
	if r.err != nil || r.p.Message.Seq != 3 {
		t.Fatalf("message = %+v, %v; want seq 3", r.p, r.err)
	}
}
