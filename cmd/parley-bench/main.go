// Command parley-bench is Parley's load generator (issue 5). It starts the
// real server, `parley serve` from an already built binary, as a child
// process on a temporary database on 127.0.0.1, creates an app with
// `parley apps create --json`, and speaks the widget protocol over loopback:
// sessions with valid user_hash values through POST /api/widget/sessions,
// then the widget websocket; an owner (`parley owners create`) signs in to
// the dashboard once for the inbox pages and the agent's inbox socket. It
// reports latency percentiles from a log-linear histogram, throughput, the
// server process's RSS and CPU from /proc, and the bytes the chat frame
// needs, and writes them to a markdown file (BENCHMARKS.md).
//
//	go build -o bin/parley ./cmd/parley && go run ./cmd/parley-bench
//	go run ./cmd/parley-bench -profile full -out BENCHMARKS.md
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// config sizes every workload; a size of 0 skips the workload.
type config struct {
	Idle int // (1) idle authenticated widget sockets

	Sessions, SessionConc int // (2) sessions created, how many at once

	LatUsers int           // (3) users, each with two sockets
	LatRate  float64       // (3) messages a second, all users together
	LatDur   time.Duration // (3)

	SusSockets   int           // (4) sockets sending
	SusPerSocket float64       // (4) messages a second per socket (the server allows 10 frames/s)
	SusWindow    int           // (4) unacked messages per socket at most
	SusDur       time.Duration // (4)

	DashConvs     int           // (5) conversations made before the reads
	DashLong      int           // (5) of them with DashLongMsgs messages, the ones the readers open
	DashLongMsgs  int           // (5)
	DashReaders   int           // (5) concurrent dashboard readers
	DashRate      float64       // (5) target background writes a second, all sockets together
	DashPerSocket float64       // (5) messages a second per writing socket (≤ 9: the frame limit)
	DashDur       time.Duration // (5) how long the readers read

	StormSockets int           // (6) sockets dropped at once and reconnecting
	StormSpread  time.Duration // (6) the reconnects are spread evenly over this
	SlowHealthy  int           // (7) healthy users, two sockets each
	SlowSockets  int           // (7) sockets that stop reading (10 per feeder user)
	SlowRate     float64       // (7) healthy messages a second, all users together
	SlowFeed     float64       // (7) messages a second into each slow socket (≤ 9: the frame limit)
	SlowDur      time.Duration // (7) each of the two phases

	HookUsers int           // (8) users sending with a webhook endpoint on
	HookRate  float64       // (8) messages a second, all users together
	HookDur   time.Duration // (8)

	FrameSize bool // the frame's first-open bytes (cheap: a few GETs)
}

var profiles = map[string]config{
	// short: the whole run in well under 3 minutes on 2 cores.
	"short": {
		Idle:     2000,
		Sessions: 2000, SessionConc: 32,
		LatUsers: 1000, LatRate: 500, LatDur: 15 * time.Second,
		SusSockets: 1200, SusPerSocket: 9, SusWindow: 8, SusDur: 20 * time.Second,
		DashConvs: 300, DashLong: 20, DashLongMsgs: 60, DashReaders: 4, DashRate: 5000, DashPerSocket: 9, DashDur: 10 * time.Second,
		StormSockets: 1000, StormSpread: 10 * time.Second,
		SlowHealthy: 1000, SlowSockets: 100, SlowRate: 200, SlowFeed: 8, SlowDur: 20 * time.Second,
		HookUsers: 200, HookRate: 500, HookDur: 10 * time.Second,
		FrameSize: true,
	},
	// sessions: workload 2 alone, to compare builds quickly.
	"sessions": {Sessions: 2000, SessionConc: 32},
	// webhooks: workload 8 alone, to measure webhook delivery quickly.
	"webhooks": {HookUsers: 200, HookRate: 500, HookDur: 10 * time.Second},
	// full: the sizes of the targets.
	"full": {
		Idle:     10000,
		Sessions: 10000, SessionConc: 64,
		LatUsers: 4000, LatRate: 2000, LatDur: 60 * time.Second,
		SusSockets: 1200, SusPerSocket: 9, SusWindow: 8, SusDur: 60 * time.Second,
		DashConvs: 2000, DashLong: 100, DashLongMsgs: 60, DashReaders: 4, DashRate: 5000, DashPerSocket: 9, DashDur: 60 * time.Second,
		StormSockets: 5000, StormSpread: 10 * time.Second,
		SlowHealthy: 5000, SlowSockets: 100, SlowRate: 500, SlowFeed: 8, SlowDur: 30 * time.Second,
		HookUsers: 1000, HookRate: 1000, HookDur: 30 * time.Second,
		FrameSize: true,
	},
}

func main() {
	if err := cli(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley-bench:", err)
		os.Exit(1)
	}
}

func cli(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "short", "workload sizes: short (under 3 minutes on 2 cores) or full (the issue's targets), the flags below override single sizes; or cluster: one node on SQLite beside three on PostgreSQL with NATS and with LISTEN/NOTIFY")
	bin := fs.String("bin", "bin/parley", "the parley binary to run (make build writes it)")
	out := fs.String("out", "", "write the report as markdown to this file (e.g. BENCHMARKS.md); stdout always gets it")
	syncMode := fs.String("synchronous", "full", "the server's durability setting, serve --synchronous: full or normal")
	compare := fs.Bool("compare-synchronous", true, "afterwards run workloads 2–4 again on a second server with the other --synchronous setting, and report both")
	keep := fs.Bool("keep", false, "keep the temporary directory with the database and the server's log")
	idle := fs.Int("idle", -1, "(1) idle authenticated widget sockets")
	sessions := fs.Int("sessions", -1, "(2) sessions to create (POST + websocket auth)")
	sessionConc := fs.Int("session-conc", -1, "(2) sessions created at once")
	latUsers := fs.Int("lat-users", -1, "(3) users sending, each with a second socket that receives")
	latRate := fs.Float64("lat-rate", -1, "(3) target messages a second, all users together")
	latDur := fs.Duration("lat-dur", -1, "(3) duration")
	susSockets := fs.Int("sus-sockets", -1, "(4) sockets sending as fast as the per-socket frame limit allows")
	susDur := fs.Duration("sus-dur", -1, "(4) duration")
	dashConvs := fs.Int("dash-convs", -1, "(5) conversations made before the dashboard reads (0 skips the workload)")
	dashReaders := fs.Int("dash-readers", -1, "(5) concurrent dashboard readers")
	dashRate := fs.Float64("dash-rate", -1, "(5) target background writes a second during the reads")
	dashDur := fs.Duration("dash-dur", -1, "(5) how long the readers read")
	stormSockets := fs.Int("storm-sockets", -1, "(6) sockets dropped and reconnecting (0 skips the workload)")
	stormSpread := fs.Duration("storm-spread", -1, "(6) the reconnects are spread over this")
	slowHealthy := fs.Int("slow-healthy", -1, "(7) healthy users beside the slow sockets (0 skips the workload)")
	slowSockets := fs.Int("slow-sockets", -1, "(7) sockets that stop reading")
	slowRate := fs.Float64("slow-rate", -1, "(7) healthy messages a second, all users together")
	slowDur := fs.Duration("slow-dur", -1, "(7) each phase's duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile == "cluster" {
		return runCluster(*bin, *out, *keep, stdout, stderr)
	}
	cfg, ok := profiles[*profile]
	if !ok {
		return fmt.Errorf("unknown -profile %q (short, full or cluster)", *profile)
	}
	setInt := func(dst *int, v int) {
		if v >= 0 {
			*dst = v
		}
	}
	setInt(&cfg.Idle, *idle)
	setInt(&cfg.Sessions, *sessions)
	setInt(&cfg.SessionConc, *sessionConc)
	setInt(&cfg.LatUsers, *latUsers)
	setInt(&cfg.SusSockets, *susSockets)
	if *latRate >= 0 {
		cfg.LatRate = *latRate
	}
	if *latDur >= 0 {
		cfg.LatDur = *latDur
	}
	if *susDur >= 0 {
		cfg.SusDur = *susDur
	}
	setInt(&cfg.DashConvs, *dashConvs)
	setInt(&cfg.DashReaders, *dashReaders)
	setInt(&cfg.StormSockets, *stormSockets)
	setInt(&cfg.SlowHealthy, *slowHealthy)
	setInt(&cfg.SlowSockets, *slowSockets)
	if *stormSpread >= 0 {
		cfg.StormSpread = *stormSpread
	}
	if *slowRate >= 0 {
		cfg.SlowRate = *slowRate
	}
	if *slowDur >= 0 {
		cfg.SlowDur = *slowDur
	}
	if *dashRate >= 0 {
		cfg.DashRate = *dashRate
	}
	if *dashDur >= 0 {
		cfg.DashDur = *dashDur
	}
	if _, err := os.Stat(*bin); err != nil {
		return fmt.Errorf("%v: build it first (make build)", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return err
	}
	if *keep {
		logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if *syncMode != "full" && *syncMode != "normal" {
		return fmt.Errorf("-synchronous must be full or normal, not %q", *syncMode)
	}
	res, err := run(ctx, *bin, dir, cfg, *syncMode, logf)
	if err != nil {
		return err
	}
	res.Profile, res.Args, res.Bin, res.Synchronous = *profile, args, *bin, *syncMode
	if *compare && (cfg.Sessions > 0 || cfg.LatUsers > 0 || cfg.SusSockets > 0) {
		other := map[string]string{"full": "normal", "normal": "full"}[*syncMode]
		logf("again with --synchronous %s: workloads 2, 3 and 4", other)
		dir2 := filepath.Join(dir, "compare")
		if err := os.Mkdir(dir2, 0o700); err != nil {
			return err
		}
		sub := config{Sessions: cfg.Sessions, SessionConc: cfg.SessionConc, LatUsers: cfg.LatUsers, LatRate: cfg.LatRate, LatDur: cfg.LatDur,
			SusSockets: cfg.SusSockets, SusPerSocket: cfg.SusPerSocket, SusWindow: cfg.SusWindow, SusDur: cfg.SusDur}
		if res.Compare, err = run(ctx, *bin, dir2, sub, other, logf); err != nil {
			return fmt.Errorf("the run with --synchronous %s: %w", other, err)
		}
		res.Compare.Synchronous = other
	}
	report := res.markdown()
	fmt.Fprint(stdout, report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			return err
		}
		logf("wrote %s", *out)
	}
	return nil
}

// runCluster runs the cluster profile and writes its report.
func runCluster(bin, out string, keep bool, stdout, stderr io.Writer) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%v: build it first (make build)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	dir, err := os.MkdirTemp("", "parley-bench-cluster-")
	if err != nil {
		return err
	}
	if keep {
		logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	start := time.Now()
	rs, err := runClusterProfile(ctx, bin, dir, clusterProfile, logf)
	if err != nil {
		return err
	}
	report := clusterMarkdown(rs, clusterProfile, time.Since(start))
	fmt.Fprint(stdout, report)
	if out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			return err
		}
		logf("wrote %s", out)
	}
	return nil
}

// results is everything one run measured.
type results struct {
	Synchronous string // serve --synchronous
	Profile     string
	Args        []string // the command line, for the report
	Bin         string
	Cfg         config
	Started     time.Time
	Took        time.Duration
	Idle        *idleResult
	Sessions    *sessionResult
	Latency     *latencyResult
	Sustained   *sustainedResult
	Dashboard   *dashResult
	Storm       *stormResult
	Slow        *slowResult
	Webhooks    *webhookResult
	// Compare is workloads 2–4 again with the other --synchronous setting.
	Compare             *results
	Frame               *frameResult
	ServerHWM           int64         // peak server RSS over the run
	ServerCPU           time.Duration // server CPU over the whole run
	BenchCPU            time.Duration // the generator's own CPU
	LoaderRaw, LoaderGz int
	BusyLines           int // server log lines mentioning SQLITE_BUSY / locked
	// ProfileTop is the top of the server's CPU profile during workload 4.
	ProfileTop, ProfileErr string
	// SessionProfileTop is the top of the CPU profile of workload 2's first second.
	SessionProfileTop, SessionProfileErr string
}

func run(ctx context.Context, bin, dir string, cfg config, syncMode string, logf func(string, ...any)) (*results, error) {
	res := &results{Cfg: cfg, Started: time.Now()}
	self0, _ := readProc(os.Getpid())
	srv, err := startServer(ctx, bin, dir, "--synchronous", syncMode)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.kill()
		}
	}()
	logf("parley serve pid %d at %s, app %s, profiler %s", srv.pid(), srv.url, srv.appID, srv.pprofURL)
	c := newClient(srv)

	if res.LoaderRaw, res.LoaderGz, err = loaderSize(c); err != nil {
		return nil, err
	}
	if cfg.FrameSize {
		if res.Frame, err = frameSize(ctx, c); err != nil {
			return nil, fmt.Errorf("frame size: %w", err)
		}
	}
	if cfg.Idle > 0 {
		logf("(1) opening %d idle widget sockets", cfg.Idle)
		if res.Idle, err = runIdle(ctx, c, cfg.Idle, logf); err != nil {
			return nil, err
		}
	}
	if cfg.Sessions > 0 {
		logf("(2) creating %d sessions, %d at once", cfg.Sessions, cfg.SessionConc)
		profiled := make(chan error, 1)
		profPath := filepath.Join(dir, "cpu-sessions.pprof")
		go func() { // the first seconds (the workload lasts a few at 2,000 sessions)
			time.Sleep(300 * time.Millisecond)
			profiled <- cpuProfile(ctx, srv.pprofURL, profPath, time.Second)
		}()
		if res.Sessions, err = runSessions(ctx, c, cfg.Sessions, cfg.SessionConc); err != nil {
			return nil, err
		}
		if err := <-profiled; err != nil {
			res.SessionProfileErr = err.Error()
		} else if res.SessionProfileTop, err = profileTop(bin, profPath, 25); err != nil {
			res.SessionProfileErr = err.Error()
		}
	}
	if cfg.LatUsers > 0 {
		logf("(3) %d users × 2 sockets, %.0f msg/s for %v", cfg.LatUsers, cfg.LatRate, cfg.LatDur)
		if res.Latency, err = runLatency(ctx, c, cfg.LatUsers, cfg.LatRate, cfg.LatDur); err != nil {
			return nil, err
		}
	}
	if cfg.SusSockets > 0 {
		logf("(4) %d sockets × %.0f msg/s for %v", cfg.SusSockets, cfg.SusPerSocket, cfg.SusDur)
		profiled := make(chan error, 1)
		profPath := filepath.Join(dir, "cpu-sustained.pprof")
		go func() { // the heaviest workload: profile its middle
			warm := min(5*time.Second, cfg.SusDur/4)
			time.Sleep(warm + 3*time.Second) // + the sockets' opening, roughly
			profiled <- cpuProfile(ctx, srv.pprofURL, profPath, cfg.SusDur-2*warm)
		}()
		if res.Sustained, err = runSustained(ctx, c, cfg.SusSockets, cfg.SusPerSocket, cfg.SusWindow, cfg.SusDur); err != nil {
			return nil, err
		}
		if err := <-profiled; err != nil {
			res.ProfileErr = err.Error()
		} else if res.ProfileTop, err = profileTop(bin, profPath, 25); err != nil {
			res.ProfileErr = err.Error()
		}
	}
	if cfg.DashConvs > 0 && cfg.DashReaders > 0 && cfg.DashDur > 0 {
		writers := int(math.Ceil(cfg.DashRate / cfg.DashPerSocket))
		logf("(5) %d dashboard readers for %v while %d sockets × %.0f msg/s write", cfg.DashReaders, cfg.DashDur, writers, cfg.DashPerSocket)
		profile := func(d time.Duration) (string, error) {
			path := filepath.Join(dir, "cpu-dashboard.pprof")
			if err := cpuProfile(ctx, srv.pprofURL, path, d); err != nil {
				return "", err
			}
			return profileTop(bin, path, 20)
		}
		if res.Dashboard, err = runDashboard(ctx, c, cfg.DashConvs, cfg.DashLong, cfg.DashLongMsgs, cfg.DashReaders, writers, cfg.DashPerSocket, cfg.DashDur, profile, logf); err != nil {
			return nil, err
		}
	}
	if cfg.StormSockets > 0 {
		logf("(6) reconnect storm: %d sockets dropped, reconnecting over %v", cfg.StormSockets, cfg.StormSpread)
		if res.Storm, err = runStorm(ctx, c, cfg.StormSockets, cfg.StormSpread, logf); err != nil {
			return nil, fmt.Errorf("reconnect storm: %w", err)
		}
	}
	if cfg.SlowHealthy > 0 && cfg.SlowSockets > 0 {
		logf("(7) %d slow sockets among %d healthy users at %.0f msg/s, two phases of %v", cfg.SlowSockets, cfg.SlowHealthy, cfg.SlowRate, cfg.SlowDur)
		if res.Slow, err = runSlow(ctx, c, cfg.SlowHealthy, cfg.SlowSockets, cfg.SlowRate, cfg.SlowFeed, cfg.SlowDur, logf); err != nil {
			return nil, fmt.Errorf("slow consumers: %w", err)
		}
	}
	if cfg.HookUsers > 0 {
		logf("(8) %d users at %.0f msg/s for %v with a webhook endpoint", cfg.HookUsers, cfg.HookRate, cfg.HookDur)
		if res.Webhooks, err = runWebhooks(ctx, c, cfg.HookUsers, cfg.HookRate, cfg.HookDur, logf); err != nil {
			return nil, fmt.Errorf("webhooks: %w", err)
		}
	}
	if p, err := readProc(srv.pid()); err == nil {
		res.ServerHWM, res.ServerCPU = p.HWM, p.CPU
	}
	logf("stopping the server (SIGTERM)")
	stopped = true
	if err := srv.stop(); err != nil {
		return nil, err
	}
	res.BusyLines = srv.logCount("SQLITE_BUSY", "database is locked")
	if res.Latency != nil {
		res.Latency.SlowAgentLogs = srv.logCountAll("dropping slow client", "owner=")
	}
	if res.Sustained != nil {
		if err := countRows(srv.db, res.Sustained); err != nil {
			return nil, fmt.Errorf("counting stored messages: %w", err)
		}
		res.Sustained.BusyLogLines = res.BusyLines
	}
	self1, _ := readProc(os.Getpid())
	res.BenchCPU = self1.CPU - self0.CPU
	res.Took = time.Since(res.Started)
	return res, nil
}
