package chat

import (
	"context"
	"errors"

	"github.com/parley-chat/parley/internal/store"
)

var errNoConversation = &FrameError{Code: "not_found", Message: "no such conversation"}

// handle carries out one valid frame. Every lookup is scoped by the
// session's subject: an id the client sends can only name the subject's
// own conversations.
func (c *Client) handle(ctx context.Context, f ClientFrame) *FrameError {
	switch f.Type {
	case TypeAuth:
		return &FrameError{Code: "bad_frame", Message: "already authenticated"}
	case TypeList:
		return c.list(ctx)
	case TypeOpen:
		return c.open(ctx, f)
	case TypeSend:
		return c.sendMessage(ctx, f)
	case TypeTyping:
		conv, err := c.hub.store.SubjectConversation(ctx, c.session.SubjectID, f.ConversationID)
		if err != nil {
			return c.storeError(err)
		}
		c.hub.userTyping(conv, f.Typing)
		return nil
	case TypeRead:
		if err := c.hub.store.MarkRead(ctx, c.session.SubjectID, f.ConversationID, f.Seq); err != nil {
			return c.storeError(err)
		}
		c.hub.unreadChanged(ctx, c.session.AppID, c.session.SubjectID)
		return nil
	}
	return &FrameError{Code: "bad_frame", Message: "unknown frame type"}
}

func (c *Client) list(ctx context.Context) *FrameError {
	convs, err := c.hub.store.SubjectConversations(ctx, c.session.SubjectID, 50)
	if err != nil {
		return c.storeError(err)
	}
	out := conversationsFrame{Type: "conversations", Conversations: make([]ConversationJSON, 0, len(convs))}
	for _, cv := range convs {
		out.Conversations = append(out.Conversations, newConversationJSON(cv))
	}
	c.queue(encode(out))
	return nil
}

func (c *Client) open(ctx context.Context, f ClientFrame) *FrameError {
	conv, err := c.hub.store.SubjectConversation(ctx, c.session.SubjectID, f.ConversationID)
	if err != nil {
		return c.storeError(err)
	}
	page, err := c.hub.store.Messages(ctx, conv, f.AfterSeq, historyMax)
	if err != nil {
		return c.storeError(err)
	}
	out := historyFrame{Type: "history", ConversationID: conv.ID, Messages: make([]MessageJSON, 0, len(page.Messages)), HasMore: page.HasMore}
	for _, m := range page.Messages {
		out.Messages = append(out.Messages, NewMessageJSON(m))
	}
	c.queue(encode(out))
	return nil
}

func (c *Client) sendMessage(ctx context.Context, f ClientFrame) *FrameError {
	c.sending.Store(&f.ClientMsgID)
	defer c.sending.Store(nil)
	p, err := c.hub.store.AddUserMessage(ctx, store.UserMessage{AppID: c.session.AppID, SubjectID: c.session.SubjectID,
		ConversationID: f.ConversationID, ClientMsgID: f.ClientMsgID, Body: f.Body, AttachmentIDs: f.AttachmentIDs})
	if err != nil {
		fe := c.storeError(err)
		fe.ClientMsgID = f.ClientMsgID
		return fe
	}
	// The ack goes out only now, after the commit: an acked message is durable.
	msg := NewMessageJSON(p.Message)
	c.queue(encode(ackFrame{Type: "ack", ClientMsgID: f.ClientMsgID, Duplicate: p.Duplicate, Message: msg,
		Conversation: newConversationJSON(p.Conversation)}))
	if !p.Duplicate {
		c.hub.committed(ctx, p, c)
	}
	return nil
}

func (c *Client) storeError(err error) *FrameError {
	if errors.Is(err, store.ErrNotFound) {
		return &FrameError{Code: errNoConversation.Code, Message: errNoConversation.Message}
	}
	if ie := new(store.InputError); errors.As(err, &ie) {
		code := "bad_frame"
		if errors.Is(err, store.ErrAttachmentUnknown) {
			code = "attachment_unknown"
		}
		return &FrameError{Code: code, Message: ie.Msg}
	}
	c.log().Error("widget socket", "err", err)
	return &FrameError{Code: "unavailable", Message: "the server could not do that; try again"}
}
