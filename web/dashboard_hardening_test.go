package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// The dashboard's side of identity JWTs and the app settings that go with
// them: the two checkboxes, turning the widget off and on, the kid and
// the minting examples, and the "signed" marks in the inbox.

// settingsForm is the settings form as the page posts it; a checkbox
// that is not ticked is left out, as browsers do.
func settingsForm(requireJWT, refuseAnonymous bool) url.Values {
	f := url.Values{"name": {"Test shop"}, "origins": {shopOrigin}, "identity_mode": {"enforced"}}
	if requireJWT {
		f.Set("require_jwt", "on")
	}
	if refuseAnonymous {
		f.Set("refuse_anonymous", "on")
	}
	return f
}

func (ts *testServer) appSettings(t *testing.T, app testApp) *store.App {
	t.Helper()
	a, err := ts.DB.App(context.Background(), app.ID)
	if err != nil {
		t.Fatalf("App: %v", err)
	}
	return a
}

// checkbox reports whether the page's checkbox named name is ticked.
func checkbox(t *testing.T, body []byte, name string) bool {
	t.Helper()
	s := string(body)
	i := strings.Index(s, `name="`+name+`"`)
	if i < 0 {
		t.Fatalf("page has no %s checkbox", name)
	}
	start := strings.LastIndex(s[:i], "<input")
	end := i + strings.Index(s[i:], ">")
	return strings.Contains(s[start:end], " checked")
}

func TestDashboardSettingsJWTCheckboxes(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)

	page := b.get(t, settingsPath(app))
	page.wantStatus(t, http.StatusOK)
	if checkbox(t, page.Body, "require_jwt") || checkbox(t, page.Body, "refuse_anonymous") {
		t.Fatal("a new app's checkboxes are ticked")
	}
	for _, want := range []string{"Require identity JWTs (refuse plain user_hash)", "Refuse anonymous visitors"} {
		if !strings.Contains(text(page.Body), want) {
			t.Errorf("settings page lacks %q", want)
		}
	}

	for _, tc := range []struct{ requireJWT, refuseAnonymous bool }{{true, true}, {false, true}, {true, false}, {false, false}} {
		b.post(t, settingsPath(app), settingsForm(tc.requireJWT, tc.refuseAnonymous)).wantRedirect(t, settingsPath(app)+"?notice=saved")
		a := ts.appSettings(t, app)
		if a.RequireJWT != tc.requireJWT || a.RefuseAnonymous != tc.refuseAnonymous {
			t.Fatalf("saved %+v: require_jwt=%v refuse_anonymous=%v", tc, a.RequireJWT, a.RefuseAnonymous)
		}
		page := b.get(t, settingsPath(app))
		if checkbox(t, page.Body, "require_jwt") != tc.requireJWT || checkbox(t, page.Body, "refuse_anonymous") != tc.refuseAnonymous {
			t.Fatalf("after saving %+v the page shows other checkboxes", tc)
		}
	}

	// The settings take effect at once.
	b.post(t, settingsPath(app), settingsForm(true, true)).wantStatus(t, http.StatusSeeOther)
	ts.postSession(t, verifiedUser(app, "user-1")).wantError(t, http.StatusUnauthorized, "identity_jwt_required")
	ts.postSession(t, fields(app)).wantError(t, http.StatusForbidden, "anonymous_not_allowed")
	ts.session(t, jwtUser(app, ts.userJWT(t, app, "user-1")))

	// A refused form keeps what was ticked, and changes nothing.
	form := settingsForm(false, true)
	form.Set("origins", "ftp://files.example.com")
	res := b.post(t, settingsPath(app), form)
	res.wantStatus(t, http.StatusBadRequest)
	if checkbox(t, res.Body, "require_jwt") || !checkbox(t, res.Body, "refuse_anonymous") {
		t.Fatal("the refused form does not show the checkboxes as they were posted")
	}
	if a := ts.appSettings(t, app); !a.RequireJWT || !a.RefuseAnonymous {
		t.Fatal("a refused form changed the checkboxes")
	}

	// Other settings forms leave the checkboxes alone.
	b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {"24h"}}).wantStatus(t, http.StatusSeeOther)
	b.post(t, settingsPath(app, "api-key", "rotate"), nil).wantStatus(t, http.StatusOK)
	if a := ts.appSettings(t, app); !a.RequireJWT || !a.RefuseAnonymous {
		t.Fatal("rotating a secret or the API key changed the checkboxes")
	}
}

func TestDashboardWidgetOffAndOn(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)
	conv := ts.converse(t, verifiedUser(app, "user-1"), "hello")

	page := b.get(t, settingsPath(app))
	if testids(page.Body, "widget-disable") != 1 || testids(page.Body, "widget-enable") != 0 {
		t.Fatal("settings page of an enabled app lacks the Turn off button, or shows Turn on")
	}
	if !strings.Contains(text(page.Body), "ends every open chat at once") {
		t.Error("settings page does not say what turning the widget off does")
	}

	b.post(t, settingsPath(app, "disable"), nil).wantRedirect(t, settingsPath(app)+"?notice=disabled")
	if !ts.appSettings(t, app).Disabled() {
		t.Fatal("app not disabled")
	}
	page = b.get(t, settingsPath(app)+"?notice=disabled")
	if testids(page.Body, "widget-enable") != 1 || testids(page.Body, "widget-disable") != 0 || !strings.Contains(text(page.Body), "The widget is off") {
		t.Fatalf("settings page of a disabled app: %s", page.Body)
	}
	ts.postSession(t, verifiedUser(app, "user-1")).wantError(t, http.StatusForbidden, "app_disabled")
	// Turning it off twice keeps it off.
	b.post(t, settingsPath(app, "disable"), nil).wantRedirect(t, settingsPath(app)+"?notice=disabled")

	// The open chat has ended, but the inbox, replies and the server API go on.
	conv.Widget.conn.Close()
	b.get(t, convPath(app, conv.ID)).wantStatus(t, http.StatusOK)
	b.post(t, convPath(app, conv.ID, "messages"), url.Values{"body": {"we are closed"}}).wantStatus(t, http.StatusSeeOther)
	if msgs := ts.apiMessages(t, app, conv.ID); len(msgs) != 2 {
		t.Fatalf("server API lists %d messages, want 2", len(msgs))
	}

	b.post(t, settingsPath(app, "enable"), nil).wantRedirect(t, settingsPath(app)+"?notice=enabled")
	if ts.appSettings(t, app).Disabled() {
		t.Fatal("app still disabled")
	}
	w := ts.connect(t, ts.session(t, verifiedUser(app, "user-1")).Token)
	if list := w.ping().Conversations; len(list) != 1 || list[0].ID != conv.ID {
		t.Fatalf("after turning the widget back on the user sees %+v", list)
	}
}

func TestDashboardWidgetOffNeedsMemberAndSameOrigin(t *testing.T) {
	ts := newTestServer(t)
	ann, bob := ts.newOwner(t, "Ann"), ts.newOwner(t, "Bob")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	ts.ownerApp(t, bob, store.ModeEnforced)
	disabledAt := func() int {
		return ts.count(t, `SELECT count(*) FROM apps WHERE id = ? AND disabled_at IS NOT NULL`, app.ID)
	}

	// Another owner gets what a missing app gets.
	bobB := ts.signIn(t, bob)
	for _, path := range []string{settingsPath(app, "disable"), settingsPath(app, "enable")} {
		got := bobB.post(t, path, nil)
		got.wantStatus(t, http.StatusNotFound)
		want := bobB.post(t, strings.Replace(path, app.ID, "app_"+strings.Repeat("a", 16), 1), nil)
		if string(got.Body) != string(want.Body) {
			t.Fatalf("POST %s differs from a missing app's answer:\n%s\n%s", path, got.Body, want.Body)
		}
	}
	if disabledAt() != 0 {
		t.Fatal("another owner turned the widget off")
	}

	// Signed out: refused, as every dashboard POST is.
	ts.browser(t).post(t, settingsPath(app, "disable"), nil).wantStatus(t, http.StatusUnauthorized)

	// Cross-site: refused, even with Ann's cookie.
	annB := ts.signIn(t, ann)
	for _, hdr := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}, "Origin": {evilOrigin}},
		{"Sec-Fetch-Site": {""}, "Origin": {evilOrigin}},
	} {
		res := annB.postWith(t, settingsPath(app, "disable"), nil, hdr)
		res.wantStatus(t, http.StatusForbidden)
		if !strings.Contains(string(res.Body), "cross-site request forgery") {
			t.Fatalf("cross-site POST: %s", res.Body)
		}
	}
	if disabledAt() != 0 {
		t.Fatal("a cross-site POST turned the widget off")
	}
	if err := ts.DB.SetAppDisabled(context.Background(), app.ID, true); err != nil {
		t.Fatal(err)
	}
	annB.postWith(t, settingsPath(app, "enable"), nil, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {evilOrigin}}).wantStatus(t, http.StatusForbidden)
	if disabledAt() != 1 {
		t.Fatal("a cross-site POST turned the widget on")
	}
	// Values in the URL are not read: the routes take none, and a query
	// does not change which app or what happens.
	annB.post(t, settingsPath(app, "enable")+"?disabled=true", nil).wantRedirect(t, settingsPath(app)+"?notice=enabled")
	if disabledAt() != 0 {
		t.Fatal("enable did not turn the widget on")
	}
}

func TestDashboardSettingsShowsKidAndJWTExamples(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)
	// A name that would break out of a string or comment in code.
	b.post(t, settingsPath(app), url.Values{"name": {`Shop "*/ '); alert(1); //`}, "origins": {shopOrigin}, "identity_mode": {"enforced"}}).
		wantStatus(t, http.StatusSeeOther)
	kid := ts.kid(t, app)

	page := b.get(t, settingsPath(app))
	body := text(page.Body)
	if !strings.Contains(body, `<code data-testid="secret-kid">`+kid+`</code>`) {
		t.Fatalf("settings page does not show the current secret's id %s as its kid", kid)
	}
	if !strings.Contains(body, `user_jwt: "USER_JWT"`) || !strings.Contains(body, `app_id: "`+app.ID+`"`) {
		t.Error("settings page lacks the user_jwt snippet")
	}
	for _, tc := range []struct{ lang, lib string }{
		{"Go", "github.com/golang-jwt/jwt/v5"}, {"Node", `require("jsonwebtoken")`}, {"Python", "import jwt"},
		{"Ruby", `require "jwt"`}, {"PHP", `use Firebase\JWT\JWT;`},
	} {
		ex := between(body, `data-testid="jwt-example-`+tc.lang+`">`, "</pre>")
		for _, want := range []string{tc.lib, app.ID, kid, "HS256", "PARLEY_IDENTITY_SECRET", "jti"} {
			if !strings.Contains(ex, want) {
				t.Errorf("%s JWT example lacks %q:\n%s", tc.lang, want, ex)
			}
		}
		if strings.Contains(ex, "alert(1)") || strings.Contains(ex, app.Secret) {
			t.Errorf("%s JWT example carries the app's name or secret:\n%s", tc.lang, ex)
		}
	}
	if strings.Contains(string(page.Body), app.Secret) {
		t.Fatal("the settings page shows the secret unasked")
	}

	// After a rotation the old secret is listed with its id.
	b.post(t, settingsPath(app, "secret", "rotate"), url.Values{"previous_valid_for": {"24h"}}).wantStatus(t, http.StatusSeeOther)
	body = text(b.get(t, settingsPath(app)).Body)
	if !strings.Contains(body, `<code data-testid="previous-kid">`+kid+`</code>`) || strings.Contains(body, `<code data-testid="secret-kid">`+kid+`</code>`) {
		t.Fatalf("after rotating, the page does not list %s as a previous kid", kid)
	}
}

// between is the text of s between the first start and the end after it.
func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		return s[:j]
	}
	return s
}

func TestDashboardSignedMarks(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	b := ts.signIn(t, ann)

	signed := ts.converse(t, jwtUser(app, ts.userJWT(t, app, "user-1", "email", "signed@example.com", "name", "<b>Signed</b> Sam")), "from signed")
	emailOnly := ts.converse(t, jwtUser(app, ts.userJWT(t, app, "user-2", "email", "only@example.com")), "from email only")
	unsigned := ts.converse(t, jwtUser(app, ts.userJWT(t, app, "user-3"), "email", "page@example.com", "name", "Page Pat"), "from page")
	hashed := ts.converse(t, verifiedUser(app, "user-4", "email", "hash@example.com", "name", "Hash Hal"), "from hash")

	rows := map[string]string{}
	for _, r := range convRows(b.get(t, "/dashboard/apps/"+app.ID+"?status=all").Body) {
		rows[r.ID] = r.HTML
	}
	// A row shows the label (the name, else the email) and the email when
	// it is not the label; the thread's head shows both.
	for _, tc := range []struct {
		conv                userConv
		rowName, rowEmail   int
		headName, headEmail int
	}{
		{signed, 1, 1, 1, 1},
		{emailOnly, 0, 1, 0, 2},
		{unsigned, 0, 0, 0, 0},
		{hashed, 0, 0, 0, 0},
	} {
		row := []byte(rows[tc.conv.ID])
		if len(row) == 0 {
			t.Fatalf("conversation %s not listed", tc.conv.ID)
		}
		if n, e := testids(row, "signed-name"), testids(row, "signed-email"); n != tc.rowName || e != tc.rowEmail {
			t.Errorf("row of %s: %d signed names and %d signed emails, want %d and %d\n%s", tc.conv.ID, n, e, tc.rowName, tc.rowEmail, row)
		}
		head := []byte(between(string(b.get(t, convPath(app, tc.conv.ID)).Body), `class="thread-head"`, "</header>"))
		if n, e := testids(head, "signed-name"), testids(head, "signed-email"); n != tc.headName || e != tc.headEmail {
			t.Errorf("thread of %s: %d signed names and %d signed emails, want %d and %d\n%s", tc.conv.ID, n, e, tc.headName, tc.headEmail, head)
		}
	}
	// The signed name is text, escaped like any other.
	thread := string(b.get(t, convPath(app, signed.ID)).Body)
	if strings.Contains(thread, "<b>Signed</b>") || !strings.Contains(thread, "&lt;b&gt;Signed&lt;/b&gt; Sam") {
		t.Fatal("the signed name is not escaped")
	}

	// The same user coming back with a user_hash and a page-sent email:
	// the email is now only the page's word.
	ts.session(t, verifiedUser(app, "user-1", "email", "other@example.com"))
	head := between(string(b.get(t, convPath(app, signed.ID)).Body), `class="thread-head"`, "</header>")
	if testids([]byte(head), "signed-email") != 0 || testids([]byte(head), "signed-name") != 1 || !strings.Contains(head, "other@example.com") {
		t.Fatalf("after a user_hash session with a page email the thread shows:\n%s", head)
	}
}
