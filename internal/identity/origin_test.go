package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalOrigin(t *testing.T) {
	good := []struct{ in, want string }{
		{"https://shop.example.com", "https://shop.example.com"},
		{"HTTPS://Shop.Example.COM", "https://shop.example.com"},
		{"https://shop.example.com:443", "https://shop.example.com"},
		{"https://shop.example.com:8443", "https://shop.example.com:8443"},
		{"http://localhost:8081", "http://localhost:8081"},
		{"http://127.0.0.1", "http://127.0.0.1"},
		{"http://localhost:80", "http://localhost"},
		{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example"},
		{"https://[::1]:8443", "https://[::1]:8443"},
	}
	for _, tc := range good {
		got, err := CanonicalOrigin(tc.in)
		if err != nil {
			t.Errorf("CanonicalOrigin(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("CanonicalOrigin(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	bad := []struct{ in, why string }{
		{"", "empty"},
		{"shop.example.com", "scheme"},
		{"ftp://shop.example.com", "scheme"},
		{"http://shop.example.com", "https"},
		{"https://shop.example.com/", "path"},
		{"https://shop.example.com/path", "path"},
		{"https://a.example/path;x", "';'"},
		{"https://shop.example.com?x=1", "query"},
		{"https://shop.example.com#frag", "fragment"},
		{"https://shop.example.com#", "fragment"},
		{"*", "wildcard"},
		{"https://*.example.com", "wildcard"},
		{"https://a.example, https://b.example", "one origin per entry"},
		{"https://a.example,https://b.example", "','"},
		{"https://a.example;https://b.example", "';'"},
		{" https://a.example", "whitespace"},
		{"https://a.example\n", "whitespace"},
		{"https://user:pw@a.example", "user info"},
		{"https://a.example:0", "port"},
		{"https://a.example:99999", "port"},
		{"https://a.example:", "port"},
		{"https://a..example", "label"},
		{"https://-a.example", "'-'"},
		{"https://bücher.example", "non-ASCII"},
		{"https://a_b.example", "host contains"},
		{"null", "scheme"},
		{"https://" + strings.Repeat("a", 300) + ".example", "255"},
	}
	for _, tc := range bad {
		_, err := CanonicalOrigin(tc.in)
		if err == nil {
			t.Errorf("CanonicalOrigin(%q) accepted, want an error about %s", tc.in, tc.why)
			continue
		}
		if !errors.Is(err, ErrOrigin) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("CanonicalOrigin(%q) = %v, want an ErrOrigin about %s", tc.in, err, tc.why)
		}
	}
}

// FuzzCanonicalOrigin checks the properties the allowlist relies on: the
// result is stable under a second pass, and it never contains anything
// that could smuggle a second origin or a path into a CSP header.
func FuzzCanonicalOrigin(f *testing.F) {
	for _, s := range []string{"https://shop.example.com", "http://localhost:8081", "https://a.example/path;x",
		"HTTPS://A.EXAMPLE:443", "https://[::1]:1", "*", "https://a.example 'unsafe-inline'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := CanonicalOrigin(raw)
		if err != nil {
			return
		}
		again, err := CanonicalOrigin(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", raw, got, again, err)
		}
		if strings.ContainsAny(got, " ;,*'\"/?#\t\n") && !strings.HasPrefix(got, "http") {
			t.Fatalf("unsafe origin %q from %q", got, raw)
		}
		rest := got[strings.Index(got, "://")+3:]
		if strings.ContainsAny(rest, " ;,*'\"/?#@\\") {
			t.Fatalf("unsafe characters in %q from %q", got, raw)
		}
		if !strings.HasPrefix(got, "https://") && !strings.HasPrefix(got, "http://localhost") && !strings.HasPrefix(got, "http://127.0.0.1") {
			t.Fatalf("insecure origin %q accepted from %q", got, raw)
		}
	})
}
