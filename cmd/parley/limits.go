package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/web"
)

// rateFlag is a ratelimit.Rate flag: BURST,EVERY.
type rateFlag struct{ r *ratelimit.Rate }

func (f rateFlag) String() string {
	if f.r == nil {
		return ""
	}
	return f.r.String()
}

func (f rateFlag) Set(s string) error {
	r, err := ratelimit.ParseRate(s)
	if err != nil {
		return err
	}
	*f.r = r
	return nil
}

// intFlag is a positive int flag.
type intFlag struct{ n *int }

func (f intFlag) String() string {
	if f.n == nil {
		return ""
	}
	return strconv.Itoa(*f.n)
}

func (f intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("%q is not a positive number", s)
	}
	*f.n = n
	return nil
}

// limitFlags adds serve's abuse-limit flags, filled in from the defaults.
func limitFlags(fs *flag.FlagSet) *web.Limits {
	l := web.DefaultLimits()
	const shape = " (BURST,EVERY: a burst, then one more every EVERY)"
	fs.Var(rateFlag{&l.SessionsPerIP}, "limit-sessions-per-ip", "widget sessions one client address may start"+shape)
	fs.Var(rateFlag{&l.SessionsPerApp}, "limit-sessions-per-app", "widget sessions one app may start, from all addresses together"+shape)
	fs.Var(rateFlag{&l.SocketOpensPerIP}, "limit-sockets-per-ip", "widget sockets one client address may open"+shape)
	fs.Var(rateFlag{&l.Chat.Opens}, "limit-sockets-per-user", "widget sockets one chat user may open"+shape)
	fs.Var(intFlag{&l.Chat.Sockets}, "limit-open-sockets-per-user", "widget sockets one chat user may hold open at once")
	fs.Var(rateFlag{&l.Chat.Messages}, "limit-messages-per-user", "messages one chat user may send, across all their sockets"+shape)
	return &l
}
