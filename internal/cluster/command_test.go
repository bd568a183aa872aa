package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/store"
)

// miniExec is a tiny front end for tests: SET k v, GET k and DBSIZE on a
// node's store, run through Node.Local / Scatter as the RESP server does.
type miniExec struct {
	n       *Node
	calls   int
	scatter int
}

func (e *miniExec) run(c *Command) []byte {
	m, err := e.n.st.OpenMap(c.Map)
	if err != nil {
		return []byte("-ERR " + err.Error())
	}
	switch strings.ToUpper(string(c.Args[0])) {
	case "SET":
		if _, err := m.Set(c.Args[1], c.Args[2], store.SetOptions{}); err != nil {
			return []byte("-ERR " + err.Error())
		}
		return []byte("+OK")
	case "GET":
		v, ok := m.Get(nil, c.Args[1])
		if !ok {
			return []byte("$-1")
		}
		return append([]byte("$"), v...)
	}
	return []byte("-ERR unknown")
}

func (e *miniExec) Exec(ctx context.Context, p int, c *Command) ([]byte, error) {
	e.calls++
	var out []byte
	err := e.n.Local(ctx, p, c, func() { out = e.run(c) })
	return out, err
}

func (e *miniExec) ExecScatter(ctx context.Context, parts []int, c *Command) ([]byte, error) {
	e.scatter++
	var n int64
	for _, p := range parts {
		n += e.n.st.PartitionLen(p)
	}
	return []byte(strconv.FormatInt(n, 10)), nil
}

// runCmd runs a command through node via Run, the way the RESP server does.
func runCmd(t *testing.T, node *Node, ex *miniExec, c *Command, key string) (string, error) {
	t.Helper()
	p := node.Table().PartitionOf([]byte(key))
	var local []byte
	reply, err := node.Run(context.Background(), p, c, func() { local = ex.run(c) })
	if err != nil {
		return "", err
	}
	if reply == nil {
		reply = local
	}
	return string(reply), nil
}

func TestCommandForwarding(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{})
	execs := map[ring.NodeID]*miniExec{}
	for id, n := range c.nodes {
		execs[id] = &miniExec{n: n}
		n.SetExecutor(execs[id])
	}
	key := c.keyFor(c.table, "n1", "n2")
	// Written through n3 (neither primary nor replica): forwarded to n1.
	got, err := runCmd(t, c.nodes["n3"], execs["n3"], &Command{Map: testMap, Args: args("SET", string(key), "v1"), Write: true}, string(key))
	if err != nil || got != "+OK" {
		t.Fatalf("SET through n3: %q, %v", got, err)
	}
	if execs["n1"].calls != 1 {
		t.Fatalf("primary ran %d forwarded commands, want 1", execs["n1"].calls)
	}
	// AckAll: the replica has the value when SET returns.
	if v, ok := c.stores["n2"].Map(testMap).Get(nil, key); !ok || string(v) != "v1" {
		t.Fatalf("replica n2 after ack=all SET: %q %v", v, ok)
	}
	for _, id := range c.ids {
		got, err := runCmd(t, c.nodes[id], execs[id], &Command{Map: testMap, Args: args("GET", string(key))}, string(key))
		if err != nil || got != "$v1" {
			t.Fatalf("GET through %s: %q, %v", id, got, err)
		}
	}
	// An eventual read on the replica is served from its own copy.
	before := execs["n1"].calls
	got, err = runCmd(t, c.nodes["n2"], execs["n2"], &Command{Map: testMap, Args: args("GET", string(key)), Eventual: true}, string(key))
	if err != nil || got != "$v1" || execs["n1"].calls != before {
		t.Fatalf("eventual GET on replica: %q, %v, primary calls %d -> %d", got, err, before, execs["n1"].calls)
	}
}

func TestCommandScatterCoversEveryPartitionOnce(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{})
	execs := map[ring.NodeID]*miniExec{}
	for id, n := range c.nodes {
		execs[id] = &miniExec{n: n}
		n.SetExecutor(execs[id])
	}
	for i := range 500 {
		k := fmt.Sprintf("k%d", i)
		if _, err := runCmd(t, c.nodes["n1"], execs["n1"], &Command{Map: testMap, Args: args("SET", k, "v"), Write: true}, k); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.ids {
		n := c.nodes[id]
		replies, err := n.Scatter(context.Background(), &Command{Map: testMap, Args: args("DBSIZE")}, func(parts []int) ([]byte, error) {
			return execs[id].ExecScatter(context.Background(), parts, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, r := range replies {
			v, _ := strconv.Atoi(string(r))
			total += v
		}
		if total != 500 || len(replies) != 3 {
			t.Fatalf("scatter DBSIZE from %s: %d over %d replies, want 500 over 3", id, total, len(replies))
		}
	}
}

func TestCommandFencedByEpoch(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{RequestTimeout: 300 * time.Millisecond})
	for _, n := range c.nodes {
		n.SetExecutor(&miniExec{n: n})
	}
	key := c.keyFor(c.table, "n1", "n2")
	// n3 learns of a newer table that n1 has not seen: n1 must refuse.
	newer := *c.table
	newer.Epoch++
	c.setTable(&newer, "n3")
	ex := &miniExec{n: c.nodes["n3"]}
	_, err := runCmd(t, c.nodes["n3"], ex, &Command{Map: testMap, Args: args("SET", string(key), "x"), Write: true}, string(key))
	if !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("SET with a newer epoch than the owner's: %v, want ErrWrongEpoch", err)
	}
	if _, ok := c.stores["n1"].Map(testMap).Get(nil, key); ok {
		t.Fatal("a fenced command changed the owner's data")
	}
	// Once the owners catch up, the same command succeeds.
	c.setTable(&newer, "n1", "n2")
	if got, err := runCmd(t, c.nodes["n3"], ex, &Command{Map: testMap, Args: args("SET", string(key), "x"), Write: true}, string(key)); err != nil || got != "+OK" {
		t.Fatalf("after catching up: %q %v", got, err)
	}
}

func TestCommandLeaseRefusesConsistentOps(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{RequestTimeout: 200 * time.Millisecond})
	n := c.nodes["n1"]
	n.lease = func() error { return errors.New("no contact for 3s") }
	key := c.keyFor(c.table, "n1", "n2")
	ex := &miniExec{n: n}
	if _, err := runCmd(t, n, ex, &Command{Map: testMap, Args: args("SET", string(key), "x"), Write: true}, string(key)); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write without lease: %v", err)
	}
	// Forwarded to the lease-less primary from another node: same answer.
	for _, m := range c.nodes {
		m.SetExecutor(&miniExec{n: m})
	}
	if _, err := runCmd(t, c.nodes["n3"], &miniExec{n: c.nodes["n3"]}, &Command{Map: testMap, Args: args("GET", string(key))}, string(key)); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("consistent read forwarded to a lease-less primary: %v", err)
	}
	// Eventual reads still work there.
	if _, err := runCmd(t, n, ex, &Command{Map: testMap, Args: args("GET", string(key)), Eventual: true}, string(key)); err != nil {
		t.Fatalf("eventual read without lease: %v", err)
	}
}

func args(a ...string) [][]byte {
	out := make([][]byte, len(a))
	for i, s := range a {
		out[i] = []byte(s)
	}
	return out
}

// The near cache: eventual GETs of a key another node leads are served
// locally after the first, a change at the owner invalidates them (well
// before the entry's age limit), and consistent reads never use it.
func TestNearCache(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{NearCacheEntries: 100, NearCacheTTL: time.Minute})
	execs := map[ring.NodeID]*miniExec{}
	for id, n := range c.nodes {
		execs[id] = &miniExec{n: n}
		n.SetExecutor(execs[id])
	}
	key := string(c.keyFor(c.table, "n1", "n2")) // n3 holds no copy
	n3 := c.nodes["n3"]
	set := func(v string) {
		t.Helper()
		if _, err := runCmd(t, c.nodes["n1"], execs["n1"], &Command{Map: testMap, Args: args("SET", key, v), Write: true}, key); err != nil {
			t.Fatal(err)
		}
	}
	get := func(eventual bool) string {
		t.Helper()
		cmd := &Command{Map: testMap, Args: args("GET", key), Eventual: eventual}
		if eventual {
			cmd.NearKey = []byte(key)
		}
		got, err := runCmd(t, n3, execs["n3"], cmd, key)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	set("v1")
	if got := get(true); got != "$v1" {
		t.Fatalf("first eventual GET: %q", got)
	}
	before := execs["n1"].calls
	for range 5 {
		if got := get(true); got != "$v1" {
			t.Fatalf("near-cached GET: %q", got)
		}
	}
	if execs["n1"].calls != before {
		t.Fatalf("the owner served %d GETs that the near cache should have", execs["n1"].calls-before)
	}
	if st := n3.NearCache(); st.Hits < 5 || st.Entries != 1 {
		t.Fatalf("near cache stats %+v", st)
	}
	if got := get(false); got != "$v1" || execs["n1"].calls != before+1 {
		t.Fatalf("consistent GET: %q, owner calls %d -> %d (must reach the owner)", got, before, execs["n1"].calls)
	}
	set("v2")
	deadline := time.Now().Add(10 * time.Second)
	for get(true) != "$v2" {
		if time.Now().After(deadline) {
			t.Fatalf("near cache still serves the old value; stats %+v, owner %+v", n3.NearCache(), c.nodes["n1"].NearCache())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := n3.NearCache(); st.Invalidations == 0 {
		t.Fatalf("no invalidation reached the near cache: %+v", st)
	}
}

// A reply read before an invalidation is not stored after it.
func TestNearCacheInvalidationRace(t *testing.T) {
	nc := newNearCache(10, time.Minute)
	k := nearKey{m: "m", k: "k"}
	tok := nc.begin(k)
	nc.invalidate("m", "k") // the key changed while the read was in flight
	nc.store(k, tok, []byte("$old"))
	if _, ok := nc.get(k); ok {
		t.Fatal("a reply older than an invalidation was cached")
	}
	tok = nc.begin(k)
	nc.store(k, tok, []byte("$new"))
	if v, ok := nc.get(k); !ok || string(v) != "$new" {
		t.Fatalf("got %q %v", v, ok)
	}
	// Bounded: storing more keys than the limit keeps at most the limit.
	for i := range 50 {
		kk := nearKey{m: "m", k: fmt.Sprint(i)}
		nc.store(kk, nc.begin(kk), []byte("$x"))
	}
	if nc.len() > 10 {
		t.Fatalf("%d entries, limit 10", nc.len())
	}
}

// A planned move: the new primary holds the partition until the old one,
// which has not seen the new table yet, confirms it stopped; the old one
// then never answers a consistent read from its copy (no stale read).
func TestPlannedMoveHandoff(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{RequestTimeout: 300 * time.Millisecond})
	execs := map[ring.NodeID]*miniExec{}
	for id, n := range c.nodes {
		execs[id] = &miniExec{n: n}
		n.SetExecutor(execs[id])
	}
	key := string(c.keyFor(c.table, "n1", "n2"))
	p := c.table.PartitionOf([]byte(key))
	run := func(via ring.NodeID, a ...string) (string, error) {
		cmd := &Command{Map: testMap, Args: args(a...), Write: a[0] == "SET"}
		return runCmd(t, c.nodes[via], execs[via], cmd, key)
	}
	if _, err := run("n3", "SET", key, "v1"); err != nil {
		t.Fatal(err)
	}
	// The next table swaps the partition's primary and replica. n2 and n3
	// install it; n1 lags behind.
	next := &ring.Table{Epoch: c.table.Epoch + 1, Copies: c.table.Copies, Owners: make([][]ring.NodeID, len(c.table.Owners))}
	for i, own := range c.table.Owners {
		next.Owners[i] = slices.Clone(own)
	}
	next.Owners[p] = []ring.NodeID{"n2", "n1"}
	c.setTable(next, "n2", "n3")
	// n2 asked n1 to step down; n1 did, though its table is old.
	waitUntil(t, "n1 to step down", func() bool {
		return !c.nodes["n1"].parts[p].primary.Load() && c.nodes["n2"].parts[p].handoff.Load() == 0
	})
	// The new primary serves consistent reads now.
	if got, err := run("n2", "GET", key); err != nil || got != "$v1" {
		t.Fatalf("GET on the new primary after the handoff: %q %v", got, err)
	}
	// n1 still has the old table: it must not answer a consistent read as
	// primary any more (a write on n2 could make its copy stale at once).
	if got, err := run("n1", "GET", key); err == nil {
		t.Fatalf("the old primary answered a consistent read with its old table: %q", got)
	}
	// Once n1 installs the table (as the replica), writes complete and
	// reads through n1 reach n2.
	c.setTable(next, "n1")
	if got, err := run("n2", "SET", key, "v2"); err != nil || got != "+OK" {
		t.Fatalf("SET on the new primary: %q %v", got, err)
	}
	if got, err := run("n1", "GET", key); err != nil || got != "$v2" {
		t.Fatalf("GET through n1 after it caught up: %q %v", got, err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
