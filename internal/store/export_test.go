package store

import "time"

// SetNow lets tests move the clock.
func (db *DB) SetNow(now func() time.Time) { db.now = now }
