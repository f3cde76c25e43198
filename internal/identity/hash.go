package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// UserHash is what a site owner's backend computes to vouch for a user:
// hex(HMAC-SHA256(identity secret, user_id or email)). The secret string's
// bytes are the key, exactly as in the README examples for every language.
func UserHash(secret, identity string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(identity))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyUserHash reports whether hash is the valid user_hash of identity.
// Malformed hashes (truncated, non-hex) are simply invalid. The comparison
// of the digests runs in constant time.
func VerifyUserHash(secret, identity, hash string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(hash))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(identity))
	return hmac.Equal(got, m.Sum(nil))
}
