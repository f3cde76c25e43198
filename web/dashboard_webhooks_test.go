package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// TestDashboardWebhooks: an owner adds an endpoint (its secret shown once),
// sees its deliveries with the receiver's answer as text, sends one again,
// rotates its secret and removes it; bad URLs are refused with the reason,
// and another app's owner reaches none of it.
func TestDashboardWebhooks(t *testing.T) {
	ts := newTestServer(t, withLoopbackWebhooks())
	owner := ts.newOwner(t, "ann")
	app := ts.ownerApp(t, owner, store.ModeMonitor)
	b := ts.signIn(t, owner)
	var hits atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hits.Add(1)
		w.Write([]byte("<script>alert(1)</script> thanks"))
	}))
	defer recv.Close()
	base := "/dashboard/apps/" + app.ID + "/webhooks"

	for name, form := range map[string]url.Values{
		"a private address": {"url": {"https://10.1.2.3/hook"}, "event": {"message.created"}},
		"plain http":        {"url": {"http://93.184.216.34/hook"}, "event": {"message.created"}},
		"no event":          {"url": {"https://93.184.216.34/hook"}},
		"an unknown event":  {"url": {"https://93.184.216.34/hook"}, "event": {"message.deleted"}},
	} {
		res := b.post(t, base, form)
		if res.Status != http.StatusBadRequest || testids(res.Body, "webhook-form-error") != 1 {
			t.Errorf("%s: %d, want 400 with the reason", name, res.Status)
		}
		if !strings.Contains(string(res.Body), form.Get("url")) && form.Get("url") != "" {
			t.Errorf("%s: the form lost the URL typed", name)
		}
	}

	res := b.post(t, base, url.Values{"url": {recv.URL + "/hook"}, "event": {"message.created", "conversation.created"}})
	res.wantStatus(t, http.StatusOK)
	secret := regexp.MustCompile(`whsec_[A-Za-z0-9+/=]+`).FindString(string(res.Body))
	if secret == "" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("the new endpoint's secret is not shown once (Cache-Control %q)", res.Header.Get("Cache-Control"))
	}
	page := b.get(t, base)
	if strings.Contains(string(page.Body), "whsec_") || testids(page.Body, "endpoint") != 1 {
		t.Fatalf("the webhooks page shows a secret, or not the one endpoint")
	}
	endpointID := regexp.MustCompile(`webhooks/(whe_[a-z0-9]+)"`).FindStringSubmatch(string(page.Body))[1]

	ts.converse(t, fields(app, "user_id", "u1"), "hello")
	deliveries := base + "/" + endpointID
	var body string
	for deadline := time.Now().Add(time.Minute); strings.Count(body, ">delivered<") < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the deliveries page never showed two delivered:\n%s", body)
		}
		body = string(b.get(t, deliveries).Body)
	}
	if strings.Contains(body, "<script>alert(1)") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt; thanks") {
		t.Errorf("the receiver's answer is not shown as text")
	}
	resend := regexp.MustCompile(`action="(` + regexp.QuoteMeta(deliveries) + `/deliveries/\d+/resend)"`).FindStringSubmatch(body)
	if resend == nil {
		t.Fatal("no Send again button")
	}
	before := hits.Load()
	b.post(t, resend[1], nil).wantRedirect(t, deliveries+"?notice=resent")
	for deadline := time.Now().Add(time.Minute); hits.Load() == before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the resend never came")
		}
	}

	other := ts.newOwner(t, "bob")
	ts.ownerApp(t, other, store.ModeMonitor)
	ob := ts.signIn(t, other)
	for _, path := range []string{deliveries} {
		if res := ob.get(t, path); res.Status != http.StatusNotFound {
			t.Errorf("another app's owner: GET %s = %d", path, res.Status)
		}
	}
	if res := ob.post(t, resend[1], nil); res.Status != http.StatusNotFound {
		t.Errorf("another app's owner resends: %d", res.Status)
	}

	res = b.post(t, base+"/"+endpointID+"/rotate", url.Values{"overlap": {"1h0m0s"}})
	rotated := regexp.MustCompile(`whsec_[A-Za-z0-9+/=]+`).FindString(string(res.Body))
	if res.Status != http.StatusOK || rotated == "" || rotated == secret {
		t.Fatalf("rotate = %d, new secret %q", res.Status, rotated)
	}
	if res := b.post(t, base+"/"+endpointID+"/rotate", url.Values{"overlap": {"forever"}}); res.Status != http.StatusBadRequest {
		t.Errorf("a bad overlap: %d", res.Status)
	}
	b.post(t, base+"/"+endpointID+"/remove", nil).wantRedirect(t, base+"?notice=removed")
	if page := b.get(t, base); testids(page.Body, "endpoint") != 0 {
		t.Error("the removed endpoint is still listed")
	}
}

// An endpoint Parley turned off for failing is told on the inbox, the
// page owners see most, with the way to the Webhooks page.
func TestInboxTellsOfEndpointTurnedOff(t *testing.T) {
	ts := newTestServer(t, withLoopbackWebhooks())
	owner := ts.newOwner(t, "ann")
	app := ts.ownerApp(t, owner, store.ModeMonitor)
	b := ts.signIn(t, owner)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer failing.Close()
	e, err := ts.DB.AddWebhookEndpoint(t.Context(), store.NewWebhookEndpoint{AppID: app.ID, URL: failing.URL})
	if err != nil {
		t.Fatal(err)
	}
	inbox := "/dashboard/apps/" + app.ID
	if testids(b.get(t, inbox).Body, "webhooks-off") != 0 {
		t.Fatal("a banner while every endpoint is on")
	}
	ts.converse(t, fields(app, "user_id", "u1"), "hello")
	var ds []store.WebhookDelivery
	for deadline := time.Now().Add(time.Minute); len(ds) == 0 || ds[0].Attempts == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt")
		}
		ds, _ = ts.DB.WebhookDeliveries(t.Context(), app.ID, e.ID, 1)
	}
	// Days of failures, as the queue records the last one.
	if _, err := ts.DB.RecordWebhookAttempt(t.Context(), ds[0].ID, store.WebhookAttempt{At: time.Now(), ResponseCode: 502,
		Error: "the endpoint answered 502", DisableAfter: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	page := b.get(t, inbox)
	if testids(page.Body, "webhooks-off") != 1 || !strings.Contains(string(page.Body), `href="`+inbox+`/webhooks"`) {
		t.Errorf("the inbox does not tell of the endpoint turned off")
	}
}
