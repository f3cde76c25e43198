package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestWebhookSurvivesSIGKILL: a node killed with SIGKILL while an attempt
// is under way (the message committed, the webhook not delivered) loses
// nothing: after the restart the event is delivered, with its webhook-id,
// and only once.
func TestWebhookSurvivesSIGKILL(t *testing.T) {
	e := newBinEnv(t)
	var mu sync.Mutex
	var firstID string
	var delivered []string
	arrived := make(chan struct{})
	hang := make(chan struct{})
	defer close(hang)
	var secret string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		if firstID == "" {
			// The first attempt never gets an answer: its node dies first.
			firstID = r.Header.Get("webhook-id")
			mu.Unlock()
			close(arrived)
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		if err != nil {
			mu.Unlock()
			t.Errorf("signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		delivered = append(delivered, r.Header.Get("webhook-id"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer recv.Close()

	cmd := exec.Command(e.bin, "webhooks", "add", "--db", e.db, "--app", e.app.AppID, "--url", recv.URL+"/hook",
		"--event", "message.created", "--webhook-allow", "127.0.0.0/8", "--json")
	cmd.Env = e.env
	out, err := cmd.Output()
	var added struct{ Secret string }
	if err != nil || json.Unmarshal(out, &added) != nil || added.Secret == "" {
		t.Fatalf("webhooks add: %q (%v)", out, err)
	}
	secret = added.Secret

	p := e.serve("--webhook-allow", "127.0.0.0/8")
	token, err := e.newSession("ada")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.dialWidget(token)
	if err != nil {
		t.Fatal(err)
	}
	conn.WriteJSON(map[string]string{"type": "send", "client_msg_id": "m1", "body": "hello"})
	if f := readUntil(t, conn, "ack"); f.Message.ClientMsgID != "m1" {
		t.Fatalf("ack %+v", f)
	}
	conn.Close()
	select {
	case <-arrived:
	case <-time.After(time.Minute):
		t.Fatal("the first attempt never came")
	}
	p.cmd.Process.Kill()
	p.wait(t)

	e.serve("--webhook-allow", "127.0.0.0/8")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(delivered)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was not delivered after the restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // room for a second delivery, if there were one
	mu.Lock()
	defer mu.Unlock()
	if len(delivered) != 1 || delivered[0] != firstID {
		t.Errorf("delivered %v after the restart; want once, as %s", delivered, firstID)
	}
	if !strings.HasPrefix(firstID, "evt_") {
		t.Errorf("webhook-id %q", firstID)
	}
}
