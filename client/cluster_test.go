package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/engramdb/engram"
)

// TestBehaviourCluster runs the behaviour table against a three-node
// cluster of embedded nodes: through the Go API of one node and over
// RESP2 and RESP3 to another, so most keys live on a node other than the
// one called and every call is routed; and with RouteToOwners, so every
// single-key call goes straight to its owner.
func TestBehaviourCluster(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := context.Background()
	c2, c3 := dial(t, nodes[2], 2), dial(t, nodes[2], 3)
	r2, r3 := dialRouted(t, nodes[2], 2), dialRouted(t, nodes[2], 3)
	backends := map[string]func(name string) api{
		"embedded":     func(name string) api { return nodes[1].Map(name) },
		"resp2":        func(name string) api { return c2.Map(name) },
		"resp3":        func(name string) api { return c3.Map(name) },
		"resp2-routed": func(name string) api { return r2.Map(name) },
		"resp3-routed": func(name string) api { return r3.Map(name) },
	}
	for backend, mapNamed := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			for i, tc := range behaviours() {
				t.Run(tc.name, func(t *testing.T) {
					switch {
					case tc.name == "max keys":
						t.Skip("a map's key bound is per node in a cluster (docs/cluster.md)")
					case tc.name == "max ttl" && backend != "embedded":
						t.Skip("over RESP, SETMAXTTL reaches the nodes that lead partitions and MAXTTL reads the node connected to, which may lead none")
					}
					tc.run(t, ctx, mapNamed("cluster-"+backend+"-"+strconv.Itoa(i)))
				})
			}
		})
	}
}

// waitFormed waits until every node's HTTP API reports the cluster's
// state ok, all members alive, no partition copy being filled and one
// partition table epoch.
func waitFormed(t *testing.T, nodes []*engram.Node) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		formed := true
		var epoch uint64
		for i, n := range nodes {
			var v struct {
				State      string `json:"state"`
				Epoch      uint64 `json:"epoch"`
				Migrations int    `json:"migrations"`
				Members    []struct {
					Alive bool `json:"alive"`
				} `json:"members"`
			}
			resp, err := http.Get("http://" + n.HTTPAddr() + "/v1/cluster?owners=false")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("/v1/cluster: %v: %s", err, b)
			}
			alive := 0
			for _, m := range v.Members {
				if m.Alive {
					alive++
				}
			}
			if v.State != "ok" || alive != len(nodes) || v.Migrations != 0 || (i > 0 && v.Epoch != epoch) {
				formed = false
			}
			epoch = v.Epoch
		}
		if formed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not form within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
