package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
)

// Several handles on one database stand for the nodes of a cluster (or,
// on SQLite, for serve and a CLI command): what one node refuses or
// orders must hold for all.

// mustOpenNodes opens n handles on one new database of the round's backend.
func mustOpenNodes(tb testing.TB, n int) []*store.DB {
	tb.Helper()
	loc := newLocation(tb)
	nodes := make([]*store.DB, n)
	for i := range nodes {
		db, err := store.Open(context.Background(), loc, testKey)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		nodes[i] = db
	}
	return nodes
}

// together runs fn(0)…fn(n-1) at the same moment, as closely as
// goroutines allow, and waits for all.
func together(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// An identity JWT's jti is used once across the cluster, also when two
// nodes get it at the same moment.
func TestJWTIDUsedOnceAcrossNodes(t *testing.T) {
	nodes := mustOpenNodes(t, 2)
	a := mustApp(t, nodes[0], store.ModeEnforced)
	for round := range 30 {
		in := store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1", TTL: time.Hour,
			ParentOrigin: "https://shop.example", JWTID: fmt.Sprintf("jti-%d", round), JWTExpiresAt: time.Now().Add(time.Minute)}
		var errs [2]error
		together(2, func(i int) { _, errs[i] = nodes[i].CreateSession(context.Background(), in) })
		accepted, replayed := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, store.ErrJWTReplayed):
				replayed++
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if accepted != 1 || replayed != 1 {
			t.Fatalf("round %d: one jti on two nodes: %d accepted, %d refused as replayed; want 1 and 1", round, accepted, replayed)
		}
	}
}

// A session created on one node while another replaces the secret that
// vouched for it, or turns the app off, is refused or ended: never left
// working.
func TestSessionRacingEndsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	nodes := mustOpenNodes(t, 2)
	a := mustApp(t, nodes[0], store.ModeEnforced)
	secretID := a.App.IdentitySecretID
	for round := range 40 {
		user := store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1", TTL: time.Hour,
			ParentOrigin: "https://shop.example", SecretID: secretID, Proof: store.ProofHash}
		var s store.Session
		var createErr, endErr error
		var replaced store.IdentitySecret
		together(2, func(i int) {
			if i == 0 {
				s, createErr = nodes[0].CreateSession(ctx, user)
				return
			}
			if round%2 == 0 {
				replaced, endErr = nodes[1].ReplaceIdentitySecret(ctx, a.App.ID)
			} else {
				endErr = nodes[1].SetAppDisabled(ctx, a.App.ID, true)
			}
		})
		if endErr != nil {
			t.Fatal(endErr)
		}
		if createErr == nil {
			if _, err := nodes[0].SessionByToken(ctx, s.Token); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: a session created beside the end of its secret or app still works (lookup: %v)", round, err)
			}
		} else if !errors.Is(createErr, store.ErrSecretRevoked) && !errors.Is(createErr, store.ErrAppDisabled) {
			t.Fatalf("round %d: %v", round, createErr)
		}
		if round%2 == 0 {
			secretID = replaced.ID
			continue
		}
		if err := nodes[1].SetAppDisabled(ctx, a.App.ID, false); err != nil {
			t.Fatal(err)
		}
		// A disabled app's sessions are refused at lookup anyway; one that
		// slipped past the end would come back to life when the app is
		// turned on again.
		if createErr == nil {
			if _, err := nodes[0].SessionByToken(ctx, s.Token); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: a session created beside turning the app off works again once it is on (lookup: %v)", round, err)
			}
		}
	}
}

// Messages posted to one conversation from two nodes at once get the seqs
// 1…n, and commit in seq order: a reader that follows the conversation by
// "seq after the last one I saw" never steps over one that commits later.
func TestSendsFromTwoNodesCommitInSeqOrder(t *testing.T) {
	ctx := context.Background()
	nodes := mustOpenNodes(t, 3)
	a := mustApp(t, nodes[0], store.ModeEnforced)
	s := mustSession(t, nodes[0], store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1"})
	first := mustSend(t, nodes[0], s, "", "c0", "first")
	conv := first.Conversation

	const perWriter = 60
	stop := make(chan struct{})
	var seen []int64
	readerDone := make(chan error, 1)
	go func() { // the reader: the third node, polling as a resyncing node does
		last := int64(1)
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			page, err := nodes[2].Messages(ctx, conv, last, 100)
			if err != nil {
				readerDone <- err
				return
			}
			for _, m := range page.Messages {
				seen = append(seen, m.Seq)
				last = m.Seq
			}
		}
	}()
	together(4, func(i int) {
		for j := range perWriter {
			var err error
			if i%2 == 0 {
				_, err = nodes[i/2].AddUserMessage(ctx, store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID,
					ConversationID: conv.ID, ClientMsgID: fmt.Sprintf("w%d-%d", i, j), Body: "hi"})
			} else {
				_, err = nodes[i/2].AddAgentMessage(ctx, a.App.ID, conv.ID, "Ann", "hello")
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	var all []store.Message
	for after := int64(1); ; {
		page, err := nodes[2].Messages(ctx, conv, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Messages...)
		if !page.HasMore {
			break
		}
		after = all[len(all)-1].Seq
	}
	if got, want := len(all), 4*perWriter; got != want {
		t.Fatalf("%d messages stored, want %d", got, want)
	}
	for i, m := range all {
		if m.Seq != int64(i+2) {
			t.Fatalf("message %d has seq %d, want %d: seqs have a gap or a repeat", i, m.Seq, i+2)
		}
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]+1 {
			t.Fatalf("the reader saw seq %d after %d: a message committed after a later one", seen[i], seen[i-1])
		}
	}
}

// Ends of sessions written on two nodes at once reach a node that
// follows session_ends by "id after the last one I saw", every one of
// them: ids commit in order.
func TestSessionEndsFromTwoNodesAreAllSeen(t *testing.T) {
	ctx := context.Background()
	nodes := mustOpenNodes(t, 3)
	a := mustApp(t, nodes[0], store.ModeEnforced)
	const perNode = 150
	var tokens [2][]string
	for n := range tokens {
		for range perNode {
			tokens[n] = append(tokens[n], mustSession(t, nodes[n], store.NewSession{AppID: a.App.ID, Kind: store.KindVisitor}).Token)
		}
	}
	mark, err := nodes[2].LastSessionEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	follow := func() {
		for {
			ends, err := nodes[2].SessionEndsAfter(ctx, mark, 100)
			if err != nil {
				t.Error(err)
				return
			}
			if len(ends) == 0 {
				return
			}
			for _, e := range ends {
				seen[e.ID] = true
				mark = e.ID
			}
		}
	}
	stop := make(chan struct{})
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for {
			select {
			case <-stop:
				return
			default:
				follow()
			}
		}
	}()
	together(2, func(n int) {
		for _, tok := range tokens[n] {
			if err := nodes[n].EndSession(ctx, tok); err != nil {
				t.Error(err)
				return
			}
		}
	})
	close(stop)
	<-followed
	follow()
	if got, want := len(seen), 2*perNode; got != want {
		t.Fatalf("a node following session_ends saw %d of %d ends: an id committed after a later one was read", got, want)
	}
}

// On PostgreSQL the master key changes while nodes may be running (SQLite
// refuses with ErrInUse instead): afterwards a node still holding the old
// key seals no secret with it, and every secret opens with the new key.
func TestMasterKeyRotationOnASharedDatabase(t *testing.T) {
	if backend != "postgres" {
		t.Skip("PostgreSQL's: on SQLite a key change needs the database to itself")
	}
	ctx := context.Background()
	loc := newLocation(t)
	node, err := store.Open(ctx, loc, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	a := mustApp(t, node, store.ModeEnforced)
	next := masterkey.Generate()
	if n, err := store.RotateMasterKey(ctx, loc, testKey, next); err != nil || n != 1 {
		t.Fatalf("RotateMasterKey = %d, %v; want 1 secret re-sealed", n, err)
	}
	if _, err := node.CreateApp(ctx, store.NewApp{Name: "Late", Origins: []string{"https://late.example"}, IdentityMode: store.ModeEnforced}); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("a node with the old key created an app: err = %v, want ErrMasterKeyMismatch", err)
	}
	if _, err := node.RotateIdentitySecret(ctx, a.App.ID, 0); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("a node with the old key rotated a secret: err = %v, want ErrMasterKeyMismatch", err)
	}
	if _, err := node.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: a.App.ID, URL: "https://hooks.example.com/p"}); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("a node with the old key added a webhook endpoint: err = %v, want ErrMasterKeyMismatch", err)
	}
	if _, err := store.Open(ctx, loc, testKey); !errors.Is(err, store.ErrMasterKeyMismatch) {
		t.Fatalf("opening with the old key: %v, want ErrMasterKeyMismatch", err)
	}
	restarted, err := store.Open(ctx, loc, next)
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	got, err := restarted.App(ctx, a.App.ID)
	if err != nil || got.IdentitySecret != a.App.IdentitySecret {
		t.Fatalf("after the rotation the secret reads back as %v, %v", got, err)
	}
	reset, err := store.ResetMasterKey(ctx, loc, masterkey.Generate())
	if err != nil || len(reset) != 1 || reset[0].AppID != a.App.ID {
		t.Fatalf("ResetMasterKey = %+v, %v", reset, err)
	}
}

// A message and its resend reaching two nodes at the same moment are
// stored once, and both answers carry the stored message.
func TestResendOnAnotherNodeAtOnce(t *testing.T) {
	ctx := context.Background()
	nodes := mustOpenNodes(t, 2)
	a := mustApp(t, nodes[0], store.ModeEnforced)
	s := mustSession(t, nodes[0], store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1"})
	conv := mustSend(t, nodes[0], s, "", "first", "hello").Conversation.ID
	for round := range 60 {
		id := fmt.Sprintf("resend-%d", round)
		var posted [2]store.Posted
		var errs [2]error
		together(2, func(i int) {
			posted[i], errs[i] = nodes[i].AddUserMessage(ctx, store.UserMessage{AppID: s.AppID, SubjectID: s.SubjectID,
				ConversationID: conv, ClientMsgID: id, Body: "once"})
		})
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v, %v", round, errs[0], errs[1])
		}
		if posted[0].Message.ID != posted[1].Message.ID || posted[0].Duplicate == posted[1].Duplicate {
			t.Fatalf("round %d: answers %+v and %+v, want one message, once a duplicate", round, posted[0].Message, posted[1].Message)
		}
	}
}

// What logs and messages show of a database or NATS URL carries no
// credential.
func TestRedactURL(t *testing.T) {
	onlyOnce(t)
	for in, secret := range map[string]string{
		"postgres://parley:hunter2@db:5432/parley?sslmode=disable":     "hunter2",
		"postgres://parley@db/parley?password=hunter2&sslmode=require": "hunter2",
		"postgres://parley@db/parley?sslpassword=hunter2":              "hunter2",
		"nats://s3cr3t-token@nats.internal:4222":                       "s3cr3t-token",
		"postgresql://u:p%40ss@h/db":                                   "p%40ss",
	} {
		got := store.RedactURL(in)
		if strings.Contains(got, secret) || strings.Contains(got, "p@ss") {
			t.Errorf("RedactURL(%q) = %q, still shows the credential", in, got)
		}
		if !strings.Contains(got, "db") && !strings.Contains(got, "nats.internal") && !strings.Contains(got, "h/db") {
			t.Errorf("RedactURL(%q) = %q, lost the host", in, got)
		}
	}
}
