// Package store is one node's keyspace: named maps of binary keys and values,
// item TTLs and map-level max TTLs, per-map sequence numbers, limits, the
// memory bound with its eviction policies, and the events other layers
// (pub/sub, near caches, the backing store) subscribe to.
//
// Layout. A map is split into partitions (the same partitions the cluster
// ring assigns to nodes), and each partition is a shard with its own lock.
// A shard keeps its records in pointer-free byte slabs and indexes them with
// a map[uint32]uint32 (32 bits of the key hash to a slab location), so ten
// million keys cost the garbage collector nothing to scan and about as many
// bytes per key as Redis. Overwrites of a same-size value happen in place;
// other overwrites and deletes leave dead records that a slab compaction
// reclaims once half of a slab is dead.
//
// The package does no network or disk I/O and imports nothing of the
// project but keyhash and glob. Time comes from Options.Clock so tests can
// drive expiry without sleeping.
package store
