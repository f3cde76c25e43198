package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// --pprof serves the profiler on its own listener, never on the public one.
func TestPprofOnItsOwnListener(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	stop := startServe(t, db, addr, "--pprof", pprofAddr)
	defer stop()

	status, body, err := get(t, "http://"+pprofAddr+"/debug/pprof/")
	if err != nil || status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index on %s: %d %v\n%.300s", pprofAddr, status, err, body)
	}
	if status, body, err := get(t, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1"); err != nil || status != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %d %v\n%.300s", status, err, body)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if status, body, err := get(t, "http://"+addr+path); err != nil || status != http.StatusNotFound {
			t.Errorf("public listener %s: %d %v\n%.300s, want 404", path, status, err, body)
		}
	}
	// Nothing else listens on the pprof address: the public routes are not there.
	if status, _, _ := get(t, "http://"+pprofAddr+"/healthz"); status != http.StatusNotFound {
		t.Errorf("pprof listener /healthz: %d, want 404", status)
	}
}

// Without --pprof no profiler listens anywhere: the real binary holds
// one listening socket, and two with --pprof.
func TestPprofListenerOnlyWithTheFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the parley binary")
	}
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("needs Linux /proc")
	}
	e := newBinEnv(t)
	srv := e.serve()
	if status, _, err := get(t, e.base+"/debug/pprof/"); err != nil || status != http.StatusNotFound {
		t.Errorf("public listener /debug/pprof/: %d %v, want 404", status, err)
	}
	if got := listeners(t, srv.cmd.Process.Pid); len(got) != 1 || got[0] != e.addr {
		t.Errorf("without --pprof, serve listens on %v, want only %s", got, e.addr)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.wait(t); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}

	pprofAddr := freeAddr(t)
	srv = e.serve("--pprof", pprofAddr)
	got := listeners(t, srv.cmd.Process.Pid)
	sort.Strings(got)
	want := []string{e.addr, pprofAddr}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("with --pprof, serve listens on %v, want %v", got, want)
	}
	if !strings.Contains(srv.log(), "pprof listening") {
		t.Errorf("the pprof listener is not logged:\n%s", srv.log())
	}
	if status, _, err := get(t, "http://"+pprofAddr+"/debug/pprof/"); err != nil || status != http.StatusOK {
		t.Errorf("pprof on %s: %d %v", pprofAddr, status, err)
	}
	if status, _, err := get(t, e.base+"/debug/pprof/"); err != nil || status != http.StatusNotFound {
		t.Errorf("public listener /debug/pprof/ with --pprof: %d %v, want 404", status, err)
	}
}

// listeners returns the TCP addresses (ip:port) process pid listens on,
// from /proc.
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			out = append(out, procAddr(t, f[1]))
		}
	}
	return out
}

// procAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080".
func procAddr(t *testing.T, s string) string {
	t.Helper()
	host, port, _ := strings.Cut(s, ":")
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(host)
	if err != nil {
		t.Fatal(err)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 { // each 32-bit word is in host (little-endian) order
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(p)))
}
