package web

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// Nothing secret reaches the log: not session tokens, API keys, user
// hashes, identity secrets or passwords, and not when a careless client
// puts them in a URL's query string either.
func TestNoSecretsInLogs(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	sess := ts.session(t, verifiedUser(app, "u1"))
	badHash := strings.Repeat("ab", 32)
	// Monitor mode logs a warning for a wrong hash: it must name the app,
	// not the hash.
	ts.session(t, fields(app, "user_id", "u2", "user_hash", badHash))

	secrets := []string{sess.Token, app.APIKey, app.Secret, badHash, ann.Password}
	ts.do(t, http.MethodGet, "/api/widget/ws?token="+sess.Token, nil, nil)
	ts.do(t, http.MethodGet, "/api/v1/conversations?api_key="+app.APIKey+"&secret="+app.Secret,
		http.Header{"Authorization": {"Bearer " + app.APIKey}}, nil)
	ts.do(t, http.MethodGet, "/w/"+app.ID+"?user_hash="+badHash+"#x", nil, nil)
	ts.connect(t, sess.Token).conn.Close()
	b := ts.signIn(t, ann)
	secrets = append(secrets, b.token())
	b.get(t, "/dashboard?session="+b.token())
	if got := b.reveal(t, app); got != app.Secret {
		t.Fatalf("revealed %q, want the app's secret", got)
	}
	ts.browser(t).login(t, ann.Email, ann.Password+"typo", "")

	lines := ts.logs.all()
	if len(lines) < 8 {
		t.Fatalf("only %d log lines; the access log is not being written", len(lines))
	}
	for _, l := range lines {
		for _, s := range secrets {
			if strings.Contains(l, s) {
				t.Errorf("log line contains a secret (%.8s…): %s", s, l)
			}
		}
	}
	if !ts.logs.contains("/api/widget/ws") || !ts.logs.contains("invalid user_hash") {
		t.Error("the requests above were not logged at all; this test would prove nothing")
	}
}

var (
	inlineScript  = regexp.MustCompile(`(?is)<script\b[^>]*>\s*[^<\s]`)
	inlineStyle   = regexp.MustCompile(`(?is)<style\b|<[a-z][^>]*\sstyle\s*=`)
	inlineHandler = regexp.MustCompile(`(?is)<[a-z][^>]*\son[a-z]+\s*=`)
)

// Every HTML page Parley serves works under its own strict CSP, so none of
// them may need inline script, inline style or event-handler attributes;
// and no CSP may allow them.
func TestPagesHaveNoInlineCode(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	conv := ts.converse(t, fields(app), `<b style="color:red" onclick="x()">hi</b>`)
	b := ts.signIn(t, ann)
	base := "/dashboard/apps/" + app.ID
	pages := map[string]httpResult{
		"frame":        ts.do(t, http.MethodGet, "/w/"+app.ID, nil, nil),
		"login":        ts.browser(t).get(t, "/login"),
		"apps":         b.get(t, "/dashboard"),
		"inbox":        b.get(t, base),
		"conversation": b.get(t, base+"/conversations/"+conv.ID),
		"settings":     b.get(t, base+"/settings"),
		"not found":    b.get(t, base+"/nope"),
	}
	for name, res := range pages {
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: Content-Type %q (status %d), want an HTML page", name, res.Header.Get("Content-Type"), res.Status)
			continue
		}
		body := string(res.Body)
		for what, re := range map[string]*regexp.Regexp{"inline script": inlineScript, "inline style": inlineStyle, "event handler": inlineHandler} {
			if m := re.FindString(body); m != "" {
				t.Errorf("%s page has %s: %q", name, what, m)
			}
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, bad := range []string{"unsafe-inline", "unsafe-eval", "unsafe-hashes", "*"} {
			if strings.Contains(csp, bad) {
				t.Errorf("%s page CSP %q allows %s", name, csp, bad)
			}
		}
		if got := cspDirective(csp, "script-src"); len(got) != 1 || got[0] != "'self'" {
			t.Errorf("%s page script-src %v, want 'self' only", name, got)
		}
		if got := cspDirective(csp, "base-uri"); len(got) != 1 || got[0] != "'none'" {
			t.Errorf("%s page base-uri %v, want 'none'", name, got)
		}
	}
}
