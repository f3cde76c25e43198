package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/parley-chat/parley/internal/masterkey"
)

// PostgreSQL.
//
// The store's SQL is written once, with SQLite's "?" placeholders, and
// runs on PostgreSQL through a connector that rewrites them to $1, $2…
// (rebind). What differs beyond that is chosen where it differs, on
// db.postgres: PostgreSQL takes concurrent writers, so a write runs in a
// transaction of its own instead of SQLite's group commit, and the few
// read-then-write statements lock the rows they read.

// PostgresOptions are the PostgreSQL settings an operator may choose.
type PostgresOptions struct {
	// MaxConns caps the node's connections; 0 is 10: on a machine the
	// database shares, more concurrent transactions mostly wait for each
	// other (make bench-cluster measured 20 against 8).
	MaxConns int
	Log      *slog.Logger
}

// OpenPostgres connects to the PostgreSQL database at dbURL, applies any
// pending migrations (once, whichever node gets there first), and checks
// that key is the database's master key.
func OpenPostgres(ctx context.Context, dbURL string, key masterkey.Key, opts PostgresOptions) (*DB, error) {
	if key.IsZero() {
		return nil, errors.New("store: no master key")
	}
	sqlDB, err := openPostgresPool(dbURL)
	if err != nil {
		return nil, err
	}
	n := opts.MaxConns
	if n <= 0 {
		n = 10
	}
	sqlDB.SetMaxOpenConns(n)
	sqlDB.SetMaxIdleConns(n)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: connect to PostgreSQL at %s: %w", RedactURL(dbURL), err)
	}
	if err := MigratePostgres(ctx, sqlDB); err != nil {
		sqlDB.Close()
		return nil, err
	}
	db := &DB{write: sqlDB, read: sqlDB, postgres: true, now: time.Now, key: key}
	if err := db.setUpEncryption(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return db, nil
}

// openPostgresForKeyChange is openExclusive for PostgreSQL: the database
// without its key checked (a reset is for a key that was lost), for
// RotateMasterKey and ResetMasterKey. Their transaction locks the
// secrets and the key check, so nodes wait while the key changes; a
// node still running with the old key afterwards cannot open the
// secrets, nor seal new ones (insertSecret), until it is restarted with
// the new key.
func openPostgresForKeyChange(ctx context.Context, dbURL string, key masterkey.Key) (*DB, error) {
	sqlDB, err := openPostgresPool(dbURL)
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(2)
	if err := MigratePostgres(ctx, sqlDB); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return &DB{write: sqlDB, read: sqlDB, postgres: true, now: time.Now, key: key}, nil
}

// lockForKeyChange keeps every node from reading or writing the secrets
// and the key check while a master key change runs, on PostgreSQL.
func (db *DB) lockForKeyChange(ctx context.Context, tx *sql.Tx) error {
	if !db.postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `LOCK TABLE master_key_check, identity_secrets, webhook_endpoints IN EXCLUSIVE MODE`)
	return err
}

// openPostgresPool opens a database/sql pool on pgx whose statements may
// use "?" placeholders.
func openPostgresPool(dbURL string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		// pgx's message quotes the URL, password and all.
		return nil, fmt.Errorf("store: the database URL %s is not one PostgreSQL understands", RedactURL(dbURL))
	}
	return sql.OpenDB(rebindConnector{stdlib.GetConnector(*cfg)}), nil
}

// IsPostgresURL reports whether s names a PostgreSQL database.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// RedactURL is u without its credentials, for messages and logs: no
// user information (a password, or a NATS token in its place) and no
// password parameters.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(an unparsable URL)"
	}
	if p.User != nil {
		p.User = url.User("…")
	}
	q := p.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "…")
		}
	}
	p.RawQuery = q.Encode()
	return p.String()
}

// rebindConnector hands out pgx connections that rewrite "?" placeholders.
type rebindConnector struct{ driver.Connector }

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return rebindConn{conn.(*stdlib.Conn)}, nil
}

// rebindConn is pgx's connection with every statement rebound. Embedding
// the concrete type keeps all its optional interfaces (named value
// checks, session resets, pings) visible to database/sql.
type rebindConn struct{ *stdlib.Conn }

func (c rebindConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(rebind(query))
}

func (c rebindConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c rebindConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

func (c rebindConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), args)
}

var rebound sync.Map // query → its PostgreSQL form; the queries are this package's constants

// rebind rewrites the "?" placeholders of query as $1, $2…, leaving
// quoted strings, quoted names and comments alone.
func rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	if q, ok := rebound.Load(query); ok {
		return q.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(query[i+1:], c)
			if j < 0 {
				b.WriteString(query[i:])
				i = len(query)
				continue
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i - 1
			}
			b.WriteString(query[i : i+j+1])
			i += j
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			j := strings.Index(query[i:], "*/")
			if j < 0 {
				j = len(query) - i - 2
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	q := b.String()
	rebound.Store(query, q)
	return q
}

// retryablePG reports whether a transaction failed only because of
// another one running beside it: a deadlock, a serialization failure, or
// a user's message whose resend, on another node, committed first (run
// again, it finds that one and answers it as a duplicate).
func retryablePG(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01" ||
		(pe.Code == "23505" && pe.ConstraintName == "messages_client_id"))
}

// forUpdate locks the rows a statement reads for this transaction to
// change, on PostgreSQL, until it ends.
func (db *DB) forUpdate() string {
	if db.postgres {
		return " FOR UPDATE"
	}
	return ""
}

// forShare locks the rows a statement reads against writers, on
// PostgreSQL, until the transaction ends.
func (db *DB) forShare() string {
	if db.postgres {
		return " FOR SHARE"
	}
	return ""
}

// forKeyShare is forShare's weakest form: it conflicts only with FOR
// UPDATE (lockApp) and with changing the row's key, so sessions being
// created do not wait for each other.
func (db *DB) forKeyShare() string {
	if db.postgres {
		return " FOR KEY SHARE"
	}
	return ""
}

// lockApp takes the app's row lock on PostgreSQL, first thing in a write
// that ends sessions of the app: a session being created holds the row
// shared until it commits (stillAdmissible), so the write waits for it
// and then ends it too, or the session waits and then sees the write.
// SQLite's single writer orders them already.
func (db *DB) lockApp(ctx context.Context, tx *sql.Tx, appID string) error {
	if !db.postgres {
		return nil
	}
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM apps WHERE id = ? FOR UPDATE`, appID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// IsUnavailable reports whether err means the database could not be
// reached (it is down, restarting, or the connection broke), rather than
// that it refused something: the caller answers "unavailable, try again"
// instead of an internal error.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exceptions; 57P01-57P03: the server is
		// shutting down or starting.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || pgconn.SafeToRetry(err) || isClosedConn(err)
}

// isClosedConn catches pgx's "conn closed", which has no error type.
func isClosedConn(err error) bool {
	return strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection reset by peer")
}
