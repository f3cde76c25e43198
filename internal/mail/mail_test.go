package mail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/smtptest"
)

func TestSendThroughARealSMTPServer(t *testing.T) {
	srv := smtptest.Start(t, "parley", "s3cret")
	s, err := mail.New("smtp://parley:s3cret@"+srv.Addr, "Parley <chat@shop.example>")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "New message from Bob", Text: "Bob wrote:\n  Où est ma théière ?\n"})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(1, 10*time.Second)
	if len(got) != 1 || got[0].From != "chat@shop.example" || len(got[0].To) != 1 || got[0].To[0] != "ann@example.com" {
		t.Fatalf("received %+v", got)
	}
	for _, want := range []string{"Subject: New message from Bob", "To: <ann@example.com>", "Message-ID:", "Date:"} {
		if !strings.Contains(got[0].Data, want) {
			t.Errorf("mail lacks %q:\n%s", want, got[0].Data)
		}
	}
	if !strings.Contains(got[0].Data, "th=C3=A9i=C3=A8re") && !strings.Contains(got[0].Data, "théière") {
		t.Errorf("the body is not there, or not in UTF-8:\n%s", got[0].Data)
	}
}

func TestWrongCredentialsAreAnError(t *testing.T) {
	srv := smtptest.Start(t, "parley", "s3cret")
	s, err := mail.New("smtp://parley:wrong@"+srv.Addr, "chat@shop.example")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "x", Text: "y"})
	if err == nil {
		t.Fatal("sent with a wrong password")
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if n := len(srv.Mails()); n != 0 {
		t.Fatalf("the server received %d mails", n)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct{ url, from string }{
		{"", "a@b.example"},
		{"mailto:x@example.com", "a@b.example"},
		{"http://mail.example", "a@b.example"},
		{"smtp://", "a@b.example"},
		{"smtp://mail.example:99999", "a@b.example"},
		{"smtp://u:hunter2@mail.example/path", "a@b.example"},
		{"smtp://mail.example", "not an address"},
	} {
		_, err := mail.New(tc.url, tc.from)
		if err == nil {
			t.Errorf("New(%q, %q) accepted", tc.url, tc.from)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	s, err := mail.New("smtps://mail.example", "a@b.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), mail.Message{To: "nobody", Subject: "x"}); err == nil {
		t.Error("sent to an address that is not one")
	}
}

// A subject quoting a name with line breaks stays one header: no header
// can be slipped in through a name.
func TestSubjectStaysOneLine(t *testing.T) {
	srv := smtptest.Start(t, "parley", "s3cret")
	s, err := mail.New("smtp://parley:s3cret@"+srv.Addr, "Parley <chat@shop.example>")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "Eve\r\nBcc: victim@example.com\r\n invited you", Text: "hi\n"}); err != nil {
		t.Fatal(err)
	}
	header, subject, _, err := srv.Wait(1, 10*time.Second)[0].Read()
	if err != nil {
		t.Fatal(err)
	}
	if header.Get("Bcc") != "" || strings.ContainsAny(subject, "\r\n") || !strings.HasPrefix(subject, "Eve Bcc: victim@example.com") {
		t.Errorf("subject %q, Bcc %q", subject, header.Get("Bcc"))
	}
}
