// Package natstest starts a real NATS server for tests: Debian's
// nats-server binary on 127.0.0.1, one per test, which the test can stop
// and start again on the same port. With -short the test is skipped.
package natstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Server is a nats-server process of a test.
type Server struct {
	tb   testing.TB
	port int
	cmd  *exec.Cmd
	exit chan struct{}
}

// Start starts a NATS server, stopped when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("NATS test: skipped with -short")
	}
	bin, err := binary()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{tb: tb}
	for range 5 { // the free port may be taken between picking and binding
		if s.port, err = freePort(); err != nil {
			tb.Fatal(err)
		}
		if err = s.start(bin); err == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("natstest: %v", err)
	return nil
}

// URL is the server's nats:// URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Stop stops the server (a no-op when stopped).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exit
	s.cmd = nil
}

// Restart starts the server again on its port.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	bin, err := binary()
	if err != nil {
		s.tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err = s.start(bin); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the old process's socket may linger
	}
	if err != nil {
		s.tb.Fatalf("natstest: restart: %v", err)
	}
}

func (s *Server) start(bin string) error {
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("natstest: %w", err)
	}
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exit:
			return fmt.Errorf("natstest: nats-server exited at start (port %d taken?)", s.port)
		default:
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port)); err == nil {
			c.Close()
			s.cmd, s.exit = cmd, exit
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-exit
	return fmt.Errorf("natstest: nats-server did not listen on %d", s.port)
}

// binary finds Debian's nats-server.
func binary() (string, error) {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server", nil
	}
	return "", fmt.Errorf("natstest: no nats-server; install it: apt-get install nats-server")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
