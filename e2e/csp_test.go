package e2e

import (
	"context"
	"net"
	"slices"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/demoshop"
)

// recordCSPViolations makes every document the tab loads from now on keep
// the Content Security Policy violations it reports in window.cspViolations.
// Scripts added over CDP are not subject to the page's CSP themselves.
var recordCSPViolations = chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.cspViolations = [];
			document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`})
	return err
})

// The demo shop sends the strict policy a careful site has (no inline
// script or style, default-src 'self') plus exactly the two lines the README
// tells hosts to add. The widget must work there without a single violation,
// and the chat frame's own strict CSP must not block its own assets.
func TestWidgetOnAStrictCSPHost(t *testing.T) {
	shopLn := listen(t)
	_, port, _ := net.SplitHostPort(shopLn.Addr().String())
	shopURL := "http://localhost:" + port
	e := newEnv(t, shopURL)
	shop := &demoshop.Shop{ParleyURL: e.parleyURL, AppID: e.app.ID, IdentitySecretID: e.app.IdentitySecretID,
		IdentitySecret: e.app.IdentitySecret, APIKey: e.apiKey}
	serve(t, shopLn, shop.Handler(), nil)

	tab := e.newTab(t, "shop")
	do(t, tab, recordCSPViolations)
	navigate(t, tab, shopURL+"/")
	do(t, tab, chromedp.Click(chromedp.Search(`//button[text()="Alice Adams"]`)))
	eventually(t, tab, "the shop to show Alice logged in", js[bool](`!!document.querySelector('[data-testid="shop-user"]')`),
		func(ok bool) bool { return ok })
	// Opening the chat loads the rest of the loader from Parley's origin
	// (script-src) and adds the frame (frame-src).
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)

	// The loader styles its elements through the CSSOM, which style-src
	// does not govern; a style attribute or <style> element would be blocked.
	eventually(t, tab, "the chat frame to be shown fixed at the corner", js[string](
		`getComputedStyle(document.getElementById('parley-frame-wrap')).position + ' ' + getComputedStyle(document.getElementById('parley-frame-wrap')).display`),
		func(s string) bool { return s == "fixed block" })
	// frame.css applied: the composer is styled, not the browser default.
	eventually(t, frame, "frame.css to apply", js[string](`getComputedStyle(document.body).display + ' ' + getComputedStyle(document.body).margin`),
		func(s string) bool { return s == "flex 0px" })

	send(t, frame, "Hello from a strict page")
	waitMessages(t, frame, chatMessage{Author: "me", Text: "Hello from a strict page"})
	convs := e.conversations(t)
	if len(convs) != 1 || convs[0].User.UserID != "u_alice" || !convs[0].User.Verified {
		t.Fatalf("conversations = %+v, want one of verified u_alice", convs)
	}
	if got := eventually(t, tab, "the violations list", js[[]string](`window.cspViolations`), func([]string) bool { return true }); !slices.Equal(got, []string{}) {
		t.Errorf("CSP violations on the host page: %q", got)
	}
}
