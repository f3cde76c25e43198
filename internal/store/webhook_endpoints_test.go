package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/masterkey"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/webhooks"
)

func TestWebhookEndpoints(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeEnforced).App
	other := mustApp(t, db, store.ModeEnforced).App

	e, err := db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: a.ID, URL: "https://hooks.example.com/p"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.Secret, "whsec_") || len(e.Events) != len(webhooks.Events) {
		t.Fatalf("new endpoint %+v: want a whsec_ secret and every event", e)
	}
	if _, err := db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: a.ID, URL: "https://x.example", Events: []string{"message.deleted"}}); !errors.As(err, new(*store.InputError)) {
		t.Fatalf("unknown event: %v, want an InputError", err)
	}
	if _, err := db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: "app_nope", URL: "https://x.example"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown app: %v", err)
	}

	list, err := db.WebhookEndpoints(ctx, a.ID)
	if err != nil || len(list) != 1 || list[0].ID != e.ID || list[0].Secret != "" {
		t.Fatalf("list = %+v, %v; want the endpoint without its secret", list, err)
	}
	if list, _ := db.WebhookEndpoints(ctx, other.ID); len(list) != 0 {
		t.Fatalf("another app lists %+v", list)
	}
	got, err := db.WebhookEndpointForSending(ctx, a.ID, e.ID)
	if err != nil || got.Secret != e.Secret {
		t.Fatalf("for sending: %+v, %v", got, err)
	}
	if _, err := db.WebhookEndpointForSending(ctx, other.ID, e.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another app's endpoint: %v", err)
	}

	// Rotation with an overlap: both sign until it ends.
	now := time.Now()
	db.SetNow(func() time.Time { return now })
	next, _, err := db.RotateWebhookSecret(ctx, a.ID, e.ID, time.Hour)
	if err != nil || next == e.Secret || !strings.HasPrefix(next, "whsec_") {
		t.Fatalf("rotate: %q, %v", next, err)
	}
	got, _ = db.WebhookEndpointForSending(ctx, a.ID, e.ID)
	if got.Secret != next || got.PreviousSecret != e.Secret {
		t.Fatalf("after rotating: current %q previous %q, want the new and the old", got.Secret, got.PreviousSecret)
	}
	db.SetNow(func() time.Time { return now.Add(time.Hour + time.Second) })
	if got, _ = db.WebhookEndpointForSending(ctx, a.ID, e.ID); got.PreviousSecret != "" {
		t.Fatal("the old secret still signs after the overlap")
	}
	if _, _, err := db.RotateWebhookSecret(ctx, other.ID, e.ID, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotating another app's endpoint: %v", err)
	}

	if err := db.RemoveWebhookEndpoint(ctx, other.ID, e.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing another app's endpoint: %v", err)
	}
	if err := db.RemoveWebhookEndpoint(ctx, a.ID, e.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := db.WebhookEndpoints(ctx, a.ID); len(list) != 0 {
		t.Fatalf("after removing: %+v", list)
	}
	for i := range 20 {
		if _, err := db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: a.ID, URL: "https://hooks.example.com/" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: a.ID, URL: "https://one.too.many"}); !errors.As(err, new(*store.InputError)) {
		t.Fatalf("the 21st endpoint: %v", err)
	}
}

// Webhook secrets follow the master key: re-sealed by a rotation, and
// replaced (the endpoint turned off until its secret is rotated) by a
// reset.
func TestWebhookSecretsAndTheMasterKey(t *testing.T) {
	ctx := context.Background()
	loc := newLocation(t)
	db, err := store.Open(ctx, loc, testKey)
	if err != nil {
		t.Fatal(err)
	}
	a := mustApp(t, db, store.ModeEnforced).App
	e, err := db.AddWebhookEndpoint(ctx, store.NewWebhookEndpoint{AppID: a.ID, URL: "https://hooks.example.com/p"})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	next := masterkey.Generate()
	if _, err := store.RotateMasterKey(ctx, loc, testKey, next); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(ctx, loc, next)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.WebhookEndpointForSending(ctx, a.ID, e.ID); err != nil || got.Secret != e.Secret {
		t.Fatalf("after a key rotation: %+v, %v", got, err)
	}
	// Off for failing before the reset: "turn back on" must not bring it
	// back with a secret nobody has.
	if err := db.DisableWebhookEndpoint(ctx, e.ID, "it kept failing"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	lost := masterkey.Generate()
	if _, err := store.ResetMasterKey(ctx, loc, lost); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(ctx, loc, lost)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.WebhookEndpointForSending(ctx, a.ID, e.ID)
	if err != nil || !got.Disabled || got.Secret == e.Secret {
		t.Fatalf("after a key reset: %+v, %v; want it off, with a secret nobody has", got, err)
	}
	if err := db.EnableWebhookEndpoint(ctx, a.ID, e.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("turning it back on after a key reset: %v, want ErrNotFound (only a rotation does)", err)
	}
	fresh, _, err := db.RotateWebhookSecret(ctx, a.ID, e.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := db.WebhookEndpointForSending(ctx, a.ID, e.ID); got.Disabled || got.Secret != fresh || got.PreviousSecret != "" {
		t.Fatalf("after rotating: %+v; want it on, with the new secret alone", got)
	}
}
