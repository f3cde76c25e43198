package web

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
)

// GET /readyz is what a load balancer asks: 200 while the node can serve,
// 503 naming what fails once it cannot reach its database or has begun
// shutting down. /healthz (alive) stays 200 either way.
func TestReadyz(t *testing.T) {
	ready := func(ts *testServer) (int, []string) {
		t.Helper()
		res := ts.do(t, http.MethodGet, "/readyz", nil, nil)
		var body struct {
			Ready   bool     `json:"ready"`
			Failing []string `json:"failing"`
		}
		if err := json.Unmarshal(res.Body, &body); err != nil {
			t.Fatalf("GET /readyz body %q: %v", res.Body, err)
		}
		if body.Ready != (res.Status == http.StatusOK) || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET /readyz = %d %s (Cache-Control %q)", res.Status, res.Body, res.Header.Get("Cache-Control"))
		}
		return res.Status, body.Failing
	}

	ts := newTestServer(t)
	if status, failing := ready(ts); status != http.StatusOK || failing != nil {
		t.Fatalf("healthy node: /readyz = %d %v, want 200", status, failing)
	}
	if err := ts.Hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if status, failing := ready(ts); status != http.StatusServiceUnavailable || len(failing) != 1 || failing[0] != "sockets" {
		t.Fatalf("shutting down: /readyz = %d %v, want 503 naming sockets", status, failing)
	}

	ts = newTestServer(t)
	// As serve stops: the job queue, which works on the database, first.
	if err := ts.Queue.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts.DB.Close()
	if status, failing := ready(ts); status != http.StatusServiceUnavailable || len(failing) != 1 || failing[0] != "database" {
		t.Fatalf("database closed: /readyz = %d %v, want 503 naming the database", status, failing)
	}
	if res := ts.do(t, http.MethodGet, "/healthz", nil, nil); res.Status != http.StatusOK {
		t.Fatalf("/healthz = %d, want 200: the process is alive", res.Status)
	}
}
