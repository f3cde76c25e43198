// Package mail sends Parley's e-mail through the SMTP server an operator
// names (serve --smtp-url), with wneessen/go-mail building and sending
// it. It knows nothing of why a mail is sent.
package mail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	gomail "github.com/wneessen/go-mail"
)

// Sender sends mail through one SMTP server.
type Sender struct {
	host string
	opts []gomail.Option
	from string
}

// Message is one plain-text mail to one address. Unsubscribe, when set,
// is a URL that stops mail like this one, announced in the headers mail
// programs show as an "unsubscribe" button (RFC 2369, and RFC 8058's one
// click: a POST to it).
type Message struct {
	To, Subject, Text string
	Unsubscribe       string
}

// sendTimeout bounds the connection to the SMTP server, and then the
// sending (go-mail sets the connection's deadline that far ahead at each
// step): short, so that a mail is sent or given up on well within its
// job's time, and never tried a second time while the first still runs.
const sendTimeout = 5 * time.Second

// New checks an SMTP URL and a sender address:
// smtp://[user:pass@]host[:port] uses STARTTLS when the server offers it
// (port 587 by default; with credentials it must offer it, unless the
// server is on this machine), smtps://… implicit TLS (port 465). Errors
// never repeat the URL: it may hold a password.
func New(rawURL, from string) (*Sender, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" || u.Path != "" && u.Path != "/" {
		return nil, errors.New("mail: the SMTP URL must look like smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS)")
	}
	addr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("mail: the sender address %q is not an e-mail address", from)
	}
	s := &Sender{host: u.Hostname(), from: addr.String(), opts: []gomail.Option{gomail.WithTimeout(sendTimeout)}}
	port := 587
	if u.Scheme == "smtps" {
		port = 465
		s.opts = append(s.opts, gomail.WithSSL())
	} else {
		policy := gomail.TLSOpportunistic
		if u.User != nil && !isLocal(u.Hostname()) {
			policy = gomail.TLSMandatory // never a password in the clear
		}
		s.opts = append(s.opts, gomail.WithTLSPolicy(policy))
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, errors.New("mail: the SMTP URL's port must be a number from 1 to 65535")
		}
	}
	s.opts = append(s.opts, gomail.WithPort(port))
	if u.User != nil {
		pass, _ := u.User.Password()
		auth := gomail.SMTPAuthPlain
		if isLocal(u.Hostname()) && u.Scheme == "smtp" {
			auth = gomail.SMTPAuthPlainNoEnc // a relay on this machine, without TLS
		}
		s.opts = append(s.opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	return s, nil
}

func isLocal(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send sends m, or says why not.
func (s *Sender) Send(ctx context.Context, m Message) error {
	if _, err := mail.ParseAddress(m.To); err != nil {
		return fmt.Errorf("mail: %q is not an e-mail address", m.To)
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	// Subjects quote names people chose: kept on one line, whatever
	// they hold.
	msg.Subject(strings.Join(strings.FieldsFunc(m.Subject, unicode.IsControl), " "))
	if m.Unsubscribe != "" {
		msg.SetGenHeader(gomail.HeaderListUnsubscribe, "<"+m.Unsubscribe+">")
		msg.SetGenHeader(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail: sending to %s: %w", m.To, err)
	}
	return nil
}
