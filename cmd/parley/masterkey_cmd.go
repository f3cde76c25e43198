package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
)

// newMasterKeyEnv, when set, is the new key itself for master-key rotate,
// as PARLEY_MASTER_KEY is the current one.
const newMasterKeyEnv = "PARLEY_NEW_MASTER_KEY"

// masterKeyCmd dispatches `parley master-key rotate|reset`.
func masterKeyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) >= 1 {
		switch args[0] {
		case "rotate":
			return masterKeyRotateCmd(ctx, args[1:], stdout, stderr)
		case "reset":
			return masterKeyResetCmd(ctx, args[1:], stdout, stderr)
		}
	}
	return usageError{"usage: parley master-key rotate|reset --db PATH …"}
}

// keySource says where a key came from, for the operator's next steps.
type keySource struct{ env, file string }

func (s keySource) String() string {
	if s.env != "" {
		return s.env
	}
	return "the key file " + s.file
}

// currentKeySource is where loadMasterKey takes the key from.
func currentKeySource(keyFile string) keySource {
	if _, ok := os.LookupEnv(masterKeyEnv); ok {
		return keySource{env: masterKeyEnv}
	}
	return keySource{file: keyFile}
}

// needDatabase refuses a path with no database, for the commands that
// change one: a mistyped path must not leave a new, empty database behind.
func needDatabase(dbPath string) error {
	if isURL(dbPath) {
		return nil // PostgreSQL says so itself, when there is no such database
	}
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return usageError{fmt.Sprintf("no database at %s", dbPath)}
	}
	return checkDBPath(dbPath)
}

// masterKeyRotateCmd re-seals the identity secrets under a new master key.
// The server must be stopped: it keeps the key it started with and opens
// secrets per request, so after the rotation it could open none. The
// store refuses while anything else has the database open.
func masterKeyRotateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("master-key rotate", stderr)
	dbFlags := addDatabaseFlags(fs, "")
	newKeyFile := fs.String("new-key-file", "", "`path` of the new master key, created (mode 0600) when missing; "+
		newMasterKeyEnv+" gives the key itself instead")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if dbPath == "" {
		return usageError{"master-key rotate needs --db or --database-url"}
	}
	newEnv, fromEnv := os.LookupEnv(newMasterKeyEnv)
	if fromEnv == (*newKeyFile != "") {
		return usageError{"master-key rotate needs the new key from exactly one of --new-key-file PATH and " + newMasterKeyEnv}
	}
	if err := needDatabase(dbPath); err != nil {
		return err
	}
	if err := keyGivenForURL(dbPath, *keyFile); err != nil {
		return err
	}
	log := cliLog(stderr)
	next, nextSrc, created, err := loadNewKey(newEnv, fromEnv, *newKeyFile)
	if err != nil {
		return err
	}
	curFile := keyFilePath(dbPath, *keyFile)
	n, err := rotateTo(ctx, dbPath, curFile, next, log)
	if err != nil {
		if created {
			discardUnusedKey(ctx, dbPath, *newKeyFile, next)
		}
		return err
	}
	if created {
		log.Warn("created the new master key file; back it up apart from the database", "path", *newKeyFile)
	}
	fmt.Fprintf(stdout, "Rotated the master key of %s: %d identity secrets and the key check are now sealed with the new key (from %s).\n"+
		"The secrets themselves did not change. The old key no longer opens this database.\n\nNext:\n%s",
		displayName(dbPath), n, nextSrc, rotateNextSteps(currentKeySource(curFile), nextSrc))
	return nil
}

// rotateTo re-seals the database's secrets under next, with the current
// key from the usual sources.
func rotateTo(ctx context.Context, dbPath, curFile string, next masterkey.Key, log *slog.Logger) (int, error) {
	var cur masterkey.Key
	var created bool
	var err error
	if isURL(dbPath) {
		cur, err = givenMasterKey(curFile, log) // the current key must exist
	} else {
		cur, created, err = loadMasterKey(curFile, log)
	}
	if err != nil {
		return 0, err
	}
	n, err := store.RotateMasterKey(ctx, dbPath, cur, next)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return 0, usageError{ie.Msg}
	}
	return n, missingKeyFile(err, created, curFile)
}

// loadNewKey returns the new key from PARLEY_NEW_MASTER_KEY or from the
// file at path, created (0600) when missing like any key file.
func loadNewKey(env string, fromEnv bool, path string) (k masterkey.Key, src keySource, created bool, err error) {
	if !fromEnv {
		k, created, err = masterkey.LoadOrCreateFile(path)
		return k, keySource{file: path}, created, err
	}
	if k, err = masterkey.Parse(env); err != nil {
		// The value is never echoed: it may be a real key with a typo.
		return k, src, false, usageError{fmt.Sprintf("%s is not a valid master key: %s; make one with: parley keygen",
			newMasterKeyEnv, strings.TrimPrefix(err.Error(), "masterkey: "))}
	}
	return k, keySource{env: newMasterKeyEnv}, false, nil
}

// discardUnusedKey removes a key file this command created when the
// database does not open with it: the command failed before using it, and
// a stray key file would later be taken for one in use.
func discardUnusedKey(ctx context.Context, dbPath, keyFile string, key masterkey.Key) {
	db, err := store.Open(ctx, dbPath, key)
	if err == nil {
		db.Close()
		return
	}
	if errors.Is(err, store.ErrMasterKeyMismatch) {
		os.Remove(keyFile)
	}
}

// rotateNextSteps tells the operator how to make every parley command use
// the new key instead of the old one.
func rotateNextSteps(cur, next keySource) string {
	var use string
	switch {
	case next.env != "":
		use = fmt.Sprintf("set %s to the new key (the value of %s) wherever parley runs", masterKeyEnv, newMasterKeyEnv)
		if cur.file != "" {
			use += fmt.Sprintf(" (it takes precedence over the key file %s, whose key no longer opens the database)", cur.file)
		}
	case cur.env != "":
		use = fmt.Sprintf("set %s to the contents of %s wherever parley runs (or unset it and pass --master-key-file %s)",
			masterKeyEnv, next.file, next.file)
	default:
		use = fmt.Sprintf("put the new key file in place of the old one (mv %s %s), or pass --master-key-file %s to every parley command",
			next.file, cur.file, next.file)
	}
	return "  1. Keep the old key with the backups taken before now, which still need it, and nowhere else.\n" +
		"  2. Make parley use the new key: " + use + ".\n" +
		"  3. Start parley serve again.\n"
}

// masterKeyResetCmd is for an operator who lost the master key: the
// identity secrets sealed with it are unreadable for good, so each app
// gets a new one under a new key.
func masterKeyResetCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("master-key reset", stderr)
	dbFlags := addDatabaseFlags(fs, "")
	forget := fs.Bool("forget-identity-secrets", false, "confirm: delete every identity secret and give each app a new one")
	asJSON := fs.Bool("json", false, "print one JSON object, with the new secrets")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if dbPath == "" {
		return usageError{"master-key reset needs --db or --database-url"}
	}
	if !*forget {
		return usageError{"master-key reset is for a lost master key and cannot be undone: it deletes every app's " +
			"identity secrets, gives each app a new one sealed with a new master key (" + masterKeyEnv + ", or the key file, " +
			"created when missing), and ends the chats an old secret verified. User hashes and identity JWTs made with " +
			"the old secrets fail until each site deploys its new secret. Conversations, visitors, owners and apps are kept. " +
			"To do this, add --forget-identity-secrets"}
	}
	if err := needDatabase(dbPath); err != nil {
		return err
	}
	file := keyFilePath(dbPath, *keyFile)
	if err := keyGivenForURL(dbPath, *keyFile); err != nil {
		return err
	}
	src := currentKeySource(file)
	key, created, err := loadMasterKey(file, cliLog(stderr))
	if err != nil {
		return err
	}
	if src.file != "" && !created {
		return existingKeyFileRefusal(ctx, dbPath, file, key)
	}
	reset, err := store.ResetMasterKey(ctx, dbPath, key)
	if err != nil {
		if created {
			discardUnusedKey(ctx, dbPath, file, key)
		}
		if errors.Is(err, store.ErrMasterKeyNotLost) {
			return usageError{fmt.Sprintf("the master key from %s opens this database: nothing was lost and nothing was changed. "+
				"To change the key, use parley master-key rotate; to replace one app's secret, use the dashboard", src)}
		}
		return err
	}
	if *asJSON {
		return printResetJSON(stdout, reset)
	}
	return printReset(stdout, dbPath, src, created, reset)
}

// existingKeyFileRefusal refuses to reset with a key file that was there
// before: it is either the working key (nothing was lost) or one that does
// not open the database either, which reset will not quietly adopt.
func existingKeyFileRefusal(ctx context.Context, dbPath, keyFile string, key masterkey.Key) error {
	db, err := store.Open(ctx, dbPath, key)
	if err == nil {
		db.Close()
		return usageError{fmt.Sprintf("the key file %s opens this database: nothing was lost and nothing was changed. "+
			"To change the key, use parley master-key rotate; to replace one app's secret, use the dashboard", keyFile)}
	}
	if !errors.Is(err, store.ErrMasterKeyMismatch) {
		return err
	}
	return usageError{fmt.Sprintf("the key file %s does not open this database either, and reset does not reuse it. "+
		"If the right key is lost for good, move that file away (mv %s %s.lost) so that reset creates a new key there, "+
		"or pass --master-key-file with the path of a new key file", keyFile, keyFile, keyFile)}
}

func printResetJSON(stdout io.Writer, reset []store.ResetSecret) error {
	type app struct {
		AppID            string `json:"app_id"`
		Name             string `json:"name"`
		IdentitySecretID string `json:"identity_secret_id"`
		IdentitySecret   string `json:"identity_secret"`
	}
	apps := make([]app, len(reset))
	for i, r := range reset {
		apps[i] = app{r.AppID, r.AppName, r.Secret.ID, r.Secret.Secret}
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"apps": apps})
}

// printReset lists the apps without their secrets, which would otherwise
// stay in the terminal's scrollback; the dashboard reveals them.
func printReset(stdout io.Writer, dbPath string, src keySource, created bool, reset []store.ResetSecret) error {
	fmt.Fprintf(stdout, "Reset the master key of %s: the identity secrets sealed with the lost key are deleted, and every app "+
		"has a new one, sealed with the key from %s.\n", displayName(dbPath), src)
	if created {
		fmt.Fprintf(stdout, "That key file was created now: back it up apart from the database.\n")
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP ID\tNAME\tNEW IDENTITY SECRET ID")
	for _, r := range reset {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.AppID, r.AppName, r.Secret.ID)
	}
	tw.Flush()
	_, err := fmt.Fprintf(stdout, "\nStart parley serve again with this key. Then, for each app, reveal the new identity secret "+
		"on its Settings page in the dashboard and deploy it to the site's backend. Until then, user hashes and identity JWTs "+
		"made with the old secrets are refused; the chats they verified were ended.\n")
	return err
}
