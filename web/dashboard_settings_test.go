package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

func settingsPath(app testApp, rest ...string) string {
	p := "/dashboard/apps/" + app.ID + "/settings"
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// reveal asks for the app's current identity secret, as the Reveal button does.
func (b *browser) reveal(t *testing.T, app testApp) string {
	t.Helper()
	res := b.postWith(t, settingsPath(app, "secret", "reveal"), nil, http.Header{"Accept": {"application/json"}})
	res.wantStatus(t, http.StatusOK)
	var out struct{ Secret string }
	res.decode(t, &out)
	if len(out.Secret) != 64 {
		t.Fatalf("revealed secret %q, want 64 hex characters", out.Secret)
	}
	return out.Secret
}

// hashSession creates a session for user-1 with a user_hash made with
// secret and returns the response.
func (ts *testServer) hashSession(t *testing.T, app testApp, secret string) httpResult {
	t.Helper()
	return ts.postSession(t, fields(app, "user_id", "user-1", "user_hash", identity.UserHash(secret, "user-1")))
}

func (ts *testServer) wantHashAccepted(t *testing.T, app testApp, secret, what string) {
	t.Helper()
	res := ts.hashSession(t, app, secret)
	if res.Status != http.StatusCreated {
		t.Fatalf("%s: session = %d %s, want 201", what, res.Status, res.Body)
	}
	var s sessionJSON
	res.decode(t, &s)
	if !s.Verified {
		t.Fatalf("%s: session is not verified", what)
	}
}

func (ts *testServer) wantHashRefused(t *testing.T, app testApp, secret, what string) {
	t.Helper()
	res := ts.hashSession(t, app, secret)
	if res.Status != http.StatusUnauthorized {
		t.Fatalf("%s: session = %d %s, want 401 identity_hash_invalid", what, res.Status, res.Body)
	}
	res.wantError(t, http.StatusUnauthorized, "identity_hash_invalid")
}

var secretIDRe = regexp.MustCompile(`name="secret_id" value="(isk_[a-z2-7]+)"`)

func TestDashboardSettingsSave(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)

	page := b.get(t, settingsPath(app))
	page.wantStatus(t, http.StatusOK)
	for _, want := range []string{`value="Test shop"`, shopOrigin + "</textarea>", `value="monitor" checked`, `app_id: "` + app.ID + `"`, ts.URL + "/widget.js"} {
		if !strings.Contains(text(page.Body), want) {
			t.Errorf("settings page lacks %q", want)
		}
	}
	for _, lang := range []string{"Go", "Node", "Python", "Ruby", "PHP"} {
		if !strings.Contains(string(page.Body), "<summary>"+lang+"</summary>") {
			t.Errorf("settings page has no %s user_hash example", lang)
		}
	}

	// A bad origin refuses the whole form, says why, and keeps what was typed.
	before := ts.state(t)
	res := b.post(t, settingsPath(app), url.Values{"name": {"Renamed"}, "identity_mode": {"enforced"},
		"origins": {"https://new.example.com\nftp://files.example.com\nhttps://new.example.com:8443/x"}})
	res.wantStatus(t, http.StatusBadRequest)
	for _, want := range []string{`"ftp://files.example.com": scheme must be https`, `"https://new.example.com:8443/x": must not have a path`, "ftp://files.example.com\nhttps://new.example.com:8443/x</textarea>", `value="Renamed"`} {
		if !strings.Contains(text(res.Body), want) {
			t.Errorf("refused form lacks %q: %s", want, res.Body)
		}
	}
	for _, form := range []url.Values{
		{"name": {"Renamed"}, "origins": {"https://new.example.com"}},                                                     // no mode: never changed silently
		{"name": {"Renamed"}, "origins": {"https://new.example.com"}, "identity_mode": {"off"}},                           // unknown mode
		{"name": {""}, "origins": {"https://new.example.com"}, "identity_mode": {"enforced"}},                             // no name
		{"name": {"Renamed"}, "origins": {" \n "}, "identity_mode": {"enforced"}},                                         // no origins
		{"name": {"Renamed"}, "origins": {"https://*.example.com"}, "identity_mode": {"enforced"}},                        // wildcard
		{"name": {"Renamed"}, "origins": {"https://a.example.com, https://b.example.com"}, "identity_mode": {"enforced"}}, // two on a line
	} {
		b.post(t, settingsPath(app), form).wantStatus(t, http.StatusBadRequest)
	}
	ts.wantState(t, before, "refused settings")
	ts.session(t, fields(app)) // the old origin still works

	res = b.post(t, settingsPath(app), url.Values{"name": {"  Renamed  "}, "identity_mode": {"enforced"},
		"origins": {"HTTPS://New.Example.com:443\n\nhttp://localhost:8080\nhttps://new.example.com"}})
	res.wantRedirect(t, settingsPath(app)+"?notice=saved")
	got, err := ts.DB.App(context.Background(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Renamed" || got.IdentityMode != "enforced" || strings.Join(got.Origins, " ") != "http://localhost:8080 https://new.example.com" {
		t.Fatalf("saved app = %q %q %q", got.Name, got.IdentityMode, got.Origins)
	}
	page = b.get(t, res.Header.Get("Location"))
	if testids(page.Body, "notice") != 1 || !strings.Contains(string(page.Body), "Settings saved.") {
		t.Fatalf("no saved notice: %s", page.Body)
	}
	// What the owner relies on: the new allowlist and mode are in force.
	ts.postSession(t, fields(app)).wantError(t, http.StatusForbidden, "parent_origin_not_allowed")
	moved := testApp{ID: app.ID, Secret: app.Secret, Origins: []string{"https://new.example.com"}}
	ts.session(t, fields(moved))
	ts.postSession(t, fields(moved, "user_id", "u1")).wantError(t, http.StatusUnauthorized, "identity_hash_missing")

	// Only fixed notices are shown; the URL can't put words in the page.
	page = b.get(t, settingsPath(app)+"?notice=Your+account+is+locked")
	if strings.Contains(string(page.Body), "locked") || testids(page.Body, "notice") != 0 {
		t.Fatalf("the notice parameter is shown as text")
	}
	// The name the owner typed is escaped wherever it appears.
	b.post(t, settingsPath(app), url.Values{"name": {`</title><script>alert(1)</script>`}, "identity_mode": {"monitor"},
		"origins": {shopOrigin}}).wantStatus(t, http.StatusSeeOther)
	for _, p := range []string{settingsPath(app), "/dashboard", "/dashboard/apps/" + app.ID} {
		if body := string(b.get(t, p).Body); strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)") {
			t.Fatalf("%s does not escape the app name: %s", p, body)
		}
	}
}

func TestDashboardIdentityStats(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	other := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)

	stats := func() string {
		t.Helper()
		page := string(b.get(t, settingsPath(app)).Body)
		i := strings.Index(page, `data-testid="identity-stats"`)
		if i < 0 {
			t.Fatalf("no identity stats on the settings page")
		}
		return strings.Join(strings.Fields(page[i:i+strings.Index(page[i:], "</p>")]), " ")
	}
	if s := stats(); !strings.Contains(s, "0 sessions from identified users") || strings.Contains(s, "safe to enforce") {
		t.Fatalf("stats without sessions: %s", s)
	}
	for range 3 {
		ts.session(t, verifiedUser(app, "user-1"))
	}
	ts.session(t, fields(app, "user_id", "user-2")) // no hash: unverified
	ts.session(t, fields(app))                      // anonymous
	ts.session(t, verifiedUser(other, "user-9"))    // another app's
	s := stats()
	for _, want := range []string{"4 sessions from identified users, 75% verified", "(3 verified, 1 unverified)", "1 anonymous", "Enforce once this reaches 100%"} {
		if !strings.Contains(s, want) {
			t.Errorf("stats %q lack %q", s, want)
		}
	}
	// Only verified identified sessions: the page says enforcing is safe.
	only := ts.ownerApp(t, ann, store.ModeMonitor)
	ts.session(t, verifiedUser(only, "user-1"))
	ts.session(t, fields(only))
	page := string(b.get(t, settingsPath(only)).Body)
	if !strings.Contains(page, "100% verified") || !strings.Contains(page, "it looks safe to enforce") {
		t.Fatalf("all-verified app's stats: %s", page)
	}
}

func TestDashboardSecretCreatedDate(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)

	// The owner sees how old the current secret is (to judge whether it
	// is due for rotation): on the page right after creating an app, and
	// on the settings page before and after rotating.
	check := func(step string, res httpResult) {
		t.Helper()
		page := string(res.Body)
		if i := strings.Index(page, "0001-01-01"); i >= 0 {
			t.Fatalf("%s: the settings page shows a zero date: …%s…", step, page[max(0, i-120):i+30])
		}
		if today := time.Now().UTC().Format("2006-01-02"); !strings.Contains(page, "created "+today) {
			t.Fatalf("%s: the current secret's creation date (%s) is not shown", step, today)
		}
	}
	created := b.post(t, "/dashboard/apps", url.Values{"name": {"New"}, "origins": {shopOrigin}, "identity_mode": {"monitor"}})
	created.wantStatus(t, http.StatusCreated)
	check("app just created", created)
	check("settings page", b.get(t, settingsPath(app)))
	b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {"0"}}).wantStatus(t, http.StatusSeeOther)
	check("after rotation", b.get(t, settingsPath(app)))
}

func TestDashboardSecretReveal(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)

	page := b.get(t, settingsPath(app))
	page.wantStatus(t, http.StatusOK)
	if strings.Contains(string(page.Body), app.Secret) {
		t.Fatalf("the settings page contains the identity secret before it is revealed")
	}
	if testids(page.Body, "secret-reveal") != 1 || !strings.Contains(string(page.Body), `data-reveal="`+settingsPath(app, "secret", "reveal")+`"`) {
		t.Fatalf("no reveal button pointing at the reveal URL")
	}

	res := b.postWith(t, settingsPath(app, "secret", "reveal"), nil, http.Header{"Accept": {"application/json"}})
	res.wantStatus(t, http.StatusOK)
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("reveal Cache-Control = %q, want no-store", cc)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("reveal Content-Type = %q", ct)
	}
	var out struct{ Secret string }
	res.decode(t, &out)
	if out.Secret != app.Secret {
		t.Fatalf("revealed %q, want the app's secret", out.Secret)
	}
	// It is POST-only: no link, prefetch or history entry can hold it.
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		r := b.do(t, method, settingsPath(app, "secret", "reveal"), nil, nil)
		if r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed {
			t.Fatalf("%s reveal = %d, want 404 or 405", method, r.Status)
		}
		if strings.Contains(string(r.Body), app.Secret) {
			t.Fatalf("%s reveal answered with the secret", method)
		}
	}
}

func TestDashboardSecretRotateUntilRevoked(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	other := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)
	old := app.Secret
	ts.wantHashAccepted(t, app, old, "before rotation")

	b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {"0"}}).
		wantRedirect(t, settingsPath(app)+"?notice=rotated")
	cur := b.reveal(t, app)
	if cur == old {
		t.Fatalf("rotation kept the secret")
	}
	// Backends not yet redeployed keep working; updated ones work too.
	ts.wantHashAccepted(t, app, old, "old secret after rotation (until revoked)")
	ts.wantHashAccepted(t, app, cur, "new secret")
	ts.wantHashRefused(t, other, old, "another app")

	page := b.get(t, settingsPath(app)+"?notice=rotated")
	if testids(page.Body, "previous-secret") != 1 || !strings.Contains(string(page.Body), "accepted until you revoke it") {
		t.Fatalf("settings page does not list the previous secret: %s", page.Body)
	}
	if strings.Contains(string(page.Body), old) || strings.Contains(string(page.Body), cur) {
		t.Fatalf("settings page shows a secret's value")
	}
	m := secretIDRe.FindStringSubmatch(string(page.Body))
	if m == nil {
		t.Fatalf("no revoke form with a secret_id: %s", page.Body)
	}
	prevID := m[1]

	// The current secret can't be revoked; another app's secret isn't found.
	var currentID, otherPrevID string
	db := ts.rawDB(t)
	if err := db.QueryRow(`SELECT id FROM identity_secrets WHERE app_id = ? AND retired_at IS NULL`, app.ID).Scan(&currentID); err != nil {
		t.Fatal(err)
	}
	b.post(t, settingsPath(other, "secret", "rotate"), url.Values{"previous_valid_for": {"0"}}).wantStatus(t, http.StatusSeeOther)
	if err := db.QueryRow(`SELECT id FROM identity_secrets WHERE app_id = ? AND retired_at IS NOT NULL`, other.ID).Scan(&otherPrevID); err != nil {
		t.Fatal(err)
	}
	before := ts.state(t)
	res := b.post(t, settingsPath(app, "secret", "revoke"), url.Values{"secret_id": {currentID}})
	res.wantStatus(t, http.StatusBadRequest)
	if !strings.Contains(string(res.Body), "cannot be revoked") {
		t.Fatalf("revoking the current secret: %s", res.Body)
	}
	b.post(t, settingsPath(app, "secret", "revoke"), url.Values{"secret_id": {otherPrevID}}).wantStatus(t, http.StatusNotFound)
	b.post(t, settingsPath(app, "secret", "revoke"), url.Values{"secret_id": {"isk_nope"}}).wantStatus(t, http.StatusNotFound)
	ts.wantState(t, before, "refused revocations")
	ts.wantHashAccepted(t, app, old, "old secret after refused revocations")

	b.post(t, settingsPath(app, "secret", "revoke"), url.Values{"secret_id": {prevID}}).wantRedirect(t, settingsPath(app)+"?notice=revoked")
	ts.wantHashRefused(t, app, old, "old secret after revocation")
	ts.wantHashAccepted(t, app, cur, "new secret after revocation")
	if testids(b.get(t, settingsPath(app)).Body, "previous-secret") != 0 {
		t.Fatalf("the revoked secret is still listed")
	}
}

func TestDashboardSecretRotateNow(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)

	b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {"now"}}).wantRedirect(t, settingsPath(app)+"?notice=rotated")
	ts.wantHashRefused(t, app, app.Secret, "old secret rotated out now")
	cur := b.reveal(t, app)
	ts.wantHashAccepted(t, app, cur, "new secret")
	if testids(b.get(t, settingsPath(app)).Body, "previous-secret") != 0 {
		t.Fatalf("a secret stopped at once is listed as still accepted")
	}
}

func TestDashboardSecretRotateWithExpiry(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)

	before := ts.state(t)
	for _, bad := range []string{"", "-1h", "forever", "2400h", "1y"} {
		res := b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {bad}})
		res.wantStatus(t, http.StatusBadRequest)
		if !strings.Contains(string(res.Body), "Choose how long the old secret keeps working") {
			t.Fatalf("previous_valid_for=%q: %s", bad, res.Body)
		}
	}
	ts.wantState(t, before, "refused rotations")
	if b.reveal(t, app) != app.Secret {
		t.Fatalf("a refused rotation changed the secret")
	}

	b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {"24h"}}).wantStatus(t, http.StatusSeeOther)
	ts.wantHashAccepted(t, app, app.Secret, "old secret within its 24 hours")
	page := b.get(t, settingsPath(app))
	if testids(page.Body, "previous-secret") != 1 || !strings.Contains(string(page.Body), "accepted until 20") {
		t.Fatalf("previous secret with an expiry is not listed with it: %s", page.Body)
	}
	// Past its expiry it stops, without anyone revoking it.
	if _, err := ts.rawDB(t).Exec(`UPDATE identity_secrets SET expires_at = ? WHERE app_id = ? AND retired_at IS NOT NULL`, 1, app.ID); err != nil {
		t.Fatal(err)
	}
	ts.wantHashRefused(t, app, app.Secret, "old secret past its expiry")
}

func TestDashboardAPIKeyRotate(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	ts.api(t, app.APIKey, http.MethodGet, "/conversations", nil).wantStatus(t, http.StatusOK)

	res := b.post(t, settingsPath(app, "api-key", "rotate"), nil)
	res.wantStatus(t, http.StatusOK)
	keys := apiKeyRe.FindAllString(string(res.Body), -1)
	if len(keys) != 1 || keys[0] == app.APIKey || testids(res.Body, "new-api-key") != 1 {
		t.Fatalf("rotation page shows keys %q, want one new key", keys)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("the page with the new key has Cache-Control %q, want no-store", cc)
	}
	ts.api(t, app.APIKey, http.MethodGet, "/conversations", nil).wantError(t, http.StatusUnauthorized, "unauthorized")
	ts.api(t, keys[0], http.MethodGet, "/conversations", nil).wantStatus(t, http.StatusOK)
	if apiKeyRe.Match(b.get(t, settingsPath(app)).Body) {
		t.Fatalf("the key is shown again on the settings page")
	}
}

func TestDashboardMembers(t *testing.T) {
	ts := newTestServer(t)
	ann, bob := ts.newOwner(t, "Ann"), ts.newOwner(t, "Bob")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	a, bb := ts.signIn(t, ann), ts.signIn(t, bob)
	inbox := "/dashboard/apps/" + app.ID
	bb.get(t, inbox).wantStatus(t, http.StatusNotFound)

	// Unknown email: nothing added, and the page says why.
	before := ts.state(t)
	res := a.post(t, settingsPath(app, "members"), url.Values{"email": {"nobody@example.com"}})
	res.wantStatus(t, http.StatusBadRequest)
	if testids(res.Body, "member-error") != 1 || !strings.Contains(string(res.Body), "no owner has the email nobody@example.com") {
		t.Fatalf("unknown member email: %s", res.Body)
	}
	a.post(t, settingsPath(app, "members"), url.Values{"email": {"not an email"}}).wantStatus(t, http.StatusBadRequest)
	// The last member can't leave: nobody could reach the app again.
	res = a.post(t, settingsPath(app, "members", "remove"), url.Values{"owner_id": {ann.ID}})
	res.wantStatus(t, http.StatusBadRequest)
	if !strings.Contains(string(res.Body), "an app must keep at least one member") {
		t.Fatalf("removing the last member: %s", res.Body)
	}
	a.post(t, settingsPath(app, "members", "remove"), url.Values{"owner_id": {bob.ID}}).wantStatus(t, http.StatusNotFound)
	ts.wantState(t, before, "refused member changes")

	// Adding by email (any case) gives Bob the app.
	a.post(t, settingsPath(app, "members"), url.Values{"email": {" BOB@example.com "}}).wantRedirect(t, settingsPath(app)+"?notice=member-added")
	bb.get(t, inbox).wantStatus(t, http.StatusOK)
	if !strings.Contains(string(bb.get(t, "/dashboard").Body), app.ID) {
		t.Fatalf("Bob's app list lacks the app he was added to")
	}
	page := a.get(t, settingsPath(app))
	if testids(page.Body, "member") != 2 || !strings.Contains(string(page.Body), bob.Email) {
		t.Fatalf("members list: %s", page.Body)
	}
	// Adding twice is harmless.
	a.post(t, settingsPath(app, "members"), url.Values{"email": {bob.Email}}).wantStatus(t, http.StatusSeeOther)

	// Removed, Bob is back to 404 everywhere under the app, and his open
	// inbox socket is closed.
	sock := bb.inbox(t, app.ID)
	a.post(t, settingsPath(app, "members", "remove"), url.Values{"owner_id": {bob.ID}}).wantRedirect(t, settingsPath(app)+"?notice=member-removed")
	sock.expectClose(4001)
	bb.get(t, inbox).wantStatus(t, http.StatusNotFound)
	bb.get(t, settingsPath(app)).wantStatus(t, http.StatusNotFound)
	bb.post(t, settingsPath(app, "members"), url.Values{"email": {bob.Email}}).wantStatus(t, http.StatusNotFound)
	if strings.Contains(string(bb.get(t, "/dashboard").Body), app.ID) {
		t.Fatalf("a removed member still sees the app")
	}
	if _, res, err := bb.agentSocket(app.ID, ts.Origin); err == nil || res == nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("a removed member's inbox socket: %v, want 404", err)
	}

	// A member may leave an app that keeps another member.
	a.post(t, settingsPath(app, "members"), url.Values{"email": {bob.Email}}).wantStatus(t, http.StatusSeeOther)
	a.post(t, settingsPath(app, "members", "remove"), url.Values{"owner_id": {ann.ID}}).wantRedirect(t, "/dashboard")
	a.get(t, inbox).wantStatus(t, http.StatusNotFound)
	bb.get(t, inbox).wantStatus(t, http.StatusOK)
}
