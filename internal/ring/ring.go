package ring

import (
	"fmt"
	"slices"

	"github.com/engramdb/engram/internal/keyhash"
)

// NodeID names a member of the cluster.
type NodeID string

// Table is one version of the partition table.
type Table struct {
	// Epoch increases with every new table; requests carry it so a node
	// can refuse work for a partition it no longer owns (fencing).
	Epoch uint64
	// Copies is the replication factor the table was built for.
	Copies int
	// Owners[p] lists partition p's owners: the primary first, then the
	// replicas. It may be shorter than Copies when there are fewer nodes.
	Owners [][]NodeID
}

// Partitions returns the number of partitions.
func (t *Table) Partitions() int { return len(t.Owners) }

// PartitionOf returns the partition of key.
func (t *Table) PartitionOf(key []byte) int {
	return keyhash.Partition(keyhash.Sum(key), len(t.Owners))
}

// Primary returns the primary of partition p, or "" if it has none.
func (t *Table) Primary(p int) NodeID {
	if len(t.Owners[p]) == 0 {
		return ""
	}
	return t.Owners[p][0]
}

// Load returns how many partitions each node holds as primary and as
// replica.
func (t *Table) Load() (primaries, replicas map[NodeID]int) {
	primaries, replicas = map[NodeID]int{}, map[NodeID]int{}
	for _, own := range t.Owners {
		for i, n := range own {
			if i == 0 {
				primaries[n]++
			} else {
				replicas[n]++
			}
		}
	}
	return primaries, replicas
}

// Assign builds the table for members from prev (nil for a new cluster).
// Each node gets floor or ceil of partitions/len(members) primaries, and
// likewise of replicas (a failover may overrun a primary quota, see
// below); an owner of prev that is still a member keeps its
// partitions while it is under its share, so a join or leave moves about
// 1/len(members) of the partitions and nothing else. Replicas of a
// partition are distinct nodes, distinct from its primary. When a primary
// leaves, one of the partition's surviving replicas becomes primary (it
// already has the data). The result's Epoch is prev's plus one.
func Assign(prev *Table, members []NodeID, partitions, copies int) (*Table, error) {
	return AssignHeld(prev, nil, members, partitions, copies)
}

// AssignHeld is Assign for a prev that is a plan not yet carried out:
// held[p] (held may be nil or shorter than the partition count) lists the
// nodes that actually hold a complete copy of partition p, which may
// differ from prev's owners while copies are being moved. It changes one
// thing: when the primary of p in prev is no longer a member (failover),
// the new primary is a member of held[p] if one is left (the one with the
// fewest primaries so far), whether or not prev listed it, and only
// otherwise a surviving owner of prev as in Assign. So the plan promotes a
// node that has the data rather than one still receiving it.
func AssignHeld(prev *Table, held [][]NodeID, members []NodeID, partitions, copies int) (*Table, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("cannot build a partition table with %d partitions", partitions)
	}
	if copies < 1 {
		return nil, fmt.Errorf("cannot build a partition table with %d copies", copies)
	}
	if prev != nil && prev.Partitions() != partitions {
		return nil, fmt.Errorf("cannot change the partition count from %d to %d", prev.Partitions(), partitions)
	}
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	t := &Table{Copies: copies, Owners: make([][]NodeID, partitions)}
	if prev != nil {
		t.Epoch = prev.Epoch + 1
	}
	if len(ms) == 0 {
		return t, nil
	}
	live := make(map[NodeID]bool, len(ms))
	for _, m := range ms {
		live[m] = true
	}
	width := min(copies, len(ms))
	// quota returns the share of slots node i may hold for total slots.
	quota := func(total int) map[NodeID]int {
		q := make(map[NodeID]int, len(ms))
		for i, m := range ms {
			q[m] = total / len(ms)
			if i < total%len(ms) {
				q[m]++
			}
		}
		return q
	}
	primQ, replQ := quota(partitions), quota(partitions*(width-1))
	prim, repl := map[NodeID]int{}, map[NodeID]int{}

	// Pass 1: keep primaries that are still members (or promote a
	// surviving replica of the old owner list), within quota.
	// Partitions whose primary left go first, so their surviving replica
	// (which has the data) can be promoted before quotas fill up.
	var order []int
	if prev != nil {
		for p := range t.Owners {
			if len(prev.Owners[p]) > 0 && !live[prev.Owners[p][0]] {
				order = append(order, p)
			}
		}
		for p := range t.Owners {
			if len(prev.Owners[p]) > 0 && live[prev.Owners[p][0]] {
				order = append(order, p)
			}
		}
	}
	for _, p := range order {
		orphan := !live[prev.Owners[p][0]]
		var pick NodeID
		if orphan && p < len(held) {
			// Failover with known holders: one of them leads.
			for _, n := range held[p] {
				if live[n] && (pick == "" || prim[n] < prim[pick]) {
					pick = n
				}
			}
		}
		fromHeld := pick != ""
		for _, n := range prev.Owners[p] {
			switch {
			case !live[n], fromHeld:
			case orphan:
				// Failover: a surviving copy must lead, whatever the
				// quota; reading from a node without the data would
				// return wrong answers. Balance is restored by later
				// planned moves.
				if pick == "" || prim[n] < prim[pick] {
					pick = n
				}
			case prim[n] < primQ[n] && pick == "":
				pick = n
			}
		}
		if pick != "" {
			t.Owners[p] = []NodeID{pick}
			prim[pick]++
		}
	}
	// Pass 2: partitions without a primary go to the least-loaded node.
	for p := range t.Owners {
		if len(t.Owners[p]) > 0 {
			continue
		}
		n := leastLoaded(ms, prim, primQ, nil)
		if n == "" {
			n = leastLoaded(ms, prim, nil, nil) // quotas overrun by failover
		}
		t.Owners[p] = []NodeID{n}
		prim[n]++
	}
	// Pass 3: keep previous replicas (any previous owner that is not the
	// new primary) within quota.
	// Partitions whose primary is new go first: without a kept replica
	// they would need two copies moved instead of one.
	if prev != nil && width > 1 {
		order = order[:0]
		for p := range t.Owners {
			if !slices.Contains(prev.Owners[p], t.Owners[p][0]) {
				order = append(order, p)
			}
		}
		for p := range t.Owners {
			if slices.Contains(prev.Owners[p], t.Owners[p][0]) {
				order = append(order, p)
			}
		}
		for _, p := range order {
			for _, n := range prev.Owners[p] {
				if len(t.Owners[p]) >= width {
					break
				}
				if live[n] && !slices.Contains(t.Owners[p], n) && repl[n] < replQ[n] {
					t.Owners[p] = append(t.Owners[p], n)
					repl[n]++
				}
			}
		}
	}
	// Pass 4: fill the remaining replica slots from the least loaded.
	for p := range t.Owners {
		for len(t.Owners[p]) < width {
			n := leastLoaded(ms, repl, nil, t.Owners[p])
			t.Owners[p] = append(t.Owners[p], n)
			repl[n]++
		}
	}
	// Pass 5: keeping old replicas can leave the newcomer with none (every
	// partition it leads already had its replicas kept elsewhere): move
	// replica slots from the most to the least loaded node until they
	// differ by at most one.
	for range partitions * width {
		over, under := ms[0], ms[0]
		for _, m := range ms {
			if repl[m] > repl[over] {
				over = m
			}
			if repl[m] < repl[under] {
				under = m
			}
		}
		if repl[over]-repl[under] <= 1 || !moveReplica(t, over, under) {
			break
		}
		repl[over]--
		repl[under]++
	}
	return t, nil
}

// moveReplica gives one of from's replica slots to to, on a partition to
// does not already own.
func moveReplica(t *Table, from, to NodeID) bool {
	for _, own := range t.Owners {
		if slices.Contains(own, to) {
			continue
		}
		for i := 1; i < len(own); i++ {
			if own[i] == from {
				own[i] = to
				return true
			}
		}
	}
	return false
}

// leastLoaded returns the eligible node (not in exclude, under quota if
// quota is not nil) with the lowest count, ties broken by name.
func leastLoaded(ms []NodeID, count, quota map[NodeID]int, exclude []NodeID) NodeID {
	var best NodeID
	for _, m := range ms {
		if slices.Contains(exclude, m) || (quota != nil && count[m] >= quota[m]) {
			continue
		}
		if best == "" || count[m] < count[best] {
			best = m
		}
	}
	return best
}

// Moves counts the partition copies that must be transferred to go from a
// to b: owners of b's partitions that were not owners in a.
func Moves(a, b *Table) int {
	n := 0
	for p := range b.Owners {
		for _, o := range b.Owners[p] {
			if a == nil || !slices.Contains(a.Owners[p], o) {
				n++
			}
		}
	}
	return n
}
