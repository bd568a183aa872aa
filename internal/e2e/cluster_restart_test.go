package e2e

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePorts returns a port P on host such that P, P+1 and P+2 (gossip,
// data, Raft) and P+3 (RESP) are free now.
func freePorts(t *testing.T, host string) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		ln, err := net.Listen("tcp", host+":0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p+3 > 65535 {
			continue
		}
		ok := true
		for i := 0; i < 4 && ok; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p+i)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
			if u, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p+i))); err == nil {
				u.Close()
			} else {
				ok = false
			}
		}
		if ok {
			return p
		}
	}
	t.Fatalf("no 4 consecutive free ports on %s", host)
	return 0
}

// TestClusterRestartInPlace: nodes restarted with the same command on the
// same addresses (as a service manager restarts them) rejoin under new
// member IDs while the control plane still lists their old IDs, failed,
// at the same addresses. A joining node is killed and restarted, then the
// bootstrapping node (with --join this time). Each time the cluster must
// settle with every copy made, and no key may be lost. (The failed
// member's id, taken at random for the address, left the restarted
// node's copies stuck.)
func TestClusterRestartInPlace(t *testing.T) {
	c := newCluster(t, "--partitions", "31")
	type place struct{ host, cluster, resp string }
	var places []place
	// start starts node i at its place; join names another member's
	// gossip address ("" for the first node, which bootstraps).
	start := func(i int, join string) *cnode {
		pl := places[i]
		args := []string{"--cluster", pl.cluster, "--resp", pl.resp}
		if join != "" {
			args = append(args, "--join", join)
		}
		return c.spawnOn(pl.host, true, []string{"ENGRAM_CLUSTER_SECRET=" + clusterSecret}, args...)
	}
	nodes := make([]*cnode, 3)
	for i := range nodes {
		host := fmt.Sprintf("127.0.0.%d", 2+i)
		p := freePorts(t, host)
		places = append(places, place{host, net.JoinHostPort(host, strconv.Itoa(p)), net.JoinHostPort(host, strconv.Itoa(p+3))})
		join := ""
		if i > 0 {
			join = places[0].cluster
		}
		nodes[i] = start(i, join)
	}
	c.waitSettled(3)
	kv := map[string]string{}
	for i := range 600 {
		kv[fmt.Sprintf("restart:%d", i)] = fmt.Sprintf("v%d", i)
	}
	setAll(t, nodes[0].rdb, kv)

	for _, i := range []int{2, 0} { // a joiner, then the seed
		old := nodes[i]
		old.kill()
		c.waitSettled(2)
		// Restarted with --join naming a live member (the first node
		// too: without --join it would start a new cluster).
		nodes[i] = start(i, places[1].cluster)
		if nodes[i].id == old.id {
			t.Fatalf("%s came back with the same member ID %s", nodes[i].name, old.id)
		}
		d := c.waitSettled(3)
		t.Logf("%s restarted in place as %s (was %s): settled %v after it started", nodes[i].name, nodes[i].id, old.id, d)
		for _, n := range c.live() {
			got, err := getAll(n.rdb, slices.Sorted(maps.Keys(kv)))
			if err != nil {
				t.Fatalf("read through %s: %v", n.name, err)
			}
			for k, v := range kv {
				if got[k] != v {
					t.Fatalf("after restarting %s: %s through %s = %q, want %q", nodes[i].name, k, n.name, got[k], v)
				}
			}
		}
	}

	// The first node restarted the way it was first started (no --join)
	// starts a cluster of its own: neither gossip nor Raft may merge it
	// into the old one (which then lost its control plane to it); the old
	// one carries on with the other two nodes.
	nodes[0].kill()
	c.waitSettled(2)
	pl := places[0]
	alone := c.spawnOn(pl.host, false, []string{"ENGRAM_CLUSTER_SECRET=" + clusterSecret}, "--cluster", pl.cluster, "--resp", pl.resp)
	waitFor(t, settleTimeout, "the old cluster to refuse the new one's gossip", func() bool {
		return strings.Contains(alone.log(), "refused to merge with another cluster")
	})
	time.Sleep(3 * time.Second) // a few reconnect rounds
	c.waitSettled(2)
	// Raft refuses the old leader too: the new node is a cluster of one
	// of its own, not a confused member of the old one.
	waitFor(t, settleTimeout, "the new node to be a settled cluster of one", func() bool {
		inf, err := alone.info()
		return err == nil && inf["cluster_state"] == "ok" && inf["cluster_data_nodes"] == "1" && inf["cluster_migrations"] == "0"
	})
	ids := map[string]bool{}
	for _, n := range c.live() {
		inf, err := n.info()
		if err != nil {
			t.Fatal(err)
		}
		ids[inf["cluster_id"]] = true
	}
	inf, err := alone.info()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[""] || ids[inf["cluster_id"]] {
		t.Fatalf("cluster ids: the old cluster's members show %v, the new node %q; want one non-empty id, and another for the new node", ids, inf["cluster_id"])
	}
	for _, n := range c.live() {
		got, err := getAll(n.rdb, slices.Sorted(maps.Keys(kv)))
		if err != nil {
			t.Fatalf("read through %s: %v", n.name, err)
		}
		if len(got) != len(kv) {
			t.Fatalf("%s has %d of the %d keys after a new cluster appeared at a failed member's address", n.name, len(got), len(kv))
		}
	}
}
