// Package handlers holds Parley's HTTP handlers. Each is a struct that
// receives its dependencies; the narrow interfaces they need are declared
// beside them.
package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/templates"
)

// APIError is the one error shape every JSON endpoint answers with:
// {"error":{"code":"…","message":"…"}}, plus "retry_after_ms" when the
// request was refused by a rate limit.
type APIError struct {
	Status       int    `json:"-"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func apiError(status int, code, message string) *APIError {
	return &APIError{Status: status, Code: code, Message: message}
}

// TooManyRequests is the 429 of a rate limit. The client learns when to
// try again twice: retry_after_ms for scripts (the chat frame) and
// Retry-After, in whole seconds rounded up, for everything else.
func TooManyRequests(message string, retryAfter time.Duration) *APIError {
	return &APIError{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: message,
		RetryAfterMS: max(int64((retryAfter+time.Millisecond-1)/time.Millisecond), 1)}
}

// ErrorHandler renders every error as JSON under /api/ and to the
// dashboard's script, as a page on the dashboard, and as plain text
// elsewhere. Unexpected errors are logged and answered with a generic 500
// that reveals nothing.
func ErrorHandler(log *slog.Logger, pages Pages) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		apiErr := toAPIError(err)
		if apiErr.Status >= 500 {
			log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		}
		if apiErr.RetryAfterMS > 0 {
			secs := (apiErr.RetryAfterMS + 999) / 1000
			c.Response().Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
		var werr error
		path := c.Request().URL.Path
		switch {
		case strings.HasPrefix(path, "/api/") || (isDashboardPath(path) && wantsJSON(c)):
			c.Response().Header().Set("Cache-Control", "no-store")
			werr = c.JSON(apiErr.Status, map[string]*APIError{"error": apiErr})
		case isDashboardPath(path):
			setDashboardHeaders(c.Response().Header())
			werr = render(c, apiErr.Status, templates.ErrorPage(templates.ErrorView{ScriptURL: pages.ScriptURL, StyleURL: pages.StyleURL,
				Status: apiErr.Status, Message: apiErr.Message}))
		default:
			werr = c.String(apiErr.Status, apiErr.Message+"\n")
		}
		if werr != nil {
			log.Warn("writing error response", "err", werr)
		}
	}
}

func toAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok && he.Code < 500 {
			msg = s
		}
		return apiError(he.Code, strings.ReplaceAll(strings.ToLower(http.StatusText(he.Code)), " ", "_"), msg)
	}
	if store.IsUnavailable(err) {
		// The database is restarting or out of reach: a client may try
		// again, and a balancer has taken this node out (/readyz).
		return &APIError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the service is briefly unavailable; try again", RetryAfterMS: 1000}
	}
	return apiError(http.StatusInternalServerError, "internal", "internal server error")
}

// decodeJSON reads a JSON object of at most limit bytes into dst,
// refusing other content types, anything but an object (encoding/json
// decodes null into a struct as a no-op, leaving every field at its zero
// value), unknown fields and trailing data.
func decodeJSON(c echo.Context, limit int64, dst any) error {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	if ct != "application/json" {
		return apiError(http.StatusUnsupportedMediaType, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiError(http.StatusBadRequest, "body_too_large", fmt.Sprintf("request body is limited to %d bytes", limit))
		}
		return apiError(http.StatusBadRequest, "invalid_json", "reading the request body: "+shortJSONError(err))
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] != '{' {
		return apiError(http.StatusBadRequest, "invalid_json", "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return apiError(http.StatusBadRequest, "invalid_json", "request body is not a valid JSON object of the expected shape: "+shortJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return apiError(http.StatusBadRequest, "invalid_json", "unexpected data after the JSON object")
	}
	return nil
}

func shortJSONError(err error) string {
	msg := err.Error()
	if err == io.EOF {
		msg = "empty body"
	}
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}
