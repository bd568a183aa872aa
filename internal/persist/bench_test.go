package persist

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/store"
)

// BenchmarkWriteBack measures Engram's side of write-back: changes of
// distinct keys written back to an in-memory store (no I/O), batches of
// 100, 8 in flight. The figure is the ceiling a fast store would see.
//
//	go test -run '^$' -bench BenchmarkWriteBack ./internal/persist
func BenchmarkWriteBack(b *testing.B) {
	f := newFixture(b, Settings{Mode: ModeWriteBehind, Delay: time.Second, Batch: 100})
	val := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.mp.Set([]byte(fmt.Sprintf("k%d", i)), val, store.SetOptions{})
	}
	f.clk.advance(time.Hour)
	start := time.Now()
	for f.m.pendingLed() > 0 {
		f.m.writeBackDue(context.Background(), f.clk.now(), true)
	}
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "objects/s")
}
