package pubsub

import (
	"fmt"
	"testing"

	"github.com/engramdb/engram/internal/store"
)

// BenchmarkMapEvents measures store writes whose events go through the
// hub to one subscriber that drains its queue concurrently: events/s is
// writes/s. go test -run '^$' -bench MapEvents ./internal/pubsub
func BenchmarkMapEvents(b *testing.B) {
	h := New(Options{MaxQueueBytes: 1 << 30})
	st, err := store.New(store.Options{Observer: h, Partitions: 31})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m, _ := st.OpenMap("m")
	s := h.NewSubscriber(nil)
	s.PSubscribe(bg, MapPattern("m", Write))
	done := make(chan int)
	go func() {
		n := 0
		var buf []Message
		for {
			select {
			case <-s.Ready():
				buf = s.Take(buf[:0])
				n += len(buf)
				clear(buf)
			case <-s.Done():
				done <- n
				return
			}
		}
	}()
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key%d", i)
	}
	val := make([]byte, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Set(keys[i&1023], val, store.SetOptions{})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	s.Close()
	<-done
}

// BenchmarkPublish measures PUBLISH to one channel subscriber and one
// matching pattern.
func BenchmarkPublish(b *testing.B) {
	h := New(Options{MaxQueueBytes: 1 << 30})
	s := h.NewSubscriber(nil)
	s.Subscribe(bg, "news")
	s.PSubscribe(bg, "n*")
	msg := make([]byte, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Publish(bg, "news", msg)
		if i&1023 == 0 {
			s.Take(nil)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
}
