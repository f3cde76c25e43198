// Package ratelimit keeps one token bucket per key (an email, an IP, an
// app, a chat user), for throttling failed sign-ins and the abuse limits
// of the widget's endpoints.
package ratelimit

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is the shape of a token bucket: Burst tokens at first, then one
// more every Every.
type Rate struct {
	Burst int
	Every time.Duration
}

// ParseRate reads "BURST,EVERY", e.g. "20,2s": a burst of 20, then one
// more every 2 seconds.
func ParseRate(s string) (Rate, error) {
	b, e, ok := strings.Cut(s, ",")
	burst, berr := strconv.Atoi(strings.TrimSpace(b))
	every, eerr := time.ParseDuration(strings.TrimSpace(e))
	if !ok || berr != nil || eerr != nil || burst < 1 || every <= 0 {
		return Rate{}, fmt.Errorf("ratelimit: %q is not BURST,EVERY such as 20,2s (a burst of 20, then one more every 2 seconds)", s)
	}
	return Rate{Burst: burst, Every: every}, nil
}

// String is the form ParseRate reads.
func (r Rate) String() string { return fmt.Sprintf("%d,%v", r.Burst, r.Every) }

// Valid reports whether the rate can make a bucket.
func (r Rate) Valid() bool { return r.Burst >= 1 && r.Every > 0 }

// Keyed returns buckets of this rate, keeping about maxKeys keys.
func (r Rate) Keyed(maxKeys int) *Keyed { return NewKeyed(r.Every, r.Burst, maxKeys) }

// ClientKey is what per-IP limits count by: the address, or for IPv6 its
// /64, which one subscriber usually holds whole (and could otherwise hop
// across for a fresh budget each time).
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// Keyed is a set of token buckets, one per key, each refilling one token
// every `every` up to `burst`. A key that has never been seen, or whose
// bucket has refilled completely, behaves as a fresh full bucket.
//
// Memory: once more than maxKeys keys exist, keys whose buckets are full
// again are dropped, which loses nothing. Keys that are still throttled are
// never dropped, so flooding the map with new keys cannot reset someone
// else's limit. The cost of that choice is that the map can grow past
// maxKeys while many keys are throttled at the same moment (up to about
// twice their number, since sweeps are spaced out to stay cheap); that
// number is bounded by how fast new keys arrive times how long a bucket
// takes to refill (burst × every), which a per-IP limit in front of a
// per-account one keeps small.
//
// Blocked followed by Take is not atomic: concurrent attempts can all see
// a token before any of them takes it. Take then puts the bucket into debt
// (each failure still costs a token), so the key stays blocked for longer.
// Try gives a hard cap that charges only failures.
//
// A Keyed is safe for concurrent use.
type Keyed struct {
	every   time.Duration
	burst   int
	maxKeys int
	now     func() time.Time // tests replace it

	mu       sync.Mutex
	buckets  map[string]*rate.Limiter
	inflight map[string]int // attempts started by Try and not yet done
	sweepAt  int            // sweep when len(buckets) exceeds this
}

// NewKeyed returns buckets of burst tokens that refill one token every
// `every`, keeping about maxKeys keys (see Keyed).
func NewKeyed(every time.Duration, burst int, maxKeys int) *Keyed {
	if every <= 0 || burst < 1 || maxKeys < 1 {
		panic(fmt.Sprintf("ratelimit: NewKeyed(%v, %d, %d): every, burst and maxKeys must be positive", every, burst, maxKeys))
	}
	return &Keyed{
		every:    every,
		burst:    burst,
		maxKeys:  maxKeys,
		now:      time.Now,
		buckets:  make(map[string]*rate.Limiter),
		inflight: make(map[string]int),
		sweepAt:  maxKeys,
	}
}

// Blocked returns 0 when key has a token, otherwise how long until it has
// one. It does not consume a token.
func (k *Keyed) Blocked(key string) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.buckets[key]
	if !ok {
		return 0
	}
	tokens := b.TokensAt(k.now())
	if tokens >= 1 {
		return 0
	}
	return k.wait(tokens)
}

// wait is how long a bucket holding tokens (< 1) takes to hold one. It
// rounds away the float noise of rate's token arithmetic (40s, not
// 40.000000001s), but never reports 0 for an empty bucket.
func (k *Keyed) wait(tokens float64) time.Duration {
	return max(time.Duration(math.Round((1-tokens)*float64(k.every))), 1)
}

// Take consumes one token from key, going into debt when there is none, so
// every failed attempt is paid for (e.g. a failed sign-in).
func (k *Keyed) Take(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.bucket(key).ReserveN(k.now(), 1)
}

// Allow consumes one token from key and reports true, or reports false and
// consumes nothing when the bucket is empty.
func (k *Keyed) Allow(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.bucket(key).AllowN(k.now(), 1)
}

// Reserve takes a token from key and reports true, or, when the bucket is
// empty, reports false and how long until it holds a token again. A refused
// call takes nothing: a client that waits retryAfter gets in, however often
// it was refused meanwhile.
func (k *Keyed) Reserve(key string) (ok bool, retryAfter time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	b := k.bucket(key) // a new key's bucket is full, so only known keys are refused
	if b.AllowN(now, 1) {
		return true, 0
	}
	return false, k.wait(b.TokensAt(now))
}

// Try starts an attempt for key (a sign-in, say) and reports whether it
// may go ahead; done ends it, taking a token only if it failed. Attempts
// in flight count against the tokens left, so parallel attempts can't all
// get in ahead of the count, and only failures cost anything.
func (k *Keyed) Try(key string) (ok bool, done func(failed bool)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	tokens := float64(k.burst)
	if b, found := k.buckets[key]; found {
		tokens = b.TokensAt(k.now())
	}
	if tokens-float64(k.inflight[key]) < 1 {
		return false, func(bool) {}
	}
	k.inflight[key]++
	var once sync.Once
	return true, func(failed bool) {
		once.Do(func() {
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.inflight[key]--; k.inflight[key] <= 0 {
				delete(k.inflight, key)
			}
			if failed {
				k.bucket(key).ReserveN(k.now(), 1)
			}
		})
	}
}

// Len returns the number of keys held, for tests and metrics.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// bucket returns key's bucket, creating it (and sweeping when over the
// bound) if needed. k.mu must be held.
func (k *Keyed) bucket(key string) *rate.Limiter {
	if b, ok := k.buckets[key]; ok {
		return b
	}
	b := rate.NewLimiter(rate.Every(k.every), k.burst)
	k.buckets[key] = b
	if len(k.buckets) > k.sweepAt {
		k.sweep(key)
	}
	return b
}

// sweep drops full buckets except keep. The next sweep waits until the map
// has doubled from what remains, so a map full of throttled keys is not
// rescanned on every insert (amortised O(1) per new key).
func (k *Keyed) sweep(keep string) {
	now := k.now()
	full := float64(k.burst)
	for key, b := range k.buckets {
		if key != keep && b.TokensAt(now) >= full {
			delete(k.buckets, key)
		}
	}
	k.sweepAt = max(k.maxKeys, 2*len(k.buckets))
}
