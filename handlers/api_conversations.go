package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

type conversationStore interface {
	AppConversations(ctx context.Context, appID string, f store.ConversationFilter) ([]store.Conversation, error)
	AppConversation(ctx context.Context, appID, id string) (store.Conversation, error)
	Subject(ctx context.Context, appID, id string) (store.Subject, error)
	Messages(ctx context.Context, c store.Conversation, afterSeq int64, limit int) (store.MessagePage, error)
	AddAgentMessage(ctx context.Context, appID, conversationID, authorName, body string, attachmentIDs ...string) (store.Posted, error)
	SetConversationStatus(ctx context.Context, appID, id, status string) (store.Conversation, error)
}

// Delivery is how committed agent activity reaches open widgets and the
// app's dashboard.
type Delivery interface {
	AgentMessage(ctx context.Context, p store.Posted)
	AgentTyping(c store.Conversation, authorName string, typing bool)
	ConversationChanged(c store.Conversation)
}

// Conversations is the server API for site owners' backends. Every lookup
// is scoped by the app the API key belongs to, so another app's ids are 404.
type Conversations struct {
	Store    conversationStore
	Delivery Delivery
	Uploads  *Uploads
}

type userJSON struct {
	UserID     string    `json:"user_id"`
	Email      string    `json:"email"`
	Name       string    `json:"name"`
	Verified   bool      `json:"verified"`
	Anonymous  bool      `json:"anonymous"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

type conversationJSON struct {
	ID            string            `json:"id"`
	Status        string            `json:"status"`
	CreatedAt     time.Time         `json:"created_at"`
	LastMessageAt time.Time         `json:"last_message_at"`
	MessageCount  int64             `json:"message_count"`
	LastMessage   *chat.MessageJSON `json:"last_message"`
	User          userJSON          `json:"user"`
}

func newConversationJSON(c store.Conversation, s store.Subject) conversationJSON {
	out := conversationJSON{ID: c.ID, Status: c.Status, CreatedAt: c.CreatedAt, LastMessageAt: c.LastMessageAt, MessageCount: c.LastSeq,
		User: userJSON{UserID: s.UserID, Email: s.Email, Name: s.Name, Verified: s.Verified(), Anonymous: s.Anonymous(), LastSeenAt: s.LastSeenAt}}
	if c.LastMessage != nil {
		m := chat.NewMessageJSON(*c.LastMessage)
		out.LastMessage = &m
	}
	return out
}

// List serves GET /api/v1/conversations?status=open|closed|all&limit=N&q=…
// (q: a search of the user's name, e-mail and user_id and the messages).
func (h *Conversations) List(c echo.Context) error {
	f := store.ConversationFilter{}
	switch s := c.QueryParam("status"); s {
	case "", "all":
	case "open", "closed":
		f.Status = s
	default:
		return apiError(http.StatusBadRequest, "invalid_request", "status must be open, closed or all")
	}
	limit, err := intParam(c, "limit", 50, 1, 200)
	if err != nil {
		return err
	}
	f.Limit = int(limit)
	if f.Query = c.QueryParam("q"); len(f.Query) > 200 {
		return apiError(http.StatusBadRequest, "invalid_request", "q is at most 200 bytes")
	}
	convs, err := h.Store.AppConversations(c.Request().Context(), appFrom(c).ID, f)
	if err != nil {
		return err
	}
	out := make([]conversationJSON, 0, len(convs))
	for _, cv := range convs {
		out = append(out, newConversationJSON(cv, *cv.Subject))
	}
	return c.JSON(http.StatusOK, map[string]any{"conversations": out})
}

// Show serves GET /api/v1/conversations/:id.
func (h *Conversations) Show(c echo.Context) error {
	conv, err := h.conversation(c)
	if err != nil {
		return err
	}
	return h.show(c, conv)
}

func (h *Conversations) show(c echo.Context, conv store.Conversation) error {
	subj, err := h.Store.Subject(c.Request().Context(), conv.AppID, conv.SubjectID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newConversationJSON(conv, subj))
}

// Messages serves GET /api/v1/conversations/:id/messages?after_seq=N&limit=N.
func (h *Conversations) Messages(c echo.Context) error {
	conv, err := h.conversation(c)
	if err != nil {
		return err
	}
	after, err := intParam(c, "after_seq", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	limit, err := intParam(c, "limit", 100, 1, 200)
	if err != nil {
		return err
	}
	page, err := h.Store.Messages(c.Request().Context(), conv, after, int(limit))
	if err != nil {
		return err
	}
	out := make([]chat.MessageJSON, 0, len(page.Messages))
	for _, m := range page.Messages {
		out = append(out, chat.NewMessageJSON(m))
	}
	return c.JSON(http.StatusOK, map[string]any{"messages": out, "has_more": page.HasMore})
}

type replyRequest struct {
	Body          string   `json:"body"`
	AuthorName    string   `json:"author_name"`
	AttachmentIDs []string `json:"attachment_ids"`
}

// Reply serves POST /api/v1/conversations/:id/messages: an agent reply,
// committed first and then delivered live to the user's open widgets.
func (h *Conversations) Reply(c echo.Context) error {
	var req replyRequest
	if err := decodeJSON(c, 64<<10, &req); err != nil {
		return err
	}
	if err := chat.CheckMessage(req.Body, req.AttachmentIDs); err != nil {
		return apiError(http.StatusBadRequest, "invalid_request", err.Error())
	}
	if req.AuthorName != "" {
		if err := checkField("author_name", req.AuthorName); err != nil {
			return err
		}
	}
	app := appFrom(c)
	p, err := h.Store.AddAgentMessage(c.Request().Context(), app.ID, c.Param("id"), req.AuthorName, req.Body, req.AttachmentIDs...)
	if errors.Is(err, store.ErrNotFound) {
		return errConversationNotFound
	}
	if errors.Is(err, store.ErrAttachmentUnknown) {
		return apiError(http.StatusBadRequest, "attachment_unknown", store.ErrAttachmentUnknown.Msg)
	}
	if ie := new(store.InputError); errors.As(err, &ie) {
		return apiError(http.StatusBadRequest, "invalid_request", ie.Msg)
	}
	if err != nil {
		return err
	}
	h.Delivery.AgentMessage(context.WithoutCancel(c.Request().Context()), p)
	return c.JSON(http.StatusCreated, map[string]any{"message": chat.NewMessageJSON(p.Message)})
}

// Attach serves POST /api/v1/conversations/:id/attachments: an upload
// (multipart, one field named file) that a reply then carries by its id.
func (h *Conversations) Attach(c echo.Context) error {
	conv, err := h.conversation(c)
	if err != nil {
		return err
	}
	return h.Uploads.receive(c, conv.AppID, "")
}

type typingRequest struct {
	Typing     *bool  `json:"typing"` // required: {} says nothing
	AuthorName string `json:"author_name"`
}

// Typing serves POST /api/v1/conversations/:id/typing: shows (or hides)
// "… is typing" in the user's open widgets.
func (h *Conversations) Typing(c echo.Context) error {
	var req typingRequest
	if err := decodeJSON(c, 4<<10, &req); err != nil {
		return err
	}
	if req.Typing == nil {
		return apiError(http.StatusBadRequest, "invalid_request", "typing: required, true or false")
	}
	if req.AuthorName != "" {
		if err := checkField("author_name", req.AuthorName); err != nil {
			return err
		}
	}
	conv, err := h.conversation(c)
	if err != nil {
		return err
	}
	h.Delivery.AgentTyping(conv, req.AuthorName, *req.Typing)
	return c.NoContent(http.StatusNoContent)
}

type updateRequest struct {
	Status string `json:"status"`
}

// Update serves PATCH /api/v1/conversations/:id {"status":"open"|"closed"}:
// close or reopen a conversation (a user's next message reopens it too).
func (h *Conversations) Update(c echo.Context) error {
	var req updateRequest
	if err := decodeJSON(c, 4<<10, &req); err != nil {
		return err
	}
	if req.Status != store.StatusOpen && req.Status != store.StatusClosed {
		return apiError(http.StatusBadRequest, "invalid_request", "status must be open or closed")
	}
	conv, err := h.Store.SetConversationStatus(c.Request().Context(), appFrom(c).ID, c.Param("id"), req.Status)
	if errors.Is(err, store.ErrNotFound) {
		return errConversationNotFound
	}
	if err != nil {
		return err
	}
	h.Delivery.ConversationChanged(conv)
	return h.show(c, conv)
}

var errConversationNotFound = apiError(http.StatusNotFound, "conversation_not_found", "no such conversation")

func (h *Conversations) conversation(c echo.Context) (store.Conversation, error) {
	conv, err := h.Store.AppConversation(c.Request().Context(), appFrom(c).ID, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return conv, errConversationNotFound
	}
	return conv, err
}

func intParam(c echo.Context, name string, def, min, max int64) (int64, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < min || n > max {
		return 0, apiError(http.StatusBadRequest, "invalid_request", name+" must be a number from "+strconv.FormatInt(min, 10)+" to "+strconv.FormatInt(max, 10))
	}
	return n, nil
}
