package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// serve --metrics serves parley_ metrics on its own listener, and the
// public address has none.
func TestMetricsListener(t *testing.T) {
	e := newBinEnv(t)
	maddr := freeAddr(t)
	hooks := make(chan struct{}, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hooks <- struct{}{} }))
	defer recv.Close()
	cmd := exec.Command(e.bin, "webhooks", "add", "--db", e.db, "--app", e.app.AppID, "--url", recv.URL, "--event", "message.created",
		"--webhook-allow", "127.0.0.0/8")
	cmd.Env = e.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("webhooks add: %v %s", err, out)
	}
	e.serve("--metrics", maddr, "--webhook-allow", "127.0.0.0/8")
	// A session refused: a user_hash that does not match.
	body, _ := json.Marshal(map[string]string{"app_id": e.app.AppID, "parent_origin": e.origin, "user_id": "u2", "user_hash": strings.Repeat("0", 64)})
	req, _ := http.NewRequest("POST", e.base+"/api/widget/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", e.base)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a bad user_hash: %v %v", res, err)
	}

	token, err := e.newSession("u1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.dialWidget(token)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteJSON(map[string]string{"type": "send", "client_msg_id": "m1", "body": "hello"}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var f map[string]any
		if err := conn.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		if f["type"] == "ack" {
			break
		}
	}

	<-hooks
	var metrics string
	// The attempt is counted when it is made, and leaves the queue once
	// it is recorded.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(metrics, `parley_webhook_deliveries_total{outcome="delivered"} 1`) ||
		!strings.Contains(metrics, "parley_webhook_queue_depth 0"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the delivery is not counted:\n%s", grepLines(metrics, "parley_webhook"))
		}
		metrics = getStatus(t, "http://"+maddr+"/metrics", http.StatusOK)
	}
	for _, want := range []string{
		`parley_sessions_refused_total{reason="identity_hash_invalid"} 1`,
		`parley_webhook_deliveries_total{outcome="failed"} 0`,
		`parley_emails_total{outcome="sent"} 0`,
		`parley_messages_committed_total{author="user"} 1`,
		`parley_messages_committed_total{author="agent"} 0`,
		`parley_sockets_open{kind="widget"} 1`,
		`parley_sessions_created_total 1`,
		`parley_commit_seconds_count`,
		`parley_commit_group_size_bucket`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(metrics, "parley_"))
		}
	}
	getStatus(t, e.base+"/metrics", http.StatusNotFound)
}

func getStatus(t *testing.T, url string, want int) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("GET %s = %d, want %d", url, res.StatusCode, want)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
