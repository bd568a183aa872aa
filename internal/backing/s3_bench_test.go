package backing_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/backing/s3test"
)

// BenchmarkS3Get is a direct GET of one object from versitygw on
// loopback: the figure a read-through hit in memory is compared with.
func BenchmarkS3Get(b *testing.B) {
	srv := s3test.New(b)
	st := srv.Open(b, "bench")
	for _, size := range []int{100, 4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			k := []byte(fmt.Sprintf("get-%d", size))
			if err := st.Store(ctx, "m", k, make([]byte, size)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, found, err := st.Load(ctx, "m", k); err != nil || !found {
					b.Fatal(found, err)
				}
			}
		})
	}
	b.Run("missing", func(b *testing.B) {
		for b.Loop() {
			if _, found, err := st.Load(ctx, "m", []byte("missing")); err != nil || found {
				b.Fatal(found, err)
			}
		}
	})
}

// BenchmarkS3Put is one PutObject to versitygw on loopback (the server
// writes a file per object).
func BenchmarkS3Put(b *testing.B) {
	srv := s3test.New(b)
	st := srv.Open(b, "bench")
	for _, size := range []int{100, 4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			v := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := st.Store(ctx, "m", []byte(fmt.Sprintf("put-%d-%d", size, i%1000)), v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkS3StoreBatch writes batches of 256 objects of 100 bytes (the
// write-behind flush path); objects/s is the flush throughput.
func BenchmarkS3StoreBatch(b *testing.B) {
	srv := s3test.New(b)
	st := srv.Open(b, "bench")
	entries := make([]backing.Entry, 256)
	for i := range entries {
		entries[i] = backing.Entry{Key: []byte(fmt.Sprintf("batch-%d", i)), Value: make([]byte, 100)}
	}
	start := time.Now()
	n := 0
	for b.Loop() {
		if err := st.StoreBatch(ctx, "m", entries); err != nil {
			b.Fatal(err)
		}
		n += len(entries)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "objects/s")
}
