package control

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/engramdb/engram/internal/ring"
)

const timeout = 5 * time.Second

type testNode struct {
	id    string
	trans *raft.InmemTransport
	c     *Control
}

func newCluster(t *testing.T, n int) []*testNode {
	t.Helper()
	return newClusterWith(t, n, func(*Options) {})
}

// newClusterWith starts n control-plane members on raft's in-memory
// transport (31 partitions, 2 copies); edit adjusts each one's options.
func newClusterWith(t *testing.T, n int, edit func(*Options)) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := 0; i < n; i++ {
		_, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("n%d", i+1)))
		nodes = append(nodes, &testNode{id: fmt.Sprintf("n%d", i+1), trans: tr})
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
	for i, nd := range nodes {
		o := Options{ID: nd.id, Transport: nd.trans, Bootstrap: i == 0, Partitions: 31, Copies: 2, Fast: true}
		edit(&o)
		c, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		nd.c = c
		t.Cleanup(func() { c.Close() })
	}
	return nodes
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func leader(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	var l *testNode
	waitFor(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.c != nil && n.c.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

func member(n *testNode) Member {
	return Member{ID: n.id, RaftAddr: string(n.trans.LocalAddr()), DataAddr: n.id + ":data"}
}

func sameTable(a, b *ring.Table) bool {
	if a == nil || b == nil || a.Epoch != b.Epoch || len(a.Owners) != len(b.Owners) {
		return false
	}
	for i := range a.Owners {
		if !slices.Equal(a.Owners[i], b.Owners[i]) {
			return false
		}
	}
	return true
}

// syncAll reports every pending copy as complete, as the partitions'
// primaries would once they have sent them, until none is left.
func syncAll(t *testing.T, c *Control) {
	t.Helper()
	for range 10 {
		st := c.State()
		pend := st.Pending()
		if len(pend) == 0 {
			return
		}
		var rs []SyncReport
		for _, cp := range pend {
			rs = append(rs, SyncReport{Partition: cp.Partition, Node: string(cp.Node), Epoch: st.Table.Epoch})
		}
		n, err := c.MarkSynced(rs, timeout)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(rs) {
			t.Fatalf("%d of %d current reports applied", n, len(rs))
		}
	}
	t.Fatalf("copies still pending: %v", c.State().Pending())
}

func TestControlPlaneLifecycle(t *testing.T) {
	nodes := newCluster(t, 4)
	l := leader(t, nodes)
	if l.id != "n1" {
		t.Fatalf("leader %s, want the bootstrapping node", l.id)
	}
	for _, n := range nodes {
		if err := l.c.MemberUp(member(n), timeout); err != nil {
			t.Fatalf("member up %s: %v", n.id, err)
		}
	}
	voters, _ := l.c.Voters()
	if !slices.Equal(voters, []string{"n1", "n2", "n3"}) {
		t.Fatalf("voters %v, want the first three", voters)
	}
	syncAll(t, l.c)
	if st := l.c.State(); !st.Settled() {
		t.Fatalf("not settled after every copy was reported: %s", st)
	}
	want := l.c.State().Table
	if got := l.c.State().DataMembers(); len(got) != 4 {
		t.Fatalf("data members %v", got)
	}
	for _, n := range nodes {
		waitFor(t, n.id+" to apply the table", func() bool { return sameTable(n.c.State().Table, want) })
	}
	// Only the leader changes the configuration.
	err := nodes[3].c.MemberUp(Member{ID: "x"}, timeout)
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower member up: %v", err)
	}
	if err := l.c.SetMapConfig("users", MapConfig{MaxTTL: 60}, timeout); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n4 to see the map config", func() bool { return nodes[3].c.State().Maps["users"].MaxTTL == 60 })

	// The leader dies: a new one is elected among the remaining managers
	// and fails the old one over.
	l.c.Close()
	for _, n := range nodes {
		n.trans.Disconnect(l.trans.LocalAddr())
	}
	rest := slices.DeleteFunc(slices.Clone(nodes), func(n *testNode) bool { return n == l })
	l2 := leader(t, rest)
	if l2.id == "n4" {
		t.Fatal("a non-voter became leader")
	}
	if err := l2.c.MemberDown(l.id, false, timeout); err != nil {
		t.Fatal(err)
	}
	st := l2.c.State()
	if st.Members[l.id].Alive || st.Table.Epoch <= want.Epoch {
		t.Fatalf("after failover: %s", st)
	}
	for p, own := range st.Table.Owners {
		if slices.Contains(own, ring.NodeID(l.id)) {
			t.Fatalf("partition %d still owned by the dead node: %v", p, own)
		}
		// Failover promotes a node that already holds the data. (Other
		// partitions may move for balance: planned moves, which the data
		// plane migrates before switching.)
		if want.Primary(p) == ring.NodeID(l.id) && !slices.Contains(want.Owners[p], own[0]) {
			t.Fatalf("partition %d: new primary %s held no copy (owners were %v)", p, own[0], want.Owners[p])
		}
	}
	voters, _ = l2.c.Voters()
	if !slices.Equal(voters, []string{"n2", "n3", "n4"}) {
		t.Fatalf("voters after failover %v, want n4 promoted", voters)
	}
	for _, n := range rest {
		waitFor(t, n.id+" to apply the failover table", func() bool { return sameTable(n.c.State().Table, st.Table) })
	}
	// The configured list keeps the failed node; a graceful leave forgets.
	if _, ok := st.Members[l.id]; !ok {
		t.Fatal("failed node forgotten")
	}
	if err := l2.c.MemberDown(l.id, true, timeout); err != nil {
		t.Fatal(err)
	}
	if _, ok := l2.c.State().Members[l.id]; ok {
		t.Fatal("left node still configured")
	}
}
