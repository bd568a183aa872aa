package ring

import (
	"fmt"
	"slices"
	"testing"
)

func nodes(n int) []NodeID {
	out := make([]NodeID, n)
	for i := range out {
		out[i] = NodeID(fmt.Sprintf("node-%d", i+1))
	}
	return out
}

func checkTable(t *testing.T, tb *Table, members []NodeID, copies int) {
	t.Helper()
	width := min(copies, len(members))
	for p, own := range tb.Owners {
		if len(own) != width {
			t.Fatalf("partition %d has %d owners, want %d", p, len(own), width)
		}
		seen := map[NodeID]bool{}
		for _, n := range own {
			if seen[n] {
				t.Fatalf("partition %d lists %s twice: %v", p, n, own)
			}
			if !slices.Contains(members, n) {
				t.Fatalf("partition %d owned by non-member %s", p, n)
			}
			seen[n] = true
		}
	}
	prim, repl := tb.Load()
	for _, m := range members {
		lo, hi := len(tb.Owners)/len(members), (len(tb.Owners)+len(members)-1)/len(members)
		if prim[m] < lo || prim[m] > hi {
			t.Fatalf("%s has %d primaries, want %d..%d", m, prim[m], lo, hi)
		}
		rt := len(tb.Owners) * (width - 1)
		rlo, rhi := rt/len(members), (rt+len(members)-1)/len(members)
		if repl[m] < rlo || repl[m] > rhi {
			t.Fatalf("%s has %d replicas, want about %d..%d", m, repl[m], rlo, rhi)
		}
	}
}

func TestAssignBalancedAndValid(t *testing.T) {
	for _, c := range []struct{ n, parts, copies int }{{1, 271, 2}, {2, 271, 2}, {3, 271, 2}, {5, 271, 3}, {7, 271, 2}, {3, 10, 3}, {4, 271, 1}} {
		t.Run(fmt.Sprintf("%dnodes_%dparts_%dcopies", c.n, c.parts, c.copies), func(t *testing.T) {
			tb, err := Assign(nil, nodes(c.n), c.parts, c.copies)
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, tb, nodes(c.n), c.copies)
		})
	}
}

func TestAssignMovesLittleOnJoinAndLeave(t *testing.T) {
	const parts, copies = 271, 2
	tb, _ := Assign(nil, nodes(4), parts, copies)
	joined, _ := Assign(tb, nodes(5), parts, copies)
	checkTable(t, joined, nodes(5), copies)
	if joined.Epoch != tb.Epoch+1 {
		t.Fatalf("epoch %d after %d", joined.Epoch, tb.Epoch)
	}
	// A fifth node should receive about a fifth of all copies, and nothing
	// else should move.
	ideal := parts * copies / 5
	if m := Moves(tb, joined); m > ideal+ideal/5 {
		t.Fatalf("join moved %d copies, ideal %d", m, ideal)
	}
	// Remove node-2: only its copies move.
	rest := slices.DeleteFunc(nodes(5), func(n NodeID) bool { return n == "node-2" })
	left, _ := Assign(joined, rest, parts, copies)
	checkTable(t, left, rest, copies)
	_, held := joined.Load()
	prim, _ := joined.Load()
	lost := held["node-2"] + prim["node-2"]
	if m := Moves(joined, left); m > lost+lost/5 {
		t.Fatalf("leave moved %d copies; node-2 held %d", m, lost)
	}
	// Every partition whose primary left is now led by a former replica.
	for p := range left.Owners {
		if joined.Primary(p) == "node-2" && !slices.Contains(joined.Owners[p], left.Primary(p)) {
			t.Fatalf("partition %d: new primary %s had no copy", p, left.Primary(p))
		}
	}
}

// TestKeyDistribution is seed 004's experiment: 10,000 keys over 5 nodes.
func TestKeyDistribution(t *testing.T) {
	tb, _ := Assign(nil, nodes(5), 271, 2)
	counts := map[NodeID]int{}
	for i := 0; i < 10000; i++ {
		counts[tb.Primary(tb.PartitionOf([]byte(fmt.Sprintf("key-%d", i))))]++
	}
	maxC := 0
	for _, c := range counts {
		maxC = max(maxC, c)
	}
	t.Logf("keys per node: %v", counts)
	if ratio := float64(maxC) / 2000; ratio >= 1.10 {
		t.Fatalf("max/mean = %.3f, want < 1.10 (%v)", ratio, counts)
	}
}

func TestAssignErrors(t *testing.T) {
	if _, err := Assign(nil, nodes(3), 0, 2); err == nil {
		t.Fatal("0 partitions accepted")
	}
	if _, err := Assign(nil, nodes(3), 10, 0); err == nil {
		t.Fatal("0 copies accepted")
	}
	tb, _ := Assign(nil, nodes(3), 10, 2)
	if _, err := Assign(tb, nodes(3), 11, 2); err == nil {
		t.Fatal("partition count change accepted")
	}
	empty, err := Assign(tb, nil, 10, 2)
	if err != nil || empty.Primary(0) != "" {
		t.Fatalf("no members: %v %v", err, empty.Owners[0])
	}
}

// TestAssignRandomChanges applies random joins and leaves and checks every
// table is valid and balanced, and that no change moves more than about
// the copies the changed node held (or should hold).
func TestAssignRandomChanges(t *testing.T) {
	members := nodes(3)
	next := 4
	tb, _ := Assign(nil, members, 271, 2)
	for step := 0; step < 40; step++ {
		if step%3 == 2 && len(members) > 2 {
			members = slices.Delete(slices.Clone(members), step%len(members), step%len(members)+1)
		} else {
			members = append(slices.Clone(members), NodeID(fmt.Sprintf("node-%d", next)))
			next++
		}
		nt, err := Assign(tb, members, 271, 2)
		if err != nil {
			t.Fatal(err)
		}
		checkTable(t, nt, members, 2)
		if m, bound := Moves(tb, nt), 2*(271*2/len(members)+2); m > bound {
			t.Fatalf("step %d (%d members): moved %d copies, bound %d", step, len(members), m, bound)
		}
		tb = nt
	}
}

// TestAssignHeldPromotesHolder: when a plan's primary fails while its
// other copy is still being filled, the node that actually holds the data
// becomes primary, even though the plan did not list it.
func TestAssignHeldPromotesHolder(t *testing.T) {
	const parts, copies = 31, 2
	ms := nodes(4)
	plan, _ := Assign(nil, ms, parts, copies)
	held := make([][]NodeID, parts)
	var p int
	var holder NodeID
	for q, own := range plan.Owners {
		// Pretend the plan moved q's replica: own[1] is being filled,
		// and a third node still has the complete copy.
		for _, n := range ms {
			if !slices.Contains(own, n) {
				held[q] = []NodeID{own[0], n}
				break
			}
		}
		if own[0] == "node-1" && holder == "" {
			p, holder = q, held[q][1]
		}
	}
	rest := ms[1:]
	got, err := AssignHeld(plan, held, rest, parts, copies)
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, got, rest, copies)
	for q, own := range plan.Owners {
		if own[0] == "node-1" && got.Primary(q) != held[q][1] {
			t.Fatalf("partition %d: primary %s, want the holder %s (plan %v)", q, got.Primary(q), held[q][1], own)
		}
	}
	// Without holders it is Assign: the planned replica is promoted.
	plain, _ := AssignHeld(plan, nil, rest, parts, copies)
	want, _ := Assign(plan, rest, parts, copies)
	if !slices.EqualFunc(plain.Owners, want.Owners, slices.Equal) {
		t.Fatal("AssignHeld without holders differs from Assign")
	}
	if plain.Primary(p) != plan.Owners[p][1] {
		t.Fatalf("partition %d: primary %s, want the planned replica %s", p, plain.Primary(p), plan.Owners[p][1])
	}
}

// checkValid checks owner counts, distinctness and membership (not
// balance, which a failover may overrun).
func checkValid(t *testing.T, tb *Table, members []NodeID, copies int) {
	t.Helper()
	width := min(copies, len(members))
	for p, own := range tb.Owners {
		if len(own) != width {
			t.Fatalf("partition %d has %d owners, want %d", p, len(own), width)
		}
		for i, n := range own {
			if !slices.Contains(members, n) || slices.Contains(own[:i], n) {
				t.Fatalf("partition %d: bad owners %v", p, own)
			}
		}
	}
}
