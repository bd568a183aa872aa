// Package client connects a Go program to a running Engram node over the
// Redis protocol (RESP2 or RESP3), wrapping go-redis.
//
//	c, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1:7379"})
//	...
//	defer c.Close()
//	users := c.Map("users")
//	err = users.Set(ctx, "42", []byte(`{"name":"Ada"}`), engram.TTL(time.Hour))
//	v, err := users.Get(ctx, "42")
//
// A Map here has the methods of engram.Map, takes the same engram
// SetOptions and returns errors that match the same engram sentinels
// (engram.ErrNotFound, engram.ErrOutOfSequence, ...), so code written
// against an embedded node runs against a remote one unchanged.
//
// Engram selects a map per connection with SELECT <name>, while go-redis
// selects numbered databases only; so each map gets its own connection
// pool whose connections SELECT it when they connect.
//
// In a cluster any node takes any command and forwards it to the key's
// owner. With Options.RouteToOwners the client learns the partition table
// from the node it dialled and sends each single-key command (Get, Set,
// Delete, Incr, TTL, ...) straight to the key's primary, saving that hop;
// multi-key and whole-keyspace calls still go to the dialled node, which
// splits or scatters them. A stale table costs a hop, never a wrong
// answer. A call the cluster cannot run now (a partition changing hands,
// a node cut off from the majority: -TRYAGAIN, -CLUSTERDOWN) returns an
// error matching engram.ErrUnavailable; it is not retried for you, since
// a write may have been applied.
//
// This package imports package engram for the shared options and errors;
// engram must never import it.
package client
