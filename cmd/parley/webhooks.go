package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
)

// webhookAllowEnv is --webhook-allow's environment variable: CIDRs,
// comma-separated.
const webhookAllowEnv = "PARLEY_WEBHOOK_ALLOW"

// webhookAllowFlag adds --webhook-allow to a command.
func webhookAllowFlag(fs *flag.FlagSet) *multiFlag {
	var allow multiFlag
	fs.Var(&allow, "webhook-allow", "`CIDR` or IP a webhook may be sent to although it is loopback, private or link-local, "+
		"and over plain http (repeatable; "+webhookAllowEnv+", comma-separated)")
	return &allow
}

// webhookGuard is the allow list from the flag, else the environment.
func webhookGuard(allow multiFlag) (webhooks.Guard, error) {
	raw := []string(allow)
	if len(raw) == 0 && os.Getenv(webhookAllowEnv) != "" {
		raw = []string{os.Getenv(webhookAllowEnv)}
	}
	g, err := webhooks.ParseAllow(raw)
	if err != nil {
		return g, usageError{strings.TrimPrefix(err.Error(), "webhooks: ")}
	}
	return g, nil
}

// webhooksCmd dispatches `parley webhooks add|list|remove|rotate-secret`.
func webhooksCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) >= 1 {
		switch args[0] {
		case "add":
			return webhooksAddCmd(ctx, args[1:], stdout, stderr)
		case "list":
			return webhooksListCmd(ctx, args[1:], stdout, stderr)
		case "remove":
			return webhooksRemoveCmd(ctx, args[1:], stdout, stderr)
		case "rotate-secret":
			return webhooksRotateCmd(ctx, args[1:], stdout, stderr)
		}
	}
	return usageError{"usage: parley webhooks add|list|remove|rotate-secret --db PATH --app APP_ID …"}
}

// webhookFlags are what every webhooks command takes.
type webhookFlags struct {
	db      *databaseFlags
	app     *string
	keyFile *string
	json    *bool
}

func addWebhookFlags(fs *flag.FlagSet) webhookFlags {
	return webhookFlags{db: addDatabaseFlags(fs, ""), app: fs.String("app", "", "the `app_id`"),
		keyFile: masterKeyFlag(fs), json: fs.Bool("json", false, "print one JSON object")}
}

// open checks the common flags and opens the database.
func (f webhookFlags) open(ctx context.Context, cmd string, stderr io.Writer) (*store.DB, error) {
	dbPath, err := f.db.location()
	if err != nil {
		return nil, err
	}
	if dbPath == "" || strings.TrimSpace(*f.app) == "" {
		return nil, usageError{cmd + " needs --db or --database-url and --app"}
	}
	db, err := openExistingStore(ctx, dbPath, *f.keyFile, cliLog(stderr))
	if err != nil {
		return nil, err
	}
	if _, err := db.App(ctx, *f.app); errors.Is(err, store.ErrNotFound) {
		db.Close()
		return nil, usageError{fmt.Sprintf("no app has the id %q", *f.app)}
	} else if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func webhooksAddCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("webhooks add", stderr)
	f := addWebhookFlags(fs)
	rawURL := fs.String("url", "", "where to send the events: an https:// `URL`")
	var events multiFlag
	fs.Var(&events, "event", "an `event` to send: "+strings.Join(webhooks.Events, ", ")+" (repeatable; default all)")
	allow := webhookAllowFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(*rawURL) == "" {
		return usageError{"webhooks add needs --url"}
	}
	// Checked before the database is touched.
	guard, err := webhookGuard(*allow)
	if err != nil {
		return err
	}
	u, err := guard.CheckURL(ctx, net.DefaultResolver, *rawURL)
	if err != nil {
		return usageError{strings.TrimPrefix(err.Error(), "webhooks: ")}
	}
	if _, err := webhooks.ParseEvents(events); err != nil {
		return usageError{strings.TrimPrefix(err.Error(), "webhooks: ")}
	}
	db, err := f.open(ctx, "webhooks add", stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	e, err := db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: *f.app, URL: u.String(), Events: events})
	if ie := new(store.InputError); errors.As(err, &ie) {
		return usageError{ie.Msg}
	}
	if err != nil {
		return err
	}
	if *f.json {
		return json.NewEncoder(stdout).Encode(map[string]any{"id": e.ID, "url": e.URL, "events": e.Events, "secret": e.Secret})
	}
	fmt.Fprintf(stdout, "Added webhook endpoint %s for app %s:\n  url     %s\n  events  %s\n  secret  %s   ← shown only now: give it to the receiver, which verifies each request with it (Standard Webhooks)\n",
		e.ID, *f.app, e.URL, strings.Join(e.Events, ", "), e.Secret)
	return nil
}

type webhookJSON struct {
	ID                string    `json:"id"`
	URL               string    `json:"url"`
	Events            []string  `json:"events"`
	Disabled          bool      `json:"disabled"`
	PreviousExpiresAt *string   `json:"previous_secret_expires_at,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
}

func webhooksListCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("webhooks list", stderr)
	f := addWebhookFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	db, err := f.open(ctx, "webhooks list", stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := db.WebhookEndpoints(ctx, *f.app)
	if err != nil {
		return err
	}
	out := make([]webhookJSON, 0, len(list))
	for _, e := range list {
		j := webhookJSON{ID: e.ID, URL: e.URL, Events: e.Events, Disabled: e.Disabled, CreatedAt: e.CreatedAt}
		if !e.PreviousExpiresAt.IsZero() {
			s := e.PreviousExpiresAt.Format(time.RFC3339)
			j.PreviousExpiresAt = &s
		}
		out = append(out, j)
	}
	if *f.json {
		return json.NewEncoder(stdout).Encode(map[string]any{"webhooks": out})
	}
	if len(out) == 0 {
		fmt.Fprintf(stdout, "App %s has no webhook endpoints; add one with: parley webhooks add --app %s --url https://…\n", *f.app, *f.app)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tEVENTS\tSTATE")
	for _, e := range out {
		state := "on"
		if e.Disabled {
			state = "off (rotate its secret to turn it back on)"
		} else if e.PreviousExpiresAt != nil {
			state = "on; the previous secret signs too until " + *e.PreviousExpiresAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.URL, strings.Join(e.Events, ","), state)
	}
	return tw.Flush()
}

func webhooksRemoveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("webhooks remove", stderr)
	f := addWebhookFlags(fs)
	id := fs.String("id", "", "the endpoint's `id` (webhooks list shows them)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(*id) == "" {
		return usageError{"webhooks remove needs --id"}
	}
	db, err := f.open(ctx, "webhooks remove", stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.RemoveWebhookEndpoint(ctx, *f.app, *id)
	if errors.Is(err, store.ErrNotFound) {
		return usageError{fmt.Sprintf("app %s has no webhook endpoint %q", *f.app, *id)}
	}
	if err != nil {
		return err
	}
	if *f.json {
		return json.NewEncoder(stdout).Encode(map[string]any{"id": *id, "removed": true})
	}
	fmt.Fprintf(stdout, "Removed webhook endpoint %s.\n", *id)
	return nil
}

func webhooksRotateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("webhooks rotate-secret", stderr)
	f := addWebhookFlags(fs)
	id := fs.String("id", "", "the endpoint's `id` (webhooks list shows them)")
	overlap := fs.Duration("overlap", 24*time.Hour, "how long the old secret keeps signing beside the new one (0: it stops now)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(*id) == "" {
		return usageError{"webhooks rotate-secret needs --id"}
	}
	if *overlap < 0 {
		return usageError{"--overlap must not be negative"}
	}
	db, err := f.open(ctx, "webhooks rotate-secret", stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	secret, overlapped, err := db.RotateWebhookSecret(ctx, *f.app, *id, *overlap)
	if errors.Is(err, store.ErrNotFound) {
		return usageError{fmt.Sprintf("app %s has no webhook endpoint %q", *f.app, *id)}
	}
	if err != nil {
		return err
	}
	if *f.json {
		return json.NewEncoder(stdout).Encode(map[string]any{"id": *id, "secret": secret})
	}
	fmt.Fprintf(stdout, "New secret for webhook endpoint %s: %s   ← shown only now\n", *id, secret)
	if overlapped {
		fmt.Fprintf(stdout, "The old secret signs beside it for %s: give the receiver the new one before then.\n", *overlap)
	}
	return nil
}
