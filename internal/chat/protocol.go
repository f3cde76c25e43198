// Package chat runs the widget's websocket and the dashboard's agent
// websocket: the frame protocol (documented in docs/protocol.md), one read
// pump per connection (and a writer while it has frames queued), and a hub
// that fans committed messages out to a subject's open widgets and to the
// app's agents.
package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/store"
)

// Limits of the widget protocol.
const (
	MaxFrameBytes    = 16 << 10 // a frame larger than this closes the socket (1009)
	MaxBodyBytes     = 4000     // longest message body, in UTF-8 bytes
	maxClientIDBytes = 64
	maxConvIDBytes   = 64
)

// Client frame types.
const (
	TypeAuth   = "auth"
	TypeList   = "list"
	TypeOpen   = "open"
	TypeSend   = "send"
	TypeTyping = "typing"
	TypeRead   = "read"
)

// ClientFrame is any frame a widget sends; Type says which fields matter.
type ClientFrame struct {
	Type           string `json:"type"`
	Token          string `json:"token,omitempty"`
	ConversationID string `json:"conversation_id,omitempty"`
	AfterSeq       int64  `json:"after_seq,omitempty"`
	Seq            int64  `json:"seq,omitempty"`
	ClientMsgID    string `json:"client_msg_id,omitempty"`
	Body           string `json:"body,omitempty"`
	Typing         bool   `json:"typing,omitempty"`
	// AttachmentIDs are the user's uploads a send carries
	// (POST /api/widget/attachments).
	AttachmentIDs []string `json:"attachment_ids,omitempty"`
}

// FrameError is a refusal of one frame; it becomes an error frame and the
// connection stays open.
type FrameError struct {
	Code        string
	Message     string
	ClientMsgID string
}

func (e *FrameError) Error() string { return e.Code + ": " + e.Message }

func badFrame(format string, args ...any) *FrameError {
	return &FrameError{Code: "bad_frame", Message: fmt.Sprintf(format, args...)}
}

// DecodeClientFrame parses and validates one frame. It accepts exactly the
// shapes in docs/protocol.md: unknown fields, trailing data and fields of
// the wrong type are refused.
func DecodeClientFrame(data []byte) (ClientFrame, *FrameError) {
	var f ClientFrame
	if len(data) > MaxFrameBytes {
		return f, &FrameError{Code: "frame_too_large", Message: fmt.Sprintf("frames are limited to %d bytes", MaxFrameBytes)}
	}
	if !utf8.Valid(data) {
		return f, badFrame("frame is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return ClientFrame{}, badFrame("frame is not a valid JSON object of a known shape: %s", jsonReason(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return ClientFrame{}, badFrame("trailing data after the JSON object")
	}
	return f, validate(&f)
}

func jsonReason(err error) string {
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

func validate(f *ClientFrame) *FrameError {
	switch f.Type {
	case TypeAuth:
		if f.Token == "" {
			return badFrame("auth needs a token")
		}
	case TypeList:
	case TypeOpen:
		if err := checkConvID(f.ConversationID, true); err != nil {
			return err
		}
		if f.AfterSeq < 0 {
			return badFrame("after_seq must not be negative")
		}
	case TypeSend:
		if err := checkConvID(f.ConversationID, false); err != nil {
			return err
		}
		if f.ClientMsgID == "" || len(f.ClientMsgID) > maxClientIDBytes || !isIDText(f.ClientMsgID) {
			return badFrame("send needs a client_msg_id of 1-%d letters, digits, '-' or '_'", maxClientIDBytes)
		}
		if err := checkMessage(f.Body, f.AttachmentIDs); err != nil {
			err.ClientMsgID = f.ClientMsgID
			return err
		}
	case TypeTyping:
		if err := checkConvID(f.ConversationID, true); err != nil {
			return err
		}
	case TypeRead:
		if err := checkConvID(f.ConversationID, true); err != nil {
			return err
		}
		if f.Seq < 0 {
			return badFrame("seq must not be negative")
		}
	case "":
		return badFrame("frame has no type")
	default:
		return badFrame("unknown frame type %q", truncate(f.Type, 32))
	}
	return nil
}

func checkConvID(id string, required bool) *FrameError {
	if id == "" && !required {
		return nil
	}
	if id == "" || len(id) > maxConvIDBytes || !isIDText(id) {
		return badFrame("conversation_id must be a conversation id")
	}
	return nil
}

// CheckBody validates a message body; the server API uses the same rule.
func CheckBody(body string) error {
	if err := checkBody(body); err != nil {
		return errors.New(err.Message)
	}
	return nil
}

// CheckMessage validates a message of body and attachmentIDs, which may
// be files alone; agents' messages follow the same rule as users'.
func CheckMessage(body string, attachmentIDs []string) error {
	if err := checkMessage(body, attachmentIDs); err != nil {
		return errors.New(err.Message)
	}
	return nil
}

func checkMessage(body string, attachmentIDs []string) *FrameError {
	if len(attachmentIDs) > maxAttachments {
		return &FrameError{Code: "bad_frame", Message: fmt.Sprintf("a message carries at most %d attachments", maxAttachments)}
	}
	for _, id := range attachmentIDs {
		if id == "" || len(id) > maxClientIDBytes || !isIDText(id) {
			return &FrameError{Code: "bad_frame", Message: "attachment_ids are the ids uploads were given"}
		}
	}
	if len(attachmentIDs) > 0 && body == "" {
		return nil
	}
	return checkBody(body)
}

func checkBody(body string) *FrameError {
	if strings.TrimSpace(body) == "" {
		return &FrameError{Code: "empty_message", Message: "message is empty"}
	}
	if len(body) > MaxBodyBytes {
		return &FrameError{Code: "message_too_long", Message: fmt.Sprintf("messages are limited to %d bytes", MaxBodyBytes)}
	}
	for _, r := range body {
		if r == utf8.RuneError || (unicode.IsControl(r) && r != '\n' && r != '\t') {
			return &FrameError{Code: "bad_message", Message: "message contains control characters"}
		}
	}
	return nil
}

func isIDText(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Server frames.

// MessageJSON is a message as both the widget protocol and the server API
// show it.
type MessageJSON struct {
	ID             string           `json:"id"`
	ConversationID string           `json:"conversation_id"`
	Seq            int64            `json:"seq"`
	Author         string           `json:"author"`
	AuthorName     string           `json:"author_name,omitempty"`
	Body           string           `json:"body"`
	ClientMsgID    string           `json:"client_msg_id,omitempty"`
	CreatedAt      time.Time        `json:"created_at"`
	Attachments    []AttachmentJSON `json:"attachments,omitempty"`
}

// maxAttachments bounds the files one message carries (as the store does).
const maxAttachments = 10

// AttachmentJSON is a file a message carries. URL downloads it with the
// session token in the Authorization header (never in the URL).
type AttachmentJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
	URL  string `json:"url"`
}

// NewAttachmentJSON is a stored attachment as the widget sees it.
func NewAttachmentJSON(a store.Attachment) AttachmentJSON {
	return AttachmentJSON{ID: a.ID, Name: a.Name, Type: a.Type, Size: a.Size, URL: "/api/widget/attachments/" + a.ID}
}

// NewMessageJSON converts a stored message.
func NewMessageJSON(m store.Message) MessageJSON {
	out := MessageJSON{ID: m.ID, ConversationID: m.ConversationID, Seq: m.Seq, Author: m.Author,
		AuthorName: m.AuthorName, Body: m.Body, ClientMsgID: m.ClientMsgID, CreatedAt: m.CreatedAt}
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, NewAttachmentJSON(a))
	}
	return out
}

// ConversationJSON is a conversation as the widget sees it.
type ConversationJSON struct {
	ID            string       `json:"id"`
	Status        string       `json:"status"`
	CreatedAt     time.Time    `json:"created_at"`
	LastMessageAt time.Time    `json:"last_message_at"`
	LastSeq       int64        `json:"last_seq"`
	ReadSeq       int64        `json:"read_seq"`
	Unread        int64        `json:"unread"`
	LastMessage   *MessageJSON `json:"last_message,omitempty"`
	// AgentDeliveredSeq and AgentReadSeq are how far the user's messages
	// reached an agent's open inbox, and were read there: the widget's
	// delivered and read marks.
	AgentDeliveredSeq int64 `json:"agent_delivered_seq"`
	AgentReadSeq      int64 `json:"agent_read_seq"`
}

func newConversationJSON(c store.Conversation) ConversationJSON {
	r := newReceipt(c)
	out := ConversationJSON{ID: c.ID, Status: c.Status, CreatedAt: c.CreatedAt, LastMessageAt: c.LastMessageAt,
		LastSeq: c.LastSeq, ReadSeq: c.UserReadSeq, Unread: c.Unread, AgentDeliveredSeq: r.AgentDeliveredSeq, AgentReadSeq: r.AgentReadSeq}
	if c.LastMessage != nil {
		m := NewMessageJSON(*c.LastMessage)
		out.LastMessage = &m
	}
	return out
}

type welcomeFrame struct {
	Type      string       `json:"type"`
	Verified  bool         `json:"verified"`
	Anonymous bool         `json:"anonymous"`
	Unread    int64        `json:"unread"`
	ExpiresAt time.Time    `json:"expires_at"`
	Presence  PresenceJSON `json:"presence"`
}

type conversationsFrame struct {
	Type          string             `json:"type"`
	Conversations []ConversationJSON `json:"conversations"`
}

type historyFrame struct {
	Type           string        `json:"type"`
	ConversationID string        `json:"conversation_id"`
	Messages       []MessageJSON `json:"messages"`
	HasMore        bool          `json:"has_more"`
}

type ackFrame struct {
	Type         string           `json:"type"`
	ClientMsgID  string           `json:"client_msg_id"`
	Duplicate    bool             `json:"duplicate"`
	Message      MessageJSON      `json:"message"`
	Conversation ConversationJSON `json:"conversation"`
}

type messageFrame struct {
	Type    string      `json:"type"`
	Message MessageJSON `json:"message"`
}

type typingFrame struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	Author         string `json:"author"`
	AuthorName     string `json:"author_name,omitempty"`
	Typing         bool   `json:"typing"`
}

// Agent socket frames.

type agentWelcomeFrame struct {
	Type string `json:"type"`
}

type agentMessageFrame struct {
	Type           string      `json:"type"`
	ConversationID string      `json:"conversation_id"`
	Message        MessageJSON `json:"message"`
}

type conversationFrame struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	Status         string `json:"status"`
}

// receiptFrame tells the user's widgets how far the agents got.
type receiptFrame struct {
	Type              string `json:"type"`
	ConversationID    string `json:"conversation_id"`
	AgentDeliveredSeq int64  `json:"agent_delivered_seq"`
	AgentReadSeq      int64  `json:"agent_read_seq"`
}

// newReceipt is c's marks; what was read was delivered.
func newReceipt(c store.Conversation) receiptFrame {
	return receiptFrame{Type: "receipt", ConversationID: c.ID, AgentDeliveredSeq: max(c.AgentDeliveredSeq, c.AgentReadSeq), AgentReadSeq: c.AgentReadSeq}
}

type unreadFrame struct {
	Type  string `json:"type"`
	Count int64  `json:"count"`
}

type errorFrame struct {
	Type         string `json:"type"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	ClientMsgID  string `json:"client_msg_id,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every frame type above marshals; a failure is a programming error.
		panic("chat: encode frame: " + err.Error())
	}
	return b
}
