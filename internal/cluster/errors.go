package cluster

import (
	"errors"
	"fmt"

	"github.com/engramdb/engram/internal/store"
)

// codes maps the engine errors that cross the wire to their codes.
var codes = []struct {
	code Code
	err  error
}{
	{CodeOOM, store.ErrOOM},
	{CodeKeyTooLong, store.ErrKeyTooLong},
	{CodeValueTooLarge, store.ErrValueTooLarge},
	{CodeTooManyMaps, store.ErrTooManyMaps},
	{CodeOutOfSequence, store.ErrOutOfSequence},
}

// codeOf returns err's code (CodeNone if it has none).
func codeOf(err error) Code {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeNone
}

// errorOf rebuilds a StatusError response's error, wrapping the engine
// error its code names.
func errorOf(code Code, where, msg string) error {
	for _, c := range codes {
		if c.code == code {
			return fmt.Errorf("%s: %w (%s)", where, c.err, msg)
		}
	}
	return fmt.Errorf("%s: %s", where, msg)
}

// ErrRetryable matches (with errors.Is) every error after which the same
// request may succeed if retried: the cluster was changing, a node was
// unreachable or slow. Retrying a write is safe (it is idempotent in
// effect) but a Delete retried after ErrReplicaTimeout reports false.
var ErrRetryable = errors.New("retryable cluster error")

// retryableError is a sentinel that also matches ErrRetryable.
type retryableError struct{ msg string }

func (e *retryableError) Error() string { return e.msg }

// Is makes every retryable sentinel match ErrRetryable.
func (e *retryableError) Is(target error) bool { return target == ErrRetryable }

func retryable(msg string) error { return &retryableError{msg: msg} }

// Retryable errors. Each is wrapped with details; test with errors.Is.
var (
	// ErrWrongEpoch: the owner's partition table has another epoch than
	// the request's (fencing): one of the two nodes has not seen the
	// latest table yet.
	ErrWrongEpoch = retryable("partition table epochs differ")
	// ErrNotOwner: the node asked does not own the key's partition.
	ErrNotOwner = retryable("node does not own the partition")
	// ErrNoTable: this node has no partition table yet, or the key's
	// partition has no owner.
	ErrNoTable = retryable("no partition table or no owner for the partition")
	// ErrUnreachable: the owner could not be reached.
	ErrUnreachable = retryable("partition owner unreachable")
	// ErrBacklog: a replica is too far behind; the write was refused
	// before being applied.
	ErrBacklog = retryable("replication backlog full")
	// ErrReplicaTimeout: an AckAll write was applied on the primary but
	// not every replica acknowledged it before the deadline (a replica is
	// unreachable or slow, until the control plane fails it over).
	ErrReplicaTimeout = retryable("replicas did not acknowledge the write in time (it was applied on the primary)")
	// ErrWriteInDoubt: the connection to the primary broke after a write
	// was sent: it may have been applied (and replicated), so it is not
	// sent again; the client decides (TRYAGAIN, as for ErrReplicaTimeout).
	ErrWriteInDoubt = retryable("the primary failed while running the write: it may have been applied")
	// ErrReadUnconfirmed: a consistent read on the primary found a
	// value whose write some replica has not acknowledged yet (it may be
	// cut off), and the replica did not acknowledge it in time: the
	// value could still be lost in a failover, so it is not returned.
	ErrReadUnconfirmed = retryable("the value read is not yet on every replica (a write to its partition is still unacknowledged)")
	// ErrTimeout: the request's context ended before any attempt could
	// complete.
	ErrTimeout = retryable("cluster request timed out")
	// ErrNotReady: the node receiving a message is not bound yet.
	ErrNotReady = retryable("cluster node not ready")
)

// IsRetryable reports whether err is worth retrying.
func IsRetryable(err error) bool { return errors.Is(err, ErrRetryable) }

// giveUp builds the error returned when ctx ended during retries: the last
// attempt's error (retryable) carries the reason.
func giveUp(last, ctxErr error) error {
	if last == nil {
		return fmt.Errorf("%w: %w", ErrTimeout, ctxErr)
	}
	return fmt.Errorf("%w (gave up: %w)", last, ctxErr)
}
