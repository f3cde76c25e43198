package jobs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/parley-chat/parley/internal/jobs"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// databases runs fn on SQLite, then on PostgreSQL.
func databases(t *testing.T, fn func(t *testing.T, location string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "parley.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, pgtest.URL(t)) })
}

// loopback is the allow list the tests need: their receivers are on
// 127.0.0.1.
func loopback(t *testing.T) webhooks.Guard {
	g, err := webhooks.ParseAllow([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// node is one server's store and queue on a shared database.
type node struct {
	db *store.DB
	q  *jobs.Queue
}

// key is the master key of every database in a test run.
var key = masterkey.Generate()

func startNode(t *testing.T, location string, cfg jobs.Config) node {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, location, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = db
	if store.IsPostgresURL(location) {
		cfg.DatabaseURL = location
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	q, err := jobs.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	db.UseOutbox(q)
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	return node{db: db, q: q}
}

// received is one request a receiver verified.
type received struct {
	id, timestamp, signature string
	payload                  webhooks.Payload
}

// receiver is a webhook endpoint that checks every request's signature
// with the Standard Webhooks reference library, not Parley's signer.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	// answer, when set, decides the status of the nth request (from 1).
	answer func(n int) int

	mu       sync.Mutex
	secret   string
	requests int
	got      []received
	inFlight map[string]int
	overlaps int // requests that came while one with their id was under way
	hold     time.Duration
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, inFlight: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	r.requests++
	n := r.requests
	if r.inFlight[id] > 0 {
		r.overlaps++
	}
	r.inFlight[id]++
	secret, hold := r.secret, r.hold
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight[id]--
		r.mu.Unlock()
	}()
	time.Sleep(hold)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		r.t.Errorf("receiver: %v", err)
		return
	}
	if err := wh.Verify(body, req.Header); err != nil {
		r.t.Errorf("receiver: signature of %s: %v", id, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p webhooks.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("receiver: payload: %v", err)
	}
	status := http.StatusNoContent
	if r.answer != nil {
		status = r.answer(n)
	}
	r.mu.Lock()
	if status < 300 {
		r.got = append(r.got, received{id: id, timestamp: req.Header.Get("webhook-timestamp"), signature: req.Header.Get("webhook-signature"), payload: p})
	}
	r.mu.Unlock()
	w.WriteHeader(status)
	io.WriteString(w, "answer to request "+req.Header.Get("webhook-id"))
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor polls until cond holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chat is an app with a user, and an endpoint at a receiver.
type chat struct {
	app      store.App
	user     store.Session
	endpoint store.WebhookEndpoint
}

func newChat(t *testing.T, db *store.DB, r *receiver, events ...string) chat {
	t.Helper()
	ctx := context.Background()
	app, err := db.CreateApp(ctx, store.NewApp{Name: "Shop", Origins: []string{"https://shop.example"}, IdentityMode: store.ModeMonitor})
	if err != nil {
		t.Fatal(err)
	}
	user, err := db.CreateSession(ctx, store.NewSession{AppID: app.App.ID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1",
		Email: "ada@example.com", EmailSigned: true, ParentOrigin: "https://shop.example", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e, err := db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: app.App.ID, URL: r.srv.URL + "/hooks", Events: events})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.secret = e.Secret
	r.mu.Unlock()
	return chat{app: app.App, user: user, endpoint: e}
}

func (c chat) say(t *testing.T, db *store.DB, conversationID, body string) store.Posted {
	t.Helper()
	p, err := db.AddUserMessage(context.Background(), store.UserMessage{AppID: c.app.ID, SubjectID: c.user.SubjectID,
		ConversationID: conversationID, ClientMsgID: body, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEventsReachTheEndpointSigned: every event of a conversation's life
// arrives once, verified by the reference library, with what it is about.
func TestEventsReachTheEndpointSigned(t *testing.T) {
	databases(t, func(t *testing.T, location string) {
		ctx := context.Background()
		n := startNode(t, location, jobs.Config{Guard: loopback(t)})
		r := newReceiver(t)
		c := newChat(t, n.db, r)

		first := c.say(t, n.db, "", "hello")
		conv := first.Conversation.ID
		if _, err := n.db.AddAgentMessage(ctx, c.app.ID, conv, "Grace", "hi, how can I help?"); err != nil {
			t.Fatal(err)
		}
		if _, err := n.db.SetConversationStatus(ctx, c.app.ID, conv, store.StatusClosed); err != nil {
			t.Fatal(err)
		}
		if _, err := n.db.SetConversationStatus(ctx, c.app.ID, conv, store.StatusClosed); err != nil { // no change, no event
			t.Fatal(err)
		}
		c.say(t, n.db, conv, "one more thing") // reopens it

		want := []string{"conversation.created", "message.created user hello", "message.created agent hi, how can I help?",
			"conversation.closed", "conversation.reopened", "message.created user one more thing"}
		waitFor(t, "every event delivered", func() bool {
			ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 50)
			done := 0
			for _, d := range ds {
				if d.Status != store.DeliveryPending {
					done++
				}
			}
			return done >= len(want)
		})
		var got []string
		ids := map[string]bool{}
		for _, rc := range r.received() {
			p := rc.payload
			ids[rc.id] = true
			if p.Data.App.ID != c.app.ID || p.Data.Conversation.ID != conv || p.Data.User.ID != c.user.SubjectID {
				t.Errorf("%s names app %q, conversation %q, user %q", p.Type, p.Data.App.ID, p.Data.Conversation.ID, p.Data.User.ID)
			}
			if !p.Data.User.Verified || p.Data.User.UserID != "u1" || p.Data.User.Email != "ada@example.com" {
				t.Errorf("%s: user %+v, want verified u1 with the signed email", p.Type, p.Data.User)
			}
			s := p.Type
			if m := p.Data.Message; m != nil {
				s += " " + m.Author + " " + m.Body
			}
			got = append(got, s)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("received %q\nwant %q", got, want)
		}
		if len(ids) != len(want) {
			t.Errorf("%d webhook-ids for %d events", len(ids), len(want))
		}
		ds, err := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Status != store.DeliveryDelivered || d.Attempts != 1 || d.ResponseCode != 204 {
				t.Errorf("delivery %s: %s after %d attempts, code %d", d.EventType, d.Status, d.Attempts, d.ResponseCode)
			}
		}
	})
}

// TestEmailOnlyWhenSigned: an email the page merely claimed is not
// passed on.
func TestEmailOnlyWhenSigned(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, filepath.Join(t.TempDir(), "parley.db"), jobs.Config{Guard: loopback(t)})
	r := newReceiver(t)
	c := newChat(t, n.db, r, webhooks.MessageCreated)
	claimed, err := n.db.CreateSession(ctx, store.NewSession{AppID: c.app.ID, Kind: store.KindUnverified, IdentityKey: "uid:u2", UserID: "u2",
		Email: "claimed@example.com", ParentOrigin: "https://shop.example", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c.user = claimed
	c.say(t, n.db, "", "hello")
	waitFor(t, "the message", func() bool { return len(r.received()) == 1 })
	u := r.received()[0].payload.Data.User
	if u.Email != "" || u.Verified || u.UserID != "u2" {
		t.Errorf("user %+v: want u2, unverified, without the claimed email", u)
	}
}

// TestFailedAttemptIsRetriedFreshlySigned: a failure is tried again with
// the same webhook-id and a new timestamp and signature.
func TestFailedAttemptIsRetriedFreshlySigned(t *testing.T) {
	databases(t, func(t *testing.T, location string) {
		ctx := context.Background()
		n := startNode(t, location, jobs.Config{Guard: loopback(t)})
		r := newReceiver(t)
		r.answer = func(n int) int {
			if n == 1 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}
		c := newChat(t, n.db, r, webhooks.MessageCreated)
		c.say(t, n.db, "", "hello")
		waitFor(t, "the first attempt recorded", func() bool {
			ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
			return len(ds) == 1 && ds[0].Attempts == 1
		})
		ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
		if d := ds[0]; d.Status != store.DeliveryRetrying || d.ResponseCode != 503 || !strings.Contains(d.ResponseExcerpt, "answer to request") || d.Error == "" {
			t.Errorf("after a 503: %+v", d)
		}
		// The receiver counts a request before it answers; the attempt is
		// recorded only after the answer, so wait for the record.
		waitFor(t, "the retry recorded", func() bool {
			ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
			return len(ds) == 1 && ds[0].Attempts == 2
		})
		if got := len(r.received()); got != 1 {
			t.Errorf("%d requests accepted, want 1", got)
		}
		ds, _ = n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
		if d := ds[0]; d.Status != store.DeliveryDelivered || d.Attempts != 2 || d.ResponseCode != 200 || d.Error != "" {
			t.Errorf("after the retry: %+v", d)
		}
		got := r.received()[0]
		if got.id != ds[0].EventID {
			t.Errorf("retry's webhook-id %s, want the event's %s", got.id, ds[0].EventID)
		}
	})
}

// TestRedirectsAreNotFollowed: a 3xx is a failure, and its Location is
// never requested (it could point inside the network).
func TestRedirectsAreNotFollowed(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, filepath.Join(t.TempDir(), "parley.db"), jobs.Config{Guard: loopback(t)})
	var hit sync.Mutex
	hits := 0
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hit.Lock(); hits++; hit.Unlock() }))
	defer target.Close()
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	r := newReceiver(t)
	c := newChat(t, n.db, r, webhooks.MessageCreated)
	if err := n.db.RemoveWebhookEndpoint(ctx, c.app.ID, c.endpoint.ID); err != nil {
		t.Fatal(err)
	}
	e, err := n.db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: c.app.ID, URL: redirect.URL})
	if err != nil {
		t.Fatal(err)
	}
	c.say(t, n.db, "", "hello")
	waitFor(t, "the attempt", func() bool {
		ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, e.ID, 1)
		return len(ds) == 1 && ds[0].Attempts == 1
	})
	ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, e.ID, 1)
	if d := ds[0]; d.Status != store.DeliveryRetrying || d.ResponseCode != 307 || !strings.Contains(d.Error, "redirects are not followed") {
		t.Errorf("after a redirect: %+v", d)
	}
	hit.Lock()
	defer hit.Unlock()
	if hits != 0 {
		t.Errorf("the redirect's target was requested %d times", hits)
	}
}

// TestInternalAddressRefusedAtSend: an endpoint added while the operator
// allowed loopback is refused once the node no longer does, before any
// request.
func TestInternalAddressRefusedAtSend(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, filepath.Join(t.TempDir(), "parley.db"), jobs.Config{}) // no allow list
	r := newReceiver(t)
	c := newChat(t, n.db, r, webhooks.MessageCreated)
	c.say(t, n.db, "", "hello")
	waitFor(t, "the attempt", func() bool {
		ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
		return len(ds) == 1 && ds[0].Attempts == 1
	})
	ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
	if d := ds[0]; d.ResponseCode != 0 || !strings.Contains(d.Error, "internal address") || strings.Contains(d.Error, "127.0.0.1") {
		t.Errorf("after sending to loopback unallowed: %+v", d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.requests != 0 {
		t.Errorf("the receiver on loopback got %d requests", r.requests)
	}
}

// TestFailingEndpointIsDisabled: once an endpoint has failed for
// DisableAfter, it is disabled with the reason, gets no new events, and
// can be turned back on.
func TestFailingEndpointIsDisabled(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, filepath.Join(t.TempDir(), "parley.db"), jobs.Config{Guard: loopback(t), DisableAfter: time.Nanosecond})
	r := newReceiver(t)
	r.answer = func(int) int { return http.StatusInternalServerError }
	c := newChat(t, n.db, r, webhooks.MessageCreated)
	c.say(t, n.db, "", "hello")
	endpoint := func() store.WebhookEndpoint {
		es, err := n.db.WebhookEndpoints(ctx, c.app.ID)
		if err != nil || len(es) != 1 {
			t.Fatal(es, err)
		}
		return es[0]
	}
	waitFor(t, "the endpoint disabled", func() bool { return endpoint().Disabled })
	if e := endpoint(); !strings.Contains(e.DisabledReason, "the endpoint answered 500") {
		t.Errorf("disabled because %q", e.DisabledReason)
	}
	waitFor(t, "the delivery given up", func() bool {
		ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
		return ds[0].Status == store.DeliveryFailed
	})
	c.say(t, n.db, "", "while it is off")
	if ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 10); len(ds) != 1 {
		t.Errorf("%d deliveries to a disabled endpoint, want only the first", len(ds))
	}
	if err := n.db.EnableWebhookEndpoint(ctx, c.app.ID, c.endpoint.ID); err != nil {
		t.Fatal(err)
	}
	if e := endpoint(); e.Disabled || e.DisabledReason != "" || !e.FailingSince.IsZero() {
		t.Errorf("after enabling: %+v", e)
	}
}

// TestResendSendsTheSameEvent: a finished delivery sent again arrives
// with its webhook-id; one still being tried is not sent twice.
func TestResendSendsTheSameEvent(t *testing.T) {
	databases(t, func(t *testing.T, location string) {
		ctx := context.Background()
		n := startNode(t, location, jobs.Config{Guard: loopback(t)})
		r := newReceiver(t)
		c := newChat(t, n.db, r, webhooks.MessageCreated)
		c.say(t, n.db, "", "hello")
		waitFor(t, "the delivery", func() bool {
			ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
			return len(ds) == 1 && ds[0].Status == store.DeliveryDelivered
		})
		ds, _ := n.db.WebhookDeliveries(ctx, c.app.ID, c.endpoint.ID, 1)
		other := newChat(t, n.db, newReceiver(t))
		if err := n.db.ResendWebhookDelivery(ctx, other.app.ID, c.endpoint.ID, ds[0].ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("resend from another app: %v, want ErrNotFound", err)
		}
		if err := n.db.ResendWebhookDelivery(ctx, c.app.ID, c.endpoint.ID, ds[0].ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the resend", func() bool { return len(r.received()) == 2 })
		if got := r.received(); got[0].id != got[1].id || got[1].id != ds[0].EventID {
			t.Errorf("resent as %s, first sent as %s", got[1].id, got[0].id)
		}
	})
}

// TestRiverSchemaIsCurrent: the store's migrations made every table River
// needs, as River's own migrator sees it; an upgrade of River that adds a
// version fails here until a migration brings it.
func TestRiverSchemaIsCurrent(t *testing.T) {
	databases(t, func(t *testing.T, location string) {
		ctx := context.Background()
		db, err := store.Open(ctx, location, key)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var m *rivermigrate.Migrator[*sql.Tx]
		if store.IsPostgresURL(location) {
			raw, err := sql.Open("pgx", location)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			m, err = rivermigrate.New(riverdatabasesql.New(raw), nil)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			if m, err = rivermigrate.New(riversqlite.New(db.SQLiteWriter()), nil); err != nil {
				t.Fatal(err)
			}
		}
		res, err := m.Validate(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK {
			t.Errorf("River's schema is not current: %v", res.Messages)
		}
	})
}

// TestTwoNodesDeliverEachEventOnce: two nodes on one PostgreSQL database
// share the deliveries: each arrives once, and no attempt ever runs
// beside another of the same event.
func TestTwoNodesDeliverEachEventOnce(t *testing.T) {
	ctx := context.Background()
	location := pgtest.URL(t)
	a := startNode(t, location, jobs.Config{Guard: loopback(t)})
	b := startNode(t, location, jobs.Config{Guard: loopback(t)})
	r := newReceiver(t)
	r.hold = 20 * time.Millisecond // widens the window for a second sender
	c := newChat(t, a.db, r, webhooks.MessageCreated)
	const messages = 60
	var wg sync.WaitGroup
	for i := range messages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := a.db
			if i%2 == 1 {
				db = b.db
			}
			c.say(t, db, "", fmt.Sprintf("message %d", i))
		}()
	}
	wg.Wait()
	waitFor(t, "every message delivered", func() bool { return len(r.received()) >= messages })
	// A request is counted before its answer, and recorded after it.
	waitFor(t, "every delivery recorded", func() bool {
		depth, err := a.db.WebhookQueueDepth(ctx)
		return err == nil && depth == 0
	})
	time.Sleep(time.Second) // room for a repeat, if there were one
	seen := map[string]int{}
	for _, rc := range r.received() {
		seen[rc.payload.Data.Message.Body]++
	}
	if len(seen) != messages {
		t.Errorf("%d different messages delivered, want %d", len(seen), messages)
	}
	for body, n := range seen {
		if n != 1 {
			t.Errorf("%q delivered %d times", body, n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.overlaps != 0 {
		t.Errorf("%d attempts ran beside another of the same event", r.overlaps)
	}
}

// TestRolledBackWriteSendsNothing: a write that fails takes its
// deliveries with it.
func TestRolledBackWriteSendsNothing(t *testing.T) {
	databases(t, func(t *testing.T, location string) {
		ctx := context.Background()
		n := startNode(t, location, jobs.Config{Guard: loopback(t)})
		r := newReceiver(t)
		c := newChat(t, n.db, r)
		_, err := n.db.AddAgentMessage(ctx, c.app.ID, "cnv_nosuchconversation", "Grace", "hello?")
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("reply to no conversation: %v", err)
		}
		c.say(t, n.db, "", "hello") // a marker that comes after
		waitFor(t, "the marker", func() bool { return len(r.received()) == 2 })
		for _, rc := range r.received() {
			if m := rc.payload.Data.Message; m != nil && m.Author != store.AuthorUser {
				t.Errorf("a %s message from a failed write was delivered", m.Author)
			}
		}
	})
}
