package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

func TestHealthAndRoot(t *testing.T) {
	ts := newTestServer(t)
	if res := ts.do(t, http.MethodGet, "/healthz", nil, nil); res.Status != http.StatusOK || string(res.Body) != "ok\n" {
		t.Fatalf("GET /healthz = %d %q", res.Status, res.Body)
	}
	if res := ts.do(t, http.MethodGet, "/", nil, nil); res.Status != http.StatusOK {
		t.Fatalf("GET / = %d", res.Status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	for _, r := range []struct{ method, path string }{
		{"GET", "/"},
		{"GET", "/healthz"},
		{"GET", "/widget.js"},
		{"GET", "/nope"},
		{"GET", "/api/nope"},
		{"GET", "/api/v1/conversations"},
		{"POST", "/api/widget/sessions"},
		{"GET", "/api/widget/ws"},
		{"GET", "/w/" + app.ID},
		{"GET", "/w/app_unknown"},
	} {
		res := ts.do(t, r.method, r.path, nil, nil)
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options = %q, want nosniff", r.method, r.path, got)
		}
		if got := res.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s %s: Referrer-Policy = %q, want no-referrer", r.method, r.path, got)
		}
		csp := res.Header.Get("Content-Security-Policy")
		if r.path == "/w/"+app.ID {
			continue // the frame page is checked below
		}
		if got := cspDirective(csp, "frame-ancestors"); !slices.Equal(got, []string{"'none'"}) {
			t.Errorf("%s %s (%d): frame-ancestors %v, want 'none' (CSP %q)", r.method, r.path, res.Status, got, csp)
		}
	}
}

func TestErrorsUnderAPIAreJSON(t *testing.T) {
	ts := newTestServer(t)
	res := ts.do(t, http.MethodGet, "/api/nope", nil, nil)
	res.wantError(t, http.StatusNotFound, "not_found")
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("API error Cache-Control = %q, want no-store", got)
	}
	ts.do(t, http.MethodDelete, "/api/widget/sessions", nil, nil).wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	// Elsewhere errors are plain text.
	res = ts.do(t, http.MethodGet, "/nope", nil, nil)
	if res.Status != http.StatusNotFound || strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /nope = %d %q, want a plain-text 404", res.Status, res.Header.Get("Content-Type"))
	}
	// Error responses are logged with their real status.
	ts.do(t, http.MethodPost, "/api/widget/sessions", nil, nil)
	if !ts.logs.contains("path=/api/widget/sessions status=403") {
		t.Errorf("a 403 was not logged as status=403:\n%s", strings.Join(ts.logs.all(), "\n"))
	}
}

func TestWidgetLoader(t *testing.T) {
	ts := newTestServer(t)
	res := ts.do(t, http.MethodGet, "/widget.js", nil, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /widget.js = %d", res.Status)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type = %q, want text/javascript", ct)
	}
	if got := res.Header.Get("Cache-Control"); got != "public, max-age=300" {
		t.Errorf("Cache-Control = %q, want a short public cache", got)
	}
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q, want *", got)
	}
	if !bytes.Contains(res.Body, []byte("Parley")) {
		t.Errorf("body does not look like the loader: %.80s", res.Body)
	}

	// Compressed when asked, and the same script.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/widget.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	gres, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer gres.Body.Close()
	if gres.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", gres.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(gres.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(zr); err != nil || !bytes.Equal(b, res.Body) {
		t.Fatalf("gzipped loader differs from the plain one (err %v)", err)
	}
	if ct := gres.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("gzipped Content-Type = %q, want text/javascript", ct)
	}

	// Only the embedded files are served.
	for _, path := range []string{"/static/nope.js", "/static/..%2Fserver.go", "/static/%2e%2e%2fembed.go", "/static/"} {
		if res := ts.do(t, http.MethodGet, path, nil, nil); res.Status != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, res.Status)
		}
	}
}

// cspDirective returns the values of one directive of a CSP header.
func cspDirective(csp, name string) []string {
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 && f[0] == name {
			return f[1:]
		}
	}
	return nil
}

func TestFramePage(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced, "https://Shop.Example.com:443", "http://localhost:3000")
	other := ts.newApp(t, store.ModeEnforced, evilOrigin)

	res := ts.do(t, http.MethodGet, "/w/"+app.ID, nil, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /w/%s = %d %s", app.ID, res.Status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	csp := res.Header.Get("Content-Security-Policy")
	got := cspDirective(csp, "frame-ancestors")
	slices.Sort(got)
	if want := []string{"http://localhost:3000", "https://shop.example.com"}; !slices.Equal(got, want) {
		t.Errorf("frame-ancestors = %v, want exactly the app's canonical origins %v (CSP %q)", got, want, csp)
	}
	if len(res.Header.Values("Content-Security-Policy")) != 1 {
		t.Errorf("%d CSP headers; the frame's must replace the default one, not add to it", len(res.Header.Values("Content-Security-Policy")))
	}
	wsOrigin := "ws://" + strings.TrimPrefix(ts.Origin, "http://")
	if got := cspDirective(csp, "connect-src"); !slices.Contains(got, wsOrigin) {
		t.Errorf("connect-src = %v, want it to allow %s", got, wsOrigin)
	}
	if got := cspDirective(csp, "script-src"); !slices.Equal(got, []string{"'self'"}) {
		t.Errorf("script-src = %v, want only 'self'", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", got)
	}
	body := string(res.Body)
	if !strings.Contains(body, `data-app-id="`+app.ID+`"`) {
		t.Errorf("frame page does not carry the app id")
	}
	if !regexp.MustCompile(`src="/static/frame\.js\?v=[0-9a-f]{12}"`).MatchString(body) {
		t.Errorf("frame page does not load the content-hashed frame.js")
	}
	if strings.Contains(body, app.Secret) || strings.Contains(body, app.APIKey) {
		t.Fatalf("frame page leaks a secret")
	}

	// Another app's frame lists only its own origin.
	if got := cspDirective(ts.do(t, http.MethodGet, "/w/"+other.ID, nil, nil).Header.Get("Content-Security-Policy"), "frame-ancestors"); !slices.Equal(got, []string{evilOrigin}) {
		t.Errorf("other app's frame-ancestors = %v, want [%s]", got, evilOrigin)
	}

	// Unknown apps: 404, and framing is refused.
	for _, id := range []string{"app_aaaaaaaaaaaaaaaa", "nope", "%27%3Cscript%3E"} {
		res := ts.do(t, http.MethodGet, "/w/"+id, nil, nil)
		if res.Status != http.StatusNotFound {
			t.Errorf("GET /w/%s = %d, want 404", id, res.Status)
		}
		if got := cspDirective(res.Header.Get("Content-Security-Policy"), "frame-ancestors"); !slices.Equal(got, []string{"'none'"}) {
			t.Errorf("GET /w/%s: frame-ancestors = %v, want 'none'", id, got)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	ts := newTestServer(t)
	for name, ct := range map[string]string{"frame.js": "text/javascript", "frame.css": "text/css"} {
		res := ts.do(t, http.MethodGet, "/static/"+name+"?v=1", nil, nil)
		if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), ct) {
			t.Errorf("GET /static/%s = %d %q, want 200 %s", name, res.Status, res.Header.Get("Content-Type"), ct)
		}
		if got := res.Header.Get("Cache-Control"); !strings.Contains(got, "immutable") {
			t.Errorf("GET /static/%s: Cache-Control = %q, want immutable", name, got)
		}
	}
}

func TestPublicOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://chat.example.com":      "https://chat.example.com",
		"https://Chat.Example.com/":     "https://chat.example.com",
		"https://chat.example.com:443":  "https://chat.example.com",
		"https://chat.example.com:80":   "https://chat.example.com:80",
		"http://127.0.0.1:8080":         "http://127.0.0.1:8080",
		"http://[::1]:80":               "http://[::1]",
		"http://chat.internal":          "http://chat.internal",
		"chat.example.com":              "",
		"https://chat.example.com/path": "",
		"ftp://chat.example.com":        "",
		"https://u:p@chat.example.com":  "",
	} {
		got, err := PublicOrigin(in)
		if want == "" {
			if err == nil {
				t.Errorf("PublicOrigin(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("PublicOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
