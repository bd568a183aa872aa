// Package ring is the partition table: which nodes own each partition
// (a primary first, then replicas), and the placement function that builds
// a new table when members change, keeping load balanced and moving as few
// partitions as possible. AssignHeld is the same placement for a previous
// table that is a plan still being carried out: on failover it promotes a
// node known to hold the data.
//
// It is pure: no network, no clock, no randomness. The control plane
// (raft) agrees on tables; the data plane routes by them.
package ring
