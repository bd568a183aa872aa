package transport

import (
	"context"
	"errors"
	"fmt"
)

// Handler serves one request from a peer and returns the response payload,
// or an error that the caller receives as a *RemoteError. It is called
// concurrently, each request in its own goroutine.
//
// from is the address the peer advertises (its Addr), not the ephemeral
// address of the socket, so a handler can name the node that asked. kind is
// the application's message kind; the transport does not interpret it. req
// belongs to the handler: it is a fresh buffer that nothing else touches.
// ctx is cancelled when the caller gives up (its deadline passes or it is
// cancelled), when the connection breaks, or when the transport closes; a
// handler that honours ctx frees its slot for other requests.
//
// For a one-way message (Send) the response is discarded.
type Handler func(ctx context.Context, from string, kind uint8, req []byte) ([]byte, error)

// Transport moves request/response messages between nodes. It is the data
// path of the cluster: forwarded client requests, replication, partition
// migration. Implementations are safe for concurrent use.
//
// Delivery is at most once and unordered between separate messages: two
// Sends, or two Calls made concurrently, may arrive in either order. A Call
// that fails with ErrUnreachable or a context error after its request left
// may or may not have run on the peer, so what callers retry must be
// idempotent or fenced (epochs, sequence numbers).
type Transport interface {
	// Call sends req to the node at addr and waits for its response,
	// ctx's deadline or cancellation, or the connection's failure. It
	// never hangs: a dead peer yields an error within ctx's deadline. The
	// caller may reuse req once Call returns. A zero-length response may
	// arrive as nil.
	Call(ctx context.Context, addr string, kind uint8, req []byte) ([]byte, error)
	// Send delivers req to the node at addr without waiting for a response
	// (unsafe writes, fire-and-forget). It returns an error only if the
	// message could not be queued; once queued it may still be lost. The
	// caller may reuse req once Send returns.
	Send(ctx context.Context, addr string, kind uint8, req []byte) error
	// Addr returns this node's address as peers dial it.
	Addr() string
	// Close stops the transport: pending Calls fail with ErrClosed,
	// running handlers see their context cancelled, and Close waits for
	// them and for the transport's goroutines to return.
	Close() error
}

// Errors callers branch on. Each is wrapped with the address and cause, so
// test with errors.Is.
var (
	// ErrUnreachable means the peer could not be reached or the connection
	// to it broke: retryable, possibly on another owner. The request may
	// have run if it was already sent.
	ErrUnreachable = errors.New("peer unreachable")
	// ErrClosed means this transport was closed.
	ErrClosed = errors.New("transport closed")
	// ErrTooLarge means a request or response exceeded the frame limit
	// (MaxFrame); nothing was delivered and the connection is still usable.
	ErrTooLarge = errors.New("message exceeds the frame limit")
	// ErrAuth means the peer and this node do not share the cluster secret
	// (or a TLS certificate was not trusted): a configuration error that
	// retrying will not fix.
	ErrAuth = errors.New("cluster authentication failed")
	// ErrNotSent marks a Call that failed before its request left this
	// node (no connection could be made, the transport is closed): the
	// peer never ran it, so a write may be sent elsewhere without running
	// twice. A Call error without it may come after the peer ran the
	// request.
	ErrNotSent = errors.New("request not sent")
)

// notSent marks err as ErrNotSent.
func notSent(err error) error { return fmt.Errorf("%w: %w", ErrNotSent, err) }

// RemoteError is an error returned by the peer's handler, carried back as
// text: the peer's error values cannot cross the wire, so callers that need
// to branch on a remote condition encode it in the response instead.
type RemoteError struct {
	// Msg is the handler's error text.
	Msg string
}

// Error implements error.
func (e *RemoteError) Error() string { return "remote error: " + e.Msg }

// DefaultMaxFrame is the default bound on one message's payload: large
// enough for a migration chunk, small enough that a bad length field cannot
// make a node allocate gigabytes.
const DefaultMaxFrame = 64 << 20

// MaxFrameLimit is the largest MaxFrame the wire format can carry: the
// payload length field is 32 bits.
const MaxFrameLimit = 1<<32 - 1
