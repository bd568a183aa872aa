package transport_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/engramdb/engram/internal/transport"
)

// BenchmarkTCPCall measures Call round trips over loopback TCP: one
// caller at a time (latency) and many at once (throughput, where the
// writers' batching shows).
func BenchmarkTCPCall(b *testing.B) {
	for _, size := range []int{128, 4 << 10} {
		server := startTCP(b, transport.TCPOptions{Handler: echo})
		client := startTCP(b, transport.TCPOptions{Handler: refuse})
		req := make([]byte, size)
		ctx := context.Background()
		if _, err := client.Call(ctx, server.Addr(), 0, req); err != nil {
			b.Fatal(err) // Dial outside the timed loop.
		}
		b.Run(fmt.Sprintf("sequential/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := client.Call(ctx, server.Addr(), 0, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("parallel/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.Call(ctx, server.Addr(), 0, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkTCPSend measures one-way messages, which need no round trip.
func BenchmarkTCPSend(b *testing.B) {
	server := startTCP(b, transport.TCPOptions{Handler: echo})
	client := startTCP(b, transport.TCPOptions{Handler: refuse})
	req := make([]byte, 128)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := client.Send(ctx, server.Addr(), 0, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
