package store

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key:%012d", i))
	}
	return keys
}

// BenchmarkGetHit is the embedded hit path: it must not allocate.
func BenchmarkGetHit(b *testing.B) {
	s, _ := newTestStore(b, Options{})
	m := s.Map("0")
	keys := benchKeys(100000)
	val := make([]byte, 100)
	for _, k := range keys {
		m.Set(k, val, SetOptions{})
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 128)
		i := 0
		for pb.Next() {
			var ok bool
			buf, ok = m.Get(buf[:0], keys[i%len(keys)])
			if !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkSet(b *testing.B) {
	s, _ := newTestStore(b, Options{})
	m := s.Map("0")
	keys := benchKeys(100000)
	val := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := m.Set(keys[i%len(keys)], val, SetOptions{}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// TestMemoryPerKey reports heap bytes per key and GC pause for many keys of
// 100-byte values. It is a measurement, not an assertion on time: run it
// with ENGRAM_MEMTEST=1000000 (or 10000000) and -v.
func TestMemoryPerKey(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ENGRAM_MEMTEST"))
	if n == 0 {
		t.Skip("set ENGRAM_MEMTEST=<keys> to measure")
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, _ := newTestStore(t, Options{})
	m := s.Map("0")
	val := make([]byte, 100)
	key := make([]byte, 0, 32)
	for i := 0; i < n; i++ {
		key = fmt.Appendf(key[:0], "key:%012d", i)
		if _, err := m.Set(key, val, SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := s.Stats()
	t.Logf("%d keys: heap in use %.1f bytes/key, arena %.1f bytes/key, used %.1f bytes/key",
		n, float64(after.HeapInuse-before.HeapInuse)/float64(n), float64(st.ArenaMemory)/float64(n), float64(st.UsedMemory)/float64(n))
	start := time.Now()
	runtime.GC()
	t.Logf("full GC with %d keys: %v wall; last STW pauses: %v", n, time.Since(start), lastPauses(5))
	debug.FreeOSMemory()
}

func lastPauses(k int) []time.Duration {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var out []time.Duration
	for i := 0; i < k && i < int(ms.NumGC); i++ {
		out = append(out, time.Duration(ms.PauseNs[(int(ms.NumGC)-1-i+256)%256]))
	}
	return out
}
