package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

func appsCreateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("apps create", stderr)
	dbFlags := addDatabaseFlags(fs, "")
	name := fs.String("name", "", "app name")
	var origins multiFlag
	fs.Var(&origins, "origin", "allowed parent-page origin, e.g. https://shop.example.com (repeatable)")
	mode := fs.String("identity", store.ModeEnforced, "identity mode: enforced or monitor")
	requireJWT := fs.Bool("require-jwt", false, "accept identified users only with an identity JWT (user_jwt), not a user_hash")
	refuseAnonymous := fs.Bool("refuse-anonymous", false, "refuse visitors who carry no identity")
	ownerEmail := fs.String("owner", "", "`email` of an existing owner who gets the app in their dashboard")
	asJSON := fs.Bool("json", false, "print one JSON object")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if dbPath == "" || *name == "" || len(origins) == 0 {
		return usageError{"apps create needs --db or --database-url, --name and at least one --origin"}
	}
	// Validate before touching the database, so a typo creates no file.
	if _, err := store.CanonicalOrigins(origins); err != nil {
		return usageError{err.Error()}
	}
	db, err := openStore(ctx, dbPath, *keyFile, cliLog(stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	var ownerID string
	if *ownerEmail != "" {
		owner, _, err := db.OwnerByEmail(ctx, *ownerEmail)
		if errors.Is(err, store.ErrNotFound) {
			return usageError{fmt.Sprintf("no owner has the email %q (create one with parley owners create)", *ownerEmail)}
		}
		if err != nil {
			return err
		}
		ownerID = owner.ID
	}
	created, err := db.CreateApp(ctx, store.NewApp{Name: *name, Origins: origins, IdentityMode: *mode,
		RequireJWT: *requireJWT, RefuseAnonymous: *refuseAnonymous, OwnerID: ownerID})
	if ie := new(store.InputError); errors.As(err, &ie) {
		return usageError{ie.Msg}
	}
	if err != nil {
		return err
	}
	a := created.App
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"app_id": a.ID, "name": a.Name, "origins": a.Origins, "identity_mode": a.IdentityMode,
			"require_jwt": a.RequireJWT, "refuse_anonymous": a.RefuseAnonymous,
			"identity_secret_id": a.IdentitySecretID, "identity_secret": a.IdentitySecret, "api_key": created.APIKey,
		})
	}
	printFields(stdout, [][2]string{
		{"app_id", a.ID}, {"name", a.Name}, {"origins", strings.Join(a.Origins, " ")}, {"identity_mode", a.IdentityMode},
		{"require_jwt", strconv.FormatBool(a.RequireJWT)}, {"refuse_anonymous", strconv.FormatBool(a.RefuseAnonymous)},
		{"identity_secret_id", a.IdentitySecretID}, {"identity_secret", a.IdentitySecret}, {"api_key", created.APIKey},
	})
	fmt.Fprint(stdout, "\nKeep identity_secret and api_key on your server only. The api_key is not shown again.\n"+
		"Identity JWTs name the secret that signed them with the kid header: identity_secret_id.\n")
	return nil
}

// appJSON is an app as apps list and apps show print it: its ids and
// settings, never a secret (those are shown once, by apps create and the
// dashboard).
type appJSON struct {
	AppID            string               `json:"app_id"`
	Name             string               `json:"name"`
	Origins          []string             `json:"origins"`
	IdentityMode     string               `json:"identity_mode"`
	RequireJWT       bool                 `json:"require_jwt"`
	RefuseAnonymous  bool                 `json:"refuse_anonymous"`
	Disabled         bool                 `json:"disabled"`
	IdentitySecretID string               `json:"identity_secret_id"`
	PreviousSecrets  []previousSecretJSON `json:"previous_identity_secrets"`
	Owners           []string             `json:"owners"`
	CreatedAt        time.Time            `json:"created_at"`
}

// previousSecretJSON is a retired identity secret that still verifies.
type previousSecretJSON struct {
	ID        string     `json:"id"`
	ExpiresAt *time.Time `json:"expires_at"` // null: until revoked
}

func newAppJSON(ctx context.Context, db *store.DB, a *store.App) (appJSON, error) {
	members, err := db.Members(ctx, a.ID)
	if err != nil {
		return appJSON{}, err
	}
	out := appJSON{AppID: a.ID, Name: a.Name, Origins: a.Origins, IdentityMode: a.IdentityMode, RequireJWT: a.RequireJWT,
		RefuseAnonymous: a.RefuseAnonymous, Disabled: a.Disabled(), IdentitySecretID: a.IdentitySecretID,
		PreviousSecrets: []previousSecretJSON{}, Owners: []string{}, CreatedAt: a.CreatedAt.UTC()}
	for _, s := range a.PreviousSecrets {
		p := previousSecretJSON{ID: s.ID}
		if !s.ExpiresAt.IsZero() {
			exp := s.ExpiresAt.UTC()
			p.ExpiresAt = &exp
		}
		out.PreviousSecrets = append(out.PreviousSecrets, p)
	}
	for _, m := range members {
		out.Owners = append(out.Owners, m.Email)
	}
	return out, nil
}

// appsListCmd prints every app of the database.
func appsListCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("apps list", stderr)
	dbFlags := addDatabaseFlags(fs, "")
	asJSON := fs.Bool("json", false, `print one JSON object: {"apps":[…]}`)
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if dbPath == "" {
		return usageError{"apps list needs --db or --database-url"}
	}
	db, err := openExistingStore(ctx, dbPath, *keyFile, cliLog(stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	apps, err := db.Apps(ctx)
	if err != nil {
		return err
	}
	list := make([]appJSON, 0, len(apps))
	for _, a := range apps {
		j, err := newAppJSON(ctx, db, a)
		if err != nil {
			return err
		}
		list = append(list, j)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"apps": list})
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "No apps yet. Create one with: parley apps create --db … --name NAME --origin ORIGIN")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP_ID\tNAME\tIDENTITY\tWIDGET\tIDENTITY_SECRET_ID\tORIGINS")
	for _, a := range list {
		widget := "on"
		if a.Disabled {
			widget = "off"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.AppID, a.Name, a.IdentityMode, widget, a.IdentitySecretID, strings.Join(a.Origins, " "))
	}
	return tw.Flush()
}

// appsShowCmd prints one app.
func appsShowCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("apps show", stderr)
	dbFlags := addDatabaseFlags(fs, "")
	appID := fs.String("app", "", "the `app_id` to show")
	asJSON := fs.Bool("json", false, "print one JSON object")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if dbPath == "" || strings.TrimSpace(*appID) == "" {
		return usageError{"apps show needs --db or --database-url and --app"}
	}
	db, err := openExistingStore(ctx, dbPath, *keyFile, cliLog(stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	a, err := db.App(ctx, *appID)
	if errors.Is(err, store.ErrNotFound) {
		return usageError{fmt.Sprintf("no app has the id %q", *appID)}
	}
	if err != nil {
		return err
	}
	j, err := newAppJSON(ctx, db, a)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(j)
	}
	var previous []string
	for _, p := range j.PreviousSecrets {
		until := "until revoked"
		if p.ExpiresAt != nil {
			until = "until " + p.ExpiresAt.Format(time.RFC3339)
		}
		previous = append(previous, p.ID+" (accepted "+until+")")
	}
	printFields(stdout, [][2]string{
		{"app_id", j.AppID}, {"name", j.Name}, {"origins", strings.Join(j.Origins, " ")}, {"identity_mode", j.IdentityMode},
		{"require_jwt", strconv.FormatBool(j.RequireJWT)}, {"refuse_anonymous", strconv.FormatBool(j.RefuseAnonymous)},
		{"disabled", strconv.FormatBool(j.Disabled)}, {"identity_secret_id", j.IdentitySecretID},
		{"previous_secrets", orNone(strings.Join(previous, ", "))}, {"owners", orNone(strings.Join(j.Owners, " "))},
		{"created_at", j.CreatedAt.Format(time.RFC3339)},
	})
	return nil
}

// printFields prints "name: value" lines with the values aligned.
func printFields(w io.Writer, fields [][2]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
	}
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// appsSetDisabledCmd turns an app's widget off (disable) or back on
// (enable). Disabling ends every session of the app; a running server
// closes their sockets within a second, since it watches the database for
// ended sessions.
func appsSetDisabledCmd(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	disabled := verb == "disable"
	fs := newFlags("apps "+verb, stderr)
	dbFlags := addDatabaseFlags(fs, "")
	appID := fs.String("app", "", "the `app_id` to "+verb)
	asJSON := fs.Bool("json", false, "print one JSON object")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if dbPath == "" || strings.TrimSpace(*appID) == "" {
		return usageError{fmt.Sprintf("apps %s needs --db or --database-url and --app", verb)}
	}
	db, err := openExistingStore(ctx, dbPath, *keyFile, cliLog(stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.SetAppDisabled(ctx, *appID, disabled)
	if errors.Is(err, store.ErrNotFound) {
		return usageError{fmt.Sprintf("no app has the id %q", *appID)}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"app_id": *appID, "disabled": disabled})
	}
	if disabled {
		fmt.Fprintf(stdout, "App %s is disabled: its widget refuses new chats, and open chats were ended.\n"+
			"Its conversations, dashboard and server API stay as they are. Undo with: parley apps enable --app %s\n", *appID, *appID)
		return nil
	}
	fmt.Fprintf(stdout, "App %s is enabled: its widget takes chats again.\n", *appID)
	return nil
}
