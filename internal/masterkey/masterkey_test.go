package masterkey_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/masterkey"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k := masterkey.Generate()
	for _, plain := range []string{"", "s", strings.Repeat("secret ", 100)} {
		sealed := k.Seal([]byte(plain), []byte("app_1|isk_1"))
		if !strings.HasPrefix(sealed, "v1:") || !masterkey.IsSealed(sealed) {
			t.Fatalf("sealed = %q, want the v1: form", sealed)
		}
		if len(plain) > 8 && strings.Contains(sealed, plain) {
			t.Fatal("the sealed form contains the plaintext")
		}
		got, err := k.Open(sealed, []byte("app_1|isk_1"))
		if err != nil || string(got) != plain {
			t.Fatalf("Open = %q, %v; want %q", got, err, plain)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	k := masterkey.Generate()
	aad := []byte("app_1|isk_1")
	sealed := k.Seal([]byte("the secret"), aad)
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return "v1:" + base64.StdEncoding.EncodeToString(b)
	}
	cases := map[string]struct {
		key    masterkey.Key
		sealed string
		aad    string
	}{
		"wrong key":            {masterkey.Generate(), sealed, string(aad)},
		"wrong aad":            {k, sealed, "app_2|isk_1"},
		"no aad":               {k, sealed, ""},
		"nonce tampered":       {k, flip(0), string(aad)},
		"ciphertext tampered":  {k, flip(12), string(aad)},
		"tag tampered":         {k, flip(len(raw) - 1), string(aad)},
		"truncated":            {k, sealed[:len(sealed)-8], string(aad)},
		"too short for nonce":  {k, "v1:" + base64.StdEncoding.EncodeToString(raw[:8]), string(aad)},
		"not base64":           {k, "v1:!!!", string(aad)},
		"plaintext":            {k, "the secret", string(aad)},
		"other version":        {k, "v2:" + strings.TrimPrefix(sealed, "v1:"), string(aad)},
		"zero key cannot open": {masterkey.Key{}, sealed, string(aad)},
	}
	for name, c := range cases {
		if got, err := c.key.Open(c.sealed, []byte(c.aad)); err == nil {
			t.Errorf("%s: Open = %q, want an error", name, got)
		}
	}
}

// TestNonceIsFresh: sealing the same value twice must not repeat a nonce
// (GCM under a repeated nonce leaks the XOR of plaintexts and the
// authentication key).
func TestNonceIsFresh(t *testing.T) {
	k := masterkey.Generate()
	seen := map[string]bool{}
	for range 1000 {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(k.Seal([]byte("same"), nil), "v1:"))
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != 12+len("same")+16 {
			t.Fatalf("sealed length %d, want nonce 12 + plaintext + tag 16", len(raw))
		}
		nonce := string(raw[:12])
		if seen[nonce] {
			t.Fatal("a nonce repeated")
		}
		seen[nonce] = true
	}
}

func TestParseFormats(t *testing.T) {
	k := masterkey.Generate()
	raw, _ := base64.StdEncoding.DecodeString(k.Encode())
	for name, s := range map[string]string{
		"hex":                hex.EncodeToString(raw),
		"upper hex":          strings.ToUpper(hex.EncodeToString(raw)),
		"std base64":         base64.StdEncoding.EncodeToString(raw),
		"raw std base64":     base64.RawStdEncoding.EncodeToString(raw),
		"url base64":         base64.URLEncoding.EncodeToString(raw),
		"raw url base64":     base64.RawURLEncoding.EncodeToString(raw),
		"with a newline":     k.Encode() + "\n",
		"with spaces around": "  " + k.Encode() + " \r\n",
	} {
		got, err := masterkey.Parse(s)
		if err != nil || got != k {
			t.Errorf("%s: Parse(%q) = %v, want the same key", name, s, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	k := masterkey.Generate()
	raw, _ := base64.StdEncoding.DecodeString(k.Encode())
	for s, want := range map[string]string{
		"":                           "empty",
		"  \n":                       "empty",
		hex.EncodeToString(raw[:31]): "62 hex characters, want 64",
		base64.StdEncoding.EncodeToString(raw[:16]):       "base64 of 16 bytes, want 32",
		base64.StdEncoding.EncodeToString(append(raw, 1)): "base64 of 33 bytes, want 32",
		strings.Repeat("0", 64):                           "all zeros",
		"not-a-key!":                                      "neither 64 hex characters nor base64",
		k.Encode() + "\n" + k.Encode():                    "single value",
		k.Encode() + " " + k.Encode():                     "single value",
	} {
		_, err := masterkey.Parse(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", s, err, want)
		}
		if err != nil && len(s) > 8 && strings.Contains(err.Error(), strings.TrimSpace(s)) {
			t.Errorf("Parse error repeats the input: %v", err)
		}
	}
}

func TestKeyDoesNotPrint(t *testing.T) {
	k := masterkey.Generate()
	raw, _ := base64.StdEncoding.DecodeString(k.Encode())
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(format, k)
		if strings.Contains(out, k.Encode()) || strings.Contains(out, hex.EncodeToString(raw)) {
			t.Errorf("%s prints %q", format, out)
		}
	}
}

func TestGenerateIsRandom(t *testing.T) {
	a, b := masterkey.Generate(), masterkey.Generate()
	if a == b || a.IsZero() {
		t.Fatal("Generate returned a repeated or zero key")
	}
	if got, err := masterkey.Parse(a.Encode()); err != nil || got != a {
		t.Fatalf("Encode does not Parse back: %v", err)
	}
}

func TestLoadOrCreateFileCreates0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db.key")
	k, created, err := masterkey.LoadOrCreateFile(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateFile = %v, created %v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %04o, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if string(b) != k.Encode()+"\n" {
		t.Fatalf("key file holds %d bytes, want the base64 key and a newline", len(b))
	}
	again, created, err := masterkey.LoadOrCreateFile(path)
	if err != nil || created || again != k {
		t.Fatalf("second LoadOrCreateFile = %v, created %v, same key %v", err, created, again == k)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("the folder holds %d entries, want only the key file (no temporary left)", len(entries))
	}
}

func TestLoadFileRefusesOpenPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db.key")
	if err := os.WriteFile(path, []byte(masterkey.Generate().Encode()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644) // whatever the umask
	for _, load := range []func(string) error{
		func(p string) error { _, err := masterkey.LoadFile(p); return err },
		func(p string) error { _, _, err := masterkey.LoadOrCreateFile(p); return err },
	} {
		err := load(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Fatalf("err = %v, want a refusal that says to chmod 600 the file", err)
		}
	}
	os.Chmod(path, 0o600)
	if _, err := masterkey.LoadFile(path); err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
}

func TestLoadFileRefusesNotExactlyOneKey(t *testing.T) {
	dir := t.TempDir()
	k := masterkey.Generate().Encode()
	for name, content := range map[string]string{
		"empty":    "",
		"two keys": k + "\n" + masterkey.Generate().Encode() + "\n",
		"garbage":  "hello\n",
		"short":    base64.StdEncoding.EncodeToString([]byte("short")) + "\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := masterkey.LoadOrCreateFile(path)
		if err == nil || !strings.Contains(err.Error(), "exactly one key") || (content != "" && strings.Contains(err.Error(), k)) {
			t.Errorf("%s: err = %v, want a refusal saying the file must hold exactly one key", name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%s: the file was changed", name)
		}
	}
}

// TestLoadOrCreateFileRace: processes starting at once on a new database
// must agree on one key, or secrets sealed by one would not open in the
// other.
func TestLoadOrCreateFileRace(t *testing.T) {
	for range 20 {
		path := filepath.Join(t.TempDir(), "parley.db.key")
		const n = 8
		keys := make([]masterkey.Key, n)
		errs := make([]error, n)
		var created int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k, c, err := masterkey.LoadOrCreateFile(path)
				keys[i], errs[i] = k, err
				if c {
					mu.Lock()
					created++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if keys[i] != keys[0] {
				t.Fatal("two callers got different keys")
			}
		}
		if created != 1 {
			t.Fatalf("%d callers created the file, want 1", created)
		}
		if k, err := masterkey.LoadFile(path); err != nil || k != keys[0] {
			t.Fatalf("the file holds another key: %v", err)
		}
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := masterkey.LoadFile(filepath.Join(t.TempDir(), "nope.key"))
	if !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

func TestLoadOrCreateFileMissingFolder(t *testing.T) {
	_, _, err := masterkey.LoadOrCreateFile(filepath.Join(t.TempDir(), "no", "parley.db.key"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v, want one saying the folder does not exist", err)
	}
}
