package web

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// loaderBudget is the most the loader a site owner pastes may weigh,
// gzipped at the best compression: the chat itself loads only when needed.
const loaderBudget = 2048

// TestLoaderSizeBudget: /widget.js, as served, stays within loaderBudget
// gzipped (the figure cmd/parley-bench reports).
func TestLoaderSizeBudget(t *testing.T) {
	ts := newTestServer(t)
	res := ts.do(t, http.MethodGet, "/widget.js", nil, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /widget.js = %d", res.Status)
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(res.Body)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("/widget.js: %d bytes, %d gzipped", len(res.Body), b.Len())
	if b.Len() > loaderBudget {
		t.Errorf("/widget.js is %d bytes gzipped, over the budget of %d: move code into widget-chat.js", b.Len(), loaderBudget)
	}
}

// The loader names the rest of the widget by its content-hashed URL, which
// is cached for good and compressed like the other static files.
func TestLoaderNamesTheHashedChatScript(t *testing.T) {
	ts := newTestServer(t)
	loader := ts.do(t, http.MethodGet, "/widget.js", nil, nil)
	m := regexp.MustCompile(`"(/static/widget-chat\.js\?v=[0-9a-f]{12})"`).FindSubmatch(loader.Body)
	if m == nil {
		t.Fatalf("/widget.js does not name the content-hashed widget-chat.js")
	}
	if bytes.Contains(loader.Body, []byte(`"/static/widget-chat.js"`)) {
		t.Errorf("/widget.js still names widget-chat.js without its hash")
	}
	res := ts.do(t, http.MethodGet, string(m[1]), nil, nil)
	if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET %s = %d %q, want 200 text/javascript", m[1], res.Status, res.Header.Get("Content-Type"))
	}
	if got := res.Header.Get("Cache-Control"); !strings.Contains(got, "immutable") {
		t.Errorf("GET %s: Cache-Control = %q, want immutable", m[1], got)
	}
	if !bytes.Contains(res.Body, []byte("parley-frame-wrap")) {
		t.Errorf("GET %s does not look like the chat script: %.80s", m[1], res.Body)
	}
	// Both halves are compressed when the browser asks.
	for _, path := range []string{"/widget.js", string(m[1])} {
		res := ts.do(t, http.MethodGet, path, http.Header{"Accept-Encoding": {"gzip"}}, nil)
		if got := res.Header.Get("Content-Encoding"); got != "gzip" {
			t.Errorf("GET %s: Content-Encoding = %q, want gzip", path, got)
		}
	}
}

// The chat frame's page holds no secret, so it is compressed like the
// scripts it loads; the dashboard's pages, which hold CSRF-protected forms
// and secrets, are not.
func TestFramePageIsCompressed(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced, "https://shop.example")
	gz := http.Header{"Accept-Encoding": {"gzip"}}
	res := ts.do(t, http.MethodGet, "/w/"+app.ID, gz, nil)
	if res.Status != http.StatusOK || res.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("GET /w/%s: %d, Content-Encoding %q; want 200 gzip", app.ID, res.Status, res.Header.Get("Content-Encoding"))
	}
	if res := ts.do(t, http.MethodGet, "/login", gz, nil); res.Header.Get("Content-Encoding") != "" {
		t.Errorf("GET /login: Content-Encoding %q; want none", res.Header.Get("Content-Encoding"))
	}
}
