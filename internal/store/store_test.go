package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/keyhash"
)

// clock is a manual clock for expiry tests: no test sleeps.
type manualClock struct{ ms atomic.Int64 }

func (c *manualClock) now() int64              { return c.ms.Load() }
func (c *manualClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func newTestStore(t testing.TB, o Options) (*Store, *manualClock) {
	t.Helper()
	c := &manualClock{}
	c.ms.Store(1_700_000_000_000)
	if o.Clock == nil {
		o.Clock = c.now
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Hour // tests sweep explicitly
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c
}

func mustSet(t testing.TB, m *Map, k, v string, o SetOptions) SetResult {
	t.Helper()
	r, err := m.Set([]byte(k), []byte(v), o)
	if err != nil {
		t.Fatalf("set %q: %v", k, err)
	}
	return r
}

func get(m *Map, k string) (string, bool) {
	v, ok := m.Get(nil, []byte(k))
	return string(v), ok
}

func TestSetGetDelete(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	m := s.Map("0")
	if _, ok := get(m, "a"); ok {
		t.Fatal("empty map returned a value")
	}
	mustSet(t, m, "a", "1", SetOptions{})
	mustSet(t, m, "", "empty key is allowed, as in Redis", SetOptions{})
	if v, ok := get(m, "a"); !ok || v != "1" {
		t.Fatalf("get a = %q %v", v, ok)
	}
	if v, _ := get(m, ""); v != "empty key is allowed, as in Redis" {
		t.Fatalf("empty key: %q", v)
	}
	if m.Len() != 2 {
		t.Fatalf("len = %d, want 2", m.Len())
	}
	if !m.Delete([]byte("a")) || m.Delete([]byte("a")) {
		t.Fatal("delete should succeed once")
	}
	if _, ok := get(m, "a"); ok || m.Len() != 1 {
		t.Fatal("deleted key still visible")
	}
	// Maps are separate namespaces.
	mustSet(t, s.Map("other"), "k", "x", SetOptions{})
	if _, ok := get(m, "k"); ok {
		t.Fatal("key leaked across maps")
	}
}

func TestConditionsAndReturnOld(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	m := s.Map("m")
	if r := mustSet(t, m, "k", "v1", SetOptions{Cond: IfPresent}); r.Written {
		t.Fatal("XX wrote an absent key")
	}
	if r := mustSet(t, m, "k", "v1", SetOptions{Cond: IfAbsent}); !r.Written || r.Existed {
		t.Fatalf("NX on absent key: %+v", r)
	}
	if r := mustSet(t, m, "k", "v2", SetOptions{Cond: IfAbsent, ReturnOld: true}); r.Written || string(r.Old) != "v1" {
		t.Fatalf("NX on present key: %+v", r)
	}
	if r := mustSet(t, m, "k", "v3", SetOptions{Cond: IfPresent, ReturnOld: true}); !r.Written || string(r.Old) != "v1" {
		t.Fatalf("XX on present key: %+v", r)
	}
	if v, _ := get(m, "k"); v != "v3" {
		t.Fatalf("value = %q", v)
	}
}

// TestModel checks the engine against a plain Go map under a random mix of
// writes of every size (in place, moved, dedicated slabs), deletes and
// reads, which exercises slab sealing, compaction and slab reuse.
func TestModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	s, _ := newTestStore(t, Options{Partitions: 3})
	m := s.Map("model")
	model := map[string][]byte{}
	// Values are random windows of one random buffer: distinct contents
	// without generating megabytes per operation.
	noise := make([]byte, 300000)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	sizes := []int{0, 1, 7, 8, 50, 100, 300, 4000, 70000, 200000}
	for i := 0; i < 60000; i++ {
		k := fmt.Sprintf("k%d", rng.IntN(2000))
		switch op := rng.IntN(10); {
		case op < 6:
			n := sizes[rng.IntN(len(sizes))] + rng.IntN(3)
			off := rng.IntN(len(noise) - n)
			v := append([]byte(nil), noise[off:off+n]...)
			mustSet(t, m, k, string(v), SetOptions{})
			model[k] = v
		case op < 8:
			_, had := model[k]
			if got := m.Delete([]byte(k)); got != had {
				t.Fatalf("op %d: delete %s = %v, model says %v", i, k, got, had)
			}
			delete(model, k)
		default:
			v, ok := m.Get(nil, []byte(k))
			mv, mok := model[k]
			if ok != mok || !bytes.Equal(v, mv) {
				t.Fatalf("op %d: get %s = %d bytes %v, model %d bytes %v", i, k, len(v), ok, len(mv), mok)
			}
		}
	}
	if m.Len() != int64(len(model)) {
		t.Fatalf("len %d, model %d", m.Len(), len(model))
	}
	for k, mv := range model {
		if v, ok := m.Get(nil, []byte(k)); !ok || !bytes.Equal(v, mv) {
			t.Fatalf("final get %s mismatch", k)
		}
	}
	if n := len(m.Keys(nil)); n != len(model) {
		t.Fatalf("keys returned %d, model %d", n, len(model))
	}
	var live int64
	for k, v := range model {
		live += int64(recordSize(len(k), len(v)))
	}
	if b := m.Bytes(); b != live {
		t.Fatalf("live bytes %d, model %d", b, live)
	}
	st := s.Stats()
	if st.UsedMemory != live+int64(len(model))*indexBytesPerKey {
		t.Fatalf("used memory %d, want %d", st.UsedMemory, live+int64(len(model))*indexBytesPerKey)
	}
	// Compaction keeps slabs from being mostly dead: allow 2x plus one
	// growing slab per partition.
	if st.ArenaMemory > 2*live+3*2*slabMax {
		t.Fatalf("arena %d bytes for %d live bytes: compaction is not reclaiming", st.ArenaMemory, live)
	}
	// Delete everything: all slab memory comes back.
	for k := range model {
		m.Delete([]byte(k))
	}
	if st := s.Stats(); st.UsedMemory != 0 || m.Len() != 0 {
		t.Fatalf("after deleting all: used %d, len %d", st.UsedMemory, m.Len())
	}
}

func TestCollidingKeys(t *testing.T) {
	// These two keys share the high 32 bits of their hash and their
	// partition (found by search): they must live side by side.
	a, b := []byte("c3746244"), []byte("c3872211")
	ha, hb := keyhash.Sum(a), keyhash.Sum(b)
	if ha>>32 != hb>>32 || ha%271 != hb%271 {
		t.Fatal("test keys no longer collide; the hash function changed")
	}
	s, _ := newTestStore(t, Options{})
	m := s.Map("c")
	mustSet(t, m, "c3746244", "A", SetOptions{})
	mustSet(t, m, "c3872211", "B", SetOptions{})
	if v, _ := get(m, "c3746244"); v != "A" {
		t.Fatalf("a = %q", v)
	}
	if v, _ := get(m, "c3872211"); v != "B" {
		t.Fatalf("b = %q", v)
	}
	// Overwrite with a larger value moves the record: the list is relinked.
	mustSet(t, m, "c3746244", string(make([]byte, 5000)), SetOptions{})
	if v, _ := get(m, "c3746244"); len(v) != 5000 {
		t.Fatal("moved colliding record lost")
	}
	m.Delete(a)
	if _, ok := get(m, "c3746244"); ok {
		t.Fatal("deleted colliding key visible")
	}
	if v, _ := get(m, "c3872211"); v != "B" {
		t.Fatalf("b after deleting a = %q", v)
	}
	mustSet(t, m, "c3746244", "A2", SetOptions{})
	m.Delete(b)
	if v, _ := get(m, "c3746244"); v != "A2" {
		t.Fatalf("a after deleting b = %q", v)
	}
	if m.Len() != 1 {
		t.Fatalf("len = %d", m.Len())
	}
}

func TestItemTTL(t *testing.T) {
	s, c := newTestStore(t, Options{})
	m := s.Map("ttl")
	now := c.now()
	mustSet(t, m, "ms", "v", SetOptions{ExpireAt: now + 1500})
	mustSet(t, m, "forever", "v", SetOptions{})
	if ttl := m.TTL([]byte("ms")); ttl != 1500 {
		t.Fatalf("ttl = %d", ttl)
	}
	if ttl := m.TTL([]byte("forever")); ttl != -1 {
		t.Fatalf("ttl of persistent key = %d", ttl)
	}
	if ttl := m.TTL([]byte("nope")); ttl != -2 {
		t.Fatalf("ttl of missing key = %d", ttl)
	}
	c.advance(1499 * time.Millisecond)
	if _, ok := get(m, "ms"); !ok {
		t.Fatal("expired a millisecond early")
	}
	c.advance(time.Millisecond)
	if _, ok := get(m, "ms"); ok {
		t.Fatal("expired item returned before the sweeper ran")
	}
	if m.Contains([]byte("ms")) || m.TTL([]byte("ms")) != -2 {
		t.Fatal("expired item visible to Contains/TTL")
	}
	if got := len(m.Keys(nil)); got != 1 {
		t.Fatalf("keys lists expired items: %d", got)
	}
	if m.Len() != 2 {
		t.Fatalf("len before sweep = %d (counts unswept, like Redis)", m.Len())
	}
	if n := s.Sweep(context.Background()); n != 1 {
		t.Fatalf("sweep removed %d, want 1", n)
	}
	if m.Len() != 1 || s.Stats().Expired != 1 {
		t.Fatalf("after sweep: len %d expired %d", m.Len(), s.Stats().Expired)
	}
	// KEEPTTL keeps, a plain SET clears the expiry.
	mustSet(t, m, "k", "v", SetOptions{ExpireAt: c.now() + 10000})
	mustSet(t, m, "k", "v2", SetOptions{KeepTTL: true})
	if ttl := m.TTL([]byte("k")); ttl != 10000 {
		t.Fatalf("KEEPTTL lost the expiry: %d", ttl)
	}
	mustSet(t, m, "k", "v3", SetOptions{})
	if ttl := m.TTL([]byte("k")); ttl != -1 {
		t.Fatalf("SET without KEEPTTL kept the expiry: %d", ttl)
	}
	// NX treats an expired key as absent.
	mustSet(t, m, "e", "old", SetOptions{ExpireAt: c.now() + 1})
	c.advance(time.Second)
	if r := mustSet(t, m, "e", "new", SetOptions{Cond: IfAbsent}); !r.Written {
		t.Fatal("NX refused to replace an expired key")
	}
}

func TestSweepCoversEveryPartitionOverTicks(t *testing.T) {
	s, c := newTestStore(t, Options{SweepBudget: 50})
	m := s.Map("many")
	for i := 0; i < 5000; i++ {
		mustSet(t, m, fmt.Sprint(i), "v", SetOptions{ExpireAt: c.now() + 1000})
	}
	c.advance(2 * time.Second)
	total := 0
	for tick := 0; tick < 10000 && m.Len() > 0; tick++ {
		n := s.Sweep(context.Background())
		if n > 50 {
			t.Fatalf("a tick removed %d records, over its budget of 50", n)
		}
		total += n
	}
	if m.Len() != 0 || total != 5000 {
		t.Fatalf("sweeper left %d keys (removed %d)", m.Len(), total)
	}
}

func TestMapMaxTTL(t *testing.T) {
	s, c := newTestStore(t, Options{})
	m := s.Map("aged")
	mustSet(t, m, "old", "v", SetOptions{})
	c.advance(30 * time.Second)
	mustSet(t, m, "young", "v", SetOptions{})
	if err := m.SetMaxTTL(20); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(m, "old"); ok {
		t.Fatal("item older than the map's max ttl returned")
	}
	if _, ok := get(m, "young"); !ok {
		t.Fatal("young item hidden")
	}
	if ttl := m.TTL([]byte("young")); ttl != 20000 {
		t.Fatalf("TTL should include the map max age: %d", ttl)
	}
	if n := s.Sweep(context.Background()); n != 1 {
		t.Fatalf("sweep removed %d, want 1", n)
	}
	if err := m.SetMaxTTL(-1); err == nil {
		t.Fatal("negative max ttl accepted")
	}
	m.SetMaxTTL(0)
	c.advance(time.Hour)
	if _, ok := get(m, "young"); !ok {
		t.Fatal("max ttl 0 should disable map-level expiry")
	}
}

func TestEvictSince(t *testing.T) {
	s, c := newTestStore(t, Options{})
	m := s.Map("m")
	for i := 0; i < 100; i++ {
		mustSet(t, m, fmt.Sprint("old", i), "v", SetOptions{})
	}
	c.advance(time.Minute)
	for i := 0; i < 50; i++ {
		mustSet(t, m, fmt.Sprint("new", i), "v", SetOptions{})
	}
	if n := m.EvictSince(30); n != 100 {
		t.Fatalf("evicted %d, want 100", n)
	}
	if m.Len() != 50 {
		t.Fatalf("len %d", m.Len())
	}
}

func TestSequences(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	m := s.Map("seq")
	if _, err := m.Set([]byte("k"), []byte("v5"), SetOptions{Seq: 5, HasSeq: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Set([]byte("k"), []byte("v5b"), SetOptions{Seq: 5, HasSeq: true}); err != nil {
		t.Fatalf("equal sequence refused: %v", err)
	}
	_, err := m.Set([]byte("k"), []byte("stale"), SetOptions{Seq: 4, HasSeq: true})
	if !errors.Is(err, ErrOutOfSequence) {
		t.Fatalf("stale write: %v", err)
	}
	if v, _ := get(m, "k"); v != "v5b" {
		t.Fatalf("stale write changed the value: %q", v)
	}
	if _, err := m.DeleteSeq([]byte("k"), 3); !errors.Is(err, ErrOutOfSequence) {
		t.Fatalf("stale delete: %v", err)
	}
	if ok, err := m.DeleteSeq([]byte("k"), 9); err != nil || !ok {
		t.Fatalf("delete seq 9: %v %v", ok, err)
	}
	if _, err := m.PutAll([]KV{{[]byte("a"), []byte("1")}}, SetOptions{Seq: 8, HasSeq: true}); !errors.Is(err, ErrOutOfSequence) {
		t.Fatalf("stale put_all: %v", err)
	}
	if _, err := m.RemoveItemsSeq([][]byte{[]byte("a")}, 1); !errors.Is(err, ErrOutOfSequence) {
		t.Fatalf("stale remove_items: %v", err)
	}
	if seq, ok := m.Sequence(); !ok || seq != 9 {
		t.Fatalf("sequence = %d %v", seq, ok)
	}
	if got := s.Sequences(); len(got) != 1 || got["seq"] != 9 {
		t.Fatalf("sequences = %v", got)
	}
	// Sequences are per map.
	if _, err := s.Map("other").Set([]byte("k"), []byte("v"), SetOptions{Seq: 1, HasSeq: true}); err != nil {
		t.Fatal(err)
	}
}

func TestLimits(t *testing.T) {
	s, _ := newTestStore(t, Options{MaxKeyLen: 10, MaxValueLen: 20, MaxKeysPerMap: 3})
	m := s.Map("lim")
	mustSet(t, m, "k1", "v", SetOptions{})
	cases := []struct {
		name string
		k, v string
		want error
	}{
		{"key too long", "01234567890", "v", ErrKeyTooLong},
		{"value too large", "k", "012345678901234567890", ErrValueTooLarge},
	}
	for _, c := range cases {
		_, err := m.Set([]byte(c.k), []byte(c.v), SetOptions{})
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	mustSet(t, m, "k2", "v", SetOptions{})
	mustSet(t, m, "k3", "v", SetOptions{})
	if _, err := m.Set([]byte("k4"), []byte("v"), SetOptions{}); !errors.Is(err, ErrMapFull) {
		t.Fatalf("fourth key: %v", err)
	}
	mustSet(t, m, "k3", "overwrite is fine", SetOptions{})
	if _, err := m.PutAll([]KV{{[]byte("k1"), []byte("ok")}, {[]byte("k2"), []byte("012345678901234567890")}}, SetOptions{}); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("put_all with one bad item: %v", err)
	}
	if v, _ := get(m, "k1"); v != "v" {
		t.Fatal("a refused put_all changed data")
	}
	if m.Len() != 3 {
		t.Fatalf("len %d", m.Len())
	}
	if err := s.Map("other").SetMaxKeys(1); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s.Map("other"), "a", "v", SetOptions{})
	if _, err := s.Map("other").Set([]byte("b"), []byte("v"), SetOptions{}); !errors.Is(err, ErrMapFull) {
		t.Fatalf("per-map bound: %v", err)
	}
}

func TestNoEvictionOOM(t *testing.T) {
	s, _ := newTestStore(t, Options{MaxMemory: 100 << 10})
	m := s.Map("m")
	var err error
	n := 0
	for ; n < 10000; n++ {
		if _, err = m.Set([]byte(fmt.Sprint(n)), make([]byte, 1000), SetOptions{}); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrOOM) {
		t.Fatalf("expected OOM, got %v after %d writes", err, n)
	}
	if m.Len() != int64(n) {
		t.Fatal("OOM write changed the map")
	}
	// Reads and deletes still work; after a delete a write fits again.
	if _, ok := get(m, "0"); !ok {
		t.Fatal("read failed at OOM")
	}
	m.Delete([]byte("0"))
	m.Delete([]byte("1"))
	if _, err := m.Set([]byte("again"), make([]byte, 10), SetOptions{}); err != nil {
		t.Fatalf("write after freeing memory: %v", err)
	}
}

func TestLRUEvictionKeepsHotKeys(t *testing.T) {
	s, c := newTestStore(t, Options{MaxMemory: 1 << 20, Policy: AllKeysLRU, EvictionSamples: 10})
	m := s.Map("m")
	val := make([]byte, 1000)
	for i := 0; i < 500; i++ {
		mustSet(t, m, fmt.Sprint("hot", i), string(val), SetOptions{})
	}
	for i := 0; i < 20000; i++ {
		if i%100 == 0 {
			c.advance(2 * time.Second)
			for j := 0; j < 500; j++ {
				m.Get(nil, []byte(fmt.Sprint("hot", j)))
			}
		}
		if _, err := m.Set([]byte(fmt.Sprint("cold", i)), val, SetOptions{}); err != nil {
			t.Fatalf("write %d under allkeys-lru: %v", i, err)
		}
	}
	st := s.Stats()
	if st.UsedMemory > 1<<20 {
		t.Fatalf("used %d over the bound", st.UsedMemory)
	}
	if st.Evicted == 0 {
		t.Fatal("nothing evicted")
	}
	hot := 0
	for j := 0; j < 500; j++ {
		if _, ok := get(m, fmt.Sprint("hot", j)); ok {
			hot++
		}
	}
	// ~1000 keys fit; the 500 hot keys are touched constantly, so LRU
	// sampling should keep most of them.
	if hot < 350 {
		t.Fatalf("only %d of 500 hot keys survived LRU eviction", hot)
	}
}

func TestEvictionPolicies(t *testing.T) {
	for _, p := range []Policy{AllKeysLFU, AllKeysRandom, VolatileLRU, VolatileTTL} {
		t.Run(p.String(), func(t *testing.T) {
			s, c := newTestStore(t, Options{MaxMemory: 256 << 10, Policy: p})
			m := s.Map("m")
			val := make([]byte, 500)
			volatile := p == VolatileLRU || p == VolatileTTL
			for i := 0; i < 5000; i++ {
				o := SetOptions{}
				if volatile {
					o.ExpireAt = c.now() + int64(i+1)*1000
				}
				if _, err := m.Set([]byte(fmt.Sprint(i)), val, o); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			if u := s.Stats().UsedMemory; u > 256<<10 {
				t.Fatalf("used %d over the bound", u)
			}
			if volatile {
				// Keys without a TTL are never evicted: once only they
				// remain, writes get OOM.
				s2, _ := newTestStore(t, Options{MaxMemory: 64 << 10, Policy: p})
				m2 := s2.Map("m")
				var err error
				for i := 0; i < 1000 && err == nil; i++ {
					_, err = m2.Set([]byte(fmt.Sprint(i)), val, SetOptions{})
				}
				if !errors.Is(err, ErrOOM) {
					t.Fatalf("volatile policy with no volatile keys: %v", err)
				}
			}
		})
	}
}

func TestMutate(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	m := s.Map("m")
	incr := func(cur Entry, exists bool) (Mutation, error) {
		n := 0
		if exists {
			fmt.Sscan(string(cur.Value), &n)
		}
		return Mutation{Action: Put, Value: []byte(fmt.Sprint(n + 1)), ExpireAt: cur.ExpireAt}, nil
	}
	for i := 0; i < 10; i++ {
		if err := m.Mutate([]byte("n"), incr); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := get(m, "n"); v != "10" {
		t.Fatalf("n = %q", v)
	}
	boom := errors.New("boom")
	if err := m.Mutate([]byte("n"), func(Entry, bool) (Mutation, error) { return Mutation{}, boom }); err != boom {
		t.Fatal(err)
	}
	if err := m.Mutate([]byte("n"), func(Entry, bool) (Mutation, error) { return Mutation{Action: Remove}, nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(m, "n"); ok {
		t.Fatal("Remove did not remove")
	}
}

func TestScanReturnsEveryKeyOnce(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	m := s.Map("scan")
	for i := 0; i < 3000; i++ {
		mustSet(t, m, fmt.Sprint("stable", i), "v", SetOptions{})
	}
	seen := map[string]int{}
	var cursor uint64
	calls := 0
	for {
		var keys [][]byte
		keys, cursor = m.Scan(cursor, nil, 100)
		for _, k := range keys {
			seen[string(k)]++
		}
		// Churn other keys while the scan runs.
		for j := 0; j < 50; j++ {
			k := fmt.Sprint("churn", calls, j)
			mustSet(t, m, k, string(make([]byte, j*40)), SetOptions{})
			if j%2 == 0 {
				m.Delete([]byte(k))
			}
		}
		calls++
		if cursor == 0 {
			break
		}
	}
	for i := 0; i < 3000; i++ {
		if n := seen[fmt.Sprint("stable", i)]; n != 1 {
			t.Fatalf("stable%d seen %d times", i, n)
		}
	}
	if calls < 10 {
		t.Fatalf("scan finished in %d calls: COUNT not respected", calls)
	}
}

type recorder struct {
	mu  sync.Mutex
	evs []string
}

func (r *recorder) OnEvent(ev *Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Kind == EventWrite {
		if ev.Created == 0 {
			r.evs = append(r.evs, "write event without a creation time")
		}
		if string(ev.Key) == "b" && ev.ExpireAt == 0 {
			r.evs = append(r.evs, "write event of b without its expiry")
		}
		r.evs = append(r.evs, fmt.Sprintf("%s/%s write %s", ev.Map, ev.Key, ev.Value))
	} else {
		r.evs = append(r.evs, fmt.Sprintf("%s/%s delete %s", ev.Map, ev.Key, ev.Reason))
	}
}

func TestEvents(t *testing.T) {
	rec := &recorder{}
	s, c := newTestStore(t, Options{Observer: rec})
	m := s.Map("ev")
	mustSet(t, m, "a", "1", SetOptions{})
	mustSet(t, m, "b", "2", SetOptions{ExpireAt: c.now() + 10})
	m.Delete([]byte("a"))
	c.advance(time.Second)
	s.Sweep(context.Background())
	mustSet(t, m, "c", "3", SetOptions{})
	m.Clear(false)
	mustSet(t, m, "d", "4", SetOptions{})
	s.Flush(true)
	want := []string{"ev/a write 1", "ev/b write 2", "ev/a delete delete", "ev/b delete expired", "ev/c write 3", "ev/c delete cleared", "ev/d write 4",
		// A silent flush is reported for replicas, with its own reason that
		// subscribers skip.
		"ev/d delete cleared_silent"}
	if fmt.Sprint(rec.evs) != fmt.Sprint(want) {
		t.Fatalf("events:\n got %v\nwant %v", rec.evs, want)
	}
	if m.Len() != 0 {
		t.Fatal("silent flush did not flush")
	}
}

func TestBatchFunctions(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	m := s.Map("b")
	n, err := m.PutAll([]KV{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}, {[]byte("c"), []byte("3")}}, SetOptions{})
	if err != nil || n != 3 {
		t.Fatalf("put_all %d %v", n, err)
	}
	found, misses := m.GetAll([][]byte{[]byte("a"), []byte("x"), []byte("c")})
	if len(found) != 2 || len(misses) != 1 || string(misses[0]) != "x" {
		t.Fatalf("get_all %v %v", found, misses)
	}
	removed := m.RemoveItems([][]byte{[]byte("a"), []byte("x")})
	if len(removed) != 1 || string(removed[0].Key) != "a" || string(removed[0].Value) != "1" {
		t.Fatalf("remove_items %v", removed)
	}
	if got := s.MapNames(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("map names %v", got)
	}
	items := m.Items(nil, 0)
	if len(items) != 2 {
		t.Fatalf("items %v", items)
	}
	if k, ok := m.RandomKey(); !ok || (string(k) != "b" && string(k) != "c") {
		t.Fatalf("random key %q", k)
	}
}

func TestConcurrentUse(t *testing.T) {
	s, _ := newTestStore(t, Options{Partitions: 8, MaxMemory: 4 << 20, Policy: AllKeysLRU})
	m := s.Map("c")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			buf := make([]byte, 0, 5000)
			for i := 0; i < 5000; i++ {
				k := []byte(fmt.Sprint(rng.IntN(500)))
				switch rng.IntN(4) {
				case 0:
					m.Set(k, make([]byte, rng.IntN(5000)), SetOptions{})
				case 1:
					m.Delete(k)
				case 2:
					m.Mutate(k, func(cur Entry, ok bool) (Mutation, error) {
						return Mutation{Action: Put, Value: append(cur.Value[:len(cur.Value):len(cur.Value)], 'x')}, nil
					})
				default:
					buf, _ = m.Get(buf[:0], k)
				}
			}
		}(g)
	}
	go s.Sweep(context.Background())
	wg.Wait()
	if int64(len(m.Keys(nil))) != m.Len() {
		t.Fatalf("keys %d vs len %d", len(m.Keys(nil)), m.Len())
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{{Partitions: -1}, {MaxMemory: -1}, {MaxKeyLen: 1 << 25}, {EvictionSamples: 100}}
	for _, o := range bad {
		if _, err := New(o); err == nil {
			t.Fatalf("options %+v accepted", o)
		}
	}
	if _, err := ParsePolicy("allkeys-lfu"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePolicy("lru"); err == nil {
		t.Fatal("bad policy name accepted")
	}
}

func TestSetAllIfAbsentAndSetExpiry(t *testing.T) {
	s, c := newTestStore(t, Options{})
	m := s.Map("m")
	items := []KV{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}, {[]byte("a"), []byte("3")}}
	if ok, err := m.SetAllIfAbsent(items, 0); !ok || err != nil {
		t.Fatalf("msetnx on absent keys: %v %v", ok, err)
	}
	if v, _ := get(m, "a"); v != "3" {
		t.Fatalf("last duplicate should win, a = %q", v)
	}
	if ok, _ := m.SetAllIfAbsent([]KV{{[]byte("z"), []byte("1")}, {[]byte("b"), []byte("x")}}, 0); ok {
		t.Fatal("msetnx wrote although b exists")
	}
	if _, ok := get(m, "z"); ok {
		t.Fatal("msetnx partially applied")
	}
	err := m.Mutate([]byte("a"), func(cur Entry, ok bool) (Mutation, error) {
		return Mutation{Action: SetExpiry, ExpireAt: c.now() + 5000}, nil
	})
	if err != nil || m.TTL([]byte("a")) != 5000 {
		t.Fatalf("set expiry: %v ttl %d", err, m.TTL([]byte("a")))
	}
	c.advance(6 * time.Second)
	if n := s.Sweep(context.Background()); n != 1 {
		t.Fatalf("sweeper did not see the new expiry: %d", n)
	}
}

func TestRefusedWriteKeepsSequence(t *testing.T) {
	s, _ := newTestStore(t, Options{MaxKeysPerMap: 1})
	m := s.Map("m")
	mustSet(t, m, "a", "v", SetOptions{Seq: 3, HasSeq: true})
	if _, err := m.Set([]byte("b"), []byte("v"), SetOptions{Seq: 7, HasSeq: true}); !errors.Is(err, ErrMapFull) {
		t.Fatalf("write into a full map: %v", err)
	}
	if seq, _ := m.Sequence(); seq != 3 {
		t.Fatalf("a refused write moved the sequence to %d", seq)
	}
	if _, err := m.PutAll([]KV{{[]byte("c"), []byte("v")}}, SetOptions{Seq: 9, HasSeq: true}); !errors.Is(err, ErrMapFull) {
		t.Fatalf("put_all into a full map: %v", err)
	}
	if seq, _ := m.Sequence(); seq != 3 {
		t.Fatalf("a refused put_all moved the sequence to %d", seq)
	}
	if n, err := m.PutAll([]KV{{[]byte("a"), []byte("w")}}, SetOptions{Seq: 9, HasSeq: true}); err != nil || n != 1 {
		t.Fatalf("put_all: %d %v", n, err)
	}
	if seq, _ := m.Sequence(); seq != 9 {
		t.Fatalf("sequence %d after a successful put_all, want 9", seq)
	}
}

func TestOpenMapBound(t *testing.T) {
	s, _ := newTestStore(t, Options{MaxMaps: 3})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s.OpenMap(fmt.Sprint("m", i))
		}(i)
	}
	wg.Wait()
	if n := len(*s.list.Load()); n != 3 {
		t.Fatalf("%d maps created, the bound is 3", n)
	}
	if _, err := s.OpenMap("another"); !errors.Is(err, ErrTooManyMaps) {
		t.Fatalf("over the bound: %v", err)
	}
}

// TestArenaBoundedUnderEviction: with the memory bound reached and keys
// evicted at random, slab memory must stay within a small factor of the
// live data (dead records are reclaimed, current slabs do not keep growing
// with garbage).
func TestArenaBoundedUnderEviction(t *testing.T) {
	const max = 4 << 20
	s, _ := newTestStore(t, Options{MaxMemory: max, Policy: AllKeysLRU})
	m := s.Map("m")
	val := make([]byte, 1000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 60000; i++ {
		if _, err := m.Set([]byte(fmt.Sprint(rng.IntN(1_000_000))), val, SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Evicted == 0 {
		t.Fatal("nothing was evicted")
	}
	if bound := int64(3*max + 271*2*slabMin); st.ArenaMemory > bound {
		t.Fatalf("arena %d bytes for %d used (bound %d): dead records are not reclaimed", st.ArenaMemory, st.UsedMemory, bound)
	}
	t.Logf("used %d, arena %d (%.2fx)", st.UsedMemory, st.ArenaMemory, float64(st.ArenaMemory)/float64(st.UsedMemory))
}
