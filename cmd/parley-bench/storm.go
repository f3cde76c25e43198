package main

// Workload: reconnect storm (issue 5). N users, each with a verified
// session, one widget socket and a conversation of a few messages whose
// highest seq the client tracks. All sockets are dropped at once without a
// close frame (half with a FIN, half with a reset); while they are down,
// every conversation gets 1–3 agent replies through the server API and every
// fourth user also sends a message from a second socket. The clients then
// reconnect spread evenly over the spread window (websocket + auth with the
// same token, then open with after_seq = the last seq seen, paging while
// has_more) and each conversation's resumed history is checked against what
// was written while it was down: it must continue exactly from the last seq
// seen, with no gap and no duplicate, up to the last message stored.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const stormTarget = 5000 // sockets in the target

type stormResult struct {
	N      int
	Spread time.Duration

	Setup    time.Duration // sessions, sockets, first messages
	Missing  time.Duration // writing the missed messages while all were down
	Missed   int           // messages written while the sockets were down
	Agent    int           // of which agent replies through the API
	Own      int           // of which the users' own, from a second socket
	PreDrop  int           // users whose pre-drop agent reply never arrived live
	Resumed  int           // users whose history came back complete
	Gaps     int           // missed messages not received on resume
	Dups     int           // messages received twice on resume
	Extra    int           // received messages that were not missed (at or below the last seq seen, or unknown)
	Recv     int           // messages received in resumed history
	Mismatch int           // received seq whose message id differs from the one written
	Live     int           // live message frames on the resumed sockets (none expected: nothing is written then)
	Paged    int           // users whose history needed more than one page (has_more)
	Retries  int           // reconnect attempts that failed and were retried
	Failed   []string      // the first few users that never resumed, and why

	ResumeAll time.Duration // first reconnect started → last history complete
	Lat       *Hist         // per user: first dial → history complete (retries included)
	Auth      *Hist         // the successful attempt: dial → welcome
	Upgrade   *Hist         // every attempt: the websocket upgrade alone
	History   *Hist         // the successful attempt: first open sent → last history page
	Ref       *refusals

	CPU                       float64 // server, % of one core over the reconnect phase
	RSSStart, RSSPeak, RSSEnd int64   // server RSS over the reconnect phase
	RSSDown                   int64   // server RSS while all sockets were down
}

type stormUser struct {
	id, token, convo string
	w                *wconn
	readDone         chan struct{}

	mu       sync.Mutex
	lastSeen int64            // highest seq this client saw before the drop
	missed   map[int64]string // seq → message id, written while down
	got      []kMsg           // resumed history, in the order received
	pages    int              // further pages asked for (has_more)
}

func (u *stormUser) see(seq int64) {
	u.mu.Lock()
	u.lastSeen = max(u.lastSeen, seq)
	u.mu.Unlock()
}

func runStorm(ctx context.Context, c *client, n int, spread time.Duration, logf func(string, ...any)) (*stormResult, error) {
	r := &stormResult{N: n, Spread: spread, Lat: new(Hist), Auth: new(Hist), Upgrade: new(Hist), History: new(Hist), Ref: newRefusals()}
	users := make([]*stormUser, n)
	defer func() {
		for _, u := range users {
			if u != nil && u.w != nil {
				u.w.ws.Close()
			}
		}
	}()

	// Setup: session, socket, two messages of the user's own (seq 1, 2),
	// then one agent reply delivered live (seq 3).
	start := time.Now()
	err := parallel(n, 64, func(i int) error {
		u := &stormUser{id: fmt.Sprintf("storm-%d", i), missed: map[int64]string{}, readDone: make(chan struct{})}
		tok, err := c.session(ctx, u.id)
		if err != nil {
			return err
		}
		u.token = tok
		if u.w, err = c.dial(ctx, tok); err != nil {
			return err
		}
		users[i] = u
		m, err := sendAndAck(u.w, "", u.id+"-0", "hello")
		if err != nil {
			return err
		}
		u.convo = m.ConversationID
		u.see(m.Seq)
		if m, err = sendAndAck(u.w, u.convo, u.id+"-1", "anyone there?"); err != nil {
			return err
		}
		u.see(m.Seq)
		go func() {
			defer close(u.readDone)
			u.w.readLoop(func(f *inFrame, _ time.Time) {
				var m message
				if (f.Type == "message" || f.Type == "ack") && len(f.Message) > 0 && f.Message[0] == '{' && json.Unmarshal(f.Message, &m) == nil && m.ConversationID == u.convo {
					u.see(m.Seq)
				}
			})
		}()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storm setup: %w", err)
	}
	replies := make([]int64, n)
	err = parallel(n, 32, func(i int) error {
		m, err := c.agentReply(ctx, users[i].convo, "Hi, how can I help?")
		replies[i] = m.Seq
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storm setup, agent replies: %w", err)
	}
	waitFor(15*time.Second, func() bool {
		for i, u := range users {
			u.mu.Lock()
			ok := u.lastSeen >= replies[i]
			u.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})
	r.Setup = time.Since(start)
	logf("storm: %d users set up in %v; dropping every socket", n, r.Setup.Round(time.Millisecond))

	// Drop every socket at once, without a close frame.
	for i, u := range users {
		abortConn(u.w, i%2 == 1)
	}
	for i, u := range users {
		<-u.readDone
		u.w = nil
		if u.lastSeen < replies[i] {
			r.PreDrop++ // the live reply never arrived: still resumable from lastSeen
		}
	}

	// While they are down: 1–3 agent replies each, and every fourth user
	// writes from a second socket (another tab that stayed online).
	start = time.Now()
	var agent, own atomic.Int64
	err = parallel(n, 32, func(i int) error {
		u := users[i]
		record := func(m kMsg) {
			u.mu.Lock()
			u.missed[m.Seq] = m.ID
			u.mu.Unlock()
		}
		if i%4 == 0 {
			w, err := c.dial(ctx, u.token)
			if err != nil {
				return err
			}
			m, err := sendAndAck(w, u.convo, u.id+"-tab", "sent from my other tab")
			w.close()
			if err != nil {
				return err
			}
			record(m)
			own.Add(1)
		}
		for k := range stormReplies(i) {
			m, err := c.agentReply(ctx, u.convo, fmt.Sprintf("reply %d while you were away", k))
			if err != nil {
				return err
			}
			record(m)
			agent.Add(1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storm, writing while down: %w", err)
	}
	r.Missing = time.Since(start)
	r.Agent, r.Own = int(agent.Load()), int(own.Load())
	r.Missed = r.Agent + r.Own
	if p, err := readProc(c.srv.pid()); err == nil {
		r.RSSDown = p.RSS
	}
	logf("storm: %d messages written while down in %v; reconnecting over %v", r.Missed, r.Missing.Round(time.Millisecond), spread)

	// Reconnect, spread evenly over the window in a random order.
	order := rand.Perm(n)
	rss := sampleRSS(c.srv.pid(), 250*time.Millisecond)
	p0, _ := readProc(c.srv.pid())
	start = time.Now()
	var lastDone atomic.Int64
	var failMu sync.Mutex
	var live, retries atomic.Int64
	var wg sync.WaitGroup
	for slot, i := range order {
		u := users[i]
		at := start.Add(spread * time.Duration(slot) / time.Duration(n))
		wg.Go(func() {
			time.Sleep(time.Until(at))
			t0 := time.Now()
			var err error
			for attempt := 0; attempt < 8; attempt++ {
				if attempt > 0 {
					retries.Add(1)
					time.Sleep(time.Duration(100<<min(attempt, 4)) * time.Millisecond)
				}
				if err = c.resume(ctx, u, r); err == nil {
					break
				}
			}
			if err != nil {
				failMu.Lock()
				if len(r.Failed) < 5 {
					r.Failed = append(r.Failed, u.id+": "+err.Error())
				}
				failMu.Unlock()
				return
			}
			d := time.Since(t0)
			r.Lat.Record(d)
			for e := int64(time.Since(start)); ; {
				prev := lastDone.Load()
				if e <= prev || lastDone.CompareAndSwap(prev, e) {
					break
				}
			}
			go u.w.readLoop(func(f *inFrame, _ time.Time) {
				if f.Type == "message" {
					live.Add(1)
				}
			})
		})
	}
	wg.Wait()
	r.ResumeAll = time.Duration(lastDone.Load())
	p1, _ := readProc(c.srv.pid())
	r.CPU = cpuPercent(p0, p1)
	r.RSSStart, r.RSSPeak, r.RSSEnd = rss.end(c.srv.pid())
	r.Retries = int(retries.Load())
	time.Sleep(200 * time.Millisecond) // a late live frame would be counted
	r.Live = int(live.Load())

	// Check every conversation.
	for _, u := range users {
		u.mu.Lock()
		if u.w != nil {
			r.Resumed++
		}
		if u.pages > 0 {
			r.Paged++
		}
		seen := map[int64]bool{}
		for _, m := range u.got {
			r.Recv++
			switch id, ok := u.missed[m.Seq]; {
			case seen[m.Seq]:
				r.Dups++
			case !ok:
				r.Extra++
			case id != m.ID:
				r.Mismatch++
			}
			seen[m.Seq] = true
		}
		if u.w != nil { // a user that never resumed is counted as such, not as gaps
			for seq := range u.missed {
				if !seen[seq] {
					r.Gaps++
				}
			}
		}
		u.mu.Unlock()
	}
	sort.Strings(r.Failed)
	return r, nil
}

// resume is one reconnect attempt: a new socket, auth with the same token,
// open with after_seq = the last seq seen, again while has_more.
func (c *client) resume(ctx context.Context, u *stormUser, r *stormResult) error {
	ref := r.Ref
	t0 := time.Now()
	w, err := c.dialAuth(ctx, &c.dialer, u.token, ref, r.Upgrade)
	if err != nil {
		return err
	}
	t1 := time.Now()
	u.mu.Lock()
	after := u.lastSeen
	u.got, u.pages = u.got[:0], 0 // a failed earlier attempt's pages do not count
	u.mu.Unlock()
	w.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := w.send(map[string]any{"type": "open", "conversation_id": u.convo, "after_seq": after}); err != nil {
		ref.readErr(err)
		w.ws.Close()
		return err
	}
	for {
		_, data, err := w.ws.ReadMessage()
		if err != nil {
			ref.readErr(err)
			w.ws.Close()
			return fmt.Errorf("reading history: %v", err)
		}
		var f kFrame
		if err := json.Unmarshal(data, &f); err != nil {
			continue
		}
		switch f.Type {
		case "error":
			ref.errorFrame(f.Code)
			w.ws.Close()
			return fmt.Errorf("open refused: %s", data)
		case "history":
			if f.ConversationID != u.convo {
				continue
			}
			u.mu.Lock()
			u.got = append(u.got, f.Messages...)
			for _, m := range f.Messages {
				after = max(after, m.Seq)
			}
			u.mu.Unlock()
			if !f.HasMore {
				w.ws.SetReadDeadline(time.Time{})
				r.Auth.Record(t1.Sub(t0))
				r.History.Record(time.Since(t1))
				u.mu.Lock()
				u.w = w
				u.mu.Unlock()
				return nil
			}
			u.pages++
			if err := w.send(map[string]any{"type": "open", "conversation_id": u.convo, "after_seq": after}); err != nil {
				ref.readErr(err)
				w.ws.Close()
				return err
			}
		}
	}
}

// stormReplies is how many agent replies user i misses: 1–3, and 250 for
// every 500th user, whose history then takes two pages (200 at most each).
func stormReplies(i int) int {
	if i%500 == 1 {
		return 250
	}
	return 1 + i%3
}

func (r *stormResult) ok() bool {
	return r.Resumed == r.N && r.ResumeAll <= r.Spread+time.Second && r.Gaps == 0 && r.Dups == 0 && r.Extra == 0 && r.Mismatch == 0 && r.Missed > 0 && r.Recv == r.Missed
}

// row is the report's table row.
func (r *stormResult) row() string {
	full := r.N >= stormTarget && r.Spread <= 10*time.Second
	return fmt.Sprintf("| reconnect storm: %s sockets dropped and reconnecting within %v | %d of %d resumed, all within %v of the first reconnect; reconnect → history complete %s; %d missed messages: %d recovered, %d gaps, %d duplicates; %d refusals/cuts, %d retries | 5,000 sockets reconnecting over 10 s: all resume (the last within 1 s of its start: by 11 s), no gaps, no duplicates | %s |",
		commas(r.N), r.Spread, r.Resumed, r.N, r.ResumeAll.Round(time.Millisecond), pctsShort(r.Lat),
		r.Missed, r.Recv-r.Dups-r.Extra-r.Mismatch, r.Gaps, r.Dups, r.Ref.total(), r.Retries,
		sized(full, r.ok(), fmt.Sprintf("%d sockets", r.N)))
}

// details writes the report's paragraph.
func (r *stormResult) details(p func(string, ...any)) {
	p("**Reconnect storm.** %d users, each with a verified session, one widget socket and a conversation of three messages (two of the user's own, acked, then an agent reply through `POST /api/v1/conversations/{id}/messages`, received live; %d users did not get it live before the drop and resumed from the seq before it); the client tracks the highest seq it saw. Set up in %v. Then every socket was dropped at once without a close frame (half a FIN, half a reset, SO_LINGER 0). While they were down, %d messages were written to their conversations in %v: %d agent replies through the API (1–3 per conversation, 250 in every 500th so that its history takes two pages: %d users asked for a second page) and %d messages of every fourth user's own from a second socket (another tab). The clients then reconnected in random order spread evenly over %v: websocket + `auth` with the same token, then `open` with `after_seq` = the last seq seen, again while `has_more`.",
		r.N, r.PreDrop, r.Setup.Round(time.Millisecond), r.Missed, r.Missing.Round(time.Millisecond), r.Agent, r.Paged, r.Own, r.Spread)
	p("")
	p("- resumed: %d of %d; the last history was complete %v after the first reconnect began", r.Resumed, r.N, r.ResumeAll.Round(time.Millisecond))
	p("- first dial → history complete, per user (retries included): %s", pcts(r.Lat))
	p("  - of which websocket upgrade + `auth` → `welcome`: %s", pcts(r.Auth))
	p("    - the upgrade alone (HTTP upgrade answered): %s", pcts(r.Upgrade))
	p("  - and `open` → last `history` page: %s", pcts(r.History))
	p("- checked per conversation against what was written while down (seq and message id): %d received, %d missed messages recovered, %d gaps, %d duplicates, %d unexpected (at or below the last seq seen, or never written), %d with another message's id; %d live `message` frames on the resumed sockets (nothing was written then)",
		r.Recv, r.Recv-r.Dups-r.Extra-r.Mismatch, r.Gaps, r.Dups, r.Extra, r.Mismatch, r.Live)
	p("- refusals and cuts while reconnecting, counted separately: %s; %d attempts retried (up to 8 per user, backoff from 200 ms)", r.Ref, r.Retries)
	if len(r.Failed) > 0 {
		p("- never resumed, first few: %s", joinQuoted(r.Failed))
	}
	p("- server over the reconnect phase: CPU %.0f%% of one core; RSS %s at the start, peak %s, %s at the end (%s with every socket down)",
		r.CPU, mb(r.RSSStart), mb(r.RSSPeak), mb(r.RSSEnd), mb(r.RSSDown))
	p("")
}

// why is the "why the misses" line, or "" when the target was met.
func (r *stormResult) why() string {
	if r.ok() {
		return ""
	}
	return fmt.Sprintf("- **Reconnect storm**: %d of %d resumed, the last %v after the first reconnect began (reconnects spread over %v); websocket + auth → welcome %s (the upgrade alone %s), open → history complete %s; %d gaps, %d duplicates, %d unexpected, %d id mismatches (%d missed messages written, %d received). Refusals: %s.",
		r.Resumed, r.N, r.ResumeAll.Round(time.Millisecond), r.Spread, pctsShort(r.Auth), pctsShort(r.Upgrade), pctsShort(r.History), r.Gaps, r.Dups, r.Extra, r.Mismatch, r.Missed, r.Recv, r.Ref)
}

func commas(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func joinQuoted(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += "; "
		}
		out += "`" + s + "`"
	}
	return out
}
