// Package replication holds a partition's replication log on its primary:
// every change to the partition gets the next log sequence number (LSN),
// followers read the log in order and acknowledge what they applied, and a
// write that must be acknowledged by all replicas waits until every
// current follower has acknowledged its LSN.
//
// The log is bounded: entries every follower has acknowledged are dropped,
// and a writer is told to back off (a retryable error) when the backlog of
// a slow or unreachable follower passes the bound, so a dead replica can
// never make a primary run out of memory or block a writer inside the
// store. It does no I/O; the cluster layer ships entries over the
// transport.
//
// A follower that joins, or whose entries were dropped (Read returns
// ErrTrimmed), is brought up to date by a snapshot: Restart marks the LSN
// the snapshot starts from, the log keeps the entries after it, and the
// follower applies them in order once the snapshot is in (replaying
// effects in order from that LSN converges even where the snapshot
// already saw some of them). Pending tells how much of the backlog one
// follower holds, so the sender can restart a snapshot that takes too
// long rather than keep writers waiting.
package replication
