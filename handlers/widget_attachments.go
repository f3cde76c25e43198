package handlers

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
)

type attachmentStore interface {
	SessionByToken(ctx context.Context, token string) (*store.Session, error)
	AppByAPIKey(ctx context.Context, key string) (*store.App, error)
	UserAttachment(ctx context.Context, subjectID, id string) (store.Attachment, []byte, error)
	AppAttachment(ctx context.Context, appID, id string) (store.Attachment, []byte, error)
}

// WidgetAttachments serves the chat frame's uploads and downloads
// (/api/widget/attachments). Both take the session token in the
// Authorization header, never in a URL. A download is served only to the
// user whose conversation carries the file (or who uploaded it and has
// not sent it yet), or to the app's backend with its API key: anyone
// else gets 404.
type WidgetAttachments struct {
	Store        attachmentStore
	Uploads      *Uploads
	PublicOrigin string
}

func (h *WidgetAttachments) session(c echo.Context) (*store.Session, error) {
	token, ok := bearer(c.Request().Header.Get("Authorization"))
	if !ok {
		return nil, invalidToken(c, "send the session token as Authorization: Bearer <token>")
	}
	sess, err := h.Store.SessionByToken(c.Request().Context(), token)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalidToken(c, "the session token is unknown or has expired")
	}
	return sess, err
}

// Upload serves POST /api/widget/attachments: multipart, one field named
// file, from the chat frame's origin.
func (h *WidgetAttachments) Upload(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if c.Request().Header.Get("Origin") != h.PublicOrigin {
		return apiError(http.StatusForbidden, "origin_not_allowed", "files can only be sent from Parley's chat frame")
	}
	sess, err := h.session(c)
	if err != nil {
		return err
	}
	return h.Uploads.receive(c, sess.AppID, sess.SubjectID)
}

// Download serves GET /api/widget/attachments/:id to the user's session
// or the app's API key, both as Authorization: Bearer.
func (h *WidgetAttachments) Download(c echo.Context) error {
	token, ok := bearer(c.Request().Header.Get("Authorization"))
	if !ok {
		return invalidToken(c, "send the session token (or the app's API key) as Authorization: Bearer <token>")
	}
	ctx := c.Request().Context()
	var a store.Attachment
	var data []byte
	sess, err := h.Store.SessionByToken(ctx, token)
	switch {
	case err == nil:
		a, data, err = h.Store.UserAttachment(ctx, sess.SubjectID, c.Param("id"))
	case errors.Is(err, store.ErrNotFound):
		app, err2 := h.Store.AppByAPIKey(ctx, token)
		if errors.Is(err2, store.ErrNotFound) {
			return invalidToken(c, "the session token is unknown or has expired")
		}
		if err2 != nil {
			return err2
		}
		a, data, err = h.Store.AppAttachment(ctx, app.ID, c.Param("id"))
	}
	if errors.Is(err, store.ErrNotFound) {
		return errNoAttachment
	}
	if err != nil {
		return err
	}
	return serveAttachment(c, a, data)
}
