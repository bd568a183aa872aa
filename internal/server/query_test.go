package server

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/query"
	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/store"
	"github.com/engramdb/engram/internal/transport/memnet"
)

// startQueryServer starts a server whose store feeds an index manager.
func startQueryServer(t *testing.T) (*testServer, *query.Manager) {
	t.Helper()
	qm := query.New(query.Options{Partitions: 31, AutoThreshold: 2})
	ts := startServer(t, func(c *serverConfig) {
		c.storeOpts.Observer = qm
		c.opts.Queries = qm
	})
	if err := qm.Attach(ts.st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(qm.Close)
	return ts, qm
}

// pairKeys returns the sorted keys of a map reply (flat key, value list).
func pairKeys(t *testing.T, v resp.Value) []string {
	t.Helper()
	if v.Kind == '-' {
		t.Fatalf("error reply: %s", v.Str)
	}
	var keys []string
	for i := 0; i+1 < len(v.Elems); i += 2 {
		keys = append(keys, string(v.Elems[i].Str))
	}
	slices.Sort(keys)
	return keys
}

func waitIndexesReady(t *testing.T, qm *query.Manager, mapName string) {
	waitFor(t, "indexes ready", func() bool {
		for _, in := range qm.List(mapName, false) {
			if in.State != query.StateReady {
				return false
			}
		}
		return true
	})
}

func TestValuesMatchCommands(t *testing.T) {
	ts, qm := startQueryServer(t)
	c := ts.dial(t)
	c.must("+OK", "SELECT", "bed")
	for i := range 40 {
		c.must("+OK", "SET", fmt.Sprint("k", i), fmt.Sprintf(`{"id":{"type":%d},"n":%d}`, i%4, i))
	}
	c.must("+OK", "SET", "str", `{"id":{"type":"3"}}`)
	c.must("+OK", "SET", "bad", `{"id":{"type":3}`)
	want := []string{"k11", "k15", "k19", "k23", "k27", "k3", "k31", "k35", "k39", "k7"}
	if got := pairKeys(t, c.do("VALUESMATCH", "id.type=3")); !slices.Equal(got, want) {
		t.Fatalf("VALUESMATCH id.type=3 = %v, want %v", got, want)
	}
	c.must(`["str" "{\"id\":{\"type\":\"3\"}}"]`, "VALUESMATCH", `id.type="3"`)
	c.must(`["k5" "{\"id\":{\"type\":1},\"n\":5}"]`, "VALUESMATCH", `id.type=1 && n<9 && n>4`)
	// Bad criteria: a clear error.
	if got := c.doS("VALUESMATCH", "id.type=bob"); !strings.HasPrefix(got, "-ERR invalid criteria") || !strings.Contains(got, "double quotes") {
		t.Fatalf("bad criteria: %s", got)
	}
	c.must("-ERR syntax error", "VALUESMATCH", "a=1", "CURSOR")
	c.must("-ERR invalid cursor", "VALUESMATCH", "a=1", "CURSOR", "x")

	// Paged: every match exactly once across pages.
	var paged []string
	cursor := "0"
	for pages := 0; ; pages++ {
		v := c.do("VALUESMATCH", "id.type=3", "CURSOR", cursor, "COUNT", "2")
		if len(v.Elems) != 2 {
			t.Fatalf("paged reply %s", render(v))
		}
		paged = append(paged, pairKeys(t, v.Elems[1])...)
		cursor = string(v.Elems[0].Str)
		if cursor == "0" {
			break
		}
		if pages > 31 {
			t.Fatal("cursor never returned to 0")
		}
	}
	slices.Sort(paged)
	if !slices.Equal(paged, want) {
		t.Fatalf("paged = %v, want %v", paged, want)
	}

	// The queries above passed the auto-index threshold (2) for id.type.
	waitIndexesReady(t, qm, "bed")
	list := c.do("INDEX", "LIST", "bed")
	if len(list.Elems) != 1 || !strings.Contains(render(list), `"path" "id.type"`) || !strings.Contains(render(list), `"auto" :1`) {
		t.Fatalf("INDEX LIST after automatic indexing: %s", render(list))
	}
	if got := pairKeys(t, c.do("VALUESMATCH", "id.type=3")); !slices.Equal(got, want) {
		t.Fatalf("indexed VALUESMATCH = %v, want %v", got, want)
	}

	// Explicit indexes; limits and bad paths.
	c.must("+OK", "INDEX", "ADD", "bed", "n")
	c.must("+OK", "INDEX", "ADD", "bed", "a")
	c.must("+OK", "INDEX", "ADD", "bed", "b")
	if got := c.doS("INDEX", "ADD", "bed", "c"); !strings.HasPrefix(got, "-NOINDEX no indexes available") {
		t.Fatalf("fifth index: %s", got)
	}
	if got := c.doS("INDEX", "ADD", "bed", "a..b"); !strings.HasPrefix(got, "-ERR invalid criteria") {
		t.Fatalf("bad path: %s", got)
	}
	c.must("+OK", "INDEX", "DEL", "bed", "b")
	c.must(":2", "INDEX", "AUTO")
	c.must("+OK", "INDEX", "AUTO", "OFF")
	c.must(":-1", "INDEX", "AUTO")
	if got := c.doS("INDEX", "FROB"); !strings.HasPrefix(got, "-ERR unknown INDEX form") {
		t.Fatalf("INDEX FROB: %s", got)
	}
	waitIndexesReady(t, qm, "bed")
	all := c.do("INDEX", "LIST")
	if len(all.Elems) != 3 {
		t.Fatalf("INDEX LIST = %s", render(all))
	}

	// Evictions and their sequence forms.
	c.must(":10", "EVICTMATCH", "id.type=3")
	c.must("[]", "VALUESMATCH", "id.type=3")
	c.must(":32", "DBSIZE")
	c.must("+OK", "SETSEQ", "10", "x", `{"id":{"type":2}}`)
	if got := c.doS("EVICTMATCHSEQ", "9", "id.type=2"); !strings.HasPrefix(got, "-OUTOFSEQ") {
		t.Fatalf("EVICTMATCHSEQ below the sequence: %s", got)
	}
	c.must(":11", "EVICTMATCHSEQ", "10", "id.type=2")
	c.must(":10", "SEQUENCE")
	c.must("+OK", "SELECT", "other")
	c.must("+OK", "SET", "o1", `{"id":{"type":1}}`)
	c.must(":11", "EVICTALLMATCH", "id.type=1")
	c.must("+OK", "SETSEQ", "20", "o2", `{"id":{"type":0}}`)
	if got := c.doS("EVICTALLMATCHSEQ", "15", "id.type=0"); !strings.HasPrefix(got, "-OUTOFSEQ") {
		t.Fatalf("EVICTALLMATCHSEQ below a map's sequence: %s", got)
	}
	if got := pairKeys(t, c.do("VALUESMATCH", "id.type=0")); !slices.Equal(got, []string{"o2"}) {
		t.Fatalf("after a refused EVICTALLMATCHSEQ: %v, want [o2]", got) // nothing changed
	}
	c.must(":11", "EVICTALLMATCHSEQ", "20", "id.type=0")
	c.must(":20", "SEQUENCE", "bed")
	c.must("+OK", "SELECT", "bed")
	c.must("[]", "VALUESMATCH", "id.type in [0,1,2,3]")
	// RESP3 replies are maps.
	c.do("HELLO", "3")
	c.must(`%["str" "{\"id\":{\"type\":\"3\"}}"]`, "VALUESMATCH", `id.type="3"`)

}

// queryCommandCases are scripted sessions of the query commands; they run
// on one node and through one node of a three-node cluster, with the same
// replies (TestQueryCommandCases).
func queryCommandCases() []cmdCase {
	return []cmdCase{
		{name: "VALUESMATCH", steps: []step{
			{"SELECT bed", "+OK"},
			{`SET a {"id":{"type":3},"n":1}`, "+OK"},
			{`SET b {"id":{"type":"3"},"n":2}`, "+OK"},
			{`SET c {"id":{"type":3.0},"n":3}`, "+OK"},
			{`SET d {"id":{"type":3}`, "+OK"},
			{`SET e plain`, "+OK"},
			{`VALUESMATCH "id.type=3 && n<2"`, `["a" "{\"id\":{\"type\":3},\"n\":1}"]`},
			{`VALUESMATCH "id.type=\"3\""`, `["b" "{\"id\":{\"type\":\"3\"},\"n\":2}"]`},
			{`VALUESMATCH "id.type=3 && n>2"`, `["c" "{\"id\":{\"type\":3.0},\"n\":3}"]`},
			{`VALUESMATCH "n in [1,3] && id.type=3"`, `sorted:["a" "c" "{\"id\":{\"type\":3.0},\"n\":3}" "{\"id\":{\"type\":3},\"n\":1}"]`},
			{`VALUESMATCH nothing=1`, `[]`},
			{`VALUESMATCH id.type=3 CURSOR 0 COUNT 1000`, `~\["0" \[.*\]\]`},
			{`VALUESMATCH id.type=bob`, `~-ERR invalid criteria at byte 8 of "id.type=bob": invalid value "bob".*double quotes.*`},
			{`VALUESMATCH "id..type=3"`, `~-ERR invalid criteria.*expected a path segment.*`},
			{`VALUESMATCH a=1 COUNT 0`, "-ERR count must be a positive integer"},
			{`VALUESMATCH a=1 FOO 1`, errSyntaxR},
			{`VALUESMATCH`, arity("valuesmatch")},
			{`PVALUESMATCH 99999 a=1`, "-ERR invalid partition"},
		}},
		{name: "EVICTMATCH EVICTALLMATCH and their SEQ forms", steps: []step{
			{"SELECT m1", "+OK"},
			{`MSET a {"t":1} b {"t":2} c {"t":1} d bad`, "+OK"},
			{"SELECT m2", "+OK"},
			{`MSET a {"t":1} b {"t":3}`, "+OK"},
			{`EVICTMATCH t=1`, ":1"},
			{`EVICTMATCH t=1`, ":0"},
			{`EVICTMATCH "t="`, `~-ERR invalid criteria.*expected a value.*`},
			{`EVICTALLMATCH t>=2`, ":2"},
			{"SELECT m1", "+OK"},
			{"DBSIZE", ":3"},
			{`SETSEQ 5 x {"t":1}`, "+OK"},
			{`EVICTMATCHSEQ 4 t=1`, `~-OUTOFSEQ .*`},
			{`EVICTMATCHSEQ 5 t=1`, ":3"},
			{`EVICTMATCHSEQ x t=1`, `~-ERR sequence must be .*`},
			{`SET y {"t":9}`, "+OK"},
			{`EVICTALLMATCHSEQ 4 t=9`, `~-OUTOFSEQ .*`},
			{`EXISTS y`, ":1"},
			{`EVICTALLMATCHSEQ 6 t=9`, ":1"},
			{`SEQUENCE`, ":6"},
			{`DBSIZE`, ":1"},
		}},
		{name: "INDEX", steps: []step{
			{"SELECT bed", "+OK"},
			{`SET a {"id":{"type":3}}`, "+OK"},
			{"INDEX ADD bed id.type", "+OK"},
			{"INDEX ADD bed id.type", "+OK"},
			{"INDEX ADD bed b", "+OK"},
			{"INDEX ADD bed c AUTO", "+OK"},
			{"INDEX ADD bed d", "+OK"},
			{"INDEX ADD bed e", `~-NOINDEX no indexes available: map "bed" has 4 indexes, the limit is 4`},
			{`INDEX ADD bed "a b"`, `~-ERR invalid criteria.*unexpected character 'b' after the path \(escape spaces .*`},
			{"INDEX DEL bed d", "+OK"},
			{"INDEX DEL bed d", "+OK"},
			{`VALUESMATCH id.type=3`, `["a" "{\"id\":{\"type\":3}}"]`},
			{"INDEX LIST nomap", "[]"},
			{"INDEX LIST bed", `~\[\["map" "bed" "path" "id.type" "position" :1 "state" "(building|ready)" "auto" :0 .*\] \[.*"path" "b".*\] \[.*"path" "c" .* "auto" :1 .*\]\]`},
			{"INDEX LIST", `~\[(\[.*\] ){2}\[.*\]\]`},
			{"INDEX AUTO 5", "+OK"},
			{"INDEX AUTO", ":5"},
			{"INDEX AUTO OFF", "+OK"},
			{"INDEX AUTO", ":-1"},
			{"INDEX AUTO 0", "-ERR auto-index threshold must be a positive integer or OFF"},
			{"INDEX ADD bed", "~-ERR unknown INDEX form.*"},
			{"INDEX", arity("index")},
		}},
	}
}

// startQueryCluster is startCluster with an index manager on every node.
func startQueryCluster(t *testing.T) *testCluster {
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
	for _, id := range ids {
		obs := cluster.NewObserver()
		qm := query.New(query.Options{Partitions: partitions, AutoThreshold: -1})
		st, err := store.New(store.Options{Partitions: partitions, Clock: clock.now, Observer: store.Observers(obs, qm)})
		if err != nil {
			t.Fatal(err)
		}
		if err := qm.Attach(st); err != nil {
			t.Fatal(err)
		}
		h := cluster.NewHandler()
		tr := network.Node(addrs[id], h.Handle)
		cn, err := cluster.New(cluster.Config{ID: id, Store: st, Transport: tr, Observer: obs, Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Options{Store: st, Clock: clock.now, Cluster: cn, Queries: qm})
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
			qm.Close()
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

// TestQueryCommandCases runs the scripted query cases on one node and
// through one node of a three-node cluster.
func TestQueryCommandCases(t *testing.T) {
	for _, tc := range queryCommandCases() {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := startQueryServer(t)
			runSteps(t, ts.dial(t), ts.clock.advance, tc.steps)
		})
		t.Run(tc.name+" in a cluster", func(t *testing.T) {
			c := startQueryCluster(t)
			ts := c.servers[0]
			runSteps(t, ts.dial(t), ts.clock.advance, tc.steps)
		})
	}
}

// TestQueriesInCluster: values spread over three nodes are all found,
// once each, with and without an index, paged or not; an index added on
// one node is built on every node; EVICTMATCH removes matches everywhere.
func TestQueriesInCluster(t *testing.T) {
	c := startQueryCluster(t)
	cl := c.servers[1].dial(t)
	cl.must("+OK", "SELECT", "m")
	var want []string
	for i := range 300 {
		k := fmt.Sprint("k", i)
		cl.must("+OK", "SET", k, fmt.Sprintf(`{"g":%d}`, i%3))
		if i%3 == 1 {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	check := func(when string) {
		t.Helper()
		if got := pairKeys(t, cl.do("VALUESMATCH", "g=1")); !slices.Equal(got, want) {
			t.Fatalf("%s: VALUESMATCH found %d keys, want %d", when, len(got), len(want))
		}
		var paged []string
		cursor := "0"
		for {
			v := cl.do("VALUESMATCH", "g=1", "CURSOR", cursor, "COUNT", "7")
			if len(v.Elems) != 2 {
				t.Fatalf("%s: paged reply %s", when, render(v))
			}
			paged = append(paged, pairKeys(t, v.Elems[1])...)
			if cursor = string(v.Elems[0].Str); cursor == "0" {
				break
			}
		}
		slices.Sort(paged)
		if !slices.Equal(paged, want) {
			t.Fatalf("%s: paged VALUESMATCH found %d keys, want %d", when, len(paged), len(want))
		}
	}
	check("unindexed")
	cl.must("+OK", "INDEX", "ADD", "m", "g")
	for i, ts := range c.servers {
		waitFor(t, "index built on every node", func() bool {
			l := ts.srv.opts.Queries.List("m", false)
			return len(l) == 1 && l[0].State == query.StateReady
		})
		if l := ts.srv.opts.Queries.List("m", false); l[0].Keys == 0 {
			t.Fatalf("node %d indexed nothing", i)
		}
	}
	check("indexed")
	cl.must(fmt.Sprint(":", len(want)), "EVICTMATCH", "g=1")
	want = nil
	check("after EVICTMATCH")
	cl.must(":200", "DBSIZE")
	cl.must("+OK", "INDEX", "DEL", "m", "g")
	for _, ts := range c.servers {
		if l := ts.srv.opts.Queries.List("m", false); len(l) != 0 {
			t.Fatalf("index still defined: %+v", l)
		}
	}
}

// TestQueryPartNotLed: a node asked for a part of a query on a partition
// it does not lead (the partition moved away while a scatter or a page
// was on its way) answers errMoved, which the asking node retries.
func TestQueryPartNotLed(t *testing.T) {
	c := startQueryCluster(t)
	cl := c.servers[0].dial(t)
	p := -1
	for i := range 31 {
		if !c.nodes[0].IsPrimary(i) {
			p = i
			break
		}
	}
	if p < 0 {
		t.Fatal("node 0 leads every partition")
	}
	cl.must(fmt.Sprintf("-%s (partition %d)", errMoved, p), "PVALUESMATCH", fmt.Sprint(p), "a=1")
	if !movedReply([]byte(fmt.Sprintf("-%s (partition %d)\r\n", errMoved, p))) {
		t.Fatal("movedReply does not recognise the reply")
	}
}
