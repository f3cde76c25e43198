package main

// Tests of several `parley serve` processes sharing one PostgreSQL
// database (and, in some, one NATS server): what issue 14 asks to hold
// across nodes, on real processes.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/natstest"
	"github.com/parley-chat/parley/internal/pgtest"
)

// clusterEnv is one PostgreSQL database, an app in it, maybe a NATS
// server, and the nodes started on them.
type clusterEnv struct {
	t      *testing.T
	extra  []string // more serve flags
	bin    string
	dbURL  string
	nats   *natstest.Server // nil: LISTEN/NOTIFY
	env    []string
	public string // the public URL every node is given
	app    binApp
	origin string
	nodes  []*clusterNode
	down   sync.Map // index of a node that is stopped → true
}

type clusterNode struct {
	addr string
	proc *serverProc
}

func newCluster(t *testing.T, withNATS bool) *clusterEnv {
	t.Helper()
	return newClusterOn(t, withNATS, pgtest.URL(t))
}

func newClusterOn(t *testing.T, withNATS bool, dbURL string) *clusterEnv {
	t.Helper()
	c := &clusterEnv{t: t, bin: buildParley(t), dbURL: dbURL, origin: "https://shop.example"}
	if withNATS {
		c.nats = natstest.Start(t)
	}
	c.env = append(os.Environ(), "PARLEY_MASTER_KEY="+masterkey.Generate().Encode(), "PARLEY_DB=", "PARLEY_DATABASE_URL=", "PARLEY_NATS_URL=")
	out := c.cli("apps", "create", "--database-url", c.dbURL, "--name", "Shop", "--origin", c.origin, "--json")
	if err := json.Unmarshal(out, &c.app); err != nil || c.app.AppID == "" {
		t.Fatalf("apps create --json printed %q (%v)", out, err)
	}
	// Every node is given the same public URL, as behind a balancer; the
	// tests reach each node directly, with that Origin.
	c.public = "http://parley.cluster.test"
	return c
}

// cli runs a parley command and returns its stdout.
func (c *clusterEnv) cli(args ...string) []byte {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("parley %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// start starts n more nodes, at the same moment.
func (c *clusterEnv) start(n int) {
	c.t.Helper()
	fresh := make([]*clusterNode, n)
	var wg sync.WaitGroup
	for i := range fresh {
		node := &clusterNode{addr: freeAddr(c.t)}
		fresh[i] = node
		wg.Add(1)
		go func() {
			defer wg.Done()
			node.proc = c.serveNode(node.addr)
		}()
	}
	wg.Wait()
	for _, node := range fresh {
		if node.proc == nil {
			c.t.FailNow()
		}
	}
	c.nodes = append(c.nodes, fresh...)
}

func (c *clusterEnv) serveNode(addr string) *serverProc {
	args := []string{"--database-url", c.dbURL}
	if c.nats != nil {
		args = append(args, "--nats-url", c.nats.URL())
	}
	args = append(args, c.extra...)
	e := &binEnv{t: c.t, bin: c.bin, env: c.env, addr: addr, base: c.public}
	return e.serveWith(append(args, "--addr", addr, "--public-url", c.public), "http://"+addr+"/readyz")
}

// session creates a verified session for userID through node i.
func (c *clusterEnv) session(i int, userID string) string {
	c.t.Helper()
	body, _ := json.Marshal(map[string]string{"app_id": c.app.AppID, "parent_origin": c.origin,
		"user_id": userID, "user_hash": identity.UserHash(c.app.IdentitySecret, userID)})
	res := c.do(i, "POST", "/api/widget/sessions", body, map[string]string{"Origin": c.public})
	var sess struct{ Token string }
	if err := json.Unmarshal(res.body, &sess); err != nil || res.status != http.StatusCreated || sess.Token == "" {
		c.t.Fatalf("session for %s on node %d: %d %s", userID, i, res.status, res.body)
	}
	return sess.Token
}

type clusterResponse struct {
	status int
	body   []byte
}

func (c *clusterEnv) do(i int, method, path string, body []byte, header map[string]string) clusterResponse {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.nodes[i].addr+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s on node %d: %v", method, path, i, err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	return clusterResponse{res.StatusCode, b.Bytes()}
}

// reply posts an agent reply through the server API of node i.
func (c *clusterEnv) reply(i int, convID, body string) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"body": body, "author_name": "Ann"})
	res := c.do(i, "POST", "/api/v1/conversations/"+convID+"/messages", b, map[string]string{"Authorization": "Bearer " + c.app.APIKey})
	if res.status != http.StatusCreated {
		c.t.Fatalf("reply on node %d: %d %s", i, res.status, res.body)
	}
}

// widget is a widget socket on one node, with every frame it got.
type widget struct {
	conn    *websocket.Conn
	frames  chan map[string]any
	backlog []map[string]any
}

func (c *clusterEnv) widget(i int, token string) *widget {
	c.t.Helper()
	e := &binEnv{t: c.t, addr: c.nodes[i].addr, base: c.public}
	conn, err := e.dialWidget(token)
	if err != nil {
		c.t.Fatalf("widget on node %d: %v", i, err)
	}
	w := newWidget(conn)
	c.t.Cleanup(func() { conn.Close() })
	return w
}

// newWidget reads conn's frames into the widget's channel until it
// closes, which it reports as a frame of type "closed" with its code.
func newWidget(conn *websocket.Conn) *widget {
	w := &widget{conn: conn, frames: make(chan map[string]any, 10000)}
	go func() {
		defer close(w.frames)
		for {
			var f map[string]any
			if err := conn.ReadJSON(&f); err != nil {
				w.frames <- map[string]any{"type": "closed", "code": float64(closeCode(err))}
				return
			}
			w.frames <- f
		}
	}()
	return w
}

// next returns the next frame of one of the types. Frames of other types
// are kept, in order, for later calls (backlog).
func (w *widget) next(t *testing.T, types ...string) map[string]any {
	t.Helper()
	for i, f := range w.backlog {
		if slices.Contains(types, f["type"].(string)) {
			w.backlog = slices.Delete(w.backlog, i, i+1)
			return f
		}
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				t.Fatalf("socket ended while waiting for %v", types)
			}
			if slices.Contains(types, f["type"].(string)) {
				return f
			}
			w.backlog = append(w.backlog, f)
			if f["type"] == "closed" {
				t.Fatalf("socket closed (%v) while waiting for %v", f["code"], types)
			}
		case <-deadline:
			t.Fatalf("no %v frame within 20 s", types)
		}
	}
}

func (w *widget) send(t *testing.T, f map[string]any) {
	t.Helper()
	if err := w.conn.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
}

// sendAcked sends a message frame until it is acked, waiting as told
// when the socket's frame rate is exceeded.
func (w *widget) sendAcked(t *testing.T, f map[string]any) map[string]any {
	t.Helper()
	for {
		w.send(t, f)
		got := w.next(t, "ack", "error")
		if got["type"] == "ack" {
			return got
		}
		if got["code"] != "rate_limited" {
			t.Fatalf("send refused: %v", got)
		}
		time.Sleep(time.Duration(got["retry_after_ms"].(float64)) * time.Millisecond)
	}
}

// messageSeq is a message frame's seq and author.
func messageSeq(f map[string]any) (int64, string) {
	m := f["message"].(map[string]any)
	return int64(m["seq"].(float64)), m["author"].(string)
}

// A message committed on any node reaches every socket meant for it, on
// every node, once and in seq order: a user writing on node 0 while
// replies are posted to node 2, read on node 1.
func TestClusterMessagesReachEveryNode(t *testing.T) {
	for _, withNATS := range []bool{true, false} {
		name := map[bool]string{true: "nats", false: "listen-notify"}[withNATS]
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, withNATS)
			// Events alone: the poll that finds lost ones would deliver
			// everything too, only later.
			c.extra = []string{"--cluster-poll", "1h"}
			c.start(3)
			token := c.session(0, "u1")
			writer, reader := c.widget(0, token), c.widget(1, token)

			writer.send(t, map[string]any{"type": "send", "client_msg_id": "m0", "body": "hello"})
			ack := writer.next(t, "ack")
			convID := ack["message"].(map[string]any)["conversation_id"].(string)

			const n = 40
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					c.reply(2, convID, fmt.Sprintf("reply %d", i))
				}
			}()
			for i := 1; i <= n; i++ {
				writer.sendAcked(t, map[string]any{"type": "send", "conversation_id": convID, "client_msg_id": fmt.Sprintf("m%d", i), "body": "more"})
			}
			wg.Wait()

			// The reader, on a node where nothing was written, sees all
			// 2n+1 messages once, in order.
			for want := int64(1); want <= 2*n+1; want++ {
				seq, _ := messageSeq(reader.next(t, "message"))
				if seq != want {
					t.Fatalf("node 1's socket got seq %d, want %d (a gap, a repeat or out of order)", seq, want)
				}
			}
			// The writer gets the replies (its own messages come as acks).
			last := int64(0)
			for range n {
				seq, author := messageSeq(writer.next(t, "message"))
				if author != "agent" || seq <= last {
					t.Fatalf("node 0's socket got %s seq %d after %d", author, seq, last)
				}
				last = seq
			}
			expectQuiet(t, reader, writer)
		})
	}
}

// expectQuiet fails on any message frame arriving within a moment: a
// duplicate would.
func expectQuiet(t *testing.T, ws ...*widget) {
	t.Helper()
	time.Sleep(1500 * time.Millisecond) // longer than a poll
	for i, w := range ws {
		for _, f := range w.backlog {
			if f["type"] == "message" {
				seq, _ := messageSeq(f)
				t.Fatalf("socket %d got seq %d again", i, seq)
			}
		}
		for {
			select {
			case f := <-w.frames:
				if f["type"] == "message" {
					seq, _ := messageSeq(f)
					t.Fatalf("socket %d got seq %d again", i, seq)
				}
				continue
			default:
			}
			break
		}
	}
}

// With NATS down, messages still reach the other nodes (their poll finds
// them in the database), nodes say they are not ready, and all recover by
// themselves when NATS is back, with nothing repeated or missed.
func TestClusterSurvivesNATSRestart(t *testing.T) {
	c := newCluster(t, true)
	c.start(2)
	token := c.session(0, "u1")
	reader := c.widget(1, token)
	writer := c.widget(0, token)
	writer.send(t, map[string]any{"type": "send", "client_msg_id": "m0", "body": "hello"})
	convID := writer.next(t, "ack")["message"].(map[string]any)["conversation_id"].(string)
	expectSeqs(t, reader, 1, 1)

	c.nats.Stop()
	waitReady(t, c, 0, http.StatusServiceUnavailable)
	waitReady(t, c, 1, http.StatusServiceUnavailable)
	for i := range 10 {
		c.reply(0, convID, fmt.Sprintf("while NATS is down %d", i))
	}
	expectSeqs(t, reader, 2, 11) // found by the poll: no event will ever say so
	c.nats.Restart()
	waitReady(t, c, 0, http.StatusOK)
	waitReady(t, c, 1, http.StatusOK)
	for i := range 10 {
		c.reply(0, convID, fmt.Sprintf("after %d", i))
	}
	expectSeqs(t, reader, 12, 21)
	expectQuiet(t, reader)
}

// expectSeqs reads message frames from..to, in order.
func expectSeqs(t *testing.T, w *widget, from, to int64) {
	t.Helper()
	for want := from; want <= to; want++ {
		if seq, _ := messageSeq(w.next(t, "message")); seq != want {
			t.Fatalf("the socket got seq %d, want %d", seq, want)
		}
	}
}

func waitReady(t *testing.T, c *clusterEnv, i, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res := c.do(i, "GET", "/readyz", nil, nil)
		if res.status == want {
			if want != http.StatusOK && !strings.Contains(string(res.body), "broker") {
				t.Fatalf("/readyz = %s, want the broker named", res.body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz on node %d = %d %s, want %d", i, res.status, res.body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An app turned off with the CLI, and a widget that logs out on one node,
// close the sockets concerned on every node.
func TestClusterEndsReachEveryNode(t *testing.T) {
	c := newCluster(t, false)
	c.start(3)
	token := c.session(0, "u1")
	socks := []*widget{c.widget(1, token), c.widget(2, token)}
	res := c.do(0, "DELETE", "/api/widget/session", nil, map[string]string{"Origin": c.public, "Authorization": "Bearer " + token})
	if res.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", res.status, res.body)
	}
	for _, w := range socks {
		if f := w.next(t, "closed"); f["code"] != float64(websocket.ClosePolicyViolation) {
			t.Fatalf("after logout on node 0 a socket closed with %v, want 1008", f["code"])
		}
	}

	other := c.session(1, "u2")
	socks = []*widget{c.widget(0, other), c.widget(2, other)}
	c.cli("apps", "disable", "--database-url", c.dbURL, "--app", c.app.AppID)
	for _, w := range socks {
		if f := w.next(t, "closed"); f["code"] != float64(websocket.ClosePolicyViolation) {
			t.Fatalf("after apps disable a socket closed with %v, want 1008", f["code"])
		}
	}
}

// chatUser is a widget user of the kill test: it writes through one
// socket and follows its conversation through another, each moving to the
// next node when its node dies, as a widget behind a balancer does.
type chatUser struct {
	c      *clusterEnv
	token  string
	convID string
	acked  []string // client_msg_ids, in the order acked
	seen   []int64  // seqs the follower got, live or by resuming
	pace   time.Duration
	mu     sync.Mutex
	closes []int // close codes the sockets got
}

func (u *chatUser) closed(code any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closes = append(u.closes, int(code.(float64)))
}

// dial opens a socket on the first live node from i on, trying for a
// minute: a node may be restarting, or the database down.
func (u *chatUser) dial(t *testing.T, i int) (*widget, int) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for k := range len(u.c.nodes) {
			n := (i + k) % len(u.c.nodes)
			if _, gone := u.c.down.Load(n); gone {
				continue
			}
			e := &binEnv{t: t, addr: u.c.nodes[n].addr, base: u.c.public}
			conn, err := e.dialWidget(u.token)
			if err != nil {
				continue
			}
			return newWidget(conn), n
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Error("no node took a socket for a minute")
	return nil, 0
}

// write sends messages m<from>…m<to-1>, each until acked, reconnecting as
// needed; onAck, when set, is called after each ack.
func (u *chatUser) write(t *testing.T, node, from, to int, stop <-chan struct{}, onAck func()) error {
	w, n := u.dial(t, node)
	if w == nil {
		return errors.New("no node to connect to")
	}
	defer func() { w.conn.Close() }()
	for i := from; i < to; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		id := fmt.Sprintf("m%d", i)
		f := map[string]any{"type": "send", "client_msg_id": id, "body": "message " + id}
		if u.convID != "" {
			f["conversation_id"] = u.convID
		}
		w.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		err := w.conn.WriteJSON(f)
		var got map[string]any
		for err == nil {
			select {
			case got = <-w.frames:
			case <-time.After(20 * time.Second):
				return fmt.Errorf("no answer to %s within 20 s", id)
			}
			if got == nil || got["type"] == "ack" || got["type"] == "error" || got["type"] == "closed" {
				break
			}
		}
		switch {
		case err == nil && got != nil && got["type"] == "ack":
			u.acked = append(u.acked, id)
			if u.convID == "" {
				u.convID = got["message"].(map[string]any)["conversation_id"].(string)
			}
			if onAck != nil {
				onAck()
			}
			time.Sleep(u.pace)
		case err == nil && got != nil && got["type"] == "error" && got["code"] == "rate_limited":
			time.Sleep(time.Duration(got["retry_after_ms"].(float64)) * time.Millisecond)
			i-- // the same message again
		default: // the node went away: the same message again, on another
			if got != nil && got["type"] == "closed" {
				u.closed(got["code"])
			}
			w.conn.Close()
			if w, n = u.dial(t, n+1); w == nil {
				return errors.New("no node to reconnect to")
			}
			i--
		}
	}
	return nil
}

// follow reads the conversation's messages until it has seq upTo,
// resuming with after_seq on another node when its socket dies.
func (u *chatUser) follow(t *testing.T, node int, upTo func() int64, stop <-chan struct{}) error {
	w, n := u.dial(t, node)
	if w == nil {
		return errors.New("no node to connect to")
	}
	defer func() { w.conn.Close() }()
	last := int64(0)
	live := map[int64]bool{}
	// As a widget does: connected first, then the history so far.
	w.conn.WriteJSON(map[string]any{"type": "open", "conversation_id": u.convID, "after_seq": 0})
	for {
		if want := upTo(); want > 0 && last >= want {
			return nil
		}
		var f map[string]any
		select {
		case f = <-w.frames:
		case <-stop:
			return nil
		case <-time.After(200 * time.Millisecond):
			continue
		}
		switch f["type"] {
		case "message":
			// On one socket a message comes once; a resume's history, or
			// a new socket, may repeat what an earlier one got, and a
			// client drops those by seq.
			seq, _ := messageSeq(f)
			if live[seq] {
				return fmt.Errorf("seq %d delivered live twice", seq)
			}
			live[seq] = true
			if !slices.Contains(u.seen, seq) {
				u.seen = append(u.seen, seq)
			}
			last = max(last, seq)
		case "history":
			for _, m := range f["messages"].([]any) {
				seq := int64(m.(map[string]any)["seq"].(float64))
				if !slices.Contains(u.seen, seq) {
					u.seen = append(u.seen, seq)
				}
				last = max(last, seq)
			}
		case "closed":
			u.closed(f["code"])
			w.conn.Close()
			if w, n = u.dial(t, n+1); w == nil {
				return errors.New("no node to reconnect to")
			}
			live = map[int64]bool{} // a new socket: once per socket
			if u.convID != "" {
				w.conn.WriteJSON(map[string]any{"type": "open", "conversation_id": u.convID, "after_seq": last})
			}
		}
	}
}

// kill -9 of a node under load: its clients reconnect to the others and
// resume, and no acked message is lost, repeated or skipped.
func TestClusterNodeKilledUnderLoad(t *testing.T) {
	c := newCluster(t, true)
	c.start(3)
	c.underLoad(t, 6, 40, 0, func() {
		c.down.Store(0, true)
		c.nodes[0].proc.cmd.Process.Kill()
	})
}

// A rolling restart (SIGTERM, then start again, one node after the
// other) loses nothing: each node drains, and its widgets reconnect.
func TestClusterRollingRestart(t *testing.T) {
	c := newCluster(t, false)
	c.start(3)
	us := c.underLoad(t, 6, 100, 20*time.Millisecond, func() {
		for i, node := range c.nodes {
			c.down.Store(i, true)
			node.proc.cmd.Process.Signal(syscall.SIGTERM)
			if err := node.proc.wait(t); err != nil {
				t.Fatalf("node %d after SIGTERM: %v\n%s", i, err, node.proc.log())
			}
			node.proc = c.serveNode(node.addr)
			c.down.Delete(i)
		}
	})
	// Every socket a node drained was told it was going away.
	n := 0
	for _, u := range us {
		for _, code := range u.closes {
			if code != websocket.CloseGoingAway {
				t.Fatalf("a socket closed with %d in a rolling restart, want 1001", code)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no socket was closed: the restart came after the load")
	}
}

// PostgreSQL restarted under load: the nodes say they are not ready and
// answer "unavailable" meanwhile, and carry on by themselves after; no
// acked message is lost.
func TestClusterSurvivesPostgresRestart(t *testing.T) {
	pg := pgtest.Start(t)
	c := newClusterOn(t, false, pg.URL(t))
	c.start(2)
	token := c.session(0, "u-outage")
	writer := c.widget(0, token)
	writer.send(t, map[string]any{"type": "send", "client_msg_id": "x0", "body": "hello"})
	convID := writer.next(t, "ack")["message"].(map[string]any)["conversation_id"].(string)
	c.underLoad(t, 4, 40, 0, func() {
		pg.Stop()
		for i := range c.nodes {
			waitReadyFailing(t, c, i, "database")
		}
		// A request answers at once, with unavailable.
		b, _ := json.Marshal(map[string]string{"body": "during the outage", "author_name": "Ann"})
		res := c.do(1, "POST", "/api/v1/conversations/"+convID+"/messages", b, map[string]string{"Authorization": "Bearer " + c.app.APIKey})
		if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), `"unavailable"`) {
			t.Errorf("a reply during the outage: %d %s, want 503 unavailable", res.status, res.body)
		}
		writer.send(t, map[string]any{"type": "send", "conversation_id": convID, "client_msg_id": "x1", "body": "during the outage"})
		if f := writer.next(t, "ack", "error"); f["type"] != "error" || f["code"] != "unavailable" {
			t.Errorf("a message during the outage: %v, want the error unavailable", f)
		}
		pg.Restart(t)
		for i := range c.nodes {
			waitReady(t, c, i, http.StatusOK)
		}
	})
	writer.sendAcked(t, map[string]any{"type": "send", "conversation_id": convID, "client_msg_id": "x1", "body": "after the outage"})
}

func waitReadyFailing(t *testing.T, c *clusterEnv, i int, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res := c.do(i, "GET", "/readyz", nil, nil)
		if res.status == http.StatusServiceUnavailable && strings.Contains(string(res.body), what) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz on node %d = %d %s, want 503 naming %s", i, res.status, res.body, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// underLoad has users each write perUser messages (pace apart) through a socket and
// follow their conversation through another, on different nodes, and
// calls disrupt once a quarter of the messages are acked. Every socket
// moves to the next live node when its node goes (c.down) and resumes.
// Then: every acked message is stored once, the seqs have no gap, and
// every follower saw all of them.
func (c *clusterEnv) underLoad(t *testing.T, users, perUser int, pace time.Duration, disrupt func()) []*chatUser {
	t.Helper()
	us := make([]*chatUser, users)
	for i := range us {
		us[i] = &chatUser{c: c, token: c.session(i%len(c.nodes), fmt.Sprintf("load-%d", i)), pace: pace}
	}
	// Each user's first message makes its conversation, before the load.
	for i, u := range us {
		if err := u.write(t, i%len(c.nodes), 0, 1, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2*users)
	var mu sync.Mutex
	ackedTotal := 0
	for i, u := range us {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- u.write(t, i%len(c.nodes), 1, perUser, stop, func() {
				mu.Lock()
				ackedTotal++
				mu.Unlock()
			})
		}()
		go func() {
			defer wg.Done()
			errs <- u.follow(t, (i+1)%len(c.nodes), func() int64 { return int64(perUser) }, stop)
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := ackedTotal
		mu.Unlock()
		if n >= users*perUser/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages acked before the disruption", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	disrupt()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		close(stop)
		t.Fatal("the load did not finish within 2 minutes of the disruption")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	live := 0
	for i := range c.nodes {
		if _, gone := c.down.Load(i); !gone {
			live = i
		}
	}
	for i, u := range us {
		stored, err := (&binEnv{t: t, addr: c.nodes[live].addr, base: "http://" + c.nodes[live].addr, app: c.app}).apiMessages(u.convID)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]int{}
		for j, m := range stored {
			if m.Seq != int64(j+1) {
				t.Fatalf("user %d: stored seq %d at %d", i, m.Seq, j)
			}
			byID[m.ClientMsgID]++
		}
		if len(u.acked) != perUser {
			t.Fatalf("user %d: %d messages acked, want %d", i, len(u.acked), perUser)
		}
		for _, id := range u.acked {
			if byID[id] != 1 {
				t.Fatalf("user %d: acked message %s is stored %d times", i, id, byID[id])
			}
		}
		slices.Sort(u.seen)
		if len(u.seen) != perUser || u.seen[0] != 1 || u.seen[len(u.seen)-1] != int64(perUser) {
			t.Fatalf("user %d: the follower saw %v, want 1…%d once each", i, u.seen, perUser)
		}
	}
	return us
}

// An identity JWT's jti is accepted once across the cluster, also when two
// nodes get it at the same moment.
func TestClusterJWTUsedOnce(t *testing.T) {
	c := newCluster(t, false)
	c.start(2)
	for round := range 20 {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u1", "aud": c.app.AppID,
			"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(), "jti": fmt.Sprintf("once-%d", round)})
		tok.Header["kid"] = c.app.IdentitySecretID
		signed, err := tok.SignedString([]byte(c.app.IdentitySecret))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"app_id": c.app.AppID, "parent_origin": c.origin, "user_jwt": signed})
		var statuses [2]int
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				statuses[i] = c.do(i, "POST", "/api/widget/sessions", body, map[string]string{"Origin": c.public}).status
			}()
		}
		close(start)
		wg.Wait()
		slices.Sort(statuses[:])
		if statuses[0] != http.StatusCreated || statuses[1] < 400 || statuses[1] >= 500 {
			t.Fatalf("round %d: one JWT on two nodes answered %v, want one 201 and one refusal", round, statuses)
		}
	}
}

// Nodes that start at the same moment on a new database migrate it once.
func TestClusterNodesMigrateOnce(t *testing.T) {
	c := &clusterEnv{t: t, bin: buildParley(t), dbURL: pgtest.URL(t), public: "http://parley.cluster.test"}
	c.env = append(os.Environ(), "PARLEY_MASTER_KEY="+masterkey.Generate().Encode(), "PARLEY_DB=", "PARLEY_DATABASE_URL=", "PARLEY_NATS_URL=")
	c.start(3)
	conn, err := pgx.Connect(t.Context(), c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var applied, distinct int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != distinct || applied == 0 {
		t.Fatalf("%d migrations recorded for %d versions: some ran twice", applied, distinct)
	}
}
