package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 500 * time.Microsecond}, {.9, 900 * time.Microsecond}, {.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.035 {
			t.Errorf("Quantile(%v) = %v, want %v within +3.5%%", c.q, got, c.want)
		}
	}
	if h.Max() != time.Millisecond || h.Count() != 1000 {
		t.Errorf("Max %v Count %d", h.Max(), h.Count())
	}
	for v := int64(0); v < 1<<20; v += 7 {
		if i := bucketOf(v); bucketTop(i) < v || (i > 0 && bucketTop(i-1) >= v) {
			t.Fatalf("value %d in bucket %d with top %d", v, i, bucketTop(i))
		}
	}
}

// TestSmoke runs every workload with tiny sizes against the real server
// binary and checks that the numbers are sane.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real server; skipped with -short")
	}
	dir := t.TempDir()
	bin := benchBinary(t, dir)
	cfg := config{
		Idle:     20,
		Sessions: 20, SessionConc: 4,
		LatUsers: 10, LatRate: 40, LatDur: time.Second,
		SusSockets: 20, SusPerSocket: 5, SusWindow: 4, SusDur: time.Second,
		DashConvs: 6, DashLong: 2, DashLongMsgs: 50, DashReaders: 2, DashRate: 50, DashPerSocket: 5, DashDur: time.Second,
		HookUsers: 5, HookRate: 20, HookDur: time.Second,
		FrameSize: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := run(ctx, bin, dir, cfg, "full", t.Logf)
	if err != nil {
		t.Fatal(err)
	}

	if x := res.Idle; x.N != 20 || x.RSSBefore <= 0 || x.RSSAfter <= 0 {
		t.Errorf("idle: %+v", x)
	}
	if x := res.Sessions; x.Lat.Count() != 20 || x.Rate <= 0 || x.Lat.Quantile(.5) <= 0 || x.Lat.Quantile(.99) > x.Lat.Max() {
		t.Errorf("sessions: %d recorded, %.0f/s, p50 %v", x.Lat.Count(), x.Rate, x.Lat.Quantile(.5))
	}
	if x := res.Latency; x.Sent < 30 || x.Acked != x.Sent || x.Delivered != x.Sent || x.Errs != 0 ||
		x.Ack.Quantile(.5) <= 0 || x.Deliver.Quantile(.99) <= 0 {
		t.Errorf("latency: sent %d acked %d delivered %d errors %d, ack p50 %v, delivered p99 %v",
			x.Sent, x.Acked, x.Delivered, x.Errs, x.Ack.Quantile(.5), x.Deliver.Quantile(.99))
	}
	if x := res.Latency; x.AgentDelivered != x.Sent || x.Agent.Count() != uint64(x.Sent) || x.Agent.Quantile(.5) <= 0 || x.AgentCut != "" {
		t.Errorf("latency: %d sent, %d on the agent's inbox socket (%d recorded, p50 %v), cut: %q",
			x.Sent, x.AgentDelivered, x.Agent.Count(), x.Agent.Quantile(.5), x.AgentCut)
	}
	if x := res.Webhooks; x == nil || x.Sent < 15 || x.Acked != x.Sent || x.Delivered != x.Acked || x.Dups != 0 || x.BadSigs != 0 || x.Hook.Count() != uint64(x.Sent) {
		t.Errorf("webhooks: %+v", x)
	}
	if x := res.Sustained; x.Sent < 60 || x.Acked != x.Sent || x.Errs != 0 || x.Missing != 0 ||
		x.Rows != int(x.Acked)+x.Sockets || x.Ack.Quantile(.99) <= 0 || x.BusyLogLines != 0 {
		t.Errorf("sustained: sent %d acked %d errors %d stored %d missing %d busy %d",
			x.Sent, x.Acked, x.Errs, x.Rows, x.Missing, x.BusyLogLines)
	}
	if x := res.Dashboard; x == nil || x.List.Count() == 0 || x.Conv.Count() == 0 || x.ReadErrs != 0 ||
		x.List.Quantile(.5) <= 0 || x.Conv.Quantile(.99) <= 0 || x.WriteAcked <= 0 || x.Rate <= 0 || x.WriteErrs != 0 ||
		x.ConvMsgs < 50 || x.ListRows < x.Convs || x.Writers != 10 {
		t.Errorf("dashboard: %+v", x)
	}
	if x := res.Frame; x == nil || len(x.Files) < 3 || x.Gz <= 0 || x.Gz >= x.Raw || x.Loader.Gz <= 0 {
		t.Errorf("frame: %+v", x)
	} else {
		var page, script, style bool
		for _, f := range x.Files {
			page = page || strings.HasPrefix(f.Path, "/w/")
			script = script || strings.Contains(f.Path, ".js")
			style = style || strings.Contains(f.Path, ".css")
			if f.Raw <= 0 || f.Gz <= 0 {
				t.Errorf("frame: empty %+v", f)
			}
		}
		if !page || !script || !style {
			t.Errorf("frame: page %v, a script %v, a stylesheet %v in %+v", page, script, style, x.Files)
		}
	}
	if res.LoaderGz <= 0 || res.LoaderGz >= res.LoaderRaw || res.ServerCPU <= 0 || res.ServerHWM <= 0 {
		t.Errorf("loader %d/%d bytes, server CPU %v, peak RSS %d", res.LoaderGz, res.LoaderRaw, res.ServerCPU, res.ServerHWM)
	}
	// The same writes with the other durability setting lose nothing either.
	dir2 := filepath.Join(dir, "normal")
	os.Mkdir(dir2, 0o700)
	res.Compare, err = run(ctx, bin, dir2, config{Sessions: 10, SessionConc: 2, SusSockets: 10, SusPerSocket: 5, SusWindow: 4, SusDur: time.Second}, "normal", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if x := res.Compare.Sustained; x.Sent < 30 || x.Acked != x.Sent || x.Missing != 0 {
		t.Errorf("sustained with synchronous=normal: sent %d acked %d missing %d", x.Sent, x.Acked, x.Missing)
	}
	res.Synchronous, res.Compare.Synchronous = "full", "normal"
	res.Profile = "smoke"
	md := res.markdown()
	for _, want := range []string{"| idle authenticated widget sockets | 20 open", "p99", "0 acked but missing", "| reconnect storm", "| 100 sockets that stop reading",
		"on the dashboard agent's inbox socket", "| dashboard conversation list + last 50 messages", "| everything the frame needs on first open, gzipped |",
		"CPU profile of workload 5", "## Durability: `--synchronous full` against `normal`", "| sustained writes for 1s |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// benchBinary is the server binary the tests run: PARLEY_BENCH_BIN, to
// check the bench against another version of the server, or else one built
// from this tree into dir.
func benchBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("PARLEY_BENCH_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "parley")
	build := exec.Command("go", "build", "-o", bin, "github.com/parley-chat/parley/cmd/parley")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
