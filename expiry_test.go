package engram_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/engramdb/engram"
)

// TestExpiry runs in a synctest bubble: the node's clock and its sweeper
// run on fake time, so the test waits hours in no real time and asserts
// exact TTLs.
func TestExpiry(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, m *engram.Map)
	}{
		{"item TTL", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "k", "v", engram.TTL(100*time.Millisecond))
			if d, err := m.TTL(ctx, "k"); err != nil || d != 100*time.Millisecond {
				t.Fatalf("TTL = %v, %v; want exactly 100ms on a stopped clock", d, err)
			}
			sleep(99 * time.Millisecond)
			wantValue(t, ctx, m, "k", "v")
			sleep(time.Millisecond)
			wantGone(t, ctx, m, "k")
		}},
		{"millisecond precision", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "k", "v", engram.TTL(1500*time.Microsecond)) // rounds up to 2ms
			sleep(time.Millisecond)
			wantValue(t, ctx, m, "k", "v")
			sleep(time.Millisecond)
			wantGone(t, ctx, m, "k")
		}},
		{"Expire and Persist", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "a", "v")
			mustSet(t, ctx, m, "b", "v", engram.TTL(time.Second))
			if ok, err := m.Expire(ctx, "a", time.Minute); err != nil || !ok {
				t.Fatalf("Expire = %v, %v", ok, err)
			}
			if ok, err := m.Persist(ctx, "b"); err != nil || !ok {
				t.Fatalf("Persist = %v, %v", ok, err)
			}
			sleep(time.Minute)
			wantGone(t, ctx, m, "a")
			wantValue(t, ctx, m, "b", "v")
		}},
		{"KeepTTL, Incr and PutAll keep or set expiry", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "k", "1", engram.TTL(time.Second))
			mustSet(t, ctx, m, "k", "2", engram.KeepTTL())
			if _, err := m.Incr(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if _, err := m.PutAll(ctx, []engram.KV{{Key: "p", Value: []byte("v")}}, engram.TTL(time.Second)); err != nil {
				t.Fatal(err)
			}
			if d, _ := m.TTL(ctx, "k"); d != time.Second {
				t.Fatalf("TTL after KeepTTL and Incr = %v, want 1s", d)
			}
			sleep(time.Second)
			wantGone(t, ctx, m, "k")
			wantGone(t, ctx, m, "p")
		}},
		{"map max TTL", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "k", "v")
			if err := m.SetMaxTTL(ctx, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			if d, err := m.TTL(ctx, "k"); err != nil || d != 2*time.Second {
				t.Fatalf("TTL under a 2s max TTL = %v, %v", d, err)
			}
			sleep(2 * time.Second)
			wantGone(t, ctx, m, "k")
		}},
		{"expired items are swept", func(t *testing.T, ctx context.Context, m *engram.Map) {
			fill(t, ctx, m, 50)
			for k := range m.KeysSeq(ctx, "") {
				if ok, err := m.Expire(ctx, k, time.Millisecond); err != nil || !ok {
					t.Fatal(err)
				}
			}
			// The background job runs every 100ms; give it a few ticks of
			// fake time, then wait until it is idle again.
			sleep(time.Second)
			synctest.Wait()
			if n, _ := m.Len(ctx); n != 0 {
				t.Fatalf("Len = %d a second after every key expired, want 0 (swept)", n)
			}
		}},
		{"EvictSince by age", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "old", "v")
			sleep(2 * time.Second)
			mustSet(t, ctx, m, "new", "v")
			if n, err := m.EvictSince(ctx, time.Second); err != nil || n != 1 {
				t.Fatalf("EvictSince(1s) = %d, %v; want 1", n, err)
			}
			wantMissing(t, ctx, m, "old")
			wantValue(t, ctx, m, "new", "v")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n, err := engram.Open(engram.Config{})
				if err != nil {
					t.Fatal(err)
				}
				// Close inside the bubble: its sweeper goroutine must end
				// before the bubble does.
				defer n.Close()
				tt.run(t, context.Background(), n.Map("m"))
			})
		})
	}
}

// wantGone checks an expired key is absent from every read, whether or
// not the background job removed it yet.
func wantGone(t *testing.T, ctx context.Context, m *engram.Map, key string) {
	t.Helper()
	wantMissing(t, ctx, m, key)
	if ok, err := m.Contains(ctx, key); err != nil || ok {
		t.Fatalf("Contains(%q) of an expired key = %v, %v", key, ok, err)
	}
	if _, err := m.TTL(ctx, key); !errors.Is(err, engram.ErrNotFound) {
		t.Fatalf("TTL(%q) of an expired key: %v, want ErrNotFound", key, err)
	}
	if _, misses, _ := m.GetAll(ctx, []string{key}); len(misses) != 1 {
		t.Fatalf("GetAll returned expired key %q", key)
	}
	for k := range m.All(ctx) {
		if k == key {
			t.Fatalf("All yielded expired key %q", key)
		}
	}
}

// sleep advances fake time, then lets the node's coarse clock (a goroutine
// ticking every millisecond) catch up before the test reads: the clock is
// allowed to be a tick behind, and this test asserts exact instants.
func sleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}
