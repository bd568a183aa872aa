// Package control is the cluster's control plane: the configuration every
// node must agree on — members (configured and alive, with their
// addresses and roles), the partition table with its epoch, and per-map
// settings — replicated by Raft among the nodes. It is the only importer
// of hashicorp/raft.
//
// Data never goes through Raft: only decisions do. The first nodes (three
// by default) are voters (the "managers"); the others follow the log as
// non-voters so every node holds the current table. The partition table is
// recomputed inside the state machine from the members (ring.Assign is
// deterministic), so every node derives the same table from the same log.
//
// It must not import the store, server or cluster packages.
package control
