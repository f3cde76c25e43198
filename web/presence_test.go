package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// The widget learns the team's availability in its welcome, and hears
// at once when an agent opens the inbox or closes it.
func TestPresenceReachesTheWidget(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	if err := ts.DB.SetAvailability(context.Background(), app.ID, store.Availability{TimeZone: "UTC", Greeting: "Hello! <b>Ask</b> away.",
		ReplyTime: "minutes", AwayMessage: "Back at nine."}); err != nil {
		t.Fatal(err)
	}
	user := ts.connect(t, ts.session(t, fields(app, "user_id", "u1")).Token)
	p := user.welcome.Presence
	if p.Greeting != "Hello! <b>Ask</b> away." || p.ReplyTime != "minutes" || !p.Open || p.AgentsOnline {
		t.Fatalf("welcome presence %+v: want the greeting, open, nobody online", p)
	}
	b := ts.signIn(t, ann)
	inbox := b.inbox(t, app.ID)
	if f := user.waitFor("presence"); !f.AgentsOnline || !f.Open {
		t.Fatalf("after the inbox opened: %s", f.raw)
	}
	if page := b.get(t, "/dashboard/apps/"+app.ID); !strings.Contains(string(page.Body), "Online: you") {
		t.Errorf("the inbox does not say who is online")
	}
	inbox.conn.Close()
	if f := user.waitFor("presence"); f.AgentsOnline {
		t.Fatalf("after the inbox closed: %s", f.raw)
	}
}

// The settings page saves the availability, and refuses what cannot be
// meant with the reason, keeping what was typed.
func TestAvailabilitySettings(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	form := url.Values{"time_zone": {"Europe/Berlin"}, "hours": {"set"}, "open_mon": {"on"}, "from_mon": {"09:00"}, "to_mon": {"17:30"},
		"open_sat": {"on"}, "from_sat": {"10:00"}, "to_sat": {"13:00"}, "greeting": {"Hi!"}, "away_message": {"We're closed."}, "reply_time": {"hour"}}
	b.post(t, settingsPath(app, "availability"), form).wantRedirect(t, settingsPath(app)+"?notice=availability")
	got, err := ts.DB.App(context.Background(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Availability; a.TimeZone != "Europe/Berlin" || a.Hours.String() != "mon=09:00-17:30,sat=10:00-13:00" || a.Greeting != "Hi!" || a.ReplyTime != "hour" {
		t.Errorf("saved %+v (hours %q)", a, a.Hours.String())
	}
	for name, change := range map[string]url.Values{
		"a bad zone":           {"time_zone": {"Mars/Olympus"}},
		"hours that end early": {"to_mon": {"08:00"}},
		"a bad reply time":     {"reply_time": {"soon"}},
	} {
		bad := url.Values{}
		for k, v := range form {
			bad[k] = v
		}
		for k, v := range change {
			bad[k] = v
		}
		res := b.post(t, settingsPath(app, "availability"), bad)
		if res.Status != http.StatusBadRequest || testids(res.Body, "availability-error") != 1 || !strings.Contains(string(res.Body), "We&#39;re closed.") {
			t.Errorf("%s: %d, want 400 with the reason and the form kept", name, res.Status)
		}
	}
	b.post(t, settingsPath(app, "availability"), url.Values{"time_zone": {"UTC"}, "hours": {"always"}}).wantRedirect(t, settingsPath(app)+"?notice=availability")
	if got, _ := ts.DB.App(context.Background(), app.ID); got.Availability.Hours.Set {
		t.Error("always open saved as hours")
	}
}
