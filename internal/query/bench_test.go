package query

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/store"
)

// The target: indexed values_match over 1M JSON values at least
// 100x faster than unindexed. Run:
//
//	go test -run XXX -bench BenchmarkValuesMatch -benchtime 20x ./internal/query/
//
// Each value is a ~110-byte document with 1,000 distinct id.type values,
// so id.type=42 matches 1,000 items (0.1%).
const benchItems = 1_000_000

var bench struct {
	once       sync.Once
	st         *store.Store
	m          *Manager
	indexBytes uint64        // heap growth from building the index
	build      time.Duration // time to build the id.type index
	estimate   int64         // the index's own estimate
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func benchSetup(b *testing.B) {
	bench.once.Do(func() {
		m := New(Options{AutoThreshold: -1})
		st, err := store.New(store.Options{Observer: m})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Attach(st); err != nil {
			b.Fatal(err)
		}
		sm := st.Map("bench")
		for i := range benchItems {
			v := fmt.Sprintf(`{"id":{"type":%d,"seq":%d},"name":"user-%07d","score":%d.25,"active":%v}`,
				i%1000, i, i, i%97, i%3 == 0)
			if _, err := sm.Set([]byte("key:"+strconv.Itoa(i)), []byte(v), store.SetOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		// A second map holds the same data unindexed (the scan baseline):
		// the indexed map's index must not serve it.
		sm2 := st.Map("scan")
		for i := range benchItems {
			v, _ := sm.Get(nil, []byte("key:"+strconv.Itoa(i)))
			sm2.Set([]byte("key:"+strconv.Itoa(i)), v, store.SetOptions{})
		}
		before := heapInUse()
		start := time.Now()
		if _, err := m.Add("bench", "id.type", false); err != nil {
			b.Fatal(err)
		}
		for m.List("bench", false)[0].State != StateReady {
			time.Sleep(time.Millisecond)
		}
		bench.build = time.Since(start)
		bench.indexBytes = heapInUse() - before
		if _, err := m.Add("bench", "score", false); err != nil {
			b.Fatal(err)
		}
		for m.List("bench", false)[1].State != StateReady {
			time.Sleep(time.Millisecond)
		}
		bench.estimate = m.List("bench", false)[0].Bytes
		bench.st, bench.m = st, m
	})
}

func BenchmarkValuesMatch(b *testing.B) {
	benchSetup(b)
	c, err := Parse("id.type=42")
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct {
		name, mapName string
		wantIndex     bool
	}{{"indexed", "bench", true}, {"unindexed", "scan", false}} {
		b.Run(bm.name, func(b *testing.B) {
			sm := bench.st.Map(bm.mapName)
			n := 0
			for b.Loop() {
				n = 0
				plan := bench.m.Match(sm, c, nil, func(_, _ []byte) bool { n++; return true })
				if (plan.Index != "") != bm.wantIndex {
					b.Fatalf("plan %+v", plan)
				}
			}
			if n != benchItems/1000 {
				b.Fatalf("%d matches, want %d", n, benchItems/1000)
			}
			b.ReportMetric(float64(n), "matches")
			if bm.wantIndex {
				b.ReportMetric(float64(bench.indexBytes)/(1<<20), "index-heap-MiB")
				b.ReportMetric(float64(bench.indexBytes)/benchItems, "index-bytes/key")
				b.ReportMetric(float64(bench.estimate)/(1<<20), "index-estimate-MiB")
				b.ReportMetric(bench.build.Seconds(), "build-s")
			}
		})
	}
}

// BenchmarkValuesMatchOps: other operators through the indexes (score has
// 97 distinct values; score>=95.25 matches 2/97 of the items) against the
// scan of the unindexed copy.
func BenchmarkValuesMatchOps(b *testing.B) {
	benchSetup(b)
	for _, q := range []string{`score>=95.25`, `id.type in [1,2,3]`, `id.type=42 && active=true`} {
		c, err := Parse(q)
		if err != nil {
			b.Fatal(err)
		}
		for _, mapName := range []string{"bench", "scan"} {
			b.Run(q+"/"+mapName, func(b *testing.B) {
				sm := bench.st.Map(mapName)
				n := 0
				for b.Loop() {
					n = 0
					bench.m.Match(sm, c, nil, func(_, _ []byte) bool { n++; return true })
				}
				b.ReportMetric(float64(n), "matches")
			})
		}
	}
}

// BenchmarkIndexedSet is the cost of index maintenance on the write path:
// overwriting JSON values of a 100,000-item map with 0, 1 and 4 indexes.
func BenchmarkIndexedSet(b *testing.B) {
	for _, nIdx := range []int{0, 1, 4} {
		b.Run(fmt.Sprint(nIdx, "-indexes"), func(b *testing.B) {
			m := New(Options{AutoThreshold: -1})
			st, err := store.New(store.Options{Observer: m})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			defer m.Close()
			m.Attach(st)
			sm := st.Map("w")
			const keys = 100_000
			names := make([][]byte, keys)
			vals := make([][]byte, 64)
			for i := range vals {
				vals[i] = []byte(fmt.Sprintf(`{"id":{"type":%d,"seq":%d},"name":"user-%07d","score":%d.25,"active":%v}`, i%10, i, i, i%97, i%3 == 0))
			}
			for i := range names {
				names[i] = []byte("key:" + strconv.Itoa(i))
				sm.Set(names[i], vals[i%len(vals)], store.SetOptions{})
			}
			for _, p := range []string{"id.type", "score", "active", "name"}[:nIdx] {
				m.Add("w", p, false)
			}
			for ready := false; !ready; time.Sleep(time.Millisecond) {
				ready = true
				for _, in := range m.List("w", false) {
					ready = ready && in.State == StateReady
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sm.Set(names[i%keys], vals[(i*7)%len(vals)], store.SetOptions{})
				i++
			}
		})
	}
}
