package store

import (
	"context"
	"fmt"
	"time"
)

const dayMillis = 24 * 60 * 60 * 1000

// unixDay is the UTC day number session_counts is keyed by.
func unixDay(t time.Time) int64 { return t.UnixMilli() / dayMillis }

func countSession(ctx context.Context, tx txn, appID, kind string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO session_counts (app_id, day, kind, n) VALUES (?, ?, ?, 1)
		ON CONFLICT (app_id, day, kind) DO UPDATE SET n = session_counts.n + 1`, appID, unixDay(now), kind)
	return err
}

// IdentityStats counts an app's new sessions by how their subject was
// identified, so an owner can see whether it is safe to enforce hashes.
type IdentityStats struct {
	Verified   int64
	Unverified int64
	Anonymous  int64
	// Since is where the counted window really starts: counts are kept
	// per UTC day, so this is the start of the day that held since.
	Since time.Time
}

// IdentityStats counts the app's sessions created since the start of
// since's UTC day.
func (db *DB) IdentityStats(ctx context.Context, appID string, since time.Time) (IdentityStats, error) {
	day := unixDay(since)
	st := IdentityStats{Since: fromMillis(day * dayMillis)}
	rows, err := db.readRows(ctx, `SELECT kind, sum(n) FROM session_counts WHERE app_id = ? AND day >= ? GROUP BY kind`, appID, day)
	if err != nil {
		return IdentityStats{}, fmt.Errorf("store: identity stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			return IdentityStats{}, fmt.Errorf("store: identity stats: %w", err)
		}
		switch kind {
		case KindUser:
			st.Verified = n
		case KindUnverified:
			st.Unverified = n
		case KindVisitor:
			st.Anonymous = n
		}
	}
	return st, rowsErr(rows)
}
