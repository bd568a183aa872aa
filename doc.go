// Package engram embeds an Engram node in a Go program: the application
// reads and writes its maps in-process, with no network hop and no
// allocation on a read hit, while other processes may reach the same node
// over the Redis protocol or HTTP (Config.RESPAddr, Config.HTTPAddr).
//
//	n, err := engram.Open(engram.Config{})
//	...
//	defer n.Close()
//	users := n.Map("users")
//	err = users.Set(ctx, "42", []byte(`{"name":"Ada"}`), engram.TTL(time.Hour))
//	v, err := users.Get(ctx, "42")
//
// Package client offers the same Map methods over the network; the two
// share this package's SetOptions and error values, so errors.Is(err,
// engram.ErrNotFound) holds for both and code moves between them
// unchanged.
//
// Every Map method takes a context. A single node never blocks, so the
// context is only checked on entry.
//
// # Clusters
//
// With Config.ClusterSecret set the embedded node is a member of a
// cluster (docs/cluster.md): it starts one, or joins the members named in
// Config.Join, and holds a share of the partitions:
//
//	n, err := engram.Open(engram.Config{
//		ClusterSecret: os.Getenv("ENGRAM_CLUSTER_SECRET"),
//		ClusterAddr:   "10.0.0.5:7946",
//		Join:          []string{"10.0.0.2:7946"},
//		Password:      os.Getenv("ENGRAM_PASSWORD"),
//	})
//
// Then every Map method, and Node.Maps, Sequences and Flush, act on the
// whole cluster: a call runs on the primary of its key's partition
// (forwarded as the Redis-protocol command, as the node's RESP clients'
// commands are), batches are split by partition and merged, and whole-map
// calls are scattered to every primary and gathered. The methods keep
// their meaning; the differences are those of docs/cluster.md and these:
//
//   - Calls that wait on other nodes allocate, and a read hit is no
//     longer allocation-free. The context is checked on entry; a routed
//     call is bounded by the cluster's request timeout (10 s), during which
//     it retries while partitions change hands. A call the cluster could
//     not run in time fails with an error matching ErrUnavailable.
//   - Writes return once every replica of the key's partition has them
//     (AckAll). Map.WithAck returns a handle whose writes return at
//     another level (AckPrimary, AckNone); UnsafeSet is AckNone.
//     Map.WithEventualReads returns a handle whose reads may be served by
//     a replica on this node (faster, possibly stale).
//   - WithSeq numbers are at most 2^63-1, and a PutAll with WithSeq needs
//     a TTL of whole seconds. A PutAll failing part-way returns 0, not the
//     count written.
//   - All and KeysSeq read a partition's values together before yielding
//     its first item; they stop (logging why) if a page cannot be read.
//   - A map's key bound and its max TTL are applied by every node that
//     leads partitions (and the node asked); MaxTTL reads this node's.
//     Stats are this node's.
//
// Node.OnNodeEvent reports members joining, failing and leaving (jc node
// events), and Node.Nodes lists the active and configured ones. Close
// leaves the cluster gracefully: the others see the node leave, not fail.
//
// This package is the composition of internal/node for library users. It
// must not import package client (client imports it).
package engram
