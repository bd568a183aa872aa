package engram_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engramdb/engram"
)

// testSecret is the cluster secret of the in-process test clusters.
const testSecret = "engram-test-cluster-secret"

// settleTimeout bounds the wait for a cluster to form: a safety net
// turning a hang into a failure, far above what forming takes (well
// under a second on loopback).
const settleTimeout = 30 * time.Second

// startCluster starts size embedded nodes on loopback, every listener on
// a port the OS picks: the first starts the cluster, the others join it
// through its gossip address. mod may change each node's config. It
// returns once every node sees the same members and partition table.
func startCluster(t *testing.T, size int, mod func(i int, c *engram.Config)) []*engram.Node {
	t.Helper()
	var nodes []*engram.Node
	for i := range size {
		cfg := engram.Config{RESPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0",
			ClusterSecret: testSecret, NodeName: "n" + strconv.Itoa(i)}
		if i > 0 {
			cfg.Join = []string{nodes[0].ClusterAddr()}
		}
		if mod != nil {
			mod(i, &cfg)
		}
		n := open(t, cfg)
		if n.ClusterAddr() == "" {
			t.Fatalf("node %d: ClusterAddr() is empty", i)
		}
		nodes = append(nodes, n)
	}
	waitSettled(t, nodes)
	return nodes
}

// clusterView is the part of GET /v1/cluster the tests read.
type clusterView struct {
	State      string `json:"state"`
	Reason     string `json:"reason"`
	Epoch      uint64 `json:"epoch"`
	MyID       string `json:"my_id"`
	Leader     string `json:"leader"`
	Partitions int    `json:"partitions"`
	Migrations int    `json:"migrations"`
	Members    []struct {
		ID    string `json:"id"`
		Alive bool   `json:"alive"`
		HTTP  string `json:"http"`
		RESP  string `json:"resp"`
	} `json:"members"`
	Owners [][]string `json:"owners"`
}

func viewOf(t *testing.T, n *engram.Node) clusterView {
	t.Helper()
	var v clusterView
	code, body := httpDo(t, "GET", "http://"+n.HTTPAddr()+"/v1/cluster?owners=false", nil)
	if code != 200 {
		t.Fatalf("GET /v1/cluster: %d %s", code, body)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET /v1/cluster: %v: %s", err, body)
	}
	return v
}

// waitSettled waits until every node reports state ok, every member
// alive, and the same partition table epoch. It then waits a little
// longer for cluster_migrations to reach 0 (partition copies filled);
// if they do not, it says so and goes on: requests are served by the
// partitions' current primaries meanwhile.
func waitSettled(t *testing.T, nodes []*engram.Node) {
	t.Helper()
	settled := func() (ok, migrated bool, why string) {
		var epoch uint64
		migrated = true
		for i, n := range nodes {
			v := viewOf(t, n)
			alive := 0
			for _, m := range v.Members {
				if m.Alive {
					alive++
				}
			}
			switch {
			case v.State != "ok":
				return false, false, fmt.Sprintf("node %d: state %s (%s)", i, v.State, v.Reason)
			case alive != len(nodes):
				return false, false, fmt.Sprintf("node %d sees %d members alive", i, alive)
			case i > 0 && v.Epoch != epoch:
				return false, false, fmt.Sprintf("epochs differ: %d and %d", epoch, v.Epoch)
			}
			epoch = v.Epoch
			migrated = migrated && v.Migrations == 0
		}
		return true, migrated, ""
	}
	deadline := time.Now().Add(settleTimeout)
	var why string
	for {
		var ok, migrated bool
		if ok, migrated, why = settled(); ok {
			if migrated {
				return
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not form within %v: %s", settleTimeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Formed; give partition copies a moment to fill.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if ok, migrated, _ := settled(); ok && migrated {
			return
		}
	}
	t.Logf("the cluster formed (state ok, one epoch) but cluster_migrations is not 0: partition copies are not filled; testing with the current primaries")
}

// httpDo sends a request and returns the status and body.
func httpDo(t *testing.T, method, u string, body []byte) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func httpJSON(t *testing.T, method, u string, body []byte, want int) map[string]any {
	t.Helper()
	code, b := httpDo(t, method, u, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, u, code, b, want)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: not JSON: %v: %s", method, u, err, b)
	}
	return v
}

// respCmd sends one command over a fresh RESP connection (selecting
// mapName first) and returns the reply's first line.
func respCmd(t *testing.T, addr, mapName string, args ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	enc := func(args ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		return b.String()
	}
	if _, err := io.WriteString(c, enc("SELECT", mapName)+enc(args...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var line string
	for range 2 {
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	return strings.TrimSpace(line)
}

func base(n *engram.Node) string { return "http://" + n.HTTPAddr() }

func TestClusterHTTPAndGoAPIAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	a, bn, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()

	// /v1/cluster and /v1/nodes list the three members; /healthz is ok.
	v := viewOf(t, bn)
	if len(v.Members) != 3 || v.MyID != bn.ID() || v.Partitions != 271 {
		t.Fatalf("/v1/cluster on B: %+v", v)
	}
	full := httpJSON(t, "GET", base(bn)+"/v1/cluster", nil, 200)
	if owners, _ := full["owners"].([]any); len(owners) != 271 {
		t.Fatalf("/v1/cluster lists %d partitions' owners, want 271", len(owners))
	}
	nodesResp := httpJSON(t, "GET", base(c)+"/v1/nodes", nil, 200)
	if act, _ := nodesResp["active"].([]any); len(act) != 3 || nodesResp["id"] != c.ID() {
		t.Fatalf("/v1/nodes: %v", nodesResp)
	}
	active, configured := a.Nodes()
	if len(active) != 3 || len(configured) != 3 || !slices.Contains(active, c.ID()) {
		t.Fatalf("Nodes() = %v, %v", active, configured)
	}
	if code, body := httpDo(t, "GET", base(a)+"/healthz", nil); code != 200 || string(body) != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	// Written through A's Go API and C's RESP, read through B's HTTP.
	users := a.Map("users")
	const keys = 50
	for i := range keys {
		if err := users.Set(ctx, "go:"+strconv.Itoa(i), []byte("g"+strconv.Itoa(i)), engram.TTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := respCmd(t, c.RESPAddr(), "users", "SET", "resp:"+strconv.Itoa(i), "r"+strconv.Itoa(i)); got != "+OK" {
			t.Fatalf("RESP SET on C: %q", got)
		}
	}
	for i := range keys {
		for _, kv := range [][2]string{{"go:", "g"}, {"resp:", "r"}} {
			k := kv[0] + strconv.Itoa(i)
			code, body := httpDo(t, "GET", base(bn)+"/v1/maps/users/keys/"+url.PathEscape(k), nil)
			if code != 200 || string(body) != kv[1]+strconv.Itoa(i) {
				t.Fatalf("HTTP GET %s on B: %d %q", k, code, body)
			}
		}
	}
	// Every key went to its partition's primary, not to the node written
	// through: the whole map is what the cluster lists, not one store.
	info := httpJSON(t, "GET", base(bn)+"/v1/maps/users", nil, 200)
	if info["records"] != float64(2*keys) || info["exists"] != true {
		t.Fatalf("map info on B: %v", info)
	}
	if n, err := c.Map("users").Len(ctx); err != nil || n != 2*keys {
		t.Fatalf("Len through C = %d, %v; want %d", n, err, 2*keys)
	}
	if ttl := httpJSON(t, "GET", base(c)+"/v1/maps/users/ttl/go:7", nil, 200); ttl["ttl"].(float64) <= 0 {
		t.Fatalf("ttl on C: %v", ttl)
	}

	// Written through B's HTTP, read through the Go API of A and C.
	for i := range keys {
		httpJSON(t, "PUT", base(bn)+"/v1/maps/orders/keys/"+strconv.Itoa(i)+"?ack=primary", []byte("o"+strconv.Itoa(i)), 200)
	}
	for _, n := range []*engram.Node{a, c} {
		for i := range keys {
			wantValue(t, ctx, n.Map("orders"), strconv.Itoa(i), "o"+strconv.Itoa(i))
		}
	}
	// Eventual reads are accepted (a replica on the node may answer).
	code, body := httpDo(t, "GET", base(c)+"/v1/maps/orders/keys/3?consistent=false", nil)
	if code != 200 || string(body) != "o3" {
		t.Fatalf("eventual read: %d %q", code, body)
	}

	// Batches across partitions, on each node.
	items := make([]map[string]string, 200)
	keyList := make([]string, 0, 201)
	for i := range items {
		k := "b" + strconv.Itoa(i)
		items[i] = map[string]string{"key": k, "value": "v" + k}
		keyList = append(keyList, k)
	}
	put, _ := json.Marshal(map[string]any{"items": items})
	if r := httpJSON(t, "POST", base(a)+"/v1/maps/batch/put_all?ttl=600", put, 200); r["written"] != float64(200) {
		t.Fatalf("put_all on A: %v", r)
	}
	get, _ := json.Marshal(map[string]any{"keys": append(keyList, "missing")})
	r := httpJSON(t, "POST", base(bn)+"/v1/maps/batch/get_all", get, 200)
	found, _ := r["found"].([]any)
	misses, _ := r["misses"].([]any)
	if len(found) != 200 || len(misses) != 1 || misses[0] != "missing" {
		t.Fatalf("get_all on B: %d found, misses %v", len(found), misses)
	}
	for i, f := range found { // in the order asked
		if it := f.(map[string]any); it["key"] != keyList[i] || it["value"] != "v"+keyList[i] {
			t.Fatalf("get_all item %d: %v", i, it)
		}
	}
	rm, _ := json.Marshal(map[string]any{"keys": keyList[:100]})
	if r := httpJSON(t, "POST", base(c)+"/v1/maps/batch/remove_items", rm, 200); len(r["removed"].([]any)) != 100 {
		t.Fatalf("remove_items on C removed %d", len(r["removed"].([]any)))
	}
	// Paged listing through B returns every remaining key once.
	seen := map[string]int{}
	cursor := "0"
	for pages := 0; ; pages++ {
		if pages > 300 {
			t.Fatal("listing does not end")
		}
		r := httpJSON(t, "GET", base(bn)+"/v1/maps/batch/items?count=30&cursor="+cursor, nil, 200)
		for _, it := range r["items"].([]any) {
			kv := it.(map[string]any)
			if kv["value"] != "v"+kv["key"].(string) {
				t.Fatalf("item %v", kv)
			}
			seen[kv["key"].(string)]++
		}
		if cursor = strconv.FormatFloat(r["cursor"].(float64), 'f', -1, 64); cursor == "0" {
			break
		}
	}
	if len(seen) != 100 {
		t.Fatalf("listing saw %d keys, want 100", len(seen))
	}
	for k, n := range seen {
		if n != 1 || !slices.Contains(keyList[100:], k) {
			t.Fatalf("listing saw %q %d times", k, n)
		}
	}

	// Sequences are the cluster's, whichever node is asked.
	httpJSON(t, "PUT", base(a)+"/v1/maps/seqd/keys/k?seq=5", []byte("v"), 200)
	code, body = httpDo(t, "PUT", base(c)+"/v1/maps/seqd/keys/k?seq=4", []byte("old"))
	if code != 409 || !strings.Contains(string(body), "out_of_sequence") {
		t.Fatalf("stale seq on C: %d %s", code, body)
	}
	if s := httpJSON(t, "GET", base(bn)+"/v1/maps/seqd/sequence", nil, 200); s["sequence"] != float64(5) {
		t.Fatalf("sequence on B: %v", s)
	}
	if seq, ok, err := c.Map("seqd").Sequence(ctx); err != nil || !ok || seq != 5 {
		t.Fatalf("Sequence on C = %d %v %v", seq, ok, err)
	}

	// Maps and flush act on the whole cluster.
	maps := httpJSON(t, "GET", base(c)+"/v1/maps", nil, 200)
	for _, m := range []string{"batch", "orders", "seqd", "users"} {
		if !slices.Contains(maps["maps"].([]any), any(m)) {
			t.Fatalf("/v1/maps on C lacks %q: %v", m, maps)
		}
	}
	if got := a.Maps(); !slices.Contains(got, "orders") || !slices.Contains(got, "users") {
		t.Fatalf("Maps() on A = %v", got)
	}
	httpJSON(t, "POST", base(bn)+"/v1/flush", nil, 200)
	for _, n := range nodes {
		if l, err := n.Map("users").Len(ctx); err != nil || l != 0 {
			t.Fatalf("Len after flush = %d, %v", l, err)
		}
	}

	// Internal maps are out of reach.
	code, body = httpDo(t, "GET", base(a)+"/v1/maps/%00seq/keys/seqd", nil)
	if code != 400 {
		t.Fatalf("internal map over HTTP: %d %s", code, body)
	}
	if _, err := a.Map("\x00seq").Get(ctx, "seqd"); err == nil || errors.Is(err, engram.ErrNotFound) {
		t.Fatalf("internal map through the Go API: %v", err)
	}
}

// TestClusterMap runs the embedded Map's behaviour table against maps of
// a three-node cluster, each case through another node, so most keys
// live on nodes other than the one called.
func TestClusterMap(t *testing.T) {
	nodes := startCluster(t, 3, func(_ int, c *engram.Config) { c.MaxKeyLen = 1024 })
	ctx := context.Background()
	for i, tc := range mapCases() {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.name {
			case "SetMaxKeys":
				t.Skip("a map's key bound is per node in a cluster (docs/cluster.md)")
			}
			tc.run(t, ctx, nodes[i%len(nodes)].Map("case"+strconv.Itoa(i)))
		})
	}
}

// TestClusterAckAndEventualReads checks the per-call options: a write at
// each level is readable afterwards through every node.
func TestClusterAckAndEventualReads(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	ctx := context.Background()
	m := nodes[1].Map("acks")
	for _, level := range []engram.Ack{engram.AckAll, engram.AckPrimary, engram.AckNone} {
		k := "k-" + level.String()
		if err := m.WithAck(level).Set(ctx, k, []byte(level.String())); err != nil {
			t.Fatalf("Set at %v: %v", level, err)
		}
		wantValue(t, ctx, nodes[0].Map("acks"), k, level.String())
	}
	if err := m.UnsafeSet(ctx, "unsafe", []byte("u")); err != nil {
		t.Fatal(err)
	}
	wantValue(t, ctx, nodes[2].Map("acks"), "unsafe", "u")
	// With AckAll every copy has the write when it returns, so an
	// eventual read through any node finds it.
	if err := m.Set(ctx, "all", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		wantValue(t, ctx, n.Map("acks").WithEventualReads(), "all", "x")
	}
	if err := m.WithAck(engram.Ack(9)).Set(ctx, "k", nil); err == nil {
		t.Fatal("an unknown Ack was accepted")
	}
}

// TestClusterNodeEvents checks OnNodeEvent: joins, a graceful leave and a
// failure.
func TestClusterNodeEvents(t *testing.T) {
	var mu sync.Mutex
	var events []engram.NodeEvent
	changed := make(chan struct{}, 100)
	nodes := startCluster(t, 3, nil)
	a := nodes[0]
	cancel := a.OnNodeEvent(func(e engram.NodeEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		changed <- struct{}{}
	})
	defer cancel()
	waitEvent := func(what string, match func(engram.NodeEvent) bool) engram.NodeEvent {
		t.Helper()
		deadline := time.After(settleTimeout)
		for {
			mu.Lock()
			for _, e := range events {
				if match(e) {
					mu.Unlock()
					return e
				}
			}
			mu.Unlock()
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("no event: %s; got %+v", what, events)
			}
		}
	}

	// A fourth node joins.
	d := open(t, engram.Config{ClusterAddr: "127.0.0.1:0", ClusterSecret: testSecret, NodeName: "n3",
		Join: []string{a.ClusterAddr()}})
	e := waitEvent("n3 up", func(e engram.NodeEvent) bool { return e.Up && e.Node == d.ID() })
	if e.Left || !slices.Contains(e.Active, d.ID()) {
		t.Fatalf("join event: %+v", e)
	}

	// B leaves gracefully (Close): Left, and no longer configured.
	b := nodes[1]
	bID := b.ID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	e = waitEvent("B left", func(e engram.NodeEvent) bool { return !e.Up && e.Node == bID })
	if !e.Left || slices.Contains(e.Active, bID) || slices.Contains(e.Configured, bID) {
		t.Fatalf("graceful leave event: %+v", e)
	}

	// C fails (stops without leaving): down, not Left, still configured.
	c := nodes[2]
	cID := c.ID()
	if err := engram.Kill(c); err != nil {
		t.Fatal(err)
	}
	e = waitEvent("C failed", func(e engram.NodeEvent) bool { return !e.Up && e.Node == cID })
	if e.Left || slices.Contains(e.Active, cID) || !slices.Contains(e.Configured, cID) {
		t.Fatalf("failure event: %+v", e)
	}

	// After cancel, no more calls.
	cancel()
	mu.Lock()
	before := len(events)
	mu.Unlock()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(events) != before {
		t.Fatalf("events after cancel: %+v", events[before:])
	}
}

func TestStandaloneHasNoCluster(t *testing.T) {
	n := open(t, engram.Config{HTTPAddr: "127.0.0.1:0"})
	if n.ClusterAddr() != "" {
		t.Fatalf("ClusterAddr() = %q on a standalone node", n.ClusterAddr())
	}
	active, configured := n.Nodes()
	if len(active) != 1 || len(configured) != 1 || active[0] != n.ID() || n.ID() != "local" {
		t.Fatalf("Nodes() = %v, %v; ID() = %q", active, configured, n.ID())
	}
	cancel := n.OnNodeEvent(func(engram.NodeEvent) { t.Error("node event on a standalone node") })
	cancel()
	code, body := httpDo(t, "GET", base(n)+"/v1/cluster", nil)
	if code != 404 || !strings.Contains(string(body), "not a cluster member") {
		t.Fatalf("/v1/cluster standalone: %d %s", code, body)
	}
}
