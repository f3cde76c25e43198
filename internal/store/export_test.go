package store

import "time"

// SetNow lets tests move the clock.
func (db *DB) SetNow(now func() time.Time) { db.now = now }

// GateUserMessages stops the user message writer before each transaction:
// it sends the number of messages in the batch on sizes, then waits for a
// value on gate. Call it before the first message.
func (db *DB) GateUserMessages() (sizes <-chan int, gate chan<- struct{}) {
	s, g := make(chan int), make(chan struct{})
	db.writes.beforeBatch = func(n int) {
		s <- n
		<-g
	}
	return s, g
}

// UserMessagesWaiting is how many user messages wait in the writer's queue,
// not counting a batch the writer has taken.
func (db *DB) UserMessagesWaiting() int { return len(db.writes.reqs) }

// WriterPragma reads a PRAGMA's value on the write connection.
func (db *DB) WriterPragma(name string) (int, error) {
	var v int
	err := db.write.QueryRow(`PRAGMA ` + name).Scan(&v)
	return v, err
}
