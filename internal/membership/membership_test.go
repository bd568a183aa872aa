package membership

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

var secret = []byte("test-cluster-secret-0123456789")

type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) on(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

func (r *recorder) has(kind EventKind, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e.Kind == kind && e.Node.ID == id {
			return true
		}
	}
	return false
}

func (r *recorder) last() Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.evs[len(r.evs)-1]
}

func start(t *testing.T, id string, sec []byte, rec *recorder) *Membership {
	t.Helper()
	m, err := New(Options{Meta: Meta{ID: id, DataAddr: id + ":9000", RESPAddr: id + ":7379"}, BindAddr: "127.0.0.1:0",
		Secret: sec, Local: true, OnEvent: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ids(ms []Meta) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestJoinLeaveFail(t *testing.T) {
	recs := []*recorder{{}, {}, {}}
	var ms []*Membership
	for i := range recs {
		ms = append(ms, start(t, fmt.Sprintf("n%d", i+1), secret, recs[i]))
	}
	for _, m := range ms[1:] {
		if _, err := m.Join([]string{ms[0].Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range ms {
		waitFor(t, fmt.Sprintf("n%d to see 3 members", i+1), func() bool { return len(m.Members()) == 3 })
	}
	got := ms[0].Members()
	if !slices.Equal(ids(got), []string{"n1", "n2", "n3"}) || got[1].DataAddr != "n2:9000" || got[1].Role != RoleData {
		t.Fatalf("members: %+v", got)
	}
	// Graceful leave: gone from both lists.
	if err := ms[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 to see n3 leave", func() bool { return recs[0].has(Left, "n3") })
	if a, c := ms[0].Lists(); !slices.Equal(a, []string{"n1", "n2"}) || !slices.Equal(c, []string{"n1", "n2"}) {
		t.Fatalf("after leave: active %v configured %v", a, c)
	}
	// Failure: gone from active, still configured.
	ms[1].Close()
	waitFor(t, "n1 to see n2 fail", func() bool { return recs[0].has(Failed, "n2") })
	a, c := ms[0].Lists()
	if !slices.Equal(a, []string{"n1"}) || !slices.Equal(c, []string{"n1", "n2"}) {
		t.Fatalf("after failure: active %v configured %v", a, c)
	}
	if e := recs[0].last(); e.Kind != Failed || !slices.Equal(e.Active, a) || !slices.Equal(e.Configured, c) {
		t.Fatalf("last event %+v", e)
	}
	ms[0].Forget("n2")
	if _, c := ms[0].Lists(); !slices.Equal(c, []string{"n1"}) {
		t.Fatalf("after forget: configured %v", c)
	}
}

func TestWrongSecretCannotJoin(t *testing.T) {
	a := start(t, "a", secret, &recorder{})
	b := start(t, "b", []byte("another-secret-entirely-0000"), &recorder{})
	if _, err := b.Join([]string{a.Addr()}); err == nil {
		t.Fatal("a node with the wrong secret joined")
	}
	if len(a.Members()) != 1 {
		t.Fatalf("a sees %v", ids(a.Members()))
	}
}

func TestUpdateMeta(t *testing.T) {
	ra := &recorder{}
	a := start(t, "a", secret, ra)
	b := start(t, "b", secret, &recorder{})
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b", func() bool { return len(a.Members()) == 2 })
	if err := b.UpdateMeta(Meta{DataAddr: "new:1", Role: RoleClient}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b's update", func() bool { return ra.has(Updated, "b") })
	if m := a.Members()[1]; m.DataAddr != "new:1" || m.Role != RoleClient || m.ID != "b" {
		t.Fatalf("b's meta at a: %+v", m)
	}
}

func TestOptionsValidation(t *testing.T) {
	if _, err := New(Options{Meta: Meta{ID: "x"}, BindAddr: "127.0.0.1:0", Secret: []byte("short")}); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := New(Options{BindAddr: "127.0.0.1:0", Secret: secret}); err == nil {
		t.Fatal("missing id accepted")
	}
}

// startIn starts a member of cluster ("" = a joining node, which adopts
// the first cluster it meets).
func startIn(t *testing.T, id, cluster string) *Membership {
	t.Helper()
	m, err := New(Options{Meta: Meta{ID: id, DataAddr: id + ":9000", Cluster: cluster}, BindAddr: "127.0.0.1:0",
		Secret: secret, Local: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestClustersDoNotMerge: a node joining adopts its cluster's identity; a
// node of another cluster (same secret: say, a seed restarted without
// --join at its old address) is refused by gossip, both ways.
func TestClustersDoNotMerge(t *testing.T) {
	a := startIn(t, "a", "cluster-one")
	b := startIn(t, "b", "")
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to adopt a's cluster", func() bool { return b.Cluster() == "cluster-one" })
	waitFor(t, "a and b to see each other", func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 })

	c := startIn(t, "c", "cluster-two")
	if _, err := c.Join([]string{a.Addr()}); err == nil {
		t.Fatal("a node of another cluster joined")
	}
	if _, err := a.Join([]string{c.Addr()}); err == nil {
		t.Fatal("a member joined a node of another cluster")
	}
	time.Sleep(300 * time.Millisecond) // gossip rounds
	if got := ids(a.Members()); len(got) != 2 {
		t.Fatalf("a sees %v, want a and b only", got)
	}
	if got := ids(c.Members()); len(got) != 1 {
		t.Fatalf("c sees %v, want itself only", got)
	}
}
