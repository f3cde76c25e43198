// Package password hashes and checks site owners' passwords with argon2id,
// stored as PHC strings so the cost can be raised later without breaking
// existing hashes.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Parameters for new hashes: the OWASP minimum for argon2id (19 MiB, two
// passes, one lane). Verify reads the parameters from each hash instead.
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// Limits on what Verify accepts from a stored hash, so a corrupted or
// hostile row cannot make one sign-in allocate gigabytes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxPasses    = 100
	maxKeyLen    = 1024
)

// Policy limits. The upper bound is in bytes because that is what argon2
// hashes; it also keeps the request that carries the password small.
const (
	MinChars = 10
	MaxBytes = 256
)

var b64 = base64.RawStdEncoding

// ErrMalformed is wrapped by every error about an unreadable stored hash.
var ErrMalformed = errors.New("password: malformed hash")

// Hash returns the PHC-encoded argon2id hash of pw with a fresh salt.
func Hash(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	p := params{memory: memoryKiB, time: passes, threads: lanes}
	key := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, keyLen)
	return p.encode(salt, key), nil
}

// Verify reports whether pw matches the encoded hash. It returns an error
// only when encoded is not a hash this package can read.
func Verify(encoded, pw string) (bool, error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// dummy is a real hash of a random password, made with the current
// parameters, so VerifyDummy costs what a real Verify costs.
var dummy = func() string {
	h, err := Hash(Generate())
	if err != nil {
		panic(err)
	}
	return h
}()

// VerifyDummy spends the time of a real Verify and always fails. Sign-in
// calls it for unknown emails so response time does not reveal which
// emails have accounts.
func VerifyDummy(pw string) {
	Verify(dummy, pw)
}

// CheckPolicy returns a message-ready error when pw is not acceptable as a
// new password. Length is the one rule: composition rules make passwords
// worse, and the long upper bound leaves room for passphrases.
func CheckPolicy(pw string) error {
	if !utf8.ValidString(pw) {
		return errors.New("password is not valid UTF-8 text")
	}
	if len(pw) > MaxBytes {
		return fmt.Errorf("password is too long (at most %d bytes)", MaxBytes)
	}
	if n := utf8.RuneCountInString(pw); n < MinChars {
		return fmt.Errorf("password is too short: use at least %d characters (this one has %d)", MinChars, n)
	}
	return nil
}

// alphabet has no characters that are easy to misread or mistype:
// no 0/O/o, 1/l/I, and no punctuation that shells or forms mangle.
const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// Generate returns a random 20-character password from crypto/rand
// (about 116 bits), in groups of five joined by '-' for reading aloud.
func Generate() string {
	const groups, per = 4, 5
	var b strings.Builder
	for g := range groups {
		if g > 0 {
			b.WriteByte('-')
		}
		for range per {
			b.WriteByte(alphabet[randIndex(len(alphabet))])
		}
	}
	return b.String()
}

// randIndex returns a uniform index below n by rejection sampling, so no
// character is more likely than another.
func randIndex(n int) int {
	limit := 256 - 256%n
	var c [1]byte
	for {
		if _, err := rand.Read(c[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		if int(c[0]) < limit {
			return int(c[0]) % n
		}
	}
}

type params struct {
	memory  uint32
	time    uint32
	threads uint8
}

func (p params) encode(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

// decode parses $argon2id$v=19$m=…,t=…,p=…$salt$key.
func decode(encoded string) (params, []byte, []byte, error) {
	var p params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, malformed("want $argon2id$v=…$m=…,t=…,p=…$salt$hash")
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, malformed(fmt.Sprintf("algorithm %q, want argon2id", parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, malformed(fmt.Sprintf("version %q, want v=%d", parts[2], argon2.Version))
	}
	if err := p.parse(parts[3]); err != nil {
		return p, nil, nil, err
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, malformed("salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > maxKeyLen {
		return p, nil, nil, malformed("hash")
	}
	return p, salt, key, nil
}

func (p *params) parse(s string) error {
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return malformed("parameters, want m=…,t=…,p=…")
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 {
			return malformed(fmt.Sprintf("parameter %s", name))
		}
		vals[i] = n
	}
	if vals[0] > maxMemoryKiB || vals[1] > maxPasses || vals[2] > 255 || vals[0] < 8*vals[2] {
		return malformed("parameters out of range")
	}
	p.memory, p.time, p.threads = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	return nil
}
