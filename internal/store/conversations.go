package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/webhooks"
)

// Conversation statuses.
const (
	StatusOpen   = "open"
	StatusClosed = "closed"
)

// Conversation is a thread between one subject and the app's agents.
type Conversation struct {
	ID            string
	AppID         string
	SubjectID     string
	Status        string
	CreatedAt     time.Time
	LastMessageAt time.Time
	LastSeq       int64
	UserReadSeq   int64
	Unread        int64 // agent messages the user has not read
	AgentReadSeq  int64 // how far the app's agents have read, shared by all of them
	AgentUnread   bool  // a user message after AgentReadSeq
	// AgentDeliveredSeq is how far the messages reached an agent's open
	// inbox (AgentReadSeq may be further: what was read was delivered).
	AgentDeliveredSeq int64
	LastMessage       *Message // nil for a conversation without messages
	Subject           *Subject // filled in by the app-wide listing
}

// Unread marks need no look at the messages. A user's message sets the
// conversation's user_read_seq to its own seq, an agent's reply sets
// agent_read_seq to its seq, and neither mark ever moves back (the Mark…Read
// functions take the max). So every message after user_read_seq is an
// agent's reply the user has not read, and every message after
// agent_read_seq is a user's message no agent has read: the counts are
// differences of seqs, with no subquery per conversation in a list.
// TestUnreadMarksMatchTheMessages checks them against the messages.
//
// agentUnread is true for a conversation c with a user message no agent
// has read.
const agentUnread = `(c.last_seq > c.agent_read_seq)`

const conversationColumns = `c.id, c.app_id, c.subject_id, c.status, c.created_at, c.last_message_at, c.last_seq, c.user_read_seq,
	c.last_seq - c.user_read_seq,
	c.agent_read_seq, ` + agentUnread + `, c.agent_delivered_seq,
	lm.id, lm.seq, lm.author, lm.author_name, coalesce(lm.author_owner_id, ''), lm.body, lm.created_at`

const conversationJoins = `FROM conversations c
	LEFT JOIN messages lm ON lm.conversation_id = c.id AND lm.seq = c.last_seq`

func scanConversation(sc interface{ Scan(...any) error }, extra ...any) (Conversation, error) {
	var c Conversation
	var created, last int64
	var lmID, lmAuthor, lmName, lmOwner, lmBody sql.NullString
	var lmSeq, lmCreated sql.NullInt64
	dest := append([]any{&c.ID, &c.AppID, &c.SubjectID, &c.Status, &created, &last, &c.LastSeq, &c.UserReadSeq, &c.Unread,
		&c.AgentReadSeq, &c.AgentUnread, &c.AgentDeliveredSeq, &lmID, &lmSeq, &lmAuthor, &lmName, &lmOwner, &lmBody, &lmCreated}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return c, err
	}
	c.CreatedAt, c.LastMessageAt = fromMillis(created), fromMillis(last)
	if lmID.Valid {
		c.LastMessage = &Message{ID: lmID.String, ConversationID: c.ID, Seq: lmSeq.Int64, Author: lmAuthor.String,
			AuthorName: lmName.String, AuthorOwnerID: lmOwner.String, Body: lmBody.String, CreatedAt: fromMillis(lmCreated.Int64)}
	}
	return c, nil
}

// SubjectConversations lists a subject's conversations, newest activity first.
func (db *DB) SubjectConversations(ctx context.Context, subjectID string, limit int) ([]Conversation, error) {
	rows, err := db.readRows(ctx, `SELECT `+conversationColumns+` `+conversationJoins+`
		WHERE c.subject_id = ? ORDER BY c.last_message_at DESC, c.id LIMIT ?`, subjectID, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: conversations: %w", err)
	}
	defer rows.Close()
	var out []Conversation
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, fmt.Errorf("store: conversations: %w", err)
		}
		out = append(out, c)
	}
	return out, rowsErr(rows)
}

// ConversationFilter narrows the app-wide listing.
type ConversationFilter struct {
	Status string // "", "open" or "closed"
	Limit  int
	After  *ConversationCursor // for the next page: only what is listed after this
	// Query keeps the conversations whose user (name, e-mail, user_id) or
	// messages have every word of it, from the full-text indexes.
	Query string
}

// ConversationCursor is a place in the app-wide listing: the last
// conversation of the page before.
type ConversationCursor struct {
	LastMessageAt time.Time
	ID            string
}

// AppConversations lists an app's conversations with their subjects,
// newest activity first.
func (db *DB) AppConversations(ctx context.Context, appID string, f ConversationFilter) ([]Conversation, error) {
	q, args, ok := db.appConversationsQuery(appID, f)
	if !ok {
		return nil, nil // a search of punctuation alone: nothing has no words
	}
	rows, err := db.readRows(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: app conversations: %w", err)
	}
	defer rows.Close()
	var out []Conversation
	for rows.Next() {
		var s Subject
		var seen int64
		c, err := scanConversation(rows, &s.Kind, &s.UserID, &s.Email, &s.Name, &seen, &s.LastPageURL, &s.EmailSigned, &s.NameSigned)
		if err != nil {
			return nil, fmt.Errorf("store: app conversations: %w", err)
		}
		s.ID, s.LastSeenAt = c.SubjectID, fromMillis(seen)
		c.Subject = &s
		out = append(out, c)
	}
	return out, rowsErr(rows)
}

// appConversationsQuery is AppConversations' SQL; ok is false for a
// search with no words in it.
func (db *DB) appConversationsQuery(appID string, f ConversationFilter) (q string, args []any, ok bool) {
	q = `SELECT ` + conversationColumns + `, s.kind, s.user_id, s.email, s.name, s.last_seen_at, s.last_page_url, s.email_signed, s.name_signed ` + conversationJoins + `
		JOIN subjects s ON s.id = c.subject_id
		WHERE c.app_id = ?`
	args = []any{appID}
	if f.Status != "" {
		q += ` AND c.status = ?`
		args = append(args, f.Status)
	}
	if a := f.After; a != nil {
		q += ` AND (c.last_message_at < ? OR (c.last_message_at = ? AND c.id > ?))`
		args = append(args, a.LastMessageAt.UnixMilli(), a.LastMessageAt.UnixMilli(), a.ID)
	}
	if words := searchWords(f.Query); len(words) > 0 {
		cond, more := db.searchFilter(appID, words)
		q += cond
		args = append(args, more...)
	} else if strings.TrimSpace(f.Query) != "" {
		return "", nil, false
	}
	q += ` ORDER BY c.last_message_at DESC, c.id LIMIT ?`
	return q, append(args, clampLimit(f.Limit)), true
}

// SubjectConversation returns one of the subject's conversations.
func (db *DB) SubjectConversation(ctx context.Context, subjectID, id string) (Conversation, error) {
	return db.conversationWhere(ctx, `c.id = ? AND c.subject_id = ?`, id, subjectID)
}

// AppConversation returns one of the app's conversations.
func (db *DB) AppConversation(ctx context.Context, appID, id string) (Conversation, error) {
	return db.conversationWhere(ctx, `c.id = ? AND c.app_id = ?`, id, appID)
}

func (db *DB) conversationWhere(ctx context.Context, where string, args ...any) (Conversation, error) {
	c, err := scanConversation(db.readRow(ctx, `SELECT `+conversationColumns+` `+conversationJoins+` WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, ErrNotFound
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("store: conversation: %w", err)
	}
	return c, nil
}

// MarkRead records that the subject has read conversation id up to seq.
// The mark only moves forward and never past the last message.
func (db *DB) MarkRead(ctx context.Context, subjectID, id string, seq int64) error {
	return db.group(ctx, func(ctx context.Context, tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE conversations SET user_read_seq = CASE WHEN ? <= user_read_seq THEN user_read_seq WHEN ? >= last_seq THEN last_seq ELSE ? END,
			user_unseen_since = CASE WHEN ? >= last_seq THEN NULL ELSE user_unseen_since END
			WHERE id = ? AND subject_id = ?`, seq, seq, seq, seq, id, subjectID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// SetConversationStatus opens or closes one of the app's conversations.
func (db *DB) SetConversationStatus(ctx context.Context, appID, id, status string) (Conversation, error) {
	if status != StatusOpen && status != StatusClosed {
		return Conversation{}, &InputError{fmt.Sprintf("status must be \"open\" or \"closed\", not %q", status)}
	}
	var c Conversation
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var was string
		err := tx.QueryRowContext(ctx, `SELECT status FROM conversations WHERE id = ? AND app_id = ?`+db.forUpdate(), id, appID).Scan(&was)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET status = ? WHERE id = ?`, status, id); err != nil {
			return err
		}
		c, err = scanConversation(tx.QueryRowContext(ctx, `SELECT `+conversationColumns+` `+conversationJoins+` WHERE c.id = ?`, id))
		if err != nil || was == status {
			return err
		}
		subs, err := db.webhookSubscribers(ctx, tx, appID)
		if err != nil {
			return err
		}
		event := webhooks.ConversationClosed
		if status == StatusOpen {
			event = webhooks.ConversationReopened
		}
		return db.recordEvents(ctx, tx, subs, c, db.now(), []webhooks.Payload{{Type: event}})
	})
	if err != nil {
		return Conversation{}, err
	}
	return c, nil
}

// MarkAgentRead records that the app's agents have read conversation id up
// to seq. Like MarkRead, the mark only moves forward and stops at the last
// message.
func (db *DB) MarkAgentRead(ctx context.Context, appID, id string, seq int64) error {
	return db.group(ctx, func(ctx context.Context, tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE conversations SET agent_read_seq = CASE WHEN ? <= agent_read_seq THEN agent_read_seq WHEN ? >= last_seq THEN last_seq ELSE ? END,
			agent_unseen_since = CASE WHEN ? >= last_seq THEN NULL ELSE agent_unseen_since END
			WHERE id = ? AND app_id = ?`, seq, seq, seq, seq, id, appID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// UnreadCount is the number of agent messages the subject has not read.
func (db *DB) UnreadCount(ctx context.Context, subjectID string) (int64, error) {
	var n int64
	err := db.readRow(ctx, `SELECT coalesce(sum(c.last_seq - c.user_read_seq), 0) FROM conversations c WHERE c.subject_id = ?`, subjectID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: unread count: %w", err)
	}
	return n, nil
}

func clampLimit(n int) int {
	if n <= 0 || n > 200 {
		return 200
	}
	return n
}

func rowsErr(rows *sql.Rows) error {
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
