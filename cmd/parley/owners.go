package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/parley-chat/parley/internal/password"
	"github.com/parley-chat/parley/internal/store"
)

// newPassword reads the owner's password from stdin, or generates one
// (generated reports which), and checks it against the policy.
func newPassword(stdin io.Reader, fromStdin bool) (pw string, generated bool, err error) {
	pw, generated = password.Generate(), true
	if fromStdin {
		if pw, err = readPasswordLine(stdin); err != nil {
			return "", false, err
		}
		generated = false
	}
	if err := password.CheckPolicy(pw); err != nil {
		return "", false, usageError{err.Error()}
	}
	return pw, generated, nil
}

func ownersCreateCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("owners create", stderr)
	dbFlags := addDatabaseFlags(fs, "")
	email := fs.String("email", "", "the owner's sign-in email")
	name := fs.String("name", "", "display name shown to users with the owner's replies (default: the part of the email before @)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin instead of generating one")
	var apps multiFlag
	fs.Var(&apps, "app", "`app_id` the owner becomes a member of (repeatable)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if dbPath == "" || strings.TrimSpace(*email) == "" {
		return usageError{"owners create needs --db or --database-url and --email"}
	}
	// Checked before the database is touched, so a weak password leaves
	// nothing behind.
	pw, generated, err := newPassword(stdin, *fromStdin)
	if err != nil {
		return err
	}
	if *name == "" {
		*name = defaultName(*email)
	}

	db, err := openStore(ctx, dbPath, *keyFile, cliLog(stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	// Every app is checked before the owner exists: a typo in one --app
	// must not leave an owner without the access the operator asked for.
	for _, id := range apps {
		if _, err := db.App(ctx, id); errors.Is(err, store.ErrNotFound) {
			return usageError{fmt.Sprintf("no app has the id %q", id)}
		} else if err != nil {
			return err
		}
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	owner, err := db.CreateOwner(ctx, *email, *name, hash)
	if ie := new(store.InputError); errors.As(err, &ie) {
		return usageError{ie.Msg}
	}
	if err != nil {
		return err
	}
	for _, id := range apps {
		if err := db.AddMember(ctx, id, owner.ID); err != nil {
			return fmt.Errorf("owner %s created, but adding them to app %s failed: %w", owner.Email, id, err)
		}
	}
	return printOwner(stdout, stderr, owner, apps, pw, generated, *asJSON)
}

// ownersSetPasswordCmd gives an existing owner a new password: the
// operator's way to reset a forgotten one. The owner is signed out
// everywhere.
func ownersSetPasswordCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("owners set-password", stderr)
	dbFlags := addDatabaseFlags(fs, "")
	email := fs.String("email", "", "the owner's sign-in email")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin instead of generating one")
	asJSON := fs.Bool("json", false, "print one JSON object")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if dbPath == "" || strings.TrimSpace(*email) == "" {
		return usageError{"owners set-password needs --db or --database-url and --email"}
	}
	pw, generated, err := newPassword(stdin, *fromStdin)
	if err != nil {
		return err
	}
	db, err := openExistingStore(ctx, dbPath, *keyFile, cliLog(stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	unknown := usageError{fmt.Sprintf("no owner has the email %q (create one with parley owners create)", *email)}
	owner, _, err := db.OwnerByEmail(ctx, *email)
	if errors.Is(err, store.ErrNotFound) {
		return unknown
	}
	if err != nil {
		return err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	// SetOwnerPassword also deletes the owner's dashboard sessions.
	if err := db.SetOwnerPassword(ctx, owner.ID, hash); errors.Is(err, store.ErrNotFound) {
		return unknown // deleted since the lookup
	} else if err != nil {
		return err
	}

	const signedOut = "All of this owner's dashboard sessions were ended."
	if *asJSON {
		out := map[string]any{"owner_id": owner.ID, "email": owner.Email, "name": owner.Name}
		if generated {
			out["password"] = pw
			fmt.Fprintln(stderr, "The generated password is not shown again.")
		}
		fmt.Fprintln(stderr, signedOut)
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "owner_id: %s\nemail:    %s\nname:     %s\n", owner.ID, owner.Email, owner.Name)
	if generated {
		fmt.Fprintf(stdout, "password: %s\n", pw)
	}
	fmt.Fprintln(stdout, "\nThe password was changed.")
	if generated {
		fmt.Fprintln(stdout, "The password is not shown again. Give it to the owner over a private channel.")
	}
	fmt.Fprintln(stdout, signedOut)
	return nil
}

func printOwner(stdout, stderr io.Writer, o store.Owner, apps []string, pw string, generated, asJSON bool) error {
	if apps == nil {
		apps = []string{}
	}
	if asJSON {
		out := map[string]any{"owner_id": o.ID, "email": o.Email, "name": o.Name, "apps": apps}
		if generated {
			out["password"] = pw
			fmt.Fprintln(stderr, "The generated password is not shown again.")
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "owner_id: %s\nemail:    %s\nname:     %s\napps:     %s\n", o.ID, o.Email, o.Name, strings.Join(apps, " "))
	if generated {
		fmt.Fprintf(stdout, "password: %s\n\nThe password is not shown again. Give it to the owner over a private channel.\n", pw)
	}
	return nil
}

// readPasswordLine reads the first line of r without its line ending.
// Anything else on the line, spaces included, is part of the password.
func readPasswordLine(r io.Reader) (string, error) {
	// Read a little past the policy's limit so an overlong line is
	// refused as too long rather than cut.
	line, err := bufio.NewReader(io.LimitReader(r, password.MaxBytes+3)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// defaultName is what replies are signed with when no --name is given.
func defaultName(email string) string {
	email = strings.TrimSpace(email)
	if at := strings.LastIndexByte(email, '@'); at > 0 {
		return email[:at]
	}
	return email
}
