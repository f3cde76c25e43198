package main

// Helpers for the tests that run the real parley binary in a child
// process: the crash test (SIGKILL) and the drain test (SIGTERM).

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/identity"
)

// buildParley builds ./cmd/parley into a temporary folder and returns the
// binary's path.
func buildParley(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// binEnv is a parley installation for one test: the binary, a database in a
// temporary folder, its master key and one app.
type binEnv struct {
	t      *testing.T
	bin    string
	db     string
	env    []string
	addr   string // where serve listens
	base   string // http://addr, also the public URL
	app    binApp
	origin string // the app's allowed parent origin
}

type binApp struct {
	AppID            string `json:"app_id"`
	IdentitySecretID string `json:"identity_secret_id"`
	IdentitySecret   string `json:"identity_secret"`
	APIKey           string `json:"api_key"`
}

// newBinEnv builds the binary, makes a master key with `parley keygen` and
// an app with `parley apps create --json`, before any server runs.
func newBinEnv(t *testing.T) *binEnv {
	t.Helper()
	e := &binEnv{t: t, bin: buildParley(t), db: filepath.Join(t.TempDir(), "parley.db"), origin: "https://shop.example"}
	key, err := exec.Command(e.bin, "keygen").Output()
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	e.env = append(os.Environ(), "PARLEY_MASTER_KEY="+strings.TrimSpace(string(key)))
	cmd := exec.Command(e.bin, "apps", "create", "--db", e.db, "--name", "Shop", "--origin", e.origin, "--json")
	cmd.Env = e.env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("apps create: %v", err)
	}
	if err := json.Unmarshal(out, &e.app); err != nil || e.app.AppID == "" || e.app.APIKey == "" {
		t.Fatalf("apps create --json printed %q (%v)", out, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	ln.Close()
	e.base = "http://" + e.addr
	return e
}

// serverProc is a running `parley serve`.
type serverProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited; then err is set
	err  error

	mu     sync.Mutex
	stderr bytes.Buffer
	lines  []chan struct{} // see waitLog
	wants  []string
}

// serve starts `parley serve` on e.addr with generous abuse limits (the
// tests play many users from one address) and waits until /healthz answers.
func (e *binEnv) serve(extra ...string) *serverProc {
	e.t.Helper()
	return e.serveWith(append([]string{"--db", e.db, "--addr", e.addr, "--public-url", e.base}, extra...), e.base+"/healthz")
}

// serveWith starts `parley serve` with args and the generous limits, and
// waits until ready (a URL) answers 200.
func (e *binEnv) serveWith(args []string, ready string) *serverProc {
	t := e.t
	t.Helper()
	args = append([]string{"serve",
		"--limit-sessions-per-ip", "10000,1ms", "--limit-sessions-per-app", "10000,1ms",
		"--limit-sockets-per-ip", "10000,1ms", "--limit-sockets-per-user", "10000,1ms",
		"--limit-messages-per-user", "10000,1ms"}, args...)
	p := &serverProc{cmd: exec.Command(e.bin, args...), done: make(chan struct{})}
	p.cmd.Env = e.env
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			for i, w := range p.wants {
				if w != "" && strings.Contains(sc.Text(), w) {
					close(p.lines[i])
					p.wants[i] = ""
				}
			}
			p.mu.Unlock()
		}
		io.Copy(io.Discard, pipe)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("server log:\n%s", p.log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("serve exited at start: %v\n%s", p.err, p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer %s within 30 s\n%s", ready, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *serverProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// waitLog returns a channel closed once a line containing s is logged
// (from now on, or earlier).
func (p *serverProc) waitLog(s string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(p.stderr.String(), s) {
		close(ch)
		return ch
	}
	p.lines, p.wants = append(p.lines, ch), append(p.wants, s)
	return ch
}

// wait waits (generously) for the process to exit and returns its error.
func (p *serverProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit within 60 s\n%s", p.log())
		return nil
	}
}

// newSession creates a verified widget session for userID and returns its token.
func (e *binEnv) newSession(userID string) (string, error) {
	body, _ := json.Marshal(map[string]string{"app_id": e.app.AppID, "parent_origin": e.origin,
		"user_id": userID, "user_hash": identity.UserHash(e.app.IdentitySecret, userID)})
	req, _ := http.NewRequest("POST", e.base+"/api/widget/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", e.base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var sess struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&sess); err != nil || resp.StatusCode != http.StatusCreated || sess.Token == "" {
		return "", fmt.Errorf("session for %s: status %d (%v)", userID, resp.StatusCode, err)
	}
	return sess.Token, nil
}

// dialWidget opens a widget socket, authenticates with token and reads
// the welcome frame.
func (e *binEnv) dialWidget(token string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	conn, _, err := d.Dial("ws://"+e.addr+"/api/widget/ws", http.Header{"Origin": {e.base}})
	if err != nil {
		return nil, err
	}
	conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := conn.WriteJSON(map[string]string{"type": "auth", "token": token}); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var f map[string]any
	if err := conn.ReadJSON(&f); err != nil {
		conn.Close()
		return nil, err
	}
	if f["type"] != "welcome" {
		conn.Close()
		return nil, fmt.Errorf("after auth: %v", f)
	}
	conn.SetReadDeadline(time.Time{})
	conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// apiMessages reads a conversation's whole history through the server
// API, following has_more.
func (e *binEnv) apiMessages(convID string) ([]wireMessage, error) {
	var all []wireMessage
	after := int64(0)
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/conversations/%s/messages?after_seq=%d&limit=200", e.base, convID, after), nil)
		req.Header.Set("Authorization", "Bearer "+e.app.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		var page struct {
			Messages []wireMessage `json:"messages"`
			HasMore  bool          `json:"has_more"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET messages of %s: status %d (%v)", convID, resp.StatusCode, err)
		}
		all = append(all, page.Messages...)
		if !page.HasMore || len(page.Messages) == 0 {
			return all, nil
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

// wireMessage is a Message as the socket and the server API send it.
type wireMessage struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
	Author         string `json:"author"`
	ClientMsgID    string `json:"client_msg_id"`
	Body           string `json:"body"`
}

// storedUserMessages opens the database read-only (the server must have
// stopped) and returns every user message by client_msg_id, with how
// many rows carry that id.
func storedUserMessages(t *testing.T, path string) map[string][]wireMessage {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, conversation_id, seq, client_msg_id, body FROM messages WHERE author = 'user'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]wireMessage{}
	for rows.Next() {
		var m wireMessage
		var cmid sql.NullString
		if err := rows.Scan(&m.ID, &m.ConversationID, &m.Seq, &cmid, &m.Body); err != nil {
			t.Fatal(err)
		}
		m.ClientMsgID, m.Author = cmid.String, "user"
		out[m.ClientMsgID] = append(out[m.ClientMsgID], m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// closeCode is the close code a socket's read error carries, or -1.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}
