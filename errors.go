package engram

import (
	"errors"
	"strings"

	"github.com/engramdb/engram/internal/store"
)

// Errors callers branch on. The embedded Map and the client package both
// return errors that match these with errors.Is, so code written against
// one works against the other. The error a call returns carries the
// specifics (sizes, limits, sequence numbers) in its message; only the
// identity is shared.
var (
	// ErrNotFound: the key is absent or expired. It is returned bare, with
	// no detail, so a miss costs no allocation.
	ErrNotFound = errors.New("engram: key not found")
	// ErrKeyTooLong: the key is longer than the node's maximum key length.
	ErrKeyTooLong = errors.New("key too long")
	// ErrValueTooLarge: the value is larger than the node's maximum value
	// length.
	ErrValueTooLarge = errors.New("value too large")
	// ErrMapFull: the map already holds its maximum number of keys.
	ErrMapFull = errors.New("map is full")
	// ErrOutOfMemory: the node is at its memory bound and its eviction
	// policy does not (or cannot) make room.
	ErrOutOfMemory = errors.New("out of memory")
	// ErrOutOfSequence: a sequence-checked operation carried a number lower
	// than the map's current sequence (jc_s out_of_seq). Nothing changed.
	ErrOutOfSequence = errors.New("out of sequence")
	// ErrNotInteger: an increment found a value that is not a 64-bit
	// decimal integer, or the result would overflow one.
	ErrNotInteger = errors.New("value is not an integer or out of range")
	// ErrClosed: the Node (or client) was closed.
	ErrClosed = errors.New("engram: closed")
	// ErrUnavailable: a cluster could not run the call in time, and
	// retrying later may succeed: the key's partition is changing hands
	// (a node joined, left or failed), the node has no partition table
	// yet, its replicas did not acknowledge a write in time (the write
	// may have been applied), or the node lost contact with the
	// majority of the cluster (a network split).
	ErrUnavailable = errors.New("cluster unavailable")
	// ErrStore: the map's backing store failed (a read-through miss could
	// not be loaded, or a write-through write or Save did not reach it).
	// The key may exist in the store: this is not ErrNotFound.
	ErrStore = errors.New("backing store failed")
)

// Error is an error from the engine or a server that matches one of the
// sentinel errors above while keeping its own, detailed message.
type Error struct {
	kind  error
	cause error
}

// NewError returns an error whose message is cause's and which matches
// kind with errors.Is (and cause with errors.As/Unwrap). Implementations
// of this package's API outside it (the client package) use it to map
// their own errors onto the shared sentinels; applications do not need it.
func NewError(kind, cause error) *Error { return &Error{kind: kind, cause: cause} }

// Error returns the detailed message.
func (e *Error) Error() string { return e.cause.Error() }

// Is reports whether target is the sentinel this error stands for.
func (e *Error) Is(target error) bool { return target == e.kind }

// Unwrap returns the underlying error, so errors.As still finds it.
func (e *Error) Unwrap() error { return e.cause }

// publicError maps an engine error onto the sentinel callers branch on.
// Errors with no public sentinel (such as too many maps) pass through.
func publicError(err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch {
	case errors.Is(err, store.ErrKeyTooLong):
		kind = ErrKeyTooLong
	case errors.Is(err, store.ErrValueTooLarge):
		kind = ErrValueTooLarge
	case errors.Is(err, store.ErrMapFull):
		kind = ErrMapFull
	case errors.Is(err, store.ErrOOM):
		kind = ErrOutOfMemory
	case errors.Is(err, store.ErrOutOfSequence):
		kind = ErrOutOfSequence
	case errors.Is(err, store.ErrNotInteger), errors.Is(err, store.ErrOverflow):
		kind = ErrNotInteger
	default:
		return err
	}
	return NewError(kind, err)
}

// replyError maps the error reply msg of a command run through the
// cluster (without its '-'; prefixes as in internal/server/errors.go)
// onto the sentinel callers branch on, keeping the whole message.
func replyError(msg string) error {
	var kind error
	switch {
	case strings.HasPrefix(msg, "OOM "):
		kind = ErrOutOfMemory
	case strings.HasPrefix(msg, "OUTOFSEQ "):
		kind = ErrOutOfSequence
	case strings.HasPrefix(msg, "MAPFULL "):
		kind = ErrMapFull
	case strings.HasPrefix(msg, "STORE "):
		kind = ErrStore
	case strings.HasPrefix(msg, "TRYAGAIN "), strings.HasPrefix(msg, "CLUSTERDOWN "):
		kind = ErrUnavailable
	case strings.HasPrefix(msg, "ERR "+store.ErrKeyTooLong.Error()):
		kind = ErrKeyTooLong
	case strings.HasPrefix(msg, "ERR "+store.ErrValueTooLarge.Error()):
		kind = ErrValueTooLarge
	case strings.HasPrefix(msg, "ERR "+store.ErrNotInteger.Error()),
		strings.HasPrefix(msg, "ERR "+store.ErrOverflow.Error()):
		kind = ErrNotInteger
	default:
		return errors.New("engram: " + msg)
	}
	return NewError(kind, errors.New(msg))
}
