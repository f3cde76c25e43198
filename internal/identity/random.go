package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix + 80 random bits in lower-case base32: public,
// unguessable ids such as app_… and cnv_….
func NewID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + lowerBase32.EncodeToString(b)
}

// NewIdentitySecret returns a 256-bit secret as 64 hex characters.
func NewIdentitySecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewToken returns prefix + 256 random bits, URL-safe. Used for API keys,
// session tokens and visitor tokens, which Parley stores only as hashes.
func NewToken(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// TokenHash is how a bearer secret is stored and looked up. The tokens are
// 256-bit random, so a plain SHA-256 is enough (no password stretching).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// LooksLikeToken reports whether s has the shape NewToken(prefix) makes,
// so obviously forged values are refused before any lookup.
func LooksLikeToken(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}
