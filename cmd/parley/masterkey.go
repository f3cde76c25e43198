package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
)

// masterKeyEnv, when set, is the master key itself and wins over any key
// file: for deployments that keep secrets in the environment.
const masterKeyEnv = "PARLEY_MASTER_KEY"

// masterKeyFlag adds --master-key-file to a command that opens the
// database.
func masterKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("master-key-file", "", "`path` of the master key that encrypts identity secrets "+
		"(default: the database path + \".key\", created when missing; "+masterKeyEnv+" takes precedence)")
}

// openStore opens the database at dbPath with the master key from
// PARLEY_MASTER_KEY or else from keyFile (default dbPath + ".key", created
// on first start). It logs where the key came from, never the key.
func openStore(ctx context.Context, dbPath, keyFile string, log *slog.Logger) (*store.DB, error) {
	return openStoreWith(ctx, dbPath, keyFile, log, store.Options{})
}

// openExistingStore is openStore for the commands that change or read a
// database that must already exist: a missing one is a usage error, not
// a new empty database.
func openExistingStore(ctx context.Context, dbPath, keyFile string, log *slog.Logger) (*store.DB, error) {
	if err := needDatabase(dbPath); err != nil {
		return nil, err
	}
	return openStore(ctx, dbPath, keyFile, log)
}

// openStoreWith is openStore with the database options of serve.
func openStoreWith(ctx context.Context, dbPath, keyFile string, log *slog.Logger, opts store.Options) (*store.DB, error) {
	if isURL(dbPath) {
		return openPostgres(ctx, dbPath, keyFile, log, opts)
	}
	if err := checkDBPath(dbPath); err != nil {
		return nil, err
	}
	keyFile = keyFilePath(dbPath, keyFile)
	key, created, err := loadMasterKey(keyFile, log)
	if err != nil {
		return nil, err
	}
	db, err := store.OpenWith(ctx, dbPath, key, opts)
	return db, missingKeyFile(err, created, keyFile)
}

// openPostgres opens the PostgreSQL database at dbURL. There is no key
// file beside a URL to create: the key must be given, and every node of
// a cluster is given the same one.
func openPostgres(ctx context.Context, dbURL, keyFile string, log *slog.Logger, opts store.Options) (*store.DB, error) {
	key, err := givenMasterKey(keyFile, log)
	if err != nil {
		return nil, err
	}
	db, err := store.OpenWith(ctx, dbURL, key, opts)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// keyGivenForURL refuses a PostgreSQL database with no master key named:
// there is no file beside a URL to take it from.
func keyGivenForURL(loc, keyFile string) error {
	if _, ok := os.LookupEnv(masterKeyEnv); ok || keyFile != "" || !isURL(loc) {
		return nil
	}
	return usageError{"with --database-url, give the master key: set " + masterKeyEnv +
		" or pass --master-key-file (make one with: parley keygen); every node of a cluster uses the same key"}
}

// givenMasterKey is the master key for a PostgreSQL database: from
// PARLEY_MASTER_KEY or an existing --master-key-file, never a new one.
func givenMasterKey(keyFile string, log *slog.Logger) (masterkey.Key, error) {
	if err := keyGivenForURL("postgres://", keyFile); err != nil {
		return masterkey.Key{}, err
	}
	if _, ok := os.LookupEnv(masterKeyEnv); !ok {
		key, err := masterkey.LoadFile(keyFile)
		if err != nil {
			return masterkey.Key{}, err
		}
		log.Info("master key", "source", "file", "path", keyFile)
		return key, nil
	}
	key, _, err := loadMasterKey("", log)
	return key, err
}

// checkDBPath refuses a --db that cannot be a database file before
// anything is created (the key file beside it, say): a directory, a device
// or a socket, or a new file in a directory that does not exist.
func checkDBPath(dbPath string) error {
	fi, err := os.Stat(dbPath)
	switch {
	case err == nil && fi.IsDir():
		return usageError{fmt.Sprintf("--db %s is a directory; name the database file instead, e.g. %s", dbPath, filepath.Join(dbPath, "parley.db"))}
	case err == nil && !fi.Mode().IsRegular():
		return usageError{fmt.Sprintf("--db %s is not a regular file", dbPath)}
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return usageError{fmt.Sprintf("--db %s: %v", dbPath, errors.Unwrap(err))}
	}
	dir := filepath.Dir(dbPath)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usageError{fmt.Sprintf("--db %s: the directory %s does not exist; create it first", dbPath, dir)}
	}
	return nil
}

// keyFilePath is the key file used when PARLEY_MASTER_KEY is not set.
func keyFilePath(dbPath, keyFile string) string {
	if keyFile == "" {
		return dbPath + ".key"
	}
	return keyFile
}

// missingKeyFile explains a mismatch with a key file that was only just
// created: the right key is missing. The new key is of no use to anyone;
// leaving it would only hide that.
func missingKeyFile(err error, created bool, keyFile string) error {
	if errors.Is(err, store.ErrMasterKeyMismatch) && created {
		os.Remove(keyFile)
		return fmt.Errorf("%w (there was no key file at %s; restore it from your backup, or set %s)", err, keyFile, masterKeyEnv)
	}
	return err
}

func loadMasterKey(keyFile string, log *slog.Logger) (key masterkey.Key, created bool, err error) {
	if v, ok := os.LookupEnv(masterKeyEnv); ok {
		key, err := masterkey.Parse(v)
		if err != nil {
			// The value is never echoed: it may be a real key with a typo.
			return masterkey.Key{}, false, usageError{fmt.Sprintf("%s is not a valid master key: %s; make one with: parley keygen",
				masterKeyEnv, strings.TrimPrefix(err.Error(), "masterkey: "))}
		}
		log.Info("master key", "source", "env "+masterKeyEnv)
		return key, false, nil
	}
	key, created, err = masterkey.LoadOrCreateFile(keyFile)
	if err != nil {
		return masterkey.Key{}, false, err
	}
	if created {
		log.Warn("created a new master key file; back it up apart from the database: without it identity secrets cannot be read",
			"path", keyFile)
	}
	log.Info("master key", "source", "file", "path", keyFile)
	return key, created, nil
}

// cliLog is the logger of one-shot commands: quiet unless something needs
// the operator's attention.
func cliLog(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// keygenCmd prints a new random master key, e.g. for PARLEY_MASTER_KEY.
func keygenCmd(args []string, stdout, stderr io.Writer) error {
	if err := parse(newFlags("keygen", stderr), args); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, masterkey.Generate().Encode())
	return err
}
