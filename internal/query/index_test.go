package query

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/store"
	"github.com/tidwall/gjson"
)

// testStore returns a store with few partitions and a manual clock, and
// its attached index manager.
func testStore(t testing.TB, parts int, o Options) (*store.Store, *Manager, *atomic.Int64) {
	t.Helper()
	now := &atomic.Int64{}
	now.Store(1_700_000_000_000)
	o.Partitions = parts
	m := New(o)
	st, err := store.New(store.Options{Partitions: parts, Clock: now.Load, Observer: m, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Attach(st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })
	return st, m, now
}

// waitReady waits until every index of mapName is ready.
func waitReady(t testing.TB, m *Manager, mapName string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		for _, in := range m.List(mapName, false) {
			ready = ready && in.State == StateReady
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("indexes of %q not ready: %+v", mapName, m.List(mapName, false))
		}
		time.Sleep(time.Millisecond)
	}
}

// contents returns what the index holds, key -> canonical value.
func contents(ix *index) map[string]string {
	out := map[string]string{}
	for p := range ix.parts {
		pt := &ix.parts[p]
		pt.mu.RLock()
		for k, v := range pt.byKey {
			out[k] = v.vk
		}
		// byVal must be the exact reverse of byKey, positions included.
		n := 0
		for vk, s := range pt.byVal {
			if s.vk != vk || len(s.keys) == 0 {
				panic(fmt.Sprintf("set of %q: vk %q, %d keys", vk, s.vk, len(s.keys)))
			}
			for i, k := range s.keys {
				if e := pt.byKey[k]; e.vk != vk || int(e.pos) != i {
					panic(fmt.Sprintf("byVal has %q under %q at %d, byKey says %+v", k, vk, i, e))
				}
				n++
			}
		}
		if n != len(pt.byKey) {
			panic(fmt.Sprintf("partition %d: byVal holds %d keys, byKey %d", p, n, len(pt.byKey)))
		}
		pt.mu.RUnlock()
	}
	return out
}

// expected computes what an index on gpath must hold, by a full scan.
func expected(st *store.Store, mapName, gpath string) map[string]string {
	out := map[string]string{}
	sm, ok := st.Lookup([]byte(mapName))
	if !ok {
		return out
	}
	for p := range st.Partitions() {
		sm.ViewIn(p, func(k, v []byte) bool {
			if gjson.ValidBytes(v) {
				if vk, ok := valueKeyAt(v, gpath); ok {
					out[string(k)] = vk
				}
			}
			return true
		})
	}
	return out
}

// checkExact fails unless every index of mapName holds exactly what a
// full scan finds. Expired items are swept first: until they are, the
// store still holds them (and so does the index).
func checkExact(t *testing.T, st *store.Store, m *Manager, mapName, when string) {
	t.Helper()
	for st.Sweep(t.Context()) > 0 {
	}
	for _, ix := range (*m.defs.Load())[mapName] {
		got, want := contents(ix), expected(st, mapName, ix.gpath)
		if len(got) != len(want) {
			t.Fatalf("%s: index %q holds %d keys, a scan finds %d", when, ix.path, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: index %q has %q -> %q, a scan finds %q", when, ix.path, k, got[k], v)
			}
		}
	}
}

// scanMatch is the reference query: every item, checked one by one.
func scanMatch(st *store.Store, mapName string, c *Criteria) []string {
	var out []string
	sm, ok := st.Lookup([]byte(mapName))
	if !ok {
		return nil
	}
	for p := range st.Partitions() {
		sm.ViewIn(p, func(k, v []byte) bool {
			if c.Match(v) {
				out = append(out, string(k))
			}
			return true
		})
	}
	sort.Strings(out)
	return out
}

func queryKeys(m *Manager, st *store.Store, mapName string, c *Criteria) ([]string, Plan) {
	var out []string
	sm := st.Map(mapName)
	plan := m.Match(sm, c, nil, func(k, _ []byte) bool {
		out = append(out, string(k))
		return true
	})
	sort.Strings(out)
	return out, plan
}

// randomDoc returns a JSON document (sometimes malformed, sometimes
// without the indexed paths) with few distinct values, so queries match.
func randomDoc(r *rand.Rand) []byte {
	switch r.IntN(12) {
	case 0:
		return []byte(`{"id":{"type":` + fmt.Sprint(r.IntN(5))) // truncated: not JSON
	case 1:
		return []byte(`plain text`)
	case 2:
		return []byte(`{"other":1}`)
	case 3:
		return []byte(fmt.Sprintf(`{"id":{"type":"%d"},"n":%d.5}`, r.IntN(5), r.IntN(10)))
	case 4:
		return []byte(fmt.Sprintf(`{"id":{"type":[%d]},"tags":["t%d"]}`, r.IntN(5), r.IntN(3)))
	}
	return []byte(fmt.Sprintf(`{"id":{"type":%d,"name":"n%d"},"n":%d,"ok":%v,"tags":["t%d","u"]}`,
		r.IntN(5), r.IntN(20), r.IntN(10), r.IntN(2) == 0, r.IntN(3)))
}

var testPaths = []string{"id.type", "n", "ok", "tags.0"}

var testCriteria = []string{`id.type=3`, `id.type="3"`, `id.type!=3`, `n>4`, `n<=2.5`, `ok=true`,
	`tags.0 in ["t1","t2"]`, `id.type=1 && n>=5`, `id.name="n7"`, `n=4 && ok=false`, `id.type>=2 && tags.0="t0"`}

// TestIndexExactUnderRandomChanges is the property test: random writes,
// deletes, expiries, evictions, clears and partition drops, with indexes
// added (and removed) along the way; after every step the indexes equal a
// full scan and indexed queries return what a scan returns.
func TestIndexExactUnderRandomChanges(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { randomChanges(t, seed, 3000) })
	}
}

// FuzzIndexExact is the property test with the fuzzer choosing the seed
// (go test -fuzz FuzzIndexExact ./internal/query/).
func FuzzIndexExact(f *testing.F) {
	f.Add(uint64(7), uint16(500))
	f.Fuzz(func(t *testing.T, seed uint64, steps uint16) {
		randomChanges(t, seed, int(steps%2000))
	})
}

// randomChanges runs steps random changes, queries and index changes
// from seed, checking the indexes against full scans along the way.
func randomChanges(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 42))
	st, m, now := testStore(t, 7, Options{AutoThreshold: -1})
	sm := st.Map("m")
	key := func() []byte { return []byte(fmt.Sprint("k", r.IntN(300))) }
	for step := range steps {
		switch op := r.IntN(100); {
		case op < 55:
			o := store.SetOptions{}
			if r.IntN(4) == 0 {
				o.ExpireAt = now.Load() + int64(1+r.IntN(5000))
			}
			if _, err := sm.Set(key(), randomDoc(r), o); err != nil {
				t.Fatal(err)
			}
		case op < 70:
			sm.Delete(key())
		case op < 78:
			now.Add(int64(r.IntN(3000)))
		case op < 80:
			st.Sweep(t.Context())
		case op < 82:
			sm.EvictSince(int64(r.IntN(3)))
		case op < 83:
			sm.ClearIn([]int{r.IntN(7)}, r.IntN(2) == 0)
		case op < 84:
			if err := st.DropPartition(r.IntN(7)); err != nil {
				t.Fatal(err)
			}
		case op < 87:
			if _, err := m.Add("m", testPaths[r.IntN(len(testPaths))], false); err != nil && step < 0 {
				t.Fatal(err)
			}
		case op < 88:
			if _, err := m.Remove("m", testPaths[r.IntN(len(testPaths))]); err != nil {
				t.Fatal(err)
			}
		case op < 92:
			sm.Mutate(key(), func(cur store.Entry, exists bool) (store.Mutation, error) {
				return store.Mutation{Action: store.Put, Value: randomDoc(r)}, nil
			})
		default:
			c, err := Parse(testCriteria[r.IntN(len(testCriteria))])
			if err != nil {
				t.Fatal(err)
			}
			if r.IntN(3) == 0 {
				n, _ := m.Evict(sm, c, nil)
				if left := scanMatch(st, "m", c); len(left) != 0 {
					t.Fatalf("step %d: evict %s removed %d and left %v", step, c, n, left)
				}
				break
			}
			waitReady(t, m, "m")
			got, plan := queryKeys(m, st, "m", c)
			if want := scanMatch(st, "m", c); !slices.Equal(got, want) {
				t.Fatalf("step %d: %s (index %q) = %v, scan = %v", step, c, plan.Index, got, want)
			}
		}
		if step%50 == 0 {
			waitReady(t, m, "m")
			checkExact(t, st, m, "m", fmt.Sprint("step ", step))
		}
	}
	waitReady(t, m, "m")
	checkExact(t, st, m, "m", "end")
}

// TestIndexBuildRacesWrites builds indexes while writers change the map
// (run with -race): once built and the writers stopped, the indexes are
// exact.
func TestIndexBuildRacesWrites(t *testing.T) {
	st, m, _ := testStore(t, 31, Options{AutoThreshold: -1})
	sm := st.Map("m")
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		sm.Set([]byte(fmt.Sprint("k", i)), randomDoc(r), store.SetOptions{})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := []byte(fmt.Sprint("k", r.IntN(25000)))
				switch r.IntN(4) {
				case 0:
					sm.Delete(k)
				case 1:
					st.DropPartition(r.IntN(31))
				default:
					sm.Set(k, randomDoc(r), store.SetOptions{})
				}
			}
		}()
	}
	for _, p := range testPaths {
		if _, err := m.Add("m", p, false); err != nil {
			t.Fatal(err)
		}
	}
	waitReady(t, m, "m")
	close(stop)
	wg.Wait()
	checkExact(t, st, m, "m", "after the build")
	info := m.List("m", false)
	if len(info) != 4 || info[0].BuildTotal == 0 || info[0].Keys == 0 || info[0].Bytes == 0 {
		t.Fatalf("index info = %+v", info)
	}
}

func TestIndexDefinitions(t *testing.T) {
	st, m, _ := testStore(t, 3, Options{MaxIndexesPerMap: 2, AutoThreshold: -1})
	st.Map("m")
	if ok, err := m.Add("m", "a.b", false); !ok || err != nil {
		t.Fatalf("Add = %v, %v", ok, err)
	}
	if ok, err := m.Add("m", " a.b ", false); ok || err != nil {
		t.Fatalf("second Add = %v, %v; want false, nil", ok, err)
	}
	if _, err := m.Add("m", "c", false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Add("m", "d", false); err == nil || !errorsIs(err, ErrNoIndexesAvailable) {
		t.Fatalf("third index: %v, want ErrNoIndexesAvailable", err)
	}
	if _, err := m.Add("m", "a..b", false); err == nil {
		t.Fatal("bad path accepted")
	}
	if _, err := m.Add("\x00seq", "a", false); err == nil {
		t.Fatal("internal map indexed")
	}
	if ok, _ := m.Remove("m", "a.b"); !ok {
		t.Fatal("Remove found nothing")
	}
	if ok, _ := m.Remove("m", "a.b"); ok {
		t.Fatal("second Remove found something")
	}
	if err := m.SetDefs("m", []Def{{Path: "x"}, {Path: "c"}}); err != nil {
		t.Fatal(err)
	}
	if got := m.Defs("m"); len(got) != 2 || got[0].Path != "c" || got[1].Path != "x" {
		t.Fatalf("Defs = %+v", got)
	}
	waitReady(t, m, "m")
	if all := m.List("", true); len(all) != 2 || all[1].Position != 2 {
		t.Fatalf("List all = %+v", all)
	}
}

func TestAutoIndexing(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	st, m, _ := testStore(t, 5, Options{AutoThreshold: 3, AutoWindow: time.Minute,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	var autos []string
	m.OnAuto = func(mapName, path string) { autos = append(autos, mapName+"/"+path) }
	sm := st.Map("m")
	sm.Set([]byte("k"), []byte(`{"a":1}`), store.SetOptions{})
	c, _ := Parse(`a=1`)
	for range 3 {
		if got := m.Note("m", c); got != nil {
			t.Fatalf("indexed after fewer queries than the threshold: %v", got)
		}
	}
	// Queries spread over more than the window never trigger.
	clock.Add(int64(2 * time.Minute))
	for range 3 {
		m.Note("m", c)
	}
	if len(m.Defs("m")) != 0 {
		t.Fatal("counted across windows")
	}
	if got := m.Note("m", c); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("Note = %v, want [a]", got)
	}
	waitReady(t, m, "m")
	info := m.List("m", false)
	if len(info) != 1 || !info[0].Auto || info[0].Keys != 1 {
		t.Fatalf("info = %+v", info)
	}
	if !slices.Equal(autos, []string{"m/a"}) {
		t.Fatalf("OnAuto calls = %v", autos)
	}
	// Asked for explicitly, it is no longer automatic.
	m.Add("m", "a", false)
	if m.List("m", false)[0].Auto {
		t.Fatal("explicit Add kept the auto flag")
	}
	// Off: nothing is counted.
	m.SetAutoThreshold(-1)
	c2, _ := Parse(`b=1`)
	for range 10 {
		m.Note("m", c2)
	}
	if len(m.Defs("m")) != 1 {
		t.Fatal("auto-indexed while off")
	}
	// Maps that do not exist are never indexed automatically.
	m.SetAutoThreshold(1)
	for range 5 {
		m.Note("nosuchmap", c2)
	}
	if len(m.List("", true)) != 1 {
		t.Fatal("auto-indexed a map that does not exist")
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// TestIndexTotalBound: a node holds at most MaxIndexes indexes, whatever
// the number of maps.
func TestIndexTotalBound(t *testing.T) {
	_, m, _ := testStore(t, 1, Options{AutoThreshold: -1})
	for i := range MaxIndexes {
		if _, err := m.Add(fmt.Sprint("m", i/4), fmt.Sprint("p", i%4), false); err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
	}
	if _, err := m.Add("another", "p", false); !errors.Is(err, ErrNoIndexesAvailable) {
		t.Fatalf("index past the node's bound: %v", err)
	}
}

// TestIndexMemoryAccounted: the node's index memory total follows the
// indexes (up with entries, down with deletes, partition drops and
// removal), and the store counts it against its memory bound.
func TestIndexMemoryAccounted(t *testing.T) {
	now := &atomic.Int64{}
	now.Store(1_700_000_000_000)
	m := New(Options{Partitions: 7, AutoThreshold: -1})
	st, err := store.New(store.Options{Partitions: 7, Clock: now.Load, Observer: m, SweepInterval: time.Hour,
		ExternalMemory: m.MemoryBytes})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Attach(st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })
	mp, _ := st.OpenMap("m")
	for i := range 500 {
		mp.Set([]byte(fmt.Sprint("k", i)), []byte(fmt.Sprintf(`{"a":%d,"b":"x%d"}`, i%50, i)), store.SetOptions{})
	}
	if m.MemoryBytes() != 0 {
		t.Fatalf("%d bytes with no index", m.MemoryBytes())
	}
	m.Add("m", "a", false)
	m.Add("m", "b", false)
	waitReady(t, m, "m")
	full := m.MemoryBytes()
	var sum int64
	for _, in := range m.List("m", false) {
		sum += in.Bytes
	}
	if full <= 0 || full != sum {
		t.Fatalf("total %d, indexes say %d", full, sum)
	}
	if got := st.Stats(); got.ExternalMemory != full || got.UsedMemory < full {
		t.Fatalf("store stats %+v, index memory %d", got, full)
	}
	for i := range 250 {
		mp.Delete([]byte(fmt.Sprint("k", i)))
	}
	half := m.MemoryBytes()
	if half <= 0 || half >= full {
		t.Fatalf("after deleting half the keys: %d (was %d)", half, full)
	}
	st.DropPartition(0)
	afterDrop := m.MemoryBytes()
	if afterDrop > half {
		t.Fatalf("after a partition drop: %d (was %d)", afterDrop, half)
	}
	m.Remove("m", "a")
	m.Remove("m", "b")
	if got := m.MemoryBytes(); got != 0 {
		t.Fatalf("%d bytes after every index was removed", got)
	}
	// The bound counts index memory: with it set just above the records
	// alone, a new index makes writes of new keys fail (noeviction).
	m.Add("m", "b", false)
	waitReady(t, m, "m")
	st.SetMaxMemory(st.Stats().UsedMemory - m.MemoryBytes() + 1)
	if _, err := mp.Set([]byte("new"), []byte(`{"b":"y"}`), store.SetOptions{}); !errorsIs(err, store.ErrOOM) {
		t.Fatalf("a write over the bound once indexes count: %v, want ErrOOM", err)
	}
}
