package masterkey

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// LoadOrCreateFile returns the key kept in the file at path, creating the
// file with a new random key (mode 0600, base64 and a newline) when there
// is none; created reports that. Two processes starting at once end up
// with the same key: whichever creates the file first wins and the other
// reads it.
func LoadOrCreateFile(path string) (k Key, created bool, err error) {
	k, err = LoadFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	k = Generate()
	err = createFile(path, k)
	if errors.Is(err, fs.ErrExist) {
		k, err = LoadFile(path)
		return k, false, err
	}
	if err != nil {
		return Key{}, false, fmt.Errorf("masterkey: creating key file %s: %w", path, err)
	}
	return k, true, nil
}

// LoadFile reads the key kept in the file at path. It refuses a file that
// other users can access, since anyone who can read it can read every
// secret sealed with it, and a file that is not exactly one key.
func LoadFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("masterkey: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("masterkey: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("masterkey: key file %s is not a regular file", path)
	}
	// Windows has no such mode bits; its ACLs are the operator's business.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return Key{}, fmt.Errorf("masterkey: key file %s is accessible by other users (mode %04o); "+
			"restrict it with: chmod 600 %s", path, perm, path)
	}
	// A key is under 100 bytes; reading a little more is enough to refuse
	// anything that is not one.
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return Key{}, fmt.Errorf("masterkey: key file: %w", err)
	}
	k, err := parse(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("masterkey: key file %s must hold exactly one key: %w", path, err)
	}
	return k, nil
}

// createFile writes k to a temporary file (created 0600 with O_EXCL) and
// links it into place. A link never replaces an existing file, and the key
// file appears complete: a process that loses the race reads the winner's
// key, never a half-written one. Both files are synced, because losing
// the key after secrets were sealed with it loses the secrets.
func createFile(path string, k Key) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("folder %s does not exist", dir)
	}
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeKey(tmp, k); err != nil {
		return err
	}
	err = os.Link(tmp.Name(), path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Some filesystems have no hard links: create in place instead.
		err = createInPlace(path, k)
	}
	if err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

func createInPlace(path string, k Key) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := writeKey(f, k); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// writeKey writes, syncs and closes f.
func writeKey(f *os.File, k Key) error {
	_, err := f.WriteString(k.Encode() + "\n")
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// syncDir makes the new directory entry durable. Best effort: not every
// platform can sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
