package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// notificationSpy records the browser's notifications as the page makes
// them (and still makes them), across the tab's page loads.
const notificationSpy = `(() => {
	const Real = window.Notification;
	if (!Real) return;
	const load = () => JSON.parse(sessionStorage.getItem("__notes") || "[]");
	function Spy(title, opts) {
		const notes = load();
		notes.push({title: title, tag: (opts && opts.tag) || "", body: (opts && opts.body) || ""});
		sessionStorage.setItem("__notes", JSON.stringify(notes));
		return new Real(title, opts);
	}
	Spy.requestPermission = (...a) => Real.requestPermission(...a);
	Object.defineProperty(Spy, "permission", {get: () => Real.permission});
	window.Notification = Spy;
})();`

type note struct {
	Title string `json:"title"`
	Tag   string `json:"tag"`
	Body  string `json:"body"`
}

var notes = js[[]note](`JSON.parse(sessionStorage.getItem("__notes") || "[]")`)

// TestDashboardAlerts: an agent who turned alerts on gets one browser
// notification per conversation with something new, until they open it,
// none for a message on screen, and the tab's title counts the unread.
func TestDashboardAlerts(t *testing.T) {
	e := newEnv(t)
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	dash := e.signIn(t, olivia, "dashboard")
	if _, err := chromedp.CallBrowser(dash, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingGranted,
		Origin: e.parleyURL, BrowserContextID: chromedp.FromContext(dash).BrowserContextID}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(dash, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: notificationSpy}); err != nil {
		t.Fatal(err)
	}
	inbox := e.parleyURL + "/dashboard/apps/" + e.app.ID
	navigate(t, dash, inbox)
	waitLive(t, dash)
	do(t, dash, chromedp.Click(chromedp.CSS(`[data-testid="alerts-toggle"]`)))
	eventually(t, dash, "alerts on", js[string](`document.querySelector('[data-testid="alerts-toggle"]').getAttribute("aria-pressed")`),
		func(s string) bool { return s == "true" })

	alice := e.newTab(t, "alice")
	navigate(t, alice, e.pageURL(e.hostURL(), "u_alice")+"&name=Alice")
	do(t, alice, chromedp.Click(chromedp.CSS(launcherSel)))
	aliceFrame, _ := e.chatFrame(t, alice, "alice-frame")
	waitConnected(t, aliceFrame)
	for _, m := range []string{"first", "second", "third"} {
		send(t, aliceFrame, m)
	}
	eventually(t, dash, "the third message in the list", inboxRows, func(r []inboxRow) bool { return len(r) == 1 && r[0].Preview == "third" })
	got := eventually(t, dash, "one notification", notes, func(n []note) bool { return len(n) >= 1 })
	rows, err := inboxRows(dash)
	if err != nil || len(rows) != 1 {
		t.Fatal(rows, err)
	}
	conv := rows[0].ID
	if len(got) != 1 || got[0].Tag != conv || got[0].Body != "first" {
		t.Fatalf("notifications %+v, want one for the conversation", got)
	}
	eventually(t, dash, "the unread count in the title", js[string](`document.title`), func(s string) bool { return strings.HasPrefix(s, "(1) ") })

	bob := e.newTab(t, "bob")
	navigate(t, bob, e.pageURL(e.hostURL(), "u_bob")+"&name=Bob")
	do(t, bob, chromedp.Click(chromedp.CSS(launcherSel)))
	bobFrame, _ := e.chatFrame(t, bob, "bob-frame")
	waitConnected(t, bobFrame)
	send(t, bobFrame, "hello from Bob")
	eventually(t, dash, "a second notification, for Bob's conversation", notes, func(n []note) bool { return len(n) == 2 && n[1].Body == "hello from Bob" })
	eventually(t, dash, "two unread in the title", js[string](`document.title`), func(s string) bool { return strings.HasPrefix(s, "(2) ") })

	// Alice's conversation, opened and on screen: her next message is seen.
	navigate(t, dash, inbox+"/conversations/"+conv)
	waitLive(t, dash)
	if v, _ := js[string](`document.visibilityState`)(dash); v != "visible" {
		t.Skipf("the dashboard tab is %s here; the rest needs it on screen", v)
	}
	send(t, aliceFrame, "fourth")
	eventually(t, dash, "the fourth message in the thread", js[string](`document.getElementById("messages").textContent`),
		func(s string) bool { return strings.Contains(s, "fourth") })
	send(t, bobFrame, "Bob again")
	eventually(t, dash, "Bob's second message in the list", inboxRows, func(r []inboxRow) bool {
		for _, row := range r {
			if row.Preview == "Bob again" {
				return true
			}
		}
		return false
	})
	if n, _ := notes(dash); len(n) != 2 {
		t.Errorf("notifications %+v: want none for a message on screen, nor a second for Bob's unopened conversation", n)
	}
}
