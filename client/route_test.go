package client_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram"
	"github.com/engramdb/engram/client"
)

const testClusterSecret = "engram-client-test-cluster-secret"

// startCluster runs n embedded nodes forming one cluster and waits until
// it has formed.
func startCluster(t *testing.T, n int) []*engram.Node {
	t.Helper()
	var nodes []*engram.Node
	for i := range n {
		cfg := engram.Config{MaxKeyLen: testMaxKeyLen, MaxValueLen: testMaxValueLen, HTTPAddr: "127.0.0.1:0",
			ClusterAddr: "127.0.0.1:0", ClusterSecret: testClusterSecret, NodeName: "n" + strconv.Itoa(i)}
		if i > 0 {
			cfg.Join = []string{nodes[0].ClusterAddr()}
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	waitFormed(t, nodes)
	return nodes
}

// dialRouted dials seed with RouteToOwners.
func dialRouted(t testing.TB, seed *engram.Node, protocol int) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), client.Options{Addr: seed.RESPAddr(), Protocol: protocol, RouteToOwners: true})
	if err != nil {
		t.Fatalf("Dial(%s, RESP%d, RouteToOwners): %v", seed.RESPAddr(), protocol, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// primaryOf returns the index in nodes of key's primary, asking node 0.
func primaryOf(t *testing.T, ctx context.Context, nodes []*engram.Node, key string) int {
	t.Helper()
	c := dial(t, nodes[0], 3)
	owners, err := c.Redis().Do(ctx, "cluster", "owners", key).StringSlice()
	if err != nil || len(owners) == 0 {
		t.Fatalf("CLUSTER OWNERS %s = %v, %v", key, owners, err)
	}
	for i, n := range nodes {
		id, err := dial(t, n, 3).Redis().Do(ctx, "cluster", "myid").Text()
		if err != nil {
			t.Fatal(err)
		}
		if id == owners[0] {
			return i
		}
	}
	t.Fatalf("the primary %s of %q is none of the nodes", owners[0], key)
	return -1
}

// calls returns a node's INFO commandstats call count of cmd.
func calls(t *testing.T, ctx context.Context, c *client.Client, cmd string) int64 {
	t.Helper()
	info, err := c.Redis().Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
			n, err := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	return 0
}

// TestRouteToOwners checks that with routing on a key's single-key
// commands reach its primary and no other node, and that multi-key
// commands still go through the seed.
func TestRouteToOwners(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := context.Background()
	// A key the seed (node 0) does not own.
	key, owner := "", -1
	for i := 0; owner <= 0; i++ {
		key = "routed:" + strconv.Itoa(i)
		owner = primaryOf(t, ctx, nodes, key)
	}
	stats := make([]*client.Client, len(nodes)) // unrouted, for INFO
	for i, n := range nodes {
		stats[i] = dial(t, n, 3)
	}
	for _, proto := range []int{2, 3} {
		t.Run("RESP"+strconv.Itoa(proto), func(t *testing.T) {
			m := dialRouted(t, nodes[0], proto).Map("route-" + strconv.Itoa(proto))
			const n = 20
			var before [3][2]int64
			for i, s := range stats {
				before[i] = [2]int64{calls(t, ctx, s, "get"), calls(t, ctx, s, "set")}
			}
			for i := range n {
				set(t, ctx, m, key, "v"+strconv.Itoa(i))
				wantValue(t, ctx, m, key, "v"+strconv.Itoa(i))
			}
			for i, s := range stats {
				gets, sets := calls(t, ctx, s, "get")-before[i][0], calls(t, ctx, s, "set")-before[i][1]
				want := int64(0)
				if i == owner {
					want = n
				}
				if gets != want || sets != want {
					t.Errorf("node %d (owner %d) ran %d GETs and %d SETs, want %d of each", i, owner, gets, sets, want)
				}
			}
			// The key is where an unrouted client finds it.
			wantValue(t, ctx, dial(t, nodes[1], proto).Map(m.Name()), key, "v"+strconv.Itoa(n-1))
			// Multi-key calls go to the seed, which splits them.
			before0 := calls(t, ctx, stats[0], "getall")
			if found, _, err := m.GetAll(ctx, []string{key, "other"}); err != nil || string(found[key]) != "v"+strconv.Itoa(n-1) {
				t.Fatalf("GetAll = %q, %v", found, err)
			}
			if got := calls(t, ctx, stats[0], "getall") - before0; got != 1 {
				t.Errorf("the seed ran %d GETALLs, want 1", got)
			}
		})
	}
}

// TestRouteToOwnersNodeLeaves closes a node while a routed client uses
// keys it owned: every call still succeeds (or says the cluster is
// unavailable, while the partitions change hands) and reads what was
// written, through the seed and then the new owners.
func TestRouteToOwnersNodeLeaves(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := context.Background()
	c := dialRouted(t, nodes[0], 3)
	m := c.Map("leaves")
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		set(t, ctx, m, keys[i], "v"+strconv.Itoa(i))
	}
	// Use the pools to node 2 before it goes.
	for i, k := range keys {
		wantValue(t, ctx, m, k, "v"+strconv.Itoa(i))
	}
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; ; round++ {
		var failed error
		for i, k := range keys {
			want := "v" + strconv.Itoa(i)
			if round > 0 {
				want = fmt.Sprintf("r%d-%d", round-1, i)
			}
			v, err := m.Get(ctx, k)
			if err == nil && string(v) != want {
				t.Fatalf("round %d: Get(%s) = %q, want %q", round, k, v, want)
			}
			if err == nil {
				err = m.Set(ctx, k, fmt.Appendf(nil, "r%d-%d", round, i))
				if err != nil {
					// A failed write may or may not have been applied: the
					// next round cannot know which value to expect.
					keys[i] = k + "x"
					set(t, ctx, m, keys[i], fmt.Sprintf("r%d-%d", round, i))
				}
			}
			if err != nil {
				if !errors.Is(err, engram.ErrUnavailable) {
					t.Fatalf("round %d: %s: %v, want success or engram.ErrUnavailable", round, k, err)
				}
				failed = err
			}
		}
		if failed == nil && round >= 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 20s after a node left: %v", failed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
