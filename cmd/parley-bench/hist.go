package main

import (
	"math/bits"
	"sync"
	"time"
)

// subBits sub-buckets per power of two: each bucket is at most 1/32 (~3%)
// wider than its lower bound, like an HDR histogram with 1.5 significant
// digits. Values are nanoseconds.
const subBits = 5

// Hist is a fixed-bucket log-linear histogram of durations, safe for
// concurrent use.
type Hist struct {
	mu     sync.Mutex
	counts [64 << subBits]uint64
	n      uint64
	max    int64
}

func bucketOf(v int64) int {
	if v < 1<<subBits {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	sub := int(v>>shift) & (1<<subBits - 1)
	return (shift+1)<<subBits + sub
}

// bucketTop is the largest value that falls in bucket i.
func bucketTop(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	shift := i>>subBits - 1
	sub := int64(i & (1<<subBits - 1))
	return (1<<subBits+sub)<<shift + (1 << shift) - 1
}

// Record adds one duration.
func (h *Hist) Record(d time.Duration) {
	v := int64(d)
	h.mu.Lock()
	h.counts[bucketOf(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
	h.mu.Unlock()
}

// Count is the number of recorded values.
func (h *Hist) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Quantile is the upper bound of the bucket holding the q-th value (0<q<=1),
// never more than the exact maximum; 0 when empty.
func (h *Hist) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketTop(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// Max is the largest recorded value.
func (h *Hist) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Duration(h.max)
}
