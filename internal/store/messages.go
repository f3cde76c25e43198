package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/identity"
	"github.com/parley-chat/parley/internal/webhooks"
)

// Message authors.
const (
	AuthorUser  = "user"
	AuthorAgent = "agent"
)

// Message is one committed chat message.
type Message struct {
	ID             string
	ConversationID string
	Seq            int64
	Author         string
	AuthorName     string
	// AuthorOwnerID is the owner who wrote an agent message in the
	// dashboard; "" for the server API's replies and users' messages.
	AuthorOwnerID string
	ClientMsgID   string
	Body          string
	CreatedAt     time.Time
	// Attachments are the files the message carries.
	Attachments []Attachment
}

// Posted is the result of adding a message: the stored message, its
// conversation after the write, and whether it was already there (a resend).
type Posted struct {
	Message      Message
	Conversation Conversation
	Duplicate    bool
}

// UserMessage is a message a widget user sends.
type UserMessage struct {
	AppID     string
	SubjectID string
	// ConversationID is empty to start a new conversation with this message.
	ConversationID string
	ClientMsgID    string
	Body           string
	// AttachmentIDs are uploads of the user's that the message carries.
	AttachmentIDs []string
}

// AddUserMessage commits a user's message and returns once it is durable
// (it shares its commit with the others waiting: see writer.go). A resend
// with a client_msg_id the subject already used returns the stored message
// instead of a second copy. A conversation outside the subject's scope is
// ErrNotFound. If ctx ends first, the message is either committed whole or
// not at all, and the caller gets ctx's error without knowing which: a
// resend with the same client_msg_id finds out.
func (db *DB) AddUserMessage(ctx context.Context, in UserMessage) (Posted, error) {
	if db.postgres && in.ConversationID != "" && len(in.AttachmentIDs) == 0 {
		start := time.Now()
		p, ok, err := db.addUserMessageAtOnce(ctx, in)
		if ok {
			db.observeCommit(start, 1)
			db.stats.userMessages.Add(1)
		}
		if ok || err != nil {
			return p, err
		}
	}
	var p Posted
	err := db.group(ctx, func(ctx context.Context, tx txn) error {
		var err error
		p, err = db.addUserMessage(ctx, tx, in)
		return err
	})
	if err != nil {
		return Posted{}, err
	}
	if !p.Duplicate {
		db.stats.userMessages.Add(1)
	}
	return p, nil
}

// addUserMessageAtOnce is AddUserMessage on PostgreSQL for the common
// case, a new message in an existing conversation: one statement, so one
// round trip and one commit, instead of a transaction of five. ok false
// means it was not that case (a resend, a conversation out of scope, a
// resend committing beside it on another node, or an app with webhook
// endpoints, whose events the transaction records) and AddUserMessage's
// transaction must decide.
func (db *DB) addUserMessageAtOnce(ctx context.Context, in UserMessage) (Posted, bool, error) {
	now := db.now().UnixMilli()
	id := identity.NewID("msg_")
	noEndpoints := ""
	if db.outbox != nil {
		noEndpoints = ` AND NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE app_id = conversations.app_id AND disabled_at IS NULL)`
	}
	c, err := scanPosted(db.write.QueryRowContext(ctx, `WITH c AS (
			UPDATE conversations SET last_seq = last_seq + 1, user_read_seq = last_seq + 1, last_message_at = ?, status = 'open',
				`+userWrote+`
			WHERE id = ? AND subject_id = ? AND app_id = ?
				AND NOT EXISTS (SELECT 1 FROM messages WHERE author_subject_id = ? AND client_msg_id = ?)`+noEndpoints+`
			RETURNING `+postedColumns+`
		), m AS (
			INSERT INTO messages (id, conversation_id, seq, author, author_subject_id, client_msg_id, body, created_at)
			SELECT ?, id, last_seq, 'user', ?, ?, ?, ? FROM c
		)
		SELECT * FROM c`,
		now, now, now, in.ConversationID, in.SubjectID, in.AppID, in.SubjectID, in.ClientMsgID,
		id, in.SubjectID, in.ClientMsgID, in.Body, now))
	if errors.Is(err, sql.ErrNoRows) || retryablePG(err) {
		return Posted{}, false, nil
	}
	if err != nil {
		return Posted{}, false, wrapTxError(err)
	}
	m := Message{ID: id, ConversationID: in.ConversationID, Seq: c.LastSeq, Author: AuthorUser,
		ClientMsgID: in.ClientMsgID, Body: in.Body, CreatedAt: fromMillis(now)}
	return Posted{Message: m, Conversation: c.withLast(m)}, true, nil
}

// addUserMessage is AddUserMessage's work inside the writer's transaction.
func (db *DB) addUserMessage(ctx context.Context, tx txn, in UserMessage) (Posted, error) {
	var p Posted
	var existing string
	err := tx.QueryRowContext(ctx, `SELECT id FROM messages WHERE author_subject_id = ? AND client_msg_id = ?`, in.SubjectID, in.ClientMsgID).Scan(&existing)
	if err == nil {
		p.Duplicate = true
		p.Message, err = messageByID(ctx, tx, existing)
		if err != nil {
			return p, err
		}
		if err := loadAttachments(ctx, sqlTx(tx), []*Message{&p.Message}); err != nil {
			return p, err
		}
		return p, conversationForPost(ctx, tx, &p)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return p, err
	}
	subs, err := db.webhookSubscribers(ctx, tx, in.AppID)
	if err != nil {
		return p, err
	}
	wasClosed, err := db.closedBeforeWrite(ctx, tx, subs, in)
	if err != nil {
		return p, err
	}
	now := db.now().UnixMilli()
	convID := in.ConversationID
	if convID == "" {
		convID = identity.NewID("cnv_")
		_, err := tx.ExecContext(ctx, `INSERT INTO conversations (id, app_id, subject_id, created_at, last_message_at) VALUES (?, ?, ?, ?, ?)`,
			convID, in.AppID, in.SubjectID, now, now)
		if err != nil {
			return p, err
		}
	}
	// Writing reopens a closed conversation, as users expect.
	c, err := scanPosted(tx.QueryRowContext(ctx, `UPDATE conversations SET last_seq = last_seq + 1, user_read_seq = last_seq + 1, last_message_at = ?, status = 'open',
		`+userWrote+` WHERE id = ? AND subject_id = ? AND app_id = ? RETURNING `+postedColumns, now, now, now, convID, in.SubjectID, in.AppID))
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, err
	}
	p.Message = Message{ID: identity.NewID("msg_"), ConversationID: convID, Seq: c.LastSeq, Author: AuthorUser,
		ClientMsgID: in.ClientMsgID, Body: in.Body, CreatedAt: fromMillis(now)}
	_, err = tx.ExecContext(ctx, `INSERT INTO messages (id, conversation_id, seq, author, author_subject_id, client_msg_id, body, created_at)
		VALUES (?, ?, ?, 'user', ?, ?, ?, ?)`, p.Message.ID, convID, c.LastSeq, in.SubjectID, in.ClientMsgID, in.Body, now)
	if err != nil {
		return p, err
	}
	if err := attach(ctx, tx, in.AppID, in.SubjectID, in.AttachmentIDs, &p.Message); err != nil {
		return p, err
	}
	p.Conversation = c.withLast(p.Message)
	var events []webhooks.Payload
	if in.ConversationID == "" {
		events = append(events, webhooks.Payload{Type: webhooks.ConversationCreated})
	}
	if wasClosed {
		events = append(events, webhooks.Payload{Type: webhooks.ConversationReopened})
	}
	events = append(events, messageEvent(p.Message))
	return p, db.recordEvents(ctx, tx, subs, c, fromMillis(now), events)
}

// closedBeforeWrite reports whether the conversation a user writes to
// was closed (the message reopens it), when some endpoint may want to
// know. A conversation out of the user's scope is ErrNotFound.
func (db *DB) closedBeforeWrite(ctx context.Context, tx txn, subs []subscriber, in UserMessage) (bool, error) {
	if len(subs) == 0 || in.ConversationID == "" {
		return false, nil
	}
	var status string
	// Locked, so a close committing meanwhile is either before this
	// write (which then reopens it, and says so) or after it.
	err := tx.QueryRowContext(ctx, `SELECT status FROM conversations WHERE id = ? AND subject_id = ? AND app_id = ?`+db.forUpdate(),
		in.ConversationID, in.SubjectID, in.AppID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	return status == StatusClosed, err
}

// AddAgentMessage commits a reply from the site owner's side to one of the
// app's conversations, carrying the agents' uploads attachmentIDs, and
// marks it read for agents: whoever answered has seen what they answered.
// A conversation of another app is ErrNotFound.
func (db *DB) AddAgentMessage(ctx context.Context, appID, conversationID, authorName, body string, attachmentIDs ...string) (Posted, error) {
	return db.addAgentMessage(ctx, appID, conversationID, "", authorName, body, attachmentIDs)
}

// AddOwnerReply is AddAgentMessage for a reply an owner wrote in the
// dashboard, which the message records.
func (db *DB) AddOwnerReply(ctx context.Context, appID, conversationID, ownerID, authorName, body string, attachmentIDs ...string) (Posted, error) {
	return db.addAgentMessage(ctx, appID, conversationID, ownerID, authorName, body, attachmentIDs)
}

func (db *DB) addAgentMessage(ctx context.Context, appID, conversationID, ownerID, authorName, body string, attachmentIDs []string) (Posted, error) {
	var owner any
	if ownerID != "" {
		owner = ownerID
	}
	var p Posted
	err := db.group(ctx, func(ctx context.Context, tx txn) error {
		p = Posted{} // a failed attempt leaves nothing behind
		now := db.now().UnixMilli()
		c, err := scanPosted(tx.QueryRowContext(ctx, `UPDATE conversations SET last_seq = last_seq + 1, agent_read_seq = last_seq + 1, agent_delivered_seq = last_seq + 1, last_message_at = ?,
			agent_unseen_since = NULL, user_unseen_since = coalesce(user_unseen_since, ?)
			WHERE id = ? AND app_id = ? RETURNING `+postedColumns, now, now, conversationID, appID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		p.Message = Message{ID: identity.NewID("msg_"), ConversationID: conversationID, Seq: c.LastSeq, Author: AuthorAgent,
			AuthorName: authorName, AuthorOwnerID: ownerID, Body: body, CreatedAt: fromMillis(now)}
		_, err = tx.ExecContext(ctx, `INSERT INTO messages (id, conversation_id, seq, author, author_name, author_owner_id, body, created_at)
			VALUES (?, ?, ?, 'agent', ?, ?, ?, ?)`, p.Message.ID, conversationID, c.LastSeq, authorName, owner, body, now)
		if err != nil {
			return err
		}
		if err := attach(ctx, tx, appID, "", attachmentIDs, &p.Message); err != nil {
			return err
		}
		p.Conversation = c.withLast(p.Message)
		subs, err := db.webhookSubscribers(ctx, tx, appID)
		if err != nil {
			return err
		}
		return db.recordEvents(ctx, tx, subs, c, fromMillis(now), []webhooks.Payload{messageEvent(p.Message)})
	})
	if err != nil {
		return Posted{}, err
	}
	db.stats.agentMessages.Add(1)
	return p, nil
}

// userWrote is what a user's message does to the e-mail clocks
// (email_alerts.go): the agents have a message to see, since now unless
// one was already waiting; the user has seen everything. And when an
// agent has the inbox open (its presence has not expired at now), the
// message reached them: it is delivered.
const userWrote = `agent_unseen_since = coalesce(agent_unseen_since, ?), user_unseen_since = NULL,
	agent_delivered_seq = CASE WHEN EXISTS (SELECT 1 FROM agent_presence p WHERE p.app_id = conversations.app_id AND p.expires_at > ?)
		THEN last_seq + 1 ELSE agent_delivered_seq END`

// postedColumns are the conversation's columns as the UPDATE that posts a
// message returns them: what scanConversation reads, less the last
// message, which is the one being posted. Reading them back this way saves
// a SELECT with a join per message in the group commit.
const postedColumns = `id, app_id, subject_id, status, created_at, last_message_at, last_seq, user_read_seq,
	last_seq - user_read_seq, agent_read_seq, last_seq > agent_read_seq, agent_delivered_seq`

func scanPosted(row *sql.Row) (Conversation, error) {
	var c Conversation
	var created, last int64
	err := row.Scan(&c.ID, &c.AppID, &c.SubjectID, &c.Status, &created, &last, &c.LastSeq, &c.UserReadSeq, &c.Unread, &c.AgentReadSeq, &c.AgentUnread,
		&c.AgentDeliveredSeq)
	c.CreatedAt, c.LastMessageAt = fromMillis(created), fromMillis(last)
	return c, err
}

// withLast is c with m as its last message, as conversationColumns read it
// (without the client's message id).
func (c Conversation) withLast(m Message) Conversation {
	m.ClientMsgID = ""
	c.LastMessage = &m
	return c
}

func conversationForPost(ctx context.Context, tx txn, p *Posted) error {
	c, err := scanConversation(tx.QueryRowContext(ctx, `SELECT `+conversationColumns+` `+conversationJoins+` WHERE c.id = ?`, p.Message.ConversationID))
	p.Conversation = c
	return err
}

func messageByID(ctx context.Context, tx txn, id string) (Message, error) {
	return scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, id))
}

const messageColumns = `id, conversation_id, seq, author, author_name, coalesce(client_msg_id, ''), body, created_at`

func scanMessage(sc interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var created int64
	err := sc.Scan(&m.ID, &m.ConversationID, &m.Seq, &m.Author, &m.AuthorName, &m.ClientMsgID, &m.Body, &created)
	m.CreatedAt = fromMillis(created)
	return m, err
}

// MessagePage is a slice of a conversation's messages in seq order.
type MessagePage struct {
	Messages []Message
	HasMore  bool
}

// Messages returns the messages of conversation c after afterSeq, oldest
// first. The caller must have fetched c through a scoped lookup
// (SubjectConversation or AppConversation); that is what keeps one
// subject's or app's ids from reaching another's rows.
func (db *DB) Messages(ctx context.Context, c Conversation, afterSeq int64, limit int) (MessagePage, error) {
	limit = clampLimit(limit)
	rows, err := db.readRows(ctx, `SELECT `+messageColumns+` FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		c.ID, afterSeq, limit+1)
	if err != nil {
		return MessagePage{}, fmt.Errorf("store: messages: %w", err)
	}
	defer rows.Close()
	var page MessagePage
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return MessagePage{}, fmt.Errorf("store: messages: %w", err)
		}
		page.Messages = append(page.Messages, m)
	}
	if len(page.Messages) > limit {
		page.Messages, page.HasMore = page.Messages[:limit], true
	}
	if err := rowsErr(rows); err != nil {
		return MessagePage{}, err
	}
	return page, db.withAttachments(ctx, page.Messages)
}

// withAttachments fills in the attachments of msgs, read in one query.
func (db *DB) withAttachments(ctx context.Context, msgs []Message) error {
	ptrs := make([]*Message, len(msgs))
	for i := range msgs {
		ptrs[i] = &msgs[i]
	}
	if err := loadAttachments(ctx, db.read, ptrs); err != nil {
		return fmt.Errorf("store: messages: %w", err)
	}
	return nil
}
