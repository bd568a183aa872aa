package engram_test

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
)

// mapCase is one behaviour of the embedded Map. Each runs on a map of its
// own, so cases cannot see each other's keys.
type mapCase struct {
	name string
	run  func(t *testing.T, ctx context.Context, m *engram.Map)
}

func TestMap(t *testing.T) {
	n := open(t, engram.Config{MaxKeyLen: 1024})
	ctx := context.Background()
	for i, tc := range mapCases() {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, ctx, n.Map("case"+strconv.Itoa(i))) })
	}
}

func mustSet(t *testing.T, ctx context.Context, m *engram.Map, key, val string, opts ...engram.SetOption) {
	t.Helper()
	if err := m.Set(ctx, key, []byte(val), opts...); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func wantValue(t *testing.T, ctx context.Context, m *engram.Map, key, want string) {
	t.Helper()
	v, err := m.Get(ctx, key)
	if err != nil || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
	}
}

func wantMissing(t *testing.T, ctx context.Context, m *engram.Map, key string) {
	t.Helper()
	if v, err := m.Get(ctx, key); !errors.Is(err, engram.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, v, err)
	}
}

func mapCases() []mapCase {
	return []mapCase{
		{"Get and GetTo miss", func(t *testing.T, ctx context.Context, m *engram.Map) {
			wantMissing(t, ctx, m, "k")
			dst := []byte("prefix")
			got, err := m.GetTo(ctx, dst, "k")
			if !errors.Is(err, engram.ErrNotFound) || string(got) != "prefix" {
				t.Fatalf("GetTo miss = %q, %v; want dst unchanged and ErrNotFound", got, err)
			}
		}},
		{"Set copies in, Get copies out", func(t *testing.T, ctx context.Context, m *engram.Map) {
			val := []byte("hello")
			if err := m.Set(ctx, "k", val); err != nil {
				t.Fatal(err)
			}
			val[0] = 'J' // the caller's buffer is the caller's
			got, _ := m.Get(ctx, "k")
			got[0] = 'Y'
			wantValue(t, ctx, m, "k", "hello")
		}},
		{"GetTo appends", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "k", "world")
			got, err := m.GetTo(ctx, []byte("hello "), "k")
			if err != nil || string(got) != "hello world" {
				t.Fatalf("GetTo = %q, %v", got, err)
			}
		}},
		{"keys and values are binary-safe", func(t *testing.T, ctx context.Context, m *engram.Map) {
			for _, k := range []string{"", "\x00", "a\r\nb", "\xff\xfe", strings.Repeat("k", 1024)} {
				mustSet(t, ctx, m, k, "\x00v\r\n"+k)
				wantValue(t, ctx, m, k, "\x00v\r\n"+k)
			}
			mustSet(t, ctx, m, "empty", "")
			if v, err := m.Get(ctx, "empty"); err != nil || len(v) != 0 {
				t.Fatalf("empty value: %q, %v", v, err)
			}
		}},
		{"SetIf IfAbsent", func(t *testing.T, ctx context.Context, m *engram.Map) {
			ok, err := m.SetIf(ctx, "k", []byte("1"), engram.IfAbsent())
			if err != nil || !ok {
				t.Fatalf("first SetIf IfAbsent = %v, %v; want true", ok, err)
			}
			ok, err = m.SetIf(ctx, "k", []byte("2"), engram.IfAbsent())
			if err != nil || ok {
				t.Fatalf("second SetIf IfAbsent = %v, %v; want false", ok, err)
			}
			if err := m.Set(ctx, "k", []byte("3"), engram.IfAbsent()); err != nil {
				t.Fatalf("Set IfAbsent on a present key: %v, want a silent skip", err)
			}
			wantValue(t, ctx, m, "k", "1")
		}},
		{"SetIf IfPresent", func(t *testing.T, ctx context.Context, m *engram.Map) {
			ok, err := m.SetIf(ctx, "k", []byte("1"), engram.IfPresent())
			if err != nil || ok {
				t.Fatalf("SetIf IfPresent on a missing key = %v, %v; want false", ok, err)
			}
			wantMissing(t, ctx, m, "k")
			mustSet(t, ctx, m, "k", "1")
			ok, err = m.SetIf(ctx, "k", []byte("2"), engram.IfPresent())
			if err != nil || !ok {
				t.Fatalf("SetIf IfPresent on a present key = %v, %v; want true", ok, err)
			}
			wantValue(t, ctx, m, "k", "2")
			if ok, err := m.SetIf(ctx, "k", []byte("3")); err != nil || !ok {
				t.Fatalf("unconditional SetIf = %v, %v; want true", ok, err)
			}
		}},
		{"contradictory options write nothing", func(t *testing.T, ctx context.Context, m *engram.Map) {
			for name, opts := range map[string][]engram.SetOption{
				"KeepTTL+TTL":        {engram.KeepTTL(), engram.TTL(time.Second)},
				"IfAbsent+IfPresent": {engram.IfAbsent(), engram.IfPresent()},
				"WithSeq+IfAbsent":   {engram.WithSeq(1), engram.IfAbsent()},
				"WithSeq+KeepTTL":    {engram.WithSeq(1), engram.KeepTTL()},
				"negative TTL":       {engram.TTL(-time.Second)},
			} {
				if err := m.Set(ctx, "k", []byte("v"), opts...); err == nil {
					t.Errorf("Set with %s succeeded, want an error", name)
				}
			}
			wantMissing(t, ctx, m, "k")
			if _, ok, _ := m.Sequence(ctx); ok {
				t.Fatal("a refused WithSeq write set the sequence")
			}
		}},
		{"zero SetOption and TTL(0) do nothing", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "k", "v", engram.SetOption{}, engram.TTL(0))
			if d, err := m.TTL(ctx, "k"); err != nil || d != engram.NoExpiry {
				t.Fatalf("TTL = %v, %v; want NoExpiry", d, err)
			}
		}},
		{"UnsafeSet", func(t *testing.T, ctx context.Context, m *engram.Map) {
			if err := m.UnsafeSet(ctx, "k", []byte("v"), engram.TTL(time.Hour)); err != nil {
				t.Fatal(err)
			}
			wantValue(t, ctx, m, "k", "v")
		}},
		{"Delete and Contains", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "k", "v")
			if ok, err := m.Contains(ctx, "k"); err != nil || !ok {
				t.Fatalf("Contains = %v, %v; want true", ok, err)
			}
			if ok, err := m.Delete(ctx, "k"); err != nil || !ok {
				t.Fatalf("Delete = %v, %v; want true", ok, err)
			}
			if ok, err := m.Delete(ctx, "k"); err != nil || ok {
				t.Fatalf("second Delete = %v, %v; want false", ok, err)
			}
			if ok, err := m.Contains(ctx, "k"); err != nil || ok {
				t.Fatalf("Contains after Delete = %v, %v; want false", ok, err)
			}
		}},
		{"TTL, KeepTTL, Expire, Persist", func(t *testing.T, ctx context.Context, m *engram.Map) {
			if _, err := m.TTL(ctx, "k"); !errors.Is(err, engram.ErrNotFound) {
				t.Fatalf("TTL of a missing key: %v, want ErrNotFound", err)
			}
			mustSet(t, ctx, m, "k", "v", engram.TTL(time.Hour))
			wantTTL(t, ctx, m, "k", time.Hour)
			mustSet(t, ctx, m, "k", "v2", engram.KeepTTL())
			wantTTL(t, ctx, m, "k", time.Hour)
			mustSet(t, ctx, m, "k", "v3")
			if d, _ := m.TTL(ctx, "k"); d != engram.NoExpiry {
				t.Fatalf("TTL after a plain Set = %v, want NoExpiry (a write without KeepTTL clears it)", d)
			}
			if ok, err := m.Expire(ctx, "k", time.Minute); err != nil || !ok {
				t.Fatalf("Expire = %v, %v; want true", ok, err)
			}
			wantTTL(t, ctx, m, "k", time.Minute)
			if ok, err := m.Persist(ctx, "k"); err != nil || !ok {
				t.Fatalf("Persist = %v, %v; want true", ok, err)
			}
			if ok, err := m.Persist(ctx, "k"); err != nil || ok {
				t.Fatalf("Persist of a persistent key = %v, %v; want false", ok, err)
			}
			if ok, err := m.Expire(ctx, "missing", time.Minute); err != nil || ok {
				t.Fatalf("Expire of a missing key = %v, %v; want false", ok, err)
			}
			if ok, err := m.Expire(ctx, "k", 0); err != nil || !ok {
				t.Fatalf("Expire(0) = %v, %v; want true", ok, err)
			}
			wantMissing(t, ctx, m, "k")
		}},
		{"Incr and IncrBy", func(t *testing.T, ctx context.Context, m *engram.Map) {
			if n, err := m.Incr(ctx, "n"); err != nil || n != 1 {
				t.Fatalf("Incr of a missing key = %d, %v; want 1", n, err)
			}
			if n, err := m.IncrBy(ctx, "n", -11); err != nil || n != -10 {
				t.Fatalf("IncrBy -11 = %d, %v; want -10", n, err)
			}
			wantValue(t, ctx, m, "n", "-10")
			mustSet(t, ctx, m, "s", "12a")
			if _, err := m.Incr(ctx, "s"); !errors.Is(err, engram.ErrNotInteger) {
				t.Fatalf("Incr of %q: %v, want ErrNotInteger", "12a", err)
			}
			mustSet(t, ctx, m, "plus", "+1")
			if _, err := m.Incr(ctx, "plus"); !errors.Is(err, engram.ErrNotInteger) {
				t.Fatalf("Incr of %q: %v, want ErrNotInteger (Redis refuses a '+')", "+1", err)
			}
			mustSet(t, ctx, m, "big", strconv.FormatInt(math.MaxInt64, 10), engram.TTL(time.Hour))
			if _, err := m.Incr(ctx, "big"); !errors.Is(err, engram.ErrNotInteger) {
				t.Fatalf("Incr past MaxInt64: %v, want ErrNotInteger", err)
			}
			wantValue(t, ctx, m, "big", strconv.FormatInt(math.MaxInt64, 10))
			if _, err := m.IncrBy(ctx, "big", -1); err != nil {
				t.Fatal(err)
			}
			wantTTL(t, ctx, m, "big", time.Hour) // an increment keeps the expiry
		}},
		{"PutAll and GetAll", func(t *testing.T, ctx context.Context, m *engram.Map) {
			n, err := m.PutAll(ctx, []engram.KV{{"a", []byte("1")}, {"b", []byte("2")}, {"c", nil}}, engram.TTL(time.Hour))
			if err != nil || n != 3 {
				t.Fatalf("PutAll = %d, %v; want 3", n, err)
			}
			wantTTL(t, ctx, m, "b", time.Hour)
			found, misses, err := m.GetAll(ctx, []string{"x", "a", "b", "c", "y"})
			want := map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": {}}
			if err != nil || !maps.EqualFunc(found, want, bytes.Equal) || !slices.Equal(misses, []string{"x", "y"}) {
				t.Fatalf("GetAll = %q, %q, %v; want %q, [x y]", found, misses, err, want)
			}
			if n, err := m.PutAll(ctx, nil); err != nil || n != 0 {
				t.Fatalf("empty PutAll = %d, %v", n, err)
			}
			if _, err := m.PutAll(ctx, []engram.KV{{"a", nil}}, engram.IfAbsent()); err == nil {
				t.Fatal("PutAll accepted IfAbsent")
			}
			// One item over a limit: the batch changes nothing.
			_, err = m.PutAll(ctx, []engram.KV{{"new", []byte("x")}, {strings.Repeat("k", 1025), nil}})
			if !errors.Is(err, engram.ErrKeyTooLong) {
				t.Fatalf("PutAll with a long key: %v, want ErrKeyTooLong", err)
			}
			wantMissing(t, ctx, m, "new")
		}},
		{"RemoveItems", func(t *testing.T, ctx context.Context, m *engram.Map) {
			mustSet(t, ctx, m, "a", "1")
			mustSet(t, ctx, m, "b", "2")
			got, err := m.RemoveItems(ctx, []string{"a", "missing", "b"})
			if err != nil || !maps.EqualFunc(got, map[string][]byte{"a": []byte("1"), "b": []byte("2")}, bytes.Equal) {
				t.Fatalf("RemoveItems = %q, %v", got, err)
			}
			wantMissing(t, ctx, m, "a")
			if got, err := m.RemoveItems(ctx, nil); err != nil || len(got) != 0 {
				t.Fatalf("empty RemoveItems = %q, %v", got, err)
			}
		}},
		{"sequence-checked operations", func(t *testing.T, ctx context.Context, m *engram.Map) {
			if _, ok, err := m.Sequence(ctx); err != nil || ok {
				t.Fatalf("Sequence of a new map: ok=%v, %v; want none", ok, err)
			}
			mustSet(t, ctx, m, "k", "5", engram.WithSeq(5), engram.TTL(time.Hour))
			wantTTL(t, ctx, m, "k", time.Hour)
			if err := m.Set(ctx, "k", []byte("4"), engram.WithSeq(4)); !errors.Is(err, engram.ErrOutOfSequence) {
				t.Fatalf("Set with a lower sequence: %v, want ErrOutOfSequence", err)
			}
			wantValue(t, ctx, m, "k", "5")
			mustSet(t, ctx, m, "k", "5b", engram.WithSeq(5)) // equal is accepted
			if _, err := m.DeleteSeq(ctx, "k", 4); !errors.Is(err, engram.ErrOutOfSequence) {
				t.Fatalf("DeleteSeq lower: %v", err)
			}
			if _, err := m.PutAll(ctx, []engram.KV{{"p", nil}}, engram.WithSeq(3)); !errors.Is(err, engram.ErrOutOfSequence) {
				t.Fatalf("PutAll lower: %v", err)
			}
			if _, err := m.RemoveItemsSeq(ctx, []string{"k"}, 2); !errors.Is(err, engram.ErrOutOfSequence) {
				t.Fatalf("RemoveItemsSeq lower: %v", err)
			}
			wantValue(t, ctx, m, "k", "5b")
			wantMissing(t, ctx, m, "p")
			if ok, err := m.DeleteSeq(ctx, "k", 6); err != nil || !ok {
				t.Fatalf("DeleteSeq = %v, %v; want true", ok, err)
			}
			if n, err := m.PutAll(ctx, []engram.KV{{"p", []byte("1")}, {"q", []byte("2")}}, engram.WithSeq(7)); err != nil || n != 2 {
				t.Fatalf("PutAll WithSeq = %d, %v", n, err)
			}
			got, err := m.RemoveItemsSeq(ctx, []string{"p"}, 8)
			if err != nil || string(got["p"]) != "1" || len(got) != 1 {
				t.Fatalf("RemoveItemsSeq = %q, %v", got, err)
			}
			if seq, ok, err := m.Sequence(ctx); err != nil || !ok || seq != 8 {
				t.Fatalf("Sequence = %d, %v, %v; want 8", seq, ok, err)
			}
		}},
		{"Keys, Values, Len", func(t *testing.T, ctx context.Context, m *engram.Map) {
			for _, k := range []string{"user:1", "user:2", "order:1"} {
				mustSet(t, ctx, m, k, "v-"+k)
			}
			for pattern, want := range map[string][]string{
				"":       {"order:1", "user:1", "user:2"},
				"*":      {"order:1", "user:1", "user:2"},
				"user:*": {"user:1", "user:2"},
				"*:1":    {"order:1", "user:1"},
				"none*":  nil,
			} {
				got, err := m.Keys(ctx, pattern)
				slices.Sort(got)
				if err != nil || !slices.Equal(got, want) {
					t.Errorf("Keys(%q) = %q, %v; want %q", pattern, got, err, want)
				}
			}
			vals, err := m.Values(ctx)
			var got []string
			for _, v := range vals {
				got = append(got, string(v))
			}
			slices.Sort(got)
			if err != nil || !slices.Equal(got, []string{"v-order:1", "v-user:1", "v-user:2"}) {
				t.Fatalf("Values = %q, %v", got, err)
			}
			if n, err := m.Len(ctx); err != nil || n != 3 {
				t.Fatalf("Len = %d, %v; want 3", n, err)
			}
		}},
		{"Scan returns every key once", func(t *testing.T, ctx context.Context, m *engram.Map) {
			want := fill(t, ctx, m, 1000)
			seen := map[string]int{}
			var cursor uint64
			for pages := 0; ; pages++ {
				keys, next, err := m.Scan(ctx, cursor, "", 100)
				if err != nil {
					t.Fatal(err)
				}
				if pages > 1000 {
					t.Fatal("Scan does not end")
				}
				for _, k := range keys {
					seen[k]++
				}
				if next == 0 {
					break
				}
				cursor = next
			}
			checkOnce(t, seen, want)
			keys, _, _ := m.Scan(ctx, 0, "key1*", 10000)
			for _, k := range keys {
				if !strings.HasPrefix(k, "key1") {
					t.Fatalf("Scan MATCH key1* returned %q", k)
				}
			}
			if keys, next, err := m.Scan(ctx, math.MaxUint64, "", 10); err != nil || next != 0 || len(keys) != 0 {
				t.Fatalf("Scan past the end = %q, %d, %v; want an empty last page", keys, next, err)
			}
		}},
		{"All and KeysSeq", func(t *testing.T, ctx context.Context, m *engram.Map) {
			want := fill(t, ctx, m, 500)
			seen := map[string]int{}
			for k, v := range m.All(ctx) {
				if string(v) != "v"+k {
					t.Fatalf("All yielded %q = %q", k, v)
				}
				seen[k]++
			}
			checkOnce(t, seen, want)
			clear(seen)
			for k := range m.KeysSeq(ctx, "") {
				seen[k]++
			}
			checkOnce(t, seen, want)
			// Breaking out works, and the loop body may write to the map:
			// no partition is locked while it runs.
			n := 0
			for k := range m.KeysSeq(ctx, "key*") {
				if _, err := m.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
				if n++; n == 10 {
					break
				}
			}
			if l, _ := m.Len(ctx); l != 490 {
				t.Fatalf("Len after deleting 10 keys in the loop = %d, want 490", l)
			}
		}},
		{"EvictSince", func(t *testing.T, ctx context.Context, m *engram.Map) {
			fill(t, ctx, m, 10)
			if n, err := m.EvictSince(ctx, time.Hour); err != nil || n != 0 {
				t.Fatalf("EvictSince(1h) of new items = %d, %v; want 0", n, err)
			}
			if _, err := m.EvictSince(ctx, -time.Second); err == nil {
				t.Fatal("EvictSince accepted a negative age")
			}
			if n, err := m.EvictSince(ctx, 0); err != nil || n != 10 {
				t.Fatalf("EvictSince(0) = %d, %v; want 10", n, err)
			}
		}},
		{"Clear", func(t *testing.T, ctx context.Context, m *engram.Map) {
			fill(t, ctx, m, 10)
			if err := m.Clear(ctx); err != nil {
				t.Fatal(err)
			}
			if n, _ := m.Len(ctx); n != 0 {
				t.Fatalf("Len after Clear = %d", n)
			}
		}},
		{"SetMaxTTL and MaxTTL", func(t *testing.T, ctx context.Context, m *engram.Map) {
			if d, err := m.MaxTTL(ctx); err != nil || d != 0 {
				t.Fatalf("MaxTTL of a new map = %v, %v; want 0", d, err)
			}
			for _, c := range []struct{ set, want time.Duration }{
				{90 * time.Minute, 90 * time.Minute},
				{1500 * time.Millisecond, 2 * time.Second}, // second precision, rounded up
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
			mustSet(t, ctx, m, "k", "v")
			if err := m.SetMaxTTL(ctx, time.Hour); err != nil {
				t.Fatal(err)
			}
			wantTTL(t, ctx, m, "k", time.Hour) // TTL includes the map's max TTL
		}},
		{"SetMaxKeys", func(t *testing.T, ctx context.Context, m *engram.Map) {
			if err := m.SetMaxKeys(ctx, 2); err != nil {
				t.Fatal(err)
			}
			mustSet(t, ctx, m, "a", "1")
			mustSet(t, ctx, m, "b", "1")
			if err := m.Set(ctx, "c", nil); !errors.Is(err, engram.ErrMapFull) {
				t.Fatalf("third key: %v, want ErrMapFull", err)
			}
			mustSet(t, ctx, m, "a", "2") // overwriting needs no room
			if err := m.SetMaxKeys(ctx, -1); err == nil {
				t.Fatal("SetMaxKeys accepted -1")
			}
			if err := m.SetMaxKeys(ctx, 0); err != nil {
				t.Fatal(err)
			}
			mustSet(t, ctx, m, "c", "1")
		}},
		{"Name", func(t *testing.T, ctx context.Context, m *engram.Map) {
			if !strings.HasPrefix(m.Name(), "case") {
				t.Fatalf("Name() = %q", m.Name())
			}
		}},
	}
}

func wantTTL(t *testing.T, ctx context.Context, m *engram.Map, key string, max time.Duration) {
	t.Helper()
	d, err := m.TTL(ctx, key)
	// No timing assertion beyond "set, and not above what was asked".
	if err != nil || d <= 0 || d > max {
		t.Fatalf("TTL(%q) = %v, %v; want in (0, %v]", key, d, err, max)
	}
}

func fill(t *testing.T, ctx context.Context, m *engram.Map, n int) map[string]bool {
	t.Helper()
	want := make(map[string]bool, n)
	for i := range n {
		k := "key" + strconv.Itoa(i)
		mustSet(t, ctx, m, k, "v"+k)
		want[k] = true
	}
	return want
}

func checkOnce(t *testing.T, seen map[string]int, want map[string]bool) {
	t.Helper()
	for k, c := range seen {
		if c != 1 || !want[k] {
			t.Fatalf("key %q seen %d times (expected: %v)", k, c, want[k])
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("saw %d keys, want %d", len(seen), len(want))
	}
}

func TestMapsAreIsolated(t *testing.T) {
	n := open(t, engram.Config{})
	ctx := context.Background()
	a, b := n.Map("a"), n.Map("b")
	mustSet(t, ctx, a, "k", "in a")
	wantMissing(t, ctx, b, "k")
	mustSet(t, ctx, b, "k", "in b")
	wantValue(t, ctx, a, "k", "in a")
	if err := a.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	wantValue(t, ctx, b, "k", "in b")
	// Two handles on one name are the same map.
	wantValue(t, ctx, n.Map("b"), "k", "in b")
}

func TestResolveSetOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    []engram.SetOption
		want    engram.SetParams
		wantErr bool
	}{
		{name: "none"},
		{name: "TTL rounds up to ms", opts: []engram.SetOption{engram.TTL(1500 * time.Microsecond)}, want: engram.SetParams{TTL: 2 * time.Millisecond}},
		{name: "tiny TTL is 1ms, not none", opts: []engram.SetOption{engram.TTL(1)}, want: engram.SetParams{TTL: time.Millisecond}},
		{name: "largest TTL does not overflow", opts: []engram.SetOption{engram.TTL(math.MaxInt64)}, want: engram.SetParams{TTL: math.MaxInt64 - math.MaxInt64%time.Millisecond}},
		{name: "last TTL wins", opts: []engram.SetOption{engram.TTL(time.Hour), engram.TTL(time.Second)}, want: engram.SetParams{TTL: time.Second}},
		{name: "seq and TTL", opts: []engram.SetOption{engram.WithSeq(3), engram.TTL(time.Second)}, want: engram.SetParams{TTL: time.Second, Seq: 3, HasSeq: true}},
		{name: "seq 0 is a sequence", opts: []engram.SetOption{engram.WithSeq(0)}, want: engram.SetParams{HasSeq: true}},
		{name: "conditions", opts: []engram.SetOption{engram.IfPresent(), engram.KeepTTL()}, want: engram.SetParams{IfPresent: true, KeepTTL: true}},
		{name: "negative TTL", opts: []engram.SetOption{engram.TTL(-1)}, wantErr: true},
		{name: "KeepTTL and TTL", opts: []engram.SetOption{engram.TTL(time.Second), engram.KeepTTL()}, wantErr: true},
		{name: "both conditions", opts: []engram.SetOption{engram.IfAbsent(), engram.IfPresent()}, wantErr: true},
		{name: "seq with a condition", opts: []engram.SetOption{engram.WithSeq(1), engram.IfPresent()}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := engram.ResolveSetOptions(tt.opts)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ResolveSetOptions = %+v, %v; want %+v, error=%v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := engram.ResolvePutAllOptions([]engram.SetOption{engram.KeepTTL()}); err == nil {
		t.Fatal("ResolvePutAllOptions accepted KeepTTL")
	}
	if p, err := engram.ResolvePutAllOptions([]engram.SetOption{engram.TTL(time.Second), engram.WithSeq(2)}); err != nil || p.TTL != time.Second || p.Seq != 2 {
		t.Fatalf("ResolvePutAllOptions(TTL, WithSeq) = %+v, %v", p, err)
	}
}
