package client_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram"
	"github.com/engramdb/engram/client"
)

// api is the method set the embedded engram.Map and client.Map share. The
// behaviour table below runs against both, so code moves between an
// embedded node and a remote one without changing meaning.
type api interface {
	Name() string
	Get(ctx context.Context, key string) ([]byte, error)
	GetTo(ctx context.Context, dst []byte, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, opts ...engram.SetOption) error
	SetIf(ctx context.Context, key string, value []byte, opts ...engram.SetOption) (bool, error)
	UnsafeSet(ctx context.Context, key string, value []byte, opts ...engram.SetOption) error
	Delete(ctx context.Context, key string) (bool, error)
	DeleteSeq(ctx context.Context, key string, seq uint64) (bool, error)
	Contains(ctx context.Context, key string) (bool, error)
	TTL(ctx context.Context, key string) (time.Duration, error)
	Expire(ctx context.Context, key string, d time.Duration) (bool, error)
	Persist(ctx context.Context, key string) (bool, error)
	Incr(ctx context.Context, key string) (int64, error)
	IncrBy(ctx context.Context, key string, delta int64) (int64, error)
	PutAll(ctx context.Context, items []engram.KV, opts ...engram.SetOption) (int, error)
	GetAll(ctx context.Context, keys []string) (map[string][]byte, []string, error)
	RemoveItems(ctx context.Context, keys []string) (map[string][]byte, error)
	RemoveItemsSeq(ctx context.Context, keys []string, seq uint64) (map[string][]byte, error)
	Keys(ctx context.Context, pattern string) ([]string, error)
	Values(ctx context.Context) ([][]byte, error)
	Scan(ctx context.Context, cursor uint64, pattern string, count int) ([]string, uint64, error)
	EvictSince(ctx context.Context, age time.Duration) (int, error)
	Clear(ctx context.Context) error
	SetMaxTTL(ctx context.Context, d time.Duration) error
	MaxTTL(ctx context.Context) (time.Duration, error)
	SetMaxKeys(ctx context.Context, n int64) error
	Sequence(ctx context.Context) (uint64, bool, error)
	Len(ctx context.Context) (int64, error)
}

var (
	_ api = (*engram.Map)(nil)
	_ api = (*client.Map)(nil)
)

// Limits of the test node, small enough to hit from a test.
const (
	testMaxKeyLen   = 1024
	testMaxValueLen = 64 << 10
)

// startNode runs an embedded node listening for RESP on a port the OS
// picks (never a "free port" found in advance).
func startNode(t testing.TB, cfg engram.Config) *engram.Node {
	t.Helper()
	cfg.RESPAddr = "127.0.0.1:0"
	n, err := engram.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func dial(t testing.TB, n *engram.Node, protocol int) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), client.Options{Addr: n.RESPAddr(), Protocol: protocol})
	if err != nil {
		t.Fatalf("Dial(%s, RESP%d): %v", n.RESPAddr(), protocol, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// backends returns the three ways to reach one node's maps: embedded, and
// over RESP2 and RESP3.
func backends(t testing.TB, n *engram.Node) map[string]func(name string) api {
	c2, c3 := dial(t, n, 2), dial(t, n, 3)
	return map[string]func(name string) api{
		"embedded": func(name string) api { return n.Map(name) },
		"resp2":    func(name string) api { return c2.Map(name) },
		"resp3":    func(name string) api { return c3.Map(name) },
	}
}

func TestBehaviour(t *testing.T) {
	n := startNode(t, engram.Config{MaxKeyLen: testMaxKeyLen, MaxValueLen: testMaxValueLen})
	ctx := context.Background()
	for backend, mapNamed := range backends(t, n) {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			for i, tc := range behaviours() {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, ctx, mapNamed(backend+"-"+strconv.Itoa(i)))
				})
			}
		})
	}
}

type behaviour struct {
	name string
	run  func(t *testing.T, ctx context.Context, m api)
}

func set(t *testing.T, ctx context.Context, m api, key, val string, opts ...engram.SetOption) {
	t.Helper()
	if err := m.Set(ctx, key, []byte(val), opts...); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func wantValue(t *testing.T, ctx context.Context, m api, key, want string) {
	t.Helper()
	v, err := m.Get(ctx, key)
	if err != nil || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
	}
}

func wantMissing(t *testing.T, ctx context.Context, m api, key string) {
	t.Helper()
	if v, err := m.Get(ctx, key); !errors.Is(err, engram.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, v, err)
	}
}

func wantTTL(t *testing.T, ctx context.Context, m api, key string, max time.Duration) {
	t.Helper()
	d, err := m.TTL(ctx, key)
	if err != nil || d <= 0 || d > max {
		t.Fatalf("TTL(%q) = %v, %v; want in (0, %v]", key, d, err, max)
	}
}

func sorted(ss []string) []string {
	ss = slices.Clone(ss)
	slices.Sort(ss)
	return ss
}

func fill(t *testing.T, ctx context.Context, m api, n int) []string {
	t.Helper()
	items := make([]engram.KV, n)
	keys := make([]string, n)
	for i := range items {
		keys[i] = "key" + strconv.Itoa(i)
		items[i] = engram.KV{Key: keys[i], Value: []byte("v" + keys[i])}
	}
	if w, err := m.PutAll(ctx, items); err != nil || w != n {
		t.Fatalf("PutAll of %d items = %d, %v", n, w, err)
	}
	return sorted(keys)
}

func behaviours() []behaviour {
	return []behaviour{
		{"miss", func(t *testing.T, ctx context.Context, m api) {
			wantMissing(t, ctx, m, "k")
			got, err := m.GetTo(ctx, []byte("dst"), "k")
			if !errors.Is(err, engram.ErrNotFound) || string(got) != "dst" {
				t.Fatalf("GetTo miss = %q, %v", got, err)
			}
		}},
		{"set, get, get-to", func(t *testing.T, ctx context.Context, m api) {
			set(t, ctx, m, "k", "world")
			wantValue(t, ctx, m, "k", "world")
			got, err := m.GetTo(ctx, []byte("hello "), "k")
			if err != nil || string(got) != "hello world" {
				t.Fatalf("GetTo = %q, %v", got, err)
			}
		}},
		{"binary-safe", func(t *testing.T, ctx context.Context, m api) {
			for _, k := range []string{"\x00", "a\r\nb", "\xff", "sp ace", strings.Repeat("k", testMaxKeyLen)} {
				set(t, ctx, m, k, "\x00\r\n"+k)
				wantValue(t, ctx, m, k, "\x00\r\n"+k)
			}
			set(t, ctx, m, "empty", "")
			if v, err := m.Get(ctx, "empty"); err != nil || len(v) != 0 {
				t.Fatalf("empty value = %q, %v", v, err)
			}
		}},
		{"conditional writes", func(t *testing.T, ctx context.Context, m api) {
			if ok, err := m.SetIf(ctx, "k", []byte("1"), engram.IfPresent()); err != nil || ok {
				t.Fatalf("IfPresent on a missing key = %v, %v", ok, err)
			}
			if ok, err := m.SetIf(ctx, "k", []byte("1"), engram.IfAbsent(), engram.TTL(time.Hour)); err != nil || !ok {
				t.Fatalf("IfAbsent on a missing key = %v, %v", ok, err)
			}
			if ok, err := m.SetIf(ctx, "k", []byte("2"), engram.IfAbsent()); err != nil || ok {
				t.Fatalf("IfAbsent on a present key = %v, %v", ok, err)
			}
			if err := m.Set(ctx, "k", []byte("3"), engram.IfAbsent()); err != nil {
				t.Fatalf("Set IfAbsent on a present key: %v, want a silent skip", err)
			}
			wantValue(t, ctx, m, "k", "1")
			if ok, err := m.SetIf(ctx, "k", []byte("4"), engram.IfPresent(), engram.KeepTTL()); err != nil || !ok {
				t.Fatalf("IfPresent KeepTTL on a present key = %v, %v", ok, err)
			}
			wantValue(t, ctx, m, "k", "4")
			wantTTL(t, ctx, m, "k", time.Hour)
			if ok, err := m.SetIf(ctx, "k", []byte("5")); err != nil || !ok {
				t.Fatalf("unconditional SetIf = %v, %v", ok, err)
			}
		}},
		{"bad options", func(t *testing.T, ctx context.Context, m api) {
			for name, opts := range map[string][]engram.SetOption{
				"KeepTTL+TTL":        {engram.KeepTTL(), engram.TTL(time.Second)},
				"IfAbsent+IfPresent": {engram.IfAbsent(), engram.IfPresent()},
				"WithSeq+IfPresent":  {engram.WithSeq(1), engram.IfPresent()},
				"negative TTL":       {engram.TTL(-time.Second)},
			} {
				if err := m.Set(ctx, "k", nil, opts...); err == nil {
					t.Errorf("Set with %s succeeded", name)
				}
			}
			if _, err := m.PutAll(ctx, []engram.KV{{Key: "k"}}, engram.KeepTTL()); err == nil {
				t.Error("PutAll accepted KeepTTL")
			}
			wantMissing(t, ctx, m, "k")
		}},
		{"unsafe set", func(t *testing.T, ctx context.Context, m api) {
			if err := m.UnsafeSet(ctx, "k", []byte("v"), engram.TTL(time.Hour)); err != nil {
				t.Fatal(err)
			}
			wantValue(t, ctx, m, "k", "v")
			wantTTL(t, ctx, m, "k", time.Hour)
			if err := m.UnsafeSet(ctx, "k", []byte("v2"), engram.WithSeq(3)); err != nil {
				t.Fatal(err)
			}
			if seq, ok, _ := m.Sequence(ctx); !ok || seq != 3 {
				t.Fatalf("Sequence after UnsafeSet WithSeq(3) = %d, %v", seq, ok)
			}
		}},
		{"delete and contains", func(t *testing.T, ctx context.Context, m api) {
			set(t, ctx, m, "k", "v")
			if ok, err := m.Contains(ctx, "k"); err != nil || !ok {
				t.Fatalf("Contains = %v, %v", ok, err)
			}
			if ok, err := m.Delete(ctx, "k"); err != nil || !ok {
				t.Fatalf("Delete = %v, %v", ok, err)
			}
			if ok, err := m.Delete(ctx, "k"); err != nil || ok {
				t.Fatalf("second Delete = %v, %v", ok, err)
			}
			if ok, err := m.Contains(ctx, "k"); err != nil || ok {
				t.Fatalf("Contains after Delete = %v, %v", ok, err)
			}
		}},
		{"ttl, expire, persist", func(t *testing.T, ctx context.Context, m api) {
			if _, err := m.TTL(ctx, "k"); !errors.Is(err, engram.ErrNotFound) {
				t.Fatalf("TTL of a missing key: %v", err)
			}
			set(t, ctx, m, "k", "v")
			if d, err := m.TTL(ctx, "k"); err != nil || d != engram.NoExpiry {
				t.Fatalf("TTL of a persistent key = %v, %v; want NoExpiry", d, err)
			}
			if ok, err := m.Expire(ctx, "k", time.Minute); err != nil || !ok {
				t.Fatalf("Expire = %v, %v", ok, err)
			}
			wantTTL(t, ctx, m, "k", time.Minute)
			set(t, ctx, m, "k", "v2", engram.KeepTTL())
			wantTTL(t, ctx, m, "k", time.Minute)
			if ok, err := m.Persist(ctx, "k"); err != nil || !ok {
				t.Fatalf("Persist = %v, %v", ok, err)
			}
			if ok, err := m.Persist(ctx, "k"); err != nil || ok {
				t.Fatalf("second Persist = %v, %v", ok, err)
			}
			if ok, err := m.Expire(ctx, "missing", time.Minute); err != nil || ok {
				t.Fatalf("Expire of a missing key = %v, %v", ok, err)
			}
			if ok, err := m.Expire(ctx, "k", 0); err != nil || !ok {
				t.Fatalf("Expire(0) = %v, %v", ok, err)
			}
			wantMissing(t, ctx, m, "k")
		}},
		{"expiry", func(t *testing.T, ctx context.Context, m api) {
			// Real time here (a node behind a socket cannot run in a
			// synctest bubble): a short TTL and a polling deadline, with no
			// assertion on how long expiry took.
			set(t, ctx, m, "short", "v", engram.TTL(20*time.Millisecond))
			set(t, ctx, m, "long", "v", engram.TTL(time.Hour))
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, err := m.Get(ctx, "short")
				if errors.Is(err, engram.ErrNotFound) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if time.Now().After(deadline) {
					t.Fatal("a 20ms TTL did not expire within 5s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if ok, _ := m.Contains(ctx, "short"); ok {
				t.Fatal("Contains reports an expired key")
			}
			wantValue(t, ctx, m, "long", "v")
		}},
		{"incr", func(t *testing.T, ctx context.Context, m api) {
			if n, err := m.Incr(ctx, "n"); err != nil || n != 1 {
				t.Fatalf("Incr = %d, %v", n, err)
			}
			if n, err := m.IncrBy(ctx, "n", -11); err != nil || n != -10 {
				t.Fatalf("IncrBy = %d, %v", n, err)
			}
			wantValue(t, ctx, m, "n", "-10")
			for _, bad := range []string{"x", "1.5", "+1", " 1", ""} {
				set(t, ctx, m, "bad", bad)
				if _, err := m.Incr(ctx, "bad"); !errors.Is(err, engram.ErrNotInteger) {
					t.Fatalf("Incr of %q: %v, want ErrNotInteger", bad, err)
				}
			}
			set(t, ctx, m, "max", strconv.FormatInt(math.MaxInt64, 10))
			if _, err := m.Incr(ctx, "max"); !errors.Is(err, engram.ErrNotInteger) {
				t.Fatalf("Incr past MaxInt64: %v, want ErrNotInteger", err)
			}
		}},
		{"put all, get all", func(t *testing.T, ctx context.Context, m api) {
			n, err := m.PutAll(ctx, []engram.KV{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "c"}}, engram.TTL(time.Hour))
			if err != nil || n != 3 {
				t.Fatalf("PutAll = %d, %v", n, err)
			}
			wantTTL(t, ctx, m, "a", time.Hour)
			found, misses, err := m.GetAll(ctx, []string{"x", "a", "b", "c", "y"})
			want := map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": {}}
			if err != nil || !maps.EqualFunc(found, want, bytes.Equal) || !slices.Equal(misses, []string{"x", "y"}) {
				t.Fatalf("GetAll = %q, %q, %v", found, misses, err)
			}
			found, misses, err = m.GetAll(ctx, nil)
			if err != nil || len(found) != 0 || len(misses) != 0 {
				t.Fatalf("empty GetAll = %q, %q, %v", found, misses, err)
			}
			if n, err := m.PutAll(ctx, nil, engram.WithSeq(1)); err != nil || n != 0 {
				t.Fatalf("empty PutAll = %d, %v", n, err)
			}
			if _, ok, _ := m.Sequence(ctx); ok {
				t.Fatal("an empty PutAll set the sequence")
			}
			_, err = m.PutAll(ctx, []engram.KV{{Key: "new"}, {Key: strings.Repeat("k", testMaxKeyLen+1)}})
			if !errors.Is(err, engram.ErrKeyTooLong) {
				t.Fatalf("PutAll with a long key: %v, want ErrKeyTooLong", err)
			}
			wantMissing(t, ctx, m, "new") // the batch changed nothing
		}},
		{"remove items", func(t *testing.T, ctx context.Context, m api) {
			set(t, ctx, m, "a", "1")
			set(t, ctx, m, "b", "2")
			got, err := m.RemoveItems(ctx, []string{"a", "missing", "b"})
			if err != nil || !maps.EqualFunc(got, map[string][]byte{"a": []byte("1"), "b": []byte("2")}, bytes.Equal) {
				t.Fatalf("RemoveItems = %q, %v", got, err)
			}
			wantMissing(t, ctx, m, "a")
			if got, err := m.RemoveItems(ctx, nil); err != nil || len(got) != 0 {
				t.Fatalf("empty RemoveItems = %q, %v", got, err)
			}
		}},
		{"sequences", func(t *testing.T, ctx context.Context, m api) {
			if _, ok, err := m.Sequence(ctx); err != nil || ok {
				t.Fatalf("Sequence of a new map: %v, %v", ok, err)
			}
			set(t, ctx, m, "k", "5", engram.WithSeq(5), engram.TTL(time.Hour))
			wantTTL(t, ctx, m, "k", time.Hour)
			err := m.Set(ctx, "k", []byte("4"), engram.WithSeq(4))
			if !errors.Is(err, engram.ErrOutOfSequence) || !strings.Contains(err.Error(), "5") {
				t.Fatalf("lower sequence: %v, want ErrOutOfSequence naming the current 5", err)
			}
			if _, err := m.DeleteSeq(ctx, "k", 4); !errors.Is(err, engram.ErrOutOfSequence) {
				t.Fatalf("DeleteSeq lower: %v", err)
			}
			if _, err := m.PutAll(ctx, []engram.KV{{Key: "p"}}, engram.WithSeq(3)); !errors.Is(err, engram.ErrOutOfSequence) {
				t.Fatalf("PutAll lower: %v", err)
			}
			if _, err := m.RemoveItemsSeq(ctx, []string{"k"}, 2); !errors.Is(err, engram.ErrOutOfSequence) {
				t.Fatalf("RemoveItemsSeq lower: %v", err)
			}
			wantValue(t, ctx, m, "k", "5")
			wantMissing(t, ctx, m, "p")
			set(t, ctx, m, "k", "5b", engram.WithSeq(5)) // equal is accepted
			if ok, err := m.DeleteSeq(ctx, "k", 6); err != nil || !ok {
				t.Fatalf("DeleteSeq = %v, %v", ok, err)
			}
			if n, err := m.PutAll(ctx, []engram.KV{{Key: "p", Value: []byte("1")}, {Key: "q", Value: []byte("2")}}, engram.WithSeq(7), engram.TTL(time.Minute)); err != nil || n != 2 {
				t.Fatalf("PutAll WithSeq = %d, %v", n, err)
			}
			wantTTL(t, ctx, m, "q", time.Minute)
			got, err := m.RemoveItemsSeq(ctx, []string{"p", "nope"}, 8)
			if err != nil || len(got) != 1 || string(got["p"]) != "1" {
				t.Fatalf("RemoveItemsSeq = %q, %v", got, err)
			}
			if seq, ok, err := m.Sequence(ctx); err != nil || !ok || seq != 8 {
				t.Fatalf("Sequence = %d, %v, %v; want 8", seq, ok, err)
			}
		}},
		{"keys, values, len", func(t *testing.T, ctx context.Context, m api) {
			for _, k := range []string{"user:1", "user:2", "order:1"} {
				set(t, ctx, m, k, "v-"+k)
			}
			for pattern, want := range map[string][]string{
				"":       {"order:1", "user:1", "user:2"},
				"*":      {"order:1", "user:1", "user:2"},
				"user:*": {"user:1", "user:2"},
				"*:1":    {"order:1", "user:1"},
				"none*":  {},
			} {
				got, err := m.Keys(ctx, pattern)
				if err != nil || !slices.Equal(sorted(got), want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("Keys(%q) = %q, %v; want %q", pattern, got, err, want)
				}
			}
			vals, err := m.Values(ctx)
			var got []string
			for _, v := range vals {
				got = append(got, string(v))
			}
			if err != nil || !slices.Equal(sorted(got), []string{"v-order:1", "v-user:1", "v-user:2"}) {
				t.Fatalf("Values = %q, %v", got, err)
			}
			if n, err := m.Len(ctx); err != nil || n != 3 {
				t.Fatalf("Len = %d, %v", n, err)
			}
		}},
		{"scan", func(t *testing.T, ctx context.Context, m api) {
			want := fill(t, ctx, m, 1000)
			var got []string
			var cursor uint64
			for pages := 0; ; pages++ {
				keys, next, err := m.Scan(ctx, cursor, "", 50)
				if err != nil {
					t.Fatal(err)
				}
				if pages > 1000 {
					t.Fatal("Scan does not end")
				}
				got = append(got, keys...)
				if next == 0 {
					break
				}
				cursor = next
			}
			if !slices.Equal(sorted(got), want) {
				t.Fatalf("Scan returned %d keys (%d distinct), want each of %d once", len(got), len(slices.Compact(sorted(got))), len(want))
			}
			keys, _, err := m.Scan(ctx, 0, "key99*", 100000)
			if err != nil || !slices.Equal(sorted(keys), []string{"key99", "key990", "key991", "key992", "key993", "key994", "key995", "key996", "key997", "key998", "key999"}) {
				t.Fatalf("Scan MATCH key99* = %q, %v", sorted(keys), err)
			}
		}},
		{"evict since", func(t *testing.T, ctx context.Context, m api) {
			fill(t, ctx, m, 10)
			if n, err := m.EvictSince(ctx, time.Hour); err != nil || n != 0 {
				t.Fatalf("EvictSince(1h) = %d, %v", n, err)
			}
			if _, err := m.EvictSince(ctx, -time.Second); err == nil {
				t.Fatal("EvictSince accepted a negative age")
			}
			if n, err := m.EvictSince(ctx, 0); err != nil || n != 10 {
				t.Fatalf("EvictSince(0) = %d, %v; want 10", n, err)
			}
		}},
		{"clear", func(t *testing.T, ctx context.Context, m api) {
			fill(t, ctx, m, 10)
			if err := m.Clear(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := m.Len(ctx); err != nil || n != 0 {
				t.Fatalf("Len after Clear = %d, %v", n, err)
			}
		}},
		{"max ttl", func(t *testing.T, ctx context.Context, m api) {
			if d, err := m.MaxTTL(ctx); err != nil || d != 0 {
				t.Fatalf("MaxTTL of a new map = %v, %v", d, err)
			}
			for _, c := range []struct{ set, want time.Duration }{
				{90 * time.Minute, 90 * time.Minute},
				{1500 * time.Millisecond, 2 * time.Second},
				{0, 0},
			} {
				if err := m.SetMaxTTL(ctx, c.set); err != nil {
					t.Fatal(err)
				}
				if d, err := m.MaxTTL(ctx); err != nil || d != c.want {
					t.Fatalf("MaxTTL after SetMaxTTL(%v) = %v, %v; want %v", c.set, d, err, c.want)
				}
			}
			if err := m.SetMaxTTL(ctx, -time.Second); err == nil {
				t.Fatal("SetMaxTTL accepted a negative duration")
			}
			set(t, ctx, m, "k", "v")
			if err := m.SetMaxTTL(ctx, time.Hour); err != nil {
				t.Fatal(err)
			}
			wantTTL(t, ctx, m, "k", time.Hour)
		}},
		{"max keys", func(t *testing.T, ctx context.Context, m api) {
			if err := m.SetMaxKeys(ctx, 2); err != nil {
				t.Fatal(err)
			}
			set(t, ctx, m, "a", "1")
			set(t, ctx, m, "b", "1")
			err := m.Set(ctx, "c", nil)
			if !errors.Is(err, engram.ErrMapFull) || !strings.Contains(err.Error(), "limit is 2") {
				t.Fatalf("third key: %v, want ErrMapFull saying the limit", err)
			}
			set(t, ctx, m, "a", "2")
			if err := m.SetMaxKeys(ctx, -1); err == nil {
				t.Fatal("SetMaxKeys accepted -1")
			}
			if err := m.SetMaxKeys(ctx, 0); err != nil {
				t.Fatal(err)
			}
			set(t, ctx, m, "c", "1")
		}},
		{"limits", func(t *testing.T, ctx context.Context, m api) {
			err := m.Set(ctx, strings.Repeat("k", testMaxKeyLen+1), nil)
			if !errors.Is(err, engram.ErrKeyTooLong) || !strings.Contains(err.Error(), strconv.Itoa(testMaxKeyLen)) {
				t.Fatalf("long key: %v, want ErrKeyTooLong saying the limit", err)
			}
			err = m.Set(ctx, "k", make([]byte, testMaxValueLen+1))
			if !errors.Is(err, engram.ErrValueTooLarge) || !strings.Contains(err.Error(), strconv.Itoa(testMaxValueLen)) {
				t.Fatalf("large value: %v, want ErrValueTooLarge saying the limit", err)
			}
			if _, err := m.Incr(ctx, strings.Repeat("k", testMaxKeyLen+1)); !errors.Is(err, engram.ErrKeyTooLong) {
				t.Fatalf("Incr of a long key: %v, want ErrKeyTooLong", err)
			}
			wantMissing(t, ctx, m, "k")
		}},
	}
}
