package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// openChats are one app's sessions of every kind an owner can tighten
// away: verified by a user_hash, verified by an identity JWT, an
// unverified claim (monitor mode) and an anonymous visitor.
type openChats struct {
	hash, jwt, unverified, visitor store.Session
}

// all are the sessions that exist: the app's settings refuse some kinds.
func (o openChats) all() map[string]store.Session {
	m := map[string]store.Session{}
	for name, s := range map[string]store.Session{"hash": o.hash, "jwt": o.jwt, "unverified": o.unverified, "visitor": o.visitor} {
		if s.Token != "" {
			m[name] = s
		}
	}
	return m
}

// mustOpenChats makes one session of each kind the app's settings allow,
// as the session handler would: verified ones name the app's current secret
// and their proof.
func mustOpenChats(tb testing.TB, db *store.DB, app store.App) openChats {
	tb.Helper()
	open := func(in store.NewSession) store.Session {
		in.AppID, in.TTL, in.ParentOrigin = app.ID, time.Hour, "https://shop.example"
		s, err := db.CreateSession(context.Background(), in)
		if errors.Is(err, store.ErrSettingsChanged) {
			return store.Session{} // a kind the settings refuse
		}
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	verified := func(userID, proof string) store.Session {
		return open(store.NewSession{Kind: store.KindUser, IdentityKey: "uid:" + userID, UserID: userID,
			SecretID: app.IdentitySecretID, Proof: proof})
	}
	return openChats{
		hash:       verified("u-hash", store.ProofHash),
		jwt:        verified("u-jwt", store.ProofJWT),
		unverified: open(store.NewSession{Kind: store.KindUnverified, IdentityKey: "uid:u-claim", UserID: "u-claim"}),
		visitor:    open(store.NewSession{Kind: store.KindVisitor}),
	}
}

// settings are app's settings as the settings form posts them.
func settings(app store.App, mode string, requireJWT, refuseAnonymous bool) store.AppSettings {
	return store.AppSettings{Name: app.Name, Origins: app.Origins, IdentityMode: mode, RequireJWT: requireJWT, RefuseAnonymous: refuseAnonymous}
}

func mustUpdateApp(tb testing.TB, db *store.DB, appID string, s store.AppSettings) {
	tb.Helper()
	if _, err := db.UpdateApp(context.Background(), appID, s); err != nil {
		tb.Fatalf("UpdateApp(%+v): %v", s, err)
	}
}

// wantEnded checks that exactly the sessions named in ended (of chats)
// are gone, each with one settings_changed end of app, and that every
// other session of chats and of others still works.
func wantEnded(t *testing.T, db *store.DB, start int64, appID string, chats openChats, others []openChats, ended ...string) {
	t.Helper()
	var wantHashes []string
	for name, s := range chats.all() {
		gone := slices.Contains(ended, name)
		if alive := sessionAlive(t, db, s); alive == gone {
			t.Errorf("%s session alive = %v, want %v", name, alive, !gone)
		}
		if gone {
			wantHashes = append(wantHashes, s.TokenHash)
		}
	}
	for _, o := range others {
		for name, s := range o.all() {
			if !sessionAlive(t, db, s) {
				t.Errorf("the %s session of another app ended", name)
			}
		}
	}
	var gotHashes []string
	for _, e := range endsAfter(t, db, start) {
		if e.AppID != appID || e.Reason != store.EndSettingsChanged || e.TokenHash == "" {
			t.Errorf("session end %+v, want a settings_changed end of one session of %s", e, appID)
		}
		gotHashes = append(gotHashes, e.TokenHash)
	}
	slices.Sort(gotHashes)
	slices.Sort(wantHashes)
	if !slices.Equal(gotHashes, wantHashes) {
		t.Errorf("session ends name %d sessions %v, want %v (%v)", len(gotHashes), gotHashes, wantHashes, ended)
	}
}

// TestTighteningSettingsEndsSessionsNoLongerAllowed: each way of
// tightening who may chat ends, in the same update, exactly the open
// sessions the new settings would refuse, and logs each one; the app's
// other sessions and every session of another app stay.
func TestTighteningSettingsEndsSessionsNoLongerAllowed(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		mode                        string
		requireJWT, refuseAnonymous bool
		ended                       []string
	}{
		{"monitor to enforced", store.ModeEnforced, false, false, []string{"unverified"}},
		{"require JWTs", store.ModeMonitor, true, false, []string{"hash"}},
		{"refuse anonymous visitors", store.ModeMonitor, false, true, []string{"visitor"}},
		{"all three at once", store.ModeEnforced, true, true, []string{"unverified", "hash", "visitor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := MustOpenDB(t)
			a := mustApp(t, db, store.ModeMonitor).App
			other := mustApp(t, db, store.ModeMonitor).App
			chats := mustOpenChats(t, db, a)
			others := []openChats{mustOpenChats(t, db, other)}
			start, err := db.LastSessionEnd(ctx)
			if err != nil {
				t.Fatal(err)
			}

			mustUpdateApp(t, db, a.ID, settings(a, tc.mode, tc.requireJWT, tc.refuseAnonymous))
			wantEnded(t, db, start, a.ID, chats, others, tc.ended...)

			// The new settings refuse new sessions of those kinds, even
			// from a request that read the app before the update; saving
			// the same settings again ends nothing more.
			fresh := mustOpenChats(t, db, a)
			for _, kind := range tc.ended {
				if _, ok := fresh.all()[kind]; ok {
					t.Errorf("a new %s session was made after the settings refused it", kind)
				}
			}
			start, _ = db.LastSessionEnd(ctx)
			mustUpdateApp(t, db, a.ID, settings(a, tc.mode, tc.requireJWT, tc.refuseAnonymous))
			wantEnded(t, db, start, a.ID, fresh, others)
		})
	}
}

// TestLooseningOrKeepingSettingsEndsNothing: loosening who may chat, or
// saving it unchanged (with another name or origins), ends no session.
func TestLooseningOrKeepingSettingsEndsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		from store.AppSettings
		to   store.AppSettings
	}{
		{"enforced to monitor", store.AppSettings{IdentityMode: store.ModeEnforced}, store.AppSettings{IdentityMode: store.ModeMonitor}},
		{"stop requiring JWTs", store.AppSettings{IdentityMode: store.ModeEnforced, RequireJWT: true}, store.AppSettings{IdentityMode: store.ModeEnforced}},
		{"let visitors in", store.AppSettings{IdentityMode: store.ModeEnforced, RefuseAnonymous: true}, store.AppSettings{IdentityMode: store.ModeEnforced}},
		{"loosen all three", store.AppSettings{IdentityMode: store.ModeEnforced, RequireJWT: true, RefuseAnonymous: true}, store.AppSettings{IdentityMode: store.ModeMonitor}},
		{"unchanged, loose", store.AppSettings{IdentityMode: store.ModeMonitor}, store.AppSettings{IdentityMode: store.ModeMonitor}},
		{"unchanged, tight", store.AppSettings{IdentityMode: store.ModeEnforced, RequireJWT: true, RefuseAnonymous: true},
			store.AppSettings{IdentityMode: store.ModeEnforced, RequireJWT: true, RefuseAnonymous: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := MustOpenDB(t)
			c, err := db.CreateApp(ctx, store.NewApp{Name: "Shop", Origins: []string{"https://shop.example"},
				IdentityMode: tc.from.IdentityMode, RequireJWT: tc.from.RequireJWT, RefuseAnonymous: tc.from.RefuseAnonymous})
			if err != nil {
				t.Fatal(err)
			}
			a := c.App
			// Every kind of session the settings allow: an update must
			// not end any of them when it tightens nothing.
			chats := mustOpenChats(t, db, a)
			to := settings(a, tc.to.IdentityMode, tc.to.RequireJWT, tc.to.RefuseAnonymous)
			to.Name, to.Origins = "Bikes", []string{"https://bikes.example", "https://shop.example"}
			mustUpdateApp(t, db, a.ID, to)
			wantEnded(t, db, 0, a.ID, chats, nil)
		})
	}
}

// TestUpdateAppThatFailsEndsNothing: a refused update changes nothing,
// sessions included.
func TestUpdateAppThatFailsEndsNothing(t *testing.T) {
	db := MustOpenDB(t)
	a := mustApp(t, db, store.ModeMonitor).App
	chats := mustOpenChats(t, db, a)
	bad := settings(a, store.ModeEnforced, true, true)
	bad.Origins = []string{"ftp://files.example"}
	if _, err := db.UpdateApp(context.Background(), a.ID, bad); err == nil {
		t.Fatal("UpdateApp accepted a bad origin")
	}
	wantEnded(t, db, 0, a.ID, chats, nil)
}
