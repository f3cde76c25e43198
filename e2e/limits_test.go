package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/web"
)

// TestTooManySessionsFromOneNetwork: when an address has used up its
// session budget, a new tab's widget says so, and connects by itself once
// the bucket has refilled.
func TestTooManySessionsFromOneNetwork(t *testing.T) {
	const refill = 3 * time.Second
	e := newEnvLimits(t, func(l *web.Limits) { l.SessionsPerIP = ratelimit.Rate{Burst: 1, Every: refill} })

	first := e.newTab(t, "first")
	firstFrame, _ := e.openChat(t, first, "first", "u1")

	// The browser and this test share 127.0.0.1: use up whatever has
	// refilled since, so the second tab meets an empty bucket.
	e.drainSessions(t)
	second := e.newTab(t, "second")
	navigate(t, second, e.pageURL(e.hostURL(), "u2"))
	do(t, second, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, second, "second")
	eventually(t, frame, "the rate-limit notice", js[string](`document.querySelector('[data-testid="notice"]').textContent`),
		func(s string) bool { return strings.Contains(s, "Too many chats are starting from your network") })

	waitConnected(t, frame) // within waitTimeout, well after the refill
	if notice, err := js[string](`document.querySelector('[data-testid="notice"]').textContent`)(frame); err != nil || notice != "" {
		t.Fatalf("notice after connecting = %q, %v; want it gone", notice, err)
	}
	waitConnected(t, firstFrame)
}

// drainSessions asks for sessions from this process until the server
// refuses one with 429.
func (e *env) drainSessions(t *testing.T) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"app_id": e.app.ID, "parent_origin": e.hostURL()})
	for range 100 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.parleyURL+"/api/widget/sessions", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", e.parleyURL)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			return
		}
	}
	t.Fatal("the session limit never refused a request")
}
