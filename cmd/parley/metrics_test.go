package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve --metrics serves parley_ metrics on its own listener, and the
// public address has none.
func TestMetricsListener(t *testing.T) {
	e := newBinEnv(t)
	maddr := freeAddr(t)
	e.serve("--metrics", maddr)

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

	body := getStatus(t, "http://"+maddr+"/metrics", http.StatusOK)
	for _, want := range []string{
		`parley_messages_committed_total{author="user"} 1`,
		`parley_messages_committed_total{author="agent"} 0`,
		`parley_sockets_open{kind="widget"} 1`,
		`parley_sessions_created_total 1`,
		`parley_commit_seconds_count`,
		`parley_commit_group_size_bucket`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(body, "parley_"))
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
