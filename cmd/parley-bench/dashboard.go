package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The dashboard side of the bench: one owner (created by startServer with
// `parley owners create`, a member of the bench app) signs in once through
// POST /login like a browser form and keeps the cookie, which the inbox
// pages and the inbox socket need.

const ownerCookie = "parley_owner" // the cookie's name on http:// (web/dashboard.go)

// signIn posts the sign-in form once (sign-ins are throttled per address
// and account) and keeps the owner's cookie.
func (c *client) signIn(ctx context.Context) error {
	if c.cookie != "" {
		return nil
	}
	form := url.Values{"email": {c.srv.ownerEmail}, "password": {c.srv.ownerPassword}, "next": {"/dashboard"}}
	req, err := http.NewRequestWithContext(ctx, "POST", c.srv.url+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	// What a browser sends with a same-origin form post; the dashboard's
	// cross-origin protection refuses anything else.
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.srv.url)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	noRedirect := *c.http
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("POST /login: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == ownerCookie && ck.Value != "" {
			c.cookie = ck.Value
			return nil
		}
	}
	return fmt.Errorf("POST /login answered %s without a %s cookie", resp.Status, ownerCookie)
}

// dashGet loads a dashboard page as the signed-in owner's browser would
// and returns its body; a redirect (to /login) is an error.
func (c *client) dashGet(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.srv.url+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Cookie", ownerCookie+"="+c.cookie)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return body, nil
}

// agentSocket is the inbox's live socket (GET /dashboard/apps/:app_id/ws)
// of the signed-in owner. It only receives.
type agentSocket struct {
	ws       *websocket.Conn
	closeErr atomic.Value // error: why the read loop ended, when it did
}

// dialAgent opens the inbox socket with the owner's cookie and Parley's
// own Origin, as the dashboard page does, and waits for its welcome.
func (c *client) dialAgent(ctx context.Context) (*agentSocket, error) {
	u := "ws" + strings.TrimPrefix(c.srv.url, "http") + "/dashboard/apps/" + c.srv.appID + "/ws"
	hdr := http.Header{"Origin": {c.srv.url}, "Cookie": {ownerCookie + "=" + c.cookie}}
	ws, resp, err := c.dialer.DialContext(ctx, u, hdr)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial inbox socket: %v (%s)", err, resp.Status)
		}
		return nil, fmt.Errorf("dial inbox socket: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := ws.ReadMessage()
	var f inFrame
	if err != nil || json.Unmarshal(data, &f) != nil || f.Type != "welcome" {
		ws.Close()
		return nil, fmt.Errorf("inbox socket: no welcome (%v, %q)", err, data)
	}
	ws.SetReadDeadline(time.Time{})
	return &agentSocket{ws: ws}, nil
}

// readLoop hands each agent frame's payload to fn with its arrival time.
// It only reads and queues, so the bench never looks like a slow consumer
// to the server (which cuts an inbox socket 1,024 frames or 1 MiB behind); fn runs on a
// second goroutine.
func (a *agentSocket) readLoop(fn func(data []byte, at time.Time)) {
	type item struct {
		data []byte
		at   time.Time
	}
	q := make(chan item, 1<<16)
	go func() {
		for it := range q {
			fn(it.data, it.at)
		}
	}()
	defer close(q)
	for {
		_, data, err := a.ws.ReadMessage()
		if err != nil {
			a.closeErr.Store(err)
			return
		}
		q <- item{data, time.Now()}
	}
}

// cut says why the socket ended early, or "" while it is open.
func (a *agentSocket) cut() string {
	if err, ok := a.closeErr.Load().(error); ok {
		return err.Error()
	}
	return ""
}

func (a *agentSocket) close() {
	a.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	a.ws.Close()
}

// ---- (5) dashboard reads while writes run ----

type dashResult struct {
	Convs, LongConvs, LongMsgs int // conversations made first; how many have LongMsgs messages
	Readers                    int
	Writers                    int     // sockets writing in the background
	PerSocket                  float64 // messages a second per writer socket
	Target                     float64 // the write rate asked for
	Dur                        time.Duration
	List, Conv                 *Hist // GET the inbox page; GET a conversation page
	BaseList, BaseConv         *Hist // the same on a quiet server, before the writes
	BaseDur                    time.Duration
	BaseCPU                    float64
	ReadErrs                   int64
	FirstErr                   string
	ListRows, ConvMsgs         int     // rows on the last inbox page read; fewest messages on a conversation page
	Rate                       float64 // messages acked a second during the reads
	WriteSent, WriteAcked      int64   // during the reads
	WriteErrs                  int64   // error frames over the whole workload
	CPU                        float64 // server, % of one core, during the reads
	ProfileTop, ProfileErr     string  // the server's CPU profile during the reads under writes
}

// dashSeedMsgs is how many messages each of the short conversations gets.
const dashSeedMsgs = 3

// runDashboard makes convs conversations (longConvs of them with longMsgs
// messages, the rest with a few), then starts writers sockets sending
// perSocket messages a second each, and while they run, readers loop
// over GET the inbox page and GET one of the long conversations' pages.
//
// profile, when set, runs on its own goroutine while the readers read
// under the writes, given how long they read; its answer is the report's
// profile of the workload.
func runDashboard(ctx context.Context, c *client, convs, longConvs, longMsgs, readers, writers int, perSocket float64, dur time.Duration,
	profile func(time.Duration) (string, error), logf func(string, ...any)) (*dashResult, error) {
	longConvs = max(1, min(longConvs, convs))
	r := &dashResult{Convs: convs, LongConvs: longConvs, LongMsgs: longMsgs, Readers: readers, Writers: writers, PerSocket: perSocket,
		Target: float64(writers) * perSocket, Dur: dur, List: new(Hist), Conv: new(Hist), BaseList: new(Hist), BaseConv: new(Hist), ConvMsgs: -1}
	if err := c.signIn(ctx); err != nil {
		return nil, err
	}

	// History: every user sends its messages in one burst up to the
	// per-connection frame budget, then paced below the limit.
	start := time.Now()
	long := make([]string, longConvs)
	err := parallel(convs, setupConc, func(i int) error {
		n := dashSeedMsgs
		if i < longConvs {
			n = longMsgs
		}
		u, err := openUser(ctx, c, fmt.Sprintf("dash-%d", i), false)
		if err != nil {
			return err
		}
		defer u.close()
		if err := u.sendPaced(u.convo, n-1, 9); err != nil {
			return fmt.Errorf("history of %s: %w", u.id, err)
		}
		if i < longConvs {
			long[i] = u.convo
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("making conversations: %w", err)
	}
	logf("dashboard: %d conversations (%d with %d messages) in %v", convs, longConvs, longMsgs, time.Since(start).Round(time.Millisecond))

	// A baseline first: the same reads on a quiet server.
	base := min(2*time.Second, dur/5)
	p0, _ := readProc(c.srv.pid())
	t0 := time.Now()
	r.readLoop(ctx, c, base, long, r.BaseList, r.BaseConv)
	p1, _ := readProc(c.srv.pid())
	r.BaseDur, r.BaseCPU = time.Since(t0), cpuPercent(p0, p1)

	users, err := openUsers(ctx, c, "dw-", writers, false)
	if err != nil {
		return nil, fmt.Errorf("opening writer sockets: %w", err)
	}
	defer closeUsers(users)
	warm := min(3*time.Second, dur/2)
	wl := startLoad(users, perSocket, 8, warm+dur+time.Second)

	time.Sleep(warm)
	p0, _ = readProc(c.srv.pid())
	sent0, acked0 := wl.sent.Load(), wl.acked.Load()
	t0 = time.Now()
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		if profile == nil {
			r.ProfileErr = "not asked for"
			return
		}
		top, err := profile(dur - time.Second)
		if err != nil {
			r.ProfileErr = err.Error()
		}
		r.ProfileTop = top
	}()
	r.readLoop(ctx, c, dur, long, r.List, r.Conv)
	elapsed := time.Since(t0)
	p1, _ = readProc(c.srv.pid())
	r.WriteSent, r.WriteAcked = wl.sent.Load()-sent0, wl.acked.Load()-acked0
	r.CPU = cpuPercent(p0, p1)
	r.Rate = float64(r.WriteAcked) / elapsed.Seconds()
	wl.stop()
	wl.wait(10 * time.Second)
	r.WriteErrs = wl.errs.Load()
	<-profiled
	return r, nil
}

// readLoop runs r.Readers readers for dur, each looping over GET the
// inbox page and GET one of the long conversations' pages, recording
// their latencies in list and conv. Failures count in r.ReadErrs.
func (r *dashResult) readLoop(ctx context.Context, c *client, dur time.Duration, long []string, list, conv *Hist) {
	inbox := "/dashboard/apps/" + c.srv.appID
	end := time.Now().Add(dur)
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if r.ReadErrs++; r.FirstErr == "" {
			r.FirstErr = err.Error()
		}
	}
	var wg sync.WaitGroup
	for k := range r.Readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(k), 5))
			for time.Now().Before(end) && ctx.Err() == nil {
				t := time.Now()
				body, err := c.dashGet(ctx, inbox)
				if err != nil {
					fail(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				list.Record(time.Since(t))
				rows := strings.Count(string(body), `data-testid="conversation-row"`)
				t = time.Now()
				body, err = c.dashGet(ctx, inbox+"/conversations/"+long[rng.IntN(len(long))])
				if err != nil {
					fail(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				conv.Record(time.Since(t))
				n := strings.Count(string(body), `data-testid="thread-message"`)
				mu.Lock()
				r.ListRows = rows
				if r.ConvMsgs < 0 || n < r.ConvMsgs {
					r.ConvMsgs = n
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// sendPaced sends n messages to convo from the user's socket and waits for
// their acks: the first ones at once (within the connection's burst of
// frames), the rest perSecond a second.
func (u *user) sendPaced(convo string, n int, perSecond float64) error {
	const burst = 25 // the connection allows 30 frames at once; auth and the first message took 2
	done := make(chan error, 1)
	go func() {
		acked := 0
		for acked < n {
			_, data, err := u.a.ws.ReadMessage()
			if err != nil {
				done <- err
				return
			}
			var f inFrame
			json.Unmarshal(data, &f)
			switch f.Type {
			case "ack":
				acked++
			case "error":
				done <- fmt.Errorf("error frame %s", data)
				return
			}
		}
		done <- nil
	}()
	u.a.ws.SetReadDeadline(time.Now().Add(time.Minute))
	next := time.Now()
	for k := 1; k <= n; k++ {
		if k > burst {
			next = next.Add(time.Duration(float64(time.Second) / perSecond))
			time.Sleep(time.Until(next))
		}
		if err := u.a.send(sendFrame{Type: "send", ConversationID: convo, ClientMsgID: fmt.Sprintf("%s-%d", u.id, k), Body: fmt.Sprintf("history message %d", k)}); err != nil {
			return err
		}
	}
	err := <-done
	u.a.ws.SetReadDeadline(time.Time{})
	return err
}

// dashTarget is the write rate during the dashboard reads; a run
// within 2% of it counts as at the target's load (the offered rate is
// sockets × per-socket rate, and the measuring window cuts some sends).
const dashTarget = 5000

func (x *dashResult) atTarget() bool { return x.Rate >= 0.98*dashTarget }

func (x *dashResult) ok() bool {
	return x.ReadErrs == 0 && x.List.Count() > 0 && x.Conv.Count() > 0 &&
		x.List.Quantile(.99) < 10*time.Millisecond && x.Conv.Quantile(.99) < 10*time.Millisecond
}

func (x *dashResult) row() string {
	v := "met"
	switch {
	case !x.ok() && !x.atTarget():
		v = fmt.Sprintf("**missed** (with writes at %.0f msg/s)", x.Rate)
	case !x.ok():
		v = "**missed**"
	case !x.atTarget():
		v = fmt.Sprintf("met with writes at %.0f msg/s only (below the target's load)", x.Rate)
	}
	return fmt.Sprintf("| dashboard conversation list + last 50 messages while writes run (%.0f msg/s acked during the reads; %.0f msg/s offered) | inbox page p50 %s, p99 %s; conversation page (≥ %d messages shown) p50 %s, p99 %s; %d reads, %d failed | p99 < 10 ms with writes at 5,000/s | %s |",
		x.Rate, x.Target, ms(x.List.Quantile(.5)), ms(x.List.Quantile(.99)), max(x.ConvMsgs, 0), ms(x.Conv.Quantile(.5)), ms(x.Conv.Quantile(.99)),
		x.List.Count()+x.Conv.Count(), x.ReadErrs, v)
}

func (x *dashResult) details(p func(string, ...any)) {
	p("**(5) Dashboard reads under writes.** First, %d users made a conversation each through the widget protocol, %d of them with %d messages and the rest with %d. Then %d more users' sockets wrote in the background, %.0f messages a second each (%.0f msg/s offered; the frame limit is 10 a second per connection), at most 8 unacked per socket, starting %v before the reads. Meanwhile %d readers, signed in as the app's owner (one `POST /login`, then the cookie), each looped for %v: `GET /dashboard/apps/:app_id` (the inbox page: the %d most recent open conversations) and then `GET /dashboard/apps/:app_id/conversations/:id` of a random one of the %d long conversations (the whole page: the same list plus the thread, which renders the latest 50 messages; the conversation had ≥ %d). Each latency is request sent → whole body read, over a kept-alive connection.",
		x.Convs, x.LongConvs, x.LongMsgs, dashSeedMsgs, x.Writers, x.PerSocket, x.Target, min(3*time.Second, x.Dur/2), x.Readers, x.Dur, x.ListRows, x.LongConvs, max(x.ConvMsgs, 0))
	p("")
	p("- inbox page (conversation list): %s", pcts(x.List))
	p("- conversation page (list + latest messages): %s", pcts(x.Conv))
	p("- the same reads for %v on a quiet server first (no writes, server CPU %.0f%% of one core): inbox page %s; conversation page %s",
		x.BaseDur.Round(100*time.Millisecond), x.BaseCPU, pcts(x.BaseList), pcts(x.BaseConv))
	p("- failed reads: %d%s", x.ReadErrs, map[bool]string{true: " (first: " + x.FirstErr + ")", false: ""}[x.FirstErr != ""])
	p("- writes during the reads: %d sent, %d acked, so %.0f msg/s against the target's 5,000/s; %d error frames over the workload", x.WriteSent, x.WriteAcked, x.Rate, x.WriteErrs)
	p("- server CPU %.0f%% of one core during the reads", x.CPU)
	p("")
}

// why explains a miss from the run's own figures, or is "".
func (x *dashResult) why(r *results) string {
	if x.ok() && x.atTarget() {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- **Dashboard reads** ")
	switch {
	case x.atTarget():
	case x.Target < 0.98*dashTarget:
		fmt.Fprintf(&b, "ran with writes offered at only %.0f msg/s (a smaller run than the target's 5,000/s). ", x.Target)
	default:
		fmt.Fprintf(&b, "ran with %.0f msg/s offered but %.0f acked during the reads: the write path does not reach 5,000/s on this machine while the readers share it", x.Target, x.Rate)
		if r.Sustained != nil {
			fmt.Fprintf(&b, " (workload 4, writes alone, plateaued at %s)", capacity(r))
		}
		b.WriteString(". ")
	}
	if !x.ok() {
		fmt.Fprintf(&b, "Inbox page p99 %s and conversation page p99 %s under the writes (server at %.0f%% of one core), against %s and %s for the same reads on a quiet server (%.0f%%) before the writes started",
			ms(x.List.Quantile(.99)), ms(x.Conv.Quantile(.99)), x.CPU, ms(x.BaseList.Quantile(.99)), ms(x.BaseConv.Quantile(.99)), x.BaseCPU)
		if x.BaseList.Quantile(.99) >= 10*time.Millisecond || x.BaseConv.Quantile(.99) >= 10*time.Millisecond {
			worse := "the writes made them slower still"
			if x.List.Quantile(.99) <= x.BaseList.Quantile(.99) && x.Conv.Quantile(.99) <= x.BaseConv.Quantile(.99) {
				worse = "the writes did not make them slower"
			}
			fmt.Fprintf(&b, ": the pages miss the target even without writes (the %d-row list is on both pages), and %s. ", x.ListRows, worse)
			if n := x.BaseList.Count() + x.BaseConv.Count(); n > 0 {
				cpuPerPage := time.Duration(x.BaseCPU / 100 * float64(x.BaseDur) / float64(n))
				fmt.Fprintf(&b, "Quiet, the %d readers (each asking again as soon as it has an answer) kept the server at %.0f%% of one core, about %s of CPU per page, so with %d cores the p99 is mostly pages waiting for a core. ",
					x.Readers, x.BaseCPU, ms(cpuPerPage), runtime.NumCPU())
			}
		} else {
			b.WriteString(": the pages are fast alone, so the p99 is the reads waiting behind the writes. ")
		}
		if x.CPU < 50*float64(runtime.NumCPU()) {
			fmt.Fprintf(&b, "With the server at only %.0f%% of one core on %d cores during the reads, they mostly waited (for a database connection, the writer, the disk or the scheduler) rather than computed; the CPU profile above shows only the computing.", x.CPU, runtime.NumCPU())
		} else {
			fmt.Fprintf(&b, "The server was busy (%.0f%% of one core on %d cores); the CPU profile above shows where its time goes.", x.CPU, runtime.NumCPU())
		}
	}
	return strings.TrimSpace(b.String())
}
