package main

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestWebhooksCommands(t *testing.T) {
	t.Setenv(webhookAllowEnv, "")
	db := filepath.Join(t.TempDir(), "p.db")
	out, _, err := runCLI(t, "apps", "create", "--db", db, "--name", "Shop", "--origin", "https://shop.example", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		AppID string `json:"app_id"`
	}
	json.Unmarshal([]byte(out), &app)

	out, _, err = runCLI(t, "webhooks", "add", "--db", db, "--app", app.AppID, "--url", "https://93.184.216.34/parley", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var added map[string]any
	if err := json.Unmarshal([]byte(out), &added); err != nil || len(added) != 4 {
		t.Fatalf("add --json printed %q: want exactly id, url, events and secret", out)
	}
	id, _ := added["id"].(string)
	if secret, _ := added["secret"].(string); !strings.HasPrefix(secret, "whsec_") || id == "" || len(added["events"].([]any)) != 4 {
		t.Fatalf("add --json printed %q", out)
	}

	for name, args := range map[string][]string{
		"plain http":        {"--url", "http://93.184.216.34/x"},
		"a private address": {"--url", "https://10.0.0.7/x"},
		"loopback":          {"--url", "https://127.0.0.1:9/x"},
		"link-local":        {"--url", "https://169.254.169.254/latest"},
		"credentials":       {"--url", "https://u:p@93.184.216.34/x"},
		"not a URL":         {"--url", "hooks.example.com"},
		"an unknown event":  {"--url", "https://93.184.216.34/x", "--event", "message.deleted"},
		"no url":            {},
		"a bad allow range": {"--url", "https://93.184.216.34/x", "--webhook-allow", "10.0.0.0/40"},
	} {
		_, _, err := runCLI(t, append([]string{"webhooks", "add", "--db", db, "--app", app.AppID}, args...)...)
		if exitCode(err) != 2 {
			t.Errorf("%s: err = %v, want exit 2", name, err)
		}
	}
	if _, _, err := runCLI(t, "webhooks", "add", "--db", db, "--app", "app_nope", "--url", "https://93.184.216.34/x"); exitCode(err) != 2 {
		t.Errorf("unknown app: %v, want exit 2", err)
	}
	// The operator's allow list lets a local receiver in, over http too.
	if _, _, err := runCLI(t, "webhooks", "add", "--db", db, "--app", app.AppID, "--url", "http://127.0.0.1:9/hook",
		"--webhook-allow", "127.0.0.0/8", "--event", "message.created"); err != nil {
		t.Fatalf("an allowed loopback receiver: %v", err)
	}
	t.Setenv(webhookAllowEnv, "127.0.0.0/8")
	if _, _, err := runCLI(t, "webhooks", "add", "--db", db, "--app", app.AppID, "--url", "http://127.0.0.1:9/env"); err != nil {
		t.Fatalf("allowed through %s: %v", webhookAllowEnv, err)
	}

	out, _, err = runCLI(t, "webhooks", "list", "--db", db, "--app", app.AppID, "--json")
	if err != nil || strings.Contains(out, "whsec_") || strings.Count(out, `"id"`) != 3 {
		t.Fatalf("list --json printed %q (%v): want three endpoints and no secret", out, err)
	}
	out, _, err = runCLI(t, "webhooks", "rotate-secret", "--db", db, "--app", app.AppID, "--id", id, "--json")
	var rotated map[string]string
	if err != nil || json.Unmarshal([]byte(out), &rotated) != nil || rotated["id"] != id || !strings.HasPrefix(rotated["secret"], "whsec_") ||
		rotated["secret"] == added["secret"] {
		t.Fatalf("rotate-secret --json printed %q (%v)", out, err)
	}
	if _, _, err := runCLI(t, "webhooks", "remove", "--db", db, "--app", app.AppID, "--id", id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "webhooks", "remove", "--db", db, "--app", app.AppID, "--id", id); exitCode(err) != 2 {
		t.Fatalf("removing it twice: %v, want exit 2", err)
	}
	if stored := queryStrings(t, db, `SELECT secret FROM webhook_endpoints`); len(stored) != 2 || strings.HasPrefix(stored[0], "whsec_") {
		t.Fatalf("stored secrets %v: want them sealed", stored)
	}
}

// queryStrings reads one text column from the SQLite file.
func queryStrings(t *testing.T, path, query string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
