// Package resp owns Engram's wire codec: the RESP2/RESP3 protocol that Redis
// clients speak.
//
// It has three parts:
//
//   - [Reader] parses client commands (multibulk and inline form) on the
//     server's hot path. It hands out arguments as slices of its own buffer
//     and does not allocate per command in steady state, because every client
//     request goes through it.
//   - The Append* functions encode replies by appending to a caller-owned
//     []byte, so the server can build a whole pipeline's replies in one
//     reusable buffer and flush it with a single write.
//   - [Value] and [ReadValue] decode replies, for tests, the CLI and tools;
//     they favour simplicity over speed.
//
// The reading side never trusts a declared length: memory grows only as bytes
// actually arrive, so a client that announces a 512 MiB argument and then
// stalls costs kilobytes, not half a gigabyte.
//
// The package imports only the standard library, so that the codec can be
// fuzzed, benchmarked and reused (by the CLI, by tests of other packages)
// without pulling in the rest of the server.
package resp
