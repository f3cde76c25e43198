package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/identity"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return runCLIStdin(t, "", args...)
}

func runCLIStdin(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestAppsCreateJSON(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	out, _, err := runCLI(t, "apps", "create", "--db", db, "--name", "Shop", "--origin", "https://shop.example",
		"--origin", "http://localhost:3000", "--identity", "monitor", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("output is not JSON: %q", out)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value: %q", out)
	}
	for _, k := range []string{"app_id", "identity_secret", "api_key"} {
		if s, _ := got[k].(string); s == "" {
			t.Errorf("%s missing from %v", k, got)
		}
	}
	if got["identity_mode"] != "monitor" {
		t.Errorf("identity_mode = %v", got["identity_mode"])
	}
}

func TestAppsCreateRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"path in origin": {"--name", "x", "--origin", "https://a.example/path;x"},
		"wildcard":       {"--name", "x", "--origin", "*"},
		"no origin":      {"--name", "x"},
		"no name":        {"--origin", "https://a.example"},
		"bad mode":       {"--name", "x", "--origin", "https://a.example", "--identity", "off"},
	} {
		args = append([]string{"apps", "create", "--db", filepath.Join(dir, "p.db")}, args...)
		_, _, err := runCLI(t, args...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("%s: err = %v, want a usage error (exit 2)", name, err)
		}
	}
}

func TestHash(t *testing.T) {
	out, _, err := runCLI(t, "hash", "--secret", "s3cret", "--user-id", "user-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out), identity.UserHash("s3cret", "user-1"); got != want {
		t.Fatalf("hash = %q, want %q", got, want)
	}
	if _, _, err := runCLI(t, "hash", "--secret", "s"); err == nil {
		t.Fatal("hash without a user id succeeded")
	}
}

func TestServeStartsAndStopsGracefully(t *testing.T) {
	addr := freeAddr(t)
	status, stop := serveInProcess(t, addr, "/healthz", "--db", filepath.Join(t.TempDir(), "p.db"), "--public-url", "http://"+addr)
	if status != http.StatusOK {
		t.Fatalf("healthz = %d", status)
	}
	if err := stop(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("serve returned %v", err)
	}
}

// serveInProcess runs `parley serve --addr addr` with args in this process
// and returns the status of GET path once it answers, and stop, which ends
// serve and returns what it returned.
func serveInProcess(t *testing.T, addr, path string, args ...string) (int, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		done <- run(ctx, append([]string{"serve", "--addr", addr}, args...), strings.NewReader(""), &out, &out)
	}()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("serve did not stop after its context ended")
			return nil
		}
	}
	var resp *http.Response
	var err error
	for range 200 {
		if resp, err = http.Get("http://" + addr + path); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		stop()
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, stop
}

func TestUnknownCommand(t *testing.T) {
	_, stderr, err := runCLI(t, "frobnicate")
	if exitCode(err) != 2 || !strings.Contains(stderr, "Usage") {
		t.Fatalf("err = %v, stderr = %q", err, stderr)
	}
}

func TestServeRefusesBadTrustedProxy(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	for _, args := range [][]string{
		{"serve", "--db", db, "--trusted-proxy", "proxy.example.com"},
		{"serve", "--db", db, "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "10.0.0.0/99"},
	} {
		_, _, err := runCLI(t, args...)
		if exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "trusted proxy") {
			t.Errorf("%v: err = %v, want a usage error about the trusted proxy", args, err)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a refused serve created the database")
	}
}

// serve refuses bad e-mail settings before it touches the database, and
// its message never repeats the SMTP URL's password.
func TestServeRefusesBadMailSettings(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--smtp-url", "http://user:hunter2@mail.example", "--mail-from", "chat@example.com"}, "smtp://"},
		{[]string{"--smtp-url", "smtp://user:hunter2@mail.example:99999", "--mail-from", "chat@example.com"}, "port"},
		{[]string{"--smtp-url", "smtp://user:hunter2@mail.example"}, "--mail-from"},
		{[]string{"--smtp-url", "smtp://user:hunter2@mail.example", "--mail-from", "not an address"}, "not an e-mail address"},
		{[]string{"--mail-from", "chat@example.com"}, "--smtp-url"},
		{[]string{"--agent-email-after", "10s"}, "--agent-email-after"},
		{[]string{"--user-email-after", "400h"}, "--user-email-after"},
	} {
		_, _, err := runCLI(t, append([]string{"serve", "--db", db}, c.args...)...)
		if exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), c.want) || strings.Contains(fmt.Sprint(err), "hunter2") {
			t.Errorf("%v: err = %v, want a usage error naming %q", c.args, err, c.want)
		}
	}
	t.Setenv("PARLEY_AGENT_EMAIL_AFTER", "soon")
	if _, _, err := runCLI(t, "serve", "--db", db); exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "PARLEY_AGENT_EMAIL_AFTER") {
		t.Errorf("a bad PARLEY_AGENT_EMAIL_AFTER: %v", err)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a refused serve created the database")
	}
}

// The SMTP URL from the environment is never printed, not even as a
// flag's default in the usage a bad flag shows.
func TestSMTPPasswordNotInUsage(t *testing.T) {
	t.Setenv("PARLEY_SMTP_URL", "smtp://user:hunter2@mail.example:587")
	_, stderr, err := runCLI(t, "serve", "--no-such-flag")
	if exitCode(err) != 2 || strings.Contains(stderr, "hunter2") || !strings.Contains(stderr, "smtp-url") {
		t.Errorf("serve with a bad flag: %v, usage mentions the password: %v", err, strings.Contains(stderr, "hunter2"))
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10MB": 10 << 20, "512kb": 512 << 10, "1GB": 1 << 30, "2048": 2048, " 3 MB ": 3 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ten", "-1MB", "0", "2GB", "1.5MB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
	db := filepath.Join(t.TempDir(), "p.db")
	if _, _, err := runCLI(t, "serve", "--db", db, "--attachment-max-size", "huge"); exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "attachment-max-size") {
		t.Errorf("a bad --attachment-max-size: %v", err)
	}
}
