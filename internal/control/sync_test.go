package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/engramdb/engram/internal/ring"
)

// ids parses a space-separated owner list.
func ids(s string) []ring.NodeID {
	var out []ring.NodeID
	for _, f := range strings.Fields(s) {
		out = append(out, ring.NodeID(f))
	}
	return out
}

// owners parses one owner list per partition.
func owners(ps ...string) [][]ring.NodeID {
	out := make([][]ring.NodeID, len(ps))
	for i, p := range ps {
		out[i] = ids(p)
	}
	return out
}

// TestDeriveRules checks the derivation of the effective table, one rule
// per case.
func TestDeriveRules(t *testing.T) {
	cases := []struct {
		name         string
		alive        string
		target, prev [][]ring.NodeID // prev nil: no table yet
		synced       [][]ring.NodeID
		want, wantS  [][]ring.NodeID
		bump         bool
	}{
		{
			name: "new cluster: every target copy counts as complete", alive: "a b",
			target: owners("a b", "b a"),
			want:   owners("a b", "b a"), wantS: owners("a b", "b a"),
		},
		{
			name: "join: the newcomer is not primary before its copy is complete", alive: "a b c",
			target: owners("c a"), prev: owners("a b"), synced: owners("a b"),
			want: owners("a c b"), wantS: owners("a b"), bump: true,
		},
		{
			name: "complete target primary leads; complete former owners stay", alive: "a b c d",
			target: owners("c d"), prev: owners("a c d b"), synced: owners("a b c"),
			want: owners("c d a b"), wantS: owners("c a b"), bump: true,
		},
		{
			name: "every target copy complete: former owners are dropped", alive: "a b c",
			target: owners("c a"), prev: owners("a c b"), synced: owners("a b c"),
			want: owners("c a"), wantS: owners("c a"), bump: true,
		},
		{
			name: "primary failed: a complete copy leads, not the filling target primary", alive: "b c",
			target: owners("c b"), prev: owners("a c b"), synced: owners("a b"),
			want: owners("b c"), wantS: owners("b"), bump: true,
		},
		{
			name: "primary failed: a complete former owner leads", alive: "b c d",
			target: owners("c b"), prev: owners("a c d"), synced: owners("a d"),
			want: owners("d c b"), wantS: owners("d"), bump: true,
		},
		{
			name: "no live copy: the target primary starts it empty", alive: "c d",
			target: owners("c d"), prev: owners("a b"), synced: owners("a b"),
			want: owners("c d"), wantS: owners("c"), bump: true,
		},
		{
			name: "a node that was not an owner does not count as complete", alive: "a b c",
			target: owners("c a"), prev: owners("a b"), synced: owners("a b c"),
			want: owners("a c b"), wantS: owners("a b"), bump: true,
		},
		{
			name: "nothing changed: same epoch", alive: "a b c",
			target: owners("a b", "c a"), prev: owners("a b", "a c b"), synced: owners("a b", "a b"),
			want: owners("a b", "a c b"), wantS: owners("a b", "a b"),
		},
		{
			name: "several partitions change: one epoch", alive: "a b c",
			target: owners("c a", "c b"), prev: owners("a c b", "b c a"), synced: owners("a b c", "a b c"),
			want: owners("c a", "c b"), wantS: owners("c a", "c b"), bump: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := State{Members: map[string]Member{}}
			for _, n := range strings.Fields(tc.alive) {
				s.Members[n] = Member{ID: n, Alive: true}
			}
			s.Target = &ring.Table{Epoch: 3, Copies: 2, Owners: tc.target}
			const epoch = 7
			if tc.prev != nil {
				s.Table = &ring.Table{Epoch: epoch, Copies: 2, Owners: tc.prev}
				s.Synced = tc.synced
			}
			s.derive(len(tc.target), 2)
			if !slices.EqualFunc(s.Table.Owners, tc.want, slices.Equal) {
				t.Errorf("owners %v, want %v", s.Table.Owners, tc.want)
			}
			if !slices.EqualFunc(s.Synced, tc.wantS, slices.Equal) {
				t.Errorf("synced %v, want %v", s.Synced, tc.wantS)
			}
			wantEpoch := uint64(epoch)
			switch {
			case tc.prev == nil:
				wantEpoch = 1
			case tc.bump:
				wantEpoch++
			}
			if s.Table.Epoch != wantEpoch {
				t.Errorf("epoch %d, want %d", s.Table.Epoch, wantEpoch)
			}
			checkState(t, s, 2)
		})
	}
}

// checkState checks what must hold in every state.
func checkState(t *testing.T, s State, copies int) {
	t.Helper()
	if s.Table == nil {
		return
	}
	alive := s.DataMembers()
	width := min(copies, len(alive))
	for p, own := range s.Table.Owners {
		if len(alive) > 0 && len(own) == 0 {
			t.Fatalf("partition %d has no owner with %d live members", p, len(alive))
		}
		for i, n := range own {
			if !slices.Contains(alive, n) {
				t.Fatalf("partition %d owned by %s, not a live data member: %v", p, n, own)
			}
			if slices.Contains(own[:i], n) {
				t.Fatalf("partition %d lists %s twice: %v", p, n, own)
			}
			if since, ok := s.OwnerSince[p][n]; !ok || since > s.Table.Epoch {
				t.Fatalf("partition %d: owner %s since %d (%v), epoch %d", p, n, since, ok, s.Table.Epoch)
			}
			if !slices.Contains(s.Target.Owners[p], n) && !s.IsSynced(p, n) {
				t.Fatalf("partition %d: %s is neither a target owner nor complete (owners %v, target %v, synced %v)",
					p, n, own, s.Target.Owners[p], s.Synced[p])
			}
		}
		if len(s.OwnerSince[p]) != len(own) {
			t.Fatalf("partition %d: since %v for owners %v", p, s.OwnerSince[p], own)
		}
		if len(own) > 0 && !s.IsSynced(p, own[0]) {
			t.Fatalf("partition %d: primary %s holds no complete copy (owners %v, synced %v)", p, own[0], own, s.Synced[p])
		}
		for _, n := range s.Synced[p] {
			if !slices.Contains(own, n) {
				t.Fatalf("partition %d: complete copy on %s, not an owner (%v)", p, n, own)
			}
		}
		if len(s.Target.Owners[p]) != width {
			t.Fatalf("partition %d: target %v, want %d owners", p, s.Target.Owners[p], width)
		}
		for _, n := range s.Target.Owners[p] {
			if !slices.Contains(own, n) {
				t.Fatalf("partition %d: target owner %s missing from %v", p, n, own)
			}
		}
	}
}

// checkStep checks a transition: reported is what was reported complete
// (nil if nothing), lost the nodes that went down in this step.
func checkStep(t *testing.T, prev, cur State, copies int, reported map[Copy]bool, lost bool) {
	t.Helper()
	if prev.Table == nil || cur.Table == nil {
		return
	}
	if sameOwners(prev.Table, cur.Table) {
		if cur.Table.Epoch != prev.Table.Epoch {
			t.Fatalf("epoch %d -> %d without an owner change", prev.Table.Epoch, cur.Table.Epoch)
		}
	} else if cur.Table.Epoch != prev.Table.Epoch+1 {
		t.Fatalf("owners changed, epoch %d -> %d", prev.Table.Epoch, cur.Table.Epoch)
	}
	alive := cur.DataMembers()
	width := min(copies, len(alive))
	for p := range cur.Table.Owners {
		before := slices.DeleteFunc(slices.Clone(prev.Synced[p]), func(n ring.NodeID) bool { return !slices.Contains(alive, n) })
		for _, n := range cur.Synced[p] {
			// A copy becomes complete by a report, or as the only one
			// when no live node held the partition.
			if !slices.Contains(before, n) && !reported[Copy{p, n}] && !(len(before) == 0 && n == cur.Table.Primary(p)) {
				t.Fatalf("partition %d: %s counted complete without a report (synced %v -> %v)", p, n, prev.Synced[p], cur.Synced[p])
			}
		}
		if !lost && len(cur.Synced[p]) < min(len(prev.Synced[p]), width) {
			t.Fatalf("partition %d: complete copies dropped from %v to %v", p, prev.Synced[p], cur.Synced[p])
		}
	}
}

// harness drives the state machine directly, without raft, recording
// the log.
type harness struct {
	t      *testing.T
	f      *fsm
	copies int
	log    [][]byte
}

func newHarness(t *testing.T, partitions, copies int) *harness {
	return &harness{t: t, f: newFSM(partitions, copies, nil), copies: copies}
}

func (h *harness) apply(cmd command) any {
	h.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	h.log = append(h.log, b)
	res := h.f.Apply(&raft.Log{Index: uint64(len(h.log)), Data: b})
	if err, ok := res.(error); ok {
		h.t.Fatal(err)
	}
	return res
}

func (h *harness) state() State {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	return h.f.state.Clone()
}

func (h *harness) up(id string) {
	h.t.Helper()
	h.apply(command{Op: opMemberUp, Member: &Member{ID: id, RaftAddr: id, DataAddr: id, Alive: true}})
}

func (h *harness) down(id string, left bool) {
	h.t.Helper()
	h.apply(command{Op: opMemberDown, ID: id, Left: left})
}

func (h *harness) mark(rs ...SyncReport) int {
	h.t.Helper()
	n, _ := h.apply(command{Op: opMarkSynced, Reports: rs}).(int)
	return n
}

// syncAll reports every pending copy until none is left.
func (h *harness) syncAll() {
	h.t.Helper()
	for range 10 {
		st := h.state()
		if len(st.Pending()) == 0 {
			return
		}
		var rs []SyncReport
		for _, c := range st.Pending() {
			rs = append(rs, SyncReport{Partition: c.Partition, Node: string(c.Node), Epoch: st.Table.Epoch})
		}
		h.mark(rs...)
		checkStep(h.t, st, h.state(), h.copies, allCopies(st), false)
	}
	h.t.Fatal("copies still pending")
}

func TestStaleSyncReportsIgnored(t *testing.T) {
	h := newHarness(t, 8, 2)
	for _, n := range []string{"a", "b", "c"} {
		h.up(n)
	}
	h.syncAll()
	h.up("d")
	st := h.state()
	pend := st.Pending()
	if len(pend) == 0 {
		t.Fatal("nothing to fill after a join")
	}
	c := pend[0]
	e := st.Table.Epoch
	notOwner := ring.NodeID("a")
	for _, n := range []ring.NodeID{"a", "b", "c"} {
		if !slices.Contains(st.Table.Owners[c.Partition], n) {
			notOwner = n
		}
	}
	for _, tc := range []struct {
		name string
		r    SyncReport
	}{
		{"not an owner", SyncReport{c.Partition, string(notOwner), e}},
		{"unknown node", SyncReport{c.Partition, "zz", e}},
		{"future epoch", SyncReport{c.Partition, string(c.Node), e + 1}},
		{"before its ownership", SyncReport{c.Partition, string(c.Node), e - 1}},
		{"no such partition", SyncReport{8, string(c.Node), e}},
		{"negative partition", SyncReport{-1, string(c.Node), e}},
	} {
		if n := h.mark(tc.r); n != 0 {
			t.Errorf("%s: %d applied", tc.name, n)
		}
	}
	if !reflect.DeepEqual(h.state(), st) {
		t.Fatal("ignored reports changed the state")
	}
	// A good report and its repetition.
	if n := h.mark(SyncReport{c.Partition, string(c.Node), e}, SyncReport{c.Partition, string(c.Node), e}); n != 1 {
		t.Fatalf("%d applied, want 1", n)
	}
	if n := h.mark(SyncReport{c.Partition, string(c.Node), e}); n != 0 {
		t.Fatalf("repeated report: %d applied", n)
	}

	// d fails and comes back: it holds nothing, and a report about its
	// earlier copy (sent before the failure, committed after) is ignored.
	h.syncAll()
	st = h.state()
	var p int
	for p = range st.Table.Owners {
		if slices.Contains(st.Table.Owners[p], "d") {
			break
		}
	}
	old := st.Table.Epoch
	h.down("d", false)
	h.up("d")
	st = h.state()
	for q := range st.Synced {
		if st.IsSynced(q, "d") {
			t.Fatalf("d came back and counts as holding partition %d", q)
		}
	}
	if !slices.Contains(st.Table.Owners[p], "d") {
		// The plan need not give d the same partition back; find one
		// it owns now.
		for p = range st.Table.Owners {
			if slices.Contains(st.Table.Owners[p], "d") {
				break
			}
		}
	}
	if n := h.mark(SyncReport{p, "d", old}); n != 0 {
		t.Fatalf("report from before d's failure applied (%d)", n)
	}
	if n := h.mark(SyncReport{p, "d", st.Table.Epoch}); n != 1 {
		t.Fatalf("current report: %d applied", n)
	}
}

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func snapshotRestore(t *testing.T, f *fsm) *fsm {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM(f.partitions, f.copies, nil)
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSnapshotRestore(t *testing.T) {
	h := newHarness(t, 16, 2)
	for _, n := range []string{"a", "b", "c"} {
		h.up(n)
	}
	h.syncAll()
	h.up("d")
	h.apply(command{Op: opMapConfig, Map: "users", MapConfig: &MapConfig{MaxKeys: 9}})
	pend := h.state().Pending()
	h.mark(SyncReport{pend[0].Partition, string(pend[0].Node), h.state().Table.Epoch})
	h.down("b", false)
	want := h.state()
	if want.Migrations() == 0 {
		t.Fatal("test wants a move in progress")
	}
	g := snapshotRestore(t, h.f)
	if got := g.state; !reflect.DeepEqual(got, want) {
		t.Fatalf("restored state differs:\n got %+v\nwant %+v", got, want)
	}
	// Both go on identically.
	h2 := &harness{t: t, f: g, copies: 2}
	for _, hh := range []*harness{h, h2} {
		hh.up("e")
		hh.syncAll()
	}
	if !reflect.DeepEqual(h.state(), h2.state()) {
		t.Fatal("restored state machine diverged")
	}
	if !h.state().Settled() {
		t.Fatal("not settled")
	}

	// A snapshot from before the sync state existed: the table is taken
	// as complete.
	legacy := State{Members: want.Members, Table: want.Target, Maps: want.Maps}
	b, _ := json.Marshal(struct {
		Members map[string]Member    `json:"members"`
		Table   *ring.Table          `json:"table"`
		Maps    map[string]MapConfig `json:"maps"`
	}{legacy.Members, legacy.Table, legacy.Maps})
	g = newFSM(16, 2, nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	if !g.state.Settled() || !sameOwners(g.state.Table, want.Target) {
		t.Fatalf("legacy snapshot: %s", g.state)
	}
}

// TestRandomChanges applies random joins, failures, returns, departures
// and (partly stale) sync reports, checking the invariants after every
// step, that replaying the log (from the start or from a snapshot) gives
// the same state, and that the table settles once every copy is reported.
func TestRandomChanges(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			const parts = 23
			copies := 2 + int(seed%2)
			h := newHarness(t, parts, copies)
			next := 0
			newNode := func() string { next++; return fmt.Sprintf("n%02d", next) }
			for range 3 {
				h.up(newNode())
			}
			h.syncAll()
			// since[p][n]: when n last became an owner of p, as seen
			// from the outside, to judge which reports are legitimate.
			since := make([]map[ring.NodeID]uint64, parts)
			observe := func(prev, cur State) {
				for p, own := range cur.Table.Owners {
					if since[p] == nil {
						since[p] = map[ring.NodeID]uint64{}
					}
					for _, n := range own {
						if prev.Table == nil || !slices.Contains(prev.Table.Owners[p], n) {
							since[p][n] = cur.Table.Epoch
						}
					}
					for n := range since[p] {
						if !slices.Contains(own, n) {
							delete(since[p], n)
						}
					}
				}
			}
			observe(State{}, h.state())
			var snapAt int
			var snapFSM *fsm
			for step := range 300 {
				prev := h.state()
				var dead, alive []string
				for _, id := range slices.Sorted(maps.Keys(prev.Members)) {
					if prev.Members[id].Alive {
						alive = append(alive, id)
					} else {
						dead = append(dead, id)
					}
				}
				var reported map[Copy]bool
				lost := false
				switch r := rng.Float64(); {
				case r < 0.12 && len(alive) < 7:
					h.up(newNode())
				case r < 0.2 && len(dead) > 0:
					id := dead[rng.IntN(len(dead))]
					h.up(id)
					for p := range parts {
						if h.state().IsSynced(p, ring.NodeID(id)) {
							t.Fatalf("step %d: %s came back holding partition %d", step, id, p)
						}
					}
				case r < 0.3 && len(alive) > 1:
					h.down(alive[rng.IntN(len(alive))], rng.IntN(4) == 0)
					lost = true
				case r < 0.33 && len(dead) > 0:
					h.down(dead[rng.IntN(len(dead))], true)
				default:
					reported = map[Copy]bool{}
					var rs []SyncReport
					want := 0
					for _, c := range prev.Pending() {
						if rng.IntN(3) == 0 {
							continue
						}
						e := prev.Table.Epoch
						if rng.IntN(3) == 0 {
							e -= uint64(rng.IntN(int(e))) // maybe stale
						}
						rs = append(rs, SyncReport{c.Partition, string(c.Node), e})
						if !reported[c] && e >= since[c.Partition][c.Node] {
							want++
							reported[c] = true
						}
					}
					// Nonsense: a node that owns nothing of p.
					p := rng.IntN(parts)
					for _, id := range alive {
						if !slices.Contains(prev.Table.Owners[p], ring.NodeID(id)) {
							rs = append(rs, SyncReport{p, id, prev.Table.Epoch})
							break
						}
					}
					if got := h.mark(rs...); got != want {
						t.Fatalf("step %d: %d reports applied, want %d (%v)", step, got, want, rs)
					}
				}
				cur := h.state()
				checkState(t, cur, copies)
				checkStep(t, prev, cur, copies, reported, lost)
				observe(prev, cur)
				if step == 150 {
					snapAt, snapFSM = len(h.log), snapshotRestore(t, h.f)
				}
			}
			h.syncAll()
			end := h.state()
			checkState(t, end, copies)
			if !end.Settled() || end.Migrations() != 0 || len(end.Pending()) != 0 {
				t.Fatalf("not settled after reporting everything: %s", end)
			}
			// Determinism: the same log gives the same state, from the
			// start and from the snapshot.
			replay := newFSM(parts, copies, nil)
			for i, b := range h.log {
				replay.Apply(&raft.Log{Index: uint64(i + 1), Data: b})
			}
			for i, b := range h.log[snapAt:] {
				snapFSM.Apply(&raft.Log{Index: uint64(snapAt + i + 1), Data: b})
			}
			for name, f := range map[string]*fsm{"replay": replay, "snapshot": snapFSM} {
				if !reflect.DeepEqual(f.state, end) {
					t.Fatalf("%s differs from the original", name)
				}
			}
		})
	}
}

// recorder collects every state a node publishes through OnChange.
type recorder struct {
	mu     sync.Mutex
	states []State
}

func (r *recorder) onChange(s State) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
}

func (r *recorder) since(i int) []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states[i:])
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.states)
}

// startCluster starts 4 control-plane nodes, records the leader's
// published states, and brings n1..n3 up with every copy complete.
func startCluster(t *testing.T) ([]*testNode, *testNode, *recorder) {
	t.Helper()
	rec := &recorder{}
	nodes := newClusterWith(t, 4, func(o *Options) {
		if o.ID == "n1" {
			o.OnChange = rec.onChange
		}
	})
	l := leader(t, nodes)
	for _, n := range nodes[:3] {
		if err := l.c.MemberUp(member(n), timeout); err != nil {
			t.Fatal(err)
		}
	}
	syncAll(t, l.c)
	if st := l.c.State(); !st.Settled() {
		t.Fatalf("3 nodes not settled: %s", st)
	}
	return nodes, l, rec
}

// checkPublished checks every state published from index from on, in
// order, starting from prev.
func checkPublished(t *testing.T, rec *recorder, from int, prev State) {
	t.Helper()
	for _, st := range rec.since(from) {
		checkState(t, st, 2)
		checkStep(t, prev, st, 2, allCopies(prev), false)
		for p := range st.Table.Owners {
			if len(st.Synced[p]) < min(2, len(st.DataMembers())) {
				t.Fatalf("epoch %d: partition %d down to complete copies %v", st.Table.Epoch, p, st.Synced[p])
			}
		}
		prev = st
	}
}

// allCopies allows any pending copy of s to become complete.
func allCopies(s State) map[Copy]bool {
	m := map[Copy]bool{}
	for _, c := range s.Pending() {
		m[c] = true
	}
	return m
}

func TestJoinWaitsForCopies(t *testing.T) {
	nodes, l, rec := startCluster(t)
	before := l.c.State()
	from := rec.len()
	if err := l.c.MemberUp(member(nodes[3]), timeout); err != nil {
		t.Fatal(err)
	}
	st := l.c.State()
	if st.Table.Epoch != before.Table.Epoch+1 {
		t.Fatalf("epoch %d after %d", st.Table.Epoch, before.Table.Epoch)
	}
	prim, _ := st.Table.Load()
	if prim["n4"] != 0 {
		t.Fatalf("n4 leads %d partitions before holding any", prim["n4"])
	}
	tprim, _ := st.Target.Load()
	if tprim["n4"] < 31/4 {
		t.Fatalf("the target gives n4 %d primaries", tprim["n4"])
	}
	if st.Migrations() == 0 || st.Migrations() != len(st.Pending()) {
		t.Fatalf("%d migrations, %d pending", st.Migrations(), len(st.Pending()))
	}
	// Report the copies a few at a time, as primaries finish them. Each
	// batch changes the epoch at most once.
	for {
		st := l.c.State()
		pend := st.Pending()
		if len(pend) == 0 {
			break
		}
		var rs []SyncReport
		for _, c := range pend[:min(3, len(pend))] {
			rs = append(rs, SyncReport{c.Partition, string(c.Node), st.Table.Epoch})
		}
		// A stale one: an owner that was never n4's replica.
		rs = append(rs, SyncReport{pend[0].Partition, "n4", st.Table.Epoch + 5})
		n, err := l.c.MarkSynced(rs, timeout)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(rs)-1 {
			t.Fatalf("%d of %d reports applied", n, len(rs)-1)
		}
		if e := l.c.State().Table.Epoch; e > st.Table.Epoch+1 {
			t.Fatalf("one batch moved the epoch from %d to %d", st.Table.Epoch, e)
		}
	}
	checkPublished(t, rec, from, before)
	end := l.c.State()
	if !end.Settled() {
		t.Fatalf("not settled: %s", end)
	}
	prim, repl := end.Table.Load()
	for _, n := range []ring.NodeID{"n1", "n2", "n3", "n4"} {
		if prim[n] < 7 || prim[n] > 8 || repl[n] < 7 || repl[n] > 8 {
			t.Fatalf("unbalanced after the join: primaries %v replicas %v", prim, repl)
		}
	}
	// Followers apply the same tables.
	waitFor(t, "n4 to apply the final table", func() bool { return sameTable(nodes[3].c.State().Table, end.Table) })
}

func TestFailoverPromotesCompleteReplica(t *testing.T) {
	nodes, l, _ := startCluster(t)
	before := l.c.State()
	victim := nodes[1].id
	if err := l.c.MemberDown(victim, false, timeout); err != nil {
		t.Fatal(err)
	}
	st := l.c.State()
	checkState(t, st, 2)
	if st.Table.Epoch != before.Table.Epoch+1 {
		t.Fatalf("epoch %d after %d", st.Table.Epoch, before.Table.Epoch)
	}
	n := 0
	for p, own := range before.Table.Owners {
		if own[0] != ring.NodeID(victim) {
			continue
		}
		n++
		if got := st.Table.Primary(p); got != own[1] || !st.IsSynced(p, got) {
			t.Fatalf("partition %d: primary %s after %v failed, want the replica %s", p, got, own, own[1])
		}
	}
	if n == 0 {
		t.Fatal("the victim led nothing")
	}
}

func TestFailureDuringMove(t *testing.T) {
	nodes, l, rec := startCluster(t)
	if err := l.c.MemberUp(member(nodes[3]), timeout); err != nil {
		t.Fatal(err)
	}
	// A third of the copies reach n4.
	st := l.c.State()
	var rs []SyncReport
	for _, c := range st.Pending() {
		if c.Partition%3 == 0 {
			rs = append(rs, SyncReport{c.Partition, string(c.Node), st.Table.Epoch})
		}
	}
	if _, err := l.c.MarkSynced(rs, timeout); err != nil {
		t.Fatal(err)
	}
	before := l.c.State()
	from := rec.len()
	// A node fails while partitions it leads are moving to n4, and
	// partitions it is to lead are still being copied to n4.
	victim := ""
	for _, v := range []ring.NodeID{"n2", "n3"} {
		leaving, arriving := 0, 0
		for p, own := range before.Table.Owners {
			if own[0] == v && before.Target.Primary(p) == "n4" && !before.IsSynced(p, "n4") {
				leaving++
			}
			if before.Target.Primary(p) == v && slices.Contains(before.Target.Owners[p], "n4") && !before.IsSynced(p, "n4") {
				arriving++
			}
		}
		if leaving > 0 && arriving > 0 {
			victim = string(v)
			break
		}
	}
	if victim == "" {
		t.Fatal("no node has moves in progress both ways")
	}
	if err := l.c.MemberDown(victim, false, timeout); err != nil {
		t.Fatal(err)
	}
	st = l.c.State()
	checkState(t, st, 2)
	for p, own := range st.Table.Owners {
		if !slices.Contains(before.Synced[p], own[0]) {
			t.Fatalf("partition %d: new primary %s held no complete copy (synced were %v)", p, own[0], before.Synced[p])
		}
		if len(st.Synced[p]) == 0 {
			t.Fatalf("partition %d lost its data", p)
		}
		// The plan, too, promotes a node that has the data.
		if before.Target.Primary(p) == ring.NodeID(victim) && !slices.Contains(before.Synced[p], st.Target.Primary(p)) {
			t.Fatalf("partition %d: target primary %s after %s failed, complete copies were %v", p, st.Target.Primary(p), victim, before.Synced[p])
		}
	}
	for _, s := range rec.since(from) {
		checkStep(t, before, s, 2, nil, true)
	}
	syncAll(t, l.c)
	if end := l.c.State(); !end.Settled() {
		t.Fatalf("not settled: %s", end)
	}
}
