// Package transport is the data path between the nodes of a cluster:
// forwarded client requests, replication from a partition's primary to its
// replicas, and partition migration streams. Membership gossip and raft
// have transports of their own; this one carries only data.
//
// It owns the Transport interface (request/response Call and one-way Send
// between nodes named by address), its errors, and TCP, the implementation
// over TCP with optional TLS. Package memnet, beside it, implements the
// same interface in memory with seeded fault injection, so cluster tests
// run many nodes in one process. Callers depend on the interface, not on
// either implementation.
//
// It must not import other Engram packages: it sits below everything that
// uses it, and knows nothing of maps, keys or partitions. Message kinds
// are opaque bytes the caller defines.
//
// # Connections
//
// TCP keeps a small pool of long-lived connections per peer
// (TCPOptions.ConnsPerPeer), dialed on first use. Each carries many
// requests at once, matched to responses by a request id. A writer
// goroutine per connection writes whatever frames have queued since its
// last write in one system call, so concurrent Calls share syscalls; a
// reader goroutine hands responses to waiting callers and runs each
// request's Handler in its own goroutine, at most TCPOptions.MaxInFlight
// at once per connection; beyond that it stops reading, and TCP flow
// control pushes back on the peer.
//
// When a connection breaks, every Call pending on it fails at once with
// ErrUnreachable; the next Call dials again. After a failed dial, Calls to
// that peer fail at once for a short, growing pause (50ms doubling to 2s)
// so a dead node is not hammered. A caller whose context ends sends a
// cancel frame so the peer's handler context is cancelled too.
//
// # Handshake
//
// Before any frame, each new connection runs TLS (if configured) and then
// a challenge/response over the shared cluster secret, so the secret is
// never sent and a recorded exchange cannot be replayed:
//
//	dialer -> acceptor  hello_D = "ENGRAMDT" | version (1) | nonce (32) | addr len (1) | addr
//	acceptor -> dialer  hello_A, same layout
//	dialer -> acceptor  HMAC-SHA256(secret, "engram transport v1 dialer proof\x00" | hello_D | hello_A)
//	acceptor -> dialer  status (1): 0 ok, 1 bad secret (then the acceptor closes)
//	acceptor -> dialer  HMAC-SHA256(secret, "engram transport v1 acceptor proof\x00" | hello_D | hello_A)
//
// Nonces are fresh random bytes from each side; the role labels keep one
// side's proof from being reflected back as the other's. addr is the
// sender's advertised address (the Handler's from). A dialer with the
// wrong secret gets "peer rejected the cluster secret" (ErrAuth), and the
// acceptor logs the refusal; a dialer whose peer accepts it without
// proving the secret in turn gets "peer could not prove the cluster
// secret" (ErrAuth). The whole exchange is bounded by
// TCPOptions.DialTimeout. A hello of another version is answered with
// this side's hello and refused, so both sides can report the versions.
//
// # Frames
//
// After the handshake both directions carry frames:
//
//	offset  size  field
//	0       1     version: 1
//	1       1     type: 1 request, 2 response, 3 error, 4 one-way, 5 cancel
//	2       1     kind: the caller's message kind, echoed in the response
//	3       8     request id, big-endian; 0 for one-way
//	11      4     payload length, big-endian; at most the receiver's MaxFrame
//	15      n     payload
//
// An error frame's payload is an error code (1 handler error, 2 over the
// frame limit) and then the message text. A cancel frame has no payload.
// The frame types and error codes are append-only: a new version may add
// values, never reuse one. A frame with another version or an unknown type
// breaks the connection.
//
// The payload length is checked against MaxFrame before anything is
// allocated. A frame over the limit is read past in bounded memory and
// answered with an error frame (ErrTooLarge at the caller), so the
// connection survives it.
package transport
