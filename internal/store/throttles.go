package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Bucket names one token bucket kept in the database: Burst tokens, one
// more every Every. The dashboard's sign-in throttles are buckets here,
// not in a process's memory, so that failures on one node count on all.
type Bucket struct {
	Key   string
	Burst int
	Every time.Duration
}

// TakeTokens takes a token from each bucket, all or none, at now. When a
// bucket has none, nothing is taken, and wait is how long until every
// bucket has one again. Taking before the attempt, rather than counting
// failures after it, means parallel attempts, on any node, can't all get
// in ahead of the count; ReturnTokens refunds an attempt that succeeded.
func (db *DB) TakeTokens(ctx context.Context, now time.Time, buckets ...Bucket) (ok bool, wait time.Duration, err error) {
	buckets = db.lockOrder(buckets)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var refused *RateLimitedError
		for _, b := range buckets {
			err := db.takeToken(ctx, tx, b, now)
			if limited := new(RateLimitedError); errors.As(err, &limited) {
				if refused == nil || limited.Wait > refused.Wait {
					refused = limited // the others are still read, for the longest wait
				}
				continue
			}
			if err != nil {
				return err
			}
		}
		if refused != nil {
			return refused // rolls back what the others gave
		}
		return nil
	})
	if limited := new(RateLimitedError); errors.As(err, &limited) {
		return false, limited.Wait, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("store: take tokens: %w", err)
	}
	return true, 0, nil
}

// TokensWait reads, without writing, how long until every bucket has a
// token: 0 when TakeTokens would probably succeed now. It runs on the
// read connections, so a flood of attempts that would be refused anyway
// is answered without waiting for, or holding up, the single writer.
func (db *DB) TokensWait(ctx context.Context, now time.Time, buckets ...Bucket) (time.Duration, error) {
	var wait time.Duration
	for _, b := range buckets {
		tokens, at, err := bucketTokens(ctx, db.read, b, now)
		if err != nil {
			return 0, fmt.Errorf("store: tokens: %w", err)
		}
		if tokens < 1 {
			wait = max(wait, tokenWait(b, tokens, at, now))
		}
	}
	return wait, nil
}

// rowQuerier is a transaction or the read pool.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ReturnTokens gives a token back to each bucket, up to its burst.
func (db *DB) ReturnTokens(ctx context.Context, now time.Time, buckets ...Bucket) error {
	buckets = db.lockOrder(buckets)
	err := db.tx(ctx, func(tx *sql.Tx) error {
		for _, b := range buckets {
			tokens, at, err := db.bucketForWrite(ctx, tx, b, now)
			if err != nil {
				return err
			}
			if err := saveBucket(ctx, tx, b, math.Min(tokens+1, float64(b.Burst)), at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: return tokens: %w", err)
	}
	return nil
}

// RateLimitedError refuses a write whose bucket (NewSession.Budget) is
// empty; Wait is how long until it has a token again.
type RateLimitedError struct{ Wait time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("store: rate limited; a token is back in %v", e.Wait)
}

// takeToken takes one token from b inside tx, or refuses with a
// *RateLimitedError. A refusal, or the rollback of the write it is part
// of, takes nothing.
func (db *DB) takeToken(ctx context.Context, tx txn, b Bucket, now time.Time) error {
	tokens, at, err := db.bucketForWrite(ctx, tx, b, now)
	if err != nil {
		return err
	}
	if tokens < 1 {
		return &RateLimitedError{Wait: tokenWait(b, tokens, at, now)}
	}
	return saveBucket(ctx, tx, b, tokens-1, at)
}

// bucketTokens is what b holds at now, and the time that count is as of:
// now, or the bucket's own time if another node's clock (or an attempt
// that began later) already moved it past now. A bucket never used is full.
func bucketTokens(ctx context.Context, tx rowQuerier, b Bucket, now time.Time) (float64, time.Time, error) {
	return readBucket(ctx, tx, `SELECT tokens, updated_at FROM throttle_buckets WHERE key = ?`, b, now)
}

// bucketForWrite is bucketTokens in a transaction that will write the
// bucket. On PostgreSQL it locks the bucket's row, made first (full) if
// there is none, so that two nodes cannot both take its last token;
// SQLite's single writer already runs such transactions one at a time.
func (db *DB) bucketForWrite(ctx context.Context, tx txn, b Bucket, now time.Time) (float64, time.Time, error) {
	if !db.postgres {
		return bucketTokens(ctx, tx, b, now)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO throttle_buckets (key, tokens, updated_at, full_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO NOTHING`, b.Key, float64(b.Burst), now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return 0, now, err
	}
	return readBucket(ctx, tx, `SELECT tokens, updated_at FROM throttle_buckets WHERE key = ? FOR UPDATE`, b, now)
}

// lockOrder sorts the buckets of one transaction by key on PostgreSQL, so
// that two transactions lock their shared buckets in the same order
// rather than each waiting for the other.
func (db *DB) lockOrder(buckets []Bucket) []Bucket {
	if !db.postgres {
		return buckets
	}
	return slices.SortedFunc(slices.Values(buckets), func(a, b Bucket) int { return strings.Compare(a.Key, b.Key) })
}

func readBucket(ctx context.Context, tx rowQuerier, query string, b Bucket, now time.Time) (float64, time.Time, error) {
	var tokens float64
	var ms int64
	err := tx.QueryRowContext(ctx, query, b.Key).Scan(&tokens, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return float64(b.Burst), now, nil
	}
	if err != nil {
		return 0, now, err
	}
	at := time.UnixMilli(ms)
	if now.After(at) {
		tokens += float64(now.Sub(at)) / float64(b.Every)
		at = now
	}
	return math.Min(tokens, float64(b.Burst)), at, nil
}

func saveBucket(ctx context.Context, tx txn, b Bucket, tokens float64, now time.Time) error {
	// The time is stored in milliseconds: the count is stored as of that
	// millisecond, or the next read would refill the fraction again.
	ms := time.UnixMilli(now.UnixMilli())
	tokens -= float64(now.Sub(ms)) / float64(b.Every)
	now = ms
	fullAt := now.Add(times(b.Every, float64(b.Burst)-tokens))
	_, err := tx.ExecContext(ctx, `INSERT INTO throttle_buckets (key, tokens, updated_at, full_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at, full_at = excluded.full_at`,
		b.Key, tokens, now.UnixMilli(), fullAt.UnixMilli())
	return err
}

// DeleteFullBuckets forgets the buckets that have refilled by now: a
// bucket that is not there is full.
func (db *DB) DeleteFullBuckets(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM throttle_buckets WHERE full_at <= ?`, now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: delete full buckets: %w", err)
	}
	return res.RowsAffected()
}

// times is every × n, at most the longest Duration (a rate an operator
// set to refill once a century must not wrap around).
func times(every time.Duration, n float64) time.Duration {
	if d := float64(every) * n; d < math.MaxInt64 {
		return time.Duration(d)
	}
	return math.MaxInt64
}

// tokenWait is how long from now until a bucket that held tokens at at
// has a whole one (at is after now when another node's clock is ahead).
func tokenWait(b Bucket, tokens float64, at, now time.Time) time.Duration {
	return times(b.Every, 1-tokens) + max(at.Sub(now), 0)
}
