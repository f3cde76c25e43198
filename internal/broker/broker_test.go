package broker_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/broker"
	"github.com/parley-chat/parley/internal/natstest"
	"github.com/parley-chat/parley/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const waitTimeout = 10 * time.Second

// recorder is a Handler that keeps what it was given.
type recorder struct {
	mu      sync.Mutex
	events  []broker.Event
	resyncs int
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1000)} }

func (r *recorder) HandleEvent(e broker.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.changed <- struct{}{}
}

func (r *recorder) HandleResync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
	r.changed <- struct{}{}
}

// waitFor waits until ok holds of the recorder.
func (r *recorder) waitFor(t *testing.T, what string, ok func(events []broker.Event, resyncs int) bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		r.mu.Lock()
		done := ok(r.events, r.resyncs)
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (r *recorder) snapshot() []broker.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Event(nil), r.events...)
}

func waitReady(t *testing.T, b broker.Broker, want bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for (b.Ready(context.Background()) == nil) != want {
		if time.Now().After(deadline) {
			t.Fatalf("Ready = %v, want ready %v", b.Ready(context.Background()), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// node is one node's broker and what its handler got.
type node struct {
	id  string
	b   broker.Broker
	rec *recorder
}

// implementation opens a broker for a node; fault breaks the connection
// of every node, and heals it again.
type implementation struct {
	open  func(t *testing.T, id string, h broker.Handler) broker.Broker
	fault func(t *testing.T)
}

func implementations(t *testing.T) map[string]implementation {
	log := slog.New(slog.DiscardHandler)
	return map[string]implementation{
		"nats": func() implementation {
			srv := natstest.Start(t)
			return implementation{
				open: func(t *testing.T, id string, h broker.Handler) broker.Broker {
					b, err := broker.OpenNATS(srv.URL(), id, h, log)
					if err != nil {
						t.Fatal(err)
					}
					return b
				},
				fault: func(t *testing.T) { srv.Restart() },
			}
		}(),
		"postgres": func() implementation {
			url := pgtest.URL(t)
			return implementation{
				open: func(t *testing.T, id string, h broker.Handler) broker.Broker {
					b, err := broker.OpenPostgres(url, id, h, log)
					if err != nil {
						t.Fatal(err)
					}
					return b
				},
				fault: func(t *testing.T) { terminateListeners(t, url) },
			}
		}(),
	}
}

// terminateListeners kills the server side of every listening connection,
// as a restart of PostgreSQL or a network failure would.
func terminateListeners(t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`).Scan(&n)
	if err != nil || n == 0 {
		t.Fatalf("terminated %d listeners: %v", n, err)
	}
}

// One suite for every implementation.
func TestBrokers(t *testing.T) {
	for name, impl := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			nodes := make([]*node, 3)
			for i := range nodes {
				n := &node{id: broker.NewNodeID(), rec: newRecorder()}
				n.b = impl.open(t, n.id, n.rec)
				t.Cleanup(func() { n.b.Close() })
				waitReady(t, n.b, true)
				nodes[i] = n
			}
			ctx := context.Background()

			t.Run("events reach the other nodes in order, not their publisher", func(t *testing.T) {
				for seq := int64(1); seq <= 50; seq++ {
					e := broker.Event{Kind: broker.KindMessage, Node: nodes[0].id, AppID: "app_1", SubjectID: "sub_1", ConversationID: "cnv_1", Seq: seq}
					if err := nodes[0].b.Publish(ctx, e); err != nil {
						t.Fatal(err)
					}
				}
				for _, n := range nodes[1:] {
					n.rec.waitFor(t, "50 events", func(ev []broker.Event, _ int) bool { return len(ev) >= 50 })
					for i, e := range n.rec.snapshot()[:50] {
						if e.Seq != int64(i+1) || e.ConversationID != "cnv_1" || e.AppID != "app_1" || e.SubjectID != "sub_1" {
							t.Fatalf("event %d = %+v", i, e)
						}
					}
				}
				time.Sleep(100 * time.Millisecond)
				if got := len(nodes[0].rec.snapshot()); got != 0 {
					t.Fatalf("the publisher got %d of its own events", got)
				}
			})

			t.Run("an event over the size limit is refused, not cut", func(t *testing.T) {
				e := broker.Event{Kind: broker.KindTyping, Node: nodes[0].id, AppID: "app_1", AuthorName: strings.Repeat("x", 3000)}
				if err := nodes[0].b.Publish(ctx, e); err == nil {
					t.Fatal("an oversized event was published")
				}
			})

			t.Run("a lost connection is noticed, healed, and followed by a resync", func(t *testing.T) {
				before := make([]int, len(nodes))
				for i, n := range nodes {
					n.rec.mu.Lock()
					before[i] = n.rec.resyncs
					n.rec.mu.Unlock()
				}
				impl.fault(t)
				for i, n := range nodes {
					n.rec.waitFor(t, "a resync", func(_ []broker.Event, r int) bool { return r > before[i] })
					waitReady(t, n.b, true)
				}
				// And events flow again.
				n0 := len(nodes[2].rec.snapshot())
				e := broker.Event{Kind: broker.KindUnread, Node: nodes[1].id, AppID: "app_1", SubjectID: "sub_2"}
				deadline := time.Now().Add(waitTimeout)
				for len(nodes[2].rec.snapshot()) == n0 { // a publish right at the reconnect may be lost: that is what resync is for
					if err := nodes[1].b.Publish(ctx, e); err != nil {
						t.Logf("publish: %v", err)
					}
					if time.Now().After(deadline) {
						t.Fatal("no event got through after the reconnect")
					}
					time.Sleep(100 * time.Millisecond)
				}
			})
		})
	}
}

// Ready is false while NATS is down, and the broker recovers by itself.
func TestNATSReadyFollowsTheServer(t *testing.T) {
	srv := natstest.Start(t)
	rec := newRecorder()
	b, err := broker.OpenNATS(srv.URL(), broker.NewNodeID(), rec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitReady(t, b, true)
	srv.Stop()
	waitReady(t, b, false)
	srv.Restart()
	waitReady(t, b, true)
}

func TestOpenNATSRefusesABadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:4222", "http://127.0.0.1:4222", "nats://"} {
		if _, err := broker.OpenNATS(u, "n", newRecorder(), slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("OpenNATS(%q) succeeded", u)
		}
	}
}
