// Package pgtest gives tests a real PostgreSQL: one server per test
// binary, started from Debian's packages in a temporary directory on
// 127.0.0.1, and a fresh database per test. Nothing is downloaded and no
// server of the machine's is used. initdb refuses to run as root, so as
// root the server runs as the postgres user that the packages create.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// superuser is the role initdb makes; the tests connect as it, over
// 127.0.0.1 with trust authentication (nothing else can reach the port's
// temporary server for longer than the test binary lives).
const superuser = "parley"

var (
	once     sync.Once
	shared   *server
	startErr error
	dbs      atomic.Int64
)

type server struct {
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{} // closed when postgres has exited
}

// URL returns the URL of a new, empty database on the test binary's
// PostgreSQL server, starting the server on first use. The database is
// dropped when the test ends. With -short the test is skipped.
func URL(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("PostgreSQL test: skipped with -short")
	}
	once.Do(func() { shared, startErr = start() })
	if startErr != nil {
		tb.Fatalf("pgtest: %v", startErr)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbs.Add(1))
	if err := shared.admin(context.Background(), "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := shared.admin(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return shared.url(name)
}

// Main runs the tests (m is a *testing.M, or something that runs one
// several times) and then stops the server, if one was started. A package
// that uses URL calls it from TestMain.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	return code
}

func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, s.port, db)
}

func (s *server) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func (s *server) query(ctx context.Context, sql string, dst any) error {
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dst)
}

// start runs initdb and the server. The server is told to die with the
// test binary (Pdeathsig) as a backstop for Main.
func start() (*server, error) { return startWith(false) }

// startWith is start, durable or not: the tests' servers skip fsync, the
// benchmark's server keeps PostgreSQL's defaults, so that an ack costs
// what it costs in production.
func startWith(durable bool) (*server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "parley-pgtest-")
	if err != nil {
		return nil, err
	}
	cred, err := credential(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", superuser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A port picked free can be taken before postgres binds it (by another
	// test binary's server, say): then postgres exits, and another port
	// is tried.
	for attempt := 1; ; attempt++ {
		s, err := run(bin, dir, data, cred, 0, durable)
		if err == nil || attempt == 3 {
			if err != nil {
				os.RemoveAll(dir)
			}
			return s, err
		}
	}
}

// run starts postgres on port (0: a free one) and waits until it answers
// as the server of data, not some other server on that port.
func run(bin, dir, data string, cred *syscall.Credential, port int, durable bool) (*server, error) {
	var err error
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	// Durability settings are off: a test server's data need not survive
	// a power cut, and fsync is most of what a test would wait for.
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"}
	if !durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	log, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s := &server{dir: dir, port: port, cmd: cmd, exited: exited}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			out, _ := os.ReadFile(log.Name())
			return nil, fmt.Errorf("postgres exited on port %d:\n%s", port, out)
		default:
		}
		var served string
		err := s.query(context.Background(), "SHOW data_directory", &served)
		if err == nil && served == data {
			return s, nil
		}
		if err == nil {
			err = fmt.Errorf("port %d is another server's (%s)", port, served)
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("postgres did not accept connections on port %d within 30 s: %v (log in %s)", port, err, log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the server down fast and removes its directory.
func (s *server) stop() {
	s.halt()
	os.RemoveAll(s.dir)
}

// halt shuts the server down fast (SIGINT: abort transactions, exit).
func (s *server) halt() {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// Server is a PostgreSQL server of one test's own, which the test may
// stop and start again: a database restart under load.
type Server struct {
	s              *server
	bin, dir, data string
	cred           *syscall.Credential
	running        bool
}

// Start starts a server for this test alone, stopped and removed when
// the test ends. With -short the test is skipped.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("PostgreSQL test: skipped with -short")
	}
	s, err := start()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	bin, _ := binDir()
	cred, _ := credential(s.dir)
	srv := &Server{s: s, bin: bin, dir: s.dir, data: filepath.Join(s.dir, "data"), cred: cred, running: true}
	tb.Cleanup(func() {
		if srv.running {
			srv.s.stop()
		}
		os.RemoveAll(srv.dir)
	})
	return srv
}

// URL makes a new database on the server and returns its URL.
func (srv *Server) URL(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbs.Add(1))
	if err := srv.s.admin(context.Background(), "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return srv.s.url(name)
}

// Stop stops the server, as a crash or a restart would: its clients'
// connections are cut.
func (srv *Server) Stop() {
	srv.s.halt()
	srv.running = false
}

// Restart starts the stopped server again, on the same port.
func (srv *Server) Restart(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := run(srv.bin, srv.dir, srv.data, srv.cred, srv.s.port, false)
		if err == nil {
			srv.s, srv.running = s, true
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pgtest: restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// binDir finds Debian's PostgreSQL server binaries, newest version first;
// $PARLEY_PG_BIN names another directory.
func binDir() (string, error) {
	if d := os.Getenv("PARLEY_PG_BIN"); d != "" {
		return d, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(found) == 0 {
		return "", errors.New("no PostgreSQL server in /usr/lib/postgresql/*/bin: apt-get install -y postgresql (.ci/run does), or set PARLEY_PG_BIN")
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	return filepath.Dir(found[0]), nil
}

func version(postgresPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(postgresPath))))
	return v
}

// credential is who runs initdb and the server: this process's user, or,
// as root, the postgres user, who then owns dir.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user that Debian's postgresql package creates: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Durable is a PostgreSQL server with the default durability settings,
// outside any test: the benchmark's. Close stops and removes it.
type Durable struct{ s *server }

// StartDurable starts a durable server in a temporary directory.
func StartDurable() (*Durable, error) {
	s, err := startWith(true)
	if err != nil {
		return nil, err
	}
	return &Durable{s: s}, nil
}

// CreateDatabase makes a database and returns its URL.
func (d *Durable) CreateDatabase(name string) (string, error) {
	if err := d.s.admin(context.Background(), "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return d.s.url(name), nil
}

// Close stops the server and removes its directory.
func (d *Durable) Close() { d.s.stop() }
