package node

import (
	"context"
	"strings"
	"testing"
)

// A standalone node answers the cluster accessors the Go and HTTP APIs
// use as a cluster of one, and serves its data from the store.
func TestStandaloneClusterAccessors(t *testing.T) {
	n := startNode(t, nil)
	if n.Clustered() || n.GossipAddr() != "" {
		t.Fatalf("Clustered() = %v, GossipAddr() = %q", n.Clustered(), n.GossipAddr())
	}
	if _, ok := n.ClusterView(true); ok {
		t.Fatal("ClusterView on a standalone node")
	}
	active, configured := n.Nodes()
	if n.ID() != n.RESPAddr() || len(active) != 1 || active[0] != n.ID() || len(configured) != 1 {
		t.Fatalf("ID() = %q, Nodes() = %v, %v", n.ID(), active, configured)
	}
	n.OnNodeEvent(func(NodeEvent) { t.Error("node event on a standalone node") })()
	if got := string(n.Do(context.Background(), "m", [][]byte{[]byte("SET"), []byte("k"), []byte("v")}, false, 0, false)); got != "+OK\r\n" {
		t.Fatalf("Do SET: %q", got)
	}
	if code, body := httpGet(t, "http://"+n.HTTPAddr()+"/v1/maps/m/keys/k", ""); code != 200 || body != "v" {
		t.Fatalf("HTTP GET: %d %q", code, body)
	}
	if code, body := httpGet(t, "http://"+n.HTTPAddr()+"/v1/cluster", ""); code != 404 || !strings.Contains(body, "not a cluster member") {
		t.Fatalf("/v1/cluster: %d %s", code, body)
	}
	if code, body := httpGet(t, "http://"+n.HTTPAddr()+"/v1/nodes", ""); code != 200 || !strings.Contains(body, n.RESPAddr()) {
		t.Fatalf("/v1/nodes: %d %s", code, body)
	}
}
