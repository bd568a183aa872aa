package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/pubsub"
	"github.com/redis/go-redis/v9"
)

// psCollector gathers what a go-redis subscriber receives.
type psCollector struct {
	mu     sync.Mutex
	values map[string][]int // key -> values of its write events, in arrival order
	nodes  []pubsub.NodeEvent
	topics []string
}

func (c *psCollector) run(ch <-chan *redis.Message) {
	for m := range ch {
		c.mu.Lock()
		switch {
		case m.Channel == pubsub.NodeChannel:
			if e, err := pubsub.DecodeNodeEvent([]byte(m.Payload)); err == nil {
				c.nodes = append(c.nodes, e)
			}
		case strings.HasPrefix(m.Channel, pubsub.MapPrefix):
			if _, kind, key, ok := pubsub.ParseMapChannel(m.Channel); ok && kind == pubsub.Write {
				v, _ := strconv.Atoi(m.Payload)
				if c.values == nil {
					c.values = map[string][]int{}
				}
				c.values[key] = append(c.values[key], v)
			}
		default:
			c.topics = append(c.topics, m.Channel+"="+m.Payload)
		}
		c.mu.Unlock()
	}
}

func (c *psCollector) has(key string, v int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.values[key] {
		if x == v {
			return true
		}
	}
	return false
}

// pollUntil polls cond every 10ms until it holds; it fails the test after
// a generous deadline (a hang, not a timing assertion).
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterPubSub: a subscriber connected to one node receives the map
// events of keys led by every node, once each and in order per key, while
// a node joins and another is killed; topics reach it from any node, with
// a cluster-wide receiver count; node events tell of the join and the
// failure.
func TestClusterPubSub(t *testing.T) {
	a := startMember(t, "", nil)
	b := startMember(t, a.GossipAddr(), nil)
	c := startMember(t, a.GossipAddr(), nil)
	waitSettled(t, 3, a, b, c)

	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: a.RESPAddr(), Protocol: 3})
	defer rdb.Close()
	ps := rdb.PSubscribe(ctx, pubsub.MapPattern("ev", pubsub.Write))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ps.Subscribe(ctx, pubsub.NodeChannel, "topic"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var got psCollector
	go got.run(ps.Channel(redis.WithChannelSize(1 << 20)))

	const keys = 24
	next := make([]int, keys) // next value to write per key
	var mu sync.Mutex
	var acked []struct {
		key string
		v   int
	}
	write := func(via *Node, k int) {
		mu.Lock()
		v := next[k]
		next[k]++
		mu.Unlock()
		key := fmt.Sprint("k", k)
		r := string(via.Do(ctx, "ev", [][]byte{[]byte("SET"), []byte(key), []byte(strconv.Itoa(v))}, false, 0, false))
		if r == "+OK\r\n" {
			mu.Lock()
			acked = append(acked, struct {
				key string
				v   int
			}{key, v})
			mu.Unlock()
		}
	}
	checkAcked := func(from int) {
		mu.Lock()
		list := append(acked[:0:0], acked[from:]...)
		mu.Unlock()
		for _, w := range list {
			pollUntil(t, fmt.Sprintf("the event of %s=%d", w.key, w.v), func() bool { return got.has(w.key, w.v) })
		}
	}

	// Phase 1: a stable cluster. Every acknowledged write's event arrives.
	for round := range 10 {
		for k := range keys {
			write([]*Node{b, c}[(round+k)%2], k)
		}
	}
	checkAcked(0)
	primaries := map[string]bool{}
	for k := range keys {
		if v, ok := a.ClusterView(true); ok {
			p := a.store.PartitionOf([]byte(fmt.Sprint("k", k)))
			primaries[v.Owners[p][0]] = true
		}
	}
	if len(primaries) < 3 {
		t.Fatalf("the keys' primaries are %v: the test needs keys led by every node", primaries)
	}

	// Topics: published on b, received on a; the count is cluster-wide.
	if n, err := redis.NewClient(&redis.Options{Addr: b.RESPAddr()}).Publish(ctx, "topic", "hello").Result(); err != nil || n != 1 {
		t.Fatalf("PUBLISH through b: %d receivers, %v; want 1 (the subscriber on a)", n, err)
	}
	pollUntil(t, "the topic message", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		return len(got.topics) == 1 && got.topics[0] == "topic=hello"
	})

	// Phase 2: writes go on while d joins and c is killed.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			write(b, i%keys)
		}
	}()
	d := startMember(t, a.GossipAddr(), nil)
	waitSettled(t, 4, a, b, c, d)
	c.Kill(ctx)
	waitSettled(t, 3, a, b, d)
	close(stop)
	<-done

	// Phase 3: stable again; every acknowledged write's event arrives.
	mu.Lock()
	from := len(acked)
	mu.Unlock()
	for round := range 5 {
		for k := range keys {
			write([]*Node{b, d}[(round+k)%2], k)
		}
	}
	checkAcked(from)

	// Once each, in order per key: values only grow.
	got.mu.Lock()
	total := 0
	for key, vs := range got.values {
		total += len(vs)
		for i := 1; i < len(vs); i++ {
			if vs[i] <= vs[i-1] {
				t.Errorf("key %s: events out of order or repeated: %v", key, vs)
				break
			}
		}
	}
	nodes := append([]pubsub.NodeEvent(nil), got.nodes...)
	got.mu.Unlock()
	mu.Lock()
	t.Logf("%d writes acknowledged, %d events received", len(acked), total)
	mu.Unlock()

	var sawUp, sawDown bool
	for _, e := range nodes {
		switch {
		case e.Event == "nodeup" && e.Node == d.ID():
			sawUp = true
		case e.Event == "nodedown" && e.Node == c.ID():
			sawDown = true
			for _, x := range e.Active {
				if x == c.ID() {
					t.Errorf("nodedown of %s lists it active: %+v", c.ID(), e)
				}
			}
		}
	}
	if !sawUp || !sawDown {
		t.Fatalf("node events %+v: want nodeup of %s and nodedown of %s", nodes, d.ID(), c.ID())
	}
	if st := a.cluster.data.PubSub(); st.EventsReceived == 0 {
		t.Fatalf("no event crossed nodes: %+v", st)
	}
}
