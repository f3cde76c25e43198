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

// Uploads receives files from all three sides: the chat frame, the
// dashboard and the server API. Whoever calls it has already decided
// who the uploader is.
type Uploads struct {
	Store interface {
		AddAttachment(ctx context.Context, in store.NewAttachment, q store.AttachmentQuotas) (store.Attachment, error)
	}
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

// receive reads a multipart upload with one field named file and keeps it
// for the app, as subjectID's (empty for the app's agents). Its type is
// decided from its bytes; JPEG and PNG are kept without their metadata.
// It answers 201 {"attachment": …}, or a JSON error.
func (u *Uploads) receive(c echo.Context, appID, subjectID string) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	name, data, err := u.read(c)
	if err != nil {
		return err
	}
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
	a, err := u.Store.AddAttachment(c.Request().Context(), store.NewAttachment{AppID: appID, SubjectID: subjectID,
		Name: attachments.Name(name, typ), Type: typ, Data: data}, u.Quotas)
	if errors.Is(err, store.ErrAttachmentQuota) {
		return apiError(http.StatusTooManyRequests, "attachment_quota_exceeded", "no room for more files in this chat")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]attachmentJSON{"attachment": {ID: a.ID, Name: a.Name, Type: a.Type, Size: a.Size}})
}

// read returns the name and bytes of the field named file, at most
// MaxSize of them.
func (u *Uploads) read(c echo.Context) (string, []byte, error) {
	tooLarge := apiError(http.StatusRequestEntityTooLarge, "attachment_too_large",
		fmt.Sprintf("a file is at most %s", humanBytes(u.MaxSize)))
	notMultipart := apiError(http.StatusBadRequest, "invalid_request", "send the file as multipart/form-data in a field named file")
	// The whole request: the file and the multipart framing around it.
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, u.MaxSize+64<<10)
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return "", nil, notMultipart
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return "", nil, notMultipart
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", nil, tooLarge
		}
		if err != nil {
			return "", nil, apiError(http.StatusBadRequest, "invalid_request", "the upload is not valid multipart/form-data")
		}
		if part.FormName() != "file" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, u.MaxSize+1))
		if errors.As(err, &mbe) || int64(len(data)) > u.MaxSize {
			return "", nil, tooLarge
		}
		if err != nil {
			return "", nil, apiError(http.StatusBadRequest, "invalid_request", "the upload was cut off")
		}
		if len(data) == 0 {
			return "", nil, apiError(http.StatusBadRequest, "invalid_request", "the file is empty")
		}
		return part.FileName(), data, nil
	}
}

var errNoAttachment = apiError(http.StatusNotFound, "not_found", "no such attachment")

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
