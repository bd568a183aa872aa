// Package embedded compares Engram's embedded hit path (a Get of a present
// key through the storage engine) with the fastest in-process Go caches on
// the same workload: SPEC's target is within 2x of them, with no
// allocation. Run: go test -bench . -benchmem ./bench/embedded
package embedded

import (
	"fmt"
	"testing"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/maypok86/otter"

	"github.com/engramdb/engram/internal/store"
)

const nkeys = 100_000

func keys() ([]string, [][]byte) {
	s := make([]string, nkeys)
	b := make([][]byte, nkeys)
	for i := range s {
		s[i] = fmt.Sprintf("key:%012d", i)
		b[i] = []byte(s[i])
	}
	return s, b
}

var value = make([]byte, 100)

func BenchmarkEngramGet(b *testing.B) {
	st, err := store.New(store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m := st.Map("0")
	_, kb := keys()
	for _, k := range kb {
		m.Set(k, value, store.SetOptions{})
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 128)
		i := 0
		for pb.Next() {
			var ok bool
			if buf, ok = m.Get(buf[:0], kb[i%nkeys]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkOtterGet(b *testing.B) {
	c, err := otter.MustBuilder[string, []byte](2 * nkeys).Build()
	if err != nil {
		b.Fatal(err)
	}
	ks, _ := keys()
	for _, k := range ks {
		c.Set(k, value)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Get(ks[i%nkeys]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkRistrettoGet(b *testing.B) {
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{NumCounters: 20 * nkeys, MaxCost: 4 * nkeys, BufferItems: 64})
	if err != nil {
		b.Fatal(err)
	}
	ks, _ := keys()
	for _, k := range ks {
		c.Set(k, value, 1)
	}
	c.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(ks[i%nkeys]) // ristretto may drop sets under contention: misses are not failures
			i++
		}
	})
}
