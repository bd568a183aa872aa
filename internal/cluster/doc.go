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
// # Not yet (later phases)
//
// Snapshot transfer for new replicas (a new follower is assumed to have
// the partition's data), resynchronisation of a follower whose entries
// were dropped, multi-key and scatter/gather commands, forwarding of
// sequence-checked writes, and forwarding commands as argument vectors
// (this phase forwards Get/Set/Delete).
package cluster
