package control

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/engramdb/engram/internal/ring"
)

// State is the replicated cluster configuration.
//
// Three views of the partition placement are kept. Target is where the
// partitions should be (ring's balanced placement for the live data
// members); Synced is where complete copies actually are; Table, the
// effective table the data plane routes and replicates by, is derived from
// both and from its own previous version so that a node leads a partition
// only once it holds a complete copy (see the package documentation for
// the rules).
type State struct {
	// Members are the configured nodes by id, alive or not.
	Members map[string]Member `json:"members"`
	// Table is the effective partition table: the one requests are routed
	// and fenced by. Owners[p] is the primary of p (always a node holding
	// a complete copy while one is alive), then the target's other owners
	// (complete or being filled), then former owners with a complete copy
	// kept until the target's copies are complete; so a partition may
	// briefly have more than Copies owners. Its Epoch starts at 1 and
	// increases by one whenever, and only when, Owners change. Nil until
	// the first member is recorded.
	Table *ring.Table `json:"table"`
	// Target is the balanced placement for the live data members
	// (ring.AssignHeld): what Table converges to once every copy it names
	// is complete. Its Epoch counts its own versions and has nothing to do
	// with Table's; only Table is used for routing.
	Target *ring.Table `json:"target,omitempty"`
	// Synced[p] lists the nodes holding a complete copy of partition p, in
	// Table.Owners[p] order. Every one of them is an owner of p in Table.
	Synced [][]ring.NodeID `json:"synced,omitempty"`
	// OwnerSince[p][n] is the Table epoch since which node n has been an
	// owner of partition p without interruption; MarkSynced uses it to
	// discard reports about an earlier, abandoned copy.
	OwnerSince []map[ring.NodeID]uint64 `json:"owner_since,omitempty"`
	// Maps are the per-map settings by map name.
	Maps map[string]MapConfig `json:"maps"`
}

// SyncReport says that Node has finished receiving a complete copy of
// Partition (snapshot applied and replication stream caught up), as seen
// by the partition's primary at effective table epoch Epoch.
type SyncReport struct {
	Partition int    `json:"p"`
	Node      string `json:"node"`
	Epoch     uint64 `json:"epoch"`
}

// Copy names one copy of a partition on a node.
type Copy struct {
	Partition int
	Node      ring.NodeID
}

// Clone returns a deep copy (callers may keep it).
func (s State) Clone() State {
	c := State{
		Members: maps.Clone(s.Members),
		Maps:    maps.Clone(s.Maps),
		Table:   cloneTable(s.Table),
		Target:  cloneTable(s.Target),
		Synced:  cloneOwners(s.Synced),
	}
	if s.OwnerSince != nil {
		c.OwnerSince = make([]map[ring.NodeID]uint64, len(s.OwnerSince))
		for i, m := range s.OwnerSince {
			c.OwnerSince[i] = maps.Clone(m)
		}
	}
	return c
}

func cloneTable(t *ring.Table) *ring.Table {
	if t == nil {
		return nil
	}
	c := *t
	c.Owners = cloneOwners(t.Owners)
	return &c
}

func cloneOwners(o [][]ring.NodeID) [][]ring.NodeID {
	if o == nil {
		return nil
	}
	c := make([][]ring.NodeID, len(o))
	for i, own := range o {
		c[i] = slices.Clone(own)
	}
	return c
}

// DataMembers returns the IDs of live members that hold data, sorted.
func (s State) DataMembers() []ring.NodeID {
	var out []ring.NodeID
	for id, m := range s.Members {
		if m.Alive && !m.Client {
			out = append(out, ring.NodeID(id))
		}
	}
	slices.Sort(out)
	return out
}

// IsSynced reports whether node n holds a complete copy of partition p.
func (s State) IsSynced(p int, n ring.NodeID) bool {
	return p >= 0 && p < len(s.Synced) && slices.Contains(s.Synced[p], n)
}

// Pending returns the copies being filled: owners of a partition in Table
// that do not hold a complete copy yet, by partition then in owner order.
// The primary of each such partition sends the copy (snapshot, then the
// replication stream) and reports it with MarkSynced when it is complete.
func (s State) Pending() []Copy {
	if s.Table == nil {
		return nil
	}
	var out []Copy
	for p, own := range s.Table.Owners {
		for _, n := range own {
			if !s.IsSynced(p, n) {
				out = append(out, Copy{Partition: p, Node: n})
			}
		}
	}
	return out
}

// Migrations returns how many copies Target names that are not complete
// yet: the work left before Table equals Target.
func (s State) Migrations() int {
	if s.Target == nil {
		return 0
	}
	n := 0
	for p, own := range s.Target.Owners {
		for _, o := range own {
			if !s.IsSynced(p, o) {
				n++
			}
		}
	}
	return n
}

// Settled reports whether Table has reached Target: every copy is complete
// and no former owner is kept.
func (s State) Settled() bool {
	return s.Table != nil && s.Target != nil && s.Migrations() == 0 && sameOwners(s.Table, s.Target)
}

// String summarises the state for logs.
func (s State) String() string {
	var b strings.Builder
	epoch := uint64(0)
	if s.Table != nil {
		epoch = s.Table.Epoch
	}
	fmt.Fprintf(&b, "epoch %d, %d migrations, members", epoch, s.Migrations())
	for _, id := range slices.Sorted(maps.Keys(s.Members)) {
		m := s.Members[id]
		fmt.Fprintf(&b, " %s(alive=%v)", id, m.Alive)
	}
	return b.String()
}

func sameOwners(a, b *ring.Table) bool {
	return a != nil && b != nil && slices.EqualFunc(a.Owners, b.Owners, slices.Equal)
}

// retable brings Target up to date with the live data members and derives
// Table from it. Deterministic: it depends only on s.
func (s *State) retable(partitions, copies int) error {
	if err := s.retarget(partitions, copies); err != nil {
		return err
	}
	s.derive(partitions, copies)
	return nil
}

// retarget recomputes Target when the live data members differ from the
// nodes it names. The previous Target is the starting point (a plan in
// progress stays as it is), and on failover a node holding a complete copy
// is promoted (ring.AssignHeld with Synced).
func (s *State) retarget(partitions, copies int) error {
	members := s.DataMembers()
	if s.Target != nil && slices.Equal(members, tableMembers(s.Target)) {
		return nil
	}
	t, err := ring.AssignHeld(s.Target, s.Synced, members, partitions, copies)
	if err != nil {
		return err
	}
	if sameOwners(t, s.Target) {
		return nil // e.g. more members than copies of partitions
	}
	s.Target = t
	return nil
}

func tableMembers(t *ring.Table) []ring.NodeID {
	seen := map[ring.NodeID]bool{}
	for _, o := range t.Owners {
		for _, n := range o {
			seen[n] = true
		}
	}
	out := slices.Collect(maps.Keys(seen))
	slices.Sort(out)
	return out
}

// derive computes Table, Synced and OwnerSince from Target, Synced and the
// previous Table. See the package documentation for the rules.
func (s *State) derive(partitions, copies int) {
	alive := map[ring.NodeID]bool{}
	for _, n := range s.DataMembers() {
		alive[n] = true
	}
	prev := s.Table
	// A new cluster, or one where no data member was left: nobody holds
	// data, so every owner starts complete (and empty).
	fresh := true
	if prev != nil {
		for _, own := range prev.Owners {
			if len(own) > 0 {
				fresh = false
				break
			}
		}
	}
	eff := &ring.Table{Copies: copies, Owners: make([][]ring.NodeID, partitions)}
	synced := make([][]ring.NodeID, partitions)
	for p := range partitions {
		var target, before []ring.NodeID
		if s.Target != nil && p < len(s.Target.Owners) {
			target = s.Target.Owners[p]
		}
		if prev != nil && p < len(prev.Owners) {
			before = prev.Owners[p]
		}
		// Complete copies that still count: on a live data member that
		// was receiving the partition's stream (a previous owner).
		var has []ring.NodeID
		switch {
		case fresh:
			has = slices.Clone(target)
		case p < len(s.Synced):
			for _, n := range s.Synced[p] {
				if alive[n] && slices.Contains(before, n) && !slices.Contains(has, n) {
					has = append(has, n)
				}
			}
		}
		held := func(n ring.NodeID) bool { return slices.Contains(has, n) }
		if !slices.ContainsFunc(target, func(n ring.NodeID) bool { return !held(n) }) {
			// Every target copy is complete: the target takes over and
			// other copies are dropped.
			eff.Owners[p] = slices.Clone(target)
			synced[p] = slices.Clone(target)
			continue
		}
		// target is not empty here. Pick the primary among the complete
		// copies: the target's, else the current one, else any.
		var primary ring.NodeID
		switch {
		case held(target[0]):
			primary = target[0]
		case len(before) > 0 && alive[before[0]] && held(before[0]):
			primary = before[0]
		default:
			for _, n := range slices.Concat(target, before, has) {
				if held(n) {
					primary = n
					break
				}
			}
		}
		if primary == "" {
			// No live node has the partition: its data is lost, and the
			// target primary starts it empty.
			primary = target[0]
			has = append(has, primary)
		}
		own := []ring.NodeID{primary}
		for _, n := range target {
			if n != primary {
				own = append(own, n)
			}
		}
		// Complete copies outside the target stay until the target's are
		// complete, so the number of complete copies never drops.
		for _, n := range slices.Concat(before, has) {
			if held(n) && !slices.Contains(own, n) {
				own = append(own, n)
			}
		}
		eff.Owners[p] = own
		for _, n := range own {
			if held(n) {
				synced[p] = append(synced[p], n)
			}
		}
	}
	switch {
	case prev == nil:
		eff.Epoch = 1
	case sameOwners(eff, prev) && len(eff.Owners) == len(prev.Owners):
		eff.Epoch = prev.Epoch
	default:
		eff.Epoch = prev.Epoch + 1
	}
	since := make([]map[ring.NodeID]uint64, partitions)
	for p, own := range eff.Owners {
		since[p] = make(map[ring.NodeID]uint64, len(own))
		for _, n := range own {
			e := eff.Epoch
			if prev != nil && p < len(prev.Owners) && slices.Contains(prev.Owners[p], n) {
				e = prev.Epoch // owner before: since then at least
				if p < len(s.OwnerSince) {
					if old, ok := s.OwnerSince[p][n]; ok {
						e = old
					}
				}
			}
			since[p][n] = e
		}
	}
	s.Table, s.Synced, s.OwnerSince = eff, synced, since
}

// markSynced records the reports that still hold and returns how many
// changed the state. A report holds if its node is an owner of the
// partition in Table and has been one without interruption since the
// report's epoch: a report about a copy that was abandoned since (the node
// stopped being an owner, failed, or the report is older than its current
// ownership) is ignored.
func (s *State) markSynced(reports []SyncReport) int {
	if s.Table == nil {
		return 0
	}
	alive := map[ring.NodeID]bool{}
	for _, n := range s.DataMembers() {
		alive[n] = true
	}
	if s.Synced == nil {
		s.Synced = make([][]ring.NodeID, len(s.Table.Owners))
	}
	applied := 0
	for _, r := range reports {
		p, n := r.Partition, ring.NodeID(r.Node)
		if p < 0 || p >= len(s.Table.Owners) || p >= len(s.Synced) || !alive[n] ||
			!slices.Contains(s.Table.Owners[p], n) || r.Epoch > s.Table.Epoch ||
			slices.Contains(s.Synced[p], n) {
			continue
		}
		if p < len(s.OwnerSince) {
			if since, ok := s.OwnerSince[p][n]; ok && r.Epoch < since {
				continue
			}
		}
		s.Synced[p] = append(s.Synced[p], n)
		applied++
	}
	return applied
}

// normalize fills what a snapshot from an older version lacks: a table
// without a target or sync state is taken as complete and balanced.
func (s *State) normalize() {
	if s.Members == nil {
		s.Members = map[string]Member{}
	}
	if s.Maps == nil {
		s.Maps = map[string]MapConfig{}
	}
	if s.Table != nil && s.Target == nil {
		s.Target = cloneTable(s.Table)
		if s.Synced == nil {
			s.Synced = cloneOwners(s.Table.Owners)
		}
	}
}
