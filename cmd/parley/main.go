// Command parley is the Parley chat widget host: the server, and the CLI
// that creates apps and computes user hashes.
package main

import (
	// Time zone names (an app's business hours) work on a machine
	// without the system's zone files.
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/broker"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/jobs"
	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/metrics"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
	"github.com/parley-chat/parley/web"
)

const usage = `parley — a self-hosted chat widget host

Usage:
  parley serve --db PATH --addr HOST:PORT --public-url URL [--signup] [--trusted-proxy CIDR …] [--limit-… BURST,EVERY]
               [--synchronous full|normal] [--pprof HOST:PORT] [--metrics HOST:PORT] [--webhook-allow CIDR …]
               [--smtp-url smtp://USER:PASS@HOST:PORT --mail-from ADDRESS] [--agent-email-after 5m] [--user-email-after 10m]
  parley serve --database-url URL [--nats-url URL] [--cluster-poll DURATION] …   (a node of a cluster)
  parley apps create --db PATH --name NAME --origin ORIGIN [--origin …] [--identity enforced|monitor]
                     [--require-jwt] [--refuse-anonymous] [--owner EMAIL] [--json]
  parley apps list --db PATH [--json]
  parley apps show --db PATH --app APP_ID [--json]
  parley apps disable|enable --db PATH --app APP_ID [--json]
  parley owners create --db PATH --email EMAIL [--name NAME] [--password-stdin] [--app APP_ID …] [--json]
  parley owners set-password --db PATH --email EMAIL [--password-stdin] [--json]
  parley hash --secret SECRET (--user-id ID | --email EMAIL)
  parley demo [--db PATH]
  parley keygen
  parley master-key rotate --db PATH --new-key-file NEW
  parley master-key reset --db PATH --forget-identity-secrets [--json]
  parley webhooks add --db PATH --app APP_ID --url URL [--event EVENT …] [--webhook-allow CIDR …] [--json]
  parley webhooks list|remove|rotate-secret --db PATH --app APP_ID [--id ID] [--overlap DURATION] [--json]

Every command that takes --db (a SQLite file) takes --database-url (PostgreSQL) instead.

apps create prints the app's secrets once; apps list and apps show print ids and settings,
never a secret (identity_secret_id is the kid that identity JWTs carry).
owners set-password resets a forgotten dashboard password and ends the owner's sign-ins.
apps disable turns an app's widget off and ends its open chats (a running serve closes
them within a second); apps enable turns it back on.

serve reads PARLEY_DB, PARLEY_ADDR and PARLEY_PUBLIC_URL when the flags are not given;
PARLEY_SIGNUP=1 opens sign-up like --signup. Behind a reverse proxy, name it with
--trusted-proxy (or PARLEY_TRUSTED_PROXIES, comma-separated) so that clients are told
apart by X-Forwarded-For; otherwise the client IP is the connection's peer.
The --limit-… flags change the widget's abuse limits (parley serve -h lists them).
--synchronous (PARLEY_SYNCHRONOUS) is what an acknowledged message survives: full, the
default, fsyncs every commit so it survives power loss; normal survives a crash of parley
itself but may lose the last commits to a power loss or kernel crash (README "Durability").
--pprof 127.0.0.1:6060 serves Go's profiler (/debug/pprof/) on a second listener of its
own, never on --addr; give it a loopback or otherwise private address only.
SIGINT/SIGTERM stop serve gracefully: it stops accepting, lets requests and message
writes in progress finish, closes sockets with 1001 and exits 0.

Identity secrets are encrypted with a master key: PARLEY_MASTER_KEY when set (keygen
prints a new one), else the file --master-key-file names, by default the database path
+ ".key" (created at first start; back it up apart from the database). Stop serve before
master-key rotate, which re-seals them under the key in NEW (created when missing) or in
PARLEY_NEW_MASTER_KEY. master-key reset is for a lost key: every app gets a new identity
secret, to reveal in the dashboard and deploy to its site.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(exitCode(err))
	}
}

// usageError marks mistakes in how parley was invoked (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"missing command"}
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stderr)
	case "apps":
		if len(args) >= 2 {
			switch args[1] {
			case "create":
				return appsCreateCmd(ctx, args[2:], stdout, stderr)
			case "list":
				return appsListCmd(ctx, args[2:], stdout, stderr)
			case "show":
				return appsShowCmd(ctx, args[2:], stdout, stderr)
			case "disable", "enable":
				return appsSetDisabledCmd(ctx, args[1], args[2:], stdout, stderr)
			}
		}
		return usageError{"usage: parley apps create|list|show|disable|enable --db PATH …"}
	case "owners":
		if len(args) >= 2 {
			switch args[1] {
			case "create":
				return ownersCreateCmd(ctx, args[2:], stdin, stdout, stderr)
			case "set-password":
				return ownersSetPasswordCmd(ctx, args[2:], stdin, stdout, stderr)
			}
		}
		return usageError{"usage: parley owners create|set-password --db PATH --email EMAIL …"}
	case "hash":
		return hashCmd(args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "keygen":
		return keygenCmd(args[1:], stdout, stderr)
	case "master-key":
		return masterKeyCmd(ctx, args[1:], stdout, stderr)
	case "webhooks":
		return webhooksCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// multiFlag collects a repeatable flag such as --origin.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func hashCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("hash", stderr)
	secret := fs.String("secret", "", "the app's identity secret")
	userID := fs.String("user-id", "", "user id to sign")
	email := fs.String("email", "", "email to sign when there is no user id")
	if err := parse(fs, args); err != nil {
		return err
	}
	subject := *userID
	if subject == "" {
		subject = *email
	}
	if *secret == "" || subject == "" {
		return usageError{"hash needs --secret and --user-id (or --email)"}
	}
	fmt.Fprintln(stdout, identity.UserHash(*secret, subject))
	return nil
}

// Dashboard sign-ins end after this long without a request, or this long
// after they began.
const (
	ownerIdle   = web.DefaultOwnerIdle
	ownerMaxAge = web.DefaultOwnerMaxAge
)

// serveConfig is what serveCmd and demoCmd need to start the server.
type serveConfig struct {
	// DBPath is the SQLite file or PostgreSQL URL.
	DBPath, Addr, PublicURL string
	// Signup opens /signup to anyone who can reach the server.
	Signup bool
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string
	// Limits are the widget's abuse limits (zero: web.DefaultLimits).
	Limits web.Limits
	// Pprof, when set, is the address of a separate listener serving
	// net/http/pprof. It must be private: profiles reveal memory contents.
	Pprof string
	// NATSURL, on PostgreSQL, carries the events between nodes through
	// NATS instead of LISTEN/NOTIFY.
	NATSURL string
	// ClusterPoll is how often a node of a cluster checks the database
	// for messages it missed the events of.
	ClusterPoll time.Duration
	// WebhookGuard is where webhooks may be sent (--webhook-allow).
	WebhookGuard webhooks.Guard
	// Metrics, when set, is the private address of the Prometheus
	// metrics listener.
	Metrics string
	// AttachmentMaxSize bounds one uploaded file (--attachment-max-size).
	AttachmentMaxSize int64
	// Mail sends e-mail (--smtp-url); nil when e-mail is off.
	Mail *mail.Sender
	// MailServer names the SMTP server, without credentials, for the log.
	MailServer string
	// EmailWaits are how long a message may go unseen before it is
	// e-mailed, by default.
	EmailWaits store.EmailWaits
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var cfg serveConfig
	dbFlags := addDatabaseFlags(fs, "")
	fs.DurationVar(&cfg.ClusterPoll, "cluster-poll", chat.DefaultClusterPoll, "with --database-url: how often a node checks the database for messages whose events it missed; "+
		"the longest a lost event delays one")
	fs.StringVar(&cfg.NATSURL, "nats-url", os.Getenv(natsURLEnv), "with --database-url: the NATS server, nats://HOST:PORT, that carries events between nodes; "+
		"without it they go through PostgreSQL's LISTEN/NOTIFY ("+natsURLEnv+")")
	fs.StringVar(&cfg.Addr, "addr", envOr("PARLEY_ADDR", "127.0.0.1:8080"), "listen address (PARLEY_ADDR)")
	fs.StringVar(&cfg.PublicURL, "public-url", os.Getenv("PARLEY_PUBLIC_URL"), "Parley's origin as browsers see it (PARLEY_PUBLIC_URL)")
	fs.BoolVar(&cfg.Signup, "signup", os.Getenv("PARLEY_SIGNUP") == "1", "let anyone create a dashboard account at /signup (PARLEY_SIGNUP=1)")
	var proxies multiFlag
	fs.Var(&proxies, "trusted-proxy", "`CIDR` or IP of a reverse proxy whose X-Forwarded-For is believed (repeatable; PARLEY_TRUSTED_PROXIES)")
	fs.StringVar(&cfg.Metrics, "metrics", os.Getenv("PARLEY_METRICS_ADDR"), "serve Prometheus metrics at /metrics on this separate, private `address` (e.g. 127.0.0.1:9090; off by default; PARLEY_METRICS_ADDR)")
	fs.StringVar(&cfg.Pprof, "pprof", "", "serve net/http/pprof at /debug/pprof/ on this separate, private `address` (e.g. 127.0.0.1:6060; off by default)")
	syncMode := fs.String("synchronous", envOr("PARLEY_SYNCHRONOUS", string(store.SyncFull)), "what an acked write survives: full (fsync every commit; power loss) or normal (a crash of parley only) (PARLEY_SYNCHRONOUS)")
	keyFile := masterKeyFlag(fs)
	limits := limitFlags(fs)
	webhookAllow := webhookAllowFlag(fs)
	mailCfg, err := addMailFlags(fs)
	if err != nil {
		return err
	}
	maxFile := fs.String("attachment-max-size", envOr("PARLEY_ATTACHMENT_MAX_SIZE", "10MB"), "the largest file a chat may send, e.g. 10MB or 512KB (PARLEY_ATTACHMENT_MAX_SIZE)")
	if err := parse(fs, args); err != nil {
		return err
	}
	guard, err := webhookGuard(*webhookAllow)
	if err != nil {
		return err
	}
	cfg.WebhookGuard = guard
	if cfg.Mail, cfg.EmailWaits, err = mailCfg.sender(); err != nil {
		return err
	}
	cfg.MailServer = store.RedactURL(*mailCfg.smtpURL)
	if cfg.AttachmentMaxSize, err = parseSize(*maxFile); err != nil {
		return usageError{"--attachment-max-size: " + err.Error()}
	}
	if cfg.DBPath, err = dbFlags.location(); err != nil {
		return err
	}
	sync, err := store.ParseSynchronous(*syncMode)
	if err != nil {
		return usageError{"--synchronous must be full or normal, not " + strconv.Quote(*syncMode)}
	}
	cfg.TrustedProxies, cfg.Limits = proxies, *limits
	if len(proxies) == 0 && os.Getenv("PARLEY_TRUSTED_PROXIES") != "" {
		cfg.TrustedProxies = strings.Split(os.Getenv("PARLEY_TRUSTED_PROXIES"), ",")
	}
	if _, err := web.ParseProxies(cfg.TrustedProxies); err != nil {
		return usageError{err.Error()}
	}
	if cfg.DBPath == "" {
		return usageError{"serve needs a database: --db PATH (SQLite) or --database-url URL (PostgreSQL)"}
	}
	if cfg.NATSURL != "" && !isURL(cfg.DBPath) {
		return usageError{"--nats-url connects the nodes of a cluster, which share a PostgreSQL database: give --database-url, not --db"}
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Addr
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	db, err := openStoreWith(ctx, cfg.DBPath, *keyFile, log, store.Options{Synchronous: sync, Log: log})
	if err != nil {
		return err
	}
	defer db.Close()
	if isURL(cfg.DBPath) {
		log.Info("database", "postgresql", displayName(cfg.DBPath))
	} else {
		log.Info("database", "path", cfg.DBPath, "synchronous", string(sync))
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, db, ln, log)
}

// natsURLEnv is --nats-url's environment variable.
const natsURLEnv = "PARLEY_NATS_URL"

// openBroker connects this node to the others: through NATS when given,
// else through PostgreSQL's LISTEN/NOTIFY; a SQLite node is alone.
func openBroker(ctx context.Context, cfg serveConfig, db *store.DB, hub *chat.Hub, log *slog.Logger) (broker.Broker, error) {
	if !isURL(cfg.DBPath) {
		return broker.Local{}, nil
	}
	node := broker.NewNodeID()
	var b broker.Broker
	var err error
	if cfg.NATSURL != "" {
		b, err = broker.OpenNATS(cfg.NATSURL, node, hub, log)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		log.Info("cluster", "node", node, "events", "nats", "nats", store.RedactURL(cfg.NATSURL))
	} else {
		if b, err = broker.OpenPostgres(cfg.DBPath, node, hub, log); err != nil {
			return nil, err
		}
		log.Info("cluster", "node", node, "events", "postgresql listen/notify")
	}
	every := cfg.ClusterPoll
	if every <= 0 {
		every = chat.DefaultClusterPoll
	}
	hub.JoinCluster(ctx, b, node, db, every)
	return b, nil
}

// startJobs starts the job queue that delivers webhooks, and has the
// store record webhook events through it.
func startJobs(ctx context.Context, cfg serveConfig, db *store.DB, log *slog.Logger) (*jobs.Queue, error) {
	jc := jobs.Config{Store: db, Guard: cfg.WebhookGuard, Log: log, Mail: cfg.Mail, EmailWaits: cfg.EmailWaits, PublicURL: cfg.PublicURL}
	if cfg.Mail != nil {
		log.Info("e-mail on", "smtp", cfg.MailServer, "agent_email_after", cfg.EmailWaits.Agent.String(), "user_email_after", cfg.EmailWaits.User.String())
	} else {
		log.Info("e-mail off: no --smtp-url")
	}
	if isURL(cfg.DBPath) {
		jc.DatabaseURL = cfg.DBPath
	}
	q, err := jobs.Open(ctx, jc)
	if err != nil {
		return nil, err
	}
	db.UseOutbox(q)
	// Not stopped by ctx, which would cut off the attempts under way:
	// serve stops it once the requests are done.
	if err := q.Start(context.WithoutCancel(ctx)); err != nil {
		q.Stop(ctx)
		return nil, err
	}
	return q, nil
}

// serve runs Parley on ln until ctx ends, then shuts down gracefully:
// in-flight requests finish and widget sockets get a going-away close.
func serve(ctx context.Context, cfg serveConfig, db *store.DB, ln net.Listener, log *slog.Logger) error {
	hub := chat.NewHub(db, log)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	b, err := openBroker(ctx, cfg, db, hub, log)
	if err != nil {
		return err
	}
	defer b.Close()
	queue, err := startJobs(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	defer func() {
		// Attempts under way get a few seconds; one cut off runs again
		// on a node that is up.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := queue.Stop(ctx); err != nil {
			log.Warn("job queue", "error", err)
		}
	}()
	refusals := &handlers.Refusals{}
	var brokerReady func(context.Context) error
	if _, single := b.(broker.Local); !single {
		brokerReady = b.Ready
	}
	handler, err := web.New(web.Config{
		BrokerReady:       brokerReady,
		SessionRefusals:   refusals,
		Mail:              cfg.Mail,
		AttachmentMaxSize: cfg.AttachmentMaxSize,
		MailOn:            cfg.Mail != nil,
		EmailWaits:        cfg.EmailWaits,
		WebhookGuard:      cfg.WebhookGuard,
		PublicURL:         cfg.PublicURL,
		SessionTTL:        12 * time.Hour,
		Signup:            cfg.Signup,
		OwnerIdle:         ownerIdle,
		OwnerMaxAge:       ownerMaxAge,
		TrustedProxies:    cfg.TrustedProxies,
		Limits:            cfg.Limits,
	}, db, hub, log)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	// Before the first socket: sessions ended from now on, here or by the
	// CLI, close their sockets.
	if err := hub.WatchSessionEnds(ctx, chat.DefaultEndPoll); err != nil {
		return err
	}
	hub.WatchPresence(ctx)
	if cfg.Metrics != "" {
		mln, err := net.Listen("tcp", cfg.Metrics)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler(db, hub, queue, refusals))
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go msrv.Serve(mln)
		defer msrv.Close()
		log.Info("metrics listening: keep this address private", "addr", mln.Addr().String(), "path", "/metrics")
	}
	if cfg.Pprof != "" {
		pln, err := net.Listen("tcp", cfg.Pprof)
		if err != nil {
			return fmt.Errorf("pprof listener: %w", err)
		}
		psrv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		go psrv.Serve(pln)
		// Closed, not drained: a CPU profile in progress may run for 30 s.
		defer psrv.Close()
		log.Warn("pprof listening: keep this address private", "addr", pln.Addr().String(), "path", "/debug/pprof/")
	}
	go sweep(ctx, db, log)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("parley listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Shutdown does not track hijacked websocket connections; the hub does.
	return errors.Join(srv.Shutdown(shutdownCtx), hub.Shutdown(shutdownCtx))
}

// pprofMux serves net/http/pprof's handlers under /debug/pprof/ on a mux of
// its own (importing the package also registers them on
// http.DefaultServeMux, which Parley never serves).
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// sweep runs the periodic clean-ups until ctx ends. Sessions of identity
// secrets whose grace period ran out are ended every minute, so their
// sockets close soon after; the rest is housekeeping, hourly.
func sweep(ctx context.Context, db *store.DB, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		endExpiredSecretSessions(ctx, db, log)
		if n%60 == 0 {
			housekeeping(ctx, db, log, time.Now())
		}
	}
}

func endExpiredSecretSessions(ctx context.Context, db *store.DB, log *slog.Logger) {
	n, err := db.EndSessionsOfExpiredSecrets(ctx)
	if err != nil {
		log.Error("ending sessions of expired identity secrets", "err", err)
	} else if n > 0 {
		log.Info("ended sessions of expired identity secrets", "sessions", n)
	}
}

// sessionEndsKept is how long ended sessions are remembered: every server
// watching the database has closed their sockets long before.
const sessionEndsKept = 24 * time.Hour

// housekeeping deletes what has expired and can no longer matter.
func housekeeping(ctx context.Context, db *store.DB, log *slog.Logger, now time.Time) {
	for what, del := range map[string]func() (int64, error){
		"sessions":          func() (int64, error) { return db.DeleteExpiredSessions(ctx) },
		"owner sessions":    func() (int64, error) { return db.DeleteExpiredOwnerSessions(ctx, ownerIdle) },
		"identity JWT ids":  func() (int64, error) { return db.DeleteExpiredJWTIDs(ctx) },
		"session ends":      func() (int64, error) { return db.DeleteSessionEndsBefore(ctx, now.Add(-sessionEndsKept)) },
		"sign-in throttles": func() (int64, error) { return db.DeleteFullBuckets(ctx, now) },
	} {
		if _, err := del(); err != nil {
			log.Error("sweeping "+what, "err", err)
		}
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// parseSize reads a size as an operator writes it: 10MB, 512KB, or bytes.
// A file is at most 1 GB: it is kept in the database.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	unit := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, unit = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<30)/unit {
		return 0, fmt.Errorf("%q is not a size from 1 byte to 1GB, like 10MB or 512KB", s)
	}
	return n * unit, nil
}
