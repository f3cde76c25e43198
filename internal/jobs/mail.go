package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-chat/parley/internal/mail"
	"github.com/parley-chat/parley/internal/store"
)

// mailQueue is River's queue of e-mails.
const mailQueue = "mail"

// sweepEvery is how often one node looks for conversations whose wait
// before an e-mail ran out.
const sweepEvery = 10 * time.Second

// staleAfter is how far past its wait a message stops being mailed: when
// e-mail is turned on after a time without it, old conversations are not
// all mailed at once.
const staleAfter = 24 * time.Hour

// mailArgs is the job that sends one e-mail about unseen messages.
type mailArgs struct {
	Mail store.MailJob `json:"mail"`
}

func (mailArgs) Kind() string { return "email" }

func (mailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: mailQueue, MaxAttempts: 10}
}

// EnqueueMail adds the jobs that send mails, in tx (store.Outbox); none
// when the server sends no e-mail.
func (q *Queue) EnqueueMail(ctx context.Context, tx *sql.Tx, mails []store.MailJob) error {
	if q.cfg.Mail == nil || len(mails) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(mails))
	for i, m := range mails {
		params[i] = river.InsertManyParams{Args: mailArgs{Mail: m}}
	}
	if _, err := q.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("jobs: enqueue mail: %w", err)
	}
	return nil
}

type mailWorker struct {
	river.WorkerDefaults[mailArgs]
	q *Queue
}

func (w *mailWorker) Work(ctx context.Context, job *river.Job[mailArgs]) error {
	q := w.q
	if job.Args.Mail.Kind == store.MailEndpointOff {
		return q.endpointOff(ctx, job.Args.Mail)
	}
	m, err := q.cfg.Store.MailFor(ctx, job.Args.Mail)
	if errors.Is(err, store.ErrMailNotDue) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var msg mail.Message
	switch job.Args.Mail.Kind {
	case store.MailAgentAlert:
		msg = agentAlert(m, q.cfg.PublicURL)
	case store.MailUserReply:
		msg = userReply(m, q.cfg.PublicURL, q.cfg.Store.UnsubscribeToken(m.SubjectID))
	}
	return q.sendMail(ctx, msg)
}

// sendMail sends msg through the operator's SMTP server, counting it.
func (q *Queue) sendMail(ctx context.Context, msg mail.Message) error {
	if err := q.cfg.Mail.Send(ctx, msg); err != nil {
		q.mails.failed.Add(1)
		return err
	}
	q.mails.sent.Add(1)
	return nil
}

// Mails are this node's e-mails since it started: sent, and attempts
// that failed (each is tried again).
func (q *Queue) Mails() (sent, failed int64) { return q.mails.sent.Load(), q.mails.failed.Load() }

// agentAlert is the e-mail to a member about user messages no agent saw.
func agentAlert(m store.AlertMail, publicURL string) mail.Message {
	who := person(m.Subject)
	var b strings.Builder
	fmt.Fprintf(&b, "%s wrote in %s, and nobody has seen it yet:\n\n", who, m.App.Name)
	quote(&b, m.Messages, m.More)
	fmt.Fprintf(&b, "Answer in the dashboard:\n%s\n\n", publicURL+"/dashboard/apps/"+url.PathEscape(m.App.ID)+"/conversations/"+url.PathEscape(m.ID))
	fmt.Fprintf(&b, "-- \nYou get this as a member of %s. Turn these e-mails off on the app's Settings page:\n%s\n",
		m.App.Name, publicURL+"/dashboard/apps/"+url.PathEscape(m.App.ID)+"/settings")
	subject := fmt.Sprintf("New message from %s in %s", who, m.App.Name)
	if n := len(m.Messages) + m.More; n > 1 {
		subject = fmt.Sprintf("%d new messages from %s in %s", n, who, m.App.Name)
	}
	return mail.Message{To: m.To, Subject: subject, Text: b.String()}
}

// userReply is the e-mail to a user of the replies they did not see.
func userReply(m store.AlertMail, publicURL, token string) mail.Message {
	from := m.App.Name
	if n := m.Messages[len(m.Messages)-1].AuthorName; n != "" {
		from = n + " (" + m.App.Name + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s replied to you:\n\n", from)
	quote(&b, m.Messages, m.More)
	if m.Subject.LastPageURL != "" {
		fmt.Fprintf(&b, "Continue the conversation where it started:\n%s\n\n", m.Subject.LastPageURL)
	}
	unsubscribe := publicURL + "/email/unsubscribe?token=" + url.QueryEscape(token)
	fmt.Fprintf(&b, "-- \nYou get this because you wrote to %s and had not seen the reply.\nNo more of these e-mails: %s\n", m.App.Name, unsubscribe)
	return mail.Message{To: m.To, Subject: m.App.Name + " replied to your message", Text: b.String(), Unsubscribe: unsubscribe}
}

// quote writes messages as a mail quotes them, each line after "> ".
func quote(b *strings.Builder, msgs []store.Message, more int) {
	if more > 0 {
		fmt.Fprintf(b, "(%d earlier %s not shown)\n\n", more, plural(more, "message"))
	}
	for _, msg := range msgs {
		for line := range strings.SplitSeq(msg.Body, "\n") {
			b.WriteString("> " + line + "\n")
		}
		fmt.Fprintf(b, "  (%s)\n\n", msg.CreatedAt.UTC().Format("Jan 2, 15:04 UTC"))
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// person names a conversation's user for the members: what the user
// said they are, the page's word included (the members see it marked so
// in the dashboard).
func person(s store.Subject) string {
	switch {
	case s.Name != "":
		return s.Name
	case s.Email != "":
		return s.Email
	case s.UserID != "":
		return "user " + s.UserID
	}
	return "A visitor"
}

// sweepArgs is the periodic job that queues the e-mails whose wait ran
// out.
type sweepArgs struct{}

func (sweepArgs) Kind() string { return "queue_due_emails" }

type sweepWorker struct {
	river.WorkerDefaults[sweepArgs]
	q *Queue
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[sweepArgs]) error {
	_, err := w.q.cfg.Store.QueueDueEmails(ctx, time.Now(), w.q.cfg.EmailWaits, staleAfter)
	return err
}

// endpointOff is the e-mail to a member of an app about one of its
// webhook endpoints that Parley turned off; nothing if the member left, or
// the endpoint is on again or gone.
func (q *Queue) endpointOff(ctx context.Context, j store.MailJob) error {
	app, err := q.cfg.Store.App(ctx, j.AppID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	endpoints, err := q.cfg.Store.WebhookEndpoints(ctx, j.AppID)
	if err != nil {
		return err
	}
	members, err := q.cfg.Store.Members(ctx, j.AppID)
	if err != nil {
		return err
	}
	ei := slices.IndexFunc(endpoints, func(e store.WebhookEndpoint) bool { return e.ID == j.EndpointID && e.Disabled })
	mi := slices.IndexFunc(members, func(o store.Owner) bool { return o.ID == j.OwnerID })
	if ei < 0 || mi < 0 {
		return nil
	}
	e, m := endpoints[ei], members[mi]
	page := q.cfg.PublicURL + "/dashboard/apps/" + url.PathEscape(app.ID) + "/webhooks"
	return q.sendMail(ctx, mail.Message{To: m.Email, Subject: "Webhook endpoint turned off in " + app.Name,
		Text: fmt.Sprintf("Parley turned off the webhook endpoint\n%s\nof %s: %s.\n\nNothing more is sent to it. Once it works again, turn it back on:\n%s\n",
			e.URL, app.Name, e.DisabledReason, page)})
}
