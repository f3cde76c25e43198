package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/store"
)

// Identity JWTs over HTTP: what POST /api/widget/sessions accepts and
// refuses, against a real server and database.

// kid is the id of the app's current identity secret.
func (ts *testServer) kid(t *testing.T, app testApp) string {
	t.Helper()
	a, err := ts.DB.App(context.Background(), app.ID)
	if err != nil {
		t.Fatalf("App: %v", err)
	}
	return a.IdentitySecretID
}

// userClaims are a well-formed token's claims for sub, changed by kv
// pairs (a nil value removes the claim). The jti is random.
func userClaims(app testApp, sub string, kv ...any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": sub, "aud": app.ID, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": rand.Text()}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// signJWT signs claims with method and secret, naming kid ("" for none).
func signJWT(t *testing.T, m jwt.SigningMethod, kid, secret string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

// userJWT is a valid token for sub, as the owner's backend mints it.
func (ts *testServer) userJWT(t *testing.T, app testApp, sub string, kv ...any) string {
	t.Helper()
	return signJWT(t, jwt.SigningMethodHS256, ts.kid(t, app), app.Secret, userClaims(app, sub, kv...))
}

// jwtUser is the session request of a user with an identity JWT.
func jwtUser(app testApp, token string, kv ...any) map[string]any {
	return fields(app, append([]any{"user_jwt", token}, kv...)...)
}

func (ts *testServer) setApp(t *testing.T, app testApp, change func(*store.AppSettings)) {
	t.Helper()
	a, err := ts.DB.App(context.Background(), app.ID)
	if err != nil {
		t.Fatalf("App: %v", err)
	}
	s := store.AppSettings{Name: a.Name, Origins: a.Origins, IdentityMode: a.IdentityMode, RequireJWT: a.RequireJWT, RefuseAnonymous: a.RefuseAnonymous}
	change(&s)
	if _, err := ts.DB.UpdateApp(context.Background(), app.ID, s); err != nil {
		t.Fatalf("UpdateApp: %v", err)
	}
}

// sessionSecret is the secret_id the sessions table keeps for a token.
func (ts *testServer) sessionSecret(t *testing.T, token string) string {
	t.Helper()
	var id *string
	if err := ts.rawDB(t).QueryRow(`SELECT secret_id FROM sessions WHERE token_hash = ?`, identity.TokenHash(token)).Scan(&id); err != nil {
		t.Fatalf("looking up the session: %v", err)
	}
	if id == nil {
		return ""
	}
	return *id
}

func TestJWTSessionAccepted(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	kid := ts.kid(t, app)

	s := ts.session(t, jwtUser(app, ts.userJWT(t, app, "user-42", "email", "ann@example.com", "name", "Ann")))
	if !s.Verified || s.Anonymous || s.VisitorToken != "" {
		t.Fatalf("JWT session = %+v, want verified, not anonymous, no visitor token", s)
	}
	subj := ts.subjectOfSession(t, app, s.Token)
	if subj.Kind != store.KindUser || subj.UserID != "user-42" || subj.Email != "ann@example.com" || subj.Name != "Ann" || !subj.EmailSigned || !subj.NameSigned {
		t.Fatalf("subject = %+v, want verified user-42 with signed email and name", subj)
	}
	if got := ts.sessionSecret(t, s.Token); got != kid {
		t.Fatalf("session secret_id = %q, want the kid %q", got, kid)
	}

	// A user_hash for the same user_id speaks for the same subject, and
	// records the secret it matched too.
	h := ts.session(t, verifiedUser(app, "user-42"))
	if got := ts.subjectOfSession(t, app, h.Token); got.ID != subj.ID {
		t.Fatalf("user_hash session's subject %s, JWT session's %s: want one subject", got.ID, subj.ID)
	}
	if got := ts.sessionSecret(t, h.Token); got != kid {
		t.Fatalf("user_hash session secret_id = %q, want %q", got, kid)
	}
	if n := ts.count(t, `SELECT count(*) FROM sessions WHERE secret_id = ?`, kid); n != 2 {
		t.Fatalf("%d sessions name the secret, want 2", n)
	}
	v := ts.session(t, fields(app))
	if got := ts.sessionSecret(t, v.Token); got != "" {
		t.Fatalf("visitor session secret_id = %q, want none", got)
	}

	// What the user wrote in one session is theirs in the other.
	w := ts.connect(t, s.Token)
	conv := w.startConversation("hello from the JWT session")
	if list := ts.connect(t, h.Token).ping().Conversations; len(list) != 1 || list[0].ID != conv {
		t.Fatalf("user_hash session sees %+v, want conversation %s", list, conv)
	}

	// user_id may come along if it is the sub; page-sent email and name
	// fill in what the token lacks and stay unsigned.
	s = ts.session(t, jwtUser(app, ts.userJWT(t, app, "user-7"), "user_id", "user-7", "email", "page@example.com", "name", "Page Name"))
	subj = ts.subjectOfSession(t, app, s.Token)
	if subj.Email != "page@example.com" || subj.Name != "Page Name" || subj.EmailSigned || subj.NameSigned {
		t.Fatalf("subject = %+v, want the page's email and name, unsigned", subj)
	}
	// A token's email wins over the page's.
	s = ts.session(t, jwtUser(app, ts.userJWT(t, app, "user-8", "email", "signed@example.com"), "email", "page@example.com", "name", "Page Name"))
	subj = ts.subjectOfSession(t, app, s.Token)
	if subj.Email != "signed@example.com" || !subj.EmailSigned || subj.Name != "Page Name" || subj.NameSigned {
		t.Fatalf("subject = %+v, want the signed email and the page's unsigned name", subj)
	}
}

func TestJWTSessionPreviousSecret(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	oldKid, oldSecret := ts.kid(t, app), app.Secret
	next, err := ts.DB.RotateIdentitySecret(context.Background(), app.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// Both secrets work while the old one is in its grace period.
	for kid, secret := range map[string]string{oldKid: oldSecret, next.ID: next.Secret} {
		s := ts.session(t, jwtUser(app, signJWT(t, jwt.SigningMethodHS256, kid, secret, userClaims(app, "user-1"))))
		if got := ts.sessionSecret(t, s.Token); got != kid {
			t.Fatalf("session secret_id = %q, want %q", got, kid)
		}
	}
	// A token naming one secret but signed with the other is refused.
	res := ts.postSession(t, jwtUser(app, signJWT(t, jwt.SigningMethodHS256, next.ID, oldSecret, userClaims(app, "user-1"))))
	res.wantError(t, http.StatusUnauthorized, "identity_jwt_invalid")

	// Once the old secret has expired, its kid is unknown.
	if _, err := ts.rawDB(t).Exec(`UPDATE identity_secrets SET expires_at = ? WHERE id = ?`, time.Now().Add(-time.Second).UnixMilli(), oldKid); err != nil {
		t.Fatal(err)
	}
	res = ts.postSession(t, jwtUser(app, signJWT(t, jwt.SigningMethodHS256, oldKid, oldSecret, userClaims(app, "user-1"))))
	res.wantError(t, http.StatusUnauthorized, "identity_jwt_invalid")
	if msg := errorMessage(t, res); !strings.Contains(msg, "kid") {
		t.Fatalf("message %q does not name the kid as the problem", msg)
	}
}

// errorMessage is the message of an {"error":{…}} body.
func errorMessage(t *testing.T, res httpResult) string {
	t.Helper()
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	res.decode(t, &e)
	return e.Error.Message
}

func TestJWTSessionRefusals(t *testing.T) {
	ts := newTestServer(t)
	// Monitor mode lets unproven users in as unverified, but a bad token
	// is never downgraded: it is refused in both modes.
	for _, mode := range []string{store.ModeEnforced, store.ModeMonitor} {
		app := ts.newApp(t, mode)
		other := ts.newApp(t, mode)
		kid := ts.kid(t, app)
		hs := func(claims jwt.MapClaims) string { return signJWT(t, jwt.SigningMethodHS256, kid, app.Secret, claims) }
		good := ts.userJWT(t, app, "user-1")
		parts := strings.Split(good, ".")
		now := time.Now()
		unsigned := func(header map[string]any) string {
			h, _ := json.Marshal(header)
			return base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "."
		}

		for name, tc := range map[string]struct {
			body map[string]any
			why  string
		}{
			"alg none":           {jwtUser(app, unsigned(map[string]any{"alg": "none", "kid": kid})), "alg"},
			"HS384":              {jwtUser(app, signJWT(t, jwt.SigningMethodHS384, kid, app.Secret, userClaims(app, "user-1"))), "alg"},
			"RS256 header":       {jwtUser(app, unsigned(map[string]any{"alg": "RS256", "kid": kid})+parts[2]), "alg"},
			"missing exp":        {jwtUser(app, hs(userClaims(app, "user-1", "exp", nil))), "exp"},
			"expired":            {jwtUser(app, hs(userClaims(app, "user-1", "iat", now.Add(-20*time.Minute).Unix(), "exp", now.Add(-5*time.Minute).Unix()))), "expired"},
			"exp over iat + 1h":  {jwtUser(app, hs(userClaims(app, "user-1", "exp", now.Add(2*time.Hour).Unix()))), "1 hour"},
			"exp quoted":         {jwtUser(app, hs(userClaims(app, "user-1", "exp", strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10)))), "numbers"},
			"iat quoted":         {jwtUser(app, hs(userClaims(app, "user-1", "iat", strconv.FormatInt(now.Unix(), 10)))), "numbers"},
			"nbf quoted":         {jwtUser(app, hs(userClaims(app, "user-1", "nbf", strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)))), "numbers"},
			"missing iat":        {jwtUser(app, hs(userClaims(app, "user-1", "iat", nil))), "iat"},
			"future iat":         {jwtUser(app, hs(userClaims(app, "user-1", "iat", now.Add(5*time.Minute).Unix()))), "iat"},
			"nbf ahead":          {jwtUser(app, hs(userClaims(app, "user-1", "nbf", now.Add(5*time.Minute).Unix()))), "nbf"},
			"wrong aud":          {jwtUser(app, hs(userClaims(app, "user-1", "aud", other.ID))), "aud"},
			"missing aud":        {jwtUser(app, hs(userClaims(app, "user-1", "aud", nil))), "aud"},
			"unknown kid":        {jwtUser(app, signJWT(t, jwt.SigningMethodHS256, "isk_unknownunknownun", app.Secret, userClaims(app, "user-1"))), "kid"},
			"other app's kid":    {jwtUser(app, signJWT(t, jwt.SigningMethodHS256, ts.kid(t, other), other.Secret, userClaims(app, "user-1"))), "kid"},
			"missing kid":        {jwtUser(app, signJWT(t, jwt.SigningMethodHS256, "", app.Secret, userClaims(app, "user-1"))), "kid"},
			"tampered payload":   {jwtUser(app, parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","aud":"`+app.ID+`","iat":`+jsonInt(now.Unix())+`,"exp":`+jsonInt(now.Unix()+60)+`}`))+"."+parts[2]), "signature"},
			"tampered signature": {jwtUser(app, parts[0]+"."+parts[1]+"."+strings.Repeat("A", len(parts[2]))), "signature"},
			"wrong secret":       {jwtUser(app, signJWT(t, jwt.SigningMethodHS256, kid, other.Secret, userClaims(app, "user-1"))), "signature"},
			"oversize":           {jwtUser(app, hs(userClaims(app, "user-1", "pad", strings.Repeat("p", 4096)))), "4096"},
			"garbage":            {jwtUser(app, "not.a-jwt"), "not a JWT"},
			"empty":              {jwtUser(app, ""), "empty"},
			"sub missing":        {jwtUser(app, hs(userClaims(app, "user-1", "sub", nil))), "sub"},
			"sub empty":          {jwtUser(app, hs(userClaims(app, ""))), "sub"},
			"bad email claim":    {jwtUser(app, hs(userClaims(app, "user-1", "email", "not-an-email"))), "email"},
			"user_id is not sub": {jwtUser(app, good, "user_id", "user-2"), "user_id"},
		} {
			res := ts.postSession(t, tc.body)
			if res.Status != http.StatusUnauthorized {
				t.Fatalf("%s, %s: %d %s, want 401", mode, name, res.Status, res.Body)
			}
			res.wantError(t, http.StatusUnauthorized, "identity_jwt_invalid")
			msg := errorMessage(t, res)
			if !strings.Contains(msg, tc.why) {
				t.Errorf("%s, %s: message %q does not say %q", mode, name, msg, tc.why)
			}
			if tok, _ := tc.body["user_jwt"].(string); len(tok) > 20 && strings.Contains(string(res.Body), tok[len(tok)-20:]) {
				t.Errorf("%s, %s: the answer repeats the token", mode, name)
			}
		}
		// A token and a hash at once is a malformed request.
		res := ts.postSession(t, jwtUser(app, good, "user_id", "user-1", "user_hash", identity.UserHash(app.Secret, "user-1")))
		res.wantError(t, http.StatusBadRequest, "invalid_request")
	}
	if n := ts.count(t, `SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("%d sessions were made by refused requests", n)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestJWTReplay(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)

	tok := ts.userJWT(t, app, "user-1", "jti", "once")
	ts.session(t, jwtUser(app, tok))
	ts.postSession(t, jwtUser(app, tok)).wantError(t, http.StatusUnauthorized, "identity_jwt_replayed")
	// The same jti in another token of the app is the same replay.
	ts.postSession(t, jwtUser(app, ts.userJWT(t, app, "user-2", "jti", "once"))).wantError(t, http.StatusUnauthorized, "identity_jwt_replayed")

	// Another jti is fine, and so is the same jti on another app.
	ts.session(t, jwtUser(app, ts.userJWT(t, app, "user-1", "jti", "twice")))
	other := ts.newApp(t, store.ModeEnforced)
	ts.session(t, jwtUser(other, ts.userJWT(t, other, "user-1", "jti", "once")))

	// Without a jti a token is not single-use.
	noJTI := ts.userJWT(t, app, "user-1", "jti", nil)
	ts.session(t, jwtUser(app, noJTI))
	ts.session(t, jwtUser(app, noJTI))

	// The used jti is remembered past exp, for as long as the leeway would
	// still let the token through.
	var exp int64
	if err := ts.rawDB(t).QueryRow(`SELECT expires_at FROM jwt_ids WHERE app_id = ? AND jti = 'once'`, app.ID).Scan(&exp); err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatal(err)
	}
	tokExp, _ := claims.GetExpirationTime()
	if want := tokExp.Add(identity.JWTLeeway).UnixMilli(); exp != want {
		t.Fatalf("jti remembered until %d, want exp + leeway = %d", exp, want)
	}
}

func TestRequireJWT(t *testing.T) {
	ts := newTestServer(t)
	for _, mode := range []string{store.ModeEnforced, store.ModeMonitor} {
		app := ts.newApp(t, mode)
		ts.setApp(t, app, func(s *store.AppSettings) { s.RequireJWT = true })

		// A user_hash, even a valid one, is refused in both modes.
		res := ts.postSession(t, verifiedUser(app, "user-1"))
		res.wantError(t, http.StatusUnauthorized, "identity_jwt_required")
		if msg := errorMessage(t, res); msg != "this app only accepts identity JWTs (user_jwt)" {
			t.Fatalf("%s: message %q", mode, msg)
		}
		ts.postSession(t, fields(app, "email", "ann@example.com", "user_hash", identity.UserHash(app.Secret, "ann@example.com"))).
			wantError(t, http.StatusUnauthorized, "identity_jwt_required")

		if s := ts.session(t, jwtUser(app, ts.userJWT(t, app, "user-1"))); !s.Verified {
			t.Fatalf("%s: JWT session not verified", mode)
		}
		if s := ts.session(t, fields(app)); !s.Anonymous {
			t.Fatalf("%s: anonymous session = %+v", mode, s)
		}

		// A user with no proof at all: refused when enforced, with a message
		// that points at user_jwt; an unverified claim in monitor mode.
		res = ts.postSession(t, fields(app, "user_id", "user-1"))
		if mode == store.ModeMonitor {
			var s sessionJSON
			res.wantStatus(t, http.StatusCreated)
			res.decode(t, &s)
			if s.Verified || s.Anonymous {
				t.Fatalf("monitor, no proof: session = %+v, want unverified", s)
			}
			continue
		}
		res.wantError(t, http.StatusUnauthorized, "identity_hash_missing")
		if msg := errorMessage(t, res); !strings.Contains(msg, "user_jwt") {
			t.Fatalf("message %q does not mention user_jwt", msg)
		}
	}
}

func TestRefuseAnonymous(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	ts.session(t, fields(app)) // allowed until the owner says otherwise
	ts.setApp(t, app, func(s *store.AppSettings) { s.RefuseAnonymous = true })

	for _, body := range []map[string]any{fields(app), fields(app, "name", "Ann"), fields(app, "visitor_token", identity.NewToken("pvt_"))} {
		res := ts.postSession(t, body)
		res.wantError(t, http.StatusForbidden, "anonymous_not_allowed")
		if msg := errorMessage(t, res); msg != "this app does not chat with anonymous visitors; sign in first" {
			t.Fatalf("message %q", msg)
		}
	}
	// Identified users are still fine, proven or (in monitor mode) not.
	if s := ts.session(t, verifiedUser(app, "user-1")); !s.Verified {
		t.Fatal("user_hash session not verified")
	}
	if s := ts.session(t, jwtUser(app, ts.userJWT(t, app, "user-1"))); !s.Verified {
		t.Fatal("JWT session not verified")
	}
	if s := ts.session(t, fields(app, "email", "ann@example.com")); s.Verified || s.Anonymous {
		t.Fatalf("unverified claim = %+v", s)
	}
}

func TestDisabledApp(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	old := ts.session(t, verifiedUser(app, "user-1"))
	if err := ts.DB.SetAppDisabled(context.Background(), app.ID, true); err != nil {
		t.Fatal(err)
	}

	// Nothing starts a chat, and the answer is the same whatever else the
	// request carries.
	for _, body := range []map[string]any{
		fields(app), verifiedUser(app, "user-1"), jwtUser(app, ts.userJWT(t, app, "user-1")),
		fields(app, "parent_origin", evilOrigin), fields(app, "parent_origin", nil), fields(app, "user_jwt", "garbage"),
	} {
		res := ts.postSession(t, body)
		res.wantError(t, http.StatusForbidden, "app_disabled")
		if msg := errorMessage(t, res); msg != "chat is turned off for this app" {
			t.Fatalf("message %q", msg)
		}
	}
	// The open session ended with it.
	c := ts.open(t)
	c.send(map[string]any{"type": "auth", "token": old.Token})
	c.expectError("unauthorized")

	if err := ts.DB.SetAppDisabled(context.Background(), app.ID, false); err != nil {
		t.Fatal(err)
	}
	if s := ts.session(t, verifiedUser(app, "user-1")); !s.Verified {
		t.Fatal("session after re-enabling is not verified")
	}
}

// The Go example on the settings page, compiled and run as it is shown:
// the token it prints opens a session.
func TestJWTGoExampleMintsAcceptedToken(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the example with")
	}
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeEnforced)
	a, err := ts.DB.App(context.Background(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, ex := range handlers.JWTExamples(a) {
		if ex.Lang == "Go" {
			example = ex.Code
		}
	}
	if !strings.Contains(example, app.ID) || !strings.Contains(example, a.IdentitySecretID) || strings.Contains(example, app.Secret) {
		t.Fatalf("Go example names the wrong app or secret:\n%s", example)
	}

	dir := t.TempDir()
	sum, err := os.ReadFile("../go.sum")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.Lines(string(sum)) {
		if strings.HasPrefix(l, "github.com/golang-jwt/jwt/v5 ") {
			lines = append(lines, l)
		}
	}
	files := map[string]string{
		"go.mod":     "module mint\n\ngo 1.22\n\nrequire github.com/golang-jwt/jwt/v5 v5.3.1\n",
		"go.sum":     strings.Join(lines, ""),
		"example.go": "package main\n\n" + example + "\n",
		"main.go": `package main

import (
	"fmt"
	"os"
)

func main() {
	tok, err := parleyUserJWT("user-42", "ann@example.com", "Ann")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(tok)
}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goBin, "run", ".")
	cmd.Dir = dir
	// Offline, from the module cache this repository's build already filled.
	cmd.Env = append(os.Environ(), "PARLEY_IDENTITY_SECRET="+app.Secret, "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go run of the example: %v\n%s", err, stderr)
	}

	s := ts.session(t, jwtUser(app, string(out)))
	subj := ts.subjectOfSession(t, app, s.Token)
	if !s.Verified || subj.UserID != "user-42" || subj.Email != "ann@example.com" || !subj.EmailSigned || subj.Name != "Ann" || !subj.NameSigned {
		t.Fatalf("session of the example's token = %+v, subject %+v", s, subj)
	}
	// Its jti makes it single-use.
	ts.postSession(t, jwtUser(app, string(out))).wantError(t, http.StatusUnauthorized, "identity_jwt_replayed")
}
