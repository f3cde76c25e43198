package chat_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/ratelimit"
	"github.com/parley-chat/parley/internal/store"
)

// expectRateLimited authenticates a new socket with s and requires the
// rate_limited refusal: an error frame with a retry hint, then close 4008.
func (r *rig) expectRateLimited(t *testing.T, s store.Session) int64 {
	t.Helper()
	conn := r.dial(t, "/ws")
	sendJSON(t, conn, map[string]string{"type": "auth", "token": s.Token})
	f := readFrame(t, conn)
	if f["type"] != "error" || f["code"] != "rate_limited" || f["message"] == "" {
		t.Fatalf("got %v, want a rate_limited error frame", f)
	}
	retry, _ := f["retry_after_ms"].(float64)
	if retry <= 0 {
		t.Fatalf("rate_limited frame %v has no retry_after_ms", f)
	}
	expectClose(t, conn, chat.CloseRateLimited, "")
	return int64(retry)
}

// TestSocketsPerSubject: a subject holds at most Limits.Sockets widget
// sockets, from any number of sessions; another subject is not affected,
// and a closed socket frees its place.
func TestSocketsPerSubject(t *testing.T) {
	r := newRig(t)
	lots := ratelimit.Rate{Burst: 1000, Every: time.Millisecond}
	r.hub.SetLimits(chat.Limits{Sockets: 3, Opens: lots, Messages: lots})
	shop := r.app(t, "Shop")
	ann1, ann2, bob := r.session(t, shop, "ann"), r.session(t, shop, "ann"), r.session(t, shop, "bob")

	first := r.widget(t, ann1)
	r.widget(t, ann1)
	r.widget(t, ann2)
	r.expectRateLimited(t, ann2)
	r.expectRateLimited(t, ann1)
	r.widget(t, bob)
	r.waitConnections(t, ann1.SubjectID, 3)

	first.Close()
	r.waitConnections(t, ann1.SubjectID, 2)
	alive(t, r.widget(t, ann2))
}

// TestOpensPerSubject: a subject that reconnects too fast is refused with
// a retry hint that is right: after waiting it, the next open gets in.
func TestOpensPerSubject(t *testing.T) {
	r := newRig(t)
	lots := ratelimit.Rate{Burst: 1000, Every: time.Millisecond}
	// 2 s: two opens and the refused one must fit in one refill, also on
	// a busy machine under the race detector.
	r.hub.SetLimits(chat.Limits{Sockets: 100, Opens: ratelimit.Rate{Burst: 2, Every: 2 * time.Second}, Messages: lots})
	shop := r.app(t, "Shop")
	ann, bob := r.session(t, shop, "ann"), r.session(t, shop, "bob")

	r.widget(t, ann)
	r.widget(t, ann)
	retry := r.expectRateLimited(t, ann)
	if retry > 2000 {
		t.Fatalf("retry_after_ms = %d, want at most the 2 s refill", retry)
	}
	r.widget(t, bob) // another subject has its own budget
	time.Sleep(time.Duration(retry) * time.Millisecond)
	alive(t, r.widget(t, ann))
}

// TestDefaultLimitsAreSane: a zero Limits means the defaults, and the
// defaults let a person's tabs and typing through.
func TestDefaultLimitsAreSane(t *testing.T) {
	d := chat.DefaultLimits()
	if d.Sockets < 5 || d.Opens.Burst < 5 || d.Messages.Burst < 5 || d.Messages.Every > 2*time.Second {
		t.Fatalf("DefaultLimits %+v would get in the way of a person", d)
	}
	r := newRig(t)
	r.hub.SetLimits(chat.Limits{})
	shop := r.app(t, "Shop")
	ann := r.session(t, shop, "ann")
	conns := make([]*websocket.Conn, d.Sockets)
	for i := range conns {
		conns[i] = r.widget(t, ann)
	}
	r.expectRateLimited(t, ann)
}
