package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/password"
	"github.com/parley-chat/parley/internal/store"
)

// The inbox socket is authenticated by the owner's cookie, which a browser
// attaches whichever site opens it: only Parley's own Origin may.

func TestDashboardSocketOrigin(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)

	for _, origin := range []string{
		evilOrigin,
		"", // no Origin header
		"null",
		shopOrigin, // the app's own site
		ts.Origin + "/",
		"https" + ts.Origin[4:],
		strings.ToUpper(ts.Origin),
		ts.Origin + ".evil.example.net",
	} {
		t.Run(fmt.Sprintf("Origin %q", origin), func(t *testing.T) {
			conn, res, err := b.agentSocket(app.ID, origin)
			if err == nil {
				conn.Close()
				t.Fatalf("inbox socket opened from Origin %q", origin)
			}
			if res == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("status = %d, want 403", res.StatusCode)
			}
			var body struct{ Error struct{ Code string } }
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Error.Code != "origin_not_allowed" {
				t.Fatalf("body code = %q (%v), want origin_not_allowed", body.Error.Code, err)
			}
		})
	}
	if n := ts.Hub.Agents(app.ID); n != 0 {
		t.Fatalf("%d agent sockets registered after refused handshakes", n)
	}
	b.inbox(t, app.ID) // Parley's own origin gets in, and is welcomed
}

func TestDashboardSocketAuth(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	signedOut := ts.signIn(t, ann)
	tok := signedOut.token()
	signedOut.post(t, "/logout", nil).wantRedirect(t, "/login")

	for name, b := range map[string]*browser{
		"no cookie":      ts.browser(t),
		"garbage cookie": ts.withCookie(t, "garbage"),
		"signed out":     ts.withCookie(t, tok),
	} {
		conn, res, err := b.agentSocket(app.ID, ts.Origin)
		if err == nil {
			conn.Close()
			t.Fatalf("%s: inbox socket opened", name)
		}
		if res == nil || res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: %v (%v), want 401", name, err, res)
		}
	}
	// A member's cookie on a missing app: 404, as for another owner's app.
	b := ts.signIn(t, ann)
	if _, res, err := b.agentSocket("app_doesnotexist", ts.Origin); err == nil || res == nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("inbox socket of a missing app: %v, want 404", err)
	}
	// Not an upgrade at all.
	res := b.get(t, "/dashboard/apps/"+app.ID+"/ws")
	if res.Status != http.StatusBadRequest && res.Status != http.StatusForbidden {
		t.Fatalf("plain GET of the socket = %d, want 400", res.Status)
	}
}

func TestDashboardSocketLive(t *testing.T) {
	ts := newTestServer(t)
	ann, bob := ts.newOwner(t, "Ann"), ts.newOwner(t, "Bob")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	if err := ts.DB.AddMember(t.Context(), app.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	otherApp := ts.ownerApp(t, ann, store.ModeMonitor)
	a, bb := ts.signIn(t, ann), ts.signIn(t, bob)
	sock := a.inbox(t, app.ID)
	bobSock := bb.inbox(t, app.ID)

	// A user's first message, as it is committed.
	user := ts.connect(t, ts.session(t, fields(app, "user_id", "u1", "name", "Uma")).Token)
	conv := user.startConversation("is anyone there?")
	for name, s := range map[string]*wsClient{"Ann": sock, "Bob": bobSock} {
		f := s.expect("message")
		m := f.msg(t)
		if f.ConversationID != conv || m.Author != "user" || m.Body != "is anyone there?" || m.Seq != 1 {
			t.Fatalf("%s got %s", name, f.raw)
		}
	}
	// The user types.
	user.send(map[string]any{"type": "typing", "conversation_id": conv, "typing": true})
	if f := sock.expect("typing"); f.ConversationID != conv || f.Author != "user" || !f.Typing {
		t.Fatalf("typing frame %s", f.raw)
	}
	bobSock.expect("typing")

	// Another app's traffic never arrives.
	other := ts.connect(t, ts.session(t, fields(otherApp)).Token)
	other.startConversation("elsewhere")

	// Bob answers from the dashboard: Ann sees it, signed with his name.
	bb.post(t, convPath(app, conv, "messages"), url.Values{"body": {"I am"}}).wantStatus(t, http.StatusSeeOther)
	f := sock.expect("message")
	if m := f.msg(t); f.ConversationID != conv || m.Author != "agent" || m.AuthorName != "Bob" || m.Body != "I am" {
		t.Fatalf("Ann got %s, want Bob's reply", f.raw)
	}
	bobSock.expect("message")
	// An agent's reply through the server API arrives too.
	ts.reply(t, app, conv, "via the API")
	if f := sock.expect("message"); f.msg(t).Body != "via the API" {
		t.Fatalf("Ann got %s", f.raw)
	}
	// A status change.
	a.post(t, convPath(app, conv, "status"), url.Values{"status": {"closed"}}).wantStatus(t, http.StatusSeeOther)
	if f := sock.expect("conversation"); f.ConversationID != conv || f.Status != "closed" {
		t.Fatalf("Ann got %s, want the conversation closed", f.raw)
	}

	// The socket is receive-only.
	sock.send(map[string]any{"type": "send", "body": "x"})
	sock.expectClose(websocket.ClosePolicyViolation)
}

func TestDashboardSocketSignOut(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	laptop, phone := ts.signIn(t, ann), ts.signIn(t, ann)
	s1, s2 := laptop.inbox(t, app.ID), laptop.inbox(t, app.ID)
	onPhone := phone.inbox(t, app.ID)

	laptop.post(t, "/logout", nil).wantRedirect(t, "/login")
	s1.expectClose(4001)
	s2.expectClose(4001)
	// The phone's sign-in is another session: its socket stays.
	user := ts.connect(t, ts.session(t, fields(app)).Token)
	user.startConversation("hello")
	onPhone.expect("message")
	if n := ts.Hub.Agents(app.ID); n != 1 {
		t.Fatalf("%d agent sockets open, want 1 (the phone's)", n)
	}
}

func TestDashboardSocketMaxAge(t *testing.T) {
	const maxAge = 3 * time.Second
	ts := newTestServer(t, withOwnerTimeouts(0, maxAge))
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	sock := ts.signIn(t, ann).inbox(t, app.ID)
	// The socket lasts no longer than the sign-in it was opened with.
	start := time.Now()
	sock.expectClose(4001)
	// The expiry is at most maxAge after the socket opened (the sign-in
	// came first); a busy machine may run the timer and deliver the close
	// a moment later, never anywhere near the 60 s a stray keepalive
	// timeout would take.
	if d := time.Since(start); d > maxAge+time.Second {
		t.Fatalf("socket closed %v after opening, want by the session's expiry (%v)", d, maxAge)
	}
}

func TestDashboardSocketSignOutAfterIdle(t *testing.T) {
	// The inbox tab stayed open (the socket does not count as activity)
	// until the sign-in idled out; then the owner signs out. The socket must
	// close: it would otherwise stream every new message until the
	// sign-in's absolute expiry, days later.
	const idle = 2 * time.Second
	ts := newTestServer(t, withOwnerTimeouts(idle, 0))
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	tok := b.token()
	sock := b.inbox(t, app.ID)
	time.Sleep(idle + 300*time.Millisecond)

	ts.withCookie(t, tok).post(t, "/logout", nil).wantRedirect(t, "/login")
	user := ts.connect(t, ts.session(t, fields(app)).Token)
	user.startConversation("private details")
	sock.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	_, data, err := sock.conn.ReadMessage()
	if err == nil {
		t.Fatalf("after sign-out the inbox socket still receives: %s", data)
	}
	if !websocket.IsCloseError(err, 4001) {
		t.Fatalf("socket ended with %v, want close code 4001", err)
	}
}

// What ends a sign-in or a membership outside this process (the CLI's
// set-password, another server's removal) also ends the inbox socket.
func TestDashboardSocketRechecksAccess(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	ann := ts.newOwner(t, "Ann")
	bob := ts.newOwner(t, "Bob")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	if err := ts.DB.AddMember(ctx, app.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	annSock := ts.signIn(t, ann).inbox(t, app.ID)
	bobSock := ts.signIn(t, bob).inbox(t, app.ID)

	// Still allowed: the sockets stay open and keep receiving.
	time.Sleep(300 * time.Millisecond)
	user := ts.connect(t, ts.session(t, fields(app)).Token)
	user.startConversation("hello")
	annSock.expect("message")
	bobSock.expect("message")

	hash, err := password.Hash("a new passphrase for ann")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.DB.SetOwnerPassword(ctx, ann.ID, hash); err != nil {
		t.Fatal(err)
	}
	annSock.expectClose(4001)

	if err := ts.DB.RemoveMember(ctx, app.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	bobSock.expectClose(4001)
}

// A sign-out, a password change or a removed membership on one node
// closes the inbox sockets open on another: the ends go through the
// database, which every node follows, not through the recheck (an hour
// here).
func TestOwnerEndsCloseInboxSocketsOnEveryNode(t *testing.T) {
	a := newTestServer(t)
	b := a.secondNode(t)
	a.Hub.AgentRecheck, b.Hub.AgentRecheck = time.Hour, time.Hour
	ctx := context.Background()
	ann := a.newOwner(t, "Ann")
	bob := a.newOwner(t, "Bob")
	app := a.ownerApp(t, ann, store.ModeMonitor)
	if err := a.DB.AddMember(ctx, app.ID, bob.ID); err != nil {
		t.Fatal(err)
	}

	laptop := a.signIn(t, ann)
	onB := b.withCookie(t, laptop.token()).inbox(t, app.ID)
	other := b.withCookie(t, a.signIn(t, ann).token()).inbox(t, app.ID) // another sign-in of Ann's
	laptop.post(t, "/logout", nil).wantRedirect(t, "/login")
	onB.expectClose(4001)
	user := b.connect(t, b.session(t, fields(app)).Token)
	user.startConversation("hello")
	other.expect("message") // only the signed-out session's socket closed

	hash, err := password.Hash("a new passphrase for ann")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DB.SetOwnerPassword(ctx, ann.ID, hash); err != nil {
		t.Fatal(err)
	}
	other.expectClose(4001)

	bobSock := b.withCookie(t, a.signIn(t, bob).token()).inbox(t, app.ID)
	if err := a.DB.RemoveMember(ctx, app.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	bobSock.expectClose(4001)
}
