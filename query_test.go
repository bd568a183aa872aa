package engram_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/engramdb/engram"
)

func keysOf(items []engram.KV) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	slices.Sort(out)
	return out
}

// allPages runs a paged query to its end.
func allPages(t *testing.T, m *engram.Map, criteria string, count int) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	cursor := uint64(0)
	for pages := 0; ; pages++ {
		items, next, err := m.ValuesMatchPage(ctx, criteria, cursor, count)
		if err != nil {
			t.Fatalf("ValuesMatchPage(%q, %d): %v", criteria, cursor, err)
		}
		out = append(out, keysOf(items)...)
		if cursor = next; cursor == 0 {
			break
		}
		if pages > 1000 {
			t.Fatal("the cursor never came back to 0")
		}
	}
	slices.Sort(out)
	return out
}

func TestQueriesGoAPI(t *testing.T) {
	n := open(t, engram.Config{AutoIndex: -1})
	ctx := context.Background()
	m := n.Map("bed")
	var want []string
	for i := range 50 {
		k := fmt.Sprint("k", i)
		m.Set(ctx, k, []byte(fmt.Sprintf(`{"id":{"type":%d},"name":"n%d"}`, i%5, i)))
		if i%5 == 3 {
			want = append(want, k)
		}
	}
	m.Set(ctx, "s", []byte(`{"id":{"type":"3"}}`))
	m.Set(ctx, "bad", []byte(`{"id":{"type":3}`))
	slices.Sort(want)
	got, err := m.ValuesMatch(ctx, "id.type=3")
	if err != nil || !slices.Equal(keysOf(got), want) {
		t.Fatalf("ValuesMatch = %v, %v; want %v", keysOf(got), err, want)
	}
	if got := allPages(t, m, "id.type=3", 3); !slices.Equal(got, want) {
		t.Fatalf("pages = %v, want %v", got, want)
	}
	if _, err := m.ValuesMatch(ctx, "id.type=three"); !errors.Is(err, engram.ErrInvalidCriteria) {
		t.Fatalf("bad criteria: %v, want ErrInvalidCriteria", err)
	}
	if err := m.StartIndexing(ctx, "id.type"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b", "c"} {
		if err := m.StartIndexing(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.StartIndexing(ctx, "d"); !errors.Is(err, engram.ErrNoIndexesAvailable) {
		t.Fatalf("fifth index: %v, want ErrNoIndexesAvailable", err)
	}
	if err := m.StopIndexing(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		l, err := m.Indexes(ctx)
		return err == nil && len(l) == 3 && l[0].State == "ready"
	})
	l, _ := n.Indexes(ctx)
	if len(l) != 3 || l[0].Map != "bed" || l[0].Path != "id.type" || l[0].Keys != 51 || l[0].Position != 1 || l[0].Created.IsZero() {
		t.Fatalf("Indexes = %+v", l)
	}
	if got, _ := m.ValuesMatch(ctx, "id.type=3"); !slices.Equal(keysOf(got), want) {
		t.Fatalf("indexed ValuesMatch = %v", keysOf(got))
	}
	if _, err := m.EvictMatchSeq(ctx, "id.type=3", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EvictMatchSeq(ctx, "id.type=3", 4); !errors.Is(err, engram.ErrOutOfSequence) {
		t.Fatalf("EvictMatchSeq below the sequence: %v", err)
	}
	n.Map("other").Set(ctx, "o", []byte(`{"id":{"type":2}}`))
	if k, err := n.EvictAllMatch(ctx, "id.type=2"); err != nil || k != 11 {
		t.Fatalf("EvictAllMatch = %d, %v; want 11", k, err)
	}
	if k, err := n.EvictAllMatchSeq(ctx, "id.type=1", 3); !errors.Is(err, engram.ErrOutOfSequence) || k != 0 {
		t.Fatalf("EvictAllMatchSeq below bed's sequence = %d, %v", k, err)
	}
	if k, err := m.EvictMatch(ctx, "id.type in [0,1,4]"); err != nil || k != 30 {
		t.Fatalf("EvictMatch = %d, %v; want 30", k, err)
	}
	if left, _ := m.Len(ctx); left != 2 {
		t.Fatalf("%d items left, want 2 (s and bad)", left)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClusterQueriesDuringRebalance: JSON items spread over a cluster are
// found exactly once by every query (paged and not, indexed and not) while
// a node joins and partitions move, and after a node is killed.
func TestClusterQueriesDuringRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ctx := context.Background()
	nodes := startCluster(t, 2, nil)
	m := nodes[0].Map("bed")
	var want []string
	for i := range 1500 {
		k := fmt.Sprint("k", i)
		if err := m.Set(ctx, k, []byte(fmt.Sprintf(`{"id":{"type":%d}}`, i%10))); err != nil {
			t.Fatal(err)
		}
		if i%10 == 7 {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	check := func(m *engram.Map, when string) {
		t.Helper()
		got, err := m.ValuesMatch(ctx, "id.type=7")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if k := keysOf(got); !slices.Equal(k, want) {
			t.Fatalf("%s: ValuesMatch found %d keys (want %d)", when, len(k), len(want))
		}
		if k := allPages(t, m, "id.type=7", 20); !slices.Equal(k, want) {
			t.Fatalf("%s: paged ValuesMatch found %d keys (want %d)", when, len(k), len(want))
		}
	}
	check(m, "two nodes, unindexed")
	if err := m.StartIndexing(ctx, "id.type"); err != nil {
		t.Fatal(err)
	}
	check(m, "two nodes, index building or built")
	// A third node joins: partitions move while queries run.
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg := engram.Config{RESPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0",
			ClusterSecret: testSecret, NodeName: "n2", Join: []string{nodes[0].ClusterAddr()}}
		nodes = append(nodes, open(t, cfg))
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
		default:
			check(m, fmt.Sprint("while a node joins, round ", i))
			continue
		}
		break
	}
	waitSettled(t, nodes)
	check(nodes[2].Map("bed"), "three nodes, asked on the new one")
	// The index definition is cluster configuration: the node that joined
	// after it was added builds it too, over the partitions it holds.
	waitFor(t, func() bool {
		l, err := nodes[2].Map("bed").Indexes(ctx)
		return err == nil && len(l) == 1 && l[0].Path == "id.type" && l[0].State == "ready" && l[0].Keys > 0
	})
	for i := range 5 {
		check(m, fmt.Sprint("three nodes settled, round ", i))
	}
	// Evictions go everywhere; a killed node's partitions fail over.
	if k, err := m.EvictMatch(ctx, "id.type=7"); err != nil || k != len(want) {
		t.Fatalf("EvictMatch = %d, %v; want %d", k, err, len(want))
	}
	want = nil
	check(m, "after EvictMatch")
	if err := engram.Kill(nodes[1]); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, []*engram.Node{nodes[0], nodes[2]})
	got, err := m.ValuesMatch(ctx, "id.type=3")
	if err != nil || len(got) != 150 {
		t.Fatalf("after a kill: %d matches, %v; want 150", len(got), err)
	}
}

// TestQueriesConfig: the embedded node's index limit and automatic
// indexing threshold come from Config.
func TestQueriesConfig(t *testing.T) {
	ctx := context.Background()
	n := open(t, engram.Config{MaxIndexesPerMap: 1, AutoIndex: 2})
	m := n.Map("m")
	m.Set(ctx, "k", []byte(`{"a":1,"b":2}`))
	for range 3 {
		if _, err := m.ValuesMatch(ctx, "a=1"); err != nil {
			t.Fatal(err)
		}
	}
	l, err := m.Indexes(ctx)
	if err != nil || len(l) != 1 || l[0].Path != "a" || !l[0].Auto {
		t.Fatalf("after 3 queries with threshold 2: %+v, %v", l, err)
	}
	if err := m.StartIndexing(ctx, "b"); !errors.Is(err, engram.ErrNoIndexesAvailable) {
		t.Fatalf("second index with a limit of 1: %v", err)
	}
	off := open(t, engram.Config{AutoIndex: -1}).Map("m")
	off.Set(ctx, "k", []byte(`{"a":1}`))
	for range 20 {
		off.ValuesMatch(ctx, "a=1")
	}
	if l, _ := off.Indexes(ctx); len(l) != 0 {
		t.Fatalf("automatic indexing off, yet: %+v", l)
	}
}

// TestClusterAutoIndex: a path queried often on one node is indexed
// automatically on every node (recorded in the cluster's configuration).
func TestClusterAutoIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ctx := context.Background()
	nodes := startCluster(t, 2, func(_ int, c *engram.Config) { c.AutoIndex = 2 })
	m := nodes[0].Map("auto")
	for i := range 100 {
		if err := m.Set(ctx, fmt.Sprint("k", i), []byte(fmt.Sprintf(`{"g":%d}`, i%4))); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		got, err := m.ValuesMatch(ctx, "g=1")
		if err != nil || len(got) != 25 {
			t.Fatalf("ValuesMatch = %d items, %v", len(got), err)
		}
	}
	for i, n := range nodes {
		waitFor(t, func() bool {
			l, err := n.Map("auto").Indexes(ctx)
			return err == nil && len(l) == 1 && l[0].Path == "g" && l[0].Auto && l[0].State == "ready"
		})
		if l, _ := n.Map("auto").Indexes(ctx); l[0].Keys == 0 {
			t.Fatalf("node %d indexed nothing", i)
		}
	}
	if got, _ := nodes[1].Map("auto").ValuesMatch(ctx, "g=1"); len(got) != 25 {
		t.Fatalf("indexed ValuesMatch = %d items", len(got))
	}
}
