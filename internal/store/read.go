package store

import (
	"context"
	"database/sql"
	"sync"
)

// readStmts keeps each read query prepared once on the read pool (database/sql
// prepares it again on each connection that runs it, once), so a hot read
// such as a session lookup is not parsed again on every request. The
// queries are constants of this package, so the set stays small.
type readStmts struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (db *DB) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	db.reads.mu.Lock()
	defer db.reads.mu.Unlock()
	if s, ok := db.reads.m[query]; ok {
		return s, nil
	}
	s, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if db.reads.m == nil {
		db.reads.m = make(map[string]*sql.Stmt)
	}
	db.reads.m[query] = s
	return s, nil
}

// readRow is db.read.QueryRowContext through a prepared statement.
func (db *DB) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := db.readStmt(ctx, query)
	if err != nil {
		return db.read.QueryRowContext(ctx, query, args...) // fails the same way, as a *sql.Row
	}
	return s.QueryRowContext(ctx, args...)
}

// readRows is db.read.QueryContext through a prepared statement.
func (db *DB) readRows(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := db.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

func (r *readStmts) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.m {
		s.Close()
	}
	r.m = nil
}
