package persist

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is how a map uses its backing store.
type Mode uint8

// Modes. Every mode but ModeNone reads through: a miss loads from the
// store.
const (
	ModeNone         Mode = iota // memory only
	ModeRead                     // read-through only: writes stay in memory
	ModeWriteThrough             // a write returns once the store has it
	ModeWriteBehind              // a write returns at once; written back after Delay
)

var modeNames = [...]string{"none", "read-through", "write-through", "write-behind"}

// String returns the mode's name as settings spell it.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Writes reports whether the mode writes changes back to the store.
func (m Mode) Writes() bool { return m == ModeWriteThrough || m == ModeWriteBehind }

// ParseMode parses a mode name (also "read" for read-through).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "none", "off":
		return ModeNone, nil
	case "read", "read-through":
		return ModeRead, nil
	case "write-through":
		return ModeWriteThrough, nil
	case "write-behind":
		return ModeWriteBehind, nil
	}
	return 0, fmt.Errorf("unknown store mode %q: want none, read-through, write-through or write-behind", trunc(s))
}

// Settings are one map's backing-store settings.
type Settings struct {
	Mode Mode
	// Store is the store URL; "" means the node's default store (--store).
	Store string
	// Delay is how long a write-behind change waits before it is written
	// back: writes to one key within it make one store write.
	Delay time.Duration
	// Batch is the most changes written back in one store batch.
	Batch int
	// MaxDirty bounds the changes waiting on one node for this map;
	// writes beyond it are refused until the store catches up.
	MaxDirty int64
	// MaxDirtyBytes bounds the memory those changes hold (their keys and
	// values, which stay in memory twice until written back).
	MaxDirtyBytes int64
	// NegativeTTL is how long "not in the store" is remembered after a
	// read-through miss (0: every miss asks the store).
	NegativeTTL time.Duration
}

// Defaults of Settings fields left zero.
const (
	DefaultDelay    = time.Second
	DefaultBatch    = 100
	DefaultMaxDirty = 1_000_000
	// DefaultMaxDirtyBytes is 256 MiB per map and node.
	DefaultMaxDirtyBytes = 256 << 20
	maxBatch             = 10_000
	maxDelay             = 24 * time.Hour
)

// WithDefaults fills the zero fields.
func (s Settings) WithDefaults() Settings {
	if s.Delay == 0 && s.Mode == ModeWriteBehind {
		s.Delay = DefaultDelay
	}
	if s.Batch == 0 {
		s.Batch = DefaultBatch
	}
	if s.MaxDirty == 0 {
		s.MaxDirty = DefaultMaxDirty
	}
	if s.MaxDirtyBytes == 0 {
		s.MaxDirtyBytes = DefaultMaxDirtyBytes
	}
	return s
}

// Validate checks the ranges.
func (s Settings) Validate() error {
	switch {
	case s.Mode > ModeWriteBehind:
		return fmt.Errorf("unknown store mode %d", s.Mode)
	case s.Delay < 0 || s.Delay > maxDelay:
		return fmt.Errorf("delay %v out of range [0, %v]", s.Delay, maxDelay)
	case s.Batch < 0 || s.Batch > maxBatch:
		return fmt.Errorf("batch %d out of range [1, %d]", s.Batch, maxBatch)
	case s.MaxDirty < 0:
		return errors.New("max_dirty must not be negative")
	case s.MaxDirtyBytes < 0:
		return errors.New("max_dirty_bytes must not be negative")
	case s.NegativeTTL < 0 || s.NegativeTTL > maxDelay:
		return fmt.Errorf("negative_ttl %v out of range [0, %v]", s.NegativeTTL, maxDelay)
	}
	return nil
}

// String formats the settings as ParseSettings reads them (the store URL
// is left out when it is the default; it is never logged elsewhere).
func (s Settings) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%s", s.Mode)
	if s.Mode == ModeNone {
		return b.String()
	}
	if s.Mode == ModeWriteBehind {
		fmt.Fprintf(&b, " delay=%s", s.Delay)
	}
	if s.Mode.Writes() {
		fmt.Fprintf(&b, " batch=%d max_dirty=%d max_dirty_bytes=%d", s.Batch, s.MaxDirty, s.MaxDirtyBytes)
	}
	fmt.Fprintf(&b, " negative_ttl=%s", s.NegativeTTL)
	if s.Store != "" {
		fmt.Fprintf(&b, " store=%s", s.Store)
	}
	return b.String()
}

// Fields returns the settings as field/value pairs, the store URL
// redacted by redact (nil: shown as is).
func (s Settings) Fields(redact func(string) string) []string {
	url := s.Store
	if redact != nil {
		url = redact(url)
	}
	return []string{"mode", s.Mode.String(), "store", url, "delay", s.Delay.String(),
		"batch", strconv.Itoa(s.Batch), "max_dirty", strconv.FormatInt(s.MaxDirty, 10),
		"max_dirty_bytes", strconv.FormatInt(s.MaxDirtyBytes, 10), "negative_ttl", s.NegativeTTL.String()}
}

// ParseSettings reads "field=value field=value ..." (the form String
// writes) on top of base.
func ParseSettings(base Settings, spec string) (Settings, error) {
	var pairs []string
	for _, f := range strings.Fields(spec) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return base, fmt.Errorf("store setting %q is not field=value", trunc(f))
		}
		pairs = append(pairs, k, v)
	}
	return ApplyFields(base, pairs)
}

// ApplyFields sets the fields named in pairs (field, value, field, value,
// ...) on top of base: mode, store, delay, batch, max_dirty,
// max_dirty_bytes, negative_ttl.
// Durations take Go syntax (500ms, 2s) or plain milliseconds.
func ApplyFields(base Settings, pairs []string) (Settings, error) {
	if len(pairs)%2 != 0 {
		return base, errors.New("store settings come in field value pairs")
	}
	s := base
	for i := 0; i < len(pairs); i += 2 {
		k, v := strings.ToLower(pairs[i]), pairs[i+1]
		var err error
		switch k {
		case "mode":
			s.Mode, err = ParseMode(v)
		case "store", "url":
			s.Store = strings.TrimSpace(v)
		case "delay":
			s.Delay, err = parseDuration(v)
		case "batch":
			s.Batch, err = strconv.Atoi(v)
			if err == nil && s.Batch < 1 {
				err = errors.New("must be at least 1")
			}
		case "max_dirty", "maxdirty":
			s.MaxDirty, err = strconv.ParseInt(v, 10, 64)
			if err == nil && s.MaxDirty < 1 {
				err = errors.New("must be at least 1")
			}
		case "max_dirty_bytes", "maxdirtybytes":
			s.MaxDirtyBytes, err = strconv.ParseInt(v, 10, 64)
			if err == nil && s.MaxDirtyBytes < 1 {
				err = errors.New("must be at least 1")
			}
		case "negative_ttl", "negativettl":
			s.NegativeTTL, err = parseDuration(v)
		default:
			return base, fmt.Errorf("unknown store setting %q: want mode, store, delay, batch, max_dirty, max_dirty_bytes or negative_ttl", trunc(k))
		}
		if err != nil {
			return base, fmt.Errorf("store setting %s: %v", k, err)
		}
	}
	if err := s.Validate(); err != nil {
		return base, err
	}
	return s, nil
}

func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > int64(maxDelay/time.Millisecond) {
			return 0, fmt.Errorf("%d ms out of range", n)
		}
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (500ms, 2s, or milliseconds)", trunc(v))
	}
	if d < 0 || d > maxDelay {
		return 0, fmt.Errorf("%v out of range", d)
	}
	return d, nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
