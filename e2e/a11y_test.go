package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/store"
)

// Every dashboard page passes axe-core's WCAG 2.0/2.1/2.2 A and AA rules,
// on a laptop and on a phone: the pages an owner signs in and recovers
// an account through, and, signed in, every page of an app with a
// conversation in it.
func TestDashboardAccessibility(t *testing.T) {
	e := newEnv(t)
	// Something in every page: a conversation, with a reply.
	tab := e.newTab(t, "user")
	frame, _ := e.openChat(t, tab, "frame", "u_alice")
	long := "Where is my teapot? https://localhost/orders/7?" + strings.Repeat("tracking=0123456789abcdef&", 12)
	send(t, frame, long)
	waitMessages(t, frame, chatMessage{Author: "me", Text: long})
	conv := e.conversations(t)[0].ID
	e.apiReply(t, conv, "On its way!")

	visitor := e.newTab(t, "visitor")
	for _, path := range []string{"/login", "/forgot", "/reset", "/invite", "/email/unsubscribe"} {
		navigate(t, visitor, e.parleyURL+path)
		checkA11y(t, visitor, path)
	}

	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	dash := e.signIn(t, olivia, "dashboard")
	base := "/dashboard/apps/" + e.app.ID
	// Searching the inbox, as an agent does.
	navigate(t, dash, e.parleyURL+base)
	do(t, dash, chromedp.SendKeys(chromedp.CSS(`[data-testid="search"]`), "teapot\r"))
	eventually(t, dash, "the search's page", js[bool](`document.readyState === 'complete' && location.search.includes('q=teapot') && !!document.querySelector('[data-testid="search-note"]')`),
		func(ok bool) bool { return ok })
	if r, err := inboxRows(dash); err != nil || len(r) != 1 || r[0].ID != conv {
		t.Errorf("the search's rows: %+v, %v", r, err)
	}
	checkA11y(t, dash, "the inbox searched")
	navigate(t, dash, e.parleyURL+base+"?q=nowhere")
	eventually(t, dash, "no result", js[string](`(document.querySelector('[data-testid="no-conversations"]') || {}).textContent || ''`),
		func(s string) bool { return s == "No conversation matches." })
	hook, err := e.db.AddWebhookEndpoint(t.Context(), store.NewWebhookEndpoint{AppID: e.app.ID, URL: "https://hooks.example.com/parley", Events: []string{"message.created"}})
	if err != nil {
		t.Fatal(err)
	}
	pages := []string{"/dashboard", base, base + "?status=all", base + "/conversations/" + conv, base + "/settings", base + "/webhooks", base + "/webhooks/" + hook.ID}
	for _, phone := range []bool{false, true} {
		if phone {
			do(t, dash, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
		}
		for _, path := range pages {
			navigate(t, dash, e.parleyURL+path)
			waitPath(t, dash, stripQuery(path))
			name := path
			if phone {
				name += " on a phone"
			}
			checkA11y(t, dash, name)
			// Nothing wider than the screen, a long URL in a message included.
			if phone {
				if w, _ := chromedp.Run(dash, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
					t.Errorf("%s is %d px wide on a 390 px screen", path, w)
				}
			}
		}
	}
}

func stripQuery(p string) string {
	p, _, _ = strings.Cut(p, "?")
	return p
}

// The appearance settings preview the widget as the owner edits them,
// before saving; what is saved is what the loader then shows.
func TestDashboardAppearancePreview(t *testing.T) {
	e := newEnv(t)
	olivia := e.createOwner(t, "Olivia Park", e.app.ID)
	dash := e.signIn(t, olivia, "dashboard")
	navigate(t, dash, e.parleyURL+"/dashboard/apps/"+e.app.ID+"/settings")
	waitPath(t, dash, "/dashboard/apps/"+e.app.ID+"/settings")
	preview := js[map[string]string](`({
		launcher: getComputedStyle(document.getElementById('preview-launcher')).backgroundColor,
		text: getComputedStyle(document.getElementById('preview-launcher')).color,
		label: document.getElementById('preview-label').textContent,
		team: document.getElementById('preview-team').textContent,
		left: String(document.getElementById('preview-launcher-row').classList.contains('left')),
		greeting: document.getElementById('preview-greeting').hidden ? '' : document.getElementById('preview-greeting').textContent,
		reply: document.getElementById('preview-reply').hidden ? '' : document.getElementById('preview-reply').textContent })`)
	do(t, dash,
		// A colour picker cannot be typed into: set it as a person's pick does.
		chromedp.Evaluate[chromedp.Void](`(c => { c.value = '#ffd400'; c.dispatchEvent(new Event('input', {bubbles: true})) })(document.querySelector('[data-testid="appearance-color"]'))`),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="appearance-label"]`), "Questions?"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="appearance-team"]`), "Teapot Support"),
		chromedp.Click(chromedp.CSS(`[data-testid="appearance-left"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="availability-settings"] textarea[name="greeting"]`), "Hi! How can we help?"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="availability-settings"] select[name="reply_time"]`), "minutes"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="availability-settings"] select').dispatchEvent(new Event('input', {bubbles: true}))`))
	got := eventually(t, dash, "the preview to follow the form", preview, func(p map[string]string) bool { return p["team"] == "Teapot Support" && p["reply"] != "" })
	want := map[string]string{"launcher": "rgb(255, 212, 0)", "text": "rgb(0, 0, 0)", "label": "Questions?", "team": "Teapot Support", "left": "true",
		"greeting": "Hi! How can we help?", "reply": "Usually replies within a few minutes"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("preview %s = %q, want %q", k, got[k], v)
		}
	}
	checkA11y(t, dash, "the settings with the preview")
	screenshotAt(t, dash, "dashboard-appearance.png", 1100, 700, false, `[data-testid="appearance-settings"]`)
	do(t, dash, chromedp.Click(chromedp.CSS(`[data-testid="appearance-save"]`)))
	eventually(t, dash, "the saved notice", js[string](`(document.querySelector('[data-testid="notice"]') || {}).textContent || ''`),
		func(s string) bool { return strings.HasPrefix(s, "Appearance saved.") })
	app, err := e.db.App(t.Context(), e.app.ID)
	if err != nil || app.Appearance.Color != "#ffd400" || app.Appearance.Position != "left" || app.Appearance.LauncherLabel != "Questions?" || app.Appearance.TeamName != "Teapot Support" {
		t.Errorf("saved %+v, %v", app.Appearance, err)
	}
}
