package handlers

import (
	"errors"
	"maps"
	"sync"

	"github.com/labstack/echo/v4"
)

// Refusals counts the widget sessions refused, by the error code the
// widget got (origin_not_allowed, identity_hash_invalid, rate_limited,
// …), for the metrics.
type Refusals struct {
	mu     sync.Mutex
	counts map[string]int64
}

// Counts returns a copy of the counts so far.
func (r *Refusals) Counts() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}

// Count is middleware that counts the refusals of the route it wraps,
// its own limits' included when it wraps them.
func (r *Refusals) Count(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		var ae *APIError
		if errors.As(err, &ae) {
			r.mu.Lock()
			if r.counts == nil {
				r.counts = map[string]int64{}
			}
			r.counts[ae.Code]++
			r.mu.Unlock()
		}
		return err
	}
}
