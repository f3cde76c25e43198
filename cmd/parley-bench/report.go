package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func kb(b float64) string { return fmt.Sprintf("%.1f KB", b/1024) }

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func pcts(h *Hist) string {
	return fmt.Sprintf("p50 %s · p90 %s · p99 %s · max %s (n=%d)",
		ms(h.Quantile(.5)), ms(h.Quantile(.9)), ms(h.Quantile(.99)), ms(h.Max()), h.Count())
}

// machine describes where the run happened.
func machine() []string {
	var model, mem string
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				var k int64
				fmt.Sscan(f[1], &k)
				mem = fmt.Sprintf("%.1f GiB", float64(k)/(1<<20))
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	commit := "unknown"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
		// The report itself (an earlier BENCHMARKS.md) doesn't make the
		// server's code dirty.
		if st, err := exec.Command("git", "status", "--porcelain", "--", ".", ":!BENCHMARKS.md", ":!BENCHMARKS-cluster.md").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
			commit += " (dirty: uncommitted changes in the tree)"
		}
	}
	return []string{
		fmt.Sprintf("- CPU: %d × %s (runtime.NumCPU)", runtime.NumCPU(), model),
		"- memory: " + mem + " (MemTotal)",
		"- kernel: Linux " + strings.TrimSpace(string(kernel)),
		"- Go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		"- commit: " + commit,
	}
}

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("# Benchmarks")
	p("")
	p("Written by `parley-bench %s` (profile %s; `make bench` runs the short profile) on %s; the run took %v.",
		strings.Join(r.Args, " "), r.Profile, r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Took.Round(time.Second))
	p("")
	for _, l := range machine() {
		p("%s", l)
	}
	p("")
	p("The server is the real binary (`%s serve`) as a child process on a fresh temporary database on 127.0.0.1, with its abuse limits (`--limit-…`) raised far above the load and `--synchronous %s`; the load generator runs on the same cores and speaks the widget protocol over loopback (sessions with valid `user_hash` values, then the widget websocket). RSS and CPU are the server process's alone, read from `/proc/<pid>/status` and `/proc/<pid>/stat`. Latencies come from a log-linear histogram (32 buckets per power of two, so a percentile is at most ~3%% above the true value). KB = 1,024 bytes.", r.Bin, r.Synchronous)
	if r.Synchronous == "normal" {
		p("")
		p("**Durability in this run: `synchronous=NORMAL`.** Commits are not fsynced (only checkpoints are): an acked message survives a crash of the server process but not necessarily a power cut or kernel crash. `make bench` runs the default, `full`.")
	} else {
		p("")
		p("**Durability in this run: `synchronous=FULL`** (the default): every commit is fsynced before its messages are acked, so an ack means the message survives a power cut. `-synchronous normal` measures the other setting.")
	}
	p("")
	p("## Figures against the targets of issue 5")
	p("")
	p("| workload | measured | target | |")
	p("|---|---|---|---|")
	if x := r.Idle; x != nil {
		size := x.N >= 10000
		p("| idle authenticated widget sockets | %d open, %s server RSS per socket (RSS %s → %s) | 10,000 open at ≤ 15 KB per socket (stretch 20,000 at ≤ 10 KB) | %s |",
			x.N, kb(x.PerSocket), mb(x.RSSBefore), mb(x.RSSAfter), sized(size, x.PerSocket <= 15*1024, fmt.Sprintf("%d sockets", x.N)))
	}
	if x := r.Sessions; x != nil {
		p("| session creation (POST + websocket auth) | %.0f/s with %d at once; p99 %s | ≥ 2,000/s, p99 < 50 ms | %s |",
			x.Rate, x.Conc, ms(x.Lat.Quantile(.99)), verdict(x.Rate >= 2000 && x.Lat.Quantile(.99) < 50*time.Millisecond))
	}
	if x := r.Latency; x != nil {
		full := x.Users >= 4000 && x.Target >= 2000
		p("| user message → committed (ack) and → on the dashboard agent's inbox socket, %d sessions at %.0f msg/s (target rate %.0f) | ack p50 %s, p99 %s; on the agent's socket p50 %s, p99 %s (%d of %d acked messages arrived%s) | 4,000 sessions at 2,000 msg/s: p50 ≤ 2 ms, p99 ≤ 20 ms | %s |",
			x.Users, x.Rate, x.Target, ms(x.Ack.Quantile(.5)), ms(x.Ack.Quantile(.99)), ms(x.Agent.Quantile(.5)), ms(x.Agent.Quantile(.99)),
			x.AgentDelivered, x.Acked, map[bool]string{true: "; the socket was cut: " + x.AgentCut, false: ""}[x.AgentCut != ""],
			sized(full, x.ok(), fmt.Sprintf("%d sessions at %.0f msg/s", x.Users, x.Target)))
	}
	if x := r.Sustained; x != nil {
		full := x.Dur >= 60*time.Second
		ok := x.Rate >= 10000 && x.BusyLogLines == 0 && x.Unavailable == 0 && x.Missing == 0
		p("| sustained persisted messages for %v | %.0f msg/s acked; %d acked, %d stored (incl. each socket's first message), %d acked but missing; %d `unavailable` errors, %d SQLITE_BUSY/locked log lines | 60 s at ≥ 10,000 msg/s, zero SQLITE_BUSY, zero lost | %s |",
			x.Dur, x.Rate, x.Acked, x.Rows, x.Missing, x.Unavailable, x.BusyLogLines, sized(full, ok, x.Dur.String()))
	}
	if x := r.Dashboard; x != nil {
		p("%s", x.row())
	}
	if x := r.Storm; x != nil {
		p("%s", x.row())
	} else {
		p("| reconnect storm: 5,000 sockets dropped and reconnecting within 10 s | not run | all resume, no gaps, no duplicates | not run |")
	}
	if x := r.Slow; x != nil {
		p("%s", x.row())
	} else {
		p("| 100 sockets that stop reading among 5,000 healthy | not run | memory bounded, slow ones cut, healthy p99 unchanged | not run |")
	}
	if x := r.Webhooks; x != nil {
		p("%s", x.row())
	}
	p("| loader script (`/widget.js`), gzipped | %.2f KB (%d bytes gzip -9; %d bytes raw) | ≤ 2 KB | %s |", float64(r.LoaderGz)/1024, r.LoaderGz, r.LoaderRaw, verdict(r.LoaderGz <= 2048))
	if x := r.Frame; x != nil {
		p("%s", x.row())
	}
	p("")
	p("## Details")
	p("")
	if x := r.Idle; x != nil {
		p("**(1) Idle sockets.** %d users, one verified session and one authenticated widget socket each (a read loop answers pings, nothing is sent), opened %d at a time in %v. Server RSS before %s, after %s (both measured after 2 s of quiet), so %s per socket: the server's whole growth divided by the sockets, whatever holds it (connections, goroutines, the hub's state, SQLite's cache of the new session rows).",
			x.N, setupConc, x.Open.Round(time.Millisecond), mb(x.RSSBefore), mb(x.RSSAfter), kb(x.PerSocket))
		p("")
		if x.N < 20000 {
			var lim syscall.Rlimit
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
			p("The stretch target (20,000 sockets at ≤ 10 KB) was not run: this run opened %d, and this machine's open-file limit is %d per process (each socket is a descriptor in the server and one in the load generator, and the server needs a few more). At %d sockets the cost was %s per socket, %s the stretch's 10 KB.",
				x.N, lim.Max, x.N, kb(x.PerSocket), map[bool]string{true: "within", false: "over"}[x.PerSocket <= 10*1024])
			p("")
		}
	}
	if x := r.Sessions; x != nil {
		p("**(2) Session creation.** %d sessions for distinct users, %d at a time; each is `POST /api/widget/sessions` (with `user_hash`) + websocket upgrade + `auth` frame until `welcome`, then the socket is closed. %.0f/s over %v; latency %s. Server CPU %.0f%% of one core.",
			x.N, x.Conc, x.Rate, x.Elapsed.Round(time.Millisecond), pcts(x.Lat), x.CPU)
		p("")
	}
	if x := r.Latency; x != nil {
		p("**(3) Message latency.** %d users, each with two widget sockets on one session; after a first message that starts each conversation (not counted), every user sends on its first socket every %v (open loop, phases spread evenly) for %v: %d sent (%.0f/s), %d acked, %d delivered, %d error frames.",
			x.Users, time.Duration(float64(x.Users)/x.Target*float64(time.Second)).Round(time.Millisecond), x.Dur, x.Sent, x.Rate, x.Acked, x.Delivered, x.Errs)
		p("")
		p("- send → `ack` (committed): %s", pcts(x.Ack))
		p("- send → `message` on the dashboard agent's inbox socket: %s; %d of %d acked messages arrived%s", pcts(x.Agent), x.AgentDelivered, x.Acked,
			map[bool]string{true: "; the socket was cut: " + x.AgentCut, false: ""}[x.AgentCut != ""])
		if x.SlowAgentLogs > 0 {
			p("- the server's log says `dropping slow client` for an owner's socket %d time(s) in the run", x.SlowAgentLogs)
		}
		p("- send → `message` on the same user's second widget socket: %s", pcts(x.Deliver))
		p("- server CPU %.0f%% of one core, RSS %s at the end", x.CPU, mb(x.RSS))
		p("")
		p("The agent is the bench app's owner (`parley owners create`), signed in once through `POST /login` as a browser form would (same-origin headers), with the inbox socket (`GET /dashboard/apps/:app_id/ws`, the owner's cookie, Parley's own Origin) open for the whole workload: one socket that gets every message of the app, %.0f a second here. Its frames are read by one goroutine that only queues them, so the bench is never the slow consumer the server cuts (an inbox socket 1,024 frames or 1 MiB behind). The user's second widget socket gets the same message from the same fan-out after the commit.", x.Rate)
		p("")
	}
	if x := r.Sustained; x != nil {
		p("**(4) Sustained writes.** %d users with one socket each, each sending %.0f messages a second (the server allows 10 frames a second per connection, a limit no flag raises) with at most %d unacked, for %v: %d sent, %d acked (%.0f/s over the run), %d error frames (%d `unavailable`). After SIGTERM the database was opened read-only: %d of the run's messages stored (with each socket's first message, which started its conversation), %d acked messages missing. The server log has %d lines mentioning SQLITE_BUSY or \"database is locked\".",
			x.Sockets, x.PerSocket, x.Window, x.Dur, x.Sent, x.Acked, x.Rate, x.Errs, x.Unavailable, x.Rows, x.Missing, x.BusyLogLines)
		p("")
		p("- send → `ack`: %s", pcts(x.Ack))
		p("- server CPU %.0f%% of one core, RSS %s at the end; load generator CPU %.0f%% of one core", x.CPU, mb(x.RSS), x.BenchCPU)
		p("- offered load: %d × %.0f = %.0f msg/s at most", x.Sockets, x.PerSocket, float64(x.Sockets)*x.PerSocket)
		p("")
	}
	if x := r.Dashboard; x != nil {
		x.details(p)
	}
	if x := r.Storm; x != nil {
		x.details(p)
	}
	if x := r.Slow; x != nil {
		x.details(p)
	}
	if x := r.Webhooks; x != nil {
		x.details(p)
	}
	if x := r.Frame; x != nil {
		x.details(p)
	}
	p("**Whole run.** Server: %v CPU, peak RSS %s. Load generator: %v CPU (same cores).", r.ServerCPU.Round(10*time.Millisecond), mb(r.ServerHWM), r.BenchCPU.Round(10*time.Millisecond))
	p("")
	if r.Sessions != nil {
		profileSection(&b, "2", "The server's CPU profile over the first second of session creation (POST + websocket auth), by flat and by cumulative time:", r.SessionProfileTop, r.SessionProfileErr)
	}
	if r.Sustained != nil {
		profileSection(&b, "4", "The server's own CPU profile (`serve --pprof`, `/debug/pprof/profile`) over the middle of the sustained-writes workload, the heaviest one, by flat and by cumulative time (`go tool pprof -top`):",
			r.ProfileTop, r.ProfileErr)
	}
	if x := r.Dashboard; x != nil {
		profileSection(&b, "5", "The server's CPU profile over the dashboard reads under writes, by flat and by cumulative time:", x.ProfileTop, x.ProfileErr)
	}
	if r.Compare != nil {
		durability(p, r, r.Compare)
	}
	p("## Why the misses")
	p("")
	p("Notes from this run's own figures and profiles. The code facts describe the server as of the commit above: one write connection with `synchronous=FULL` by default; messages, agent replies, sessions, read marks and last-seen updates group-committed by one writer goroutine (up to 256 writes per transaction, one fsync each, `internal/store/writer.go`); WAL checkpoints in the background (`checkpoint.go`); a pool of read-only connections; one goroutine per idle socket (`internal/chat/peer.go`). The load generator shares the server's %d cores.", runtime.NumCPU())
	p("")
	if x := r.Sustained; x != nil && x.Rate < 10000 {
		p("- **Sustained writes** plateaued at %.0f msg/s with the server at %.0f%% of one core and the load generator at %.0f%%, on %d cores: the write path is CPU-bound, and it is one goroutine (SQLite has one writer). The profile of workload 4 above shows where the writer's time goes: SQLite executing each message's statements (a duplicate check, the conversation's update, the insert into `messages` and its three indexes, and the conversation read back for the ack) and writing the WAL frames of each group; the fsync is shared by the whole group. `modernc.org/sqlite` is SQLite translated to Go, which runs slower than the C library. What would close the gap: fewer statements and indexes per message (for one, the random text message id is a unique index of its own, which an integer key would drop), cgo SQLite, or more cores. The acks' latency here is queueing: up to %d × %d messages are unacked at once.",
			x.Rate, x.CPU, x.BenchCPU, runtime.NumCPU(), x.Sockets, x.Window)
	}
	if x := r.Latency; x != nil {
		p("- **Message latency** at %.0f msg/s: ack p50 %s, p99 %s, with the write path's capacity at %s (workload 4). A message waits for the group being committed, then for its own group's commit, each with an fsync of the WAL under `synchronous=%s`. The server was at %.0f%% of one core and the load generator ran %d sockets on the same 2 cores, so the p99 is mostly goroutines waiting to be scheduled. Delivery to the agent's socket (p50 %s) follows the ack closely because the hub fans out right after the commit.",
			x.Rate, ms(x.Ack.Quantile(.5)), ms(x.Ack.Quantile(.99)), capacity(r), strings.ToUpper(orFull(r.Synchronous)), x.CPU, 2*x.Users, ms(x.Agent.Quantile(.5)))
		if c := r.Compare; c != nil && c.Latency != nil {
			p("  With `synchronous=%s` the same workload gave ack p50 %s, p99 %s (the durability table above).", strings.ToUpper(orFull(c.Synchronous)), ms(c.Latency.Ack.Quantile(.5)), ms(c.Latency.Ack.Quantile(.99)))
		}
	}
	if x := r.Latency; x != nil && x.AgentCut != "" {
		p("- **The agent's inbox socket** was closed by the server after %d of %d messages (%s)%s. Every message of the app goes to every open inbox socket, and the server cuts an inbox socket as slow once 1,024 frames or 1 MiB are queued for it (`internal/chat/peer.go`): at %.0f msg/s, 1,024 frames are %v of backlog, so the socket's writer must have stalled about that long on these %d shared cores (an inference, not profiled).",
			x.AgentDelivered, x.Acked, x.AgentCut, map[bool]string{true: "; the server logged `dropping slow client` for it", false: ""}[x.SlowAgentLogs > 0],
			x.Rate, (1024 * time.Duration(float64(time.Second)/x.Rate)).Round(time.Millisecond), runtime.NumCPU())
	}
	if x := r.Sessions; x != nil && (x.Rate < 2000 || x.Lat.Quantile(.99) >= 50*time.Millisecond) {
		p("- **Session creation** reached %.0f/s with the server at %.0f%% of one core (the rest of the 2 cores is the load generator, which makes the same HTTP requests and websocket handshakes from its side). Each session costs the server an HTTP request with its middleware, an HMAC check, reads of the app, its origins and secrets, a write in the group commit, a websocket upgrade, and on `auth` a session lookup, an unread count, a last-seen write (group-committed too) and a second session lookup that closes the race with a revocation: the profile of workload 2 above has the split. The two writes share their fsyncs with everything else in flight, so the fsync is not the limit; CPU is. The p99 is queueing among the %d concurrent clients.",
			x.Rate, x.CPU, x.Conc)
	}
	if x := r.Idle; x != nil && x.PerSocket > 15*1024 {
		p("- **Idle sockets** cost %s of server RSS each: an idle socket holds one goroutine (the read pump, 4–8 KB of stack), gorilla's connection with a 512-byte read buffer, the session and the hub's entries, and the GC's headroom over them.",
			kb(x.PerSocket))
	}
	if x := r.Dashboard; x != nil {
		if w := x.why(r); w != "" {
			p("%s", w)
		}
	}
	var whys []string
	if x := r.Storm; x != nil {
		whys = append(whys, x.why())
	}
	if x := r.Slow; x != nil {
		whys = append(whys, x.why())
	}
	if x := r.Frame; x != nil {
		whys = append(whys, x.why())
	}
	for _, w := range whys {
		if w != "" {
			p("%s", w)
		}
	}
	if r.LoaderGz > 2048 {
		p("- **The loader** is %d bytes gzipped, over 2 KB: move more of it into `widget-chat.js` (web/loader_test.go fails above 2,048 bytes too).", r.LoaderGz)
	}
	p("")
	return b.String()
}

func capacity(r *results) string {
	if r.Sustained == nil {
		return "not run"
	}
	return fmt.Sprintf("%.0f msg/s", r.Sustained.Rate)
}

// sized is the verdict for a workload that ran smaller than its target's
// size: a miss is a miss, a pass at a smaller size is only that.
func sized(fullSize, ok bool, ran string) string {
	switch {
	case !ok:
		return "**missed**" + map[bool]string{true: "", false: " (at " + ran + ")"}[fullSize]
	case fullSize:
		return "met"
	default:
		return "met at " + ran + " only (short profile; `-profile full` for the target's size)"
	}
}

// profileSection writes a workload's CPU profile (or why there is none).
func profileSection(b *strings.Builder, workload, intro, top, perr string) {
	fmt.Fprintf(b, "## Where the time goes: CPU profile of workload %s\n\n", workload)
	if perr != "" {
		fmt.Fprintf(b, "No profile: %s\n\n", perr)
		return
	}
	fmt.Fprintf(b, "%s\n\n```\n%s\n```\n\n", intro, strings.TrimRight(top, "\n"))
}

// durability compares workloads 2–4 under the two --synchronous settings.
func durability(p func(string, ...any), a, b *results) {
	full, normal := a, b
	if a.Synchronous == "normal" {
		full, normal = b, a
	}
	p("## Durability: `--synchronous full` against `normal`")
	p("")
	p("Workloads 2–4 at the same sizes on two servers, one per setting (the second on a fresh database of its own). `full` (the default) fsyncs the WAL at every commit, so an acked message survives a power cut; `normal` fsyncs only at checkpoints, so an acked message survives a crash of the server process but the last commits before a power cut or kernel crash can be lost (README, \"Durability setting\"). Messages are group-committed either way.")
	p("")
	p("| workload | `full` (default) | `normal` |")
	p("|---|---|---|")
	if full.Sessions != nil && normal.Sessions != nil {
		f := func(x *sessionResult) string {
			return fmt.Sprintf("%.0f/s, p99 %s", x.Rate, ms(x.Lat.Quantile(.99)))
		}
		p("| session creation (POST + websocket auth) | %s | %s |", f(full.Sessions), f(normal.Sessions))
	}
	if full.Latency != nil && normal.Latency != nil {
		f := func(x *latencyResult) string {
			return fmt.Sprintf("ack p50 %s, p99 %s; agent's socket p50 %s, p99 %s", ms(x.Ack.Quantile(.5)), ms(x.Ack.Quantile(.99)), ms(x.Agent.Quantile(.5)), ms(x.Agent.Quantile(.99)))
		}
		p("| message latency, %d users at %.0f msg/s | %s | %s |", full.Latency.Users, full.Latency.Target, f(full.Latency), f(normal.Latency))
	}
	if full.Sustained != nil && normal.Sustained != nil {
		f := func(x *sustainedResult) string {
			return fmt.Sprintf("%.0f msg/s acked, ack p99 %s, %d acked but missing, server CPU %.0f%%", x.Rate, ms(x.Ack.Quantile(.99)), x.Missing, x.CPU)
		}
		p("| sustained writes for %v | %s | %s |", full.Sustained.Dur, f(full.Sustained), f(normal.Sustained))
	}
	p("")
}

func orFull(mode string) string {
	if mode == "" {
		return "full"
	}
	return mode
}
