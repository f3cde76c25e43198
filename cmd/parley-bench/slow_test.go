package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSlow(t *testing.T) {
	c, ctx := kitServer(t)
	const healthy, slow = 20, 8
	r, err := runSlow(ctx, c, healthy, slow, 20, 8, 10*time.Second, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range []*slowPhase{r.Base, r.SlowPh} {
		if !ph.complete() || ph.FeedSent.Load() == 0 || ph.FeedAcked.Load() != ph.FeedSent.Load() || ph.FeedErrs.Load() != 0 {
			t.Errorf("%s phase: healthy sent %d acked %d delivered %d errors %d; feeders sent %d acked %d errors %d", ph.Name,
				ph.Sent.Load(), ph.Acked.Load(), ph.Delivered.Load(), ph.Errs.Load(), ph.FeedSent.Load(), ph.FeedAcked.Load(), ph.FeedErrs.Load())
		}
	}
	// The server must cut every socket that stopped reading, within its
	// write deadline (10 s) and the time to fill the buffers, and reading
	// one afterwards must end rather than find it open.
	if n := r.Died.Load(); n != 0 {
		t.Errorf("%d healthy or feeder sockets ended while in use: %s", n, r.Ref)
	}
	if r.ProcErr != "" || r.Cut != slow || r.NotCut != 0 || r.Confirm["still open"] != 0 || !r.allCut() {
		t.Errorf("cut %d of %d (not cut %d), read afterwards: %v, /proc: %q", r.Cut, slow, r.NotCut, r.Confirm, r.ProcErr)
	}
	if r.CutAfter.Max() > 30*time.Second {
		t.Errorf("slowest cut %v after the socket stopped reading", r.CutAfter.Max())
	}
	// At this size the bound (1 MiB per slow socket) is within the RSS's
	// noise; what can be asserted is that the peak stayed near the baseline.
	if r.memGrowth() > max(r.memLimit(), 32<<20) || r.SlowPh.RSSPeak <= 0 {
		t.Errorf("RSS peak %d over the slow phase, %d above the baseline's", r.SlowPh.RSSPeak, r.memGrowth())
	}
	var b strings.Builder
	p := func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...) + "\n") }
	p("%s", r.row())
	r.details(p)
	if !strings.Contains(b.String(), "| 8 sockets that stop reading among 20 healthy") || !strings.Contains(b.String(), "8 of 8 slow sockets cut") {
		t.Errorf("report:\n%s", b.String())
	}
	t.Log("\n" + b.String())
}
