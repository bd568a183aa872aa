package backing

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// Store is a permanent store behind the cache. See the package
// documentation for the contract every implementation keeps.
type Store interface {
	// Load returns the value of key in map m. A missing key (or map) is
	// found = false with a nil error.
	Load(ctx context.Context, m string, key []byte) (value []byte, found bool, err error)
	// Store writes value under key in map m, replacing any previous value.
	// When it returns nil the store has the value.
	Store(ctx context.Context, m string, key, value []byte) error
	// Delete removes key from map m; deleting a missing key is not an error.
	Delete(ctx context.Context, m string, key []byte) error
	// StoreBatch stores several entries of one map; for a key given twice
	// the later entry wins. A batch is not atomic: after an error any
	// subset may have been applied, and retrying the whole batch is safe.
	StoreBatch(ctx context.Context, m string, entries []Entry) error
	// DeleteBatch deletes several keys of one map, with StoreBatch's rules.
	DeleteBatch(ctx context.Context, m string, keys [][]byte) error
	// List returns one page of the keys of map m.
	List(ctx context.Context, m string, opts ListOptions) (ListPage, error)
	// Close releases the store; later calls fail with ErrClosed.
	Close() error
}

// Entry is one key and value of a StoreBatch.
type Entry struct {
	Key, Value []byte
}

// DefaultListLimit is the page size of a List with no Limit.
const DefaultListLimit = 1000

// ListOptions selects a page of keys.
type ListOptions struct {
	// Prefix keeps only keys that start with it.
	Prefix []byte
	// Cursor is the Next of the previous page; "" starts at the beginning.
	// Pass the same Prefix with it.
	Cursor string
	// Limit is the most keys returned; <= 0 means DefaultListLimit.
	Limit int
}

// ListPage is one page of keys, in ascending byte order.
type ListPage struct {
	Keys [][]byte
	// Next is the cursor of the next page, "" when this page is the last.
	Next string
}

// The kinds of store errors (an *Error's Kind).
var (
	// ErrUnavailable: the store could not do the operation (I/O error,
	// network, permissions, full disk). Retrying later may work.
	ErrUnavailable = errors.New("backing store unavailable")
	// ErrMisconfigured: the store refused the operation because of how it
	// is set up: missing bucket, refused credentials, access denied, wrong
	// region, untrusted TLS certificate. Retrying fails the same way until
	// an operator fixes the configuration, so a caller that must not lose
	// data (the write-behind queue) keeps it, retries at its slowest pace
	// and reports the error loudly; a read-through miss returns it.
	ErrMisconfigured = errors.New("backing store misconfigured")
	// ErrCorrupt: the store holds data this package did not write.
	ErrCorrupt = errors.New("backing store data corrupt")
	// ErrInvalid: a bad argument (store URL, list cursor).
	ErrInvalid = errors.New("backing store: invalid request")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("backing store closed")
	// ErrUnsupported: the store URL names a kind of store this build
	// cannot open.
	ErrUnsupported = errors.New("backing store not supported")
)

// Error is the error of a store operation.
type Error struct {
	Op   string // "load", "store", "delete", "list", "open", ...
	Map  string // the map, if the operation had one
	Kind error  // one of the Err* sentinels, or nil for a context error
	Err  error  // the cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
		b.WriteString(": ")
	} else {
		b.WriteString("backing store: ")
	}
	b.WriteString(e.Op)
	if e.Map != "" {
		b.WriteString(" map ")
		m := e.Map
		if len(m) > 64 {
			m = m[:64] + "..."
		}
		b.WriteString(strconv.Quote(m))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// ctxErr returns an *Error for a done context, or nil.
func ctxErr(ctx context.Context, op, m string) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Map: m, Err: err}
	}
	return nil
}
