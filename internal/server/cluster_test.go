package server

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/persist"
	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/store"
	"github.com/engramdb/engram/internal/transport/memnet"
)

// testCluster is three servers, each with its cluster node, over an
// in-memory network, sharing one fake clock.
type testCluster struct {
	servers []*testServer
	nodes   []*cluster.Node
	network *memnet.Network
	ids     []ring.NodeID
	addrs   map[ring.NodeID]string
}

func startCluster(t *testing.T, password string) *testCluster {
	t.Helper()
	clock := newFakeClock(startMs)
	network := memnet.NewNetwork(1)
	const partitions = 31
	addrs := map[ring.NodeID]string{}
	var ids []ring.NodeID
	for i := range 3 {
		id := ring.NodeID(fmt.Sprintf("n%d", i+1))
		ids = append(ids, id)
		addrs[id] = "mem-" + string(id)
	}
	tc := &testCluster{network: network, ids: ids, addrs: addrs}
	var stores []*store.Store
	// mapConfig stands in for the control plane: a setting reaches every
	// node's store.
	mapConfig := func(name, setting string, v int64) error {
		for _, st := range stores {
			m, err := st.OpenMap(name)
			if err != nil {
				return err
			}
			if setting == "max_ttl" {
				err = m.SetMaxTTL(v)
			} else {
				err = m.SetMaxKeys(v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	// Backing stores: one in-memory store per URL, shared by the nodes (as
	// they share an S3 bucket); settings reach every node (the control
	// plane's part).
	var (
		memMu    sync.Mutex
		mems     = map[string]backing.Store{}
		managers []*persist.Manager
	)
	openShared := func(url string) (backing.Store, error) {
		memMu.Lock()
		defer memMu.Unlock()
		if mems[url] == nil {
			mems[url] = sharedMem{backing.NewMem()}
		}
		return mems[url], nil
	}
	mapStore := func(name, spec string) error {
		set, err := persist.ParseSettings(persist.Settings{}, spec)
		if err != nil {
			return err
		}
		for _, pm := range managers {
			if err := pm.Configure(name, set); err != nil {
				return err
			}
		}
		return nil
	}
	for _, id := range ids {
		obs := cluster.NewObserver()
		pobs := &persistProxy{}
		st, err := store.New(store.Options{Partitions: partitions, Clock: clock.now, Observer: store.Observers(obs, pobs)})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
		h := cluster.NewHandler()
		tr := network.Node(addrs[id], h.Handle)
		cn, err := cluster.New(cluster.Config{ID: id, Store: st, Transport: tr, Observer: obs, Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		pm, err := persist.New(persist.Options{Store: st, Open: openShared, IsPrimary: cn.IsPrimary,
			Guard: func(ctx context.Context, p int, fn func()) error {
				return cn.Local(ctx, p, &cluster.Command{Map: "\x00dirty", Write: true}, fn)
			}})
		if err != nil {
			t.Fatal(err)
		}
		pobs.m = pm
		managers = append(managers, pm)
		srv, err := New(Options{Store: st, Clock: clock.now, Password: password, Cluster: cn, MapConfig: mapConfig,
			Persist: pm, MapStore: mapStore})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		t.Cleanup(func() {
			srv.Close(context.Background())
			<-done
			cn.Close()
			tr.Close()
			st.Close()
		})
		tc.servers = append(tc.servers, &testServer{srv: srv, st: st, clock: clock, addr: ln.Addr().String()})
		tc.nodes = append(tc.nodes, cn)
	}
	tbl, err := ring.Assign(nil, ids, partitions, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tc.nodes {
		if err := n.SetTable(tbl, addrs); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

// sharedMem is an in-memory store several nodes share: closing it (a
// node's manager closing) leaves it open for the others.
type sharedMem struct{ *backing.Mem }

func (sharedMem) Close() error { return nil }

// nodeLocalCases are the scripted cases whose commands are about the node
// a client is connected to (its memory bound, its connections, its
// configuration), not about the cluster's data.
var nodeLocalCases = map[string]string{
	"INFO":                    "node statistics",
	"INFO Engram fields":      "node statistics",
	"CONFIG":                  "node configuration",
	"CONFIG Engram settings":  "node configuration",
	"CLIENT":                  "node connections",
	"MAPINFO":                 "the node's share of the map",
	"max memory and eviction": "each node has its own memory bound",
	"MGET MSET MSETNX":        "MSETNX across partitions is refused with CROSSSLOT, as in Redis Cluster (TestClusterCrossSlot)",
	"SETMAXKEYS":              "in a cluster the key limit bounds what each node holds, copies included",
	"STORESTATUS":             "each node shows the changes it leads",
	"refused sequenced writes leave the sequence": "key limit per node (see SETMAXKEYS); and a write refused " +
		"after the cluster recorded its sequence (MAPFULL, OOM) leaves the sequence advanced (docs/commands.md)",
}

// TestCommandsInCluster replays every scripted command case through one
// node of a three-node cluster: keys live on other nodes, multi-key
// commands are split, whole-keyspace commands scattered, and the replies
// must be exactly those of a single node.
func TestCommandsInCluster(t *testing.T) {
	cases := append(redisCommandCases(), engramCommandCases()...)
	for _, tc := range cases {
		if why, ok := nodeLocalCases[tc.name]; ok {
			t.Logf("skipping %q: %s", tc.name, why)
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, tc.password)
			ts := c.servers[0]
			runSteps(t, ts.dial(t), ts.clock.advance, tc.steps)
		})
	}
}

// Keys are spread over the nodes, and every node answers for all of them.
func TestClusterKeysSpread(t *testing.T) {
	c := startCluster(t, "")
	cl := c.servers[1].dial(t)
	var args []string
	for i := range 200 {
		args = append(args, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	cl.must("+OK", append([]string{"MSET"}, args...)...)
	for i, ts := range c.servers {
		if n := ts.st.Map("0").Len(); n == 0 || n == 200*2 {
			t.Fatalf("node %d holds %d copies: keys are not spread", i, n)
		}
		x := ts.dial(t)
		x.must(":200", "DBSIZE")
		x.must(`"v7"`, "GET", "k7")
		if got := x.do("KEYS", "*"); len(got.Elems) != 200 {
			t.Fatalf("KEYS through node %d: %d keys", i, len(got.Elems))
		}
		seen := map[string]bool{}
		cursor := "0"
		for {
			v := x.do("SCAN", cursor, "COUNT", "7")
			for _, k := range v.Elems[1].Elems {
				if seen[string(k.Str)] {
					t.Fatalf("SCAN returned %s twice", k.Str)
				}
				seen[string(k.Str)] = true
			}
			cursor = string(v.Elems[0].Str)
			if cursor == "0" {
				break
			}
		}
		if len(seen) != 200 {
			t.Fatalf("SCAN through node %d: %d keys", i, len(seen))
		}
	}
	// Total copies: two of each key (primary + replica).
	total := int64(0)
	for _, ts := range c.servers {
		total += ts.st.Map("0").Len()
	}
	if total != 400 {
		t.Fatalf("%d copies in all, want 400", total)
	}
	cl.must(":2", "DEL", "k1", "k2", "nosuch")
	cl.must(":198", "DBSIZE")
}

func TestClusterCrossSlot(t *testing.T) {
	c := startCluster(t, "")
	cl := c.servers[0].dial(t)
	t1 := c.nodes[0].Table()
	// Two keys of different partitions, and two of the same one.
	a, b := "a", ""
	for i := range 1000 {
		if k := fmt.Sprintf("b%d", i); t1.PartitionOf([]byte(k)) != t1.PartitionOf([]byte(a)) {
			b = k
			break
		}
	}
	runSteps(t, cl, nil, []step{
		{"MSETNX " + a + " 1 " + b + " 2", "~-CROSSSLOT .*"},
		{"EXISTS " + a + " " + b, ":0"},
	})
	// A value over the limit refuses the whole split MSET.
	for _, ts := range c.servers {
		ts.dial(t).must("+OK", "CONFIG", "SET", "max-value-len", "3")
	}
	runSteps(t, cl, nil, []step{
		{"MSET " + a + " 1 " + b + " 1234", "~-ERR value too large.*"},
		{"EXISTS " + a + " " + b, ":0"},
	})
}

// Do runs commands for the HTTP and Go APIs through the same routing.
func TestDoRoutesThroughTheCluster(t *testing.T) {
	c := startCluster(t, "")
	ctx := context.Background()
	a := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, x := range s {
			out[i] = []byte(x)
		}
		return out
	}
	for i := range 50 {
		k := fmt.Sprintf("k%d", i)
		if got := string(c.servers[i%3].srv.Do(ctx, "m", a("SET", k, "v"+k), false, cluster.AckAll, false)); got != "+OK\r\n" {
			t.Fatalf("Do SET %s: %q", k, got)
		}
	}
	for i, ts := range c.servers {
		if got := string(ts.srv.Do(ctx, "m", a("GET", "k7"), false, cluster.AckAll, false)); got != "$3\r\nvk7\r\n" {
			t.Fatalf("Do GET through node %d: %q", i, got)
		}
		if got := string(ts.srv.Do(ctx, "m", a("DBSIZE"), true, cluster.AckAll, false)); got != ":50\r\n" {
			t.Fatalf("Do DBSIZE through node %d: %q", i, got)
		}
		if got := string(ts.srv.Do(ctx, "m", a("INFO", "server"), false, cluster.AckAll, false)); !strings.Contains(got, "redis_version") {
			t.Fatalf("Do INFO: %q", got)
		}
	}
	if got := string(c.servers[0].srv.Do(ctx, "m", nil, false, cluster.AckAll, false)); got != "-ERR empty command\r\n" {
		t.Fatalf("Do with no command: %q", got)
	}
}

// A pipeline sent to a node that owns few of its keys gets exactly the
// replies a single node gives, in order, while the commands for each
// remote owner travel in batches.
func TestClusterPipelineMatchesSingleNode(t *testing.T) {
	var script []string
	for i := range 120 {
		k := fmt.Sprintf("k%d", i%40)
		switch i % 6 {
		case 0:
			script = append(script, "SET "+k+" "+fmt.Sprint(i))
		case 1:
			script = append(script, "INCR "+k)
		case 2:
			script = append(script, "GET "+k)
		case 3:
			script = append(script, "APPEND "+k+" x")
		case 4:
			script = append(script, "DEL "+k)
		case 5:
			script = append(script, "EXISTS "+k)
		}
		if i == 50 {
			script = append(script, "MSET a 1 b 2 c 3", "SELECT other", "SET k1 in-other")
		}
		if i == 90 {
			script = append(script, "SELECT 0", "MGET k1 k2 k3 a b c", "DBSIZE")
		}
	}
	var pipe []byte
	for _, line := range script {
		pipe = append(pipe, encode(strings.Fields(line)...)...)
	}
	run := func(ts *testServer) []string {
		cl := ts.dial(t)
		cl.write(pipe)
		out := make([]string, len(script))
		for i := range script {
			out[i] = render(cl.read())
		}
		return out
	}
	want := run(startServer(t))
	c := startCluster(t, "")
	got := run(c.servers[2])
	for i := range script {
		if got[i] != want[i] {
			t.Errorf("%s: cluster %s, single node %s", script[i], got[i], want[i])
		}
	}
	if b := c.nodes[2].Stats().Batches; b == 0 {
		t.Error("no pipeline was forwarded as a batch")
	}
}

// A write forwarded to its primary runs there, then the primary dies
// before answering: the node that forwarded it must not send it again
// (to the same node after a restart, or to a new primary that has the
// replicated effect): an INCR would count twice. The client is told the
// outcome is unknown.
func TestClusterWriteInDoubtIsNotResent(t *testing.T) {
	c := startCluster(t, "")
	ctx := context.Background()
	key := "ctr"
	tbl := c.nodes[0].Table()
	p := tbl.PartitionOf([]byte(key))
	primary := tbl.Owners[p][0]
	var via *testServer
	var viaID ring.NodeID
	for i, id := range c.ids {
		if !slices.Contains(tbl.Owners[p], id) {
			via, viaID = c.servers[i], id
		}
	}
	if via == nil {
		t.Fatal("every node owns the key's partition")
	}
	var once sync.Once
	c.network.SetResponseFilter(func(from, to string, kind uint8, payload []byte) bool {
		if from != c.addrs[primary] || to != c.addrs[viaID] || kind != cluster.KindData {
			return true
		}
		// Only the answer to the INCR (":1"): the primary also answers
		// other nodes' replication as a replica of their partitions.
		if r, err := cluster.DecodeResponse(payload); err != nil || string(r.Value) != ":1\r\n" {
			return true
		}
		killed := false
		once.Do(func() {
			killed = true
			go c.network.Kill(from) // the answer is lost with the node
		})
		return !killed
	})
	reply := string(via.srv.Do(ctx, "0", [][]byte{[]byte("INCR"), []byte(key)}, false, cluster.AckAll, false))
	if !strings.HasPrefix(reply, "-TRYAGAIN") || !strings.Contains(reply, "may have been applied") {
		t.Fatalf("INCR whose primary died after running it: %q, want a TRYAGAIN saying it may have been applied", reply)
	}
	var ran int64
	for i, id := range c.ids {
		if id == primary {
			if v, ok := c.servers[i].st.Map("0").Get(nil, []byte(key)); ok {
				ran, _ = strconv.ParseInt(string(v), 10, 64)
			}
		}
	}
	if ran != 1 {
		t.Fatalf("the primary's counter is %d, want 1 (the INCR ran once)", ran)
	}
}
