package identity

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// A fixed clock and an app with a current secret, a previous one still
// accepted and a previous one that has expired.
var (
	jwtNow   = time.Unix(1_800_000_000, 0)
	jwtAppID = "app_testtesttesttest"
)

const (
	currentKid, currentSecret   = "isk_current", "current-secret-0123456789abcdef"
	previousKid, previousSecret = "isk_previous", "previous-secret-0123456789abcdef"
	expiredKid, expiredSecret   = "isk_expired", "expired-secret-0123456789abcdef"
)

// testSecretFor is what store.App.SecretByID does: the current secret,
// or a previous one until it expires.
func testSecretFor(now time.Time) func(string) (string, bool) {
	secrets := map[string]struct {
		secret  string
		expires time.Time
	}{
		currentKid:  {currentSecret, time.Time{}},
		previousKid: {previousSecret, now.Add(time.Hour)},
		expiredKid:  {expiredSecret, now.Add(-time.Second)},
	}
	return func(kid string) (string, bool) {
		s, ok := secrets[kid]
		if !ok || (!s.expires.IsZero() && !now.Before(s.expires)) {
			return "", false
		}
		return s.secret, true
	}
}

// goodClaims are what a well-behaved backend puts in a token.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{"sub": "user-42", "aud": jwtAppID, "iat": jwtNow.Unix(), "exp": jwtNow.Add(10 * time.Minute).Unix(),
		"jti": "jti-1", "email": "ann@example.com", "name": "Ann Example"}
}

// with returns goodClaims changed by kv pairs; a nil value removes the claim.
func with(kv ...any) jwt.MapClaims {
	c := goodClaims()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// mint signs claims as the README's Go example does.
func mint(t testing.TB, m jwt.SigningMethod, kid, secret string, claims jwt.MapClaims) string {
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

// handmade builds a token from any header and claims, HMAC-SHA256-signed
// with secret (or unsigned when secret is empty), for what no library mints.
func handmade(t testing.TB, header, claims any, secret string) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := seg(header) + "." + seg(claims)
	if secret == "" {
		return head + "."
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(head))
	return head + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func parse(raw string) (UserClaims, error) {
	return ParseUserJWT(raw, jwtAppID, testSecretFor(jwtNow), jwtNow)
}

func TestParseUserJWTAccepts(t *testing.T) {
	exp := jwtNow.Add(10 * time.Minute)
	for name, tc := range map[string]struct {
		raw  string
		want UserClaims
	}{
		"current secret, every claim": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, goodClaims()),
			UserClaims{Subject: "user-42", Email: "ann@example.com", Name: "Ann Example", ID: "jti-1", ExpiresAt: exp, KeyID: currentKid}},
		"previous secret not yet expired": {mint(t, jwt.SigningMethodHS256, previousKid, previousSecret, goodClaims()),
			UserClaims{Subject: "user-42", Email: "ann@example.com", Name: "Ann Example", ID: "jti-1", ExpiresAt: exp, KeyID: previousKid}},
		"only the required claims": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, with("jti", nil, "email", nil, "name", nil)),
			UserClaims{Subject: "user-42", ExpiresAt: exp, KeyID: currentKid}},
		"null optional claims count as absent": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, with("email", json.RawMessage("null"), "name", json.RawMessage("null"), "jti", json.RawMessage("null"))),
			UserClaims{Subject: "user-42", ExpiresAt: exp, KeyID: currentKid}},
		"aud as a list with the app": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, with("aud", []string{"other", jwtAppID}, "jti", nil, "email", nil, "name", nil)),
			UserClaims{Subject: "user-42", ExpiresAt: exp, KeyID: currentKid}},
		"exactly one hour": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, with("exp", jwtNow.Add(time.Hour).Unix(), "jti", nil, "email", nil, "name", nil)),
			UserClaims{Subject: "user-42", ExpiresAt: jwtNow.Add(time.Hour), KeyID: currentKid}},
		"expired within the leeway": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, with("iat", jwtNow.Add(-time.Minute).Unix(), "exp", jwtNow.Add(-20*time.Second).Unix(), "jti", nil, "email", nil, "name", nil)),
			UserClaims{Subject: "user-42", ExpiresAt: jwtNow.Add(-20 * time.Second), KeyID: currentKid}},
		"iat ahead within the leeway": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, with("iat", jwtNow.Add(20*time.Second).Unix(), "jti", nil, "email", nil, "name", nil)),
			UserClaims{Subject: "user-42", ExpiresAt: exp, KeyID: currentKid}},
		"nbf passed": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, with("nbf", jwtNow.Add(-time.Second).Unix(), "jti", nil, "email", nil, "name", nil)),
			UserClaims{Subject: "user-42", ExpiresAt: exp, KeyID: currentKid}},
		"unknown claims ignored": {mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, with("iss", "https://shop.example.com", "role", "admin", "jti", nil, "email", nil, "name", nil)),
			UserClaims{Subject: "user-42", ExpiresAt: exp, KeyID: currentKid}},
	} {
		got, err := parse(tc.raw)
		if err != nil {
			t.Errorf("%s: refused: %v", name, err)
			continue
		}
		if !got.ExpiresAt.Equal(tc.want.ExpiresAt) {
			t.Errorf("%s: ExpiresAt = %v, want %v", name, got.ExpiresAt, tc.want.ExpiresAt)
		}
		got.ExpiresAt = tc.want.ExpiresAt
		if got != tc.want {
			t.Errorf("%s: claims = %+v, want %+v", name, got, tc.want)
		}
	}
}

func TestParseUserJWTRefuses(t *testing.T) {
	good := mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, goodClaims())
	parts := strings.Split(good, ".")
	hs := func(claims jwt.MapClaims) string {
		return mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, claims)
	}
	header := map[string]any{"alg": "HS256", "typ": "JWT", "kid": currentKid}
	long := strings.Repeat("x", 256)

	for name, tc := range map[string]struct {
		raw, why string
	}{
		"alg none":                 {handmade(t, map[string]any{"alg": "none", "kid": currentKid}, goodClaims(), ""), `alg "none" is not allowed`},
		"alg none, HMAC signature": {handmade(t, map[string]any{"alg": "none", "kid": currentKid}, goodClaims(), currentSecret), `alg "none" is not allowed`},
		"HS384":                    {mint(t, jwt.SigningMethodHS384, currentKid, currentSecret, goodClaims()), `alg "HS384" is not allowed`},
		"HS512":                    {mint(t, jwt.SigningMethodHS512, currentKid, currentSecret, goodClaims()), `alg "HS512" is not allowed`},
		"RS256 header, HMAC body":  {handmade(t, map[string]any{"alg": "RS256", "kid": currentKid}, goodClaims(), currentSecret), `alg "RS256" is not allowed`},
		"no alg":                   {handmade(t, map[string]any{"kid": currentKid}, goodClaims(), currentSecret), `alg "" is not allowed`},
		"alg in other case":        {handmade(t, map[string]any{"ALG": "HS256", "kid": currentKid}, goodClaims(), currentSecret), `alg "" is not allowed`},
		"no kid":                   {mint(t, jwt.SigningMethodHS256, "", currentSecret, goodClaims()), "no kid header"},
		"kid not a string":         {handmade(t, map[string]any{"alg": "HS256", "kid": 7}, goodClaims(), currentSecret), "no kid header"},
		"kid in other case":        {handmade(t, map[string]any{"alg": "HS256", "KID": currentKid}, goodClaims(), currentSecret), "no kid header"},
		"unknown kid":              {mint(t, jwt.SigningMethodHS256, "isk_nope", currentSecret, goodClaims()), `kid "isk_nope" is not one of this app's identity secrets`},
		"expired previous kid":     {mint(t, jwt.SigningMethodHS256, expiredKid, expiredSecret, goodClaims()), `kid "isk_expired" is not one of this app's identity secrets`},
		"kid of another secret":    {mint(t, jwt.SigningMethodHS256, previousKid, currentSecret, goodClaims()), "signature does not match"},
		"wrong secret":             {mint(t, jwt.SigningMethodHS256, currentKid, "some-other-secret", goodClaims()), "signature does not match"},
		"tampered payload":         {parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","aud":"`+jwtAppID+`","iat":1800000000,"exp":1800000600}`)) + "." + parts[2], "signature does not match"},
		"tampered signature":       {parts[0] + "." + parts[1] + "." + flipB64(parts[2]), "signature does not match"},
		"no signature":             {parts[0] + "." + parts[1] + ".", "signature does not match"},
		"signature not base64":     {parts[0] + "." + parts[1] + ".!!!", "not a JSON object of the expected types"},
		"missing exp":              {hs(with("exp", nil)), "no exp claim"},
		"expired":                  {hs(with("iat", jwtNow.Add(-11*time.Minute).Unix(), "exp", jwtNow.Add(-time.Minute).Unix())), "has expired"},
		"exp over iat + 1h":        {hs(with("exp", jwtNow.Add(time.Hour+time.Second).Unix())), "lifetime (exp - iat) is over 1 hour"},
		"old iat, far exp":         {hs(with("iat", jwtNow.Add(-50*time.Minute).Unix(), "exp", jwtNow.Add(20*time.Minute).Unix())), "lifetime (exp - iat) is over 1 hour"},
		"missing iat":              {hs(with("iat", nil)), "no iat claim"},
		"future iat":               {hs(with("iat", jwtNow.Add(2*time.Minute).Unix())), "iat is in the future"},
		"nbf ahead":                {hs(with("nbf", jwtNow.Add(2*time.Minute).Unix())), "not valid yet"},
		"wrong aud":                {hs(with("aud", "app_someotherapp")), "aud does not contain this app's id"},
		"aud list without the app": {hs(with("aud", []string{"a", "b"})), "aud does not contain this app's id"},
		"missing aud":              {hs(with("aud", nil)), "no aud claim"},
		"empty aud":                {hs(with("aud", "")), "no aud claim"},
		"missing sub":              {hs(with("sub", nil)), "no sub claim"},
		"empty sub":                {hs(with("sub", "")), "no sub claim"},
		"sub in other case":        {hs(with("sub", nil, "SUB", "user-42")), "no sub claim"},
		"sub not a string":         {hs(with("sub", 42)), "not a JSON object of the expected types"},
		"sub too long":             {hs(with("sub", long)), "sub claim is longer than 255 bytes"},
		"sub with control chars":   {hs(with("sub", "user\n42")), "sub claim contains control characters"},
		"exp not a number":         {hs(with("exp", "tomorrow")), "not a JSON object of the expected types"},
		"exp a quoted number":      {hs(with("exp", strconv.FormatInt(jwtNow.Add(10*time.Minute).Unix(), 10))), "exp, iat, nbf numbers"},
		"iat a quoted number":      {hs(with("iat", strconv.FormatInt(jwtNow.Unix(), 10))), "exp, iat, nbf numbers"},
		"nbf a quoted number":      {hs(with("nbf", strconv.FormatInt(jwtNow.Add(-time.Minute).Unix(), 10))), "exp, iat, nbf numbers"},
		"exp a quoted fraction":    {hs(with("exp", "1800000600.5")), "exp, iat, nbf numbers"},
		"exp true":                 {hs(with("exp", true)), "exp, iat, nbf numbers"},
		"iat a list":               {hs(with("iat", []int64{jwtNow.Unix()})), "exp, iat, nbf numbers"},
		"nbf an object":            {hs(with("nbf", map[string]int64{"t": jwtNow.Unix()})), "exp, iat, nbf numbers"},
		"email without @":          {hs(with("email", "ann.example.com")), "email claim is not an email address"},
		"empty email":              {hs(with("email", "")), "email claim is empty"},
		"email too long":           {hs(with("email", long+"@x")), "email claim is longer than 255 bytes"},
		"email not a string":       {hs(with("email", true)), "not a JSON object of the expected types"},
		"name too long":            {hs(with("name", long)), "name claim is longer than 255 bytes"},
		"name with control chars":  {hs(with("name", "Ann\x00")), "name claim contains control characters"},
		"empty jti":                {hs(with("jti", "")), "jti claim is empty"},
		"jti too long":             {hs(with("jti", long)), "jti claim is longer than 255 bytes"},
		"claims not an object":     {handmade(t, header, []int{1}, currentSecret), "not a JSON object of the expected types"},
		"oversize":                 {hs(with("name", nil, "pad", strings.Repeat("p", JWTMaxLen))), "longer than 4096 bytes"},
		"empty":                    {"", "user_jwt is empty"},
		"garbage":                  {"not a token", "not a JWT"},
		"two parts":                {parts[0] + "." + parts[1], "not a JWT"},
		"four parts":               {good + ".x", "not a JWT"},
		"header not base64":        {"%%%." + parts[1] + "." + parts[2], "header is not base64url"},
		"header padded":            {parts[0] + "=." + parts[1] + "." + parts[2], "header is not base64url"},
		"header not JSON":          {base64.RawURLEncoding.EncodeToString([]byte("hello")) + "." + parts[1] + "." + parts[2], "header is not a JSON object"},
		"header null":              {base64.RawURLEncoding.EncodeToString([]byte("null")) + "." + parts[1] + "." + parts[2], "header is not a JSON object"},
	} {
		_, err := parse(tc.raw)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		var je *JWTError
		if !errors.As(err, &je) {
			t.Errorf("%s: error %v is not a *JWTError", name, err)
			continue
		}
		if !strings.Contains(je.Reason, tc.why) {
			t.Errorf("%s: reason %q, want it to say %q", name, je.Reason, tc.why)
		}
		// The reason names what is wrong, never the token or its secret parts.
		for _, p := range strings.Split(tc.raw, ".") {
			if len(p) > 12 && strings.Contains(err.Error(), p) {
				t.Errorf("%s: error %q repeats part of the token", name, err)
			}
		}
		if strings.Contains(err.Error(), currentSecret) {
			t.Errorf("%s: error %q contains the secret", name, err)
		}
	}
}

func flipB64(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// The clock is the one passed in, not the machine's.
func TestParseUserJWTUsesGivenTime(t *testing.T) {
	raw := mint(t, jwt.SigningMethodHS256, currentKid, currentSecret, goodClaims())
	if _, err := ParseUserJWT(raw, jwtAppID, testSecretFor(jwtNow), jwtNow.Add(11*time.Minute)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("eleven minutes later: %v, want expired", err)
	}
	if _, err := ParseUserJWT(raw, jwtAppID, testSecretFor(jwtNow), jwtNow.Add(-2*time.Minute)); err == nil || !strings.Contains(err.Error(), "iat is in the future") {
		t.Fatalf("two minutes before: %v, want iat in the future", err)
	}
}

func FuzzParseUserJWT(f *testing.F) {
	good := mint(f, jwt.SigningMethodHS256, currentKid, currentSecret, goodClaims())
	f.Add(good)
	f.Add(mint(f, jwt.SigningMethodHS256, previousKid, previousSecret, with("aud", []string{jwtAppID}, "email", nil)))
	f.Add(mint(f, jwt.SigningMethodHS256, currentKid, currentSecret, with("exp", 1800003600.5, "nbf", 1799999999)))
	f.Add(mint(f, jwt.SigningMethodHS384, currentKid, currentSecret, goodClaims()))
	f.Add(handmade(f, map[string]any{"alg": "none", "kid": currentKid}, goodClaims(), ""))
	f.Add(handmade(f, map[string]any{"alg": "HS256", "kid": currentKid}, map[string]any{"sub": "x", "SUB": "y", "aud": jwtAppID, "iat": 1.8e9, "exp": 1.8e9 + 60}, currentSecret))
	f.Add(good[:len(good)-2])
	f.Add("e30.e30.")
	f.Add(mint(f, jwt.SigningMethodHS256, currentKid, currentSecret, with("exp", "1800000600")))
	f.Add(mint(f, jwt.SigningMethodHS256, currentKid, currentSecret, with("iat", "1800000000", "nbf", " 1799999999")))
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := parse(raw)
		if err != nil {
			var je *JWTError
			if !errors.As(err, &je) || je.Reason == "" {
				t.Fatalf("error %v is not a *JWTError with a reason", err)
			}
			return
		}
		checkAccepted(t, raw, c)
	})
}

// checkAccepted re-checks an accepted token from scratch, without the jwt
// package: the signature must be the HMAC of the first two parts under
// the secret its kid names, and the claims must satisfy every rule.
func checkAccepted(t *testing.T, raw string, c UserClaims) {
	parts := strings.Split(raw, ".")
	if len(raw) > JWTMaxLen || len(parts) != 3 {
		t.Fatalf("accepted a token of %d bytes in %d parts", len(raw), len(parts))
	}
	var head map[string]any
	if err := json.Unmarshal(b64(t, parts[0]), &head); err != nil {
		t.Fatalf("accepted a token whose header is not JSON: %v", err)
	}
	if head["alg"] != "HS256" || head["kid"] != c.KeyID {
		t.Fatalf("accepted header %v as kid %q", head, c.KeyID)
	}
	secret, ok := testSecretFor(jwtNow)(c.KeyID)
	if !ok {
		t.Fatalf("accepted kid %q, which names no live secret", c.KeyID)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !bytes.Equal(mac.Sum(nil), b64(t, parts[2])) {
		t.Fatal("accepted a token whose signature is not the HMAC of its header and claims")
	}

	var claims map[string]json.RawMessage
	if err := json.Unmarshal(b64(t, parts[1]), &claims); err != nil {
		t.Fatalf("accepted claims that are not a JSON object: %v", err)
	}
	var sub string
	if err := json.Unmarshal(claims["sub"], &sub); err != nil || sub != c.Subject || sub == "" || len(sub) > 255 || strings.ContainsFunc(sub, unicode.IsControl) {
		t.Fatalf("accepted sub %s as %q", claims["sub"], c.Subject)
	}
	exp, iat := date(t, claims, "exp"), date(t, claims, "iat")
	if exp == nil || iat == nil {
		t.Fatalf("accepted a token without exp or iat: %s", b64(t, parts[1]))
	}
	if !jwtNow.Before(exp.Add(JWTLeeway)) || jwtNow.Add(JWTLeeway).Before(iat.Time) || exp.Sub(iat.Time) > JWTMaxLifetime || !exp.Equal(c.ExpiresAt) {
		t.Fatalf("accepted exp %v, iat %v at %v", exp, iat, jwtNow)
	}
	if nbf := date(t, claims, "nbf"); nbf != nil && jwtNow.Add(JWTLeeway).Before(nbf.Time) {
		t.Fatalf("accepted nbf %v at %v", nbf, jwtNow)
	}
	var aud jwt.ClaimStrings
	if err := json.Unmarshal(claims["aud"], &aud); err != nil || !slices.Contains(aud, jwtAppID) {
		t.Fatalf("accepted aud %s", claims["aud"])
	}
	if c.Email != "" && !strings.Contains(c.Email, "@") {
		t.Fatalf("accepted email %q", c.Email)
	}
	for _, v := range []string{c.Email, c.Name, c.ID} {
		if len(v) > 255 || strings.ContainsFunc(v, unicode.IsControl) {
			t.Fatalf("accepted claim %q", v)
		}
	}
}

func b64(t *testing.T, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("accepted a part that is not base64url: %v", err)
	}
	return b
}

func date(t *testing.T, claims map[string]json.RawMessage, name string) *jwt.NumericDate {
	v, ok := claims[name]
	if !ok || string(v) == "null" {
		return nil
	}
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		t.Fatalf("accepted %s %s, which is not a JSON number", name, v)
	}
	var d jwt.NumericDate
	if err := json.Unmarshal(v, &d); err != nil {
		t.Fatalf("accepted %s %s: %v", name, v, err)
	}
	return &d
}
