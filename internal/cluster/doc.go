// Package cluster is the data plane of an Engram cluster: it routes each
// key's requests to the partition's primary by the current partition table
// (forwarding over the transport, fenced by the table epoch), and
// replicates every change of a partition from its primary to its replicas
// through the partition's replication log, with the acknowledgement level
// the writer asked for (all replicas, primary only, none).
//
// It owns: the Node (routing, fencing, replication streams, applying
// replicated changes), the store Observer that captures changes, the
// transport Handler, and the versioned binary wire format of data-plane
// messages (wire.go, fuzzed).
//
// It builds on store, ring, replication and transport, and is driven by
// the control plane (which calls SetTable). It must not import
// internal/server or internal/httpapi (the front ends call it, not the
// reverse), nor internal/node, internal/control or internal/membership.
//
// # Composition
//
// The store's observer is fixed when the store is created and the
// transport's handler when the transport is, both before the Node exists,
// so both are created first and bound by New:
//
//	obs := cluster.NewObserver()
//	st, _ := store.New(store.Options{Partitions: n, Observer: obs})
//	h := cluster.NewHandler()
//	tr := network.Node(addr, h.Handle) // or transport.NewTCP with h.Handle
//	node, _ := cluster.New(cluster.Config{ID: id, Store: st, Transport: tr, Observer: obs, Handler: h})
//	node.SetTable(table, addrs)
//
// # Writes
//
// A write runs on the partition's primary under a per-partition mutex: it
// checks the log's backlog (Log.Admit), writes the store, and the observer,
// called by the store under the key's shard lock, appends the effect to the
// partition's replication.Log (so LSN order is the store's order), with
// the record's expiry and creation time from the event, so a replica stores
// an identical record. One goroutine per (partition, replica) reads the log and sends
// batches (OpReplicate) carrying the epoch; the replica checks the epoch
// and that the sender is the partition's primary, applies entries after
// the last LSN it applied (Import upsert, or Delete), and answers with that
// LSN, which the stream acknowledges in the log. AckAll waits (Log.Wait)
// for the LSN current after the write, bounded by the context or
// Options.AckTimeout, and fails with ErrReplicaTimeout (retryable; the
// write stays applied on the primary).
//
// # Snapshots
//
// Each stream of a partition to a follower starts with a complete copy
// (snapshot.go): the stream marks the follower's position at lsn0, the
// log's last LSN (Log.Restart: every change up to lsn0 is already in the
// store, and the log keeps the changes after it for this follower), sends
// OpSnapshotBegin (the replica drops its copy of the partition with
// store.DropPartition and records the snapshot's ID), exports the
// partition (store.ExportPartition: every map, paged, outside locks) in
// OpSnapshot batches bounded by Options.SnapshotBatchBytes and
// SnapshotBatchEntries, which the replica imports (upsert), then
// OpSnapshotEnd, after which the replica has a complete copy as of lsn0
// or later and applies the log entries after lsn0 in order. Replaying the
// effects from lsn0 in order converges even for keys the export already
// saw in a newer state. Each message is retried until accepted; IDs only
// grow, so a delayed message of an abandoned snapshot is refused.
//
// The primary calls Config.OnSynced(p, follower, epoch) once the follower
// acknowledged the end of its first snapshot of the stream: its copy is
// complete (the control plane lets a node become primary only then).
// Node.Syncing reports each stream's progress (records sent of the
// partition's estimated size, done).
//
// A new snapshot replaces the log stream when the follower cannot
// continue from it: its entries were dropped (Log.Read returns
// replication.ErrTrimmed), or it answers FlagResync. A replica answers
// FlagResync to entries of a partition for which it has no complete
// snapshot from the current primary, to entries that leave a gap after
// the last LSN it applied, and to messages of a snapshot other than the
// one it is receiving, so it never continues (or serves, see
// Node.Readable: eventual reads go to the primary meanwhile) a partial or
// diverged copy. Its copy is tied to an era of the partition, which a new
// table changes when the primary changes or the node stops owning the
// partition: a replica that changes primary, or a primary that is
// demoted, starts over from a snapshot of the new primary. If the
// follower's backlog passes Options.BacklogBytes while a snapshot is being
// sent (the changes after lsn0 wait in the log for it), the snapshot
// starts again from a new lsn0, which releases them and lets writers go
// on, up to Options.SnapshotRestarts times in a row; past that it
// continues, and writes are refused with ErrBacklog until the follower
// catches up. Writes with ack=all wait for a follower receiving a
// snapshot too (it has not got them yet), so they may fail with
// ErrReplicaTimeout while a large partition is copied.
//
// When a table leaves the node out of a partition's owners, the node
// drops the partition from its store (store.DropPartition, in the
// background, once the partition's streams have returned and under the
// partition's mutex, unless a newer table gave it back); writes and
// replicated entries check ownership under the same mutex, so nothing
// lands after the drop.
//
// # Not yet (later phases)
//
// Multi-key and scatter/gather commands, forwarding of sequence-checked
// writes, and forwarding commands as argument vectors (this phase
// forwards Get/Set/Delete). A follower whose log backlog overflows
// outside a snapshot is not cut off for a later resync: writes are
// refused with ErrBacklog until it catches up or the control plane
// removes it.
package cluster
