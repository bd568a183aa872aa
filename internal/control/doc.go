// Package control is the cluster's control plane: the configuration every
// node must agree on — members (configured and alive, with their
// addresses and roles), the partition table with its epoch, and per-map
// settings — replicated by Raft among the nodes. It is the only importer
// of hashicorp/raft.
//
// Data never goes through Raft: only decisions do. The first nodes (three
// by default) are voters (the "managers"); the others follow the log as
// non-voters so every node holds the current table. Everything below is
// computed inside the state machine from the log alone (ring's placement
// is deterministic, maps are walked in sorted order), so every node derives
// the same tables from the same log.
//
// # A partition changes owner only once its data is there
//
// The State keeps three views of placement:
//
//   - Target: ring.AssignHeld's balanced placement for the live data
//     members, recomputed when they change, starting from the previous
//     Target (a plan in progress is kept; a join or leave moves about 1/N
//     of the copies). When a target primary fails, a node holding a
//     complete copy is promoted in the plan.
//   - Synced[p]: the nodes holding a complete copy of partition p.
//   - Table: the effective table, the one the data plane routes, fences
//     and replicates by. Its Epoch increases by one whenever its owners
//     change, and only then.
//
// After every change the effective owners of each partition p are
// derived from Target, Synced and the previous Table:
//
//   - A complete copy only counts on a live data member that was an owner
//     of p in the previous Table (it was receiving p's stream). A member
//     that fails is out of every Synced[p] and every owner list at once;
//     one that comes back (same id) holds nothing.
//   - If every target owner of p holds a complete copy, the owners are the
//     target owners and Synced[p] is reduced to them (others drop their
//     copy).
//   - Otherwise the primary is the target primary if its copy is
//     complete; else the current primary if it is alive (it is complete);
//     else any node with a complete copy, in target order then previous
//     order. The other target owners follow as replicas (complete or being
//     filled), then the previous owners with a complete copy that are not
//     in the target: they stay until the target's copies are complete, so
//     the number of complete copies never drops during a move, and a
//     partition may briefly have more than Copies owners. The primary is
//     always a node with a complete copy while one is alive; an
//     incomplete copy is never promoted.
//   - If no live node holds p, its data is lost: the target primary starts
//     it empty and counts as complete; the other owners fill from it.
//   - In a new cluster (no table yet, or a table without any owner
//     because no data member was alive) every target owner counts as
//     complete: there is no data.
//
// Copies become complete by MarkSynced: the primary of p, having sent a
// copy to an owner (snapshot applied, stream caught up), reports it with
// the effective epoch it saw. A report is applied only if the node is
// still a live owner of p and has been one without interruption since that
// epoch (OwnerSince); others are stale and ignored. One batch of reports is
// one log entry, so it moves the epoch at most once. State.Pending lists
// the copies being filled, State.Migrations counts the target copies not
// complete yet, and State.Settled says the table has reached the target.
//
// A node that restarts without being reported down first keeps its
// complete copies in the state; the data plane must report it down (or
// gone) before it comes back empty.
//
// It must not import the store, server or cluster packages.
package control
