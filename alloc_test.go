package engram_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/engramdb/engram"
)

// TestGetToHitDoesNotAllocate holds the SPEC target "Embedded hit path: no
// allocation": a GetTo hit into a buffer with room allocates nothing, key
// conversion included.
func TestGetToHitDoesNotAllocate(t *testing.T) {
	n := open(t, engram.Config{})
	m := n.Map("m")
	ctx := context.Background()
	val := make([]byte, 100)
	for i := range 100 {
		if err := m.Set(ctx, "key"+strconv.Itoa(i), val); err != nil {
			t.Fatal(err)
		}
	}
	key := "key" + strconv.Itoa(42) // built at run time, as real keys are
	dst := make([]byte, 0, 128)
	var err error
	allocs := testing.AllocsPerRun(1000, func() {
		dst, err = m.GetTo(ctx, dst[:0], key)
	})
	if err != nil || len(dst) != 100 {
		t.Fatalf("GetTo = %d bytes, %v; want the 100-byte value", len(dst), err)
	}
	if allocs != 0 {
		t.Fatalf("GetTo hit allocated %.1f times per call, want 0", allocs)
	}
}

// BenchmarkGetToHit measures the embedded hit path (SPEC: no allocation,
// within 2x of the fastest in-process Go caches).
func BenchmarkGetToHit(b *testing.B) {
	n := open(b, engram.Config{})
	m := n.Map("bench")
	ctx := context.Background()
	const keys = 100_000
	names := make([]string, keys)
	val := make([]byte, 100)
	for i := range names {
		names[i] = "key:" + strconv.Itoa(i)
		if err := m.Set(ctx, names[i], val); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]byte, 0, 128)
		i := 0
		for pb.Next() {
			var err error
			if dst, err = m.GetTo(ctx, dst[:0], names[i%keys]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkSet measures the embedded write path with a TTL option.
func BenchmarkSet(b *testing.B) {
	n := open(b, engram.Config{})
	m := n.Map("bench")
	ctx := context.Background()
	const keys = 100_000
	names := make([]string, keys)
	for i := range names {
		names[i] = "key:" + strconv.Itoa(i)
	}
	val := make([]byte, 100)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.Set(ctx, names[i%keys], val, engram.TTL(3600_000_000_000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
