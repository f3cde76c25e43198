package web

import (
	"context"
	"errors"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
)

// Limits are the abuse limits of the widget's public endpoints, which
// anyone can call with nothing but an app id. Zero fields take
// DefaultLimits' values.
type Limits struct {
	// SessionsPerIP paces POST /api/widget/sessions from one client
	// address (an IPv6 /64): each session is a write, and for a visitor a
	// new subject too.
	SessionsPerIP ratelimit.Rate
	// SessionsPerApp paces the anonymous and unverified sessions created
	// for one app from all addresses together, so many addresses can't fill
	// the database through one app either. Verified sessions are not
	// charged: they need a proof only the site's backend can make, and a
	// flood of anonymous requests must not lock its real users out.
	SessionsPerApp ratelimit.Rate
	// SocketOpensPerIP paces widget socket upgrades from one address.
	SocketOpensPerIP ratelimit.Rate
	// Chat are the per-subject limits of the widget sockets.
	Chat chat.Limits
}

// DefaultLimits: each is well above what people do and well below what
// the server can take (see README, Operations).
func DefaultLimits() Limits {
	return Limits{
		SessionsPerIP:    ratelimit.Rate{Burst: 20, Every: 2 * time.Second},
		SessionsPerApp:   ratelimit.Rate{Burst: 200, Every: 20 * time.Millisecond},
		SocketOpensPerIP: ratelimit.Rate{Burst: 30, Every: time.Second},
		Chat:             chat.DefaultLimits(),
	}
}

func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	for _, f := range []struct{ v, def *ratelimit.Rate }{
		{&l.SessionsPerIP, &d.SessionsPerIP}, {&l.SessionsPerApp, &d.SessionsPerApp}, {&l.SocketOpensPerIP, &d.SocketOpensPerIP},
	} {
		if !f.v.Valid() {
			*f.v = *f.def
		}
	}
	return l // the hub fills in Chat's zero fields itself
}

// limitKeys bounds the addresses each limiter remembers.
const limitKeys = 100_000

// bodyLimit is the backstop for every request body; routes that take one
// set their own, smaller limit too.
const bodyLimit = "1M"

// uploadRoutes take files, and bound their bodies themselves: by the
// operator's attachment size, or the team picture's 1 MB and its framing.
var uploadRoutes = map[string]bool{
	"/api/widget/attachments":                               true,
	"/api/v1/conversations/:id/attachments":                 true,
	"/dashboard/apps/:app_id/conversations/:id/attachments": true,
	"/dashboard/apps/:app_id/settings/avatar":               true,
}

// perIP refuses, with a 429, a client address that is over its budget.
// The address is the connection's peer, or what a trusted proxy says.
func perIP(k *ratelimit.Keyed, message string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if ok, wait := k.Reserve(ratelimit.ClientKey(c.RealIP())); !ok {
				return handlers.TooManyRequests(message, wait)
			}
			return next(c)
		}
	}
}

// appSessionBudget charges an app's session budget for each anonymous or
// unverified session, in the session's own transaction: requests refused
// anyway cost the app nothing, and the 429 names the one limit that was
// reached. The budget is a bucket in the database, so every node sharing
// it counts the same sessions. The per-IP limit in front bounds any one
// address's share.
type appSessionBudget struct {
	*store.DB
	perApp ratelimit.Rate
}

func (s appSessionBudget) CreateSession(ctx context.Context, in store.NewSession) (store.Session, error) {
	if in.Kind != store.KindUser {
		in.Budget = &store.Bucket{Key: "sessions-app:" + in.AppID, Burst: s.perApp.Burst, Every: s.perApp.Every}
	}
	sess, err := s.DB.CreateSession(ctx, in)
	if limited := new(store.RateLimitedError); errors.As(err, &limited) {
		return sess, handlers.TooManyRequests("too many chats are starting on this site right now; try again shortly", limited.Wait)
	}
	return sess, err
}
