package store

import (
	"bytes"
	"testing"
	"time"
)

func dirtyOf(t *testing.T, d *Map, key string) (Dirty, bool) {
	t.Helper()
	b, ok := d.Get(nil, []byte(key))
	if !ok {
		return Dirty{}, false
	}
	rec, ok := DecodeDirty(b)
	if !ok {
		t.Fatalf("shadow record of %q is malformed: %x", key, b)
	}
	return rec, true
}

func TestTrackRecordsClientChangesOnly(t *testing.T) {
	st, clk := newTestStore(t, Options{})
	m, _ := st.OpenMap("m")
	// Before tracking: nothing recorded.
	m.Set([]byte("old"), []byte("v"), SetOptions{})
	decide := func(key []byte) bool { return !bytes.HasPrefix(key, []byte("skip")) }
	d, err := m.Track(decide)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != DirtyMapName("m") || !IsInternal(d.Name()) {
		t.Fatalf("shadow map is %q", d.Name())
	}
	if d.Len() != 0 {
		t.Fatalf("shadow map has %d records before any change", d.Len())
	}

	clk.advance(time.Second)
	t0 := clk.now()
	m.Set([]byte("k"), []byte("v1"), SetOptions{})
	clk.advance(time.Second)
	m.Set([]byte("k"), []byte("v2"), SetOptions{})
	rec, ok := dirtyOf(t, d, "k")
	if !ok || rec.Op != DirtyWrite || string(rec.Value) != "v2" || rec.Since != t0 {
		t.Fatalf("after two writes: %+v %v; want write v2 since %d (the first write)", rec, ok, t0)
	}

	m.Set([]byte("skip1"), []byte("v"), SetOptions{})
	if _, ok := dirtyOf(t, d, "skip1"); ok {
		t.Fatal("a key the tracker declined was recorded")
	}

	// Read-modify-write, batch writes and deletes are changes.
	if err := m.Mutate([]byte("n"), func(Entry, bool) (Mutation, error) {
		return Mutation{Action: Put, Value: []byte("1")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PutAll([]KV{{Key: []byte("p1"), Value: []byte("a")}}, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Delete([]byte("old"))
	for key, op := range map[string]byte{"n": DirtyWrite, "p1": DirtyWrite, "old": DirtyDelete} {
		if rec, ok := dirtyOf(t, d, key); !ok || rec.Op != op {
			t.Fatalf("%s: record %+v %v, want op %d", key, rec, ok, op)
		}
	}

	// Expiry, eviction and clears are not changes to write back.
	m.Set([]byte("ttl"), []byte("v"), SetOptions{ExpireAt: clk.now() + 10})
	d.Delete([]byte("ttl"))
	clk.advance(time.Second)
	if _, ok := m.Get(nil, []byte("ttl")); ok {
		t.Fatal("expired key still readable")
	}
	st.Sweep(t.Context())
	if _, ok := dirtyOf(t, d, "ttl"); ok {
		t.Fatal("expiry was recorded as a change")
	}
	before := d.Len()
	m.Clear(false)
	if d.Len() != before {
		t.Fatalf("clear changed the shadow map: %d -> %d records", before, d.Len())
	}
	// Flushing every map keeps internal maps: pending changes survive.
	st.Flush(false)
	if d.Len() != before {
		t.Fatalf("flush dropped pending changes: %d -> %d", before, d.Len())
	}

	// Imports (replication) and fills (read-through) are not tracked.
	st.Import(Record{Map: "m", Key: []byte("imp"), Value: []byte("v")}, false)
	m.Fill([]byte("fill"), []byte("v"), 0, func() bool { return true })
	for _, k := range []string{"imp", "fill"} {
		if _, ok := dirtyOf(t, d, k); ok {
			t.Fatalf("%s was recorded as a change", k)
		}
	}

	// Track(nil) stops recording but keeps what is pending.
	m.Track(nil)
	m.Set([]byte("after"), []byte("v"), SetOptions{})
	if _, ok := dirtyOf(t, d, "after"); ok || m.Tracked() {
		t.Fatal("recorded after Track(nil)")
	}
	if _, ok := dirtyOf(t, d, "k"); !ok {
		t.Fatal("Track(nil) dropped pending records")
	}
	if _, err := d.Track(decide); err == nil {
		t.Fatal("tracking an internal map was accepted")
	}
}

func TestFill(t *testing.T) {
	st, _ := newTestStore(t, Options{})
	m, _ := st.OpenMap("m")
	var events []Event
	st.obs = observerFunc(func(ev *Event) { events = append(events, *ev) })
	if ok, err := m.Fill([]byte("a"), []byte("1"), 0, func() bool { return false }); ok || err != nil {
		t.Fatalf("a stale fill wrote: %v %v", ok, err)
	}
	if ok, err := m.Fill([]byte("a"), []byte("1"), 0, func() bool { return true }); !ok || err != nil {
		t.Fatalf("fill: %v %v", ok, err)
	}
	if len(events) != 1 || !events[0].Loaded {
		t.Fatalf("events %+v, want one Loaded write", events)
	}
	m.Set([]byte("b"), []byte("new"), SetOptions{})
	if ok, _ := m.Fill([]byte("b"), []byte("old"), 0, func() bool { return true }); ok {
		t.Fatal("fill overwrote a present key")
	}
	if v, _ := m.Get(nil, []byte("b")); string(v) != "new" {
		t.Fatalf("b = %q", v)
	}
}

type observerFunc func(ev *Event)

func (f observerFunc) OnEvent(ev *Event) { f(ev) }

// TestObservedWriteAllocatesNothing: every node has observers (pub/sub,
// indexes, the backing store), so the event of a write must not cost an
// allocation (the shard's event is reused).
func TestObservedWriteAllocatesNothing(t *testing.T) {
	st, _ := newTestStore(t, Options{Observer: Observers(observerFunc(func(*Event) {}), observerFunc(func(*Event) {}))})
	m, _ := st.OpenMap("m")
	key, val := []byte("key"), make([]byte, 100)
	m.Set(key, val, SetOptions{})
	if n := testing.AllocsPerRun(1000, func() { m.Set(key, val, SetOptions{}) }); n != 0 {
		t.Fatalf("an observed overwrite allocates %v times", n)
	}
}
