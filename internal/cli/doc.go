// Package cli implements the client subcommands of the engram binary:
// get, set, del, keys, ttl, incr, maps, info, ping, export, import and
// bench. Each talks to a running node over RESP with go-redis, on the map
// named by --map (selected with SELECT on every new connection, because
// Engram map names are arbitrary strings).
//
// Run is the single entry point; it takes its streams and environment as
// arguments so that tests run the subcommands in-process. docs/cli.md is
// the user documentation.
package cli
