package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

func TestSynchronousOption(t *testing.T) {
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
	db := MustOpenDB(t)
	if got, err := db.WriterPragma("temp_store"); err != nil || got != 2 {
		t.Errorf("PRAGMA temp_store = %d, %v; want 2 (MEMORY)", got, err)
	}
}
