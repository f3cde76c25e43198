package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
)

// webhookQueue is River's queue of webhook deliveries, apart from other
// jobs so that a slow endpoint never holds them up.
const webhookQueue = "webhooks"

// Sending limits.
const (
	// sendTimeout bounds one request, from the connection to the end of
	// the response's excerpt.
	sendTimeout = 10 * time.Second
	// excerptBytes is how much of a response the dashboard shows.
	excerptBytes = 500
)

// deliverArgs is the job that delivers one webhook_deliveries row.
type deliverArgs struct {
	DeliveryID int64 `json:"delivery_id"`
}

func (deliverArgs) Kind() string { return "webhook_delivery" }

// InsertOpts puts deliveries on their own queue. One delivery never has
// two jobs at once: a resend is refused until the delivery's job has
// recorded its last attempt (store.ResendWebhookDelivery).
func (deliverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: webhookQueue} }

type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	q *Queue
}

// errEndpointDisabled ends the delivery of an event to an endpoint that
// was disabled after the event.
var errEndpointDisabled = errors.New("the endpoint is disabled")

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[deliverArgs]) error {
	q := w.q
	d, e, err := q.cfg.Store.WebhookDeliveryForSending(ctx, job.Args.DeliveryID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the endpoint was removed, and its deliveries with it
	}
	if err != nil {
		return err
	}
	if e.Disabled {
		_, err := q.cfg.Store.RecordWebhookAttempt(ctx, d.ID, store.WebhookAttempt{At: time.Now(), Final: true,
			Error: errEndpointDisabled.Error(), DisableAfter: q.cfg.DisableAfter})
		return errors.Join(river.JobCancel(errEndpointDisabled), err)
	}
	a := q.send(ctx, d, e)
	a.Final = !a.Delivered && job.Attempt >= job.MaxAttempts
	a.DisableAfter = q.cfg.DisableAfter
	// Recorded even if the attempt used up the job's time.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	disabled, err := q.cfg.Store.RecordWebhookAttempt(rctx, d.ID, a)
	if err != nil {
		// Sent or not, the attempt runs again: a receiver may see the
		// event twice, with one webhook-id, but never miss it.
		return err
	}
	if disabled {
		q.cfg.Log.Warn("webhook endpoint disabled: every delivery failed for too long", "app", e.AppID, "endpoint", e.ID, "last_error", a.Error)
	}
	switch {
	case a.Delivered:
		return nil
	case disabled:
		return river.JobCancel(errEndpointDisabled)
	}
	return errors.New(a.Error)
}

// send makes one attempt, signed afresh: a new timestamp, with the
// event's webhook-id.
func (q *Queue) send(ctx context.Context, d store.WebhookDelivery, e store.WebhookEndpoint) store.WebhookAttempt {
	a := store.WebhookAttempt{At: time.Now()}
	outcome := &q.attempts.failed
	defer func() { outcome.Add(1) }()
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	// The operator's allow list may have changed since the URL was added.
	if _, err := q.cfg.Guard.CheckURL(ctx, net.DefaultResolver, e.URL); err != nil {
		outcome, a.Error = &q.attempts.refused, strings.TrimPrefix(err.Error(), "webhooks: ")
		return a
	}
	secrets := []string{e.Secret}
	if e.PreviousSecret != "" {
		secrets = append(secrets, e.PreviousSecret)
	}
	h, err := webhooks.Sign(d.EventID, a.At, d.Payload, secrets...)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(d.Payload))
	if err != nil {
		a.Error = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Parley-Webhooks/1")
	req.Header.Set("webhook-id", h.ID)
	req.Header.Set("webhook-timestamp", h.Timestamp)
	req.Header.Set("webhook-signature", h.Signature)
	resp, err := q.http.Do(req)
	if err != nil {
		if errors.Is(err, webhooks.ErrInternal) {
			outcome = &q.attempts.refused
		}
		a.Error = describe(err)
		return a
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, excerptBytes))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	a.ResponseCode, a.Excerpt = resp.StatusCode, excerpt(body)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		outcome, a.Delivered = &q.attempts.delivered, true
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.Error = fmt.Sprintf("the endpoint answered %d, a redirect, and redirects are not followed: give the final URL", resp.StatusCode)
	default:
		a.Error = fmt.Sprintf("the endpoint answered %d", resp.StatusCode)
	}
	return a
}

// describe is why a request failed, for the endpoint's owner.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, webhooks.ErrInternal) {
		// Refused at the moment of connecting (the name's address changed
		// since the check): said without the address, like the check.
		return strings.TrimPrefix(webhooks.ErrInternal.Error(), "webhooks: ")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", sendTimeout)
	}
	return strings.TrimPrefix(err.Error(), "webhooks: ")
}

// excerpt is the start of a response body as text.
func excerpt(b []byte) string {
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1] // the cut may have split a character
	}
	return strings.ToValidUTF8(string(b), "�")
}

// newHTTPClient sends webhooks: every connection goes through the guard
// (the address is checked after it is resolved, so a name that resolves
// inside the network is refused), no proxy from the environment, no
// redirects followed, nothing waited on for more than sendTimeout.
func newHTTPClient(g webhooks.Guard) *http.Client {
	dialer := &net.Dialer{Timeout: sendTimeout, Control: g.DialControl}
	return &http.Client{
		Timeout: sendTimeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   sendTimeout,
			ResponseHeaderTimeout: sendTimeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
