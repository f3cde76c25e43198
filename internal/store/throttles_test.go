package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// A bucket in the database gives its burst, refuses the next take with
// the wait until a token is back, refills at its rate, and takes from
// several buckets all or none. A refund counts; buckets that are full
// again are forgotten.
func TestTokenBuckets(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	now := time.UnixMilli(1_800_000_000_000)
	account := store.Bucket{Key: "account:ann", Burst: 3, Every: time.Minute}
	ip := store.Bucket{Key: "ip:203.0.113.9", Burst: 5, Every: 10 * time.Second}
	take := func(at time.Time, bs ...store.Bucket) (bool, time.Duration) {
		t.Helper()
		ok, wait, err := db.TakeTokens(ctx, at, bs...)
		if err != nil {
			t.Fatal(err)
		}
		return ok, wait
	}
	for i := range 3 {
		if ok, _ := take(now, account, ip); !ok {
			t.Fatalf("take %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := take(now, account, ip)
	if ok || wait != time.Minute {
		t.Fatalf("fourth take = %v, wait %v; want refused, wait 1m", ok, wait)
	}
	// Refused as a pair: the IP's bucket gave nothing for it.
	for i := range 2 {
		if ok, _ := take(now, ip); !ok {
			t.Fatalf("the IP's token %d of its remaining 2 is gone", i+1)
		}
	}
	if ok, wait := take(now, ip); ok || wait != 10*time.Second {
		t.Fatalf("IP bucket empty: %v, wait %v; want refused, wait 10s", ok, wait)
	}
	if ok, _ := take(now.Add(time.Minute), account); !ok {
		t.Fatal("a minute later the account has no token")
	}
	if ok, _ := take(now.Add(time.Minute), account); ok {
		t.Fatal("the account's bucket refilled more than one token a minute")
	}
	if err := db.ReturnTokens(ctx, now.Add(time.Minute), account); err != nil {
		t.Fatal(err)
	}
	if ok, _ := take(now.Add(time.Minute), account); !ok {
		t.Fatal("a returned token cannot be taken")
	}
	// Full again after 3 minutes (account) and 50 s (IP): both forgotten.
	n, err := db.DeleteFullBuckets(ctx, now.Add(30*time.Second))
	if err != nil || n != 0 {
		t.Fatalf("deleted %d buckets (%v) while neither is full", n, err)
	}
	if n, err := db.DeleteFullBuckets(ctx, now.Add(5*time.Minute)); err != nil || n != 2 {
		t.Fatalf("deleted %d full buckets (%v), want 2", n, err)
	}
}

// Two handles on one database file, as two processes would have, share
// the buckets: what one takes, the other can't; parallel takes never
// exceed the burst.
func TestTokenBucketsAreShared(t *testing.T) {
	ctx := context.Background()
	path := newLocation(t)
	var nodes [2]*store.DB
	for i := range nodes {
		db, err := store.Open(ctx, path, testKey)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		nodes[i] = db
	}
	now := time.Now()
	b := store.Bucket{Key: "account:ann", Burst: 5, Every: time.Hour}
	var mu sync.Mutex
	granted := 0
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, _, err := nodes[i%2].TakeTokens(ctx, now, b)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 5 {
		t.Fatalf("%d of 20 takes on two handles were granted, want the burst of 5", granted)
	}
}

// A session with a Budget takes its token in its own transaction: a
// session refused for another reason (the app is turned off) takes none,
// and once the bucket is empty the next is refused with the wait.
func TestSessionBudget(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := mustApp(t, db, store.ModeEnforced).App
	budget := &store.Bucket{Key: "sessions-app:" + app.ID, Burst: 1, Every: time.Hour}
	visitor := store.NewSession{AppID: app.ID, Kind: store.KindVisitor, Budget: budget, TTL: time.Hour, ParentOrigin: "https://shop.example"}
	if err := db.SetAppDisabled(ctx, app.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSession(ctx, visitor); !errors.Is(err, store.ErrAppDisabled) {
		t.Fatalf("session on a disabled app: %v, want ErrAppDisabled", err)
	}
	if err := db.SetAppDisabled(ctx, app.ID, false); err != nil {
		t.Fatal(err)
	}
	mustSession(t, db, visitor) // the refused one took nothing
	_, err := db.CreateSession(ctx, visitor)
	limited := new(store.RateLimitedError)
	if !errors.As(err, &limited) || limited.Wait <= 0 || limited.Wait > time.Hour {
		t.Fatalf("second session of a budget of 1: %v, want a RateLimitedError with a wait up to 1h", err)
	}
	visitor.Budget = nil // no budget: not limited
	mustSession(t, db, visitor)
}

// A bucket that refills fast, taken from many times a millisecond, gives
// its burst plus its rate, not more: the fraction of a millisecond its
// time is stored without is not refilled twice.
func TestFastBucketIsNotOverfilled(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	b := store.Bucket{Key: "sessions-app:fast", Burst: 20, Every: time.Millisecond}
	start := time.UnixMilli(1_800_000_000_000)
	granted := 0
	for i := range 1000 { // 5 takes every millisecond for 200 ms
		ok, _, err := db.TakeTokens(ctx, start.Add(time.Duration(i)*200*time.Microsecond), b)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			granted++
		}
	}
	if want := 20 + 200; granted > want+1 {
		t.Fatalf("%d takes granted in 200 ms, want at most the burst and one a millisecond, %d", granted, want)
	}
}

// TokensWait answers from the read connections: while another writer
// holds the database's write lock, it still tells an empty bucket apart,
// so refused sign-ins never queue for the writer.
func TestTokensWaitNeedsNoWriter(t *testing.T) {
	onlySQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := store.Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	b := store.Bucket{Key: "signin-ip:203.0.113.9", Burst: 1, Every: time.Hour}
	if ok, _, err := db.TakeTokens(ctx, now, b); err != nil || !ok {
		t.Fatalf("first take: %v, %v", ok, err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(100)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil { // another process's write
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `ROLLBACK`)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	wait, err := db.TokensWait(wctx, now, b)
	if err != nil || wait <= 0 || wait > time.Hour {
		t.Fatalf("TokensWait with the write lock held elsewhere = %v, %v; want the wait for an empty bucket", wait, err)
	}
}
