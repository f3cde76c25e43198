package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Workload 8: messages with a webhook endpoint. Every user message makes
// a webhook delivery row and its job in the message's own transaction
// (the outbox), and River sends it. This measures what that costs the
// chat (the acks' latency) and how soon each event reaches a receiver on
// this machine, which verifies every signature with the Standard Webhooks
// library, and whether every acked message arrived once.

type webhookResult struct {
	Users                    int
	Target, Rate             float64
	Dur                      time.Duration
	Sent, Acked, Errs        int64
	Delivered, Dups, BadSigs int64
	Missing                  int64 // acked messages whose webhook never came
	Ack, Hook                *Hist // send → ack; send → webhook received
	Drained                  time.Duration
	CPU                      float64
}

func (r *webhookResult) ok() bool {
	return r.Missing == 0 && r.Dups == 0 && r.BadSigs == 0 && r.Hook.Quantile(.99) <= time.Second
}

func runWebhooks(ctx context.Context, c *client, nUsers int, rate float64, dur time.Duration, logf func(string, ...any)) (*webhookResult, error) {
	r := &webhookResult{Users: nUsers, Target: rate, Dur: dur, Ack: new(Hist), Hook: new(Hist)}
	var sentAt sync.Map // body → time.Time
	var wh *standardwebhooks.Webhook
	var whMu sync.Mutex
	seen := map[string]int{} // message id → deliveries
	var mu sync.Mutex
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	recv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		at := time.Now()
		whMu.Lock()
		v := wh
		whMu.Unlock()
		if v == nil || v.Verify(body, req.Header) != nil {
			atomic.AddInt64(&r.BadSigs, 1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p struct {
			Data struct {
				Message *struct{ ID, Body string }
			}
		}
		if json.Unmarshal(body, &p) == nil && p.Data.Message != nil {
			mu.Lock()
			seen[p.Data.Message.ID]++
			first := seen[p.Data.Message.ID] == 1
			mu.Unlock()
			if t, ok := sentAt.Load(p.Data.Message.Body); ok && first {
				r.Hook.Record(at.Sub(t.(time.Time)))
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go recv.Serve(ln)
	defer recv.Close()

	out, err := c.srv.run(ctx, "webhooks", "add", "--db", c.srv.db, "--app", c.srv.appID, "--url", "http://"+ln.Addr().String()+"/hook",
		"--event", "message.created", "--webhook-allow", "127.0.0.0/8", "--json")
	if err != nil {
		return nil, err
	}
	var added struct{ ID, Secret string }
	if err := json.Unmarshal(out, &added); err != nil {
		return nil, fmt.Errorf("webhooks add printed %q: %v", out, err)
	}
	whMu.Lock()
	wh, err = standardwebhooks.NewWebhook(added.Secret)
	whMu.Unlock()
	if err != nil {
		return nil, err
	}
	defer c.srv.run(context.Background(), "webhooks", "remove", "--db", c.srv.db, "--app", c.srv.appID, "--id", added.ID)

	users, err := openUsers(ctx, c, "hook-", nUsers, false)
	if err != nil {
		return nil, fmt.Errorf("opening users: %w", err)
	}
	defer closeUsers(users)
	var ackedIDs sync.Map // message id → struct{}
	var acked, errs atomic.Int64
	for _, u := range users {
		go u.a.readLoop(func(f *inFrame, at time.Time) {
			switch f.Type {
			case "ack":
				var m struct{ ID, Body string }
				if json.Unmarshal(f.Message, &m) != nil {
					return
				}
				if t, ok := sentAt.Load(m.Body); ok {
					r.Ack.Record(at.Sub(t.(time.Time)))
					ackedIDs.Store(m.ID, struct{}{})
					acked.Add(1)
				}
			case "error":
				errs.Add(1)
			}
		})
	}
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
				body := fmt.Sprintf("%s hook %d", u.id, k)
				sentAt.Store(body, time.Now())
				if u.a.send(sendFrame{Type: "send", ConversationID: u.convo, ClientMsgID: fmt.Sprintf("%s-h%d", u.id, k), Body: body}) != nil {
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
	r.Sent = sent.Load()
	r.Rate = float64(r.Sent) / elapsed.Seconds()
	waitFor(10*time.Second, func() bool { return acked.Load()+errs.Load() >= r.Sent })
	arrived := func() (n int64) {
		ackedIDs.Range(func(k, _ any) bool {
			mu.Lock()
			if seen[k.(string)] > 0 {
				n++
			}
			mu.Unlock()
			return true
		})
		return n
	}
	drainStart := time.Now()
	waitFor(60*time.Second, func() bool { return arrived() >= acked.Load() })
	r.Drained = time.Since(drainStart)
	time.Sleep(time.Second) // room for a repeat
	r.Acked, r.Errs = acked.Load(), errs.Load()
	r.Delivered = arrived()
	r.Missing = r.Acked - r.Delivered
	mu.Lock()
	for _, n := range seen {
		if n > 1 {
			r.Dups += int64(n - 1)
		}
	}
	mu.Unlock()
	logf("    %d sent, %d acked, %d delivered, %d duplicates, %d bad signatures", r.Sent, r.Acked, r.Delivered, r.Dups, r.BadSigs)
	return r, nil
}

func (r *webhookResult) row() string {
	return fmt.Sprintf("| user message → webhook received (Standard Webhooks, signature verified), %d users at %.0f msg/s for %v | ack p50 %s, p99 %s; webhook p50 %s, p99 %s; %d of %d acked messages delivered, %d duplicates, %d bad signatures | every acked message delivered once, p99 ≤ 1 s | %s |",
		r.Users, r.Rate, r.Dur, ms(r.Ack.Quantile(.5)), ms(r.Ack.Quantile(.99)), ms(r.Hook.Quantile(.5)), ms(r.Hook.Quantile(.99)),
		r.Delivered, r.Acked, r.Dups, r.BadSigs, verdict(r.ok()))
}

func (r *webhookResult) details(p func(string, ...any)) {
	p("**Webhooks.** An endpoint for `message.created` on a receiver on this machine (plain http to 127.0.0.1, allowed with `--webhook-allow 127.0.0.0/8`), which verifies every request with the Standard Webhooks Go library and answers 204. %d users with one widget socket each sent %.0f msg/s together for %v (open loop). Each message's delivery row and River job are written in the message's transaction, so with an endpoint a message takes the transaction path instead of PostgreSQL's one-statement path, and on SQLite two more inserts in the group commit.", r.Users, r.Rate, r.Dur)
	p("")
	p("- send → ack: %s", pcts(r.Ack))
	p("- send → webhook received: %s", pcts(r.Hook))
	p("- %d sent, %d acked, %d errors; %d delivered, %d acked but never delivered, %d duplicates, %d bad signatures; the last arrived %v after the load stopped; server CPU %.0f%% of one core during the load",
		r.Sent, r.Acked, r.Errs, r.Delivered, r.Missing, r.Dups, r.BadSigs, r.Drained.Round(time.Millisecond), r.CPU)
	p("")
}
