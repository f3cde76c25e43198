package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/broker"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/web"
)

// clusterNode is one Parley node of a cluster test, in this process.
type clusterNode struct {
	addr string
	db   *store.DB
	hub  *chat.Hub
	down atomic.Bool // its /readyz fails, so the balancer takes it out
}

// newClusterEnv starts two Parley nodes on one PostgreSQL database, their
// events through LISTEN/NOTIFY, behind HAProxy (Debian's), and the host
// page. Parley's origin is the balancer's.
func newClusterEnv(t *testing.T) (*env, []*clusterNode) {
	t.Helper()
	requireBrowser(t)
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if haproxy, err = exec.LookPath("/usr/sbin/haproxy"); err != nil {
			t.Fatal("the cluster test needs HAProxy: apt-get install -y haproxy (.ci/run does)")
		}
	}
	e := &env{logs: &logBuffer{}}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_LOG") != "" {
			t.Logf("server and browser log:\n%s", e.logs)
		}
	})
	ctx := t.Context()
	dbURL := pgtest.URL(t)
	key := masterkey.Generate()

	hostLn := listen(t)
	_, e.hostPort, _ = net.SplitHostPort(hostLn.Addr().String())
	balancer := listen(t)
	e.parleyURL = "http://" + balancer.Addr().String()
	balancer.Close() // HAProxy binds it

	lots := ratelimit.Rate{Burst: 1 << 20, Every: time.Microsecond}
	limits := web.Limits{SessionsPerIP: lots, SessionsPerApp: lots, SocketOpensPerIP: lots,
		Chat: chat.Limits{Sockets: 1000, Opens: lots, Messages: lots}}
	nodes := make([]*clusterNode, 2)
	for i := range nodes {
		n := &clusterNode{}
		if n.db, err = store.Open(ctx, dbURL, key); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.db.Close() })
		log := slog.New(slog.NewTextHandler(e.logs, nil)).With("node", i)
		n.hub = chat.NewHub(n.db, log)
		id := broker.NewNodeID()
		b, err := broker.OpenPostgres(dbURL, id, n.hub, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		n.hub.JoinCluster(ctx, b, id, n.db, chat.DefaultClusterPoll)
		handler, err := web.New(web.Config{PublicURL: e.parleyURL, SessionTTL: time.Hour, Limits: limits, BrokerReady: b.Ready}, n.db, n.hub, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.hub.WatchSessionEnds(ctx, chat.DefaultEndPoll); err != nil {
			t.Fatal(err)
		}
		ln := listen(t)
		n.addr = ln.Addr().String()
		serve(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Test-Node", strconv.Itoa(i))
			if r.URL.Path == "/readyz" && n.down.Load() {
				http.Error(w, "taken out by the test", http.StatusServiceUnavailable)
				return
			}
			handler.ServeHTTP(w, r)
		}), nil)
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n.hub.Shutdown(sctx)
		})
		nodes[i] = n
	}
	e.db = nodes[0].db
	created, err := e.db.CreateApp(ctx, store.NewApp{Name: "E2E shop", Origins: []string{e.hostURL()}, IdentityMode: store.ModeEnforced})
	if err != nil {
		t.Fatal(err)
	}
	e.app, e.apiKey = created.App, created.APIKey

	cfg := fmt.Sprintf(`defaults
  mode http
  timeout connect 5s
  timeout client 65s
  timeout server 65s
  timeout tunnel 1h
frontend parley
  bind %s
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server check inter 100ms fall 1 rise 1
  server node0 %s
  server node1 %s
`, balancer.Addr().String(), nodes[0].addr, nodes[1].addr)
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(haproxy, "-f", cfgPath, "-db")
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	e.waitBalanced(t, 0, 1)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", e.serveHostPage)
	serve(t, hostLn, mux, nil)
	return e, nodes
}

// waitBalanced waits until the balancer sends requests to exactly the
// nodes given.
func (e *env) waitBalanced(t *testing.T, want ...int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		seen := map[int]bool{}
		for range 3 * len(want) {
			if res, err := http.Get(e.parleyURL + "/healthz"); err == nil {
				res.Body.Close()
				n, _ := strconv.Atoi(res.Header.Get("X-Test-Node"))
				if res.Header.Get("X-Test-Node") != "" {
					seen[n] = true
				}
			}
		}
		ok := len(seen) == len(want)
		for _, n := range want {
			ok = ok && seen[n]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the balancer sends to %v, want %v", seen, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The core flows with the host page on one origin and Parley behind a
// balancer in front of two nodes: a verified chat, an agent's reply posted
// to the node the widget is not connected to, a reload that lands on the
// other node, and a revocation on one node that ends the chat on the
// other.
func TestClusterBehindTheBalancer(t *testing.T) {
	e, nodes := newClusterEnv(t)
	tab := e.newTab(t, "page")
	frame, frameID := e.openChat(t, tab, "frame", "u_alice")
	mine := chatMessage{Author: "me", Text: "Is the teapot in stock?"}
	send(t, frame, mine.Text)
	waitMessages(t, frame, mine)

	convs := e.conversations(t)
	if len(convs) != 1 || !convs[0].User.Verified {
		t.Fatalf("conversations = %+v, want one verified", convs)
	}
	conv, err := e.db.AppConversation(t.Context(), e.app.ID, convs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	socketOn := func() int {
		for i, n := range nodes {
			if n.hub.Connections(conv.SubjectID) > 0 {
				return i
			}
		}
		return -1
	}
	here := eventually(t, tab, "the widget's socket on a node", func(context.Context) (int, error) { return socketOn(), nil },
		func(i int) bool { return i >= 0 })
	other := 1 - here

	// A reply posted to the other node reaches the widget live.
	direct := &env{parleyURL: "http://" + nodes[other].addr, apiKey: e.apiKey}
	direct.reply(t, conv.ID, "Yes, two left.")
	answer := chatMessage{Author: "agent", Text: "Yes, two left."}
	waitMessages(t, frame, mine, answer)

	// Its node leaves the balancer; a reload lands on the other node and
	// finds the whole chat there.
	nodes[here].down.Store(true)
	e.waitBalanced(t, other)
	do(t, tab, chromedp.Reload())
	frame, _ = e.chatFrame(t, tab, "frame after reload", frameID)
	waitMessages(t, frame, mine, answer)
	eventually(t, tab, "the widget's socket on the other node", func(context.Context) (int, error) { return socketOn(), nil },
		func(i int) bool { return i == other })
	nodes[here].down.Store(false)

	// A revocation made on the first node ends the chat on the second.
	if _, err := nodes[here].db.ReplaceIdentitySecret(t.Context(), e.app.ID); err != nil {
		t.Fatal(err)
	}
	// (After the reload the chat is closed, so the frame is not visible:
	// the message is checked, not its visibility.)
	want := "We couldn't verify who you are, so this chat is unavailable."
	eventually(t, frame, "the widget to say the chat ended", js[string](`document.querySelector('`+errorSel+`').textContent`),
		func(s string) bool { return s == want })
}
