// Package cluster is the data plane of an Engram cluster: it routes each
// key's requests to the partition's primary by the current partition table
// (forwarding over the transport, fenced by the table epoch), and
// replicates every change of a partition from its primary to its replicas
// through the partition's replication log, with the acknowledgement level
// the writer asked for (all replicas, primary only, none).
//
// It owns: the Node (routing, fencing, replication streams, applying
// replicated changes), the store Observer that captures changes, and the
// versioned binary wire format of data-plane messages (wire.go).
//
// It builds on store, ring, replication and transport, and is driven by
// the control plane (which calls SetTable). It must not import
// internal/server or internal/httpapi (the front ends call it, not the
// reverse), nor internal/node, internal/control or internal/membership.
package cluster
