// Package pubsub is one node's publish/subscribe hub: topics (channels and
// Redis glob patterns), map events (writes and deletes of keys, from the
// store's change stream) and node events (members coming up or going
// down), delivered to subscribers through bounded per-subscriber queues.
//
// # Channels
//
// Everything a subscriber receives arrives on a channel name, so the Redis
// protocol, HTTP and the Go API share one model:
//
//   - topics: any name not starting with "__engram" (PUBLISH refuses those);
//   - map events: "__engram@<map>__:write:<key>" (the payload is the new
//     value) and "__engram@<map>__:delete:<key>" (the payload is the
//     reason: delete, expired, evicted or cleared). A silent flush
//     (store.ReasonClearedSilent) sends nothing;
//   - node events: "__engram__:nodes" (the payload is a JSON object, see
//     NodeEvent).
//
// Patterns (PSUBSCRIBE) use internal/glob, Redis's matcher. Event channels
// are matched only by patterns whose literal beginning is "__engram"
// (so "PSUBSCRIBE *" sees topics, not every write of the cache), and topic
// channels only by the other patterns.
//
// # Bounded queues and overflow
//
// Publishing never blocks: a message is appended to each receiver's queue
// under a short lock, and the receiver's own goroutine writes it out. A
// queue is bounded in bytes (Options.MaxQueueBytes, 32 MiB by default,
// Redis's client-output-buffer-limit for pub/sub). A subscriber whose
// queue would pass the bound is disconnected, as Redis does: its queue is
// dropped, Err returns ErrOverflow, Done is closed and its overflow
// callback runs (the Redis front end closes the connection). Stats counts
// the disconnections and the messages they dropped. So a slow subscriber
// can neither stall writers (the store calls OnEvent under a shard lock)
// nor exhaust memory.
//
// # Cluster
//
// The hub only knows its own node's subscribers. A Remote (the cluster's
// data plane) plugs in to carry topic messages to the other nodes and to
// learn which maps and topics this node's subscribers want (Interest), so
// that map events produced on other nodes are shipped here.
package pubsub
