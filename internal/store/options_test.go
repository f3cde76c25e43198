package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

func TestSynchronousOption(t *testing.T) {
	onlySQLite(t)
	// SQLite's numbers: NORMAL is 1, FULL is 2.
	for _, tc := range []struct {
		opt  store.Synchronous
		want int
	}{{"", 2}, {store.SyncFull, 2}, {store.SyncNormal, 1}} {
		db, err := store.OpenWith(context.Background(), filepath.Join(t.TempDir(), "p.db"), testKey, store.Options{Synchronous: tc.opt})
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.WriterPragma("synchronous")
		db.Close()
		if err != nil || got != tc.want {
			t.Errorf("synchronous %q: PRAGMA synchronous = %d, %v; want %d", tc.opt, got, err, tc.want)
		}
	}
	if _, err := store.OpenWith(context.Background(), filepath.Join(t.TempDir(), "p.db"), testKey, store.Options{Synchronous: "off"}); err == nil {
		t.Error(`synchronous "off" was accepted`)
	}
}

func TestParseSynchronous(t *testing.T) {
	onlySQLite(t)
	for in, want := range map[string]store.Synchronous{"full": store.SyncFull, "FULL": store.SyncFull, " normal ": store.SyncNormal} {
		if got, err := store.ParseSynchronous(in); err != nil || got != want {
			t.Errorf("ParseSynchronous(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "off", "extra", "2"} {
		if _, err := store.ParseSynchronous(in); err == nil {
			t.Errorf("ParseSynchronous(%q) accepted", in)
		}
	}
}

// The group commit's savepoints journal in memory, not in a temp file.
func TestWriterKeepsTempStoreInMemory(t *testing.T) {
	onlySQLite(t)
	db := MustOpenDB(t)
	if got, err := db.WriterPragma("temp_store"); err != nil || got != 2 {
		t.Errorf("PRAGMA temp_store = %d, %v; want 2 (MEMORY)", got, err)
	}
}

// TestCheckpointsRunBesideTheWriter: the writer never checkpoints (so no
// commit pays for one), and the background checkpointer copies the WAL
// into the database file within a few seconds.
func TestCheckpointsRunBesideTheWriter(t *testing.T) {
	onlySQLite(t)
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := store.Open(context.Background(), path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.WriterPragma("wal_autocheckpoint"); err != nil || got != 0 {
		t.Fatalf("writer's wal_autocheckpoint = %d, %v; want 0", got, err)
	}
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Let the checkpointer copy what Open wrote, then measure.
	time.Sleep(2500 * time.Millisecond)
	before := size()
	a := mustApp(t, db, store.ModeEnforced)
	s := mustSession(t, db, store.NewSession{AppID: a.App.ID, Kind: store.KindUser, IdentityKey: "uid:x", UserID: "x"})
	body := strings.Repeat("x", 1000)
	for i := range 500 {
		mustSend(t, db, s, "", fmt.Sprint(i), body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for size() < before+400*1000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes, was %d before 500 KB of messages: the WAL was not checkpointed", size(), before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
