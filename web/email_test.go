package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// The unsubscribe link works without signing in: opening it changes
// nothing (mail scanners open links), its button or a one-click POST
// stops the e-mails, and a forged token is refused.
func TestUnsubscribeLink(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	conv := ts.converse(t, fields(app, "user_id", "u1"), "hi")
	var subject string
	if err := ts.rawDB(t).QueryRow(`SELECT subject_id FROM conversations WHERE id = ?`, conv.ID).Scan(&subject); err != nil {
		t.Fatal(err)
	}
	token := ts.DB.UnsubscribeToken(subject)
	link := "/email/unsubscribe?token=" + url.QueryEscape(token)
	b := ts.browser(t) // not signed in
	res := b.get(t, link)
	if res.Status != http.StatusOK || testids(res.Body, "unsubscribe") != 1 || ts.count(t, `SELECT count(*) FROM email_unsubscribes`) != 0 {
		t.Fatalf("GET the link = %d, %d unsubscribed", res.Status, ts.count(t, `SELECT count(*) FROM email_unsubscribes`))
	}
	// A mail program's one-click unsubscribe: a POST to the link, from
	// no site at all.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+link, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || ts.count(t, `SELECT count(*) FROM email_unsubscribes WHERE subject_id = ?`, subject) != 1 {
		t.Fatalf("one-click POST = %d", resp.StatusCode)
	}
	// The page's button, again: still fine.
	if res := b.post(t, "/email/unsubscribe", url.Values{"token": {token}}); res.Status != http.StatusOK || testids(res.Body, "unsubscribed") != 1 {
		t.Fatalf("the button = %d", res.Status)
	}
	if res := b.post(t, "/email/unsubscribe", url.Values{"token": {"mk1:" + strings.Repeat("A", 60)}}); res.Status != http.StatusNotFound || testids(res.Body, "unsubscribe-invalid") != 1 {
		t.Fatalf("a forged token = %d", res.Status)
	}
}

// The settings page's e-mail section: it says when the server sends no
// e-mail, and saves a member's own choice and the app's waits.
func TestEmailSettings(t *testing.T) {
	ts := newTestServer(t)
	ann, bob := ts.newOwner(t, "ann"), ts.newOwner(t, "bob")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	if err := ts.DB.AddMember(context.Background(), app.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	b := ts.signIn(t, ann)
	page := b.get(t, settingsPath(app))
	if testids(page.Body, "email-off") != 1 || !strings.Contains(string(page.Body), `value="on" checked data-testid="email-alerts"`) {
		t.Fatalf("without SMTP the page must say e-mail is off, with alerts on by default")
	}
	if res := b.post(t, settingsPath(app, "email-alerts"), url.Values{}); res.Status != http.StatusBadRequest {
		t.Errorf("no choice = %d, want 400", res.Status)
	}
	b.post(t, settingsPath(app, "email-alerts"), url.Values{"alerts": {"off"}}).wantRedirect(t, settingsPath(app)+"?notice=email-alerts")
	if on, _ := ts.DB.EmailAlerts(context.Background(), app.ID, ann.ID); on {
		t.Error("Ann's alerts are still on")
	}
	if on, _ := ts.DB.EmailAlerts(context.Background(), app.ID, bob.ID); !on {
		t.Error("Ann's choice turned Bob's alerts off")
	}
	b.post(t, settingsPath(app, "email-waits"), url.Values{"agent_minutes": {"15"}, "user_minutes": {""}}).wantRedirect(t, settingsPath(app)+"?notice=email-waits")
	a, err := ts.DB.App(context.Background(), app.ID)
	if err != nil || a.AgentEmailAfter != 15*time.Minute || a.UserEmailAfter != 0 {
		t.Fatalf("waits %v %v (%v)", a.AgentEmailAfter, a.UserEmailAfter, err)
	}
	for _, bad := range []string{"0", "abc", "20000"} {
		if res := b.post(t, settingsPath(app, "email-waits"), url.Values{"agent_minutes": {bad}}); res.Status != http.StatusBadRequest || testids(res.Body, "email-error") != 1 {
			t.Errorf("wait %q: %d", bad, res.Status)
		}
	}
	on := newTestServer(t, func(c *Config) { c.MailOn = true })
	o := on.newOwner(t, "cy")
	oapp := on.ownerApp(t, o, store.ModeMonitor)
	if page := on.signIn(t, o).get(t, settingsPath(oapp)); testids(page.Body, "email-off") != 0 {
		t.Error("with SMTP the page still says e-mail is off")
	}
}
