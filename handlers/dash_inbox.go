package handlers

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/attachments"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

type inboxStore interface {
	AppConversations(ctx context.Context, appID string, f store.ConversationFilter) ([]store.Conversation, error)
	AppConversation(ctx context.Context, appID, id string) (store.Conversation, error)
	Subject(ctx context.Context, appID, id string) (store.Subject, error)
	Messages(ctx context.Context, c store.Conversation, afterSeq int64, limit int) (store.MessagePage, error)
	AddOwnerReply(ctx context.Context, appID, conversationID, ownerID, authorName, body string, attachmentIDs ...string) (store.Posted, error)
	AppAttachment(ctx context.Context, appID, id string) (store.Attachment, []byte, error)
	SetConversationStatus(ctx context.Context, appID, id, status string) (store.Conversation, error)
	MarkAgentRead(ctx context.Context, appID, id string, seq int64) error
	OnlineAgents(ctx context.Context, appID string, now time.Time) ([]store.Owner, error)
	WebhookEndpoints(ctx context.Context, appID string) ([]store.WebhookEndpoint, error)
}

// Inbox is where owners read and answer their app's conversations. Every
// lookup is scoped by the app, which RequireMember has already checked.
type Inbox struct {
	Pages
	Store    inboxStore
	Delivery interface {
		Delivery
		ConversationChanged(c store.Conversation)
		AgentsRead(c store.Conversation)
	}
	Uploads *Uploads
}

// A page shows 50 conversations and a thread its latest 50 messages, with
// "Older →" and "Show earlier messages" for the rest: about a screen or
// two of each, and the page stays cheap to build (most of its cost is
// reading the list's rows).
const (
	inboxListSize = 50
	threadSize    = 50
)

// Show serves GET /dashboard/apps/:app_id and …/conversations/:id. With
// ?fragment=list it answers only the conversation list, and with
// ?fragment=messages&after_seq=N only the messages after N: the page's
// script fetches these when its socket says something changed.
func (h *Inbox) Show(c echo.Context) error {
	ctx := c.Request().Context()
	app := dashAppFrom(c)
	filter := c.QueryParam("status")
	if filter != "closed" && filter != "all" {
		filter = "open"
	}
	var open *store.Conversation
	if id := c.Param("id"); id != "" {
		conv, err := h.Store.AppConversation(ctx, app.ID, id)
		if errors.Is(err, store.ErrNotFound) {
			return errNoDashConversation
		}
		if err != nil {
			return err
		}
		open = &conv
	}
	after, err := parseCursor(c.QueryParam("after"))
	if err != nil {
		return err
	}
	// A search (?q=) narrows the list and stays with it through its pages.
	q := strings.TrimSpace(c.QueryParam("q"))
	if len(q) > 200 {
		return echo.NewHTTPError(http.StatusBadRequest, "A search is at most 200 characters.")
	}
	switch c.QueryParam("fragment") {
	case "list":
		list, err := h.list(ctx, app.ID, filter, q, after, open, ownerFrom(c).OwnerID)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, templates.ConversationList(list))
	case "messages":
		if open == nil {
			return echo.NewHTTPError(http.StatusNotFound, "no conversation")
		}
		return h.messagesFragment(c, *open)
	}
	list, err := h.list(ctx, app.ID, filter, q, after, open, ownerFrom(c).OwnerID)
	if err != nil {
		return err
	}
	base := appPath(app.ID)
	listURL := c.Request().URL.Path + "?status=" + filter + templates.SearchParam(q) + "&fragment=list"
	if after != nil {
		listURL += "&after=" + url.QueryEscape(c.QueryParam("after"))
	}
	v := templates.InboxView{Shell: h.shell(c, "Inbox", "inbox"), Filter: filter, Query: q, List: list, ListURL: listURL, WSURL: base + "/ws"}
	// Who else has the inbox open; this page's own socket is not yet.
	online, err := h.Store.OnlineAgents(ctx, app.ID, time.Now())
	if err != nil {
		return err
	}
	// An endpoint Parley turned off is told on the page owners see most.
	endpoints, err := h.Store.WebhookEndpoints(ctx, app.ID)
	if err != nil {
		return err
	}
	for _, e := range endpoints {
		if e.Disabled && e.DisabledReason != "" {
			v.WebhooksOff++
		}
	}
	v.WebhooksURL = appPath(app.ID, "webhooks")
	v.Online = []string{"you"}
	for _, o := range online {
		if o.ID != ownerFrom(c).OwnerID {
			v.Online = append(v.Online, o.Name)
		}
	}
	if open != nil {
		if v.Thread, err = h.thread(ctx, *open, base+"?status="+filter); err != nil {
			return err
		}
		v.Shell.Title = v.Thread.Person.Label()
	}
	return render(c, http.StatusOK, templates.InboxPage(v))
}

// list is one page of the inbox: the conversations after the cursor
// (from the newest when it is nil), with links to the next page and back.
// me is the owner looking: their own replies are previewed as "You".
func (h *Inbox) list(ctx context.Context, appID, filter, q string, after *store.ConversationCursor, open *store.Conversation, me string) (templates.ListView, error) {
	f := store.ConversationFilter{Limit: inboxListSize + 1, After: after, Query: q}
	if filter != "all" {
		f.Status = filter
	}
	convs, err := h.Store.AppConversations(ctx, appID, f)
	if err != nil {
		return templates.ListView{}, err
	}
	v := templates.ListView{Searched: q != ""}
	inbox, here := appPath(appID)+"?status="+filter+templates.SearchParam(q), "?status="+filter+templates.SearchParam(q)
	if after != nil {
		v.NewestURL = inbox
		here += "&after=" + formatCursor(after.LastMessageAt, after.ID)
	}
	if len(convs) > inboxListSize {
		convs = convs[:inboxListSize]
		last := convs[len(convs)-1]
		v.OlderURL = inbox + "&after=" + formatCursor(last.LastMessageAt, last.ID)
	}
	v.Rows = make([]templates.ConversationRow, 0, len(convs))
	for _, cv := range convs {
		r := templates.ConversationRow{ID: cv.ID, URL: appPath(appID, "conversations", cv.ID) + here,
			Person: person(*cv.Subject), Status: cv.Status, LastActivity: cv.LastMessageAt, Unread: cv.AgentUnread,
			Active: open != nil && open.ID == cv.ID}
		if m := cv.LastMessage; m != nil {
			r.Preview = preview(m.Body)
			if m.Author == store.AuthorAgent {
				r.PreviewBy = cmp.Or(m.AuthorName, "Agent")
				if m.AuthorOwnerID == me {
					r.PreviewBy = "You"
				}
			}
		}
		v.Rows = append(v.Rows, r)
	}
	return v, nil
}

// A cursor in a URL is "<last activity in unix ms>.<conversation id>".
func formatCursor(lastMessageAt time.Time, id string) string {
	return strconv.FormatInt(lastMessageAt.UnixMilli(), 10) + "." + url.QueryEscape(id)
}

func parseCursor(s string) (*store.ConversationCursor, error) {
	if s == "" {
		return nil, nil
	}
	ms, id, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || id == "" {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "The page link is not valid; go back to the newest conversations.")
	}
	return &store.ConversationCursor{LastMessageAt: time.UnixMilli(n), ID: id}, nil
}

func (h *Inbox) thread(ctx context.Context, conv store.Conversation, inboxURL string) (*templates.ThreadView, error) {
	subj, err := h.Store.Subject(ctx, conv.AppID, conv.SubjectID)
	if err != nil {
		return nil, err
	}
	after := max(0, conv.LastSeq-threadSize)
	page, err := h.Store.Messages(ctx, conv, after, threadSize)
	if err != nil {
		return nil, err
	}
	t := &templates.ThreadView{ID: conv.ID, Person: person(subj), Status: conv.Status, LastSeq: conv.LastSeq, HasOlder: after > 0,
		BaseURL: appPath(conv.AppID, "conversations", conv.ID), InboxURL: inboxURL}
	t.Messages = messageViews(page.Messages, t.Person.Label(), appPath(conv.AppID, "attachments"))
	return t, nil
}

// messagesFragment answers ?fragment=messages with after_seq=N (what
// came after N, for live updates) or before_seq=N (the page before N, for
// "Show earlier messages").
func (h *Inbox) messagesFragment(c echo.Context, conv store.Conversation) error {
	after, limit := int64(0), threadSize
	switch {
	case c.QueryParam("before_seq") != "":
		before, err := strconv.ParseInt(c.QueryParam("before_seq"), 10, 64)
		if err != nil || before < 1 {
			return echo.NewHTTPError(http.StatusBadRequest, "before_seq must be a message number")
		}
		after = max(0, before-1-threadSize)
		limit = int(before - 1 - after)
	default:
		n, err := strconv.ParseInt(c.QueryParam("after_seq"), 10, 64)
		if err != nil || n < 0 {
			return echo.NewHTTPError(http.StatusBadRequest, "after_seq must be a number")
		}
		after = n
	}
	subj, err := h.Store.Subject(c.Request().Context(), conv.AppID, conv.SubjectID)
	if err != nil {
		return err
	}
	var msgs []store.Message
	if limit > 0 {
		page, err := h.Store.Messages(c.Request().Context(), conv, after, limit)
		if err != nil {
			return err
		}
		msgs = page.Messages
	}
	return render(c, http.StatusOK, templates.ThreadMessages(messageViews(msgs, person(subj).Label(), appPath(conv.AppID, "attachments"))))
}

func person(s store.Subject) templates.Person {
	p := templates.Person{Name: s.Name, Email: s.Email, UserID: s.UserID, LastSeen: s.LastSeenAt, PageURL: s.LastPageURL, Kind: "anonymous",
		EmailSigned: s.EmailSigned, NameSigned: s.NameSigned}
	switch s.Kind {
	case store.KindUser:
		p.Kind = "verified"
	case store.KindUnverified:
		p.Kind = "unverified"
	}
	return p
}

// messageViews shapes msgs for a thread; files are fetched from under
// filesURL with the agent's cookie.
func messageViews(msgs []store.Message, userLabel, filesURL string) []templates.MessageView {
	out := make([]templates.MessageView, 0, len(msgs))
	for _, m := range msgs {
		v := templates.MessageView{Seq: m.Seq, FromAgent: m.Author == store.AuthorAgent, AuthorName: userLabel, Body: m.Body, At: m.CreatedAt}
		for _, a := range m.Attachments {
			v.Attachments = append(v.Attachments, templates.AttachmentView{URL: filesURL + "/" + a.ID, Name: a.Name, Type: a.Type,
				Size: a.Size, Image: attachments.Inline(a.Type)})
		}
		if v.FromAgent {
			v.AuthorName = m.AuthorName
			if v.AuthorName == "" {
				v.AuthorName = "Agent"
			}
		}
		out = append(out, v)
	}
	return out
}

func preview(body string) string {
	if body == "" {
		return "(a file)" // a message of files alone
	}
	r := []rune(body)
	if len(r) > 120 {
		return string(r[:120]) + "…"
	}
	return body
}

var errNoDashConversation = echo.NewHTTPError(http.StatusNotFound, "There is no such conversation in this app.")

// conversation loads the conversation named in the URL, within the app.
func (h *Inbox) conversation(c echo.Context) (store.Conversation, error) {
	conv, err := h.Store.AppConversation(c.Request().Context(), dashAppFrom(c).ID, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return conv, errNoDashConversation
	}
	return conv, err
}

// Reply serves POST …/conversations/:id/messages. The reply is committed,
// then delivered to the user's open widgets and the app's other agents,
// signed with the owner's name.
func (h *Inbox) Reply(c echo.Context) error {
	body := postValue(c, "body")
	if err := c.Request().ParseForm(); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "Reply not sent: the form could not be read.")
	}
	files := c.Request().PostForm["attachment_ids"]
	if err := chat.CheckMessage(body, files); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "Reply not sent: "+err.Error()+".")
	}
	app, owner := dashAppFrom(c), ownerFrom(c)
	p, err := h.Store.AddOwnerReply(c.Request().Context(), app.ID, c.Param("id"), owner.OwnerID, owner.Owner.Name, body, files...)
	if errors.Is(err, store.ErrNotFound) {
		return errNoDashConversation
	}
	if ie := new(store.InputError); errors.As(err, &ie) {
		return echo.NewHTTPError(http.StatusBadRequest, "Reply not sent: "+ie.Msg+".")
	}
	if err != nil {
		return err
	}
	h.Delivery.AgentMessage(context.WithoutCancel(c.Request().Context()), p)
	h.Delivery.AgentTyping(p.Conversation, owner.Owner.Name, false)
	if wantsJSON(c) {
		return c.JSON(http.StatusCreated, map[string]any{"message": chat.NewMessageJSON(p.Message)})
	}
	return c.Redirect(http.StatusSeeOther, appPath(app.ID, "conversations", p.Conversation.ID))
}

// Attach serves POST …/conversations/:id/attachments: a file a reply then
// carries by its id (attachment_ids), answered as the server API does.
func (h *Inbox) Attach(c echo.Context) error {
	conv, err := h.conversation(c)
	if errors.Is(err, errNoDashConversation) {
		return apiError(http.StatusNotFound, "not_found", "there is no such conversation in this app")
	}
	if err != nil {
		return err
	}
	return h.Uploads.receive(c, conv.AppID, "")
}

// Attachment serves GET …/attachments/:id: a file of one of the app's
// conversations, or an agent's upload not sent yet.
func (h *Inbox) Attachment(c echo.Context) error {
	a, data, err := h.Store.AppAttachment(c.Request().Context(), dashAppFrom(c).ID, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such file in this app.")
	}
	if err != nil {
		return err
	}
	return serveAttachment(c, a, data)
}

// SetStatus serves POST …/conversations/:id/status (status=open|closed).
func (h *Inbox) SetStatus(c echo.Context) error {
	app := dashAppFrom(c)
	conv, err := h.Store.SetConversationStatus(c.Request().Context(), app.ID, c.Param("id"), postValue(c, "status"))
	if ie := new(store.InputError); errors.As(err, &ie) {
		return echo.NewHTTPError(http.StatusBadRequest, ie.Msg)
	}
	if errors.Is(err, store.ErrNotFound) {
		return errNoDashConversation
	}
	if err != nil {
		return err
	}
	h.Delivery.ConversationChanged(conv)
	if wantsJSON(c) {
		return c.JSON(http.StatusOK, map[string]string{"status": conv.Status})
	}
	return c.Redirect(http.StatusSeeOther, appPath(app.ID, "conversations", conv.ID)+"?status="+url.QueryEscape(conv.Status))
}

// Typing serves POST …/conversations/:id/typing (typing=true|false): the
// user's widget shows "<owner> is typing…".
func (h *Inbox) Typing(c echo.Context) error {
	typing, err := strconv.ParseBool(postValue(c, "typing"))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "typing must be true or false")
	}
	conv, err := h.conversation(c)
	if err != nil {
		return err
	}
	h.Delivery.AgentTyping(conv, ownerFrom(c).Owner.Name, typing)
	return c.NoContent(http.StatusNoContent)
}

// Read serves POST …/conversations/:id/read (seq=N): the app's agents have
// seen the conversation up to N, which clears its unread marker.
func (h *Inbox) Read(c echo.Context) error {
	seq, err := strconv.ParseInt(postValue(c, "seq"), 10, 64)
	if err != nil || seq < 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "seq must be a message number")
	}
	conv, err := h.conversation(c)
	if err != nil {
		return err
	}
	if conv.AgentReadSeq >= seq || conv.AgentReadSeq >= conv.LastSeq {
		return c.NoContent(http.StatusNoContent)
	}
	if err := h.Store.MarkAgentRead(c.Request().Context(), conv.AppID, conv.ID, seq); err != nil {
		return err
	}
	// Read again: the user's widgets are told the new mark.
	if conv, err = h.conversation(c); err != nil {
		return err
	}
	h.Delivery.AgentsRead(conv)
	return c.NoContent(http.StatusNoContent)
}
