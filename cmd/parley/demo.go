package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/demoshop"
	"github.com/parley-chat/parley/internal/password"
	"github.com/parley-chat/parley/internal/store"
)

const (
	demoAppName    = "Demo shop"
	demoOwnerEmail = "demo@example.com"
	demoOwnerName  = "Demo agent"
)

// demoCmd runs Parley and the demo shop side by side on two origins, with
// the demo app created on first start.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	dbFlags := addDatabaseFlags(fs, ".data/demo.db")
	addr := fs.String("addr", "127.0.0.1:8080", "Parley's listen address")
	shopAddr := fs.String("shop-addr", "localhost:8081", "the demo shop's listen address")
	publicURL := fs.String("public-url", "", "Parley's origin as browsers see it (default http:// and --addr); behind a balancer, the balancer's")
	natsURL := fs.String("nats-url", "", "with --database-url: the NATS server that carries events between nodes, as for serve")
	keyFile := masterKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dbPath, err := dbFlags.location()
	if err != nil {
		return err
	}
	if !isURL(dbPath) {
		if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
			return err
		}
	}
	db, err := openStore(ctx, dbPath, *keyFile, cliLog(stderr))
	if err != nil {
		return err
	}
	defer db.Close()

	if *natsURL != "" && !isURL(dbPath) {
		return usageError{"--nats-url connects the nodes of a cluster, which share a PostgreSQL database: give --database-url, not --db"}
	}
	parleyURL := "http://" + *addr
	if *publicURL != "" {
		parleyURL = strings.TrimSuffix(*publicURL, "/")
	}
	shopURL := "http://" + *shopAddr
	app, apiKey, err := demoApp(ctx, db, shopURL)
	if err != nil {
		return err
	}
	ownerPassword, err := demoOwner(ctx, db, app.ID)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	parleyLn, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	shopLn, err := net.Listen("tcp", *shopAddr)
	if err != nil {
		return err
	}
	shop := &demoshop.Shop{ParleyURL: parleyURL, AppID: app.ID, IdentitySecretID: app.IdentitySecretID, IdentitySecret: app.IdentitySecret, APIKey: apiKey}
	shopSrv := &http.Server{Handler: shop.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go shopSrv.Serve(shopLn)
	defer shopSrv.Close()

	fmt.Fprintf(stdout, `
Parley demo
  Parley:      %s   (app %s, identity enforced)
  Demo shop:   %s   ← open this, log in as Alice or Bob, click the chat button
  Dashboard:   %s/login   ← sign in to watch chats arrive and answer them
               email     %s
               password  %s   (new at every start)
  Agent view:  %s/agent   ← answer through Parley's server API

  API key for this run (rotated at every start):
    curl -H 'Authorization: Bearer %s' %s/api/v1/conversations

Ctrl-C stops both.
`, parleyURL, app.ID, shopURL, parleyURL, demoOwnerEmail, ownerPassword, shopURL, apiKey, parleyURL)
	err = serve(ctx, serveConfig{DBPath: dbPath, Addr: *addr, PublicURL: parleyURL, NATSURL: *natsURL}, db, parleyLn, log)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// demoApp finds the demo app or creates it. Its API key is stored only as a
// hash, so the demo rotates it to have one it can show and use.
func demoApp(ctx context.Context, db *store.DB, shopURL string) (*store.App, string, error) {
	app, err := db.AppByName(ctx, demoAppName)
	if errors.Is(err, store.ErrNotFound) {
		created, err := db.CreateApp(ctx, store.NewApp{Name: demoAppName, Origins: []string{shopURL}, IdentityMode: store.ModeEnforced})
		if err != nil {
			return nil, "", err
		}
		return &created.App, created.APIKey, nil
	}
	if err != nil {
		return nil, "", err
	}
	key, err := db.RotateAPIKey(ctx, app.ID)
	return app, key, err
}

// demoOwner makes sure the demo owner exists and belongs to the demo app,
// and gives them a fresh password, since a stored hash cannot be shown.
// Setting it also signs out any dashboard session from an earlier run.
func demoOwner(ctx context.Context, db *store.DB, appID string) (string, error) {
	pw := password.Generate()
	hash, err := password.Hash(pw)
	if err != nil {
		return "", err
	}
	owner, _, err := db.OwnerByEmail(ctx, demoOwnerEmail)
	switch {
	case errors.Is(err, store.ErrNotFound):
		owner, err = db.CreateOwner(ctx, demoOwnerEmail, demoOwnerName, hash)
	case err == nil:
		err = db.SetOwnerPassword(ctx, owner.ID, hash)
	}
	if err != nil {
		return "", err
	}
	return pw, db.AddMember(ctx, appID, owner.ID)
}
