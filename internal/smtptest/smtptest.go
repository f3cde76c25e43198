// Package smtptest is a real SMTP server for tests (emersion/go-smtp) on
// 127.0.0.1 that keeps what it receives.
package smtptest

import (
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one message as the server received it.
type Mail struct {
	From string
	To   []string
	Data string
}

// Server is a running SMTP server.
type Server struct {
	Addr string
	// User and Password, when set, are the only credentials it takes, and
	// it then refuses mail from a session that did not authenticate.
	User, Password string

	mu   sync.Mutex
	got  []Mail
	news chan struct{}
}

// Start starts a server, stopped when the test ends.
func Start(tb testing.TB, user, password string) *Server {
	tb.Helper()
	s := &Server{User: user, Password: password, news: make(chan struct{}, 1000)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return s
}

// Mails returns what the server has received so far.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.got...)
}

// Wait waits until the server has received n mails, or d has passed.
func (s *Server) Wait(n int, d time.Duration) []Mail {
	deadline := time.After(d)
	for {
		if got := s.Mails(); len(got) >= n {
			return got
		}
		select {
		case <-s.news:
		case <-deadline:
			return s.Mails()
		}
	}
}

type session struct {
	s      *Server
	authed bool
	m      Mail
}

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if x.s.User == "" || user != x.s.User || pass != x.s.Password {
			return errors.New("bad credentials")
		}
		x.authed = true
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.User != "" && !x.authed {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	x.m = Mail{From: from}
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.m.To = append(x.m.To, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.m.Data = string(b)
	x.s.mu.Lock()
	x.s.got = append(x.s.got, x.m)
	x.s.mu.Unlock()
	x.s.news <- struct{}{}
	return nil
}

func (x *session) Reset()        { x.m = Mail{} }
func (x *session) Logout() error { return nil }

// Read parses a received mail: its headers, its subject decoded, and its
// text with the transfer encoding undone.
func (m Mail) Read() (header mail.Header, subject, text string, err error) {
	msg, err := mail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		return nil, "", "", err
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, "", "", err
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	return msg.Header, subject, string(b), err
}
