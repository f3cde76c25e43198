package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

func TestAPIKeyRequired(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	other := ts.newApp(t, store.ModeEnforced)
	conv := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token).startConversation("hello")
	rotated := ts.newApp(t, store.ModeEnforced)
	if _, err := ts.DB.RotateAPIKey(context.Background(), rotated.ID); err != nil {
		t.Fatal(err)
	}

	routes := []struct{ method, path string }{
		{"GET", "/api/v1/conversations"},
		{"GET", "/api/v1/conversations/" + conv},
		{"GET", "/api/v1/conversations/" + conv + "/messages"},
		{"POST", "/api/v1/conversations/" + conv + "/messages"},
		{"POST", "/api/v1/conversations/" + conv + "/typing"},
		{"PATCH", "/api/v1/conversations/" + conv},
	}
	auths := []struct {
		name, header, challenge string
	}{
		{"no Authorization", "", `Bearer realm="parley"`},
		{"empty bearer", "Bearer ", `Bearer realm="parley"`},
		{"basic auth", "Basic " + app.APIKey, `Bearer realm="parley"`},
		{"key without a scheme", app.APIKey, `Bearer realm="parley"`},
		{"garbage key", "Bearer nope", `Bearer realm="parley", error="invalid_token"`},
		{"well-formed key never issued", "Bearer psk_" + strings.Repeat("A", 43), `Bearer realm="parley", error="invalid_token"`},
		{"key with a suffix", "Bearer " + app.APIKey + "x", `Bearer realm="parley", error="invalid_token"`},
		{"identity secret instead of the key", "Bearer " + app.Secret, `Bearer realm="parley", error="invalid_token"`},
		{"rotated-away key", "Bearer " + rotated.APIKey, `Bearer realm="parley", error="invalid_token"`},
	}
	for _, a := range auths {
		for _, r := range routes {
			t.Run(a.name+" "+r.method+" "+r.path, func(t *testing.T) {
				hdr := http.Header{"Content-Type": {"application/json"}}
				if a.header != "" {
					hdr.Set("Authorization", a.header)
				}
				res := ts.do(t, r.method, r.path, hdr, strings.NewReader(`{"body":"pwned"}`))
				res.wantError(t, http.StatusUnauthorized, "unauthorized")
				if got := res.Header.Get("WWW-Authenticate"); got != a.challenge {
					t.Errorf("WWW-Authenticate = %q, want %q", got, a.challenge)
				}
				if got := res.Header.Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", got)
				}
			})
		}
	}
	if got := ts.count(t, `SELECT count(*) FROM messages`); got != 1 {
		t.Fatalf("%d messages after unauthenticated posts, want 1", got)
	}
	// Another app's valid key authenticates, but only for that app (below).
	if res := ts.api(t, other.APIKey, http.MethodGet, "/conversations", nil); res.Status != http.StatusOK {
		t.Fatalf("valid key: status %d, want 200", res.Status)
	}
}

func TestAPIOtherAppsConversations(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	other := ts.newApp(t, store.ModeEnforced)
	user := ts.connect(t, ts.session(t, verifiedUser(app, "user-42", "email", "ada@example.com")).Token)
	conv := user.startConversation("secret: my order")

	tests := []struct {
		method, path string
		body         any
	}{
		{"GET", "/conversations/" + conv, nil},
		{"GET", "/conversations/" + conv + "/messages", nil},
		{"POST", "/conversations/" + conv + "/messages", map[string]any{"body": "injected"}},
		{"POST", "/conversations/" + conv + "/typing", map[string]any{"typing": true}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := ts.api(t, other.APIKey, tt.method, tt.path, tt.body)
			res.wantError(t, http.StatusNotFound, "conversation_not_found")
			if strings.Contains(string(res.Body), "secret") || strings.Contains(string(res.Body), "ada@") {
				t.Fatalf("404 body leaks data: %s", res.Body)
			}
			// The owner's key works on the same route.
			if res := ts.api(t, app.APIKey, tt.method, tt.path, tt.body); res.Status >= 300 {
				t.Fatalf("with the owner's key: status %d %s", res.Status, res.Body)
			}
		})
	}
	// Only the owner's reply was written and delivered.
	if got := ts.count(t, `SELECT count(*) FROM messages WHERE conversation_id = ?`, conv); got != 2 {
		t.Fatalf("%d messages in the conversation, want 2 (the user's and the owner's reply)", got)
	}
	user.expect("message")
	user.expect("unread")
	user.expect("typing")
	user.ping()

	var list struct{ Conversations []struct{ ID string } }
	ts.api(t, other.APIKey, http.MethodGet, "/conversations", nil).decode(t, &list)
	if len(list.Conversations) != 0 {
		t.Fatalf("another app lists %+v, want nothing", list.Conversations)
	}
}

var idPattern = regexp.MustCompile(`^(cnv|msg)_[a-z2-7]{16}$`)

func TestAPIIDsAreRandom(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	c := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token)
	var convs, msgs []string
	for i := range 8 {
		ack := c.sendMessage("", fmt.Sprintf("m-%d", i), "hello")
		convs = append(convs, ack.Conversation.ID)
		msgs = append(msgs, ack.msg(t).ID)
	}
	for _, ids := range [][]string{convs, msgs} {
		for i, a := range ids {
			if !idPattern.MatchString(a) {
				t.Fatalf("id %q does not look like prefix + 80 random bits", a)
			}
			// Sequential or time-based ids share most characters; random
			// ones almost never agree in more than a few places.
			for _, b := range ids[i+1:] {
				same := 0
				for k := 4; k < len(a); k++ {
					if a[k] == b[k] {
						same++
					}
				}
				if same > 8 {
					t.Fatalf("ids %s and %s agree in %d of 16 places; they look sequential", a, b, same)
				}
			}
		}
	}
}

// conversationListing is the raw shape of GET /api/v1/conversations.
type conversationListing struct {
	Conversations []map[string]json.RawMessage `json:"conversations"`
}

func TestAPIListConversations(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	ada := ts.connect(t, ts.session(t, verifiedUser(app, "user-42", "email", "ada@example.com", "name", "Ada")).Token)
	adaConv := ada.startConversation("where is my order?")
	ada.sendMessage(adaConv, "m-2", "order 1234")
	visitorConv := ts.connect(t, ts.session(t, fields(app)).Token).startConversation("hi")
	ts.reply(t, app, visitorConv, "hello!")

	res := ts.api(t, app.APIKey, http.MethodGet, "/conversations", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("status = %d %s", res.Status, res.Body)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	var raw conversationListing
	res.decode(t, &raw)
	if len(raw.Conversations) != 2 {
		t.Fatalf("listed %d conversations, want 2: %s", len(raw.Conversations), res.Body)
	}
	for _, c := range raw.Conversations {
		for _, key := range []string{"id", "status", "created_at", "last_message_at", "message_count", "last_message", "user"} {
			if _, ok := c[key]; !ok {
				t.Errorf("conversation %s lacks %q", res.Body, key)
			}
		}
		var u map[string]json.RawMessage
		json.Unmarshal(c["user"], &u)
		for _, key := range []string{"user_id", "email", "name", "verified", "anonymous", "last_seen_at"} {
			if _, ok := u[key]; !ok {
				t.Errorf("user %s lacks %q", c["user"], key)
			}
		}
	}

	type listed struct {
		ID           string
		Status       string
		MessageCount int64            `json:"message_count"`
		LastMessage  chat.MessageJSON `json:"last_message"`
		User         struct {
			UserID    string `json:"user_id"`
			Email     string
			Name      string
			Verified  bool
			Anonymous bool
		}
	}
	var list struct{ Conversations []listed }
	res.decode(t, &list)
	byID := map[string]listed{}
	for _, c := range list.Conversations {
		byID[c.ID] = c
	}
	a := byID[adaConv]
	if a.Status != "open" || a.MessageCount != 2 || a.LastMessage.Body != "order 1234" || a.LastMessage.Author != "user" {
		t.Errorf("Ada's conversation = %+v, want open, 2 messages, last \"order 1234\"", a)
	}
	if u := a.User; u.UserID != "user-42" || u.Email != "ada@example.com" || u.Name != "Ada" || !u.Verified || u.Anonymous {
		t.Errorf("Ada = %+v, want verified user-42 ada@example.com Ada", u)
	}
	v := byID[visitorConv]
	if v.MessageCount != 2 || v.LastMessage.Author != "agent" || v.LastMessage.AuthorName != "Ann" {
		t.Errorf("visitor's conversation = %+v, want the agent's reply last", v)
	}
	if u := v.User; u.UserID != "" || u.Email != "" || u.Verified || !u.Anonymous {
		t.Errorf("visitor = %+v, want anonymous and unverified", u)
	}

	// GET one conversation: the same shape.
	var one listed
	ts.api(t, app.APIKey, http.MethodGet, "/conversations/"+adaConv, nil).decode(t, &one)
	if one.ID != adaConv || one.User.UserID != "user-42" || one.MessageCount != 2 {
		t.Errorf("GET conversation = %+v, want Ada's", one)
	}
}

func TestAPIStatusFilterAndLimits(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	c := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token)
	open := c.startConversation("one")
	closed := c.startConversation("two")
	// There is no API to close a conversation yet; do it in the database.
	if _, err := ts.rawDB(t).Exec(`UPDATE conversations SET status = 'closed' WHERE id = ?`, closed); err != nil {
		t.Fatal(err)
	}

	ids := func(query string) []string {
		t.Helper()
		res := ts.api(t, app.APIKey, http.MethodGet, "/conversations"+query, nil)
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", query, res.Status, res.Body)
		}
		var out struct{ Conversations []struct{ ID string } }
		res.decode(t, &out)
		var got []string
		for _, c := range out.Conversations {
			got = append(got, c.ID)
		}
		sort.Strings(got)
		return got
	}
	both := []string{open, closed}
	sort.Strings(both)
	for query, want := range map[string][]string{
		"":               both,
		"?status=all":    both,
		"?status=open":   {open},
		"?status=closed": {closed},
	} {
		if got := ids(query); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("GET /conversations%s = %v, want %v", query, got, want)
		}
	}
	if got := ids("?limit=1"); len(got) != 1 {
		t.Errorf("limit=1 listed %d", len(got))
	}
	for _, query := range []string{
		"/conversations?status=pending", "/conversations?status=OPEN", "/conversations?limit=0",
		"/conversations?limit=201", "/conversations?limit=ten", "/conversations?limit=-1",
		"/conversations/" + open + "/messages?after_seq=-1", "/conversations/" + open + "/messages?after_seq=x",
		"/conversations/" + open + "/messages?limit=0", "/conversations/" + open + "/messages?limit=1000",
	} {
		ts.api(t, app.APIKey, http.MethodGet, query, nil).wantError(t, http.StatusBadRequest, "invalid_request")
	}

	// A user writing into a closed conversation reopens it.
	c.sendMessage(closed, "again", "still there?")
	if got := ids("?status=closed"); len(got) != 0 {
		t.Errorf("closed conversations after the user wrote = %v, want none", got)
	}
}

func TestAPIMessagesPaging(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	conv := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token).startConversation("m1")
	for i := 2; i <= 5; i++ {
		ts.reply(t, app, conv, fmt.Sprintf("m%d", i))
	}
	var page struct {
		Messages []chat.MessageJSON
		HasMore  bool `json:"has_more"`
	}
	ts.api(t, app.APIKey, http.MethodGet, "/conversations/"+conv+"/messages?after_seq=1&limit=2", nil).decode(t, &page)
	if len(page.Messages) != 2 || page.Messages[0].Seq != 2 || page.Messages[1].Seq != 3 || !page.HasMore {
		t.Fatalf("page = %+v, want seq 2 and 3 with more to come", page)
	}
	ts.api(t, app.APIKey, http.MethodGet, "/conversations/"+conv+"/messages?after_seq=3", nil).decode(t, &page)
	if len(page.Messages) != 2 || page.Messages[0].Body != "m4" || page.Messages[1].Body != "m5" || page.HasMore {
		t.Fatalf("page = %+v, want m4 and m5, no more", page)
	}
	if res := ts.api(t, app.APIKey, http.MethodGet, "/conversations/"+conv+"/messages?after_seq=5", nil); !strings.Contains(string(res.Body), `"messages":[]`) {
		t.Fatalf("empty page = %s, want \"messages\":[] (not null)", res.Body)
	}
}

func TestAPIReplyValidation(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	user := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token)
	conv := user.startConversation("hello")
	path := "/conversations/" + conv + "/messages"

	tests := []struct {
		name        string
		contentType string
		body        any
		status      int
		code        string
	}{
		{"empty body", "", map[string]any{"body": ""}, 400, "invalid_request"},
		{"no body field", "", map[string]any{"author_name": "Ann"}, 400, "invalid_request"},
		{"only whitespace", "", map[string]any{"body": " \n "}, 400, "invalid_request"},
		{"body over 4000 bytes", "", map[string]any{"body": strings.Repeat("a", chat.MaxBodyBytes+1)}, 400, "invalid_request"},
		{"control character", "", map[string]any{"body": "hi\x00there"}, 400, "invalid_request"},
		{"author_name with a control character", "", map[string]any{"body": "hi", "author_name": "Ann\x1b"}, 400, "invalid_request"},
		{"author_name over 255 bytes", "", map[string]any{"body": "hi", "author_name": strings.Repeat("A", 256)}, 400, "invalid_request"},
		{"unknown field", "", map[string]any{"body": "hi", "author": "user"}, 400, "invalid_json"},
		{"body of the wrong type", "", map[string]any{"body": 42}, 400, "invalid_json"},
		{"malformed JSON", "", `{"body":`, 400, "invalid_json"},
		{"empty request", "", ``, 400, "invalid_json"},
		{"request over 64 KiB", "", map[string]any{"body": strings.Repeat("a", 65<<10)}, 400, "body_too_large"},
		{"text/plain", "text/plain", map[string]any{"body": "hi"}, 415, "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{"Authorization": {"Bearer " + app.APIKey}, "Content-Type": {"application/json"}}
			if tt.contentType != "" {
				hdr.Set("Content-Type", tt.contentType)
			}
			ts.do(t, http.MethodPost, "/api/v1"+path, hdr, jsonBody(t, tt.body)).wantError(t, tt.status, tt.code)
		})
	}
	if got := ts.count(t, `SELECT count(*) FROM messages`); got != 1 {
		t.Fatalf("%d messages after refused replies, want 1", got)
	}
	user.ping() // and nothing was delivered

	// Unknown conversation.
	ts.api(t, app.APIKey, http.MethodPost, "/conversations/cnv_aaaaaaaaaaaaaaaa/messages", map[string]any{"body": "hi"}).
		wantError(t, http.StatusNotFound, "conversation_not_found")

	// The limit is not off by one.
	long := strings.Repeat("a", chat.MaxBodyBytes)
	if got := ts.reply(t, app, conv, long); got.Body != long || got.Seq != 2 || got.Author != "agent" {
		t.Fatalf("4000-byte reply = %+v", got)
	}
}

func TestAPITyping(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	user := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token)
	other := ts.connect(t, ts.session(t, verifiedUser(app, "user-43")).Token)
	conv := user.startConversation("hello")
	path := "/conversations/" + conv + "/typing"

	for _, typing := range []bool{true, false} {
		res := ts.api(t, app.APIKey, http.MethodPost, path, map[string]any{"typing": typing, "author_name": "Ann"})
		if res.Status != http.StatusNoContent {
			t.Fatalf("typing = %d %s, want 204", res.Status, res.Body)
		}
		f := user.expect("typing")
		if f.ConversationID != conv || f.Author != "agent" || f.AuthorName != "Ann" || f.Typing != typing {
			t.Fatalf("typing frame = %s, want agent Ann typing=%v in %s", f.raw, typing, conv)
		}
	}
	other.ping()

	ts.api(t, app.APIKey, http.MethodPost, path, map[string]any{"typing": true, "admin": true}).wantError(t, http.StatusBadRequest, "invalid_json")
	ts.api(t, app.APIKey, http.MethodPost, path, map[string]any{"typing": true, "author_name": "A\nB"}).wantError(t, http.StatusBadRequest, "invalid_request")
	ts.api(t, app.APIKey, http.MethodPost, "/conversations/cnv_aaaaaaaaaaaaaaaa/typing", map[string]any{"typing": true}).
		wantError(t, http.StatusNotFound, "conversation_not_found")
	user.ping()
}

// The auth scheme is case-insensitive (RFC 9110 §11.1); backends that send
// "bearer" must not be locked out.
func TestAPIBearerSchemeIsCaseInsensitive(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		res := ts.do(t, "GET", "/api/v1/conversations", http.Header{"Authorization": {scheme + " " + app.APIKey}}, nil)
		if res.Status != http.StatusOK {
			t.Errorf("%s: status %d, want 200", scheme, res.Status)
		}
	}
}

func TestAPICloseAndReopen(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	other := ts.newApp(t, store.ModeEnforced)
	user := ts.connect(t, ts.session(t, verifiedUser(app, "user-42")).Token)
	conv := user.startConversation("hello")
	path := "/conversations/" + conv

	for _, status := range []string{"closed", "open", "closed"} {
		var got struct{ ID, Status string }
		res := ts.api(t, app.APIKey, http.MethodPatch, path, map[string]any{"status": status})
		if res.Status != http.StatusOK {
			t.Fatalf("PATCH status=%s: %d %s", status, res.Status, res.Body)
		}
		res.decode(t, &got)
		if got.ID != conv || got.Status != status {
			t.Fatalf("PATCH answered %+v, want %s %s", got, conv, status)
		}
		var list struct{ Conversations []struct{ ID string } }
		ts.api(t, app.APIKey, http.MethodGet, "/conversations?status="+status, nil).decode(t, &list)
		if len(list.Conversations) != 1 || list.Conversations[0].ID != conv {
			t.Fatalf("status=%s lists %+v, want %s", status, list.Conversations, conv)
		}
	}

	ts.api(t, app.APIKey, http.MethodPatch, path, map[string]any{"status": "archived"}).wantError(t, http.StatusBadRequest, "invalid_request")
	ts.api(t, app.APIKey, http.MethodPatch, path, map[string]any{"status": "open", "x": 1}).wantError(t, http.StatusBadRequest, "invalid_json")
	ts.api(t, other.APIKey, http.MethodPatch, path, map[string]any{"status": "open"}).wantError(t, http.StatusNotFound, "conversation_not_found")
	if got := ts.count(t, `SELECT count(*) FROM conversations WHERE id = ? AND status = 'closed'`, conv); got != 1 {
		t.Fatal("a refused PATCH changed the status")
	}

	// The user writing again reopens it.
	user.sendMessage(conv, "again-1", "one more thing")
	if got := ts.count(t, `SELECT count(*) FROM conversations WHERE id = ? AND status = 'open'`, conv); got != 1 {
		t.Fatal("a user's message did not reopen the conversation")
	}
}
