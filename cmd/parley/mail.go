package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/store"
)

// E-mail defaults: how long a message may go unseen before it is
// e-mailed, unless an app's settings say otherwise.
const (
	defaultAgentEmailAfter = 5 * time.Minute
	defaultUserEmailAfter  = 10 * time.Minute
)

type mailFlags struct {
	smtpURL, from         *string
	agentAfter, userAfter *time.Duration
}

func addMailFlags(fs *flag.FlagSet) (*mailFlags, error) {
	m := &mailFlags{
		// No default from the environment: flag errors and -h print
		// defaults, and this URL may hold a password (sender reads it).
		smtpURL: fs.String("smtp-url", "", "send e-mail through this SMTP server: smtp://USER:PASS@HOST:587 (STARTTLS) or smtps://USER:PASS@HOST:465 (TLS); "+
			"without it e-mail is off (PARLEY_SMTP_URL)"),
		from: fs.String("mail-from", os.Getenv("PARLEY_MAIL_FROM"), "the `address` e-mail comes from, e.g. \"Parley <chat@example.com>\" (PARLEY_MAIL_FROM)"),
	}
	var err error
	m.agentAfter, err = durationFlag(fs, "agent-email-after", "PARLEY_AGENT_EMAIL_AFTER", defaultAgentEmailAfter,
		"e-mail an app's members about a user's message no agent saw within this `duration` (an app's settings may say otherwise)")
	if err != nil {
		return nil, err
	}
	m.userAfter, err = durationFlag(fs, "user-email-after", "PARLEY_USER_EMAIL_AFTER", defaultUserEmailAfter,
		"e-mail a user a reply they did not see within this `duration`, to a signed address only (an app's settings may say otherwise)")
	return m, err
}

// durationFlag is a duration flag whose default an environment variable
// may change.
func durationFlag(fs *flag.FlagSet, name, env string, def time.Duration, usage string) (*time.Duration, error) {
	if v := os.Getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, usageError{fmt.Sprintf("%s must be a duration such as 5m, not %q", env, v)}
		}
		def = d
	}
	return fs.Duration(name, def, usage+" ("+env+")"), nil
}

// sender checks the flags and returns the mail sender, nil when e-mail
// is off, and the default waits.
func (m *mailFlags) sender() (*mail.Sender, store.EmailWaits, error) {
	waits := store.EmailWaits{Agent: *m.agentAfter, User: *m.userAfter}
	for name, d := range map[string]time.Duration{"--agent-email-after": waits.Agent, "--user-email-after": waits.User} {
		if d < time.Minute || d > 7*24*time.Hour {
			return nil, waits, usageError{name + " must be from 1m to 168h (7 days)"}
		}
	}
	if *m.smtpURL == "" {
		*m.smtpURL = os.Getenv("PARLEY_SMTP_URL")
	}
	if *m.smtpURL == "" {
		if *m.from != "" {
			return nil, waits, usageError{"--mail-from needs --smtp-url: the SMTP server to send through"}
		}
		return nil, waits, nil
	}
	if *m.from == "" {
		return nil, waits, usageError{"--smtp-url needs --mail-from: the address e-mail comes from"}
	}
	s, err := mail.New(*m.smtpURL, *m.from)
	if err != nil {
		return nil, waits, usageError{err.Error()}
	}
	return s, waits, nil
}
