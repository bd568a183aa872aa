package server

import (
	"errors"

	"github.com/engramdb/engram/internal/store"
)

// errorTable maps engine errors to the Redis error prefix clients branch
// on. The rest of the message is the error's own text, which says what was
// wrong and what the limit is.
var errorTable = []struct {
	err    error
	prefix string
}{
	{store.ErrOOM, "OOM"},
	{store.ErrOutOfSequence, "OUTOFSEQ"},
	{store.ErrMapFull, "MAPFULL"},
	{store.ErrKeyTooLong, "ERR"},
	{store.ErrValueTooLarge, "ERR"},
	{store.ErrNotInteger, "ERR"},
	{store.ErrNotFloat, "ERR"},
	{store.ErrOverflow, "ERR"},
}

// replyError renders err as a Redis error line (without the leading '-').
func replyError(err error) string {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			msg := err.Error()
			// Redis clients match exact texts for these: keep them bare.
			switch e.err {
			case store.ErrNotInteger, store.ErrNotFloat, store.ErrOverflow:
				msg = e.err.Error()
			}
			return e.prefix + " " + msg
		}
	}
	return "ERR " + err.Error()
}

// Canonical Redis error texts.
const (
	errSyntax     = "ERR syntax error"
	errNotInt     = "ERR value is not an integer or out of range"
	errNotFloat   = "ERR value is not a valid float"
	errNoAuth     = "NOAUTH Authentication required."
	errWrongPass  = "WRONGPASS invalid username-password pair or user is disabled."
	errNoPassword = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
)

// errInternalMap refuses a client's use of an internal map's name (see
// store.IsInternal).
const errInternalMap = "ERR invalid map name: names starting with a zero byte are reserved for Engram's internal maps"
