package password

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestHashVerifyRoundTrip(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not have the expected PHC prefix", h)
	}
	ok, err := Verify(h, "correct horse battery staple")
	if err != nil || !ok {
		t.Fatalf("Verify(right password) = %v, %v", ok, err)
	}
	for _, wrong := range []string{"correct horse battery stapl", "Correct horse battery staple", "", "correct horse battery staple "} {
		if ok, err := Verify(h, wrong); err != nil || ok {
			t.Errorf("Verify(%q) = %v, %v; want false, nil", wrong, ok, err)
		}
	}
	h2, _ := Hash("correct horse battery staple")
	if h2 == h {
		t.Fatal("two hashes of the same password are equal; the salt is not random")
	}
}

// Parameters come from the stored string, so a hash made with other costs
// (older or raised) keeps verifying.
func TestVerifyReadsParamsFromEncoding(t *testing.T) {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("pw"), salt, 1, 64, 2, 24)
	enc := params{memory: 64, time: 1, threads: 2}.encode(salt, key)
	if want := "$argon2id$v=19$m=64,t=1,p=2$"; !strings.HasPrefix(enc, want) {
		t.Fatalf("encoding %q, want prefix %q", enc, want)
	}
	ok, err := Verify(enc, "pw")
	if err != nil || !ok {
		t.Fatalf("Verify with m=64,t=1,p=2 and a 24-byte key = %v, %v", ok, err)
	}
	p, _, _, err := decode(enc)
	if err != nil || p != (params{memory: 64, time: 1, threads: 2}) {
		t.Fatalf("decode params = %+v, %v", p, err)
	}
	// The same key under the default parameters must not verify: proof the
	// parameters in the string are what Verify used.
	other := params{memory: memoryKiB, time: passes, threads: lanes}.encode(salt, key)
	if ok, _ := Verify(other, "pw"); ok {
		t.Fatal("Verify ignored the parameters in the encoding")
	}
}

func TestVerifyMalformed(t *testing.T) {
	good, _ := Hash("pw-for-malformed")
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=…, salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	for name, enc := range map[string]string{
		"empty":           "",
		"bcrypt":          "$2a$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
		"argon2i":         with(1, "argon2i"),
		"old version":     with(2, "v=16"),
		"no version":      strings.Join(append(parts[:2:2], parts[3:]...), "$"),
		"missing key":     strings.Join(parts[:5], "$"),
		"extra field":     good + "$x",
		"no leading $":    good[1:],
		"params order":    with(3, "t=2,m=19456,p=1"),
		"params missing":  with(3, "m=19456,t=2"),
		"zero time":       with(3, "m=19456,t=0,p=1"),
		"zero threads":    with(3, "m=19456,t=2,p=0"),
		"negative memory": with(3, "m=-1,t=2,p=1"),
		"huge memory":     with(3, "m=4194304,t=2,p=1"),
		"huge time":       with(3, "m=19456,t=1000,p=1"),
		"threads > 255":   with(3, "m=19456,t=2,p=256"),
		"memory < 8p":     with(3, "m=8,t=1,p=2"),
		"salt not b64":    with(4, "!!!!"),
		"salt padded":     with(4, parts[4]+"=="),
		"short salt":      with(4, "YWJj"),
		"key not b64":     with(5, "%%%%"),
		"short key":       with(5, "YWJj"),
	} {
		ok, err := Verify(enc, "pw-for-malformed")
		if ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify(%q) = %v, %v; want false, ErrMalformed", name, enc, ok, err)
		}
	}
}

func TestCheckPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		want string // substring of the error; "" = accepted
	}{
		{"", "too short"},
		{"123456789", "too short"},
		{"1234567890", ""},
		{"ééééééééé", "too short"}, // 18 bytes but 9 characters
		{"éééééééééé", ""},
		{"correct horse battery staple", ""},
		{strings.Repeat("a", MaxBytes), ""},
		{strings.Repeat("a", MaxBytes+1), "too long"},
		{strings.Repeat("é", 129), "too long"}, // 258 bytes
		{"abcdefghij\xff", "UTF-8"},
	} {
		err := CheckPolicy(tc.pw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckPolicy(%q) = %v, want nil", tc.pw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckPolicy(%q) = %v, want an error mentioning %q", tc.pw, err, tc.want)
		}
	}
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		pw := Generate()
		if err := CheckPolicy(pw); err != nil {
			t.Fatalf("Generate() = %q fails the policy: %v", pw, err)
		}
		if len(pw) < 20 || len(pw) > 24 {
			t.Fatalf("Generate() = %q, want about 20 characters", pw)
		}
		for _, r := range strings.ReplaceAll(pw, "-", "") {
			if !strings.ContainsRune(alphabet, r) {
				t.Fatalf("Generate() = %q contains %q", pw, r)
			}
		}
		if strings.ContainsAny(pw, "0O1lIo") {
			t.Fatalf("Generate() = %q contains an ambiguous character", pw)
		}
		if seen[pw] {
			t.Fatalf("Generate() repeated %q", pw)
		}
		seen[pw] = true
	}
}

func TestVerifyDummy(t *testing.T) {
	if ok, err := Verify(dummy, "anything"); ok || err != nil {
		t.Fatalf("dummy hash: Verify = %v, %v; want false, nil (a readable hash nobody knows)", ok, err)
	}
	if !strings.HasPrefix(dummy, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("dummy %q is not made with the current parameters", dummy)
	}
	// Same work as a real check. argon2id's cost is the memory it fills,
	// pass after pass, so the bytes each allocates tell whether the dummy
	// did a real check's work: unlike their times, that does not depend
	// on what else the machine is doing.
	h, _ := Hash("some real password")
	genuine := allocated(func() { Verify(h, "wrong password!") })
	fake := allocated(func() { VerifyDummy("wrong password!") })
	if fake < genuine*9/10 || genuine < memoryKiB<<10 {
		t.Fatalf("VerifyDummy allocated %d bytes, a real Verify %d; it should do the same work", fake, genuine)
	}
}

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}
