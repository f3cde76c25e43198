package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

// The API description is a valid OpenAPI 3.1 document, served without a
// key, that names exactly the server API's routes, and the API's real
// answers (and the requests that got them) match it.
func TestOpenAPIDescribesTheServerAPI(t *testing.T) {
	ts := newTestServer(t, withLoopbackWebhooks())
	res := ts.do(t, http.MethodGet, "/api/v1/openapi.json", nil, nil)
	if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/openapi.json = %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}

	// The same routes, both ways.
	e, err := New(Config{PublicURL: ts.URL, SessionTTL: time.Hour}, ts.DB, chat.NewHub(ts.DB, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var served, described []string
	for _, r := range e.Routes() {
		// API keys also download attachments, from the widget's route.
		download := r.Method == http.MethodGet && r.Path == "/api/widget/attachments/:id"
		if download || strings.HasPrefix(r.Path, "/api/v1/") && r.Path != "/api/v1/openapi.json" && r.Method != "echo_route_not_found" {
			p := r.Path
			for _, seg := range strings.Split(p, "/") {
				if strings.HasPrefix(seg, ":") {
					p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
				}
			}
			served = append(served, r.Method+" "+p)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, method+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(described)
	if !slices.Equal(slices.Compact(served), described) {
		t.Fatalf("routes and description differ:\n  served    %v\n  described %v", served, described)
	}

	// Real requests and answers, checked against the description.
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	app := ts.newApp(t, store.ModeMonitor)
	user := ts.connect(t, ts.session(t, fields(app, "user_id", "u1", "email", "u1@example.com")).Token)
	conv := user.startConversation("hello")
	var checkAs func(method, path, contentType, body string, want int) []byte
	check := func(method, path string, body string, want int) []byte {
		t.Helper()
		contentType := ""
		if body != "" {
			contentType = "application/json"
		}
		return checkAs(method, path, contentType, body, want)
	}
	checkAs = func(method, path, contentType, body string, want int) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+app.APIKey)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in the description: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if want < 400 {
			if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
				t.Fatalf("%s %s: the request does not match the description: %v", method, path, err)
			}
			req.Body = io.NopCloser(strings.NewReader(body))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		got, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, got, want)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
			Body: io.NopCloser(bytes.NewReader(got)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Fatalf("%s %s: the answer does not match the description: %v\n%s", method, path, err, got)
		}
		return got
	}
	check("GET", "/api/v1/conversations?status=open&limit=10", "", 200)
	check("GET", "/api/v1/conversations?q=hello", "", 200)
	check("GET", "/api/v1/conversations/"+conv, "", 200)
	check("POST", "/api/v1/conversations/"+conv+"/messages", `{"body":"hi","author_name":"Ann"}`, 201)
	check("GET", "/api/v1/conversations/"+conv+"/messages?after_seq=0&limit=5", "", 200)
	check("POST", "/api/v1/conversations/"+conv+"/typing", `{"typing":true}`, 204)
	check("PATCH", "/api/v1/conversations/"+conv, `{"status":"closed"}`, 200)
	check("GET", "/api/v1/conversations/cnv_nope", "", 404)
	check("POST", "/api/v1/conversations/"+conv+"/messages", `{"body":""}`, 400)
	check("GET", "/api/v1/conversations?status=maybe", "", 400)
	file, contentType := multipartFile("notes.txt", "text/plain", []byte("call back at 5"))
	fileBody, _ := io.ReadAll(file)
	var up uploaded
	json.Unmarshal(checkAs("POST", "/api/v1/conversations/"+conv+"/attachments", contentType, string(fileBody), 201), &up)
	file, contentType = multipartFile("page.png", "image/png", []byte("<html><script>alert(1)</script>"))
	fileBody, _ = io.ReadAll(file)
	checkAs("POST", "/api/v1/conversations/"+conv+"/attachments", contentType, string(fileBody), 415)
	var withFile struct{ Message chat.MessageJSON }
	json.Unmarshal(check("POST", "/api/v1/conversations/"+conv+"/messages", `{"attachment_ids":["`+up.Attachment.ID+`"]}`, 201), &withFile)
	if len(withFile.Message.Attachments) != 1 {
		t.Fatalf("the reply carries %+v", withFile.Message.Attachments)
	}
	check("GET", withFile.Message.Attachments[0].URL, "", 200)
	check("GET", "/api/widget/attachments/att_nope", "", 404)
	check("POST", "/api/v1/conversations/"+conv+"/messages", `{"attachment_ids":["`+up.Attachment.ID+`"]}`, 400)
	check("POST", "/api/v1/webhooks", `{"url":"https://93.184.216.34/hook","events":["message.created"]}`, 201)
	check("GET", "/api/v1/webhooks", "", 200)
	check("POST", "/api/v1/webhooks", `{"url":"https://10.0.0.1/hook"}`, 400)
	check("POST", "/api/v1/webhooks/whe_nope/rotate-secret", `{}`, 404)
	check("DELETE", "/api/v1/webhooks/whe_nope", "", 404)

	// A real webhook: its body matches the description's WebhookPayload,
	// and its delivery is listed and sent again as described.
	payloads := make(chan []byte, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		payloads <- b
	}))
	defer recv.Close()
	res = ts.api(t, app.APIKey, http.MethodPost, "/webhooks", map[string]any{"url": recv.URL, "events": []string{"message.created"}})
	var hook struct{ ID string }
	if err := json.Unmarshal(res.Body, &hook); err != nil || res.Status != http.StatusCreated {
		t.Fatalf("add = %d %s", res.Status, res.Body)
	}
	check("POST", "/api/v1/conversations/"+conv+"/messages", `{"body":"a webhook follows"}`, 201)
	var payload any
	select {
	case b := <-payloads:
		if err := json.Unmarshal(b, &payload); err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("no webhook came")
	}
	if err := doc.Components.Schemas["WebhookPayload"].Value.VisitJSON(payload); err != nil {
		t.Fatalf("a real webhook does not match the description's WebhookPayload: %v", err)
	}
	for _, ev := range []string{"conversation.created", "message.created", "conversation.closed", "conversation.reopened"} {
		if doc.Webhooks[ev] == nil {
			t.Errorf("the description has no webhook %s", ev)
		}
	}
	var list struct {
		Deliveries []struct {
			ID     int64
			Status string
		}
	}
	for deadline := time.Now().Add(time.Minute); len(list.Deliveries) == 0 || list.Deliveries[0].Status != "delivered"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the delivery is not recorded: %+v", list)
		}
		json.Unmarshal(ts.api(t, app.APIKey, http.MethodGet, "/webhooks/"+hook.ID+"/deliveries", nil).Body, &list)
	}
	check("GET", "/api/v1/webhooks/"+hook.ID+"/deliveries?limit=5", "", 200)
	check("POST", fmt.Sprintf("/api/v1/webhooks/%s/deliveries/%d/resend", hook.ID, list.Deliveries[0].ID), "", 202)
	check("POST", "/api/v1/webhooks/"+hook.ID+"/deliveries/12345/resend", "", 404)
	check("GET", "/api/v1/webhooks/whe_nope/deliveries", "", 404)
	check("POST", "/api/v1/webhooks/"+hook.ID+"/enable", "", 404)
	select {
	case <-payloads:
	case <-time.After(time.Minute):
		t.Fatal("the resend never came")
	}
}

// The webhooks API, against the description and the operator's guard.
func TestWebhooksAPI(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	other := ts.newApp(t, store.ModeEnforced)
	res := ts.api(t, app.APIKey, http.MethodPost, "/webhooks", map[string]any{"url": "https://93.184.216.34/hook", "events": []string{"message.created"}})
	if res.Status != http.StatusCreated || !strings.Contains(string(res.Body), `"secret":"whsec_`) || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("add = %d %s", res.Status, res.Body)
	}
	var added struct{ ID, Secret string }
	json.Unmarshal(res.Body, &added)
	for name, body := range map[string]any{
		"loopback":      map[string]any{"url": "https://127.0.0.1/hook"},
		"private":       map[string]any{"url": "https://192.168.1.10/hook"},
		"plain http":    map[string]any{"url": "http://93.184.216.34/hook"},
		"unknown event": map[string]any{"url": "https://93.184.216.34/hook", "events": []string{"message.deleted"}},
		"no url":        map[string]any{},
	} {
		if res := ts.api(t, app.APIKey, http.MethodPost, "/webhooks", body); res.Status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, res.Status, res.Body)
		}
	}
	if res := ts.api(t, app.APIKey, http.MethodGet, "/webhooks", nil); res.Status != 200 || strings.Contains(string(res.Body), "whsec_") || !strings.Contains(string(res.Body), added.ID) {
		t.Fatalf("list = %d %s: want the endpoint without its secret", res.Status, res.Body)
	}
	if res := ts.api(t, other.APIKey, http.MethodGet, "/webhooks", nil); strings.Contains(string(res.Body), added.ID) {
		t.Fatalf("another app lists %s", res.Body)
	}
	if res := ts.api(t, other.APIKey, http.MethodDelete, "/webhooks/"+added.ID, nil); res.Status != http.StatusNotFound {
		t.Fatalf("another app's delete = %d", res.Status)
	}
	res = ts.api(t, app.APIKey, http.MethodPost, "/webhooks/"+added.ID+"/rotate-secret", map[string]any{"overlap_seconds": 60})
	if res.Status != 200 || !strings.Contains(string(res.Body), "whsec_") || strings.Contains(string(res.Body), added.Secret) {
		t.Fatalf("rotate = %d %s", res.Status, res.Body)
	}
	if res := ts.api(t, app.APIKey, http.MethodDelete, "/webhooks/"+added.ID, nil); res.Status != http.StatusNoContent {
		t.Fatalf("delete = %d %s", res.Status, res.Body)
	}
}
