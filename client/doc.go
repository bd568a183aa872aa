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
// This package imports package engram for the shared options and errors;
// engram must never import it.
package client
