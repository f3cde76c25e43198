package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/attachments"
	"github.com/parley-chat/parley/internal/store"
)

type attachmentStore interface {
	SessionByToken(ctx context.Context, token string) (*store.Session, error)
	AddAttachment(ctx context.Context, in store.NewAttachment, q store.AttachmentQuotas) (store.Attachment, error)
	UserAttachment(ctx context.Context, subjectID, id string) (store.Attachment, []byte, error)
}

// WidgetAttachments serves the chat frame's uploads and downloads
// (/api/widget/attachments). Both take the session token in the
// Authorization header, never in a URL; a download is served only to the
// user whose conversation carries the file (or who uploaded it and has
// not sent it yet): anyone else gets 404.
type WidgetAttachments struct {
	Store        attachmentStore
	PublicOrigin string
	// MaxSize bounds one file; Quotas what a user and an app keep.
	MaxSize int64
	Quotas  store.AttachmentQuotas
}

type attachmentJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
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
// file. Its type is decided from its bytes; JPEG and PNG are kept without
// their metadata.
func (h *WidgetAttachments) Upload(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if c.Request().Header.Get("Origin") != h.PublicOrigin {
		return apiError(http.StatusForbidden, "origin_not_allowed", "files can only be sent from Parley's chat frame")
	}
	sess, err := h.session(c)
	if err != nil {
		return err
	}
	tooLarge := apiError(http.StatusRequestEntityTooLarge, "attachment_too_large",
		fmt.Sprintf("a file is at most %s", humanBytes(h.MaxSize)))
	// The whole request: the file and the multipart framing around it.
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, h.MaxSize+64<<10)
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return apiError(http.StatusBadRequest, "invalid_request", "send the file as multipart/form-data in a field named file")
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return apiError(http.StatusBadRequest, "invalid_request", "send the file as multipart/form-data in a field named file")
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge
		}
		if err != nil {
			return apiError(http.StatusBadRequest, "invalid_request", "the upload is not valid multipart/form-data")
		}
		if part.FormName() != "file" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, h.MaxSize+1))
		if errors.As(err, &mbe) || int64(len(data)) > h.MaxSize {
			return tooLarge
		}
		if err != nil {
			return apiError(http.StatusBadRequest, "invalid_request", "the upload was cut off")
		}
		if len(data) == 0 {
			return apiError(http.StatusBadRequest, "invalid_request", "the file is empty")
		}
		return h.keep(c, sess, part.FileName(), data)
	}
}

func (h *WidgetAttachments) keep(c echo.Context, sess *store.Session, name string, data []byte) error {
	typ, err := attachments.Sniff(data)
	if errors.Is(err, attachments.ErrImageTooLarge) {
		return apiError(http.StatusRequestEntityTooLarge, "attachment_too_large", "the image has too many pixels (40 megapixels at most)")
	}
	if err != nil {
		return apiError(http.StatusUnsupportedMediaType, "attachment_type_not_allowed", "this kind of file is not accepted: send an image (PNG, JPEG, GIF), a PDF, a text file or an office document")
	}
	if data, err = attachments.Clean(typ, data); err != nil {
		return apiError(http.StatusUnsupportedMediaType, "attachment_type_not_allowed", "the image could not be read")
	}
	a, err := h.Store.AddAttachment(c.Request().Context(), store.NewAttachment{AppID: sess.AppID, SubjectID: sess.SubjectID,
		Name: attachments.Name(name, typ), Type: typ, Data: data}, h.Quotas)
	if errors.Is(err, store.ErrAttachmentQuota) {
		return apiError(http.StatusTooManyRequests, "attachment_quota_exceeded", "no room for more files in this chat")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]attachmentJSON{"attachment": {ID: a.ID, Name: a.Name, Type: a.Type, Size: a.Size}})
}

// Download serves GET /api/widget/attachments/:id.
func (h *WidgetAttachments) Download(c echo.Context) error {
	sess, err := h.session(c)
	if err != nil {
		return err
	}
	a, data, err := h.Store.UserAttachment(c.Request().Context(), sess.SubjectID, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_found", "no such attachment")
	}
	if err != nil {
		return err
	}
	return serveAttachment(c, a, data)
}

// serveAttachment sends a kept file so that no browser runs it: its
// sniffed type, nosniff, a sandbox CSP, and images alone shown inline.
func serveAttachment(c echo.Context, a store.Attachment, data []byte) error {
	h := c.Response().Header()
	h.Set("Content-Type", a.Type)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	disposition := "attachment"
	if attachments.Inline(a.Type) {
		disposition = "inline"
	}
	h.Set("Content-Disposition", disposition+"; filename*=UTF-8''"+url.PathEscape(a.Name))
	h.Set("Content-Length", strconv.Itoa(len(data)))
	return c.Blob(http.StatusOK, a.Type, data)
}

func humanBytes(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KB", n>>10)
}
