package main

// Workload: slow consumers (issue 5). H healthy users, each with two widget
// sockets, exchange messages as in workload 3 (send on the first, ack
// latency there, delivery latency to the second) while S/10 "feeder" users
// each send a large message 8 times a second into their own conversation,
// which the server fans out to the feeder's 10 other sockets: S sockets that
// each receive 8 messages (31 KB) a second, for only S/10 × 8 writes a
// second. The run has two phases of the same offered load:
//
//   - baseline: those S sockets read normally;
//   - slow: they are replaced by new ones (a small SO_RCVBUF and a real
//     network's MSS) that authenticate and then never read again.
//
// It reports the healthy latencies of both phases, the server's RSS over
// the slow phase, and which slow sockets the server cut and how long after
// they stopped reading: seen from /proc/net/tcp (the server's side of the
// connection leaves ESTABLISHED when the server closes it, while the client
// still has not read a byte), then confirmed by reading each slow socket
// after the phase (a close frame, or the connection ending, versus still
// open). Every socket of the workload gets a read loop as soon as it is open.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	slowTarget    = 5000 // healthy users in the target
	slowBody      = 3900 // bytes per feeder message
	slowRcvBuf    = 4096 // SO_RCVBUF of a slow socket (the kernel doubles it)
	slowMSS       = 1460 // the MSS a slow socket announces (see smallBufDialer)
	slowPerFeeder = 10   // slow sockets per feeder user
	slowWarmup    = 2 * time.Second
	slowCutWait   = 15 * time.Second // after the slow phase: > the server's 10 s write deadline
)

type slowPhase struct {
	Name                          string
	Sent, Acked, Delivered, Errs  atomic.Int64
	FeedSent, FeedAcked, FeedErrs atomic.Int64
	Ack, Deliver                  *Hist
	Elapsed                       time.Duration
	CPU                           float64
	RSSStart, RSSPeak, RSSEnd     int64
}

type slowResult struct {
	Healthy, Slow  int
	Feeders        int // users whose messages go to the slow sockets
	Rate, FeedRate float64
	Dur            time.Duration
	Base, SlowPh   *slowPhase
	Cut            int            // slow sockets the server closed (server side left ESTABLISHED)
	CutAfter       *Hist          // socket stopped reading → server closed it
	NotCut         int            // still ESTABLISHED on the server slowCutWait after the phase
	Confirm        map[string]int // reading each slow socket afterwards: "close 1008", "EOF/reset", "still open"…
	Drained        int64          // frames the slow sockets still read afterwards
	FedBytes       int64          // bytes of message bodies sent to the slow sockets' conversations (feeder acks × body × sockets per feeder)
	ProcErr        string         // /proc/net/tcp unreadable
	Died           atomic.Int64   // healthy and feeder sockets and baseline readers that ended while in use
	Ref            *refusals      // what ended them, and the error frames
	DropLogLines   int            // server log lines "dropping slow client" (cut for a full queue) during the workload
	Setup          time.Duration
}

type slowSent struct {
	t  time.Time
	ph *slowPhase
}

func runSlow(ctx context.Context, c *client, healthy, slow int, rate, feedRate float64, dur time.Duration, logf func(string, ...any)) (*slowResult, error) {
	r := &slowResult{Healthy: healthy, Slow: slow, Rate: rate, FeedRate: feedRate, Dur: dur,
		Base:     &slowPhase{Name: "baseline", Ack: new(Hist), Deliver: new(Hist)},
		SlowPh:   &slowPhase{Name: "slow", Ack: new(Hist), Deliver: new(Hist)},
		CutAfter: new(Hist), Confirm: map[string]int{}}
	var cur atomic.Pointer[slowPhase]
	cur.Store(r.Base)
	var sentAt sync.Map // client_msg_id → slowSent

	type hUser struct {
		id, token, convo string
		a, b             *wconn // healthy: send, receive. feeder: send, second socket
		s                *wconn // feeder's slow socket
		sPort            int
		sOpened          time.Time
	}
	hs := make([]*hUser, healthy)
	// Feeders: each feeder user's messages fan out to per sockets of its
	// own, so the slow sockets get 8 messages a second each while the
	// feeders add only slow/per × 8 writes a second to the healthy load.
	per := min(slowPerFeeder, slow)
	feeders := make([]*hUser, (slow+per-1)/per)
	fs := make([]*hUser, slow) // slot i: one of feeders[i/per]'s other sockets
	var ending atomic.Bool     // the workload is closing its sockets
	var onPurpose sync.Map     // *wconn → true: closed by the workload
	var closeMu sync.Mutex
	var toClose []*wconn
	keep := func(w *wconn) {
		closeMu.Lock()
		toClose = append(toClose, w)
		closeMu.Unlock()
	}
	defer func() {
		ending.Store(true)
		for _, w := range toClose {
			w.ws.Close()
		}
	}()
	// Every socket gets its read loop as soon as it is open: one that
	// nobody reads for 60 s misses the server's pings and is closed, and
	// setting up 5,000 users takes about that long.
	ref := newRefusals() // what ended the healthy and feeder sockets, and their error frames
	watch := func(w *wconn, fn func(f *inFrame, at time.Time)) {
		go func() {
			err := w.readLoop(fn)
			if _, ok := onPurpose.Load(w); !ok && !ending.Load() {
				ref.readErr(err)
				r.Died.Add(1)
			}
		}()
	}
	onAck := func(f *inFrame, at time.Time) {
		switch f.Type {
		case "ack":
			if v, ok := sentAt.Load(f.ClientMsgID); ok {
				s := v.(slowSent)
				s.ph.Ack.Record(at.Sub(s.t))
				s.ph.Acked.Add(1)
			}
		case "error":
			cur.Load().Errs.Add(1)
			ref.errorFrame(f.Code)
		}
	}
	onDeliver := func(f *inFrame, at time.Time) {
		var m message
		if f.Type != "message" || json.Unmarshal(f.Message, &m) != nil {
			return
		}
		if v, ok := sentAt.Load(m.ClientMsgID); ok {
			s := v.(slowSent)
			s.ph.Deliver.Record(at.Sub(s.t))
			s.ph.Delivered.Add(1)
		}
	}
	onFeedAck := func(f *inFrame, _ time.Time) {
		ph := r.SlowPh // the phase the message was sent in, from its client_msg_id
		if strings.Contains(f.ClientMsgID, "-"+r.Base.Name+"-") {
			ph = r.Base
		}
		switch f.Type {
		case "ack":
			ph.FeedAcked.Add(1)
		case "error":
			ph.FeedErrs.Add(1)
			ref.errorFrame("feeder " + f.Code)
		}
	}
	open := func(id string, feeder bool) (*hUser, error) {
		u := &hUser{id: id}
		var err error
		if u.token, err = c.session(ctx, id); err != nil {
			return nil, err
		}
		if u.a, err = c.dial(ctx, u.token); err != nil {
			return nil, err
		}
		keep(u.a)
		if u.b, err = c.dial(ctx, u.token); err != nil {
			return nil, err
		}
		keep(u.b)
		if feeder {
			watch(u.b, nil)
		} else {
			watch(u.b, onDeliver)
		}
		m, err := sendAndAck(u.a, "", id+"-0", "hello")
		if err != nil {
			return nil, err
		}
		u.convo = m.ConversationID
		if feeder {
			watch(u.a, onFeedAck)
		} else {
			watch(u.a, onAck)
		}
		return u, nil
	}
	start := time.Now()
	err := parallel(healthy+len(feeders), 64, func(i int) error {
		if i < healthy {
			u, err := open(fmt.Sprintf("slowh-%d", i), false)
			hs[i] = u
			return err
		}
		u, err := open(fmt.Sprintf("slowf-%d", i-healthy), true)
		feeders[i-healthy] = u
		return err
	})
	if err == nil {
		err = parallel(slow, 16, func(i int) error {
			f := feeders[i/per]
			u := &hUser{id: f.id, token: f.token, convo: f.convo, b: f.b}
			if i%per != 0 {
				var err error
				if u.b, err = c.dial(ctx, f.token); err != nil {
					return err
				}
				keep(u.b)
				watch(u.b, nil)
			}
			fs[i] = u
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("slow-consumer setup: %w", err)
	}
	r.Setup = time.Since(start)
	r.Feeders = len(feeders)
	r.Ref = ref
	drops0 := c.srv.logCount("dropping slow client")

	logf("slow: %d healthy users and %d feeders × %d sockets set up in %v", healthy, len(feeders), per, r.Setup.Round(time.Millisecond))

	body := strings.Repeat("slow consumer bench ", slowBody/20)[:slowBody]
	// phase runs one phase; then, with the RSS still sampled, after.
	phase := func(ph *slowPhase, rssEvery time.Duration, after func()) {
		cur.Store(ph)
		rss := sampleRSS(c.srv.pid(), rssEvery)
		p0, _ := readProc(c.srv.pid())
		t0 := time.Now()
		end := t0.Add(dur)
		var wg sync.WaitGroup
		hInterval := time.Duration(float64(healthy) / rate * float64(time.Second))
		for i, u := range hs {
			wg.Go(func() {
				next := t0.Add(hInterval * time.Duration(i) / time.Duration(healthy))
				for k := 1; next.Before(end); k++ {
					time.Sleep(time.Until(next))
					cmid := fmt.Sprintf("%s-%s-%d", u.id, ph.Name, k)
					sentAt.Store(cmid, slowSent{time.Now(), ph})
					if u.a.send(sendFrame{Type: "send", ConversationID: u.convo, ClientMsgID: cmid, Body: "healthy bench message"}) != nil {
						return
					}
					ph.Sent.Add(1)
					next = next.Add(hInterval)
				}
			})
		}
		fInterval := time.Duration(float64(time.Second) / feedRate)
		for i, u := range feeders {
			wg.Go(func() {
				next := t0.Add(fInterval * time.Duration(i) / time.Duration(len(feeders)))
				for k := 1; next.Before(end); k++ {
					time.Sleep(time.Until(next))
					cmid := fmt.Sprintf("%s-%s-%d", u.id, ph.Name, k)
					if u.a.send(sendFrame{Type: "send", ConversationID: u.convo, ClientMsgID: cmid, Body: body}) != nil {
						return
					}
					ph.FeedSent.Add(1)
					next = next.Add(fInterval)
					if now := time.Now(); next.Before(now) {
						next = now // never burst past the 10 frames/s limit
					}
				}
			})
		}
		wg.Wait()
		ph.Elapsed = time.Since(t0)
		p1, _ := readProc(c.srv.pid())
		ph.CPU = cpuPercent(p0, p1)
		waitFor(10*time.Second, func() bool {
			return ph.Acked.Load()+ph.Errs.Load() >= ph.Sent.Load() && ph.Delivered.Load() >= ph.Acked.Load() &&
				ph.FeedAcked.Load()+ph.FeedErrs.Load() >= ph.FeedSent.Load()
		})
		after()
		ph.RSSStart, ph.RSSPeak, ph.RSSEnd = rss.end(c.srv.pid())
	}

	logf("slow: baseline phase, %.0f msg/s healthy + %d feeders × %.0f msg/s, for %v", rate, slow, feedRate, dur)
	phase(r.Base, time.Second, func() {})

	// Replace each feeder's reading socket by one that never reads.
	cur.Store(r.SlowPh)
	sd := c.smallBufDialer(slowRcvBuf, slowMSS)
	sref := newRefusals()
	err = parallel(slow, 16, func(i int) error {
		u := fs[i]
		onPurpose.Store(u.b, true)
		u.b.close()
		w, err := c.dialAuth(ctx, sd, u.token, sref, nil)
		if err != nil {
			return err
		}
		keep(w)
		u.s, u.sPort, u.sOpened = w, localPort(w), time.Now()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening the slow sockets: %w", err)
	}
	time.Sleep(slowWarmup) // the healthy sockets' read loops settle after the burst of opens

	// Watch the server's side of each slow connection.
	ports := map[int]bool{}
	for _, u := range fs {
		ports[u.sPort] = true
	}
	cutAt := map[int]time.Time{}
	var cutMu sync.Mutex
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			est, err := serverSideEstablished(c.serverPort(), ports)
			now := time.Now()
			cutMu.Lock()
			if err != nil {
				r.ProcErr = err.Error()
			} else {
				for p := range ports {
					if _, done := cutAt[p]; !done && !est[p] {
						cutAt[p] = now
					}
				}
			}
			all := len(cutAt) == len(ports)
			cutMu.Unlock()
			if all || err != nil {
				return
			}
			select {
			case <-stopWatch:
				return
			case <-t.C:
			}
		}
	}()

	logf("slow: slow phase, %d sockets that never read, for %v", slow, dur)
	phase(r.SlowPh, time.Second, func() { // and until every slow socket is cut
		waitFor(slowCutWait, func() bool {
			cutMu.Lock()
			defer cutMu.Unlock()
			return len(cutAt) == len(ports) || r.ProcErr != ""
		})
	})
	close(stopWatch)
	<-watchDone
	r.FedBytes = r.SlowPh.FeedAcked.Load() * int64(len(body)) * int64(per)
	for _, u := range fs {
		if t, ok := cutAt[u.sPort]; ok {
			r.Cut++
			r.CutAfter.Record(t.Sub(u.sOpened))
		} else {
			r.NotCut++
		}
	}

	// Confirm from the client: read what is left; a cut socket ends.
	var cmu sync.Mutex
	var drained atomic.Int64
	parallel(slow, slow, func(i int) error {
		w := fs[i].s
		how := ""
		for how == "" {
			w.ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, _, err := w.ws.ReadMessage()
			var ce *websocket.CloseError
			var ne net.Error
			switch {
			case err == nil:
				drained.Add(1)
			case errors.As(err, &ce):
				how = fmt.Sprintf("close %d", ce.Code)
			case errors.As(err, &ne) && ne.Timeout():
				how = "still open"
			default:
				how = "EOF/reset"
			}
		}
		cmu.Lock()
		r.Confirm[how]++
		cmu.Unlock()
		return nil
	})
	r.Drained = drained.Load()
	r.DropLogLines = c.srv.logCount("dropping slow client") - drops0
	return r, nil
}

func (p *slowPhase) complete() bool {
	return p.Sent.Load() > 0 && p.Acked.Load() == p.Sent.Load() && p.Delivered.Load() == p.Sent.Load() && p.Errs.Load() == 0 &&
		p.FeedSent.Load() > 0 && p.FeedAcked.Load() == p.FeedSent.Load() && p.FeedErrs.Load() == 0
}

// p99Unchanged: the slow phase's healthy p99 (ack and delivery) is within
// 50% + 5 ms of the baseline's.
func (r *slowResult) p99Unchanged() bool {
	within := func(base, got time.Duration) bool {
		return float64(got) <= 1.5*float64(base)+float64(5*time.Millisecond)
	}
	return within(r.Base.Ack.Quantile(.99), r.SlowPh.Ack.Quantile(.99)) && within(r.Base.Deliver.Quantile(.99), r.SlowPh.Deliver.Quantile(.99))
}

// memLimit is what "bounded" allows the server's peak RSS over the slow
// phase (until every slow socket is cut) to exceed the larger of the
// baseline phase's peak and the slow phase's start: 1 MiB per slow socket.
// A slow socket may hold its 64-frame queue (~250 KB of these 3.9 KB
// messages), which the Go heap's GC headroom doubles; buffering everything
// the feeders send instead would grow with the phase's length (31 KB/s per
// slow socket).
func (r *slowResult) memLimit() int64 { return int64(r.Slow) << 20 }

func (r *slowResult) memGrowth() int64 {
	return r.SlowPh.RSSPeak - max(r.Base.RSSPeak, r.SlowPh.RSSStart)
}

func (r *slowResult) memBounded() bool { return r.memGrowth() <= r.memLimit() }

// allCut: every slow socket was closed by the server, and reading it
// afterwards ended instead of waiting on an open connection.
func (r *slowResult) allCut() bool { return r.Cut == r.Slow && r.Confirm["still open"] == 0 }

func (r *slowResult) ok() bool {
	return r.Died.Load() == 0 && r.allCut() && r.memBounded() && r.p99Unchanged() && r.Base.complete() && r.SlowPh.complete()
}

// row is the report's table row.
func (r *slowResult) row() string {
	full := r.Healthy >= slowTarget && r.Slow >= 100
	return fmt.Sprintf("| %d sockets that stop reading among %s healthy | healthy ack p99 %s → %s, delivery p99 %s → %s (baseline → with slow sockets); server RSS %s at the baseline's peak, %s → peak %s → %s over the slow phase until the cuts; %d of %d slow sockets cut, %s after they stopped reading | memory bounded, slow ones cut, healthy p99 unchanged | %s |",
		r.Slow, commas(r.Healthy), ms(r.Base.Ack.Quantile(.99)), ms(r.SlowPh.Ack.Quantile(.99)),
		ms(r.Base.Deliver.Quantile(.99)), ms(r.SlowPh.Deliver.Quantile(.99)),
		mb(r.Base.RSSPeak), mb(r.SlowPh.RSSStart), mb(r.SlowPh.RSSPeak), mb(r.SlowPh.RSSEnd), r.Cut, r.Slow, cutSpan(r.CutAfter),
		sized(full, r.ok(), fmt.Sprintf("%d slow among %d healthy", r.Slow, r.Healthy)))
}

func cutSpan(h *Hist) string {
	if h.Count() == 0 {
		return "none"
	}
	return fmt.Sprintf("%.1f–%.1f s (median %.1f s)", h.Quantile(0).Seconds(), h.Max().Seconds(), h.Quantile(.5).Seconds())
}

// details writes the report's paragraph.
func (r *slowResult) details(p func(string, ...any)) {
	p("**Slow consumers.** %d healthy users, each with two widget sockets, send %.0f messages a second all together (open loop, as in workload 3) and %d feeder users each send a %d-byte message %.0f times a second into their own conversation, which the server fans out to the feeder's %d other sockets (%d in all), so each gets %.0f messages a second. Two phases of %v with the same offered load: a baseline where those %d sockets read, then one where they are replaced by new ones (SO_RCVBUF %d bytes, MSS %d so that the server's send buffer is sized as on a real network, not loopback) that authenticate and never read again. Set up in %v.",
		r.Healthy, r.Rate, r.Feeders, slowBody, r.FeedRate, r.Slow/max(1, r.Feeders), r.Slow, r.FeedRate, r.Dur, r.Slow, slowRcvBuf, slowMSS, r.Setup.Round(time.Millisecond))
	p("")
	for _, ph := range []*slowPhase{r.Base, r.SlowPh} {
		p("- %s phase: healthy %d sent, %d acked, %d delivered, %d error frames; feeders %d sent, %d acked, %d error frames; server CPU %.0f%% of one core, RSS %s at the start, peak %s, %s at the end (sampled each second, for the slow phase until every slow socket was cut)",
			ph.Name, ph.Sent.Load(), ph.Acked.Load(), ph.Delivered.Load(), ph.Errs.Load(), ph.FeedSent.Load(), ph.FeedAcked.Load(), ph.FeedErrs.Load(), ph.CPU, mb(ph.RSSStart), mb(ph.RSSPeak), mb(ph.RSSEnd))
		p("  - send → `ack`: %s", pcts(ph.Ack))
		p("  - send → `message` on the second socket: %s", pcts(ph.Deliver))
	}
	p("- slow sockets cut by the server (its side of the connection left ESTABLISHED in `/proc/net/tcp`): %d of %d, %s after they stopped reading; %d still open %v after the phase. Read afterwards from the client: %s (1006: the connection ended without a close frame; a cut slow client gets none, its buffers are full), after %d frames still buffered. The server logged \"dropping slow client\" (its send queue was full) %d times; a socket cut otherwise hit the 10 s write deadline.",
		r.Cut, r.Slow, cutSpan(r.CutAfter), r.NotCut, slowCutWait, confirmString(r.Confirm), r.Drained, r.DropLogLines)
	p("- memory: the feeders sent %s of message bodies into the slow sockets' conversations over the slow phase (which the server stops fanning out once it cut them); the server's peak RSS over the slow phase, sampled until the last cut, was %s, %s above the larger of the baseline's peak and the phase's start (bounded means at most %s above, 1 MiB per slow socket: a 64-frame queue of these messages, doubled for the GC's headroom, with margin), and %s at the end (the slow phase's RSS line above has the samples)",
		mb(r.FedBytes), mb(r.SlowPh.RSSPeak), mb(max(0, r.memGrowth())), mb(r.memLimit()), mb(r.SlowPh.RSSEnd))
	p("- healthy and feeder sockets that ended while in use: %d; %s", r.Died.Load(), r.Ref)
	if r.ProcErr != "" {
		p("- /proc/net/tcp could not be read: %s", r.ProcErr)
	}
	p("")
}

func confirmString(m map[string]int) string { return countsString(m, " ×") }

// why is the "why the misses" line, or "" when the target was met.
func (r *slowResult) why() string {
	if r.ok() {
		return ""
	}
	var parts []string
	if !r.allCut() {
		parts = append(parts, fmt.Sprintf("%d of %d slow sockets not cut (%s)", r.Slow-r.Cut, r.Slow, confirmString(r.Confirm)))
	}
	if !r.memBounded() {
		parts = append(parts, fmt.Sprintf("server's peak RSS over the slow phase was %s above the baseline's (limit %s)", mb(r.memGrowth()), mb(r.memLimit())))
	}
	if !r.p99Unchanged() {
		parts = append(parts, fmt.Sprintf("healthy p99 rose from %s to %s (ack) and %s to %s (delivery), more than 50%% + 5 ms; server CPU %.0f%% → %.0f%% of one core",
			ms(r.Base.Ack.Quantile(.99)), ms(r.SlowPh.Ack.Quantile(.99)), ms(r.Base.Deliver.Quantile(.99)), ms(r.SlowPh.Deliver.Quantile(.99)), r.Base.CPU, r.SlowPh.CPU))
	}
	if !r.Base.complete() || !r.SlowPh.complete() {
		parts = append(parts, "healthy or feeder messages not all acked and delivered (see the phases' lines)")
	}
	if n := r.Died.Load(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d healthy or feeder sockets ended while in use (%s)", n, r.Ref))
	}
	return "- **Slow consumers**: " + strings.Join(parts, "; ") + "."
}
