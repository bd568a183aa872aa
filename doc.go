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
// Every Map method takes a context. A single node never blocks, so today
// the context is only checked on entry; in a cluster the same calls wait
// on other nodes and the context bounds them.
//
// This package is the composition of internal/node for library users. It
// must not import package client (client imports it).
package engram
