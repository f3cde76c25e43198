package main

// Helpers shared by the reconnect-storm (storm.go) and slow-consumer
// (slow.go) workloads: a frame type with the fields they read, a dial that
// tells refusals apart, agent replies through the server API, an RSS
// sampler, and the server-side TCP state of chosen connections.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// kMsg is a Message object with the fields the two workloads check.
type kMsg struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
	Author         string `json:"author"`
	ClientMsgID    string `json:"client_msg_id"`
}

// kFrame is any server → widget frame, decoded for these workloads.
type kFrame struct {
	Type           string          `json:"type"`
	Code           string          `json:"code"`
	ClientMsgID    string          `json:"client_msg_id"`
	ConversationID string          `json:"conversation_id"`
	Message        json.RawMessage `json:"message"` // an object, or a string in error frames
	Messages       []kMsg          `json:"messages"`
	HasMore        bool            `json:"has_more"`
	Conversation   *struct {
		ID string `json:"id"`
	} `json:"conversation"`
}

func (f *kFrame) msg() (kMsg, bool) {
	var m kMsg
	if len(f.Message) == 0 || f.Message[0] != '{' {
		return m, false
	}
	return m, json.Unmarshal(f.Message, &m) == nil
}

// refusals counts, separately, the ways a socket was refused or ended.
type refusals struct {
	mu          sync.Mutex
	HTTP        map[string]int // upgrade refused: HTTP status, or "network: …"
	ErrorFrames map[string]int // error frames by code
	CloseCodes  map[int]int    // close frames by code (1006 = no close frame)
}

func newRefusals() *refusals {
	return &refusals{HTTP: map[string]int{}, ErrorFrames: map[string]int{}, CloseCodes: map[int]int{}}
}

func (r *refusals) errorFrame(code string) {
	r.mu.Lock()
	r.ErrorFrames[code]++
	r.mu.Unlock()
}

// readErr files an error returned by a websocket read.
func (r *refusals) readErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		r.CloseCodes[ce.Code]++
	} else {
		r.CloseCodes[websocket.CloseAbnormalClosure]++
	}
}

func (r *refusals) httpErr(key string) {
	r.mu.Lock()
	r.HTTP[key]++
	r.mu.Unlock()
}

func (r *refusals) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range []map[string]int{r.HTTP, r.ErrorFrames} {
		for _, v := range m {
			n += v
		}
	}
	for _, v := range r.CloseCodes {
		n += v
	}
	return n
}

// String is e.g. "HTTP: none; error frames: unavailable×3; close codes: 1006×2".
func (r *refusals) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := func(m map[string]int) string {
		if len(m) == 0 {
			return "none"
		}
		return countsString(m, "×")
	}
	cc := map[string]int{}
	for k, v := range r.CloseCodes {
		cc[strconv.Itoa(k)] = v
	}
	return fmt.Sprintf("upgrade refused: %s; error frames: %s; close codes: %s", f(r.HTTP), f(r.ErrorFrames), f(cc))
}

// dialAuth opens a widget socket with dialer d and authenticates it,
// filing every refusal in ref. It returns once welcome arrived.
// upgrade, when not nil, records how long the websocket upgrade took.
func (c *client) dialAuth(ctx context.Context, d *websocket.Dialer, token string, ref *refusals, upgrade *Hist) (*wconn, error) {
	u := "ws" + strings.TrimPrefix(c.srv.url, "http") + "/api/widget/ws"
	t0 := time.Now()
	ws, resp, err := d.DialContext(ctx, u, http.Header{"Origin": {c.srv.url}})
	if err == nil && upgrade != nil {
		upgrade.Record(time.Since(t0))
	}
	if err != nil {
		if resp != nil {
			ref.httpErr(strconv.Itoa(resp.StatusCode))
			return nil, fmt.Errorf("dial: %v (%s)", err, resp.Status)
		}
		ref.httpErr("network")
		return nil, fmt.Errorf("dial: %v", err)
	}
	w := &wconn{ws: ws}
	if err := w.send(map[string]string{"type": "auth", "token": token}); err != nil {
		ref.readErr(err)
		ws.Close()
		return nil, err
	}
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			ref.readErr(err)
			ws.Close()
			return nil, fmt.Errorf("waiting for welcome: %v", err)
		}
		var f kFrame
		json.Unmarshal(data, &f)
		if f.Type == "welcome" {
			break
		}
		if f.Type == "error" {
			ref.errorFrame(f.Code)
			ws.Close()
			return nil, fmt.Errorf("auth refused: %s", data)
		}
	}
	ws.SetReadDeadline(time.Time{})
	return w, nil
}

// sendAndAck sends one message on w, which nobody else reads, and waits for
// its ack; convo "" starts a new conversation.
func sendAndAck(w *wconn, convo, cmid, body string) (kMsg, error) {
	if err := w.send(sendFrame{Type: "send", ConversationID: convo, ClientMsgID: cmid, Body: body}); err != nil {
		return kMsg{}, err
	}
	w.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer w.ws.SetReadDeadline(time.Time{})
	for {
		_, data, err := w.ws.ReadMessage()
		if err != nil {
			return kMsg{}, fmt.Errorf("waiting for the ack of %s: %v", cmid, err)
		}
		var f kFrame
		json.Unmarshal(data, &f)
		if f.Type == "error" && f.ClientMsgID == cmid {
			return kMsg{}, fmt.Errorf("message %s refused: %s", cmid, data)
		}
		if f.Type == "ack" && f.ClientMsgID == cmid {
			m, ok := f.msg()
			if !ok || m.Seq <= 0 {
				return kMsg{}, fmt.Errorf("ack of %s without a message: %s", cmid, data)
			}
			return m, nil
		}
	}
}

// agentReply posts an agent message to a conversation through the server
// API (POST /api/v1/conversations/{id}/messages) and returns it.
func (c *client) agentReply(ctx context.Context, convo, body string) (kMsg, error) {
	b, _ := json.Marshal(map[string]string{"body": body, "author_name": "Bench Agent"})
	req, err := http.NewRequestWithContext(ctx, "POST", c.srv.url+"/api/v1/conversations/"+convo+"/messages", bytes.NewReader(b))
	if err != nil {
		return kMsg{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.srv.apiKey)
	resp, err := c.http.Do(req)
	if err != nil {
		return kMsg{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return kMsg{}, fmt.Errorf("POST messages: %d %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	var out struct {
		Message kMsg `json:"message"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.Message.Seq <= 0 {
		return kMsg{}, fmt.Errorf("POST messages answered %s", data)
	}
	return out.Message, nil
}

// rssSampler reads the server's RSS every interval until stopped.
type rssSampler struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []int64
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if p, err := readProc(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, p.RSS)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// end stops the sampler (after one last sample) and returns the first,
// largest and last RSS it saw.
func (s *rssSampler) end(pid int) (first, peak, last int64) {
	close(s.stop)
	<-s.done
	if p, err := readProc(pid); err == nil {
		s.samples = append(s.samples, p.RSS)
	}
	if len(s.samples) == 0 {
		return 0, 0, 0
	}
	first, last = s.samples[0], s.samples[len(s.samples)-1]
	for _, v := range s.samples {
		peak = max(peak, v)
	}
	return first, peak, last
}

// serverPort is the TCP port the server listens on.
func (c *client) serverPort() int {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(c.srv.url, "http://"))
	n, _ := strconv.Atoi(p)
	return n
}

// localPort is the client-side port of a websocket's TCP connection.
func localPort(w *wconn) int {
	if a, ok := w.ws.UnderlyingConn().LocalAddr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// serverSideEstablished reads /proc/net/tcp and returns, of the given
// client ports, those whose server-side socket (local port srvPort, remote
// the client port) is still ESTABLISHED. When the server closes a
// connection, its socket leaves ESTABLISHED at once (FIN_WAIT1, even while
// the data the client never read is still queued), so this sees a cut
// without the client reading anything.
func serverSideEstablished(srvPort int, clientPorts map[int]bool) (map[int]bool, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", srvPort)
	est := make(map[int]bool)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 4 || !strings.HasSuffix(fl[1], want) || fl[3] != "01" {
			continue
		}
		_, rp, ok := strings.Cut(fl[2], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseInt(rp, 16, 32)
		if err == nil && clientPorts[int(p)] {
			est[int(p)] = true
		}
	}
	return est, sc.Err()
}

// smallBufDialer is the client's websocket dialer with the TCP receive
// buffer of each connection set to rcvbuf bytes before connecting (the
// kernel doubles it and applies its minimum), so a client that stops
// reading fills its buffers after a few KB. It also announces an MSS of
// mss bytes (1460 is Ethernet's): on loopback the MSS would be ~64 KB, and
// Linux sizes the server's send buffer from it (2 × 10 segments, ~2.6 MB
// here), which would hide a stalled client for minutes; with a real
// network's MSS the server's send buffer starts near 80 KB.
func (c *client) smallBufDialer(rcvbuf, mss int) *websocket.Dialer {
	d := c.dialer
	nd := &net.Dialer{Timeout: 30 * time.Second, Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	d.NetDialContext = nd.DialContext
	d.ReadBufferSize = 512
	return &d
}

// abortConn drops a websocket's TCP connection without a close frame: with
// rst, SO_LINGER 0 makes it a reset, otherwise a plain FIN.
func abortConn(w *wconn, rst bool) {
	if tc, ok := w.ws.UnderlyingConn().(*net.TCPConn); ok && rst {
		tc.SetLinger(0)
	}
	w.ws.UnderlyingConn().Close()
}

// pctsShort is "p50 … · p99 … · max …".
func pctsShort(h *Hist) string {
	return fmt.Sprintf("p50 %s · p99 %s · max %s", ms(h.Quantile(.5)), ms(h.Quantile(.99)), ms(h.Max()))
}

// countsString is m as "a×2, b×5", keys in order, each count after sep.
func countsString(m map[string]int, sep string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s%s%d", k, sep, m[k]))
	}
	return strings.Join(parts, ", ")
}
