package chat

import (
	"time"

	"github.com/parley-chat/parley/internal/ratelimit"
)

// Limits bound what one subject (a user, an unverified claim, a visitor)
// does across all of its widget sockets, whichever addresses they come
// from. The per-connection frame limit cuts off a flood on one socket; these
// stop a subject from spreading the same load over many sockets.
type Limits struct {
	// Sockets is how many widget sockets a subject may hold open at once:
	// plenty for one person's tabs, too few to hold the server's memory.
	Sockets int
	// Opens paces new sockets: a widget that reconnects in a tight loop
	// costs a session lookup each time.
	Opens ratelimit.Rate
	// Messages paces the messages a subject sends, each of which is a
	// write to SQLite and a push to every agent.
	Messages ratelimit.Rate
}

// DefaultLimits: 20 sockets at once; 20 opens, then one a second; 10
// messages, then one a second, which a person typing does not reach.
func DefaultLimits() Limits {
	return Limits{
		Sockets:  20,
		Opens:    ratelimit.Rate{Burst: 20, Every: time.Second},
		Messages: ratelimit.Rate{Burst: 10, Every: time.Second},
	}
}

// orDefault fills zero (or nonsensical) fields from DefaultLimits.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.Sockets < 1 {
		l.Sockets = d.Sockets
	}
	if !l.Opens.Valid() {
		l.Opens = d.Opens
	}
	if !l.Messages.Valid() {
		l.Messages = d.Messages
	}
	return l
}

// limitKeys bounds the subjects each limiter remembers (see ratelimit.Keyed).
const limitKeys = 100_000

// socketsRetry is the retry hint for a subject with too many sockets open:
// nothing refills, so it only paces the widget's reconnects.
const socketsRetry = 5 * time.Second

// subjectLimits are Limits made into buckets.
type subjectLimits struct {
	sockets         int
	opens, messages *ratelimit.Keyed
}

func newSubjectLimits(l Limits) *subjectLimits {
	l = l.orDefault()
	return &subjectLimits{sockets: l.Sockets, opens: l.Opens.Keyed(limitKeys), messages: l.Messages.Keyed(limitKeys)}
}

// SetLimits replaces the per-subject limits; zero fields take
// DefaultLimits' values. What subjects had spent is forgotten, so set them
// before serving.
func (h *Hub) SetLimits(l Limits) {
	h.limits.Store(newSubjectLimits(l))
}
