package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/parley-chat/parley/internal/store"
)

// appsSetDisabledCmd turns an app's widget off (disable) or back on
// (enable). Disabling ends every session of the app; a running server
// closes their sockets within a second, since it watches the database for
// ended sessions.
func appsSetDisabledCmd(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	disabled := verb == "disable"
	fs := newFlags("apps "+verb, stderr)
	dbPath := fs.String("db", os.Getenv("PARLEY_DB"), "SQLite database `path`")
	appID := fs.String("app", "", "the `app_id` to "+verb)
	asJSON := fs.Bool("json", false, "print one JSON object")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dbPath == "" || strings.TrimSpace(*appID) == "" {
		return usageError{fmt.Sprintf("apps %s needs --db and --app", verb)}
	}
	if err := needDatabase(*dbPath); err != nil {
		return err
	}
	db, err := openStore(ctx, *dbPath, *keyFile, cliLog(stderr))
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
