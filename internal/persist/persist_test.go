package persist

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/store"
)

type clock struct{ ms atomic.Int64 }

func (c *clock) now() int64              { return c.ms.Load() }
func (c *clock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// flaky is a store whose calls fail while down is set, and whose loads
// wait for gate when it is non-nil.
type flaky struct {
	inner backing.Store
	down  atomic.Bool
	gate  chan struct{}
}

var errDown = &backing.Error{Op: "test", Kind: backing.ErrUnavailable, Err: errors.New("store is down")}

func (f *flaky) Load(ctx context.Context, m string, key []byte) ([]byte, bool, error) {
	if f.gate != nil {
		<-f.gate
	}
	if f.down.Load() {
		return nil, false, errDown
	}
	return f.inner.Load(ctx, m, key)
}

func (f *flaky) Store(ctx context.Context, m string, k, v []byte) error {
	return f.StoreBatch(ctx, m, []backing.Entry{{Key: k, Value: v}})
}

func (f *flaky) Delete(ctx context.Context, m string, k []byte) error {
	return f.DeleteBatch(ctx, m, [][]byte{k})
}

func (f *flaky) List(ctx context.Context, m string, o backing.ListOptions) (backing.ListPage, error) {
	return f.inner.List(ctx, m, o)
}

// Close leaves the in-memory store open so tests can read it after the
// manager closed.
func (f *flaky) Close() error { return nil }

func (f *flaky) StoreBatch(ctx context.Context, m string, e []backing.Entry) error {
	if f.down.Load() {
		return errDown
	}
	return f.inner.StoreBatch(ctx, m, e)
}

func (f *flaky) DeleteBatch(ctx context.Context, m string, k [][]byte) error {
	if f.down.Load() {
		return errDown
	}
	return f.inner.DeleteBatch(ctx, m, k)
}

type fixture struct {
	st    *store.Store
	m     *Manager
	mem   *backing.Mem
	count *backing.Counting
	fl    *flaky
	clk   *clock
	mp    *store.Map
	ms    *State
}

// newFixture builds a standalone node's store and manager with one map
// "m" in the given settings over an in-memory store. The write-back loop
// is not started: tests drive it with step.
func newFixture(t testing.TB, s Settings) *fixture {
	t.Helper()
	f := &fixture{clk: &clock{}, mem: backing.NewMem()}
	f.clk.ms.Store(1_700_000_000_000)
	f.fl = &flaky{inner: f.mem}
	f.count = backing.NewCounting(f.fl)
	var obs observerProxy
	st, err := store.New(store.Options{Clock: f.clk.now, Observer: &obs, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := New(Options{Store: st, DefaultStore: "mem://", Default: s,
		Open: func(string) (backing.Store, error) { return f.count, nil }})
	if err != nil {
		t.Fatal(err)
	}
	obs.m = m
	f.st, f.m = st, m
	f.mp, _ = st.OpenMap("m")
	f.ms, err = m.Policy(f.mp)
	if err != nil || f.ms == nil {
		t.Fatalf("policy: %v %v", f.ms, err)
	}
	return f
}

type observerProxy struct{ m *Manager }

func (o *observerProxy) OnEvent(ev *store.Event) {
	if o.m != nil {
		o.m.OnEvent(ev)
	}
}

// step writes back what is due now and waits for it.
func (f *fixture) step(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, ms := range *f.m.maps.Load() {
		s := ms.set.Load()
		if s == nil {
			continue
		}
		for p := range ms.queues {
			for {
				refs := ms.due(p, f.clk.now(), s.Delay.Milliseconds(), s.Batch, nil)
				if len(refs) == 0 {
					break
				}
				wg.Add(1)
				go func() { defer wg.Done(); f.m.writeBack(ctx, ms, p, refs) }()
			}
		}
	}
	wg.Wait()
}

func (f *fixture) set(t *testing.T, k, v string) {
	t.Helper()
	if err := f.ms.CheckDirty(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.mp.Set([]byte(k), []byte(v), store.SetOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) stored(t *testing.T, k string) (string, bool) {
	t.Helper()
	v, ok, err := f.mem.Load(context.Background(), "m", []byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

func TestWriteBehindCoalesces(t *testing.T) {
	f := newFixture(t, Settings{Mode: ModeWriteBehind, Delay: time.Second, Batch: 100})
	const writes, hot = 100_000, 1000
	for i := range writes {
		f.set(t, fmt.Sprintf("k%d", i%hot), fmt.Sprintf("v%d", i))
	}
	f.step(t)
	if c := f.count.Counts(); c.Stores != 0 {
		t.Fatalf("%d store writes before the delay passed", c.Stores)
	}
	f.clk.advance(time.Second)
	f.step(t)
	c := f.count.Counts()
	if c.Stores != hot {
		t.Fatalf("%d writes over %d keys made %d store writes, want %d", writes, hot, c.Stores, hot)
	}
	for k := range hot {
		want := fmt.Sprintf("v%d", writes-hot+k)
		if v, ok := f.stored(t, fmt.Sprintf("k%d", k)); !ok || v != want {
			t.Fatalf("store has k%d = %q %v, want the last write %q", k, v, ok, want)
		}
	}
	st := f.m.Stats()[0]
	if st.Received != writes || st.Written != hot || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	if d := f.st.Map(store.DirtyMapName("m")); d.Len() != 0 {
		t.Fatalf("%d shadow records left after write-back", d.Len())
	}
	// Nothing more to write.
	f.clk.advance(time.Minute)
	f.step(t)
	if c2 := f.count.Counts(); c2.Stores != c.Stores {
		t.Fatalf("clean keys written again: %d -> %d", c.Stores, c2.Stores)
	}
}

func TestWriteBehindDeletesAndReadThrough(t *testing.T) {
	f := newFixture(t, Settings{Mode: ModeWriteBehind, Delay: time.Second})
	ctx := context.Background()
	f.mem.Store(ctx, "m", []byte("old"), []byte("from-store"))
	// A miss reads through.
	if err := f.m.Ensure(ctx, f.ms, f.mp, [][]byte{[]byte("old")}); err != nil {
		t.Fatal(err)
	}
	if v, ok := f.mp.Get(nil, []byte("old")); !ok || string(v) != "from-store" {
		t.Fatalf("after read-through: %q %v", v, ok)
	}
	// A load is not a change: nothing to write back.
	if f.ms.pending.Load() != 0 {
		t.Fatal("a read-through load was recorded as a change")
	}
	// Delete it: until written back the store still has it, but a read
	// must not resurrect it.
	f.mp.Delete([]byte("old"))
	if err := f.m.Ensure(ctx, f.ms, f.mp, [][]byte{[]byte("old")}); err != nil {
		t.Fatal(err)
	}
	if f.mp.Contains([]byte("old")) {
		t.Fatal("a pending delete was undone by a read-through load")
	}
	f.clk.advance(time.Second)
	f.step(t)
	if _, ok := f.stored(t, "old"); ok {
		t.Fatal("the delete did not reach the store")
	}
	// A key evicted from memory (here: cleared, which is not a change) is
	// read back from the store.
	f.set(t, "x", "1")
	f.clk.advance(time.Second)
	f.step(t)
	f.mp.Clear(false)
	if f.mp.Contains([]byte("x")) {
		t.Fatal("clear did not clear")
	}
	f.m.Ensure(ctx, f.ms, f.mp, [][]byte{[]byte("x"), []byte("nothing")})
	if v, ok := f.mp.Get(nil, []byte("x")); !ok || string(v) != "1" {
		t.Fatalf("evicted key read back as %q %v", v, ok)
	}
	// A pending write of an evicted key is served from the pending change,
	// not from the older store value.
	f.set(t, "x", "2")
	f.mp.Clear(false)
	f.m.Ensure(ctx, f.ms, f.mp, [][]byte{[]byte("x")})
	if v, _ := f.mp.Get(nil, []byte("x")); string(v) != "2" {
		t.Fatalf("evicted dirty key read as %q, want the pending 2", v)
	}
}

func TestSingleflight(t *testing.T) {
	f := newFixture(t, Settings{Mode: ModeRead})
	ctx := context.Background()
	f.mem.Store(ctx, "m", []byte("hot"), []byte("v"))
	f.fl.gate = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.m.Ensure(ctx, f.ms, f.mp, [][]byte{[]byte("hot")})
		}()
	}
	// Wait until the load is in flight, then let it through.
	for f.m.inflightN.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // let the others queue up behind it
	close(f.fl.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := f.count.Counts(); c.Loads != 1 {
		t.Fatalf("100 concurrent misses made %d loads, want 1", c.Loads)
	}
	if v, ok := f.mp.Get(nil, []byte("hot")); !ok || string(v) != "v" {
		t.Fatalf("hot = %q %v", v, ok)
	}
}

func TestLoadRacingWithWriteKeepsWrite(t *testing.T) {
	f := newFixture(t, Settings{Mode: ModeWriteBehind})
	ctx := context.Background()
	f.mem.Store(ctx, "m", []byte("k"), []byte("old"))
	f.fl.gate = make(chan struct{})
	done := make(chan error)
	go func() { done <- f.m.Ensure(ctx, f.ms, f.mp, [][]byte{[]byte("k")}) }()
	for f.m.inflightN.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.set(t, "k", "new") // lands while the store is being read
	close(f.fl.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, _ := f.mp.Get(nil, []byte("k")); string(v) != "new" {
		t.Fatalf("k = %q: a load overwrote a newer write", v)
	}
	// Same with a delete racing the load: the key stays deleted.
	f.fl.gate = make(chan struct{})
	f.mem.Store(ctx, "m", []byte("d"), []byte("old"))
	f.set(t, "d", "x")
	f.clk.advance(time.Hour)
	f.step(t)
	f.mp.Clear(false)
	go func() { done <- f.m.Ensure(ctx, f.ms, f.mp, [][]byte{[]byte("d")}) }()
	for f.m.inflightN.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.mp.Set([]byte("d"), []byte("y"), store.SetOptions{})
	f.mp.Delete([]byte("d"))
	close(f.fl.gate)
	<-done
	if f.mp.Contains([]byte("d")) {
		t.Fatal("a load resurrected a key deleted while it ran")
	}
}

func TestNegativeCache(t *testing.T) {
	f := newFixture(t, Settings{Mode: ModeRead, NegativeTTL: time.Minute})
	ctx := context.Background()
	miss := [][]byte{[]byte("nope")}
	for range 5 {
		f.m.Ensure(ctx, f.ms, f.mp, miss)
	}
	if c := f.count.Counts(); c.Loads != 1 {
		t.Fatalf("5 misses within negative_ttl made %d loads, want 1", c.Loads)
	}
	// A write forgets the miss (after the write is evicted the store is asked).
	f.mp.Set([]byte("nope"), []byte("v"), store.SetOptions{})
	f.mp.Clear(false)
	f.m.Ensure(ctx, f.ms, f.mp, miss)
	if c := f.count.Counts(); c.Loads != 2 {
		t.Fatalf("after a write, a miss made %d loads in all, want 2", c.Loads)
	}
	f.clk.advance(2 * time.Minute)
	f.m.Ensure(ctx, f.ms, f.mp, miss)
	f.m.Ensure(ctx, f.ms, f.mp, miss)
	if c := f.count.Counts(); c.Loads != 3 {
		t.Fatalf("after negative_ttl, misses made %d loads in all, want 3", c.Loads)
	}
}

func TestStoreOutageKeepsChanges(t *testing.T) {
	f := newFixture(t, Settings{Mode: ModeWriteBehind, Delay: 100 * time.Millisecond, MaxDirty: 50})
	f.fl.down.Store(true)
	for i := range 40 {
		f.set(t, fmt.Sprintf("k%d", i), "v")
	}
	f.clk.advance(time.Second)
	f.step(t)
	st := f.m.Stats()[0]
	if st.Failures == 0 || st.Pending != 40 || st.LastError == "" || st.Consecutive == 0 {
		t.Fatalf("during the outage: %+v", st)
	}
	// Reads of a key that is not in memory fail clearly, not "not found".
	err := f.m.Ensure(context.Background(), f.ms, f.mp, [][]byte{[]byte("absent")})
	var le *LoadError
	if !errors.As(err, &le) || !errors.Is(err, backing.ErrUnavailable) {
		t.Fatalf("read-through during an outage: %v", err)
	}
	// The bound on pending changes refuses further writes.
	for i := 40; i < 50; i++ {
		f.set(t, fmt.Sprintf("k%d", i), "v")
	}
	var full *DirtyFullError
	if err := f.ms.CheckDirty(); !errors.As(err, &full) {
		t.Fatalf("50 pending of max 50: %v", err)
	}
	f.fl.down.Store(false)
	for i := 0; i < 20 && f.m.Stats()[0].Pending > 0; i++ {
		f.clk.advance(time.Minute) // past any backoff
		f.step(t)
	}
	if st := f.m.Stats()[0]; st.Pending != 0 || st.Consecutive != 0 {
		t.Fatalf("after the outage: %+v", st)
	}
	for i := range 50 {
		if _, ok := f.stored(t, fmt.Sprintf("k%d", i)); !ok {
			t.Fatalf("k%d lost across the outage", i)
		}
	}
}

func TestSaveAndClose(t *testing.T) {
	f := newFixture(t, Settings{Mode: ModeWriteBehind, Delay: time.Hour})
	ctx := context.Background()
	f.set(t, "a", "1")
	f.set(t, "b", "2")
	f.mp.Delete([]byte("b"))
	f.mem.Store(ctx, "m", []byte("b"), []byte("old"))
	n, err := f.m.Save(ctx, f.ms, f.mp, [][]byte{[]byte("a"), []byte("b"), []byte("a")})
	if err != nil || n != 2 {
		t.Fatalf("save: %d %v", n, err)
	}
	if v, ok := f.stored(t, "a"); !ok || v != "1" {
		t.Fatalf("a not saved: %q %v", v, ok)
	}
	if _, ok := f.stored(t, "b"); ok {
		t.Fatal("the pending delete of b was not saved")
	}
	if f.ms.pending.Load() != 0 {
		t.Fatalf("%d pending after save", f.ms.pending.Load())
	}
	// A clean key in memory is written as it is (persist now).
	f.st.Import(store.Record{Map: "m", Key: []byte("c"), Value: []byte("3")}, false)
	if n, err := f.m.Save(ctx, f.ms, f.mp, [][]byte{[]byte("c"), []byte("zz")}); err != nil || n != 1 {
		t.Fatalf("save of a clean key: %d %v", n, err)
	}
	// SaveParts and Close write back everything pending.
	for i := range 300 {
		f.set(t, fmt.Sprintf("p%d", i), "v")
	}
	all := make([]int, f.st.Partitions())
	for i := range all {
		all[i] = i
	}
	if n, err := f.m.SaveParts(ctx, f.ms, f.mp, all[:100]); err != nil || n == 0 {
		t.Fatalf("saveparts: %d %v", n, err)
	}
	f.set(t, "last", "v")
	if left := f.m.Close(ctx); left != 0 {
		t.Fatalf("%d changes left after Close", left)
	}
	for i := range 300 {
		if _, ok := f.stored(t, fmt.Sprintf("p%d", i)); !ok {
			t.Fatalf("p%d not written by Close", i)
		}
	}
}
