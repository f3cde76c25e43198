// Package webhooks holds what Parley's webhooks are made of, as the
// Standard Webhooks specification (standardwebhooks.com) defines them:
// the event types, the endpoint secrets (whsec_…), the signature headers,
// and the guard that keeps an owner's URL from reaching addresses inside
// the operator's network (SSRF).
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event types.
const (
	ConversationCreated  = "conversation.created"
	MessageCreated       = "message.created"
	ConversationClosed   = "conversation.closed"
	ConversationReopened = "conversation.reopened"
)

// Events are every event type, in the order they are listed.
var Events = []string{ConversationCreated, MessageCreated, ConversationClosed, ConversationReopened}

// ParseEvents checks event types as an owner typed them; none means all.
// The result is sorted and has no repeats.
func ParseEvents(in []string) ([]string, error) {
	if len(in) == 0 {
		return slices.Clone(Events), nil
	}
	var out []string
	for _, raw := range in {
		for e := range strings.SplitSeq(raw, ",") {
			e = strings.TrimSpace(e)
			if !slices.Contains(Events, e) {
				return nil, fmt.Errorf("webhooks: unknown event %q; the events are %s", e, strings.Join(Events, ", "))
			}
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// secretPrefix marks a Standard Webhooks secret.
const secretPrefix = "whsec_"

// NewSecret is a new endpoint secret: whsec_ and 32 random bytes in
// base64, as Standard Webhooks libraries read it.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// secretKey is the HMAC key of a secret.
func secretKey(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New("webhooks: a secret starts with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) < 24 {
		return nil, errors.New("webhooks: a secret is whsec_ and base64 of at least 24 bytes")
	}
	return key, nil
}

// Headers are a delivery attempt's signature headers.
type Headers struct {
	ID, Timestamp, Signature string
}

// Sign makes the headers of one attempt to deliver body as message id at
// ts: one "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per secret,
// separated by spaces (during a rotation, the new secret's and the old
// one's, so the receiver may hold either).
func Sign(id string, ts time.Time, body []byte, secrets ...string) (Headers, error) {
	if len(secrets) == 0 {
		return Headers{}, errors.New("webhooks: no secret to sign with")
	}
	h := Headers{ID: id, Timestamp: strconv.FormatInt(ts.Unix(), 10)}
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		key, err := secretKey(s)
		if err != nil {
			return Headers{}, err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(h.ID + "." + h.Timestamp + "."))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	h.Signature = strings.Join(sigs, " ")
	return h, nil
}
