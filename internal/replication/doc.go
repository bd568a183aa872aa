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
package replication
