package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// E-mail about messages nobody saw.
//
// The statements that add messages and move read marks keep each
// conversation's agent_unseen_since and user_unseen_since: when the
// oldest message the agents (or the user) have not seen was written,
// NULL once they saw everything. QueueDueEmails, run every few seconds on
// one node, takes the conversations whose wait ran out, clears the clock
// (so one e-mail covers everything that came within the window) and, in
// the same transaction, has the outbox queue the e-mails, which are sent
// and retried as jobs. Nothing is read or mailed per message.

// Mail kinds.
const (
	// MailAgentAlert tells a member of an app about user messages no agent
	// saw.
	MailAgentAlert = "agent_alert"
	// MailUserReply sends the user the replies they did not see.
	MailUserReply = "user_reply"
	// MailEndpointOff tells a member of an app that Parley turned one of
	// its webhook endpoints off (RecordWebhookAttempt).
	MailEndpointOff = "webhook_endpoint_off"
)

// MailJob is one e-mail to queue: about conversation's messages after
// AfterSeq up to UptoSeq, to OwnerID (agent alerts) or to the
// conversation's user.
type MailJob struct {
	Kind           string `json:"kind"`
	ConversationID string `json:"conversation_id,omitempty"`
	OwnerID        string `json:"owner_id,omitempty"`
	// AppID and EndpointID name the endpoint of MailEndpointOff.
	AppID      string `json:"app_id,omitempty"`
	EndpointID string `json:"endpoint_id,omitempty"`
	AfterSeq   int64  `json:"after_seq"`
	UptoSeq    int64  `json:"upto_seq"`
}

// EmailWaits are how long a message may go unseen before it is e-mailed,
// when an app does not say otherwise.
type EmailWaits struct {
	Agent, User time.Duration
}

// maxDueAtOnce bounds the conversations one QueueDueEmails takes.
const maxDueAtOnce = 200

// QueueDueEmails queues the e-mails of every conversation whose wait ran
// out by now, and returns how many it queued. A conversation more than
// stale past its wait is taken without mail: e-mail turned on after a
// time without it does not mail every old conversation at once.
func (db *DB) QueueDueEmails(ctx context.Context, now time.Time, waits EmailWaits, stale time.Duration) (int, error) {
	if db.outbox == nil {
		return 0, errors.New("store: no outbox to send e-mail through")
	}
	queued := 0
	var errs []error
	for _, side := range []struct {
		clock, wait string
		def         time.Duration
		claim       func(ctx context.Context, tx *sql.Tx, id string) ([]MailJob, error)
	}{
		{"agent_unseen_since", "agent_email_after", waits.Agent, db.agentAlerts},
		{"user_unseen_since", "user_email_after", waits.User, db.userReplies},
	} {
		due, err := db.dueConversations(ctx, side.clock, side.wait, now, side.def)
		if err != nil {
			return queued, err
		}
		for _, d := range due {
			err := db.tx(ctx, func(tx *sql.Tx) error {
				// Claimed only if the clock is as read: if the other side
				// caught up meanwhile, or another run took it, nothing.
				res, err := tx.ExecContext(ctx, `UPDATE conversations SET `+side.clock+` = NULL WHERE id = ? AND `+side.clock+` = ?`, d.id, d.since)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 0 || d.since < now.UnixMilli()-d.wait-stale.Milliseconds() {
					return nil
				}
				mails, err := side.claim(ctx, tx, d.id)
				if err != nil || len(mails) == 0 {
					return err
				}
				queued += len(mails)
				return db.outbox.EnqueueMail(ctx, tx, mails)
			})
			if err != nil {
				// The others are not held up by one that fails.
				errs = append(errs, fmt.Errorf("conversation %s: %w", d.id, err))
			}
		}
	}
	if len(errs) > 0 {
		return queued, fmt.Errorf("store: queue e-mails: %w", errors.Join(errs...))
	}
	return queued, nil
}

type dueConversation struct {
	id          string
	since, wait int64 // unix milliseconds, milliseconds
}

func (db *DB) dueConversations(ctx context.Context, clock, wait string, now time.Time, def time.Duration) ([]dueConversation, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT c.id, c.`+clock+`, coalesce(a.`+wait+`, ?) FROM conversations c JOIN apps a ON a.id = c.app_id
		WHERE c.`+clock+` IS NOT NULL AND c.`+clock+` <= ? - coalesce(a.`+wait+`, ?) ORDER BY c.`+clock+` LIMIT ?`,
		def.Milliseconds(), now.UnixMilli(), def.Milliseconds(), maxDueAtOnce)
	if err != nil {
		return nil, fmt.Errorf("store: due e-mails: %w", err)
	}
	defer rows.Close()
	var out []dueConversation
	for rows.Next() {
		var d dueConversation
		if err := rows.Scan(&d.id, &d.since, &d.wait); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// agentAlerts are the e-mails to the app's members who want them, about
// the user messages after the agents' read mark.
func (db *DB) agentAlerts(ctx context.Context, tx *sql.Tx, id string) ([]MailJob, error) {
	var appID string
	var read, last int64
	if err := tx.QueryRowContext(ctx, `SELECT app_id, agent_read_seq, last_seq FROM conversations WHERE id = ?`, id).Scan(&appID, &read, &last); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT owner_id FROM app_members WHERE app_id = ? AND email_alerts = ? ORDER BY owner_id`, appID, true)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var mails []MailJob
	for rows.Next() {
		m := MailJob{Kind: MailAgentAlert, ConversationID: id, AfterSeq: read, UptoSeq: last}
		if err := rows.Scan(&m.OwnerID); err != nil {
			return nil, err
		}
		mails = append(mails, m)
	}
	return mails, rows.Err()
}

// userReplies is the e-mail to the conversation's user of the replies
// after their read mark: only to an address that was signed, and not
// after they unsubscribed.
func (db *DB) userReplies(ctx context.Context, tx *sql.Tx, id string) ([]MailJob, error) {
	var read, last int64
	var email string
	var signed, unsubscribed bool
	err := tx.QueryRowContext(ctx, `SELECT c.user_read_seq, c.last_seq, s.email, s.email_signed,
			EXISTS (SELECT 1 FROM email_unsubscribes u WHERE u.subject_id = s.id)
		FROM conversations c JOIN subjects s ON s.id = c.subject_id WHERE c.id = ?`, id).Scan(&read, &last, &email, &signed, &unsubscribed)
	if err != nil || !signed || email == "" || unsubscribed {
		return nil, err
	}
	return []MailJob{{Kind: MailUserReply, ConversationID: id, AfterSeq: read, UptoSeq: last}}, nil
}

// AlertMail is what an e-mail about unseen messages says, read when it
// is sent.
type AlertMail struct {
	To, ToName string
	App        App
	Conversation
	Subject Subject
	// Messages are the other side's messages in the window, oldest first:
	// at most the last maxMailedMessages of them.
	Messages []Message
	// More counts the earlier ones left out.
	More int
}

// maxMailedMessages bounds the messages quoted in one e-mail.
const maxMailedMessages = 10

// ErrMailNotDue says an e-mail is no longer to be sent: its messages were
// seen meanwhile, the member left the app or turned alerts off, the user
// unsubscribed, or the conversation is gone.
var ErrMailNotDue = errors.New("store: the e-mail is no longer due")

// MailFor reads what job's e-mail says, or ErrMailNotDue.
func (db *DB) MailFor(ctx context.Context, job MailJob) (AlertMail, error) {
	var m AlertMail
	var app string
	err := db.read.QueryRowContext(ctx, `SELECT c.app_id, c.subject_id, c.agent_read_seq, c.user_read_seq, c.last_seq, c.status, c.created_at
		FROM conversations c WHERE c.id = ?`, job.ConversationID).
		Scan(&app, &m.SubjectID, &m.AgentReadSeq, &m.UserReadSeq, &m.LastSeq, &m.Status, new(int64))
	if errors.Is(err, sql.ErrNoRows) {
		return m, ErrMailNotDue
	}
	if err != nil {
		return m, fmt.Errorf("store: mail: %w", err)
	}
	m.ID, m.AppID = job.ConversationID, app
	a, err := db.App(ctx, app)
	if err != nil {
		return m, err
	}
	m.App = *a
	if m.Subject, err = db.Subject(ctx, app, m.SubjectID); err != nil {
		return m, err
	}
	author := AuthorUser
	switch job.Kind {
	case MailAgentAlert:
		if m.AgentReadSeq >= job.UptoSeq {
			return m, ErrMailNotDue
		}
		var alerts bool
		err := db.read.QueryRowContext(ctx, `SELECT o.email, o.name, m.email_alerts FROM app_members m JOIN owners o ON o.id = m.owner_id
			WHERE m.app_id = ? AND m.owner_id = ?`, app, job.OwnerID).Scan(&m.To, &m.ToName, &alerts)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !alerts {
			return m, ErrMailNotDue
		}
		if err != nil {
			return m, fmt.Errorf("store: mail: %w", err)
		}
	case MailUserReply:
		var unsubscribed bool
		if err := db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM email_unsubscribes WHERE subject_id = ?)`, m.SubjectID).Scan(&unsubscribed); err != nil {
			return m, fmt.Errorf("store: mail: %w", err)
		}
		if m.UserReadSeq >= job.UptoSeq || !m.Subject.EmailSigned || m.Subject.Email == "" || unsubscribed {
			return m, ErrMailNotDue
		}
		m.To, m.ToName, author = m.Subject.Email, m.Subject.Name, AuthorAgent
	default:
		return m, fmt.Errorf("store: mail: unknown kind %q", job.Kind)
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE conversation_id = ? AND seq > ? AND seq <= ? AND author = ?
		ORDER BY seq DESC LIMIT ?`, job.ConversationID, job.AfterSeq, job.UptoSeq, author, maxMailedMessages+1)
	if err != nil {
		return m, fmt.Errorf("store: mail: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		msg, err := scanMessage(rows)
		if err != nil {
			return m, fmt.Errorf("store: mail: %w", err)
		}
		m.Messages = append(m.Messages, msg)
	}
	if err := rows.Err(); err != nil {
		return m, fmt.Errorf("store: mail: %w", err)
	}
	if len(m.Messages) == 0 {
		return m, ErrMailNotDue
	}
	if len(m.Messages) > maxMailedMessages {
		m.Messages = m.Messages[:maxMailedMessages]
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE conversation_id = ? AND seq > ? AND seq <= ? AND author = ?`,
			job.ConversationID, job.AfterSeq, job.UptoSeq, author).Scan(&m.More); err != nil {
			return m, fmt.Errorf("store: mail: %w", err)
		}
		m.More -= maxMailedMessages
	}
	for i, j := 0, len(m.Messages)-1; i < j; i, j = i+1, j-1 {
		m.Messages[i], m.Messages[j] = m.Messages[j], m.Messages[i]
	}
	return m, nil
}

// EmailAlerts reports whether a member of the app wants e-mail about
// messages nobody saw.
func (db *DB) EmailAlerts(ctx context.Context, appID, ownerID string) (bool, error) {
	var on bool
	err := db.read.QueryRowContext(ctx, `SELECT email_alerts FROM app_members WHERE app_id = ? AND owner_id = ?`, appID, ownerID).Scan(&on)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("store: email alerts: %w", err)
	}
	return on, nil
}

// SetEmailAlerts turns a member's e-mail about unseen messages on or off.
func (db *DB) SetEmailAlerts(ctx context.Context, appID, ownerID string, on bool) error {
	res, err := db.write.ExecContext(ctx, `UPDATE app_members SET email_alerts = ? WHERE app_id = ? AND owner_id = ?`, on, appID, ownerID)
	if err != nil {
		return fmt.Errorf("store: email alerts: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// maxEmailWait bounds an app's waits.
const maxEmailWait = 7 * 24 * time.Hour

// SetEmailWaits sets how long the app's messages may go unseen before
// they are e-mailed, to its members (agent) and to its users (user); zero
// is the server's default.
func (db *DB) SetEmailWaits(ctx context.Context, appID string, agent, user time.Duration) error {
	ms := func(d time.Duration) any {
		if d == 0 {
			return nil
		}
		return d.Milliseconds()
	}
	for _, d := range []time.Duration{agent, user} {
		if d < 0 || d > maxEmailWait || d != 0 && d < time.Minute {
			return &InputError{"a wait before e-mailing is from 1 minute to 7 days"}
		}
	}
	res, err := db.write.ExecContext(ctx, `UPDATE apps SET agent_email_after = ?, user_email_after = ? WHERE id = ?`, ms(agent), ms(user), appID)
	if err != nil {
		return fmt.Errorf("store: email waits: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// unsubscribeAAD binds an unsubscribe token to its purpose.
var unsubscribeAAD = []byte("email-unsubscribe")

// UnsubscribeToken is the token of the unsubscribe link in the e-mails
// to a user: the subject (one user of one app), sealed under the master
// key, so that it needs no sign-in and cannot be made for anybody else.
func (db *DB) UnsubscribeToken(subjectID string) string {
	return db.key.Seal([]byte(subjectID), unsubscribeAAD)
}

// Unsubscribe stops the e-mails to the user a token names, and returns
// the app's name. A token that does not open is ErrNotFound.
func (db *DB) Unsubscribe(ctx context.Context, token string) (string, error) {
	b, err := db.key.Open(token, unsubscribeAAD)
	if err != nil {
		return "", ErrNotFound
	}
	var app string
	err = db.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT a.name FROM subjects s JOIN apps a ON a.id = s.app_id WHERE s.id = ?`, string(b)).Scan(&app)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO email_unsubscribes (subject_id, created_at) VALUES (?, ?) ON CONFLICT (subject_id) DO NOTHING`,
			string(b), db.now().UnixMilli())
		return err
	})
	if err != nil {
		return "", err
	}
	return app, nil
}
