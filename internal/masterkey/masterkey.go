// Package masterkey seals values that Parley must read back, such as
// identity secrets, with AES-256-GCM under one master key kept outside the
// database. A copied database file alone then reveals none of them.
package masterkey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Size is the length of a key in bytes (AES-256).
const Size = 32

// prefix marks the sealed form, so the format can change later and a
// plaintext value left from before is told apart from a sealed one.
const prefix = "v1:"

// errOpen is deliberately vague: GCM cannot tell a wrong key from a wrong
// context or damaged data, and neither should the message pretend to.
var errOpen = errors.New("masterkey: cannot open sealed value (wrong key, wrong context, or damaged data)")

// Key is a master key. Its String method hides the bytes, so a key that
// ends up in a log line or an error by mistake does not leak.
type Key struct{ b [Size]byte }

// Generate returns a new random key.
func Generate() Key {
	var k Key
	rand.Read(k.b[:]) // never fails since Go 1.24
	return k
}

// Parse reads a key written as 64 hex characters or as base64 (standard or
// URL alphabet, with or without padding) of exactly 32 bytes. Surrounding
// whitespace is ignored. The key itself never appears in an error.
func Parse(s string) (Key, error) {
	k, err := parse(s)
	if err != nil {
		return Key{}, fmt.Errorf("masterkey: %w", err)
	}
	return k, nil
}

func parse(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, errors.New("the key is empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return Key{}, errors.New("the key must be a single value without spaces or line breaks")
	}
	raw, err := decode(s)
	if err != nil {
		return Key{}, err
	}
	var k Key
	copy(k.b[:], raw)
	if k.IsZero() {
		return Key{}, errors.New("the key is all zeros; generate a random one")
	}
	return k, nil
}

// decode returns the key's 32 bytes or says why s is not a key. Hex comes
// first: 64 hex characters are also valid base64, of 48 bytes, which is
// never what was meant.
func decode(s string) ([]byte, error) {
	if len(s) == 2*Size {
		if raw, err := hex.DecodeString(s); err == nil {
			return raw, nil
		}
	}
	encodings := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
	for _, enc := range encodings {
		if raw, err := enc.DecodeString(s); err == nil && len(raw) == Size {
			return raw, nil
		}
	}
	if _, err := hex.DecodeString(s); err == nil {
		return nil, fmt.Errorf("the key is %d hex characters, want %d", len(s), 2*Size)
	}
	for _, enc := range encodings {
		if raw, err := enc.DecodeString(s); err == nil {
			return nil, fmt.Errorf("the key is base64 of %d bytes, want %d", len(raw), Size)
		}
	}
	return nil, fmt.Errorf("the key is neither %d hex characters nor base64 of %d bytes", 2*Size, Size)
}

// IsZero reports whether k is the zero Key, i.e. was never set.
func (k Key) IsZero() bool { return k == Key{} }

// Encode returns the key as standard base64, the form key files hold and
// `parley keygen` prints.
func (k Key) Encode() string { return base64.StdEncoding.EncodeToString(k.b[:]) }

// String hides the key.
func (k Key) String() string { return "masterkey.Key(REDACTED)" }

// GoString hides the key from %#v too.
func (k Key) GoString() string { return k.String() }

func (k Key) aead() cipher.AEAD {
	block, err := aes.NewCipher(k.b[:])
	if err != nil {
		panic(err) // only for a wrong key length, which the type rules out
	}
	// The random-nonce mode draws a fresh 12-byte nonce on every Seal and
	// puts it in front of the ciphertext: the nonce-then-ciphertext layout
	// we want, with no nonce for the caller to get wrong.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// Seal encrypts plaintext and returns "v1:" + base64(nonce‖ciphertext‖tag).
// aad is not stored but must be given again to Open: binding a value to
// where it lives (say, its row) means a sealed value copied elsewhere does
// not open there.
func (k Key) Seal(plaintext, aad []byte) string {
	if k.IsZero() {
		panic("masterkey: Seal with the zero key")
	}
	return prefix + base64.StdEncoding.EncodeToString(k.aead().Seal(nil, nil, plaintext, aad))
}

// Open reverses Seal. It fails for a value sealed under another key or
// other aad, a tampered value, or one not in the sealed form at all.
func (k Key) Open(sealed string, aad []byte) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, errors.New("masterkey: not a sealed value (no v1: prefix)")
	}
	raw, err := base64.StdEncoding.DecodeString(sealed[len(prefix):])
	if err != nil {
		return nil, errOpen
	}
	if k.IsZero() {
		return nil, errOpen
	}
	out, err := k.aead().Open(nil, nil, raw, aad)
	if err != nil {
		return nil, errOpen
	}
	return out, nil
}

// IsSealed reports whether s has the sealed form's prefix. It does not
// check that s opens.
func IsSealed(s string) bool { return strings.HasPrefix(s, prefix) }
