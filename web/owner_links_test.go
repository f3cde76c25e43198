package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/smtptest"
	"github.com/parley-chat/parley/internal/store"
)

// withMail has the server send e-mail to a real SMTP server.
func withMail(t *testing.T) (serverOption, *smtptest.Server) {
	srv := smtptest.Start(t, "parley", "s3cret")
	sender, err := mail.New("smtp://parley:s3cret@"+srv.Addr, "Parley <chat@parley.example>")
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Mail = sender }, srv
}

// mailBody is a received e-mail's text.
func mailBody(t *testing.T, m smtptest.Mail) string {
	t.Helper()
	_, _, text, err := m.Read()
	if err != nil {
		t.Fatal(err)
	}
	return text
}

var linkRe = regexp.MustCompile(`/(reset|invite)#(\S+)`)

// A forgotten password: the same answer for known and unknown addresses,
// a link that works once, the old password and sign-ins gone.
func TestPasswordResetByEmail(t *testing.T) {
	opt, smtp := withMail(t)
	ts := newTestServer(t, opt)
	ann := ts.newOwner(t, "ann")
	old := ts.signIn(t, ann)
	b := ts.browser(t)

	known := b.post(t, "/forgot", url.Values{"email": {ann.Email}})
	unknown := b.post(t, "/forgot", url.Values{"email": {"nobody@example.com"}})
	if known.Status != http.StatusOK || unknown.Status != http.StatusOK ||
		strings.ReplaceAll(string(known.Body), ann.Email, "X") != strings.ReplaceAll(string(unknown.Body), "nobody@example.com", "X") {
		t.Fatalf("known %d and unknown %d addresses are answered differently", known.Status, unknown.Status)
	}
	mails := smtp.Wait(1, 30*time.Second)
	if len(mails) != 1 || mails[0].To[0] != ann.Email {
		t.Fatalf("mails %+v", mails)
	}
	m := linkRe.FindStringSubmatch(mailBody(t, mails[0]))
	if m == nil || m[1] != "reset" {
		t.Fatalf("no reset link in:\n%s", mailBody(t, mails[0]))
	}
	token := m[2]
	if ts.count(t, `SELECT count(*) FROM owner_links WHERE token_hash = ?`, token) != 0 {
		t.Fatal("the token is stored as it is")
	}
	if res := b.post(t, "/reset", url.Values{"token": {token}, "password": {"short"}}); res.Status != http.StatusBadRequest {
		t.Fatalf("a short password = %d", res.Status)
	}
	if res := b.post(t, "/reset", url.Values{"token": {token}, "password": {"a brand new passphrase"}}); res.Status != http.StatusOK || testids(res.Body, "notice") != 1 {
		t.Fatalf("reset = %d %s", res.Status, res.Body)
	}
	if res := b.post(t, "/reset", url.Values{"token": {token}, "password": {"another new passphrase"}}); res.Status != http.StatusBadRequest {
		t.Fatalf("the link worked twice: %d", res.Status)
	}
	old.get(t, "/dashboard").wantSignInFirst(t, "/dashboard")
	if res := ts.browser(t).login(t, ann.Email, ann.Password, ""); res.Status != http.StatusUnauthorized {
		t.Errorf("the old password still signs in: %d", res.Status)
	}
	if res := ts.browser(t).login(t, ann.Email, "a brand new passphrase", ""); res.Status != http.StatusSeeOther {
		t.Errorf("the new password does not sign in: %d", res.Status)
	}
	// A link asked for again replaces the earlier one.
	b.post(t, "/forgot", url.Values{"email": {ann.Email}})
	b.post(t, "/forgot", url.Values{"email": {ann.Email}})
	mails = smtp.Wait(3, 30*time.Second)
	first := linkRe.FindStringSubmatch(mailBody(t, mails[1]))[2]
	if res := b.post(t, "/reset", url.Values{"token": {first}, "password": {"yet another passphrase"}}); res.Status != http.StatusBadRequest {
		t.Errorf("a replaced link still works: %d", res.Status)
	}
	// Mail-bombing an address is throttled.
	for range 5 {
		b.post(t, "/forgot", url.Values{"email": {ann.Email}})
	}
	if res := b.post(t, "/forgot", url.Values{"email": {ann.Email}}); res.Status != http.StatusTooManyRequests {
		t.Errorf("the eighth request in a row = %d, want 429", res.Status)
	}
}

// An invitation to an address with no account: mailed from the settings
// page, it makes the account, joins the app and signs in, once.
func TestInvitationByEmail(t *testing.T) {
	opt, smtp := withMail(t)
	ts := newTestServer(t, opt)
	ann := ts.newOwner(t, "ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	b.post(t, settingsPath(app, "members"), url.Values{"email": {"newcomer@example.com"}}).wantRedirect(t, settingsPath(app)+"?notice=invited")
	mails := smtp.Wait(1, 30*time.Second)
	if len(mails) != 1 || mails[0].To[0] != "newcomer@example.com" {
		t.Fatalf("mails %+v", mails)
	}
	m := linkRe.FindStringSubmatch(mailBody(t, mails[0]))
	if m == nil || m[1] != "invite" {
		t.Fatalf("no invitation link in:\n%s", mailBody(t, mails[0]))
	}
	if page := b.get(t, settingsPath(app)); testids(page.Body, "invite") != 1 || !strings.Contains(string(page.Body), "newcomer@example.com") {
		t.Error("the settings page does not list the pending invitation")
	}
	// A second one, cancelled: its link stops working.
	b.post(t, settingsPath(app, "members"), url.Values{"email": {"typo@example.com"}}).wantRedirect(t, settingsPath(app)+"?notice=invited")
	typo := linkRe.FindStringSubmatch(mailBody(t, smtp.Wait(2, 30*time.Second)[1]))[2]
	b.post(t, settingsPath(app, "invites", "cancel"), url.Values{"email": {"typo@example.com"}}).wantRedirect(t, settingsPath(app)+"?notice=invite-cancelled")
	if res := ts.browser(t).post(t, "/invite", url.Values{"token": {typo}, "name": {"Typo"}, "password": {"a good passphrase"}}); res.Status != http.StatusBadRequest {
		t.Errorf("a cancelled invitation = %d", res.Status)
	}
	nb := ts.browser(t)
	if res := nb.post(t, "/invite", url.Values{"token": {m[2]}, "name": {""}, "password": {"a good passphrase"}}); res.Status != http.StatusBadRequest {
		t.Fatalf("no name = %d", res.Status)
	}
	nb.post(t, "/invite", url.Values{"token": {m[2]}, "name": {"Newcomer"}, "password": {"a good passphrase"}}).wantRedirect(t, "/dashboard/apps/"+app.ID)
	nb.get(t, "/dashboard/apps/"+app.ID).wantStatus(t, http.StatusOK)
	if res := ts.browser(t).post(t, "/invite", url.Values{"token": {m[2]}, "name": {"Again"}, "password": {"a good passphrase"}}); res.Status != http.StatusBadRequest {
		t.Errorf("the invitation worked twice: %d", res.Status)
	}
	// An existing owner is added at once, without mail.
	bob := ts.newOwner(t, "bob")
	b.post(t, settingsPath(app, "members"), url.Values{"email": {bob.Email}}).wantRedirect(t, settingsPath(app)+"?notice=member-added")
	if got := len(smtp.Wait(3, time.Second)); got != 2 {
		t.Errorf("%d e-mails; adding an existing owner mails nobody", got-1)
	}
}

// Without e-mail, nothing is promised: /forgot says to ask the operator,
// and an unknown address is refused as before.
func TestNoMailNoLinks(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	if res := ts.browser(t).get(t, "/forgot"); testids(res.Body, "reset-unavailable") != 1 {
		t.Error("/forgot does not say resets are unavailable")
	}
	if res := ts.signIn(t, ann).post(t, settingsPath(app, "members"), url.Values{"email": {"newcomer@example.com"}}); res.Status != http.StatusBadRequest || testids(res.Body, "member-error") != 1 {
		t.Errorf("an unknown address without mail = %d", res.Status)
	}
}
