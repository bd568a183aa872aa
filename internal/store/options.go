package store

import (
	"errors"
	"fmt"
	"time"
)

// Policy says what a write does when the store is over its memory bound.
type Policy uint8

// Eviction policies, named as Redis names them.
const (
	// NoEviction refuses writes with ErrOOM; reads and deletes still work.
	NoEviction Policy = iota
	// AllKeysLRU evicts the least recently used of a few sampled keys.
	AllKeysLRU
	// AllKeysLFU evicts the least frequently used of a few sampled keys.
	AllKeysLFU
	// VolatileLRU evicts like AllKeysLRU but only keys that have a TTL.
	VolatileLRU
	// VolatileTTL evicts the sampled key with a TTL that expires soonest.
	VolatileTTL
	// AllKeysRandom evicts a random key.
	AllKeysRandom
)

var policyNames = [...]string{"noeviction", "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-ttl", "allkeys-random"}

// String returns the Redis name of the policy.
func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", p)
}

// ParsePolicy parses a Redis policy name such as "allkeys-lru".
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if n == s {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown eviction policy %q (want one of noeviction, allkeys-lru, allkeys-lfu, volatile-lru, volatile-ttl, allkeys-random)", s)
}

// Options configure a Store. The zero value is usable: EnsureDefaults fills
// every unset field.
type Options struct {
	// Partitions is how many partitions each map is split into. It must
	// equal the cluster's partition count, because a partition is the unit
	// the cluster moves between nodes. Default 271: a prime, so that
	// structured keys spread evenly, and enough for ~50 nodes.
	Partitions int
	// MaxMemory bounds the bytes of live records and index entries; 0 means
	// no bound. Slab fragmentation comes on top and is kept under 2x by
	// compaction.
	MaxMemory int64
	// Policy applies when MaxMemory is reached. Default NoEviction, as in
	// Redis: losing data silently must be a choice.
	Policy Policy
	// MaxKeyLen is the longest key accepted. Default 64 KiB; at most 16 MiB
	// (the record header keeps key lengths in 24 bits).
	MaxKeyLen int
	// MaxValueLen is the largest value accepted. Default 512 MiB, Redis's
	// largest string.
	MaxValueLen int64
	// MaxKeysPerMap is the default bound on the keys of one map; 0 means no
	// bound. Maps may override it.
	MaxKeysPerMap int64
	// MaxMaps bounds how many maps OpenMap creates. Default 10000: each
	// map costs a partition table (about 2 KiB), so names a client makes
	// up must not grow memory without bound.
	MaxMaps int
	// EvictionSamples is how many keys an eviction samples. Default 5, as
	// Redis: good LRU approximation for little work.
	EvictionSamples int
	// SweepInterval is how often the background job removes expired items.
	// Default 100ms (Redis's hz 10). Expired items are never returned even
	// before the job removes them.
	SweepInterval time.Duration
	// SweepBudget is how many records one sweep tick examines at most, so a
	// large keyspace is swept in slices and never stalls writers for long.
	SweepBudget int
	// Clock returns the current time in Unix milliseconds. Default: a
	// coarse wall clock (internal/clock) owned by the store, because the
	// system clock costs more than the rest of a hit. Tests set it to drive
	// expiry deterministically.
	Clock func() int64
	// Observer receives write and delete events; nil means none.
	Observer Observer
	// ExternalMemory, when set, returns bytes held on behalf of the
	// keyspace outside the store (JSON query indexes): they count against
	// MaxMemory and in Stats.UsedMemory. It is called on every write when
	// MaxMemory is set: it must be an atomic load.
	ExternalMemory func() int64
}

// Largest key the record format can hold.
const maxKeyLenLimit = 1<<24 - 1

// EnsureDefaults returns o with every zero field set to its default.
func (o Options) EnsureDefaults() Options {
	if o.Partitions == 0 {
		o.Partitions = 271
	}
	if o.MaxKeyLen == 0 {
		o.MaxKeyLen = 64 << 10
	}
	if o.MaxValueLen == 0 {
		o.MaxValueLen = 512 << 20
	}
	if o.MaxMaps == 0 {
		o.MaxMaps = 10000
	}
	if o.EvictionSamples == 0 {
		o.EvictionSamples = 5
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = 100 * time.Millisecond
	}
	if o.SweepBudget == 0 {
		o.SweepBudget = 20000
	}
	return o
}

// Validate reports the first setting that is out of range.
func (o Options) Validate() error {
	switch {
	case o.Partitions < 1 || o.Partitions > 65536:
		return fmt.Errorf("partitions must be between 1 and 65536, got %d", o.Partitions)
	case o.MaxMemory < 0:
		return fmt.Errorf("max memory must not be negative, got %d", o.MaxMemory)
	case o.MaxKeyLen < 1 || o.MaxKeyLen > maxKeyLenLimit:
		return fmt.Errorf("max key length must be between 1 and %d, got %d", maxKeyLenLimit, o.MaxKeyLen)
	case o.MaxValueLen < 0 || o.MaxValueLen > 1<<32-1-(1<<20):
		return fmt.Errorf("max value length must be between 0 and 4 GiB, got %d", o.MaxValueLen)
	case o.MaxKeysPerMap < 0:
		return fmt.Errorf("max keys per map must not be negative, got %d", o.MaxKeysPerMap)
	case int(o.Policy) >= len(policyNames):
		return fmt.Errorf("unknown eviction policy %d", o.Policy)
	case o.MaxMaps < 1:
		return fmt.Errorf("max maps must be positive, got %d", o.MaxMaps)
	case o.EvictionSamples < 1 || o.EvictionSamples > 64:
		return fmt.Errorf("eviction samples must be between 1 and 64, got %d", o.EvictionSamples)
	case o.SweepInterval < time.Millisecond:
		return fmt.Errorf("sweep interval must be at least 1ms, got %v", o.SweepInterval)
	case o.SweepBudget < 1:
		return fmt.Errorf("sweep budget must be positive, got %d", o.SweepBudget)
	}
	return nil
}

// Errors callers branch on. Each is wrapped with the specifics (sizes,
// limits, sequence numbers) so the message a user sees says what to change.
var (
	// ErrKeyTooLong: the key is longer than the configured maximum.
	ErrKeyTooLong = errors.New("key too long")
	// ErrValueTooLarge: the value is larger than the configured maximum.
	ErrValueTooLarge = errors.New("value too large")
	// ErrMapFull: the map already holds its maximum number of keys.
	ErrMapFull = errors.New("map is full")
	// ErrOOM: the store is over its memory bound and the policy does not
	// (or cannot) evict. The text is Redis's, which clients recognise.
	ErrOOM = errors.New("command not allowed when used memory > 'maxmemory'")
	// ErrOutOfSequence: a sequence-checked operation carried a number lower
	// than the map's current maximum (jc_s out_of_seq).
	ErrOutOfSequence = errors.New("out of sequence")
	// ErrNotInteger: an increment found a value that is not a 64-bit integer.
	ErrNotInteger = errors.New("value is not an integer or out of range")
	// ErrNotFloat: a float increment found a value that is not a float.
	ErrNotFloat = errors.New("value is not a valid float")
	// ErrOverflow: an increment would overflow a 64-bit integer.
	ErrOverflow = errors.New("increment or decrement would overflow")
	// ErrShardFull: one partition of one map ran out of slab slots; only a
	// pathological mix of huge values can get here.
	ErrShardFull = errors.New("partition storage exhausted")
	// ErrTooManyMaps: creating one more map would pass Options.MaxMaps.
	ErrTooManyMaps = errors.New("too many maps")
	// ErrInternalMap: the operation is not for internal maps.
	ErrInternalMap = errors.New("internal map")
)
