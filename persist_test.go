package engram_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/engramdb/engram"
)

func TestEmbeddedBackingStore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, err := engram.Open(engram.Config{Store: "file://" + dir + "?fsync=false", StoreDefaults: "mode=write-behind delay=1h"})
	if err != nil {
		t.Fatal(err)
	}
	m := n.Map("users")
	if err := m.Set(ctx, "u1", []byte("alice")); err != nil {
		t.Fatal(err)
	}
	// Pending until saved (the delay is an hour).
	if st := n.StoreStatus(); len(st) != 1 || st[0].Pending != 1 || st[0].Map != "users" {
		t.Fatalf("status %+v", st)
	}
	if k, err := m.Save(ctx, "u1"); err != nil || k != 1 {
		t.Fatalf("Save: %d %v", k, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "users", "u1")); err != nil {
		t.Fatalf("after Save the store has no file: %v", err)
	}
	// Gone from memory, read back from the store.
	if err := m.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Get(ctx, "u1"); err != nil || string(v) != "alice" {
		t.Fatalf("read-through Get: %q %v", v, err)
	}
	if _, err := m.Get(ctx, "nobody"); !errors.Is(err, engram.ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	// Settings per map; a broken store is ErrStore, not ErrNotFound.
	bad := filepath.Join(t.TempDir(), "file")
	os.WriteFile(bad, []byte("x"), 0o644)
	b2 := n.Map("broken")
	if err := b2.ConfigureStore(ctx, "mode=read-through store=file://"+bad); !errors.Is(err, engram.ErrStore) {
		t.Fatalf("a store that cannot be opened: %v, want ErrStore", err)
	}
	if err := b2.ConfigureStore(ctx, "mode=sometimes"); err == nil {
		t.Fatal("a bad mode was accepted")
	}
	set, err := m.StoreSettings(ctx)
	if err != nil || set["mode"] != "write-behind" || set["delay"] != "1h0m0s" {
		t.Fatalf("settings %v %v", set, err)
	}
	// Close writes back what is pending.
	m.Set(ctx, "u2", []byte("bob"))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "users", "u2")); err != nil || string(b) != "bob" {
		t.Fatalf("after Close the store has u2 = %q %v", b, err)
	}
}
