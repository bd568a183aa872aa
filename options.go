package engram

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// SetOption qualifies a write (Set, SetIf, UnsafeSet, PutAll). Build one
// with TTL, KeepTTL, IfAbsent, IfPresent or WithSeq; the zero SetOption
// does nothing, which lets callers pass an option chosen at run time.
//
// It is a small value rather than a function so that passing options
// costs no allocation on the write path.
type SetOption struct {
	kind optionKind
	ttl  time.Duration
	seq  uint64
}

type optionKind uint8

const (
	optNone optionKind = iota
	optTTL
	optKeepTTL
	optIfAbsent
	optIfPresent
	optSeq
)

// TTL makes the item expire d after the write, with millisecond precision
// (a positive d shorter than a millisecond counts as one). TTL(0) means no
// expiry, so a computed TTL can be passed as is; a negative d is an error.
func TTL(d time.Duration) SetOption { return SetOption{kind: optTTL, ttl: d} }

// KeepTTL keeps the expiry the key already has (Redis SET KEEPTTL); a new
// key gets none. It cannot be combined with TTL.
func KeepTTL() SetOption { return SetOption{kind: optKeepTTL} }

// IfAbsent writes only if the key does not exist (Redis SET NX). Use SetIf
// to learn whether the write happened.
func IfAbsent() SetOption { return SetOption{kind: optIfAbsent} }

// IfPresent writes only if the key exists (Redis SET XX). Use SetIf to
// learn whether the write happened.
func IfPresent() SetOption { return SetOption{kind: optIfPresent} }

// WithSeq makes the write sequence-checked (jc_s): it fails with
// ErrOutOfSequence, changing nothing, if n is lower than the map's current
// sequence, and otherwise makes n the map's sequence. It combines only
// with TTL, because the sequence-checked command of the Redis protocol
// (SETSEQ) has no conditions.
func WithSeq(n uint64) SetOption { return SetOption{kind: optSeq, seq: n} }

// SetParams is what a list of SetOptions asks for, resolved and checked.
// Implementations of this package's API outside it (the client package)
// read options through it; applications do not need it.
type SetParams struct {
	// TTL is the time to live, rounded up to whole milliseconds; 0 means
	// no expiry.
	TTL       time.Duration
	KeepTTL   bool   // keep the key's current expiry
	IfAbsent  bool   // write only if the key is absent
	IfPresent bool   // write only if the key is present
	Seq       uint64 // the sequence number, when HasSeq
	HasSeq    bool   // the write is sequence-checked
}

// ResolveSetOptions resolves the options of Set, SetIf and UnsafeSet. An
// option given twice takes its last value; options that contradict each
// other are an error.
func ResolveSetOptions(opts []SetOption) (SetParams, error) {
	var p SetParams
	for _, o := range opts {
		switch o.kind {
		case optNone:
		case optTTL:
			if o.ttl < 0 {
				return SetParams{}, fmt.Errorf("engram: TTL must not be negative, got %v", o.ttl)
			}
			p.TTL = roundUp(o.ttl, time.Millisecond)
		case optKeepTTL:
			p.KeepTTL = true
		case optIfAbsent:
			p.IfAbsent = true
		case optIfPresent:
			p.IfPresent = true
		case optSeq:
			p.Seq, p.HasSeq = o.seq, true
		default:
			return SetParams{}, fmt.Errorf("BUG: engram: unknown set option %d", o.kind)
		}
	}
	switch {
	case p.KeepTTL && p.TTL > 0:
		return SetParams{}, errors.New("engram: KeepTTL and TTL cannot be combined")
	case p.IfAbsent && p.IfPresent:
		return SetParams{}, errors.New("engram: IfAbsent and IfPresent cannot be combined")
	case p.HasSeq && (p.KeepTTL || p.IfAbsent || p.IfPresent):
		return SetParams{}, errors.New("engram: WithSeq combines only with TTL")
	}
	return p, nil
}

// ResolvePutAllOptions resolves the options of PutAll, which accepts only
// TTL and WithSeq: a batch applies one expiry to every item and is
// sequence-checked once.
func ResolvePutAllOptions(opts []SetOption) (SetParams, error) {
	p, err := ResolveSetOptions(opts)
	if err != nil {
		return SetParams{}, err
	}
	if p.KeepTTL || p.IfAbsent || p.IfPresent {
		return SetParams{}, errors.New("engram: PutAll accepts only the TTL and WithSeq options")
	}
	return p, nil
}

// roundUp rounds a positive d up to a multiple of unit, so a short but
// non-zero duration never becomes zero (which would mean "none"). Within
// a unit of the largest Duration it rounds down instead of overflowing.
func roundUp(d, unit time.Duration) time.Duration {
	r := d % unit
	switch {
	case d <= 0 || r == 0:
		return d
	case d > math.MaxInt64-unit:
		return d - r
	}
	return d + unit - r
}
