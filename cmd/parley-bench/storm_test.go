package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// kitServer builds the server binary and starts it on a temp database, as
// bench_test.go's TestSmoke does through run.
func kitServer(t *testing.T) (*client, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the real server; skipped with -short")
	}
	dir := t.TempDir()
	bin := benchBinary(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	srv, err := startServer(ctx, bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.kill)
	return newClient(srv), ctx
}

func TestStorm(t *testing.T) {
	c, ctx := kitServer(t)
	const n = 60
	r, err := runStorm(ctx, c, n, 2*time.Second, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	// Every user misses 1–3 agent replies, every fourth one its own message too.
	wantMissed := 0
	for i := range n {
		wantMissed += stormReplies(i)
		if i%4 == 0 {
			wantMissed++
		}
	}
	if r.Resumed != n || r.Missed != wantMissed || r.Recv != r.Missed || r.Gaps != 0 || r.Dups != 0 ||
		r.Extra != 0 || r.Mismatch != 0 || r.Live != 0 || r.PreDrop != 0 || r.Paged != 1 || r.Lat.Count() != n || !r.ok() {
		t.Errorf("storm: resumed %d/%d, missed %d (want %d), received %d, gaps %d, dups %d, extra %d, mismatched %d, live %d, pre-drop %d, paged %d, failed %v",
			r.Resumed, n, r.Missed, wantMissed, r.Recv, r.Gaps, r.Dups, r.Extra, r.Mismatch, r.Live, r.PreDrop, r.Paged, r.Failed)
	}
	if r.ResumeAll < time.Second || r.ResumeAll > 10*time.Second || r.RSSPeak <= 0 {
		t.Errorf("resume took %v, peak RSS %d", r.ResumeAll, r.RSSPeak)
	}
	var b strings.Builder
	p := func(f string, a ...any) { b.WriteString(strings.TrimSpace(fmt.Sprintf(f, a...)) + "\n") }
	p("%s", r.row())
	r.details(p)
	for _, want := range []string{"| reconnect storm: 60 sockets", "0 gaps, 0 duplicates", "met at 60 sockets only"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	t.Log("\n" + b.String())
}
