package engram_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/engramdb/engram"
)

// Embed a node and use a map with no network hop.
func ExampleOpen() {
	n, err := engram.Open(engram.Config{}) // no listeners: in-process only
	if err != nil {
		panic(err)
	}
	defer n.Close()
	ctx := context.Background()

	users := n.Map("users")
	if err := users.Set(ctx, "42", []byte(`{"name":"Ada"}`), engram.TTL(time.Hour)); err != nil {
		panic(err)
	}
	v, err := users.Get(ctx, "42")
	fmt.Println(string(v), err)

	_, err = users.Get(ctx, "43")
	fmt.Println(errors.Is(err, engram.ErrNotFound))
	// Output:
	// {"name":"Ada"} <nil>
	// true
}

// GetTo reads into a buffer the caller reuses: a hit allocates nothing.
func ExampleMap_GetTo() {
	n, _ := engram.Open(engram.Config{})
	defer n.Close()
	ctx := context.Background()
	m := n.Map("sessions")
	m.Set(ctx, "s1", []byte("alice"))
	m.Set(ctx, "s2", []byte("bob"))

	buf := make([]byte, 0, 64)
	for _, id := range []string{"s1", "s2", "s3"} {
		var err error
		buf, err = m.GetTo(ctx, buf[:0], id)
		if errors.Is(err, engram.ErrNotFound) {
			fmt.Println(id, "expired or never set")
			continue
		}
		fmt.Println(id, string(buf))
	}
	// Output:
	// s1 alice
	// s2 bob
	// s3 expired or never set
}

// SetIf with IfAbsent is Redis's SETNX: only the first writer wins.
func ExampleMap_SetIf() {
	n, _ := engram.Open(engram.Config{})
	defer n.Close()
	ctx := context.Background()
	locks := n.Map("locks")

	first, _ := locks.SetIf(ctx, "job:7", []byte("worker-a"), engram.IfAbsent(), engram.TTL(30*time.Second))
	second, _ := locks.SetIf(ctx, "job:7", []byte("worker-b"), engram.IfAbsent(), engram.TTL(30*time.Second))
	owner, _ := locks.Get(ctx, "job:7")
	fmt.Println(first, second, string(owner))
	// Output: true false worker-a
}

// Sequence-checked writes refuse operations older than the newest one the
// map has seen (jc_s).
func ExampleWithSeq() {
	n, _ := engram.Open(engram.Config{})
	defer n.Close()
	ctx := context.Background()
	prices := n.Map("prices")

	fmt.Println(prices.Set(ctx, "AAPL", []byte("190.1"), engram.WithSeq(10)))
	err := prices.Set(ctx, "AAPL", []byte("189.0"), engram.WithSeq(9)) // a late, stale update
	fmt.Println(errors.Is(err, engram.ErrOutOfSequence))
	v, _ := prices.Get(ctx, "AAPL")
	seq, _, _ := prices.Sequence(ctx)
	fmt.Println(string(v), seq)
	// Output:
	// <nil>
	// true
	// 190.1 10
}

// PutAll and GetAll move many items at once (jc put_all, get_all).
func ExampleMap_GetAll() {
	n, _ := engram.Open(engram.Config{})
	defer n.Close()
	ctx := context.Background()
	m := n.Map("colours")

	written, _ := m.PutAll(ctx, []engram.KV{
		{Key: "red", Value: []byte("#f00")},
		{Key: "green", Value: []byte("#0f0")},
	})
	found, misses, _ := m.GetAll(ctx, []string{"red", "blue", "green"})
	fmt.Println(written, string(found["red"]), string(found["green"]), misses)
	// Output: 2 #f00 #0f0 [blue]
}

// All walks a map partition by partition without holding locks while the
// loop body runs.
func ExampleMap_All() {
	n, _ := engram.Open(engram.Config{})
	defer n.Close()
	ctx := context.Background()
	m := n.Map("inventory")
	m.Set(ctx, "apples", []byte("3"))
	m.Set(ctx, "pears", []byte("5"))

	var lines []string
	for k, v := range m.All(ctx) {
		lines = append(lines, k+"="+string(v))
	}
	slices.Sort(lines) // maps have no order
	fmt.Println(lines)
	// Output: [apples=3 pears=5]
}

// TTL reports NoExpiry for a key that never expires.
func ExampleMap_TTL() {
	n, _ := engram.Open(engram.Config{})
	defer n.Close()
	ctx := context.Background()
	m := n.Map("m")
	m.Set(ctx, "forever", []byte("v"))
	m.Set(ctx, "soon", []byte("v"), engram.TTL(time.Hour))

	d, _ := m.TTL(ctx, "forever")
	fmt.Println(d == engram.NoExpiry)
	d, _ = m.TTL(ctx, "soon")
	fmt.Println(d > 59*time.Minute)
	_, err := m.TTL(ctx, "never-set")
	fmt.Println(errors.Is(err, engram.ErrNotFound))
	// Output:
	// true
	// true
	// true
}

// Open with an address to let Redis clients (and package client) reach
// the same data.
func ExampleConfig() {
	n, err := engram.Open(engram.Config{
		RESPAddr:  "127.0.0.1:0", // any free port; read it back below
		MaxMemory: 64 << 20,      // 64 MiB of data at most...
		// ...then evict the least recently used keys rather than refuse writes.
		EvictionPolicy: "allkeys-lru",
	})
	if err != nil {
		panic(err)
	}
	defer n.Close()
	fmt.Println(n.RESPAddr() != "", n.Stats().EvictionPolicy)
	// Output: true allkeys-lru
}
