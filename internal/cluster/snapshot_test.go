package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/store"
	"github.com/engramdb/engram/internal/transport/memnet"
)

// syncEvent is one OnSynced call.
type syncEvent struct {
	p        int
	follower ring.NodeID
}

// snapCluster is a testCluster without a table, whose nodes report
// OnSynced calls.
type snapCluster struct {
	*testCluster
	mu     sync.Mutex
	synced map[ring.NodeID]map[syncEvent]int // by primary
	epochs map[ring.NodeID]map[syncEvent]uint64
	hook   atomic.Pointer[func(primary ring.NodeID, p int, follower ring.NodeID)]
}

func newSnapCluster(t *testing.T, seed uint64, nodes int, opts Options) *snapCluster {
	t.Helper()
	c := &snapCluster{testCluster: &testCluster{t: t, net: memnet.NewNetwork(int64(seed)), addrs: map[ring.NodeID]string{},
		nodes: map[ring.NodeID]*Node{}, stores: map[ring.NodeID]*store.Store{}}, synced: map[ring.NodeID]map[syncEvent]int{},
		epochs: map[ring.NodeID]map[syncEvent]uint64{}}
	for i := range nodes {
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
		c.synced[id] = map[syncEvent]int{}
		c.epochs[id] = map[syncEvent]uint64{}
		onSynced := func(p int, f ring.NodeID, epoch uint64) {
			if h := c.hook.Load(); h != nil {
				(*h)(id, p, f)
			}
			c.mu.Lock()
			c.synced[id][syncEvent{p, f}]++
			c.epochs[id][syncEvent{p, f}] = epoch
			c.mu.Unlock()
		}
		n, err := New(Config{ID: id, Store: st, Transport: tr, Observer: obs, Handler: h, Options: opts, OnSynced: onSynced})
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
	return c
}

// syncCount returns how many times primary reported (p, follower) synced.
func (c *snapCluster) syncCount(primary ring.NodeID, p int, follower ring.NodeID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced[primary][syncEvent{p, follower}]
}

// checkSyncedOnce checks that every OnSynced call was for a distinct
// (partition, follower) of its primary.
func (c *snapCluster) checkSyncedOnce() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, evs := range c.synced {
		for ev, k := range evs {
			if k != 1 {
				c.t.Errorf("%s reported partition %d synced to %s %d times", id, ev.p, ev.follower, k)
			}
		}
	}
}

// uniform returns a table giving every partition the same owners.
func uniform(epoch uint64, owners ...ring.NodeID) *ring.Table {
	t := &ring.Table{Epoch: epoch, Copies: len(owners), Owners: make([][]ring.NodeID, testPartitions)}
	for p := range t.Owners {
		t.Owners[p] = slices.Clone(owners)
	}
	return t
}

// withOwners returns a copy of t with the next epoch and partition p owned
// by owners.
func withOwners(t *ring.Table, p int, owners ...ring.NodeID) *ring.Table {
	out := &ring.Table{Epoch: t.Epoch + 1, Copies: t.Copies, Owners: make([][]ring.NodeID, len(t.Owners))}
	for i := range t.Owners {
		out.Owners[i] = slices.Clone(t.Owners[i])
	}
	out.Owners[p] = slices.Clone(owners)
	return out
}

// keysIn returns n keys of partition p named prefix-i.
func keysIn(p, n int, prefix string) [][]byte {
	tbl := uniform(1, "x")
	var out [][]byte
	for i := 0; len(out) < n; i++ {
		k := []byte(fmt.Sprintf("%s-%d", prefix, i))
		if tbl.PartitionOf(k) == p {
			out = append(out, k)
		}
	}
	return out
}

// dump returns partition p of a node's store: map/key -> record.
func (c *snapCluster) dump(id ring.NodeID, p int) map[string]store.Record {
	c.t.Helper()
	out := map[string]store.Record{}
	err := c.stores[id].ExportPartition(p, func(r store.Record) error {
		out[r.Map+"/"+string(r.Key)] = r
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// diff describes how two dumps differ ("" if equal).
func diff(a, b map[string]store.Record) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d records vs %d", len(a), len(b))
	}
	for k, ra := range a {
		rb, ok := b[k]
		if !ok {
			return fmt.Sprintf("%s missing", k)
		}
		if string(ra.Value) != string(rb.Value) || ra.ExpireAt != rb.ExpireAt || ra.Created != rb.Created {
			return fmt.Sprintf("%s: %q exp %d created %d vs %q exp %d created %d", k, ra.Value, ra.ExpireAt, ra.Created, rb.Value, rb.ExpireAt, rb.Created)
		}
	}
	return ""
}

// converged waits until the followers' copies of p are complete and equal
// to primary's, with nothing left to replicate.
func (c *snapCluster) converged(primary ring.NodeID, p int, followers ...ring.NodeID) {
	c.t.Helper()
	lg := c.nodes[primary].parts[p].log.Load()
	var why string
	deadline := time.Now().Add(20 * time.Second)
	for {
		why = ""
		last := lg.Last()
		done := map[ring.NodeID]bool{}
		for _, sp := range c.nodes[primary].Syncing() {
			if sp.Partition == p {
				done[sp.Follower] = sp.Done
			}
		}
		for _, f := range followers {
			if !done[f] {
				why = fmt.Sprintf("%s has no complete snapshot", f)
			} else if a := lg.Acked()[string(f)]; a != last {
				why = fmt.Sprintf("%s acked %d of %d", f, a, last)
			} else if d := diff(c.dump(primary, p), c.dump(f, p)); d != "" {
				why = fmt.Sprintf("%s differs from %s: %s", f, primary, d)
			}
			if why != "" {
				break
			}
		}
		if why == "" && c.net.Inflight() == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("partition %d: replicas did not converge to %s: %s", p, primary, why)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// writers runs goroutines writing (and deleting) keys through random
// nodes until stop is called, tolerating retryable errors; stop returns
// the number of writes that succeeded.
func (c *snapCluster) writers(seed uint64, g int, keys [][]byte, val int, acks ...Ack) (stop func() int64) {
	var wg sync.WaitGroup
	var done atomic.Bool
	var ok atomic.Int64
	for i := range g {
		rng := rand.New(rand.NewPCG(seed, uint64(100+i)))
		wg.Go(func() {
			for j := 0; !done.Load(); j++ {
				via := c.nodes[c.ids[rng.IntN(len(c.ids))]]
				k := keys[rng.IntN(len(keys))]
				ack := acks[rng.IntN(len(acks))]
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				var err error
				switch x := rng.IntN(10); {
				case x == 0:
					_, err = via.Delete(ctx, testMap, k, ack)
				case x < 4:
					exp := c.stores[via.ID()].Now() + time.Hour.Milliseconds() + int64(j)
					err = via.Set(ctx, testMap, k, fmt.Appendf(make([]byte, 0, val), "w%d-%d-%0*d", i, j, val, 0), store.SetOptions{ExpireAt: exp}, ack)
				default:
					err = via.Set(ctx, testMap, k, fmt.Appendf(make([]byte, 0, val), "w%d-%d-%0*d", i, j, val, 0), store.SetOptions{}, ack)
				}
				cancel()
				if err == nil {
					ok.Add(1)
				} else if !IsRetryable(err) {
					c.t.Errorf("write via %s: %v", via.ID(), err)
					return
				}
			}
		})
	}
	return func() int64 {
		done.Store(true)
		wg.Wait()
		return ok.Load()
	}
}

// fill writes keys into map name on node id (its primary), every third
// with an expiry, and returns what it wrote.
func (c *snapCluster) fill(id ring.NodeID, name string, keys [][]byte) map[string]store.Entry {
	c.t.Helper()
	ctx := ctxFor(c.t, time.Minute)
	want := map[string]store.Entry{}
	now := c.stores[id].Now()
	for i, k := range keys {
		var exp int64
		if i%3 == 0 {
			exp = now + time.Hour.Milliseconds() + int64(i)
		}
		v := fmt.Sprintf("%s=%d", k, i*7)
		if err := c.nodes[id].Set(ctx, name, k, []byte(v), store.SetOptions{ExpireAt: exp}, AckPrimary); err != nil {
			c.t.Fatalf("fill %s: %v", k, err)
		}
		want[string(k)] = store.Entry{Value: []byte(v), ExpireAt: exp}
	}
	return want
}

// has reports the first key of want a node's store lacks or holds
// differently ("" if none).
func (c *snapCluster) has(id ring.NodeID, name string, want map[string]store.Entry) string {
	m, ok := c.stores[id].Lookup([]byte(name))
	if !ok {
		return "map " + name + " missing"
	}
	for k, w := range want {
		e, ok := m.GetEntry(nil, []byte(k))
		if !ok || string(e.Value) != string(w.Value) || e.ExpireAt != w.ExpireAt {
			return fmt.Sprintf("%s/%s: %q exp %d present %v, want %q exp %d", name, k, e.Value, e.ExpireAt, ok, w.Value, w.ExpireAt)
		}
	}
	return ""
}

// TestSnapshotToNewReplica adds a replica to a partition holding 11,000
// keys in two maps while writers keep writing it: OnSynced fires once,
// only when the new replica holds every key written before (values and
// expiries), and the copies end equal.
func TestSnapshotToNewReplica(t *testing.T) {
	seed := testSeed(t)
	c := newSnapCluster(t, seed, 3, Options{SnapshotBatchEntries: 700, SnapshotBatchBytes: 32 << 10})
	n1, n2, n3 := c.ids[0], c.ids[1], c.ids[2]
	const p = 5
	t1 := uniform(1, n1, n2)
	c.setTable(t1, c.ids...)
	static := c.fill(n1, testMap, keysIn(p, 10000, "static"))
	other := c.fill(n1, "other", keysIn(p, 1000, "o"))

	var checked atomic.Bool
	hook := func(primary ring.NodeID, q int, f ring.NodeID) {
		if primary != n1 || q != p || f != n3 {
			return
		}
		// The copy is complete when OnSynced runs.
		if why := c.has(n3, testMap, static) + c.has(n3, "other", other); why != "" {
			t.Errorf("OnSynced(%d, %s) before the copy was complete: %s", q, f, why)
		}
		checked.Store(true)
	}
	c.hook.Store(&hook)
	stop := c.writers(seed, 4, keysIn(p, 300, "hot"), 40, AckAll, AckPrimary)
	t2 := withOwners(t1, p, n1, n2, n3)
	c.setTable(t2, n3, n2, n1)
	eventually(t, "n3 to be synced", func() bool { return c.syncCount(n1, p, n3) > 0 })
	if !checked.Load() {
		t.Fatal("OnSynced hook did not run")
	}
	// Some more writes while n3 streams.
	applied := c.nodes[n3].Stats().Applied
	eventually(t, "n3 to apply live writes", func() bool { return c.nodes[n3].Stats().Applied > applied+200 })
	t.Logf("%d writes", stop())
	c.converged(n1, p, n2, n3)
	if !c.nodes[n3].Readable(p) {
		t.Fatal("n3 not readable after the sync")
	}
	c.checkSyncedOnce()
	if k := c.syncCount(n1, p, n3); k != 1 {
		t.Fatalf("OnSynced(%d, n3) called %d times", p, k)
	}
	c.mu.Lock()
	epoch := c.epochs[n1][syncEvent{p, n3}]
	c.mu.Unlock()
	if epoch != t2.Epoch {
		t.Fatalf("OnSynced(%d, n3) reported epoch %d, want %d", p, epoch, t2.Epoch)
	}
	// Every partition's stream to n2 reported once too.
	for q := range testPartitions {
		if k := c.syncCount(n1, q, n2); k != 1 {
			t.Fatalf("OnSynced(%d, n2) called %d times", q, k)
		}
	}
	var prog *SyncProgress
	for _, s := range c.nodes[n1].Syncing() {
		if s.Partition == p && s.Follower == n3 {
			prog = &s
		}
	}
	if prog == nil || !prog.Done || prog.SentRecords < 11000 || prog.TotalRecords < 11000 {
		t.Fatalf("progress of the copy to n3: %+v", prog)
	}
	if st := c.nodes[n3].Stats(); st.SnapshotsReceived < 1 || st.SnapshotRecords < 11000 {
		t.Fatalf("n3 stats: %+v", st)
	}
	if len(c.nodes[n1].Syncing()) != testPartitions+1 {
		t.Fatalf("n1 has %d streams, want %d", len(c.nodes[n1].Syncing()), testPartitions+1)
	}
}

// TestPrimaryChangeResyncs promotes a replica whose copy lacks writes its
// primary made while it was cut off: the demoted primary must resync from
// the new primary (losing its diverged writes), then a new replica
// replaces it, and it drops the partition.
func TestPrimaryChangeResyncs(t *testing.T) {
	seed := testSeed(t)
	c := newSnapCluster(t, seed, 3, Options{})
	n1, n2, n3 := c.ids[0], c.ids[1], c.ids[2]
	const p, q = 3, 9 // p changes owners, q stays [n1, n2]
	t1 := uniform(1, n1, n2)
	c.setTable(t1, c.ids...)
	ctx := ctxFor(t, time.Minute)
	for _, k := range keysIn(p, 2000, "base") {
		if err := c.nodes[n3].Set(ctx, testMap, k, k, store.SetOptions{}, AckAll); err != nil {
			t.Fatal(err)
		}
	}
	kept := c.fill(n1, testMap, keysIn(q, 500, "kept"))
	c.converged(n1, q, n2)

	// n2 is cut off; n1 takes writes n2 never sees.
	c.net.Isolate(c.addrs[n2])
	diverged := keysIn(p, 50, "diverged")
	for _, k := range diverged {
		if err := c.nodes[n1].Set(ctx, testMap, k, k, store.SetOptions{}, AckPrimary); err != nil {
			t.Fatal(err)
		}
	}
	// Failover: n2 becomes p's primary, n1 its replica.
	t2 := withOwners(t1, p, n2, n1)
	c.setTable(t2, c.ids...)
	c.net.Heal()
	stop := c.writers(seed, 3, keysIn(p, 100, "hot"), 20, AckAll, AckPrimary)
	eventually(t, "n1 to resync from n2", func() bool { return c.syncCount(n2, p, n1) == 1 })
	t.Logf("%d writes", stop())
	c.converged(n2, p, n1)
	for _, k := range diverged {
		if _, ok := c.local(n1, k); ok {
			t.Fatalf("demoted n1 kept %s, a write the new primary never had", k)
		}
	}

	// n1 leaves p; n3 replaces it and n1 drops its copy.
	t3 := withOwners(t2, p, n2, n3)
	c.setTable(t3, c.ids...)
	stop = c.writers(seed+1, 3, keysIn(p, 100, "hot"), 20, AckAll, AckPrimary)
	eventually(t, "n3 to sync", func() bool { return c.syncCount(n2, p, n3) == 1 })
	t.Logf("%d writes", stop())
	c.converged(n2, p, n3)
	eventually(t, "n1 to drop partition p", func() bool { return c.stores[n1].PartitionLen(p) == 0 })
	if c.nodes[n1].Stats().Dropped < 1 {
		t.Fatal("n1 counted no dropped partition")
	}
	// What n1 still owns is untouched.
	if why := c.has(n1, testMap, kept); why != "" {
		t.Fatalf("n1 lost data of a partition it still owns: %s", why)
	}
	c.converged(n1, q, n2)
	c.checkSyncedOnce()
}

// TestBacklogOverflowRestartsSnapshot holds a snapshot in progress while
// writers fill a small backlog: the snapshot is restarted (its log entries
// dropped, so writers go on) up to SnapshotRestarts times, then holds
// the backlog (writes refused with ErrBacklog); the follower refuses log
// entries and is not readable until its copy is complete; once released,
// the copy converges.
func TestBacklogOverflowRestartsSnapshot(t *testing.T) {
	seed := testSeed(t)
	const restarts = 2
	c := newSnapCluster(t, seed, 3, Options{BacklogBytes: 16 << 10, SnapshotBatchEntries: 100, SnapshotRestarts: restarts,
		ReplicateTimeout: 20 * time.Millisecond})
	n1, n3 := c.ids[0], c.ids[2]
	const p = 7
	t1 := uniform(1, n1)
	c.setTable(t1, c.ids...)
	static := c.fill(n1, testMap, keysIn(p, 1000, "static"))

	// Snapshot records to n3 are lost until released.
	var hold atomic.Bool
	hold.Store(true)
	c.net.SetFilter(func(from, to string, kind uint8, payload []byte) bool {
		if to != c.addrs[n3] || !hold.Load() {
			return true
		}
		r, err := DecodeRequest(payload)
		return err != nil || r.Op != OpSnapshot
	})
	t2 := withOwners(t1, p, n1, n3)
	c.setTable(t2, c.ids...)
	stop := c.writers(seed, 2, keysIn(p, 100, "hot"), 256, AckPrimary)
	eventually(t, "the snapshot to restart for the backlog", func() bool { return c.nodes[n1].Stats().Resyncs >= restarts })
	lg := c.nodes[n1].parts[p].log.Load()
	eventually(t, "the backlog to fill once restarts are spent", func() bool { return lg.Admit() != nil })

	// n3 has no complete copy: it refuses entries and does not serve
	// eventual reads from its partial copy.
	resp := c.nodes[n3].serve(context.Background(), c.addrs[n1], &Request{Op: OpReplicate, Epoch: t2.Epoch, Partition: p,
		Entries: []WireEntry{{LSN: lg.Last(), Map: testMap, Key: []byte("bogus"), Value: []byte("x")}}})
	if resp.Status != StatusRetry || resp.Flags&FlagResync == 0 {
		t.Fatalf("entries to a replica without a complete copy: %+v", resp)
	}
	if _, ok := c.local(n3, []byte("bogus")); ok {
		t.Fatal("refused entry applied")
	}
	if c.nodes[n3].Readable(p) {
		t.Fatal("n3 readable in the middle of its snapshot")
	}
	k := keysIn(p, 1, "static")[0]
	fw := c.nodes[n3].Stats().Forwarded
	if v, ok, err := c.nodes[n3].Get(ctxFor(t, 5*time.Second), testMap, k, false); err != nil || !ok || string(v) != string(static[string(k)].Value) {
		t.Fatalf("eventual get via n3 during its snapshot: %q %v %v", v, ok, err)
	}
	if c.nodes[n3].Stats().Forwarded == fw {
		t.Fatal("an eventual read was served from a partial copy")
	}
	if c.syncCount(n1, p, n3) != 0 {
		t.Fatal("OnSynced before the snapshot completed")
	}

	hold.Store(false)
	eventually(t, "n3 to sync", func() bool { return c.syncCount(n1, p, n3) == 1 })
	t.Logf("%d writes", stop())
	c.converged(n1, p, n3)
	if !c.nodes[n3].Readable(p) {
		t.Fatal("n3 not readable after its snapshot")
	}
	if err := c.nodes[n1].Set(ctxFor(t, 5*time.Second), testMap, keysIn(p, 1, "after")[0], []byte("v"), store.SetOptions{}, AckAll); err != nil {
		t.Fatalf("write after the sync: %v", err)
	}
	c.checkSyncedOnce()
}

// TestRebalanceDropsAndCopies grows a two-node cluster (every partition
// on both) to three with ring.Assign: the new node gets complete copies of
// the partitions it now owns, and every node ends up holding exactly the
// partitions it owns.
func TestRebalanceDropsAndCopies(t *testing.T) {
	seed := testSeed(t)
	c := newSnapCluster(t, seed, 3, Options{})
	n1, n2, n3 := c.ids[0], c.ids[1], c.ids[2]
	t1, err := ring.Assign(nil, []ring.NodeID{n1, n2}, testPartitions, 2)
	if err != nil {
		t.Fatal(err)
	}
	c.setTable(t1, c.ids...)
	ctx := ctxFor(t, time.Minute)
	for i := range 3000 {
		k := []byte(fmt.Sprintf("k%d", i))
		if err := c.nodes[c.ids[i%3]].Set(ctx, testMap, k, k, store.SetOptions{}, AckAll); err != nil {
			t.Fatal(err)
		}
	}
	t2, err := ring.Assign(t1, c.ids, testPartitions, 2)
	if err != nil {
		t.Fatal(err)
	}
	// As the control plane does: first add n3 where it will own a copy,
	// and switch to the final table once those copies are synced.
	mid := &ring.Table{Epoch: t1.Epoch + 1, Copies: 3, Owners: make([][]ring.NodeID, testPartitions)}
	var copies []int
	for p := range mid.Owners {
		mid.Owners[p] = slices.Clone(t1.Owners[p])
		if slices.Contains(t2.Owners[p], n3) {
			mid.Owners[p] = append(mid.Owners[p], n3)
			copies = append(copies, p)
		}
	}
	if len(copies) == 0 {
		t.Fatal("n3 got nothing")
	}
	c.setTable(mid, c.ids...)
	for _, p := range copies {
		eventually(t, fmt.Sprintf("n3 to sync partition %d", p), func() bool { return c.syncCount(mid.Owners[p][0], p, n3) == 1 })
	}
	t2.Epoch = mid.Epoch + 1
	c.setTable(t2, c.ids...)
	for p, own := range t2.Owners {
		c.converged(own[0], p, own[1:]...)
	}
	for _, id := range c.ids {
		for p, own := range t2.Owners {
			n := c.stores[id].PartitionLen(p)
			if !slices.Contains(own, id) {
				eventually(t, fmt.Sprintf("%s to drop partition %d", id, p), func() bool { return c.stores[id].PartitionLen(p) == 0 })
			} else if n == 0 {
				t.Fatalf("%s owns partition %d but holds nothing of it", id, p)
			}
		}
	}
	var total int64
	for p, own := range t2.Owners {
		total += c.stores[own[0]].PartitionLen(p)
	}
	if total != 3000 {
		t.Fatalf("primaries hold %d keys, want 3000", total)
	}
	c.checkSyncedOnce()
	for p, own := range t2.Owners {
		for _, f := range own[1:] {
			if c.syncCount(own[0], p, f) != 1 {
				t.Fatalf("partition %d: OnSynced for %s called %d times", p, f, c.syncCount(own[0], p, f))
			}
		}
	}
}
