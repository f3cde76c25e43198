package main

// The cluster profile (-profile cluster, make bench-cluster): the same
// four workloads on one node on SQLite, on three nodes on PostgreSQL with
// NATS, and on three nodes with LISTEN/NOTIFY, everything on this machine.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/pgtest"
)

// clusterConfig sizes the cluster workloads.
type clusterConfig struct {
	Sessions, SessionConc int           // session creation
	LatUsers              int           // cross-node delivery: users, each with a socket on two nodes
	LatRate               float64       // messages a second, all users
	LatDur                time.Duration //
	SusSockets            int           // sustained: sockets sending as fast as allowed
	SusDur                time.Duration //
	StormUsers            int           // kill one node: users with a socket on it
	StormMsgs             int           // messages each user has acked before the kill
}

var clusterProfile = clusterConfig{
	Sessions: 1000, SessionConc: 32,
	LatUsers: 500, LatRate: 1000, LatDur: 15 * time.Second,
	SusSockets: 600, SusDur: 15 * time.Second,
	StormUsers: 300, StormMsgs: 5,
}

// setup is one deployment under test.
type setup struct {
	Name     string
	nodes    []*server
	pgURL    string // "" on SQLite
	sqlite   string // the SQLite file
	cleanups []func()
}

func (s *setup) close() {
	for _, n := range s.nodes {
		if n.cmd != nil && n.cmd.ProcessState == nil {
			n.stop()
		}
	}
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}

// clusterResult is one setup's figures.
type clusterResult struct {
	Name                 string
	Nodes                int
	SessionRate          float64
	SessionLat           *Hist
	LatRate              float64
	Sent, Acked, Deliv   int64
	Ack, Deliver         *Hist
	SusRate              float64
	SusAcked, SusStored  int64
	StormUsers           int
	StormResume          *Hist
	Gaps, Dups, LostAcks int
	StormErr             string
}

func runClusterProfile(ctx context.Context, bin, dir string, cfg clusterConfig, logf func(string, ...any)) ([]*clusterResult, error) {
	pg, err := pgtest.StartDurable()
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	defer pg.Close()
	var out []*clusterResult
	for _, kind := range []string{"sqlite", "nats", "listen-notify"} {
		sub := filepath.Join(dir, kind)
		os.MkdirAll(sub, 0o700)
		s, err := startSetup(ctx, bin, sub, kind, pg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		logf("%s: %d node(s) up", s.Name, len(s.nodes))
		r, err := runSetup(ctx, s, cfg, logf)
		s.close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// startSetup starts one node on SQLite, or three on a new PostgreSQL
// database with NATS or LISTEN/NOTIFY.
func startSetup(ctx context.Context, bin, dir, kind string, pg *pgtest.Durable) (*setup, error) {
	s := &setup{}
	if kind == "sqlite" {
		s.Name = "1 node, SQLite"
		srv, err := startServer(ctx, bin, dir)
		if err != nil {
			return nil, err
		}
		s.nodes, s.sqlite = []*server{srv}, srv.db
		return s, nil
	}
	name := "bench_" + strings.ReplaceAll(kind, "-", "_")
	url, err := pg.CreateDatabase(name)
	if err != nil {
		return nil, err
	}
	s.pgURL = url
	extra := []string{}
	s.Name = "3 nodes, PostgreSQL + LISTEN/NOTIFY"
	if kind == "nats" {
		natsURL, stop, err := startNATS(dir)
		if err != nil {
			return nil, err
		}
		s.cleanups = append(s.cleanups, stop)
		extra = append(extra, "--nats-url", natsURL)
		s.Name = "3 nodes, PostgreSQL + NATS"
	}
	key := benchKey() // the same on every node
	first, err := startServerOn(ctx, bin, dir, "node1", key, url, "", extra...)
	if err != nil {
		s.close()
		return nil, err
	}
	s.nodes = append(s.nodes, first)
	for i := 2; i <= 3; i++ {
		n, err := startServerOn(ctx, bin, dir, fmt.Sprintf("node%d", i), key, url, first.url, extra...)
		if err != nil {
			s.close()
			return nil, err
		}
		n.appID, n.secret, n.apiKey, n.public = first.appID, first.secret, first.apiKey, first.url
		s.nodes = append(s.nodes, n)
	}
	return s, nil
}

// startNATS runs Debian's nats-server on a free port.
func startNATS(dir string) (string, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	host, port, _ := strings.Cut(addr, ":")
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
	}
	log, _ := os.Create(filepath.Join(dir, "nats.log"))
	cmd := exec.Command(bin, "-a", host, "-p", port)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("nats-server (apt-get install -y nats-server): %w", err)
	}
	time.Sleep(300 * time.Millisecond)
	return "nats://" + addr, func() { cmd.Process.Kill(); cmd.Wait(); log.Close() }, nil
}

// runSetup runs the four workloads on one setup.
func runSetup(ctx context.Context, s *setup, cfg clusterConfig, logf func(string, ...any)) (*clusterResult, error) {
	r := &clusterResult{Name: s.Name, Nodes: len(s.nodes), SessionLat: new(Hist), Ack: new(Hist), Deliver: new(Hist), StormResume: new(Hist)}
	clients := make([]*client, len(s.nodes))
	for i, n := range s.nodes {
		clients[i] = newClient(n)
	}
	node := func(i int) *client { return clients[i%len(clients)] }

	// Sessions: POST and socket auth, spread over the nodes.
	start := time.Now()
	err := parallel(cfg.Sessions, cfg.SessionConc, func(i int) error {
		t := time.Now()
		tok, err := node(i).session(ctx, fmt.Sprintf("s-%d", i))
		if err != nil {
			return err
		}
		w, err := node(i+1).dial(ctx, tok)
		if err != nil {
			return err
		}
		r.SessionLat.Record(time.Since(t))
		w.close()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	r.SessionRate = float64(cfg.Sessions) / time.Since(start).Seconds()
	logf("%s: sessions %.0f/s", s.Name, r.SessionRate)

	if err := crossLatency(ctx, clients, cfg, r); err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	logf("%s: delivery p99 %v at %.0f msg/s", s.Name, r.Deliver.Quantile(0.99), r.LatRate)
	if err := sustainedAcross(ctx, s, clients, cfg, r); err != nil {
		return nil, fmt.Errorf("sustained: %w", err)
	}
	logf("%s: sustained %.0f msg/s", s.Name, r.SusRate)
	if len(s.nodes) > 1 {
		if err := killStorm(ctx, s, clients, cfg, r); err != nil {
			r.StormErr = err.Error()
		}
		logf("%s: storm resume p99 %v, gaps %d, dups %d, lost %d", s.Name, r.StormResume.Quantile(0.99), r.Gaps, r.Dups, r.LostAcks)
	}
	return r, nil
}

// pairedUser is a user with a sending socket on one node and a receiving
// socket on the next.
type pairedUser struct {
	id, convo string
	a, b      *wconn
}

func openPaired(ctx context.Context, clients []*client, prefix string, n int) ([]*pairedUser, error) {
	us := make([]*pairedUser, n)
	err := parallel(n, setupConc, func(i int) error {
		c := clients[i%len(clients)]
		u, err := openUser(ctx, c, fmt.Sprintf("%s%d", prefix, i), false)
		if err != nil {
			return err
		}
		tok, err := c.session(ctx, u.id)
		if err != nil {
			u.close()
			return err
		}
		b, err := clients[(i+1)%len(clients)].dial(ctx, tok)
		if err != nil {
			u.close()
			return err
		}
		us[i] = &pairedUser{id: u.id, convo: u.convo, a: u.a, b: b}
		return nil
	})
	if err != nil {
		closePaired(us)
		return nil, err
	}
	return us, nil
}

func closePaired(us []*pairedUser) {
	for _, u := range us {
		if u != nil {
			u.a.close()
			u.b.close()
		}
	}
}

// crossLatency sends at a fixed rate and times send → ack on the sender's
// node and send → delivery on the receiver's, another node.
func crossLatency(ctx context.Context, clients []*client, cfg clusterConfig, r *clusterResult) error {
	us, err := openPaired(ctx, clients, "lat-", cfg.LatUsers)
	if err != nil {
		return err
	}
	defer closePaired(us)
	var sentAt sync.Map
	var acked, delivered, sent atomic.Int64
	for _, u := range us {
		go u.a.readLoop(func(f *inFrame, at time.Time) {
			if f.Type == "ack" {
				if t, ok := sentAt.Load(f.ClientMsgID); ok {
					r.Ack.Record(at.Sub(t.(time.Time)))
					acked.Add(1)
				}
			}
		})
		go u.b.readLoop(func(f *inFrame, at time.Time) {
			var m message
			if f.Type != "message" || json.Unmarshal(f.Message, &m) != nil {
				return
			}
			if t, ok := sentAt.Load(m.ClientMsgID); ok {
				r.Deliver.Record(at.Sub(t.(time.Time)))
				delivered.Add(1)
			}
		})
	}
	interval := time.Duration(float64(len(us)) / cfg.LatRate * float64(time.Second))
	start := time.Now()
	end := start.Add(cfg.LatDur)
	var wg sync.WaitGroup
	for i, u := range us {
		wg.Go(func() {
			next := start.Add(interval * time.Duration(i) / time.Duration(len(us)))
			for k := 1; next.Before(end); k++ {
				time.Sleep(time.Until(next))
				cmid := fmt.Sprintf("%s-%d", u.id, k)
				sentAt.Store(cmid, time.Now())
				if u.a.send(sendFrame{Type: "send", ConversationID: u.convo, ClientMsgID: cmid, Body: "bench"}) != nil {
					return
				}
				sent.Add(1)
				next = next.Add(interval)
			}
		})
	}
	wg.Wait()
	r.LatRate = float64(sent.Load()) / time.Since(start).Seconds()
	waitFor(10*time.Second, func() bool { return acked.Load() >= sent.Load() && delivered.Load() >= acked.Load() })
	r.Sent, r.Acked, r.Deliv = sent.Load(), acked.Load(), delivered.Load()
	return nil
}

// sustainedAcross sends as fast as the per-socket limit allows from
// sockets on every node, and checks every ack against the database.
func sustainedAcross(ctx context.Context, s *setup, clients []*client, cfg clusterConfig, r *clusterResult) error {
	users := make([]*user, cfg.SusSockets)
	err := parallel(cfg.SusSockets, setupConc, func(i int) error {
		u, err := openUser(ctx, clients[i%len(clients)], fmt.Sprintf("sus-%d", i), false)
		users[i] = u
		return err
	})
	if err != nil {
		closeUsers(users)
		return err
	}
	defer closeUsers(users)
	before, err := countUserMessages(ctx, s)
	if err != nil {
		return err
	}
	l := startLoad(users, 9, 8, cfg.SusDur)
	l.wait(10 * time.Second)
	acked := int64(len(l.ackedIDs()))
	after, err := countUserMessages(ctx, s)
	if err != nil {
		return err
	}
	r.SusAcked, r.SusStored = acked, after-before
	r.SusRate = float64(acked) / cfg.SusDur.Seconds()
	return nil
}

func countUserMessages(ctx context.Context, s *setup) (int64, error) {
	if s.pgURL == "" {
		db, err := sql.Open("sqlite", "file:"+s.sqlite+"?mode=ro")
		if err != nil {
			return 0, err
		}
		defer db.Close()
		var n int64
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE author = 'user'`).Scan(&n)
		return n, err
	}
	conn, err := pgx.Connect(ctx, s.pgURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, `SELECT count(*) FROM messages WHERE author = 'user'`).Scan(&n)
	return n, err
}

// killStorm: users with a socket on node 1 each have StormMsgs acked
// messages; node 1 is killed (SIGKILL); each reconnects to another node
// and resumes with after_seq of the last message it saw. Timed: from the
// reconnect to the history being complete. Counted: gaps and repeats in
// what each user saw, and acked messages missing from its history.
func killStorm(ctx context.Context, s *setup, clients []*client, cfg clusterConfig, r *clusterResult) error {
	r.StormUsers = cfg.StormUsers
	type stormUser struct {
		tok, convo string
		acked      []string
		seen       []int64
	}
	us := make([]*stormUser, cfg.StormUsers)
	err := parallel(cfg.StormUsers, setupConc, func(i int) error {
		c := clients[0]
		tok, err := c.session(ctx, fmt.Sprintf("storm-%d", i))
		if err != nil {
			return err
		}
		w, err := c.dial(ctx, tok)
		if err != nil {
			return err
		}
		u := &stormUser{tok: tok}
		for k := range cfg.StormMsgs {
			cmid := fmt.Sprintf("st%d-%d", i, k)
			m, err := sendAndAck(w, u.convo, cmid, "before the kill")
			if err != nil {
				w.close()
				return err
			}
			u.convo = m.ConversationID
			u.acked = append(u.acked, cmid)
			u.seen = append(u.seen, m.Seq)
		}
		us[i] = u
		// The socket stays open until the node dies.
		go func() { io.Copy(io.Discard, w.ws.UnderlyingConn()) }()
		return nil
	})
	if err != nil {
		return err
	}
	s.nodes[0].kill()
	others := clients[1:]
	var mu sync.Mutex
	err = parallel(len(us), 64, func(i int) error {
		u := us[i]
		t := time.Now()
		w, err := others[i%len(others)].dial(ctx, u.tok)
		if err != nil {
			return err
		}
		defer w.close()
		if err := w.send(map[string]any{"type": "open", "conversation_id": u.convo, "after_seq": 0}); err != nil {
			return err
		}
		w.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			_, data, err := w.ws.ReadMessage()
			if err != nil {
				return err
			}
			var f struct {
				Type     string `json:"type"`
				Messages []struct {
					Seq         int64  `json:"seq"`
					ClientMsgID string `json:"client_msg_id"`
				} `json:"messages"`
			}
			if json.Unmarshal(data, &f) != nil || f.Type != "history" {
				continue
			}
			got := map[string]bool{}
			var seqs []int64
			for _, m := range f.Messages {
				got[m.ClientMsgID] = true
				seqs = append(seqs, m.Seq)
			}
			r.StormResume.Record(time.Since(t))
			mu.Lock()
			defer mu.Unlock()
			for _, id := range u.acked {
				if !got[id] {
					r.LostAcks++
				}
			}
			for j, seq := range seqs {
				if seq != int64(j+1) {
					r.Gaps++
					break
				}
			}
			sorted := slices.Clone(seqs)
			slices.Sort(sorted)
			if len(slices.Compact(sorted)) != len(seqs) {
				r.Dups++
			}
			return nil
		}
	})
	if err != nil {
		return fmt.Errorf("after the kill: %w", err)
	}
	return nil
}

// startServerOn starts `parley serve` on a PostgreSQL database; the first
// node (public "") creates the app and the owner.
func startServerOn(ctx context.Context, bin, dir, name, key, dbURL, public string, extra ...string) (*server, error) {
	s := &server{bin: bin, dir: dir}
	s.env = append(os.Environ(), "PARLEY_MASTER_KEY="+key, "PARLEY_DB=", "PARLEY_DATABASE_URL=", "PARLEY_NATS_URL=")
	if public == "" {
		if err := s.createApp(ctx, "--database-url", dbURL); err != nil {
			return nil, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.url = "http://" + addr
	if public == "" {
		public = s.url
	}
	s.stderr, err = os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--database-url", dbURL, "--addr", addr, "--public-url", public}, benchLimits...)
	s.cmd = exec.Command(bin, append(args, extra...)...)
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := newClient(s).http.Get(s.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("%s exited: %v (log in %s)", name, err, s.stderr.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, errors.New(name + " was not ready within 30 s")
		}
	}
}

// benchKey is a new master key, in hex.
func benchKey() string {
	k := make([]byte, 32)
	rand.Read(k)
	return hex.EncodeToString(k)
}

// clusterMarkdown reports the cluster profile, one column per setup.
func clusterMarkdown(rs []*clusterResult, cfg clusterConfig, took time.Duration) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("# Parley on several nodes: benchmark")
	p("")
	p("Written by `make bench-cluster` (`go run ./cmd/parley-bench -profile cluster`) in %s. Everything ran on this one machine: the load generator, PostgreSQL (durable defaults: `fsync` and `synchronous_commit` on), NATS and every node, so the nodes share its cores; the figures are what this machine does, not what three machines would.", took.Round(time.Second))
	p("")
	for _, line := range machine() {
		p("%s", line)
	}
	p("")
	cols := make([]string, len(rs))
	for i, r := range rs {
		cols[i] = r.Name
	}
	p("| | %s |", strings.Join(cols, " | "))
	p("|---|%s", strings.Repeat("---|", len(rs)))
	row := func(name string, f func(r *clusterResult) string) {
		vals := make([]string, len(rs))
		for i, r := range rs {
			vals[i] = f(r)
		}
		p("| %s | %s |", name, strings.Join(vals, " | "))
	}
	row(fmt.Sprintf("sessions per second (POST on one node, socket auth on the next; %d, %d at once)", cfg.Sessions, cfg.SessionConc), func(r *clusterResult) string {
		return fmt.Sprintf("%.0f/s (p99 %s)", r.SessionRate, ms(r.SessionLat.Quantile(.99)))
	})
	row(fmt.Sprintf("send → ack, %d users at %.0f msg/s", cfg.LatUsers, cfg.LatRate), func(r *clusterResult) string {
		return fmt.Sprintf("p50 %s · p99 %s", ms(r.Ack.Quantile(.5)), ms(r.Ack.Quantile(.99)))
	})
	row("send → delivery on another node's socket (the same node's on SQLite); target p99 ≤ 25 ms at 1,000 msg/s", func(r *clusterResult) string {
		ok := r.Deliver.Quantile(.99) <= 25*time.Millisecond && r.LatRate >= 0.95*cfg.LatRate && r.Deliv >= r.Acked
		return fmt.Sprintf("p50 %s · p99 %s at %.0f msg/s (%d of %d acked delivered): %s", ms(r.Deliver.Quantile(.5)), ms(r.Deliver.Quantile(.99)), r.LatRate, r.Deliv, r.Acked, verdict(ok))
	})
	row(fmt.Sprintf("sustained persisted messages per second (%d sockets, 9/s each)", cfg.SusSockets), func(r *clusterResult) string {
		lost := max(0, r.SusAcked-r.SusStored)
		return fmt.Sprintf("%.0f/s; %d acked, %d stored, %d lost", r.SusRate, r.SusAcked, r.SusStored, lost)
	})
	row(fmt.Sprintf("kill -9 of one node: %d users on it reconnect elsewhere, reconnect → history complete", cfg.StormUsers), func(r *clusterResult) string {
		if r.Nodes == 1 {
			return "—"
		}
		if r.StormErr != "" {
			return "failed: " + r.StormErr
		}
		ok := r.Gaps == 0 && r.Dups == 0 && r.LostAcks == 0
		return fmt.Sprintf("p99 %s; gaps %d, duplicates %d, lost acks %d: %s", ms(r.StormResume.Quantile(.99)), r.Gaps, r.Dups, r.LostAcks, verdict(ok))
	})
	p("")
	p("Targets (issue 14): cross-node delivery p99 ≤ 25 ms at 1,000 msg/s; zero lost, zero gaps, zero duplicates in every fault run. The fault tests themselves (`cmd/parley` TestCluster…) check the zeros on every `make test`.")
	return b.String()
}
