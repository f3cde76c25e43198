package ratelimit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a manual clock for Keyed.now; tests advance it instead of sleeping.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTest(every time.Duration, burst, maxKeys int) (*Keyed, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	k := NewKeyed(every, burst, maxKeys)
	k.now = c.now
	return k, c
}

func TestTakeBlocksAfterBurstAndRefills(t *testing.T) {
	k, c := newTest(time.Minute, 3, 100)
	if d := k.Blocked("a@example.com"); d != 0 {
		t.Fatalf("unknown key: Blocked = %v, want 0", d)
	}
	for i := range 3 {
		if d := k.Blocked("a@example.com"); d != 0 {
			t.Fatalf("before failure %d: Blocked = %v, want 0", i+1, d)
		}
		k.Take("a@example.com")
	}
	if d := k.Blocked("a@example.com"); d != time.Minute {
		t.Fatalf("after 3 failures: Blocked = %v, want 1m", d)
	}
	if d := k.Blocked("b@example.com"); d != 0 {
		t.Fatalf("other key: Blocked = %v, want 0 (keys are independent)", d)
	}
	c.add(20 * time.Second)
	if d := k.Blocked("a@example.com"); d != 40*time.Second {
		t.Fatalf("20s later: Blocked = %v, want 40s", d)
	}
	c.add(40 * time.Second)
	if d := k.Blocked("a@example.com"); d != 0 {
		t.Fatalf("a minute later: Blocked = %v, want 0", d)
	}
	k.Take("a@example.com")
	if d := k.Blocked("a@example.com"); d != time.Minute {
		t.Fatalf("one token refilled and taken: Blocked = %v, want 1m", d)
	}
}

func TestBlockedDoesNotConsume(t *testing.T) {
	k, _ := newTest(time.Minute, 2, 100)
	k.Take("x")
	for range 50 {
		if d := k.Blocked("x"); d != 0 {
			t.Fatalf("Blocked = %v with one token left", d)
		}
	}
	if !k.Allow("x") {
		t.Fatal("the last token is gone after calls to Blocked")
	}
	if k.Allow("x") {
		t.Fatal("Allow succeeded on an empty bucket")
	}
}

// Failures that slip past Blocked concurrently still cost a token each.
func TestTakeGoesIntoDebt(t *testing.T) {
	k, c := newTest(time.Minute, 2, 100)
	for range 4 {
		k.Take("x")
	}
	if d := k.Blocked("x"); d != 3*time.Minute {
		t.Fatalf("4 failures with burst 2: Blocked = %v, want 3m", d)
	}
	c.add(2 * time.Minute)
	if d := k.Blocked("x"); d != time.Minute {
		t.Fatalf("2m later: Blocked = %v, want 1m", d)
	}
}

func TestAllow(t *testing.T) {
	k, c := newTest(10*time.Second, 3, 100)
	for i := range 3 {
		if !k.Allow("ip") {
			t.Fatalf("Allow %d refused within the burst", i+1)
		}
	}
	for range 5 {
		if k.Allow("ip") {
			t.Fatal("Allow succeeded past the burst")
		}
	}
	// Refusals consumed nothing: one refill period gives exactly one token.
	c.add(10 * time.Second)
	if !k.Allow("ip") {
		t.Fatal("no token after one refill period")
	}
	if k.Allow("ip") {
		t.Fatal("more than one token after one refill period")
	}
}

func TestBoundDropsOnlyFullBuckets(t *testing.T) {
	k, c := newTest(time.Minute, 1, 10)
	k.Take("victim")
	// A flood of new keys, each throttled, must not evict the victim's bucket.
	for i := range 100 {
		k.Take(fmt.Sprint("flood-", i))
	}
	if d := k.Blocked("victim"); d != time.Minute {
		t.Fatalf("victim after a flood of keys: Blocked = %v, want 1m", d)
	}
	if n := k.Len(); n != 101 {
		t.Fatalf("Len = %d, want 101: throttled keys are kept", n)
	}
	// Once a bucket has refilled it is equivalent to a fresh one and goes
	// at the next sweep. New keys arrive one refill period apart, so at most
	// one key is throttled at a time and the map must come back to maxKeys.
	for i := range 300 {
		c.add(time.Minute)
		k.Take(fmt.Sprint("new-", i))
		if n := k.Len(); n > 2*101+1 {
			t.Fatalf("Len = %d after %d new keys; full buckets are not being dropped", n, i+1)
		}
	}
	if n := k.Len(); n > 10+1 {
		t.Fatalf("Len = %d, want at most maxKeys+1 once old buckets are full", n)
	}
	if _, ok := k.buckets["victim"]; ok {
		t.Fatal("the victim's full bucket was kept")
	}
	if d := k.Blocked("new-299"); d != time.Minute {
		t.Fatalf("newest key: Blocked = %v, want 1m (it was just throttled)", d)
	}
}

func TestBlockedDoesNotCreateKeys(t *testing.T) {
	k, _ := newTest(time.Minute, 1, 10)
	for i := range 1000 {
		k.Blocked(fmt.Sprint("probe-", i))
	}
	if n := k.Len(); n != 0 {
		t.Fatalf("Len = %d after Blocked alone, want 0", n)
	}
}

func TestConcurrentAllowNeverExceedsBurst(t *testing.T) {
	k, _ := newTest(time.Hour, 25, 50) // frozen clock: no refill
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				if k.Allow("shared") {
					allowed.Add(1)
				}
				k.Take(fmt.Sprint("g", g, "-", i%100)) // churn the map and the sweep
				k.Blocked("shared")
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 25 {
		t.Fatalf("%d Allows succeeded, want exactly the burst of 25", n)
	}
}

func TestNewKeyedRefusesNonsense(t *testing.T) {
	for _, tc := range []struct {
		every        time.Duration
		burst, limit int
	}{{0, 1, 1}, {time.Second, 0, 1}, {time.Second, 1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewKeyed(%v, %d, %d) did not panic", tc.every, tc.burst, tc.limit)
				}
			}()
			NewKeyed(tc.every, tc.burst, tc.limit)
		}()
	}
}

func TestTryChargesOnlyFailures(t *testing.T) {
	k, c := newTest(time.Minute, 3, 100)
	for i := 0; i < 10; i++ {
		ok, done := k.Try("ann")
		if !ok {
			t.Fatalf("attempt %d after only successes refused", i)
		}
		done(false)
	}
	for i := 0; i < 3; i++ {
		ok, done := k.Try("ann")
		if !ok {
			t.Fatalf("failure %d refused, want the burst of 3 allowed", i)
		}
		done(true)
		done(true) // a second call changes nothing
	}
	if ok, _ := k.Try("ann"); ok {
		t.Fatal("4th failure allowed, want refused")
	}
	if got := k.Blocked("ann"); got != time.Minute {
		t.Fatalf("Blocked = %v after a refused Try, want 1m (a refusal costs nothing)", got)
	}
	c.add(time.Minute)
	if ok, _ := k.Try("ann"); !ok {
		t.Fatal("refused after a refill")
	}
	if ok, _ := k.Try("bob"); !ok {
		t.Fatal("another key is refused")
	}
}

func TestTryIsAHardCapUnderConcurrency(t *testing.T) {
	k := NewKeyed(time.Hour, 5, 100)
	var wg sync.WaitGroup
	var allowed atomic.Int32
	start := make(chan struct{})
	dones := make(chan func(bool), 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if ok, done := k.Try("ann"); ok {
				allowed.Add(1)
				dones <- done // still in flight until every goroutine has tried
			}
		}()
	}
	close(start)
	wg.Wait()
	close(dones)
	if got := allowed.Load(); got != 5 {
		t.Fatalf("%d of 50 parallel attempts got in, want exactly the 5 tokens left", got)
	}
	for done := range dones {
		done(true)
	}
	if ok, _ := k.Try("ann"); ok {
		t.Fatal("allowed after 5 failures")
	}
}

func TestReserve(t *testing.T) {
	k, c := newTest(2*time.Second, 3, 100)
	for i := range 3 {
		if ok, wait := k.Reserve("ip"); !ok || wait != 0 {
			t.Fatalf("Reserve %d within the burst = %v, %v; want true, 0", i+1, ok, wait)
		}
	}
	// A refusal says how long until the next token, and costs nothing: a
	// client hammering away still gets in once that time has passed.
	for range 20 {
		if ok, wait := k.Reserve("ip"); ok || wait != 2*time.Second {
			t.Fatalf("Reserve past the burst = %v, %v; want false, 2s", ok, wait)
		}
	}
	c.add(1500 * time.Millisecond)
	if ok, wait := k.Reserve("ip"); ok || wait != 500*time.Millisecond {
		t.Fatalf("1.5s later: Reserve = %v, %v; want false, 500ms", ok, wait)
	}
	c.add(500 * time.Millisecond)
	if ok, _ := k.Reserve("ip"); !ok {
		t.Fatal("no token after the retry time it was told")
	}
	if ok, wait := k.Reserve("ip"); ok || wait != 2*time.Second {
		t.Fatalf("after taking the refilled token: Reserve = %v, %v; want false, 2s", ok, wait)
	}
	if ok, _ := k.Reserve("other"); !ok {
		t.Fatal("another key is refused")
	}
}

func TestReserveKeepsMemoryBound(t *testing.T) {
	k, c := newTest(time.Second, 1, 10)
	for i := range 1000 {
		c.add(time.Second) // each key is full again by the next one
		k.Reserve(fmt.Sprint("ip-", i))
	}
	if n := k.Len(); n > 11 {
		t.Fatalf("Len = %d after 1000 keys a refill apart, want about maxKeys", n)
	}
	// Refusals never create a key of their own.
	k.Reserve("x")
	before := k.Len()
	for range 100 {
		k.Reserve("x")
	}
	if k.Len() != before {
		t.Fatalf("refused Reserves changed Len from %d to %d", before, k.Len())
	}
}

func TestConcurrentReserveNeverExceedsBurst(t *testing.T) {
	k, _ := newTest(time.Hour, 25, 50) // frozen clock: no refill
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				if ok, _ := k.Reserve("shared"); ok {
					allowed.Add(1)
				}
				k.Reserve(fmt.Sprint("g", g, "-", i%100)) // churn the map and the sweep
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 25 {
		t.Fatalf("%d Reserves succeeded, want exactly the burst of 25", n)
	}
}

func TestParseRate(t *testing.T) {
	r, err := ParseRate("20,2s")
	if err != nil || r != (Rate{Burst: 20, Every: 2 * time.Second}) {
		t.Fatalf("ParseRate(20,2s) = %+v, %v", r, err)
	}
	if back, err := ParseRate(r.String()); err != nil || back != r {
		t.Fatalf("ParseRate(%q) = %+v, %v; want %+v", r.String(), back, err, r)
	}
	for _, bad := range []string{"", "20", "20/2s", "0,1s", "-1,1s", "5,0s", "5,-1s", "x,1s", "5,soon"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestClientKey(t *testing.T) {
	for ip, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "::ffff:203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an ip":            "not an ip",
	} {
		if got := ClientKey(ip); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", ip, got, want)
		}
	}
}
