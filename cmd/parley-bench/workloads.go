package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite"
)

// setupConc is how many sessions and sockets are opened at once while a
// workload sets up.
const setupConc = 64

// ---- (1) idle authenticated widget sockets ----

type idleResult struct {
	N                   int
	RSSBefore, RSSAfter int64
	PerSocket           float64 // bytes of server RSS per open socket
	Open                time.Duration
}

func runIdle(ctx context.Context, c *client, n int, logf func(string, ...any)) (*idleResult, error) {
	r := &idleResult{N: n}
	settle(c.srv)
	before, err := readProc(c.srv.pid())
	if err != nil {
		return nil, err
	}
	r.RSSBefore = before.RSS
	conns := make([]*wconn, n)
	defer func() {
		for _, w := range conns {
			if w != nil {
				w.close()
			}
		}
	}()
	start := time.Now()
	err = parallel(n, setupConc, func(i int) error {
		tok, err := c.session(ctx, fmt.Sprintf("idle-%d", i))
		if err != nil {
			return err
		}
		w, err := c.dial(ctx, tok)
		if err != nil {
			return err
		}
		conns[i] = w
		go w.readLoop(nil)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening idle sockets: %w", err)
	}
	r.Open = time.Since(start)
	logf("idle: %d sockets open in %v; letting the server settle", n, r.Open.Round(time.Millisecond))
	settle(c.srv)
	after, err := readProc(c.srv.pid())
	if err != nil {
		return nil, err
	}
	r.RSSAfter = after.RSS
	r.PerSocket = float64(r.RSSAfter-r.RSSBefore) / float64(n)
	return r, nil
}

// settle waits two seconds, long enough for the server's GC to run after a
// burst, so RSS reflects what is live rather than garbage not yet collected.
func settle(*server) { time.Sleep(2 * time.Second) }

// ---- (2) session creation: POST + websocket auth ----

type sessionResult struct {
	N, Conc int
	Elapsed time.Duration
	Rate    float64
	Lat     *Hist
	CPU     float64 // server, % of one core
}

func runSessions(ctx context.Context, c *client, n, conc int) (*sessionResult, error) {
	r := &sessionResult{N: n, Conc: conc, Lat: new(Hist)}
	p0, _ := readProc(c.srv.pid())
	start := time.Now()
	err := parallel(n, conc, func(i int) error {
		t := time.Now()
		tok, err := c.session(ctx, fmt.Sprintf("sess-%d", i))
		if err != nil {
			return err
		}
		w, err := c.dial(ctx, tok)
		if err != nil {
			return err
		}
		r.Lat.Record(time.Since(t))
		w.close()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("creating sessions: %w", err)
	}
	r.Elapsed = time.Since(start)
	p1, _ := readProc(c.srv.pid())
	r.CPU = cpuPercent(p0, p1)
	r.Rate = float64(n) / r.Elapsed.Seconds()
	return r, nil
}

// ---- (3) message → ack, → the user's second socket, → the agent's socket ----

type latencyResult struct {
	Users                        int
	Target, Rate                 float64
	Dur                          time.Duration
	Sent, Acked, Delivered, Errs int64
	Ack, Deliver                 *Hist
	AgentDelivered               int64  // messages that reached the dashboard's inbox socket
	Agent                        *Hist  // send → on the inbox socket
	AgentCut                     string // why the inbox socket ended early, if it did
	SlowAgentLogs                int    // server log lines "dropping slow client" for an owner's socket
	CPU                          float64
	RSS                          int64
}

// user is one chat user with a sender socket and, for workload 3, a second
// socket of the same user that the hub fans the sender's messages out to.
type user struct {
	id    string
	a, b  *wconn
	convo string
}

// openUser makes a session, dials its sockets (two when second) and sends
// the user's first message, which starts the conversation the rest go to.
func openUser(ctx context.Context, c *client, id string, second bool) (*user, error) {
	tok, err := c.session(ctx, id)
	if err != nil {
		return nil, err
	}
	u := &user{id: id}
	if u.a, err = c.dial(ctx, tok); err != nil {
		return nil, err
	}
	if second {
		if u.b, err = c.dial(ctx, tok); err != nil {
			u.a.close()
			return nil, err
		}
	}
	cmid := id + "-0"
	if err := u.a.send(sendFrame{Type: "send", ClientMsgID: cmid, Body: "hello"}); err != nil {
		u.close()
		return nil, err
	}
	u.a.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, data, err := u.a.ws.ReadMessage()
		if err != nil {
			u.close()
			return nil, fmt.Errorf("first message of %s: %v", id, err)
		}
		var f inFrame
		json.Unmarshal(data, &f)
		if f.Type == "error" {
			u.close()
			return nil, fmt.Errorf("first message of %s refused: %s", id, data)
		}
		if f.Type == "ack" && f.ClientMsgID == cmid && f.Conversation != nil {
			u.convo = f.Conversation.ID
			break
		}
	}
	u.a.ws.SetReadDeadline(time.Time{})
	return u, nil
}

func (u *user) close() {
	if u.a != nil {
		u.a.close()
	}
	if u.b != nil {
		u.b.close()
	}
}

func openUsers(ctx context.Context, c *client, prefix string, n int, second bool) ([]*user, error) {
	users := make([]*user, n)
	err := parallel(n, setupConc, func(i int) error {
		u, err := openUser(ctx, c, fmt.Sprintf("%s%d", prefix, i), second)
		users[i] = u
		return err
	})
	if err != nil {
		closeUsers(users)
		return nil, err
	}
	return users, nil
}

func closeUsers(users []*user) {
	for _, u := range users {
		if u != nil {
			u.close()
		}
	}
}

func runLatency(ctx context.Context, c *client, nUsers int, rate float64, dur time.Duration) (*latencyResult, error) {
	r := &latencyResult{Users: nUsers, Target: rate, Dur: dur, Ack: new(Hist), Deliver: new(Hist), Agent: new(Hist)}
	users, err := openUsers(ctx, c, "lat-", nUsers, true)
	if err != nil {
		return nil, fmt.Errorf("opening users: %w", err)
	}
	defer closeUsers(users)
	// The signed-in owner's inbox socket, which gets every message of the app.
	if err := c.signIn(ctx); err != nil {
		return nil, err
	}
	agent, err := c.dialAgent(ctx)
	if err != nil {
		return nil, err
	}
	defer agent.close()

	var sentAt sync.Map // client_msg_id → time.Time
	var acked, delivered, agentDelivered, errs atomic.Int64
	go agent.readLoop(func(data []byte, at time.Time) {
		var f struct {
			Type    string  `json:"type"`
			Message message `json:"message"`
		}
		if json.Unmarshal(data, &f) != nil || f.Type != "message" {
			return
		}
		if t, ok := sentAt.Load(f.Message.ClientMsgID); ok {
			r.Agent.Record(at.Sub(t.(time.Time)))
			agentDelivered.Add(1)
		}
	})
	for _, u := range users {
		go u.a.readLoop(func(f *inFrame, at time.Time) {
			switch f.Type {
			case "ack":
				if t, ok := sentAt.Load(f.ClientMsgID); ok {
					r.Ack.Record(at.Sub(t.(time.Time)))
					acked.Add(1)
				}
			case "error":
				errs.Add(1)
			}
		})
		go u.b.readLoop(func(f *inFrame, at time.Time) {
			if f.Type != "message" {
				return
			}
			var m message
			if json.Unmarshal(f.Message, &m) != nil {
				return
			}
			if t, ok := sentAt.Load(m.ClientMsgID); ok {
				r.Deliver.Record(at.Sub(t.(time.Time)))
				delivered.Add(1)
			}
		})
	}

	// Open loop: each user sends every nUsers/rate seconds, phases spread
	// evenly, whether or not earlier messages were acked.
	interval := time.Duration(float64(nUsers) / rate * float64(time.Second))
	p0, _ := readProc(c.srv.pid())
	start := time.Now()
	end := start.Add(dur)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			next := start.Add(interval * time.Duration(i) / time.Duration(nUsers))
			for k := 1; next.Before(end); k++ {
				time.Sleep(time.Until(next))
				cmid := fmt.Sprintf("%s-%d", u.id, k)
				sentAt.Store(cmid, time.Now())
				if u.a.send(sendFrame{Type: "send", ConversationID: u.convo, ClientMsgID: cmid, Body: "bench message"}) != nil {
					return
				}
				sent.Add(1)
				next = next.Add(interval)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	p1, _ := readProc(c.srv.pid())
	r.CPU = cpuPercent(p0, p1)
	r.RSS = p1.RSS
	r.Sent = sent.Load()
	r.Rate = float64(r.Sent) / elapsed.Seconds()
	waitFor(10*time.Second, func() bool {
		return acked.Load()+errs.Load() >= r.Sent && delivered.Load() >= acked.Load() &&
			(agentDelivered.Load() >= acked.Load() || agent.cut() != "")
	})
	r.Acked, r.Delivered, r.AgentDelivered, r.Errs = acked.Load(), delivered.Load(), agentDelivered.Load(), errs.Load()
	r.AgentCut = agent.cut()
	return r, nil
}

func waitFor(limit time.Duration, done func() bool) {
	deadline := time.Now().Add(limit)
	for !done() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- (4) sustained persisted messages ----

type sustainedResult struct {
	Sockets                        int
	PerSocket                      float64
	Window                         int
	Dur                            time.Duration
	Sent, Acked, Errs, Unavailable int64
	Rate                           float64 // acked per second
	Ack                            *Hist
	CPU, BenchCPU                  float64 // server, generator: % of one core
	RSS                            int64
	acked                          []string
	Rows, Missing                  int // filled in by countRows after the server stopped
	BusyLogLines                   int
}

// The server allows 10 frames a second per connection (bursts of 30), a
// limit no flag raises, so each socket sends at most perSocket a second.
func runSustained(ctx context.Context, c *client, sockets int, perSocket float64, window int, dur time.Duration) (*sustainedResult, error) {
	r := &sustainedResult{Sockets: sockets, PerSocket: perSocket, Window: window, Dur: dur}
	users, err := openUsers(ctx, c, "sus-", sockets, false)
	if err != nil {
		return nil, fmt.Errorf("opening sockets: %w", err)
	}
	defer closeUsers(users)
	for _, u := range users { // the first messages were acked too: check them
		r.acked = append(r.acked, u.id+"-0")
	}

	p0, _ := readProc(c.srv.pid())
	self0, _ := readProc(os.Getpid())
	start := time.Now()
	l := startLoad(users, perSocket, window, dur)
	l.wait(0)
	ackedAtEnd := l.acked.Load()
	elapsed := time.Since(start)
	p1, _ := readProc(c.srv.pid())
	self1, _ := readProc(os.Getpid())
	r.CPU, r.BenchCPU = cpuPercent(p0, p1), cpuPercent(self0, self1)
	r.RSS = p1.RSS
	r.Sent = l.sent.Load()
	r.Rate = float64(ackedAtEnd) / elapsed.Seconds()
	l.drain(10 * time.Second)
	r.Acked, r.Errs, r.Unavailable = l.acked.Load(), l.errs.Load(), l.unavailable.Load()
	r.Ack = l.ack
	r.acked = append(r.acked, l.ackedIDs()...)
	return r, nil
}

// load is sustained writes: every user's socket sends perSocket messages a
// second to its conversation, at most window unacked, until the end or
// stop. Workloads 4 and 5 use it.
type load struct {
	sent, acked, errs, unavailable atomic.Int64
	ack                            *Hist // send → ack
	mu                             sync.Mutex
	ids                            []string // client_msg_ids acked
	stopc                          chan struct{}
	stopOnce                       sync.Once
	senders                        sync.WaitGroup
}

func startLoad(users []*user, perSocket float64, window int, dur time.Duration) *load {
	l := &load{ack: new(Hist), stopc: make(chan struct{})}
	var sentAt sync.Map
	sockets := len(users)
	sems := make([]chan struct{}, sockets)
	for i, u := range users {
		sem := make(chan struct{}, window)
		sems[i] = sem
		go u.a.readLoop(func(f *inFrame, at time.Time) {
			switch f.Type {
			case "ack":
				if t, ok := sentAt.LoadAndDelete(f.ClientMsgID); ok {
					l.ack.Record(at.Sub(t.(time.Time)))
					l.acked.Add(1)
					l.mu.Lock()
					l.ids = append(l.ids, f.ClientMsgID)
					l.mu.Unlock()
					<-sem
				}
			case "error":
				l.errs.Add(1)
				if f.Code == "unavailable" {
					l.unavailable.Add(1)
				}
				if _, ok := sentAt.LoadAndDelete(f.ClientMsgID); ok {
					<-sem
				}
			}
		})
	}
	interval := time.Duration(float64(time.Second) / perSocket)
	start := time.Now()
	end := start.Add(dur)
	for i, u := range users {
		l.senders.Go(func() {
			next := start.Add(interval * time.Duration(i) / time.Duration(sockets))
			for k := 1; next.Before(end); k++ {
				time.Sleep(time.Until(next))
				select {
				case <-l.stopc:
					return
				default:
				}
				select {
				case sems[i] <- struct{}{}: // at most window unacked
				case <-l.stopc:
					return
				}
				cmid := fmt.Sprintf("%s-%d", u.id, k)
				sentAt.Store(cmid, time.Now())
				if u.a.send(sendFrame{Type: "send", ConversationID: u.convo, ClientMsgID: cmid, Body: "sustained bench message"}) != nil {
					return
				}
				l.sent.Add(1)
				next = next.Add(interval)
				if now := time.Now(); next.Before(now) {
					next = now // behind: don't burst to catch up past the frame limit
				}
			}
		})
	}
	return l
}

// stop ends the sending early.
func (l *load) stop() { l.stopOnce.Do(func() { close(l.stopc) }) }

// wait waits for the senders to finish; then, when drain > 0, up to drain
// for the acks of what they sent.
func (l *load) wait(drain time.Duration) {
	l.senders.Wait()
	if drain > 0 {
		l.drain(drain)
	}
}

// drain waits up to limit for an ack or error for every message sent.
func (l *load) drain(limit time.Duration) {
	waitFor(limit, func() bool { return l.acked.Load()+l.errs.Load() >= l.sent.Load() })
}

func (l *load) ackedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...)
}

// countRows opens the stopped server's database read-only and checks that
// every acked message of workload 4 is stored.
func countRows(dbPath string, r *sustainedResult) error {
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT client_msg_id FROM messages WHERE client_msg_id LIKE 'sus-%'`)
	if err != nil {
		return err
	}
	defer rows.Close()
	stored := make(map[string]bool)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	r.Rows = len(stored)
	r.Missing = 0
	for _, id := range r.acked {
		if !stored[id] {
			r.Missing++
		}
	}
	return nil
}

// loaderSize is the gzipped size of the loader script as served.
func loaderSize(c *client) (raw, gz int, err error) {
	resp, err := c.http.Get(c.srv.url + "/widget.js")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /widget.js: %s", resp.Status)
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	return len(data), b.Len(), nil
}

// ok is workload 3's verdict at the size it ran: the ack and the agent's
// socket within the target, every acked message on the agent's socket.
func (x *latencyResult) ok() bool {
	within := func(h *Hist) bool {
		return h.Count() > 0 && h.Quantile(.5) <= 2*time.Millisecond && h.Quantile(.99) <= 20*time.Millisecond
	}
	return within(x.Ack) && within(x.Agent) && x.AgentDelivered >= x.Acked && x.AgentCut == "" && x.Errs == 0
}
