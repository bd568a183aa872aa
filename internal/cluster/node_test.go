package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/store"
	"github.com/engramdb/engram/internal/transport"
	"github.com/engramdb/engram/internal/transport/memnet"
)

const (
	testPartitions = 16
	testMap        = "m"
)

// testSeed returns the seed of a test's random choices (ENGRAM_SEED to
// replay one) and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ENGRAM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ENGRAM_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with ENGRAM_SEED=%d)", seed, seed)
	return seed
}

type testCluster struct {
	t      *testing.T
	net    *memnet.Network
	ids    []ring.NodeID
	addrs  map[ring.NodeID]string
	nodes  map[ring.NodeID]*Node
	stores map[ring.NodeID]*store.Store
	table  *ring.Table
	// leaseDown[id], when set, makes id's lease refuse (as a node cut off
	// from the control plane would).
	leaseDown map[ring.NodeID]*atomic.Bool
}

func newTestCluster(t *testing.T, seed uint64, opts Options) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: memnet.NewNetwork(int64(seed)), addrs: map[ring.NodeID]string{},
		nodes: map[ring.NodeID]*Node{}, stores: map[ring.NodeID]*store.Store{}, leaseDown: map[ring.NodeID]*atomic.Bool{}}
	for i := range 3 {
		id := ring.NodeID(fmt.Sprintf("n%d", i+1))
		c.ids = append(c.ids, id)
		c.addrs[id] = "mem-" + string(id)
	}
	for _, id := range c.ids {
		obs := NewObserver()
		st, err := store.New(store.Options{Partitions: testPartitions, Observer: obs})
		if err != nil {
			t.Fatal(err)
		}
		h := NewHandler()
		tr := c.net.Node(c.addrs[id], h.Handle)
		down := &atomic.Bool{}
		c.leaseDown[id] = down
		lease := func() error {
			if down.Load() {
				return errors.New("lease expired (test)")
			}
			return nil
		}
		n, err := New(Config{ID: id, Store: st, Transport: tr, Observer: obs, Handler: h, Lease: lease, Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[id], c.stores[id] = n, st
		t.Cleanup(func() {
			n.Close()
			tr.Close()
			st.Close()
		})
	}
	tbl, err := ring.Assign(nil, c.ids, testPartitions, 2)
	if err != nil {
		t.Fatal(err)
	}
	c.setTable(tbl, c.ids...)
	return c
}

func (c *testCluster) setTable(tbl *ring.Table, on ...ring.NodeID) {
	c.t.Helper()
	c.table = tbl
	for _, id := range on {
		if err := c.nodes[id].SetTable(tbl, c.addrs); err != nil {
			c.t.Fatal(err)
		}
	}
}

// keyFor returns a key whose partition is owned by exactly [primary,
// replica] in tbl.
func (c *testCluster) keyFor(tbl *ring.Table, primary, replica ring.NodeID) []byte {
	c.t.Helper()
	for i := range 100000 {
		k := []byte(fmt.Sprintf("key-%d", i))
		if own := tbl.Owners[tbl.PartitionOf(k)]; slices.Equal(own, []ring.NodeID{primary, replica}) {
			return k
		}
	}
	c.t.Fatalf("no key led by %s with replica %s", primary, replica)
	return nil
}

// roles returns the primary and replica of key, and the third node.
func (c *testCluster) roles(key []byte) (primary, replica, other ring.NodeID) {
	own := c.table.Owners[c.table.PartitionOf(key)]
	for _, id := range c.ids {
		if !slices.Contains(own, id) {
			other = id
		}
	}
	return own[0], own[1], other
}

// local reads key straight from a node's store.
func (c *testCluster) local(id ring.NodeID, key []byte) (string, bool) {
	m, ok := c.stores[id].Lookup([]byte(testMap))
	if !ok {
		return "", false
	}
	v, ok := m.Get(nil, key)
	return string(v), ok
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestOptions(t *testing.T) {
	if err := (Options{}).EnsureDefaults().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	bad := Options{}.EnsureDefaults()
	bad.RetryMax = bad.RetryMin / 2
	if bad.Validate() == nil {
		t.Fatal("max backoff below min accepted")
	}
	bad = Options{}.EnsureDefaults()
	bad.BacklogBytes = -1
	if bad.Validate() == nil {
		t.Fatal("negative backlog accepted")
	}
}

func TestWritesReadableEverywhere(t *testing.T) {
	seed := testSeed(t)
	c := newTestCluster(t, seed, Options{})
	ctx := ctxFor(t, 30*time.Second)
	for i := range 60 {
		via := c.nodes[c.ids[i%3]]
		k := []byte(fmt.Sprintf("k%d", i))
		v := fmt.Sprintf("v%d", i)
		if err := via.Set(ctx, testMap, k, []byte(v), store.SetOptions{}, AckAll); err != nil {
			t.Fatalf("set %s via %s: %v", k, via.ID(), err)
		}
		// AckAll: the replica's own store already has it.
		p, r, o := c.roles(k)
		for _, id := range []ring.NodeID{p, r} {
			if got, ok := c.local(id, k); !ok || got != v {
				t.Fatalf("after AckAll set of %s, %s's store has %q %v, want %q", k, id, got, ok, v)
			}
		}
		if _, ok := c.local(o, k); ok {
			t.Fatalf("%s, not an owner of %s, stores it", o, k)
		}
		for _, id := range c.ids {
			got, ok, err := c.nodes[id].Get(ctx, testMap, k, true)
			if err != nil || !ok || string(got) != v {
				t.Fatalf("consistent get %s via %s: %q %v %v, want %q", k, id, got, ok, err, v)
			}
		}
	}
	// Eventual reads from an owner are served locally.
	k := []byte("k0")
	_, r, _ := c.roles(k)
	before := c.nodes[r].Stats().Forwarded
	if got, ok, err := c.nodes[r].Get(ctx, testMap, k, false); err != nil || !ok || string(got) != "v0" {
		t.Fatalf("eventual get on replica: %q %v %v", got, ok, err)
	}
	if c.nodes[r].Stats().Forwarded != before {
		t.Fatal("eventual read on a replica was forwarded")
	}
	// Deletes replicate too.
	for i := range 60 {
		via := c.nodes[c.ids[(i+1)%3]]
		k := []byte(fmt.Sprintf("k%d", i))
		ok, err := via.Delete(ctx, testMap, k, AckAll)
		if err != nil || !ok {
			t.Fatalf("delete %s via %s: %v %v", k, via.ID(), ok, err)
		}
		for _, id := range c.ids {
			if _, ok := c.local(id, k); ok {
				t.Fatalf("%s still has %s after an AckAll delete", id, k)
			}
			if _, ok, err := c.nodes[id].Get(ctx, testMap, k, true); err != nil || ok {
				t.Fatalf("get deleted %s via %s: %v %v", k, id, ok, err)
			}
		}
	}
	if ok, err := c.nodes[c.ids[0]].Delete(ctx, testMap, []byte("k0"), AckAll); err != nil || ok {
		t.Fatalf("second delete: %v %v", ok, err)
	}
}

func TestExpiryReplicated(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{})
	ctx := ctxFor(t, 30*time.Second)
	k := []byte("ttl-key")
	p, r, o := c.roles(k)
	exp := c.stores[p].Now() + time.Hour.Milliseconds()
	if err := c.nodes[o].Set(ctx, testMap, k, []byte("v"), store.SetOptions{ExpireAt: exp}, AckAll); err != nil {
		t.Fatal(err)
	}
	for _, id := range []ring.NodeID{p, r} {
		if ttl := c.stores[id].Map(testMap).TTL(k); ttl <= 0 {
			t.Fatalf("%s: ttl %d after set with expiry", id, ttl)
		}
	}
	// KeepTTL keeps it on the replica as on the primary.
	if err := c.nodes[o].Set(ctx, testMap, k, []byte("v2"), store.SetOptions{KeepTTL: true}, AckAll); err != nil {
		t.Fatal(err)
	}
	if ttl := c.stores[r].Map(testMap).TTL(k); ttl <= 0 {
		t.Fatalf("replica lost the ttl on a KEEPTTL set: %d", ttl)
	}
	// NX on an existing key writes nothing.
	if err := c.nodes[o].Set(ctx, testMap, k, []byte("v3"), store.SetOptions{Cond: store.IfAbsent}, AckAll); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.local(r, k); v != "v2" {
		t.Fatalf("replica has %q after a refused NX set", v)
	}
}

func TestEngineErrorsCrossTheWire(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{})
	long := make([]byte, 70<<10) // past the store's 64 KiB key limit
	p, _, o := c.roles(long)
	for _, via := range []ring.NodeID{p, o} {
		err := c.nodes[via].Set(ctxFor(t, 5*time.Second), testMap, long, []byte("v"), store.SetOptions{}, AckAll)
		if !errors.Is(err, store.ErrKeyTooLong) || IsRetryable(err) {
			t.Fatalf("set of a too long key via %s: %v, want store.ErrKeyTooLong, not retryable", via, err)
		}
	}
}

func TestOrderingOneKey(t *testing.T) {
	seed := testSeed(t)
	c := newTestCluster(t, seed, Options{})
	ctx := ctxFor(t, 60*time.Second)
	k := []byte("hot")
	p, r, _ := c.roles(k)
	var wg sync.WaitGroup
	for g := range 6 {
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		via := c.nodes[c.ids[g%3]]
		wg.Go(func() {
			for i := range 150 {
				ack := []Ack{AckAll, AckPrimary, AckNone}[rng.IntN(3)]
				var err error
				if rng.IntN(10) == 0 {
					_, err = via.Delete(ctx, testMap, k, ack)
				} else {
					err = via.Set(ctx, testMap, k, []byte(fmt.Sprintf("g%d-%d", g, i)), store.SetOptions{}, ack)
				}
				if err != nil {
					t.Errorf("write via %s: %v", via.ID(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	// AckNone writes forwarded by Send may still be on their way: wait
	// until the replica has acknowledged the primary's whole log and the
	// two copies agree.
	var pv, rv string
	var pok, rok bool
	eventually(t, "primary and replica to agree", func() bool {
		lg := c.nodes[p].parts[c.table.PartitionOf(k)].log.Load()
		if lg.Acked()[string(r)] != lg.Last() {
			return false
		}
		pv, pok = c.local(p, k)
		rv, rok = c.local(r, k)
		return pv == rv && pok == rok && lg.Acked()[string(r)] == lg.Last()
	})
	t.Logf("final value %q %v on %s and %s", pv, pok, p, r)
}

func TestFencing(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{})
	t1 := c.table
	t2, err := ring.Assign(t1, c.ids, testPartitions, 2)
	if err != nil {
		t.Fatal(err)
	}
	if t2.Epoch != t1.Epoch+1 {
		t.Fatalf("epoch %d after %d", t2.Epoch, t1.Epoch)
	}
	k := []byte("fenced")
	p, r, o := c.roles(k)
	if !slices.Equal(t2.Owners[t2.PartitionOf(k)], []ring.NodeID{p, r}) {
		k = c.keyFor(t2, p, r) // keep owners equal across the epochs
		if !slices.Equal(t1.Owners[t1.PartitionOf(k)], []ring.NodeID{p, r}) {
			t.Skip("tables differ for every key of this pair")
		}
	}
	// A caller with a newer table than the owner's is refused: the owner
	// may no longer lead what it is asked for.
	c.setTable(t2, o)
	c.table = t2
	err = c.nodes[o].Set(ctxFor(t, 200*time.Millisecond), testMap, k, []byte("newer"), store.SetOptions{}, AckAll)
	if !errors.Is(err, ErrWrongEpoch) || !IsRetryable(err) {
		t.Fatalf("set from a node with a newer table: %v, want a retryable ErrWrongEpoch", err)
	}
	if v, ok := c.local(p, k); ok {
		t.Fatalf("a fenced write was applied: %q", v)
	}
	fenced := c.nodes[p].Stats().Fenced
	done := make(chan error, 1)
	go func() {
		done <- c.nodes[o].Set(ctxFor(t, 20*time.Second), testMap, k, []byte("new"), store.SetOptions{}, AckAll)
	}()
	eventually(t, "the owner to refuse the newer epoch again", func() bool { return c.nodes[p].Stats().Fenced > fenced })
	c.setTable(t2, p, r)
	if err := <-done; err != nil {
		t.Fatalf("set after the owners got the new table: %v", err)
	}
	for _, id := range []ring.NodeID{p, r} {
		if v, ok := c.local(id, k); !ok || v != "new" {
			t.Fatalf("%s has %q %v, want new", id, v, ok)
		}
	}
	if c.nodes[o].Stats().Retries == 0 {
		t.Fatal("the caller never retried")
	}
	// A caller with an older table is served by an owner that still leads
	// the partition in its newer table (it routed right).
	t3, err := ring.Assign(t2, c.ids, testPartitions, 2)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(t3.Owners[t3.PartitionOf(k)], []ring.NodeID{p, r}) {
		c.setTable(t3, p, r)
		if err := c.nodes[o].Set(ctxFor(t, 5*time.Second), testMap, k, []byte("from-older"), store.SetOptions{}, AckAll); err != nil {
			t.Fatalf("set from a node with an older table, owner unchanged: %v", err)
		}
	}
	// An older table is refused.
	if err := c.nodes[o].SetTable(t1, c.addrs); err == nil {
		t.Fatal("an older table was accepted")
	}
}

func TestIsolatedReplica(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{})
	k := []byte("iso")
	p, r, o := c.roles(k)
	c.net.Isolate(c.addrs[r])
	for _, via := range []ring.NodeID{p, o} {
		err := c.nodes[via].Set(ctxFor(t, 300*time.Millisecond), testMap, k, []byte("all-"+string(via)), store.SetOptions{}, AckAll)
		if !errors.Is(err, ErrReplicaTimeout) || !IsRetryable(err) {
			t.Fatalf("AckAll set via %s with the replica isolated: %v, want a retryable ErrReplicaTimeout", via, err)
		}
		err = c.nodes[via].Set(ctxFor(t, 5*time.Second), testMap, k, []byte("primary-"+string(via)), store.SetOptions{}, AckPrimary)
		if err != nil {
			t.Fatalf("AckPrimary set via %s with the replica isolated: %v", via, err)
		}
	}
	// The isolated node cannot reach the primary: retryable, no hang.
	_, _, err := c.nodes[r].Get(ctxFor(t, 200*time.Millisecond), testMap, k, true)
	if !IsRetryable(err) || !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("consistent get from the isolated node: %v", err)
	}
	c.net.Heal()
	if err := c.nodes[o].Set(ctxFor(t, 20*time.Second), testMap, k, []byte("healed"), store.SetOptions{}, AckAll); err != nil {
		t.Fatalf("AckAll set after heal: %v", err)
	}
	if v, ok := c.local(r, k); !ok || v != "healed" {
		t.Fatalf("replica has %q %v after heal", v, ok)
	}
}

// TestNoDirtyReads: a write applied on the primary but not acknowledged by
// its replica (cut off) must not be returned by a consistent read: the
// replica may become primary without it, and a client would have seen a
// value the cluster then forgets (TestClusterSplitLinearizable caught
// this across an iptables split).
func TestNoDirtyReads(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{AckTimeout: 200 * time.Millisecond})
	k := []byte("dirty")
	p, r, o := c.roles(k)
	if err := c.nodes[o].Set(ctxFor(t, 10*time.Second), testMap, k, []byte("v1"), store.SetOptions{}, AckAll); err != nil {
		t.Fatal(err)
	}
	c.net.Isolate(c.addrs[r])
	err := c.nodes[p].Set(ctxFor(t, 300*time.Millisecond), testMap, k, []byte("v2"), store.SetOptions{}, AckAll)
	if !errors.Is(err, ErrReplicaTimeout) {
		t.Fatalf("AckAll set with the replica cut off: %v", err)
	}
	if v, _ := c.local(p, k); v != "v2" {
		t.Fatalf("primary holds %q, want the unacknowledged v2", v)
	}
	for _, via := range []ring.NodeID{p, o} {
		v, _, err := c.nodes[via].Get(ctxFor(t, 500*time.Millisecond), testMap, k, true)
		if err == nil {
			t.Fatalf("consistent get via %s returned %q: a value no replica acknowledged", via, v)
		}
		if !IsRetryable(err) {
			t.Fatalf("consistent get via %s: %v, want a retryable error", via, err)
		}
	}
	// Eventual reads may see it (they may be stale or ahead).
	if v, _, err := c.nodes[p].Get(ctxFor(t, time.Second), testMap, k, false); err != nil || string(v) != "v2" {
		t.Fatalf("eventual get on the primary: %q %v", v, err)
	}
	c.net.Heal()
	eventually(t, "the consistent read after the heal", func() bool {
		v, _, err := c.nodes[o].Get(ctxFor(t, time.Second), testMap, k, true)
		return err == nil && string(v) == "v2"
	})
}

func TestNoDeadlineNeverHangs(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{RequestTimeout: 200 * time.Millisecond, AckTimeout: 100 * time.Millisecond})
	k := []byte("nodeadline")
	p, r, o := c.roles(k)
	c.net.Isolate(c.addrs[p])
	if _, _, err := c.nodes[o].Get(context.Background(), testMap, k, true); !IsRetryable(err) {
		t.Fatalf("get with the primary isolated and no deadline: %v, want a retryable error", err)
	}
	c.net.Heal()
	c.net.Isolate(c.addrs[r])
	if err := c.nodes[p].Set(context.Background(), testMap, k, []byte("v"), store.SetOptions{}, AckAll); !errors.Is(err, ErrReplicaTimeout) {
		t.Fatalf("AckAll set with the replica isolated and no deadline: %v, want ErrReplicaTimeout", err)
	}
}

func TestBacklogRefusesWrites(t *testing.T) {
	c := newTestCluster(t, testSeed(t), Options{BacklogBytes: 4 << 10})
	k := []byte("backlog")
	p, r, _ := c.roles(k)
	c.net.Isolate(c.addrs[r])
	val := make([]byte, 1024)
	var err error
	for i := 0; i < 100 && !errors.Is(err, ErrBacklog); i++ {
		err = c.nodes[p].Set(ctxFor(t, 300*time.Millisecond), testMap, k, val, store.SetOptions{}, AckPrimary)
		if err != nil && !IsRetryable(err) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if !errors.Is(err, ErrBacklog) || !IsRetryable(err) {
		t.Fatalf("writes past the backlog: %v, want a retryable ErrBacklog", err)
	}
	c.net.Heal()
	if err := c.nodes[p].Set(ctxFor(t, 20*time.Second), testMap, k, []byte("after"), store.SetOptions{}, AckAll); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

// TestConvergesUnderDropsAndDelays writes one partition's keys through
// every node while the network drops and delays messages: requests either
// succeed or fail with a retryable error, and once the network is clean
// the replica converges to the primary.
func TestConvergesUnderDropsAndDelays(t *testing.T) {
	seed := testSeed(t)
	c := newTestCluster(t, seed, Options{ReplicateTimeout: 50 * time.Millisecond})
	c.net.SetDropRate(0.05)
	c.net.SetDelay(0, 2*time.Millisecond)
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	var wg sync.WaitGroup
	for g := range 6 {
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		via := c.nodes[c.ids[g%3]]
		wg.Go(func() {
			for i := range 60 {
				k := keys[rng.IntN(len(keys))]
				ack := []Ack{AckAll, AckPrimary}[rng.IntN(2)]
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				var err error
				if rng.IntN(8) == 0 {
					_, err = via.Delete(ctx, testMap, k, ack)
				} else {
					err = via.Set(ctx, testMap, k, []byte(fmt.Sprintf("g%d-%d", g, i)), store.SetOptions{}, ack)
				}
				cancel()
				if err != nil && !IsRetryable(err) {
					t.Errorf("write via %s: non-retryable error %v", via.ID(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	c.net.SetDropRate(0)
	c.net.SetDelay(0, 0)
	for _, k := range keys {
		p, r, _ := c.roles(k)
		lg := c.nodes[p].parts[c.table.PartitionOf(k)].log.Load()
		eventually(t, fmt.Sprintf("replica %s of %s to converge", r, k), func() bool {
			if c.net.Inflight() != 0 || lg.Acked()[string(r)] != lg.Last() {
				return false
			}
			pv, pok := c.local(p, k)
			rv, rok := c.local(r, k)
			return pv == rv && pok == rok
		})
	}
}
