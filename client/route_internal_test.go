package client

import (
	"context"
	"net"
	"testing"

	"github.com/engramdb/engram"
)

// TestRouteFallback points every partition at an owner that refuses
// connections: single-key calls, writes included, run once on the seed.
func TestRouteFallback(t *testing.T) {
	n, err := engram.Open(engram.Config{RESPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// An address nothing listens on any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	ctx := context.Background()
	c, err := Dial(ctx, Options{Addr: n.RESPAddr(), RouteToOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A single node has no cluster table, so refreshes fail and leave
	// this one in place.
	c.router.mu.Lock()
	c.router.t = &table{seedID: "seed", primary: []string{"gone", "gone", "gone"}, addrs: map[string]string{"gone": dead}}
	c.router.mu.Unlock()
	if got := c.router.owner("k"); got != dead {
		t.Fatalf("owner(k) = %q, want the injected %q", got, dead)
	}
	m := c.Map("fallback")
	if err := m.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if v, err := m.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	for want := int64(1); want <= 3; want++ {
		if got, err := m.Incr(ctx, "n"); err != nil || got != want {
			t.Fatalf("Incr = %d, %v, want %d: a write must run exactly once", got, err, want)
		}
	}
	if ok, err := m.Contains(ctx, "k"); err != nil || !ok {
		t.Fatalf("Contains = %v, %v", ok, err)
	}
	if v, err := n.Map("fallback").Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("the seed's own view: %q, %v", v, err)
	}
}
