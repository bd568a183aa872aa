package control

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// formed starts n members, records them all up and every copy complete,
// and returns them with the leader.
func formed(t *testing.T, n int) ([]*testNode, *testNode) {
	t.Helper()
	nodes := newCluster(t, n)
	l := leader(t, nodes)
	for _, m := range nodes {
		if err := l.c.MemberUp(member(m), timeout); err != nil {
			t.Fatal(err)
		}
	}
	syncAll(t, l.c)
	return nodes, l
}

// TestReadIndexAfterPartition: a follower cut off while the leader commits
// changes hears the leader again before it has caught up (that is what
// made the data plane's old lease, "last contact with the leader", serve
// stale tables after a split healed). Waiting for ReadIndex's index must
// give it every change committed before the call.
func TestReadIndexAfterPartition(t *testing.T) {
	nodes, l := formed(t, 3)
	var f, other *testNode
	for _, n := range nodes {
		switch {
		case n == l:
		case f == nil:
			f = n
		default:
			other = n
		}
	}
	if _, err := f.c.ReadIndex(timeout); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ReadIndex on a follower: %v, want ErrNotLeader", err)
	}
	idx, err := l.c.ReadIndex(timeout)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.c.WaitApplied(idx, timeout); err != nil {
		t.Fatal(err)
	}

	for round := range 5 {
		// Cut f off; the leader and the other voter commit changes.
		for _, n := range []*testNode{l, other} {
			n.trans.Disconnect(f.trans.LocalAddr())
			f.trans.Disconnect(n.trans.LocalAddr())
		}
		var last uint64
		for i := range 20 {
			name := fmt.Sprintf("m%d-%d", round, i)
			if err := l.c.SetMapConfig(name, MapConfig{MaxKeys: int64(i + 1)}, timeout); err != nil {
				t.Fatal(err)
			}
			last = l.c.State().Maps[name].Version
		}
		if f.c.Applied() >= last {
			t.Fatalf("the cut-off follower applied %d, past the leader's %d", f.c.Applied(), last)
		}
		// Heal, and ask at once: the index covers every committed
		// change, and once f has applied it f's state has them all.
		f.trans.Connect(l.trans.LocalAddr(), l.trans)
		f.trans.Connect(other.trans.LocalAddr(), other.trans)
		l.trans.Connect(f.trans.LocalAddr(), f.trans)
		other.trans.Connect(f.trans.LocalAddr(), f.trans)
		idx, err := l.c.ReadIndex(timeout)
		if err != nil {
			t.Fatal(err)
		}
		if idx < last {
			t.Fatalf("read index %d is before the last committed change %d", idx, last)
		}
		if err := f.c.WaitApplied(idx, timeout); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			name := fmt.Sprintf("m%d-%d", round, i)
			if got := f.c.State().Maps[name].MaxKeys; got != int64(i+1) {
				t.Fatalf("round %d: after applying the read index %d the follower has %s max_keys=%d, want %d", round, idx, name, got, i+1)
			}
		}
	}
}

// TestReadIndexNewLeader: a new leader answers only once it has applied
// what the old one committed (its own commit index lags until an entry of
// its term commits).
func TestReadIndexNewLeader(t *testing.T) {
	nodes, l := formed(t, 3)
	if err := l.c.SetMapConfig("last", MapConfig{MaxKeys: 7}, timeout); err != nil {
		t.Fatal(err)
	}
	v := l.c.State().Maps["last"].Version
	l.c.Close()
	var rest []*testNode
	for _, n := range nodes {
		if n != l {
			n.trans.Disconnect(l.trans.LocalAddr())
			rest = append(rest, n)
		}
	}
	l2 := leader(t, rest)
	idx, err := l2.c.ReadIndex(timeout)
	if err != nil {
		t.Fatal(err)
	}
	if idx < v {
		t.Fatalf("new leader's read index %d is before the old leader's last change %d", idx, v)
	}
	if got := l2.c.State().Maps["last"].MaxKeys; got != 7 {
		t.Fatalf("new leader answered before applying the old leader's change (max_keys=%d)", got)
	}
}

type bufSink struct{ bytes.Buffer }

func (*bufSink) ID() string    { return "test" }
func (*bufSink) Cancel() error { return nil }
func (*bufSink) Close() error  { return nil }

// TestSnapshotKeepsAppliedIndex: a node restored from a snapshot knows
// which commands it holds (else it could never reach a read index).
func TestSnapshotKeepsAppliedIndex(t *testing.T) {
	f := newFSM(31, 2, nil)
	for i := uint64(1); i <= 3; i++ {
		data := []byte(fmt.Sprintf(`{"op":"member_up","member":{"id":"n%d","data":"d%d"}}`, i, i))
		if res := f.Apply(&raft.Log{Index: i * 2, Type: raft.LogCommand, Data: data}); res != nil {
			if err, ok := res.(error); ok {
				t.Fatal(err)
			}
		}
	}
	if f.appliedIndex() != 6 {
		t.Fatalf("applied %d, want 6", f.appliedIndex())
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM(31, 2, nil)
	if err := g.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	if g.appliedIndex() != 6 || len(g.state.Members) != 3 {
		t.Fatalf("restored applied=%d members=%d, want 6 and 3", g.appliedIndex(), len(g.state.Members))
	}
}

// TestRaftConnectionsOfAnotherClusterRefused: a Raft connection carries
// the dialer's cluster identity; the acceptor drops another cluster's (and
// takes its own, and one from a node that has none yet).
func TestRaftConnectionsOfAnotherClusterRefused(t *testing.T) {
	secret := []byte("raft-stream-secret-0123456789")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc := &streamLayer{Listener: ln, secret: secret, cluster: func() string { return "one" }, log: slog.New(slog.DiscardHandler)}
	defer acc.Close()
	got := make(chan net.Conn, 4)
	go func() {
		for {
			nc, err := acc.Accept()
			if err != nil {
				return
			}
			got <- nc
		}
	}()
	dial := func(cluster string) {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d := &streamLayer{Listener: l, secret: secret, cluster: func() string { return cluster }, log: slog.New(slog.DiscardHandler)}
		nc, err := d.Dial(raft.ServerAddress(ln.Addr().String()), 2*time.Second)
		if err != nil {
			t.Fatalf("dial as %q: %v", cluster, err)
		}
		t.Cleanup(func() { nc.Close() })
	}
	for _, tc := range []struct {
		cluster string
		taken   bool
	}{{"two", false}, {"one", true}, {"", true}} {
		dial(tc.cluster)
		select {
		case nc := <-got:
			nc.Close()
			if !tc.taken {
				t.Fatalf("a connection from cluster %q was accepted by cluster one", tc.cluster)
			}
		case <-time.After(500 * time.Millisecond):
			if tc.taken {
				t.Fatalf("a connection from cluster %q was refused by cluster one", tc.cluster)
			}
		}
	}
}
