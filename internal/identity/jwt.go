package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// Limits of identity JWTs. A token lives at most an hour, so a leaked one
// is soon useless; the leeway absorbs clock skew between the owner's
// servers and Parley.
const (
	JWTMaxLen      = 4096
	JWTMaxLifetime = time.Hour
	JWTLeeway      = 30 * time.Second
	claimMaxLen    = 255
)

// UserClaims is what a valid identity JWT vouches for.
type UserClaims struct {
	Subject   string
	Email     string // empty when the token carries none
	Name      string // empty when the token carries none
	ID        string // the jti; empty when the token carries none
	ExpiresAt time.Time
	KeyID     string // the id of the identity secret that signed it
}

// JWTError says why an identity JWT was refused. Reason is meant for the
// developer wiring Parley in: it names what is wrong and never repeats
// the token.
type JWTError struct{ Reason string }

func (e *JWTError) Error() string { return "identity: " + e.Reason }

func jwtRefused(format string, args ...any) error {
	return &JWTError{Reason: fmt.Sprintf(format, args...)}
}

// userJWTClaims are the claims Parley reads. Email, Name and JTI are
// pointers so that a claim that is present but empty is told apart from
// one left out (RegisteredClaims.ID, a plain string, could not).
type userJWTClaims struct {
	jwt.RegisteredClaims
	Email *string `json:"email"`
	Name  *string `json:"name"`
	JTI   *string `json:"jti"`
}

// UnmarshalJSON reads the claims by their exact names. Plain decoding into
// the struct would match names case-insensitively and let "SUB" or
// "Email" stand in for the registered claims. The dates must be JSON
// numbers (RFC 7519, section 2): jwt.NumericDate decodes through
// json.Number, which also takes a quoted number such as "1765000000".
func (c *userJWTClaims) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for key, dst := range map[string]any{"sub": &c.Subject, "aud": &c.Audience, "exp": &c.ExpiresAt, "iat": &c.IssuedAt,
		"nbf": &c.NotBefore, "email": &c.Email, "name": &c.Name, "jti": &c.JTI} {
		v, ok := m[key]
		if !ok {
			continue
		}
		if _, isDate := dst.(**jwt.NumericDate); isDate && !isNumberOrNull(v) {
			return fmt.Errorf("identity: claim %s is not a JSON number", key)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("identity: claim %s: %w", key, err)
		}
	}
	return nil
}

// isNumberOrNull reports whether v, a valid JSON value, is a number or
// null (a date claim left out).
func isNumberOrNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9' || string(v) == "null")
}

// ParseUserJWT verifies an identity JWT minted by the owner's backend for
// the app appID and returns its claims. The token must be HS256, name its
// secret by id in the kid header (secretFor returns the secret for an id
// that is current or still accepted), be meant for appID (aud), and carry
// sub, iat and exp with a lifetime of at most an hour. The secret string's
// bytes are the HMAC key, exactly as for user_hash.
func ParseUserJWT(raw, appID string, secretFor func(kid string) (string, bool), now time.Time) (UserClaims, error) {
	kid, err := checkJWTHeader(raw)
	if err != nil {
		return UserClaims{}, err
	}
	secret, ok := secretFor(kid)
	if !ok {
		return UserClaims{}, jwtRefused("user_jwt kid %.40q is not one of this app's identity secrets (the current one or a previous one still accepted)", kid)
	}
	var c userJWTClaims
	_, err = jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(JWTLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(appID),
	)
	if err != nil {
		return UserClaims{}, parseError(err, &c)
	}
	return checkUserClaims(&c, kid)
}

// checkJWTHeader refuses what can be told from the token's shape and
// header alone, and returns the kid. The jwt package checks the algorithm
// again; doing it here as well gives a precise message. Header names are
// matched exactly, as the jwt package does (encoding/json would let
// "KID" stand for "kid" in a struct).
func checkJWTHeader(raw string) (string, error) {
	switch {
	case raw == "":
		return "", jwtRefused("user_jwt is empty")
	case len(raw) > JWTMaxLen:
		return "", jwtRefused("user_jwt is longer than %d bytes", JWTMaxLen)
	case strings.Count(raw, ".") != 2:
		return "", jwtRefused("user_jwt is not a JWT: it must be three base64url parts separated by dots")
	}
	seg, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return "", jwtRefused("user_jwt header is not base64url without padding")
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil || h == nil {
		return "", jwtRefused("user_jwt header is not a JSON object")
	}
	if alg, _ := h["alg"].(string); alg != jwt.SigningMethodHS256.Alg() {
		return "", jwtRefused("user_jwt alg %.20q is not allowed: identity JWTs must be signed with HS256", alg)
	}
	kid, _ := h["kid"].(string)
	if kid == "" {
		return "", jwtRefused("user_jwt has no kid header: set it to the id of the identity secret that signed it (isk_…)")
	}
	return kid, nil
}

// parseError turns the jwt package's error into a precise reason. Its
// errors may join several; the first that applies in this order is named.
func parseError(err error, c *userJWTClaims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return jwtRefused("user_jwt claims are not a JSON object of the expected types (exp, iat, nbf numbers; aud a string or a list of strings; sub, email, name, jti strings), or its signature is not base64url")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return jwtRefused("user_jwt signature does not match: it was signed with another secret than its kid names, or altered")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return jwtRefused("user_jwt could not be verified")
	case c.ExpiresAt == nil:
		return jwtRefused("user_jwt has no exp claim: identity JWTs must expire")
	case errors.Is(err, jwt.ErrTokenExpired):
		return jwtRefused("user_jwt has expired")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return jwtRefused("user_jwt iat is in the future: check the clock of the server that minted it")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return jwtRefused("user_jwt is not valid yet (nbf is in the future)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing): // exp is not missing, so it is aud
		return jwtRefused("user_jwt has no aud claim: set it to this app's id")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return jwtRefused("user_jwt aud does not contain this app's id: the token was minted for another app")
	}
	return jwtRefused("user_jwt claims are not valid")
}

// checkUserClaims applies Parley's rules on top of the standard checks,
// which have passed: the token is genuine, unexpired and meant for the app.
func checkUserClaims(c *userJWTClaims, kid string) (UserClaims, error) {
	if c.IssuedAt == nil {
		return UserClaims{}, jwtRefused("user_jwt has no iat claim: set it to when the token was made")
	}
	if c.ExpiresAt.Sub(c.IssuedAt.Time) > JWTMaxLifetime {
		return UserClaims{}, jwtRefused("user_jwt lifetime (exp - iat) is over 1 hour: mint a fresh token for each page instead")
	}
	if c.Subject == "" {
		return UserClaims{}, jwtRefused("user_jwt has no sub claim (or it is empty): set it to the user's id")
	}
	if err := checkClaim("sub", c.Subject); err != nil {
		return UserClaims{}, err
	}
	out := UserClaims{Subject: c.Subject, ExpiresAt: c.ExpiresAt.Time, KeyID: kid}
	for _, f := range []struct {
		name string
		v    *string
		dst  *string
	}{{"email", c.Email, &out.Email}, {"name", c.Name, &out.Name}, {"jti", c.JTI, &out.ID}} {
		if f.v == nil {
			continue
		}
		if err := checkClaim(f.name, *f.v); err != nil {
			return UserClaims{}, err
		}
		*f.dst = *f.v
	}
	if c.Email != nil && !strings.Contains(out.Email, "@") {
		return UserClaims{}, jwtRefused("user_jwt email claim is not an email address")
	}
	return out, nil
}

// checkClaim holds string claims to the rules of the fields a page may
// send: not empty (leave it out instead), at most 255 bytes, no control
// characters. JSON decoding has already made them valid UTF-8.
func checkClaim(name, v string) error {
	switch {
	case v == "":
		return jwtRefused("user_jwt %s claim is empty: leave it out instead", name)
	case len(v) > claimMaxLen:
		return jwtRefused("user_jwt %s claim is longer than %d bytes", name, claimMaxLen)
	case strings.ContainsFunc(v, unicode.IsControl):
		return jwtRefused("user_jwt %s claim contains control characters", name)
	}
	return nil
}
