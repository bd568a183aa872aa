package clock

import (
	"testing"
	"time"
)

func TestCoarseFollowsWallClock(t *testing.T) {
	c := NewCoarse()
	defer c.Stop()
	start := c.Now()
	if d := time.Now().UnixMilli() - start; d < 0 || d > 1000 {
		t.Fatalf("coarse clock %d ms away from the wall clock", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Now() == start {
		if time.Now().After(deadline) {
			t.Fatal("coarse clock never advanced")
		}
		time.Sleep(time.Millisecond)
	}
	c.Stop()
	c.Stop() // idempotent
}

func BenchmarkCoarseNow(b *testing.B) {
	c := NewCoarse()
	defer c.Stop()
	var sink int64
	for i := 0; i < b.N; i++ {
		sink += c.Now()
	}
	_ = sink
}
