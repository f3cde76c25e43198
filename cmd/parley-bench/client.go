package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// client speaks the widget's protocol (docs/protocol.md sections 2 and 3)
// to one server, as the chat frame would.
type client struct {
	srv    *server
	http   *http.Client
	dialer websocket.Dialer
	cookie string // the owner's dashboard sign-in, once signIn ran
}

func newClient(srv *server) *client {
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 30 * time.Second}
	return &client{
		srv:  srv,
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		dialer: websocket.Dialer{
			HandshakeTimeout: 30 * time.Second,
			ReadBufferSize:   1024,
			WriteBufferSize:  1024,
		},
	}
}

func userHash(secret, userID string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(userID))
	return hex.EncodeToString(mac.Sum(nil))
}

// session creates a verified session for userID and returns its token.
func (c *client) session(ctx context.Context, userID string) (string, error) {
	body, _ := json.Marshal(map[string]string{
		"app_id":        c.srv.appID,
		"parent_origin": parentOrigin,
		"user_id":       userID,
		"user_hash":     userHash(c.srv.secret, userID),
	})
	req, err := http.NewRequestWithContext(ctx, "POST", c.srv.url+"/api/widget/sessions", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", c.srv.origin())
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST /api/widget/sessions: %d %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	var s struct {
		Token    string `json:"token"`
		Verified bool   `json:"verified"`
	}
	if err := json.Unmarshal(data, &s); err != nil || s.Token == "" || !s.Verified {
		return "", fmt.Errorf("POST /api/widget/sessions answered %s", data)
	}
	return s.Token, nil
}

// inFrame is any server → widget frame, with the fields the bench reads.
type inFrame struct {
	Type         string          `json:"type"`
	ClientMsgID  string          `json:"client_msg_id"`
	Code         string          `json:"code"`
	Duplicate    bool            `json:"duplicate"`
	Message      json.RawMessage `json:"message"` // an object, or a string in error frames
	Conversation *struct {
		ID string `json:"id"`
	} `json:"conversation"`
}

type message struct {
	ConversationID string `json:"conversation_id"`
	ClientMsgID    string `json:"client_msg_id"`
	Seq            int64  `json:"seq"`
}

type sendFrame struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id,omitempty"`
	ClientMsgID    string `json:"client_msg_id"`
	Body           string `json:"body"`
}

// wconn is one authenticated widget socket.
type wconn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
}

// dial opens the widget socket and authenticates it with token, returning
// once the welcome frame arrived.
func (c *client) dial(ctx context.Context, token string) (*wconn, error) {
	u := "ws" + strings.TrimPrefix(c.srv.url, "http") + "/api/widget/ws"
	ws, resp, err := c.dialer.DialContext(ctx, u, http.Header{"Origin": {c.srv.origin()}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %v (%s)", err, resp.Status)
		}
		return nil, fmt.Errorf("dial: %v", err)
	}
	w := &wconn{ws: ws}
	if err := w.send(map[string]string{"type": "auth", "token": token}); err != nil {
		ws.Close()
		return nil, err
	}
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var f inFrame
		_, data, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("waiting for welcome: %v", err)
		}
		if json.Unmarshal(data, &f) == nil && f.Type == "welcome" {
			break
		}
		if f.Type == "error" {
			ws.Close()
			return nil, fmt.Errorf("auth refused: %s", data)
		}
	}
	ws.SetReadDeadline(time.Time{})
	return w, nil
}

func (w *wconn) send(v any) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return w.ws.WriteJSON(v)
}

// readLoop hands each frame to fn with the time it arrived until the socket
// closes, and returns the error that closed it. Pings are answered by
// gorilla's default handler.
func (w *wconn) readLoop(fn func(f *inFrame, at time.Time)) error {
	for {
		_, data, err := w.ws.ReadMessage()
		if err != nil {
			return err
		}
		at := time.Now()
		var f inFrame
		if json.Unmarshal(data, &f) == nil && fn != nil {
			fn(&f, at)
		}
	}
}

func (w *wconn) close() {
	w.wmu.Lock()
	w.ws.SetWriteDeadline(time.Now().Add(time.Second))
	w.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	w.wmu.Unlock()
	w.ws.Close()
}

// parallel runs fn(i) for i in [0,n) on at most conc goroutines and returns
// the first error.
func parallel(n, conc int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		next  = make(chan int)
	)
	for range min(conc, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
