package identity

import (
	"strings"
	"testing"
)

func TestUserHash(t *testing.T) {
	// Reference value from: printf 'user-1' | openssl dgst -sha256 -hmac 'secret'
	got, want := UserHash("secret", "user-1"), "1d16fd7e96e8a9681f283b8a251822ffdc71e2a5bda0c5267a044874fa21b82b"
	if got != want {
		t.Fatalf("UserHash = %s, want %s", got, want)
	}
	if !VerifyUserHash("secret", "user-1", got) {
		t.Fatal("VerifyUserHash refused the hash UserHash made")
	}
}

func TestVerifyUserHashRefuses(t *testing.T) {
	good := UserHash("secret", "user-1")
	for name, hash := range map[string]string{
		"other user":    UserHash("secret", "user-2"),
		"other secret":  UserHash("secret2", "user-1"),
		"truncated":     good[:63],
		"half":          good[:32],
		"non-hex":       "z" + good[1:],
		"empty":         "",
		"extra byte":    good + "00",
		"flipped digit": flip(good),
	} {
		if VerifyUserHash("secret", "user-1", hash) {
			t.Errorf("%s: VerifyUserHash accepted %q", name, hash)
		}
	}
	if !VerifyUserHash("secret", "user-1", strings.ToUpper(good)) {
		t.Error("upper-case hex of the right digest was refused; hex is case-insensitive")
	}
}

func flip(h string) string {
	b := []byte(h)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

func TestTokens(t *testing.T) {
	tok := NewToken("pst_")
	if !LooksLikeToken("pst_", tok) {
		t.Fatalf("LooksLikeToken refused %q", tok)
	}
	for _, s := range []string{"", "pst_", "psk_" + tok[4:], tok + "x", tok[:len(tok)-1], "pst_" + strings.Repeat("!", 43)} {
		if LooksLikeToken("pst_", s) {
			t.Errorf("LooksLikeToken accepted %q", s)
		}
	}
	if NewToken("pst_") == tok {
		t.Fatal("two tokens are equal")
	}
	if id := NewID("app_"); !strings.HasPrefix(id, "app_") || len(id) != 4+16 {
		t.Fatalf("NewID = %q", id)
	}
}
