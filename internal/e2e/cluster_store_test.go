package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/backing/s3test"
)

// pendingChanges sums the changes waiting for the store on the live
// nodes (STORESTATUS), or -1 if a node does not answer.
func (c *tcluster) pendingChanges() int64 {
	var total int64
	for _, n := range c.live() {
		ctx, cancel := ctxTimeout(opTimeout)
		rows, err := n.rdb.Do(ctx, "storestatus").Slice()
		cancel()
		if err != nil {
			return -1
		}
		for _, r := range rows {
			f, _ := r.([]any)
			for i := 0; i+1 < len(f); i += 2 {
				if f[i] == "pending" {
					v, _ := strconv.ParseInt(fmt.Sprint(f[i+1]), 10, 64)
					total += v
				}
			}
		}
	}
	return total
}

// TestClusterStoreKillPrimary: three nodes write back to a real
// S3-compatible server (versitygw) with a write-behind delay long enough
// that every node holds changes not yet in the store when one of them is
// killed with SIGKILL. After failover the survivors write back what the
// dead node had not: every acknowledged write reaches the store, and the
// store ends equal to the cache.
func TestClusterStoreKillPrimary(t *testing.T) {
	srv := s3test.New(t)
	c := newCluster(t, "--partitions", "31", "--replicas", "2",
		"--store", srv.URL("kill"), "--store-defaults", "mode=write-behind delay=3s")
	c.env = srv.Env()
	c.add()
	c.add()
	c.add()
	c.waitSettled(3)
	nodes := c.live()
	leader := c.leader()
	var victim *cnode
	for _, n := range slices.Backward(nodes) {
		if n != leader {
			victim = n
			break
		}
	}
	load := newLoad(c, func(n *cnode, k errKind) bool {
		return k == errTryAgain || k == errDown || (k == errConn && n == victim && n.gone.Load())
	})
	startWriters(t, load, nodes, 6, "st", 50, 100)
	pending := c.pendingChanges()
	if pending <= 0 {
		t.Fatalf("no change pending before the kill (%d): the test would prove nothing", pending)
	}
	base := load.ackCounts()
	killed := time.Now()
	victim.kill()
	t.Logf("killed %s with %d changes pending in the cluster", victim.name, pending)
	if !load.waitAcks(base, 50) {
		t.Errorf("writes did not resume after the kill: %v; errors: %s", load.ackCounts(), &load.errs)
	}
	load.halt()
	if _, err := c.trySettle(2); err != nil {
		t.Fatal(err)
	}
	// The survivors write everything back: the delay (3 s) plus a new
	// primary's grace after the failover (6 s).
	start := time.Now()
	waitFor(t, 60*time.Second, "no change pending on the survivors", func() bool { return c.pendingChanges() == 0 })
	t.Logf("all changes written back %v after the load stopped (%v after the kill)",
		time.Since(start).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))

	lost, differ, keys := checkStore(t, c, load, srv.Open(t, "kill"))
	t.Logf("store checked: %d keys, %d acknowledged, %d lost, %d differ from the cache", keys, load.led.ackedKeys(), lost, differ)
	if n := load.bad.count(errOther) + load.bad.count(errTimeout) + load.bad.count(errConn); n > 0 {
		t.Errorf("errors other than TRYAGAIN/CLUSTERDOWN: %s", &load.bad)
	}
}

// TestClusterStoreGracefulLeave: a node holding changes not yet written
// back (the delay is an hour) leaves gracefully (SIGTERM). Its partitions,
// and their pending changes, move to the others: nothing is written to the
// store by the move and nothing pending is lost; SAVEMAP then writes every
// change, and the store equals the cache.
func TestClusterStoreGracefulLeave(t *testing.T) {
	srv := s3test.New(t)
	c := newCluster(t, "--partitions", "31", "--replicas", "2",
		"--store", srv.URL("leave"), "--store-defaults", "mode=write-behind delay=1h")
	c.env = srv.Env()
	c.add()
	c.add()
	c.add()
	c.waitSettled(3)
	nodes := c.live()
	want := map[string]string{}
	for i := range 600 {
		want[fmt.Sprintf("g:%d", i)] = fmt.Sprint("v", i)
	}
	setAll(t, nodes[0].rdb, want)
	before := c.pendingChanges()
	if before != int64(len(want)) {
		t.Fatalf("%d changes pending before the leave, want %d", before, len(want))
	}
	leaver := nodes[len(nodes)-1]
	if leaver == c.leader() {
		leaver = nodes[len(nodes)-2]
	}
	leaver.stop()
	if _, err := c.trySettle(2); err != nil {
		t.Fatal(err)
	}
	st := srv.Open(t, "leave")
	if objs := srv.Objects(t, "leave/"); len(objs) != 0 {
		t.Fatalf("the store has %d objects before any write-back was due", len(objs))
	}
	if after := c.pendingChanges(); after != before {
		t.Fatalf("%d changes pending after %s left, want the %d from before", after, leaver.name, before)
	}
	ctx, cancel := ctxTimeout(2 * time.Minute)
	defer cancel()
	n, err := c.live()[0].rdb.Do(ctx, "SAVEMAP").Int()
	if err != nil || n != len(want) {
		t.Fatalf("SAVEMAP: %d %v, want %d", n, err, len(want))
	}
	for k, v := range want {
		got, ok, err := st.Load(context.Background(), "0", []byte(k))
		if err != nil || !ok || string(got) != v {
			t.Fatalf("%s: store has %q %v %v, want %q", k, got, ok, err, v)
		}
	}
}

// TestClusterStoreSoak (ENGRAM_SOAK=1; ENGRAM_SOAK_ROUNDS, default 6):
// under writers, round after round a random node dies (kill -9) or leaves
// (SIGTERM) and a new one joins, while every change is written back to a
// real S3-compatible server (delay 500 ms). At the end every acknowledged
// write is in the store and the store equals the cache.
func TestClusterStoreSoak(t *testing.T) {
	if os.Getenv("ENGRAM_SOAK") == "" {
		t.Skip("set ENGRAM_SOAK=1 to run the backing-store soak test (minutes)")
	}
	rounds := 6
	if s := os.Getenv("ENGRAM_SOAK_ROUNDS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil {
			t.Fatalf("ENGRAM_SOAK_ROUNDS=%q: %v", s, err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	srv := s3test.New(t)
	c := newCluster(t, "--partitions", "64", "--replicas", "2",
		"--store", srv.URL("soak"), "--store-defaults", "mode=write-behind delay=500ms")
	c.env = srv.Env()
	for range 4 {
		c.add()
	}
	c.waitSettled(4)
	load := newLoad(c, func(n *cnode, k errKind) bool {
		return k == errTryAgain || k == errDown || (k == errConn && n.gone.Load())
	})
	nodes := c.live()
	startWriters(t, load, nodes, 8, "ssoak", 100, 50)
	for r := range rounds {
		live := c.live()
		victim := live[rng.IntN(len(live))]
		how := "kill -9"
		if rng.IntN(2) == 0 {
			victim.kill()
		} else {
			how = "SIGTERM"
			victim.stop()
		}
		if _, err := c.trySettle(len(live) - 1); err != nil {
			t.Fatalf("round %d, after %s of %s: %v", r, how, victim.name, err)
		}
		n := c.add()
		if _, err := c.trySettle(len(live)); err != nil {
			t.Fatalf("round %d, after %s joined: %v", r, n.name, err)
		}
		load.addTarget(n)
		base := load.ackCounts()
		if !load.waitAcks(base, 20) {
			t.Fatalf("round %d: writes did not continue: %v (before %v)", r, load.ackCounts(), base)
		}
		t.Logf("round %d: %s of %s, %s joined; pending changes now %d", r, how, victim.name, n.name, c.pendingChanges())
	}
	load.halt()
	waitFor(t, 2*time.Minute, "no change pending", func() bool { return c.pendingChanges() == 0 })
	lost, differ, keys := checkStore(t, c, load, srv.Open(t, "soak"))
	t.Logf("store checked after %d rounds: %d keys, %d acknowledged, %d lost, %d differ from the cache", rounds, keys, load.led.ackedKeys(), lost, differ)
}

// startWriters starts n writers of prefix:w keys (nkeys each) spread over
// nodes, halts them when the test ends, and waits for acks acknowledged
// writes of each.
func startWriters(t *testing.T, load *loadRun, nodes []*cnode, n int, prefix string, nkeys int, acks int64) {
	t.Helper()
	for w := range n {
		load.startWriter(w, fmt.Sprintf("%s:%d", prefix, w), nkeys, nodes[w%len(nodes)])
	}
	t.Cleanup(func() {
		select {
		case <-load.stop:
		default:
			load.halt()
		}
	})
	if !load.waitAcks(make([]int64, n), acks) {
		t.Fatalf("writers did not get %d acknowledged writes each: %v; errors: %s", acks, load.ackCounts(), &load.errs)
	}
}

// checkStore compares the store with the load's ledger (every
// acknowledged write must be there) and with the cache (they must be
// equal once nothing is pending). It returns the lost and differing
// counts and the number of keys checked.
func checkStore(t *testing.T, c *tcluster, load *loadRun, st *backing.S3) (lost, differ, nkeys int) {
	t.Helper()
	load.led.mu.Lock()
	keys := slices.Sorted(maps.Keys(load.led.keys))
	load.led.mu.Unlock()
	got := map[string]string{}
	for _, k := range keys {
		v, ok, err := st.Load(context.Background(), "0", []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got[k] = string(v)
		}
	}
	lostList, odd := load.led.check(got)
	if len(lostList)+len(odd) > 0 {
		t.Errorf("the store lost %d of %d acknowledged writes (%d odd values); e.g. %q %q",
			len(lostList), load.led.ackedKeys(), len(odd), lostList[:min(5, len(lostList))], odd[:min(5, len(odd))])
	}
	mem, err := getAll(c.live()[0].rdb, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if mem[k] != got[k] {
			if differ++; differ <= 5 {
				t.Errorf("%s: cache %q, store %q", k, mem[k], got[k])
			}
		}
	}
	return len(lostList), differ, len(keys)
}
