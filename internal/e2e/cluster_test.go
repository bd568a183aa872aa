package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterFormationRouting: three nodes form a cluster; keys written
// through one node read back through the others (go-redis and redis-cli),
// and the whole-keyspace commands (DBSIZE, KEYS, SCAN) and MGET see every
// key through any node.
func TestClusterFormationRouting(t *testing.T) {
	cli := tool(t, "redis-cli")
	c := startCluster(t, 3, "--partitions", "31")
	nodes := c.live()
	a := nodes[0]
	ctx := context.Background()
	const nkeys = 1000
	want := map[string]string{}
	for i := range nkeys {
		want[fmt.Sprintf("key:%d", i)] = fmt.Sprintf("value:%d", i)
	}
	setAll(t, a.rdb, want)
	keys := slices.Sorted(maps.Keys(want))

	for _, n := range nodes {
		got, err := getAll(n.rdb, keys)
		if err != nil {
			t.Fatalf("through %s: %v", n.name, err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("through %s: %d of %d keys read back, %d differ", n.name, len(got), nkeys, countDiff(got, want))
		}
		// redis-cli, one GET per key on one connection.
		var in strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&in, "get %s\n", k)
		}
		out := lines(run(t, strings.NewReader(in.String()), cli, "-h", n.host, "-p", n.port))
		bad := 0
		for i, k := range keys {
			if i >= len(out) || out[i] != want[k] {
				bad++
			}
		}
		if len(out) != nkeys || bad > 0 {
			t.Errorf("redis-cli get through %s: %d lines, %d wrong of %d", n.name, len(out), bad, nkeys)
		}
		if got := run(t, nil, cli, "-h", n.host, "-p", n.port, "dbsize"); got != fmt.Sprintf("%d\n", nkeys) {
			t.Errorf("redis-cli dbsize through %s: %q, want %d", n.name, got, nkeys)
		}
		if got, err := n.rdb.DBSize(ctx).Result(); err != nil || got != nkeys {
			t.Errorf("DBSIZE through %s = %d, %v; want %d", n.name, got, err, nkeys)
		}
		if ks, err := n.rdb.Keys(ctx, "*").Result(); err != nil || !slices.Equal(sorted(ks), keys) {
			t.Errorf("KEYS * through %s: %d keys (%d distinct), %v; want the %d keys", n.name, len(ks), len(distinct(ks)), err, nkeys)
		}
		// SCAN until the cursor is 0: every key exactly once.
		var scanned []string
		var cursor uint64
		for calls := 0; ; calls++ {
			ks, next, err := n.rdb.Scan(ctx, cursor, "*", 100).Result()
			if err != nil || calls > 10000 {
				t.Fatalf("SCAN %d through %s: %v (call %d)", cursor, n.name, err, calls)
			}
			scanned = append(scanned, ks...)
			if cursor = next; cursor == 0 {
				break
			}
		}
		if !slices.Equal(sorted(scanned), keys) {
			t.Errorf("SCAN through %s: %d keys (%d distinct), want the %d keys once each", n.name, len(scanned), len(distinct(scanned)), nkeys)
		}
		if got := sorted(lines(run(t, nil, cli, "-h", n.host, "-p", n.port, "--scan", "--pattern", "key:*"))); !slices.Equal(got, keys) {
			t.Errorf("redis-cli --scan through %s: %d keys (%d distinct)", n.name, len(got), len(distinct(got)))
		}
		// MGET across partitions (and primaries), with a missing key.
		mkeys := append(slices.Clone(keys[:50]), "no-such-key")
		vals, err := n.rdb.MGet(ctx, mkeys...).Result()
		if err != nil || len(vals) != len(mkeys) {
			t.Fatalf("MGET through %s: %d values, %v", n.name, len(vals), err)
		}
		for i, k := range mkeys {
			if w, ok := want[k]; ok && vals[i] != w || !ok && vals[i] != nil {
				t.Errorf("MGET through %s: %s = %v, want %q", n.name, k, vals[i], w)
			}
		}
	}
	// The MGET keys really span partitions and primaries.
	parts, prims := map[int64]bool{}, map[string]bool{}
	for _, k := range keys[:50] {
		p, err := a.rdb.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		parts[p] = true
		own, err := a.owners(k)
		if err != nil || len(own) != 2 {
			t.Fatalf("CLUSTER OWNERS %s = %q, %v; want 2 owners (primary, replica)", k, own, err)
		}
		prims[own[0]] = true
	}
	if len(parts) < 2 || len(prims) < 2 {
		t.Errorf("the MGET keys span %d partitions and %d primaries; the test needs several", len(parts), len(prims))
	}
	// CLUSTER NODES: three alive data nodes sharing the partitions.
	for _, n := range nodes {
		ls, raw, err := n.nodes()
		if err != nil {
			t.Fatalf("CLUSTER NODES through %s: %v", n.name, err)
		}
		prim, repl, alive := 0, 0, 0
		for _, l := range ls {
			if l.role == "data" && l.alive {
				alive++
			}
			prim += l.primaries
			repl += l.replicas
			if l.myself != (l.id == n.id) {
				t.Errorf("CLUSTER NODES through %s marks %s myself=%v", n.name, l.id, l.myself)
			}
		}
		if len(ls) != 3 || alive != 3 || prim != 31 || repl != 31 {
			t.Errorf("CLUSTER NODES through %s: %d members, %d alive data nodes, primaries sum to %d, replicas to %d; want 3, 3, 31, 31:\n%s",
				n.name, len(ls), alive, prim, repl, raw)
		}
	}
}

func countDiff(got, want map[string]string) int {
	n := 0
	for k, v := range want {
		if got[k] != v {
			n++
		}
	}
	return n
}

func distinct(s []string) []string {
	s = sorted(s)
	return slices.Compact(s)
}

// TestClusterDistribution: 10,000 keys over 5 nodes (the default 271
// partitions); the most loaded primary holds less than 10% above the
// mean (issue 3's figure).
func TestClusterDistribution(t *testing.T) {
	c := startCluster(t, 5)
	nodes := c.live()
	ctx := context.Background()
	const nkeys = 10000
	kv := map[string]string{}
	for i := range nkeys {
		kv[fmt.Sprintf("dist:%d", i)] = "x"
	}
	setAll(t, nodes[1].rdb, kv)
	if got, err := nodes[0].rdb.DBSize(ctx).Result(); err != nil || got != nkeys {
		t.Fatalf("DBSIZE = %d, %v; want %d", got, err, nkeys)
	}
	keys := slices.Sorted(maps.Keys(kv))
	perNode := map[string]int{}
	for i := 0; i < nkeys; i += 1000 {
		chunk := keys[i : i+1000]
		cmds, _ := nodes[2].rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range chunk {
				p.Do(ctx, "cluster", "owners", k)
			}
			return nil
		})
		for j, cmd := range cmds {
			own, err := cmd.(*redis.Cmd).StringSlice()
			if err != nil || len(own) != 2 {
				t.Fatalf("CLUSTER OWNERS %s = %q, %v; want 2 owners", chunk[j], own, err)
			}
			perNode[own[0]]++
		}
	}
	mean := float64(nkeys) / float64(len(nodes))
	var counts []string
	maxN, minN := 0, nkeys
	for _, n := range nodes {
		k := perNode[n.id]
		maxN, minN = max(maxN, k), min(minN, k)
		counts = append(counts, fmt.Sprintf("%s=%d", n.name, k))
	}
	t.Logf("keys per primary (10,000 keys, 5 nodes, 271 partitions): %s; min %d, max %d, max/mean %.3f",
		strings.Join(counts, " "), minN, maxN, float64(maxN)/mean)
	if len(perNode) != len(nodes) {
		t.Errorf("primaries are %d members, want the %d nodes: %v", len(perNode), len(nodes), perNode)
	}
	if r := float64(maxN) / mean; r >= 1.10 {
		t.Errorf("max/mean = %.3f, want < 1.10", r)
	}
}

// TestClusterWrongSecret: a node with another secret cannot join: the
// cluster keeps its three data nodes, the node says why and serves no
// keys.
func TestClusterWrongSecret(t *testing.T) {
	c := startCluster(t, 3, "--partitions", "31")
	bad := c.spawn(false, nil, "--cluster-secret", "a-different-secret-0123456789", "--join", strings.Join(c.seeds(), ","))
	// Wait until it has tried (and failed) several times.
	waitFor(t, waitTimeout, "the node with the wrong secret to fail joining 3 times", func() bool {
		return strings.Count(bad.log(), "cannot join the cluster") >= 3
	})
	log := bad.log()
	var why string
	for _, l := range lines(log) {
		if strings.Contains(l, "cannot join the cluster") {
			why = l
			break
		}
	}
	if !strings.Contains(strings.ToLower(why), "secret") && !strings.Contains(why, "decrypt") {
		t.Errorf("the joining node's log does not say the secret is wrong (want \"secret\" or \"decrypt\"):\n%s", why)
	}
	t.Logf("the node with the wrong secret logs: %s", why)
	if ok, why := c.settled(3); !ok {
		t.Errorf("the cluster is not settled with 3 data nodes: %s", why)
	}
	for _, n := range c.live() {
		ls, raw, err := n.nodes()
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) != 3 || slices.ContainsFunc(ls, func(l nodeLine) bool { return l.id == bad.id }) {
			t.Errorf("CLUSTER NODES through %s lists %d members (the outsider is %s):\n%s", n.name, len(ls), bad.id, raw)
		}
	}
	inf, err := bad.info()
	if err != nil {
		t.Fatal(err)
	}
	if inf["cluster_state"] != "fail" || inf["cluster_data_nodes"] != "0" {
		t.Errorf("the outsider's CLUSTER INFO: state %s, data nodes %s; want fail, 0", inf["cluster_state"], inf["cluster_data_nodes"])
	}
	ctx, cancel := ctxTimeout(opTimeout)
	defer cancel()
	// It never got a table: it asks the client to retry (it may yet join).
	if err := bad.rdb.Set(ctx, "k", "v", 0).Err(); classify(err) != errTryAgain || !strings.Contains(err.Error(), "no partition table") {
		t.Errorf("SET on the outsider: %v, want -TRYAGAIN ... no partition table ...", err)
	}
}

// TestClusterClientRole: a --role client node joins, holds no partition
// and serves every key.
func TestClusterClientRole(t *testing.T) {
	c := startCluster(t, 3, "--partitions", "31")
	cl := c.add("--role", "client")
	c.waitSettled(3)
	for _, n := range c.live() {
		ls, raw, err := n.nodes()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ls, func(l nodeLine) bool { return l.id == cl.id })
		if len(ls) != 4 || i < 0 {
			t.Fatalf("CLUSTER NODES through %s: %d members, client listed: %v\n%s", n.name, len(ls), i >= 0, raw)
		}
		if l := ls[i]; l.role != "client" || !l.alive || l.manager || l.primaries != 0 || l.replicas != 0 {
			t.Errorf("CLUSTER NODES through %s, client node: %+v; want role client, alive, not a manager, primaries=0 replicas=0", n.name, l)
		}
	}
	ctx := context.Background()
	const half = 500
	viaClient, viaData := map[string]string{}, map[string]string{}
	for i := range half {
		viaClient[fmt.Sprintf("c:%d", i)] = fmt.Sprint("client-", i)
		viaData[fmt.Sprintf("d:%d", i)] = fmt.Sprint("data-", i)
	}
	setAll(t, cl.rdb, viaClient)
	setAll(t, c.live()[1].rdb, viaData)
	all := maps.Clone(viaClient)
	maps.Copy(all, viaData)
	keys := slices.Sorted(maps.Keys(all))
	for _, n := range c.live() {
		got, err := getAll(n.rdb, keys)
		if err != nil {
			t.Fatalf("through %s: %v", n.name, err)
		}
		if !maps.Equal(got, all) {
			t.Errorf("through %s: %d of %d keys read back, %d differ", n.name, len(got), len(all), countDiff(got, all))
		}
	}
	if got, err := cl.rdb.DBSize(ctx).Result(); err != nil || got != 2*half {
		t.Errorf("DBSIZE through the client node = %d, %v; want %d", got, err, 2*half)
	}
	vals, err := cl.rdb.MGet(ctx, keys[:40]...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys[:40] {
		if vals[i] != all[k] {
			t.Errorf("MGET through the client node: %s = %v, want %q", k, vals[i], all[k])
		}
	}
	parts, err := cl.rdb.Do(ctx, "cluster", "partitions").Slice()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if strings.Contains(fmt.Sprint(p), cl.id) {
			t.Errorf("CLUSTER PARTITIONS lists the client node as an owner: %v", p)
		}
	}
}

// TestClusterKillAckedWrites: kill -9 one of three nodes (2 copies of
// every partition) while writers run through every node: no write
// acknowledged with +OK may be lost, and writes resume. Some keys are
// written while the cluster has one node, before the others join, so
// they reach the others only by the copies made when partitions move.
func TestClusterKillAckedWrites(t *testing.T) {
	c := newCluster(t, "--partitions", "31", "--replicas", "2")
	first := c.add()
	c.waitSettled(1)
	pre := map[string]string{}
	for i := range 1000 {
		pre[fmt.Sprintf("early:%d", i)] = fmt.Sprint("e", i)
	}
	setAll(t, first.rdb, pre)
	c.add()
	c.add()
	c.waitSettled(3)
	nodes := c.live()
	leader := c.leader()
	var victim *cnode // a node that is not the control plane's leader
	for _, n := range slices.Backward(nodes) {
		if n != leader {
			victim = n
			break
		}
	}
	t.Logf("leader %s; killing %s", leader.name, victim.name)
	load := newLoad(c, func(n *cnode, k errKind) bool {
		return k == errTryAgain || k == errDown || (k == errConn && n == victim && n.gone.Load())
	})
	const writers = 6
	for w := range writers {
		load.startWriter(w, fmt.Sprintf("ack:%d", w), 40, nodes[w%len(nodes)])
	}
	defer func() {
		select {
		case <-load.stop:
		default:
			load.halt()
		}
	}()
	if !load.waitAcks(make([]int64, writers), 100) {
		t.Fatalf("writers did not get 100 acknowledged writes each before the kill: %v; errors: %s", load.ackCounts(), &load.errs)
	}
	base := load.ackCounts()
	killed := time.Now()
	victim.kill()

	// Failover as the survivors see it: the victim failed, state ok.
	var detected, recovered time.Duration
	survivors := c.live()
	deadline := killed.Add(settleTimeout)
	for time.Now().Before(deadline) && recovered == 0 {
		failed, ok := 0, 0
		for _, n := range survivors {
			if ls, _, err := n.nodes(); err == nil {
				for _, l := range ls {
					if l.id == victim.id && !l.alive {
						failed++
					}
				}
			}
			if inf, err := n.info(); err == nil && inf["cluster_state"] == "ok" {
				ok++
			}
		}
		if failed > 0 && detected == 0 {
			detected = time.Since(killed)
		}
		if failed == len(survivors) && ok == len(survivors) {
			recovered = time.Since(killed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recovered == 0 {
		t.Errorf("the survivors did not all show %s failed and state ok within %v", victim.name, settleTimeout)
	}
	// Keep writing: at least 5 s after the kill and 50 more acks each.
	resumed := load.waitAcks(base, 50)
	if !resumed {
		t.Errorf("writes did not resume after the kill: acks %v, before the kill %v; errors: %s", load.ackCounts(), base, &load.errs)
	}
	for time.Since(killed) < 5*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	load.halt()
	load.mu.Lock()
	firstFail, lastFail := load.firstFail, load.lastFail
	load.mu.Unlock()
	outage := "no write failed"
	if !lastFail.IsZero() {
		outage = fmt.Sprintf("write errors seen from kill%+v to kill%+v", firstFail.Sub(killed).Round(time.Millisecond), lastFail.Sub(killed).Round(time.Millisecond))
	}
	t.Logf("failover after kill -9 of %s: failure seen by a survivor after %v, all survivors show it failed with state ok after %v; %s; longest wait of a writer for an ack %v; acknowledged writes %v; errors: %s",
		victim.name, detected.Round(time.Millisecond), recovered.Round(time.Millisecond), outage,
		load.maxGap().Round(time.Millisecond), load.ackCounts(), &load.errs)

	if _, err := c.trySettle(2); err != nil {
		t.Error(err)
	} else {
		t.Logf("settled (missing copies re-created) %v after the kill", time.Since(killed).Round(time.Millisecond))
	}
	lost := load.verify(t, pre)
	t.Logf("lost acknowledged writes: %d (of %d keys written under load and %d written before the cluster grew)", lost, load.led.ackedKeys(), len(pre))
	if n := load.stale.Load(); n > 0 {
		t.Errorf("%s", load.staleReads())
	}
	if load.bad.count(errOther)+load.bad.count(errTimeout)+load.bad.count(errConn) > 0 {
		t.Errorf("errors other than TRYAGAIN/CLUSTERDOWN (or connection errors to the killed node): %s", &load.bad)
	}
}

// TestClusterJoinLeaveUnderLoad: with writers, readers and a scanner
// running, a fourth node joins, then an original node leaves gracefully
// (SIGTERM): a follower of the control plane, or its leader (which hands
// leadership over first). Only -TRYAGAIN (retried) may fail an operation
// (and the connections to the leaving node may close); no key is lost;
// SCAN sees every key exactly once throughout.
func TestClusterJoinLeaveUnderLoad(t *testing.T) {
	t.Run("leave=follower", func(t *testing.T) { testJoinLeave(t, false) })
	t.Run("leave=leader", func(t *testing.T) { testJoinLeave(t, true) })
}

func testJoinLeave(t *testing.T, leaveLeader bool) {
	c := startCluster(t, 3, "--partitions", "31")
	nodes := c.live()
	pre := map[string]string{}
	for i := range 2000 {
		pre[fmt.Sprintf("pre:%d", i)] = fmt.Sprint("p", i)
	}
	setAll(t, nodes[0].rdb, pre)
	preKeys := slices.Sorted(maps.Keys(pre))
	load := newLoad(c, func(n *cnode, k errKind) bool {
		return k == errTryAgain || (k == errConn && n.gone.Load())
	})
	const writers = 4
	for w := range writers {
		load.startWriter(w, fmt.Sprintf("jl:%d", w), 50, nodes[w%len(nodes)])
	}
	// Readers of the preloaded keys.
	var wrongReads errCounts
	for r := range 2 {
		load.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			via := nodes[r%len(nodes)]
			for {
				select {
				case <-load.stop:
					return
				default:
				}
				k := preKeys[rng.IntN(len(preKeys))]
				ctx, cancel := ctxTimeout(opTimeout)
				v, err := via.rdb.Get(ctx, k).Result()
				cancel()
				if kind := classify(err); kind != errNone {
					load.failed(via, kind, "GET "+k, err)
					via = load.next(via)
					time.Sleep(10 * time.Millisecond)
				} else if v != pre[k] {
					wrongReads.add(errOther, "GET "+k+" via "+via.name, fmt.Errorf("read %q (err %v), want %q", v, err, pre[k]))
				}
			}
		})
	}
	// A scanner: every complete SCAN MATCH pre:* returns each preloaded
	// key exactly once, whatever moves meanwhile.
	var scans, badScans int
	var badScan string
	load.wg.Go(func() {
		via := nodes[2]
		for {
			var got []string
			var cursor uint64
			for {
				select {
				case <-load.stop:
					return
				default:
				}
				ctx, cancel := ctxTimeout(opTimeout)
				ks, next, err := via.rdb.Scan(ctx, cursor, "pre:*", 500).Result()
				cancel()
				if kind := classify(err); kind != errNone {
					load.failed(via, kind, fmt.Sprint("SCAN ", cursor), err)
					via = load.next(via) // the cursor is a partition number: valid on any node
					time.Sleep(10 * time.Millisecond)
					continue
				}
				got = append(got, ks...)
				if cursor = next; cursor == 0 {
					break
				}
			}
			scans++
			if !slices.Equal(sorted(got), preKeys) {
				badScans++
				badScan = fmt.Sprintf("%d keys, %d distinct", len(got), len(distinct(got)))
			}
		}
	})
	defer func() {
		select {
		case <-load.stop:
		default:
			load.halt()
		}
	}()
	if !load.waitAcks(make([]int64, writers), 50) {
		t.Fatalf("writers did not get 50 acknowledged writes each: %v; errors: %s", load.ackCounts(), &load.errs)
	}

	joinStart := time.Now()
	n4 := c.add()
	joinDur, err := c.trySettle(4)
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("join of %s: settled %v after its start (%v after it was ready)", n4.name, time.Since(joinStart).Round(time.Millisecond), joinDur.Round(time.Millisecond))
	}
	load.addTarget(n4)
	load.startWriter(writers, "jl:new", 50, n4)
	base := load.ackCounts()
	if !load.waitAcks(base, 30) {
		t.Errorf("writes did not continue after the join: %v (before %v)", load.ackCounts(), base)
	}

	leader := c.leader()
	if leader == nil {
		t.Fatal("no control-plane leader")
	}
	leaving := leader
	if !leaveLeader || !slices.Contains(nodes, leader) {
		for _, n := range slices.Backward(nodes) { // an original node, not the leader
			if n != leader {
				leaving = n
				break
			}
		}
	}
	leaveStart := time.Now()
	leaving.stop()
	stopped := time.Since(leaveStart)
	leaveDur, err := c.trySettle(3)
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("graceful leave of %s (leader %s): the process exited %v after SIGTERM, settled %v after SIGTERM",
			leaving.name, leader.name, stopped.Round(time.Millisecond), (stopped + leaveDur).Round(time.Millisecond))
	}
	base = load.ackCounts()
	if !load.waitAcks(base, 30) {
		t.Errorf("writes did not continue after the leave: %v (before %v)", load.ackCounts(), base)
	}
	load.halt()
	t.Logf("operations: acknowledged writes %v; %d complete scans; errors: %s", load.ackCounts(), scans, &load.errs)
	if scans == 0 || badScans > 0 {
		t.Errorf("%d of %d complete scans did not return each preloaded key exactly once (last bad: %s)", badScans, scans, badScan)
	}
	if n := wrongReads.count(errOther); n > 0 {
		t.Errorf("%d reads of preloaded keys returned a wrong value: %s", n, &wrongReads)
	}
	if n := load.stale.Load(); n > 0 {
		t.Errorf("%s", load.staleReads())
	}
	for k := errTryAgain; k < numErrKinds; k++ {
		if load.bad.count(k) > 0 {
			t.Errorf("operations failed with errors other than TRYAGAIN (or connection errors to the node that left): %s", &load.bad)
			break
		}
	}
	lost := load.verify(t, pre)
	t.Logf("lost keys: %d", lost)
}
