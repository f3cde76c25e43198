package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/store"
)

func TestAppsCreateIdentityFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	out, _, err := runCLI(t, "apps", "create", "--db", db, "--name", "Shop", "--origin", "https://shop.example",
		"--require-jwt", "--refuse-anonymous", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		AppID           string `json:"app_id"`
		RequireJWT      bool   `json:"require_jwt"`
		RefuseAnonymous bool   `json:"refuse_anonymous"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || !got.RequireJWT || !got.RefuseAnonymous {
		t.Fatalf("apps create --json = %q (%v), want require_jwt and refuse_anonymous true", out, err)
	}
	app, err := openDB(t, db).App(context.Background(), got.AppID)
	if err != nil || !app.RequireJWT || !app.RefuseAnonymous {
		t.Fatalf("stored app = %+v, %v; want RequireJWT and RefuseAnonymous", app, err)
	}

	out, _, err = runCLI(t, "apps", "create", "--db", db, "--name", "Plain", "--origin", "https://shop.example")
	if err != nil || !strings.Contains(out, "require_jwt:        false") || !strings.Contains(out, "refuse_anonymous:   false") {
		t.Fatalf("apps create = %q, %v; want both flags shown as false", out, err)
	}
}

func TestAppsDisableEnable(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	appID := createApp(t, db)
	disabled := func() bool {
		t.Helper()
		app, err := openDB(t, db).App(context.Background(), appID)
		if err != nil {
			t.Fatal(err)
		}
		return app.Disabled()
	}

	out, _, err := runCLI(t, "apps", "disable", "--db", db, "--app", appID)
	if err != nil || !strings.Contains(out, appID) || !strings.Contains(out, "disabled") {
		t.Fatalf("apps disable = %q, %v", out, err)
	}
	if !disabled() {
		t.Fatal("the app is not disabled")
	}
	// Again: nothing changes, and it still succeeds.
	if _, _, err := runCLI(t, "apps", "disable", "--db", db, "--app", appID); err != nil || !disabled() {
		t.Fatalf("disabling twice: %v", err)
	}

	out, _, err = runCLI(t, "apps", "enable", "--db", db, "--app", appID, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&got); err != nil || dec.More() || got["app_id"] != appID || got["disabled"] != false {
		t.Fatalf("apps enable --json = %q, want one object with app_id and disabled false", out)
	}
	if disabled() {
		t.Fatal("the app is still disabled")
	}
	out, _, err = runCLI(t, "apps", "disable", "--db", db, "--app", appID, "--json")
	if err != nil || !strings.Contains(out, `"disabled":true`) {
		t.Fatalf("apps disable --json = %q, %v", out, err)
	}
}

func TestAppsDisableRefusesBadInput(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	createApp(t, db)
	for name, args := range map[string][]string{
		"no app":       {"apps", "disable", "--db", db},
		"empty app":    {"apps", "enable", "--db", db, "--app", " "},
		"no db":        {"apps", "disable", "--app", "app_x"},
		"stray arg":    {"apps", "disable", "--db", db, "--app", "app_x", "now"},
		"bad flag":     {"apps", "enable", "--db", db, "--app", "app_x", "--force"},
		"unknown verb": {"apps", "delete", "--db", db, "--app", "app_x"},
	} {
		t.Setenv("PARLEY_DB", "")
		out, _, err := runCLI(t, args...)
		if exitCode(err) != 2 || out != "" {
			t.Errorf("%s: err = %v, stdout %q; want a usage error (exit 2) and no output", name, err, out)
		}
	}

	// An unknown app is exit 2, as for the other commands, with a message naming it.
	out, _, err := runCLI(t, "apps", "disable", "--db", db, "--app", "app_nosuchapp")
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "app_nosuchapp") || out != "" {
		t.Fatalf("unknown app: err = %v, stdout %q; want exit 2 naming the app", err, out)
	}

	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, _, err := runCLI(t, "apps", "disable", "--db", missing, "--app", "app_x"); exitCode(err) != 2 {
		t.Fatalf("missing database: err = %v, want a usage error", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("apps disable created a database at a mistyped path")
	}
}

// liveServe is a running `parley serve` on a fresh database with one app.
type liveServe struct {
	db, base string
	app      struct {
		AppID          string `json:"app_id"`
		IdentitySecret string `json:"identity_secret"`
	}
}

func startLiveServe(t *testing.T, flags ...string) *liveServe {
	t.Helper()
	s := &liveServe{db: filepath.Join(t.TempDir(), "parley.db")}
	out, _, err := runCLI(t, "apps", "create", "--db", s.db, "--name", "Shop", "--origin", "https://shop.example", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &s.app); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s.base = "http://" + addr
	t.Cleanup(startServe(t, s.db, addr, flags...))
	return s
}

// postSession asks for an anonymous session as the chat frame does.
func (s *liveServe) postSession(t *testing.T) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"app_id": s.app.AppID, "parent_origin": "https://shop.example"})
	req, _ := http.NewRequest("POST", s.base+"/api/widget/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", s.base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sess struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&sess)
	return resp.StatusCode, sess.Token
}

// widget opens an authenticated widget socket on a new session.
func (s *liveServe) widget(t *testing.T) (*websocket.Conn, string) {
	t.Helper()
	status, token := s.postSession(t)
	if status != http.StatusCreated {
		t.Fatalf("session: %d", status)
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.base, "http")+"/api/widget/ws", http.Header{"Origin": {s.base}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	conn.WriteJSON(map[string]string{"type": "auth", "token": token})
	if f := readFrame(t, conn); f["type"] != "welcome" {
		t.Fatalf("after auth: %v", f)
	}
	return conn, token
}

// expectEnded requires the session_ended frame and close 1008 with reason
// within a second.
func expectEnded(t *testing.T, conn *websocket.Conn, reason string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	if f := readFrame(t, conn); f["type"] != "error" || f["code"] != "session_ended" {
		t.Fatalf("got %v, want session_ended", f)
	}
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != reason {
		t.Fatalf("after session_ended: %v, want close 1008 %q", err, reason)
	}
}

func stillOpen(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	conn.WriteJSON(map[string]string{"type": "list"})
	if f := readFrame(t, conn); f["type"] != "conversations" {
		t.Fatalf("got %v, want conversations", f)
	}
}

// TestAppsDisableClosesSocketsOfARunningServer: `parley apps disable` is
// another process; the running server still closes the app's sockets
// within a second, and its sessions are refused from then on.
func TestAppsDisableClosesSocketsOfARunningServer(t *testing.T) {
	s := startLiveServe(t)
	conn, _ := s.widget(t)
	stillOpen(t, conn)
	if _, _, err := runCLI(t, "apps", "disable", "--db", s.db, "--app", s.app.AppID); err != nil {
		t.Fatal(err)
	}
	expectEnded(t, conn, store.EndAppDisabled)
	if status, _ := s.postSession(t); status != http.StatusForbidden {
		t.Fatalf("session for a disabled app: %d, want 403", status)
	}
	if _, _, err := runCLI(t, "apps", "enable", "--db", s.db, "--app", s.app.AppID); err != nil {
		t.Fatal(err)
	}
	again, _ := s.widget(t)
	stillOpen(t, again)
}

// TestEndsFromAnotherHandleCloseSockets: a session ended through a second
// store.DB on the same file (as any other process would) closes its socket
// within a second; another session's socket stays.
func TestEndsFromAnotherHandleCloseSockets(t *testing.T) {
	s := startLiveServe(t)
	ended, token := s.widget(t)
	other, _ := s.widget(t)
	if err := openDB(t, s.db).EndSession(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	expectEnded(t, ended, store.EndShutdown)
	stillOpen(t, other)
}

// TestServeLimitFlags: the --limit-… flags reach the server; a bad value
// is a usage error.
func TestServeLimitFlags(t *testing.T) {
	s := startLiveServe(t, "--limit-sessions-per-ip", "1,1h")
	if status, _ := s.postSession(t); status != http.StatusCreated {
		t.Fatalf("first session: %d", status)
	}
	if status, _ := s.postSession(t); status != http.StatusTooManyRequests {
		t.Fatalf("second session with a burst of 1: %d, want 429", status)
	}
	db := filepath.Join(t.TempDir(), "p.db")
	for _, bad := range [][]string{
		{"--limit-sessions-per-ip", "20/2s"},
		{"--limit-messages-per-user", "0,1s"},
		{"--limit-open-sockets-per-user", "0"},
		{"--synchronous", "off"},
		{"--synchronous", ""},
	} {
		_, _, err := runCLI(t, append([]string{"serve", "--db", db}, bad...)...)
		if exitCode(err) != 2 {
			t.Errorf("serve %v: err = %v, want a usage error", bad, err)
		}
	}
}

// TestSweep: the minute sweep ends the sessions of an identity secret
// whose grace period ran out; the hourly one forgets day-old session ends.
func TestSweep(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "parley.db")
	appID := createApp(t, dbPath)
	db := openDB(t, dbPath)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app, err := db.App(ctx, appID)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := db.CreateSession(ctx, store.NewSession{AppID: appID, Kind: store.KindUser, IdentityKey: "uid:u1", UserID: "u1",
		ParentOrigin: "https://shop.example", TTL: time.Hour, SecretID: app.IdentitySecretID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RotateIdentitySecret(ctx, appID, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	endExpiredSecretSessions(ctx, db, log)
	if _, err := db.SessionByToken(ctx, sess.Token); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session of the expired secret: %v, want ended", err)
	}
	ends, err := db.SessionEndsAfter(ctx, 0, 10)
	if err != nil || len(ends) != 1 || ends[0].Reason != store.EndSecretRevoked {
		t.Fatalf("session ends = %+v, %v; want one secret_revoked", ends, err)
	}

	housekeeping(ctx, db, log, time.Now())
	if ends, _ := db.SessionEndsAfter(ctx, 0, 10); len(ends) != 1 {
		t.Fatalf("a fresh session end was swept: %+v", ends)
	}
	housekeeping(ctx, db, log, time.Now().Add(sessionEndsKept+time.Minute))
	if ends, _ := db.SessionEndsAfter(ctx, 0, 10); len(ends) != 0 {
		t.Fatalf("day-old session ends were kept: %+v", ends)
	}
}

// The kid that identity JWTs carry is printed with the secret, so a
// backend set up from the CLI can mint a JWT; apps list and apps show
// print ids and settings and never a secret.
func TestAppsListAndShow(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	out, _, err := runCLI(t, "apps", "list", "--db", db)
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("apps list on no database = %q, %v; want exit 2", out, err)
	}
	var created map[string]any
	out, _, err = runCLI(t, "apps", "create", "--db", db, "--name", "Shop", "--origin", "https://shop.example", "--json")
	if err != nil || json.Unmarshal([]byte(out), &created) != nil {
		t.Fatalf("apps create --json = %q, %v", out, err)
	}
	appID, secret, apiKey := created["app_id"].(string), created["identity_secret"].(string), created["api_key"].(string)
	app, err := openDB(t, db).App(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := created["identity_secret_id"], app.IdentitySecretID; got != want {
		t.Fatalf("apps create --json identity_secret_id = %v, want the kid %s", got, want)
	}
	text, _, err := runCLI(t, "apps", "create", "--db", db, "--name", "Blog", "--origin", "https://blog.example", "--identity", "monitor")
	if err != nil || !strings.Contains(text, "identity_secret_id: isk_") {
		t.Fatalf("apps create = %q, %v; want identity_secret_id", text, err)
	}
	if _, _, err := runCLI(t, "apps", "disable", "--db", db, "--app", appID); err != nil {
		t.Fatal(err)
	}

	out, _, err = runCLI(t, "apps", "list", "--db", db, "--json")
	var list struct {
		Apps []map[string]any `json:"apps"`
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Apps) != 2 {
		t.Fatalf("apps list --json = %q, %v; want two apps", out, err)
	}
	if a := list.Apps[0]; a["app_id"] != appID || a["name"] != "Shop" || a["disabled"] != true || a["identity_secret_id"] != app.IdentitySecretID ||
		a["identity_mode"] != "enforced" || list.Apps[1]["identity_mode"] != "monitor" {
		t.Errorf("apps list --json = %v", list.Apps)
	}
	show, _, err := runCLI(t, "apps", "show", "--db", db, "--app", appID, "--json")
	var one map[string]any
	dec := json.NewDecoder(strings.NewReader(show))
	if err != nil || dec.Decode(&one) != nil || dec.More() || one["app_id"] != appID || one["identity_secret_id"] != app.IdentitySecretID {
		t.Fatalf("apps show --json = %q, %v; want one object for %s", show, err, appID)
	}
	listText, _, err := runCLI(t, "apps", "list", "--db", db)
	if err != nil || !strings.Contains(listText, appID) || !strings.Contains(listText, app.IdentitySecretID) {
		t.Fatalf("apps list = %q, %v", listText, err)
	}
	showText, _, err := runCLI(t, "apps", "show", "--db", db, "--app", appID)
	if err != nil || !strings.Contains(showText, "identity_secret_id: "+app.IdentitySecretID) || !strings.Contains(showText, "disabled:           true") {
		t.Fatalf("apps show = %q, %v", showText, err)
	}
	for _, o := range []string{out, show, listText, showText} {
		if strings.Contains(o, secret) || strings.Contains(o, apiKey) || strings.Contains(o, "psk_") {
			t.Fatalf("a secret was shown again: %q", o)
		}
	}

	for name, args := range map[string][]string{
		"unknown app": {"apps", "show", "--db", db, "--app", "app_nope"},
		"no --app":    {"apps", "show", "--db", db},
		"no --db":     {"apps", "list"},
	} {
		t.Setenv("PARLEY_DB", "")
		if out, _, err := runCLI(t, args...); err == nil || exitCode(err) != 2 {
			t.Errorf("%s: %q, %v; want exit 2", name, out, err)
		}
	}
}

// A --db that names a directory, or a file in a directory that does not
// exist, is refused with exit 2 by every command that opens the database,
// and nothing is created: no key file beside it, no database in it.
func TestDBPathThatCannotBeADatabase(t *testing.T) {
	dir := t.TempDir()
	adir := filepath.Join(dir, "adir")
	if err := os.Mkdir(adir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		db, why string
	}{
		{adir, "is a directory"},
		{filepath.Join(dir, "missing", "p.db"), "does not exist"},
	} {
		for _, args := range [][]string{
			{"apps", "create", "--name", "x", "--origin", "https://shop.example"},
			{"apps", "list"},
			{"apps", "show", "--app", "app_x"},
			{"apps", "disable", "--app", "app_x"},
			{"owners", "create", "--email", "a@example.com"},
			{"master-key", "reset", "--forget-identity-secrets"},
		} {
			_, stderr, err := runCLI(t, append(args, "--db", tc.db)...)
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.why) && !strings.Contains(err.Error(), "no database") {
				t.Errorf("%v --db %s: %v (%s), want exit 2 saying it %s", args, tc.db, err, stderr, tc.why)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	inside, _ := os.ReadDir(adir)
	if len(entries) != 1 || len(inside) != 0 {
		t.Fatalf("files were created: %d in the temp dir (want only adir), %d in adir", len(entries), len(inside))
	}
}
