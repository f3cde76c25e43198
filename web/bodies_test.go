package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// TestBodiesThatAreNotTheObject: every route that reads a JSON body (the
// session API, the server API) or that the dashboard's script posts to
// answers a body that is not a JSON object of its shape with a 400 JSON
// error, and changes nothing: JSON's null, an array, a string, a number,
// a boolean, and {} (which names none of the required fields).
func TestBodiesThatAreNotTheObject(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeEnforced)
	dash := ts.signIn(t, ann)
	inbox := dash.inbox(t, app.ID)
	user := ts.connect(t, ts.session(t, verifiedUser(app, "u1")).Token)
	conv := user.startConversation("hello")
	inbox.expect("message")
	before := ts.state(t)
	sessions := ts.count(t, `SELECT count(*) FROM sessions`)

	type route struct {
		name, method, path string
		hdr                http.Header
		send               func(t *testing.T, method, path string, hdr http.Header, body string) httpResult
	}
	server := func(t *testing.T, method, path string, hdr http.Header, body string) httpResult {
		return ts.do(t, method, path, hdr, strings.NewReader(body))
	}
	api := http.Header{"Authorization": {"Bearer " + app.APIKey}, "Content-Type": {"application/json"}}
	// The dashboard's script asks for JSON errors; its routes read forms,
	// so a JSON body carries none of their fields.
	dashboard := http.Header{"Accept": {"application/json"}, "Content-Type": {"application/json"},
		"Origin": {ts.Origin}, "Sec-Fetch-Site": {"same-origin"}}
	routes := []route{
		{"session", http.MethodPost, "/api/widget/sessions", http.Header{"Origin": {ts.Origin}, "Content-Type": {"application/json"}}, server},
		{"API reply", http.MethodPost, "/api/v1/conversations/" + conv + "/messages", api, server},
		{"API typing", http.MethodPost, "/api/v1/conversations/" + conv + "/typing", api, server},
		{"API status", http.MethodPatch, "/api/v1/conversations/" + conv, api, server},
		{"dashboard reply", http.MethodPost, convPath(app, conv, "messages"), dashboard, dash.doBody},
		{"dashboard typing", http.MethodPost, convPath(app, conv, "typing"), dashboard, dash.doBody},
		{"dashboard read", http.MethodPost, convPath(app, conv, "read"), dashboard, dash.doBody},
		{"dashboard status", http.MethodPost, convPath(app, conv, "status"), dashboard, dash.doBody},
	}
	for _, r := range routes {
		for _, body := range []string{`null`, ` null `, `[]`, `[{"typing":true}]`, `"x"`, `1`, `true`, `{}`} {
			t.Run(r.name+" "+body, func(t *testing.T) {
				res := r.send(t, r.method, r.path, r.hdr, body)
				if res.Status != http.StatusBadRequest {
					t.Fatalf("%s %s with body %s = %d %s, want 400", r.method, r.path, body, res.Status, res.Body)
				}
				var e struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(res.Body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
					t.Fatalf("body %s: answer %s is not a JSON error", body, res.Body)
				}
			})
		}
	}
	ts.wantState(t, before, "bodies that are not the route's object")
	if got := ts.count(t, `SELECT count(*) FROM sessions`); got != sessions {
		t.Errorf("%d sessions, want %d", got, sessions)
	}
	// Nothing was relayed: the next frame on each socket answers a ping.
	user.ping()
	user.send(map[string]any{"type": "typing", "conversation_id": conv, "typing": true})
	if f := inbox.next(); f.Type != "typing" || !f.Typing {
		t.Fatalf("inbox got %s, want the user's typing frame and nothing before it", f.raw)
	}
}

// doBody sends a raw body with the browser's cookie.
func (b *browser) doBody(t *testing.T, method, path string, hdr http.Header, body string) httpResult {
	t.Helper()
	return b.do(t, method, path, hdr, strings.NewReader(body))
}
