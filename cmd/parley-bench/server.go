package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// parentOrigin is the host page origin the bench app allows.
const parentOrigin = "http://127.0.0.1:9"

// benchLimits raise every abuse limit of `serve` far above what the bench
// sends: the bench measures the server, not its refusals, and all its
// clients share 127.0.0.1.
var benchLimits = []string{
	"--limit-sessions-per-ip", "100000000,1us",
	"--limit-sessions-per-app", "100000000,1us",
	"--limit-sockets-per-ip", "100000000,1us",
	"--limit-sockets-per-user", "100000,1us",
	"--limit-open-sockets-per-user", "1000",
	"--limit-messages-per-user", "100000,1us",
}

// server is `parley serve` running as a child process on a temp database.
type server struct {
	bin, dir, db, url string
	env               []string
	cmd               *exec.Cmd
	stderr            *os.File
	done              chan error

	appID, secret, apiKey     string
	ownerEmail, ownerPassword string // a member of the app, for the dashboard (created before serve starts)
	pprofURL                  string // the server's private profiler, http://127.0.0.1:N/debug/pprof
	// public is the public URL the server was given, when it is not url:
	// the nodes of a cluster share one.
	public string
}

// origin is the Origin browsers send to the server: its public URL.
func (s *server) origin() string {
	if s.public != "" {
		return s.public
	}
	return s.url
}

// freeAddr is a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startServer starts `parley serve` with the bench's limits; extra are
// more serve flags (--synchronous, say).
func startServer(ctx context.Context, bin, dir string, extra ...string) (*server, error) {
	s := &server{bin: bin, dir: dir, db: filepath.Join(dir, "bench.db")}
	s.env = append(os.Environ(), "PARLEY_MASTER_KEY="+benchKey())
	if err := s.createApp(ctx, "--db", s.db); err != nil {
		return nil, err
	}

	pw := make([]byte, 16)
	rand.Read(pw)
	s.ownerEmail, s.ownerPassword = "bench-owner@example.com", hex.EncodeToString(pw)
	out, err := s.runIn(ctx, strings.NewReader(s.ownerPassword+"\n"), "owners", "create", "--db", s.db,
		"--email", s.ownerEmail, "--password-stdin", "--app", s.appID, "--json")
	if err != nil {
		return nil, err
	}
	var owner struct {
		OwnerID string   `json:"owner_id"`
		Apps    []string `json:"apps"`
	}
	if err := json.Unmarshal(out, &owner); err != nil || owner.OwnerID == "" || len(owner.Apps) != 1 {
		return nil, fmt.Errorf("owners create printed %q: %v", out, err)
	}

	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	paddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.url = "http://" + addr
	s.pprofURL = "http://" + paddr + "/debug/pprof"

	s.stderr, err = os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	// Loopback is allowed for the webhooks workload's receiver.
	args := append([]string{"serve", "--db", s.db, "--addr", addr, "--public-url", s.url, "--pprof", paddr, "--webhook-allow", "127.0.0.0/8"}, benchLimits...)
	args = append(args, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = s.env
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.url + "/widget.js")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("parley serve exited: %v (log in %s)", err, s.stderr.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, errors.New("parley serve did not answer within 20 s")
		}
	}
}

// createApp makes the bench's app with `parley apps create --json` on the
// database that where names (--db PATH or --database-url URL).
func (s *server) createApp(ctx context.Context, where ...string) error {
	args := append(append([]string{"apps", "create"}, where...), "--name", "bench", "--origin", parentOrigin, "--json")
	out, err := s.run(ctx, args...)
	if err != nil {
		return err
	}
	var app struct {
		AppID          string `json:"app_id"`
		IdentitySecret string `json:"identity_secret"`
		APIKey         string `json:"api_key"`
	}
	if err := json.Unmarshal(out, &app); err != nil || app.AppID == "" || app.IdentitySecret == "" {
		return fmt.Errorf("apps create printed %q: %v", out, err)
	}
	s.appID, s.secret, s.apiKey = app.AppID, app.IdentitySecret, app.APIKey
	return nil
}

func (s *server) run(ctx context.Context, args ...string) ([]byte, error) {
	return s.runIn(ctx, nil, args...)
}

// runIn runs a parley subcommand with stdin and returns its stdout.
func (s *server) runIn(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = s.env
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", s.bin, strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM (graceful: requests finish, writes drain) and waits.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
		s.kill()
		return errors.New("parley serve did not stop within 30 s of SIGTERM; killed")
	}
}

func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// logCount counts lines of the server's log that contain any of words.
func (s *server) logCount(words ...string) int {
	data, err := os.ReadFile(s.stderr.Name())
	if err != nil {
		return -1
	}
	n := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				n++
				break
			}
		}
	}
	return n
}

// logCountAll counts lines of the server's log that contain all of words.
func (s *server) logCountAll(words ...string) int {
	data, err := os.ReadFile(s.stderr.Name())
	if err != nil {
		return -1
	}
	n := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all && line != "" {
			n++
		}
	}
	return n
}

// procStat is a process's resident memory and CPU time, from /proc.
type procStat struct {
	RSS, HWM int64 // bytes: VmRSS and its peak VmHWM
	CPU      time.Duration
	At       time.Time
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

func readProc(pid int) (procStat, error) {
	p := procStat{At: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "VmRSS:" {
				p.RSS = kb << 10
			} else {
				p.HWM = kb << 10
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// Fields after the command name (which may hold spaces) in parentheses:
	// state is field 3, utime 14, stime 15.
	rest := string(stat[bytes.LastIndexByte(stat, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return p, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	p.CPU = time.Duration(ut+st) * time.Second / clockTick
	return p, nil
}

// cpuPercent is the CPU used between a and b, in percent of one core.
func cpuPercent(a, b procStat) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.CPU-a.CPU) / float64(wall)
}
