package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/engramdb/engram"
)

// Map is a handle on one map of a remote node. Its methods mirror
// engram.Map's; where behaviour differs because of the protocol, the
// method says so. It is safe for concurrent use.
type Map struct {
	c    *Client
	name string
	rdb  *redis.Client // connections that SELECTed name; nil after Close

	mu    sync.Mutex
	nodes map[string]*redis.Client // RESP address -> pool to that owner (RouteToOwners)
}

// Name returns the map's name.
func (m *Map) Name() string { return m.name }

// check is the guard every call starts with.
func (m *Map) check(ctx context.Context) error { return m.c.check(ctx) }

// Get returns key's value, or engram.ErrNotFound.
func (m *Map) Get(ctx context.Context, key string) ([]byte, error) {
	return m.GetTo(ctx, nil, key)
}

// GetTo appends key's value to dst and returns the extended slice, or dst
// and engram.ErrNotFound. Unlike the embedded Map it allocates: go-redis
// reads the reply into a buffer of its own.
func (m *Map) GetTo(ctx context.Context, dst []byte, key string) ([]byte, error) {
	if err := m.check(ctx); err != nil {
		return dst, err
	}
	var v []byte
	err := m.keyed(ctx, key, true, func(rdb *redis.Client) (err error) {
		v, err = rdb.Get(ctx, key).Bytes()
		return err
	})
	if err != nil {
		return dst, mapError(err)
	}
	return append(dst, v...), nil
}

// Set writes key = value (SET, or SETSEQ with WithSeq). With IfAbsent or
// IfPresent a write whose condition fails is skipped without error; use
// SetIf to learn whether it happened.
func (m *Map) Set(ctx context.Context, key string, value []byte, opts ...engram.SetOption) error {
	_, err := m.set(ctx, "set", key, value, opts)
	return err
}

// SetIf is Set reporting whether the value was written: false only when an
// IfAbsent or IfPresent condition failed.
func (m *Map) SetIf(ctx context.Context, key string, value []byte, opts ...engram.SetOption) (bool, error) {
	return m.set(ctx, "set", key, value, opts)
}

// UnsafeSet is Set sent as UNSAFESET, which a cluster acknowledges without
// waiting for replicas. With WithSeq it is SETSEQ, which always waits.
func (m *Map) UnsafeSet(ctx context.Context, key string, value []byte, opts ...engram.SetOption) error {
	_, err := m.set(ctx, "unsafeset", key, value, opts)
	return err
}

func (m *Map) set(ctx context.Context, cmd, key string, value []byte, opts []engram.SetOption) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, err
	}
	p, err := engram.ResolveSetOptions(opts)
	if err != nil {
		return false, err
	}
	var args []any
	if p.HasSeq {
		// SETSEQ seq key value [PX ms]
		args = []any{"setseq", strconv.FormatUint(p.Seq, 10), key, value}
	} else {
		args = []any{cmd, key, value}
	}
	route := !p.HasSeq // a sequence-checked write involves the map's sequence too: the seed
	if p.TTL > 0 {
		args = append(args, "px", p.TTL.Milliseconds())
	}
	if p.KeepTTL {
		args = append(args, "keepttl")
	}
	switch {
	case p.IfAbsent:
		args = append(args, "nx")
	case p.IfPresent:
		args = append(args, "xx")
	}
	if route {
		err = m.keyed(ctx, key, false, func(rdb *redis.Client) error { return rdb.Do(ctx, args...).Err() })
	} else {
		err = m.rdb.Do(ctx, args...).Err()
	}
	if errors.Is(err, redis.Nil) {
		return false, nil // SET NX/XX replies nil when its condition fails
	}
	if err != nil {
		return false, mapError(err)
	}
	return true, nil
}

// Delete removes key and reports whether it was present (DEL).
func (m *Map) Delete(ctx context.Context, key string) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, err
	}
	var n int64
	err := m.keyed(ctx, key, false, func(rdb *redis.Client) (err error) {
		n, err = rdb.Del(ctx, key).Result()
		return err
	})
	return n == 1, mapError(err)
}

// DeleteSeq is Delete checked against the map's sequence (DELSEQ).
func (m *Map) DeleteSeq(ctx context.Context, key string, seq uint64) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, err
	}
	n, err := m.rdb.Do(ctx, "delseq", strconv.FormatUint(seq, 10), key).Int64()
	return n == 1, mapError(err)
}

// Contains reports whether key is present (EXISTS).
func (m *Map) Contains(ctx context.Context, key string) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, err
	}
	var n int64
	err := m.keyed(ctx, key, true, func(rdb *redis.Client) (err error) {
		n, err = rdb.Exists(ctx, key).Result()
		return err
	})
	return n == 1, mapError(err)
}

// TTL returns key's remaining time to live (PTTL), engram.NoExpiry if it
// never expires, or engram.ErrNotFound.
func (m *Map) TTL(ctx context.Context, key string) (time.Duration, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	// Do rather than PTTL: go-redis turns -1 and -2 into durations.
	var ms int64
	err := m.keyed(ctx, key, true, func(rdb *redis.Client) (err error) {
		ms, err = rdb.Do(ctx, "pttl", key).Int64()
		return err
	})
	switch {
	case err != nil:
		return 0, mapError(err)
	case ms == -2:
		return 0, engram.ErrNotFound
	case ms == -1:
		return engram.NoExpiry, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Expire makes key expire d from now (PEXPIRE, millisecond precision,
// rounded up) and reports whether key exists. A d of zero or less deletes
// the key at once.
func (m *Map) Expire(ctx context.Context, key string, d time.Duration) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, err
	}
	var ms int64
	if d > 0 {
		ms = ceilDiv(d, time.Millisecond)
	}
	var n int64
	err := m.keyed(ctx, key, false, func(rdb *redis.Client) (err error) {
		n, err = rdb.Do(ctx, "pexpire", key, ms).Int64()
		return err
	})
	return n == 1, mapError(err)
}

// ceilDiv returns d in whole units, rounded up so that a short positive
// duration never becomes 0 (which means "now" or "none" on the wire).
func ceilDiv(d, unit time.Duration) int64 {
	q := int64(d / unit)
	if d%unit > 0 {
		q++
	}
	return q
}

// Persist removes key's expiry and reports whether it had one (PERSIST).
func (m *Map) Persist(ctx context.Context, key string) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, err
	}
	var ok bool
	err := m.keyed(ctx, key, false, func(rdb *redis.Client) (err error) {
		ok, err = rdb.Persist(ctx, key).Result()
		return err
	})
	return ok, mapError(err)
}

// Incr adds one to the integer at key and returns the result (INCR).
func (m *Map) Incr(ctx context.Context, key string) (int64, error) {
	return m.IncrBy(ctx, key, 1)
}

// IncrBy adds delta to the integer at key and returns the result
// (INCRBY); a value that is not an integer, or an overflow, fails with
// engram.ErrNotInteger.
func (m *Map) IncrBy(ctx context.Context, key string, delta int64) (int64, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := m.keyed(ctx, key, false, func(rdb *redis.Client) (err error) {
		n, err = rdb.IncrBy(ctx, key, delta).Result()
		return err
	})
	if err != nil {
		return 0, mapError(err)
	}
	return n, nil
}

// PutAll writes every item with the same options (TTL and WithSeq only)
// and returns how many it wrote (PUTALL, PUTALLSEQ). PUTALL takes its TTL
// in seconds, so a TTL that is not a whole number of seconds is refused
// here (the embedded Map has millisecond precision). An empty batch sends
// nothing.
func (m *Map) PutAll(ctx context.Context, items []engram.KV, opts ...engram.SetOption) (int, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	p, err := engram.ResolvePutAllOptions(opts)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	if p.TTL%time.Second != 0 {
		return 0, fmt.Errorf("client: PutAll over RESP takes a TTL in whole seconds, got %v", p.TTL)
	}
	args := make([]any, 0, 3+2*len(items))
	if p.HasSeq {
		args = append(args, "putallseq", strconv.FormatUint(p.Seq, 10))
	} else {
		args = append(args, "putall")
	}
	args = append(args, int64(p.TTL/time.Second))
	for _, it := range items {
		args = append(args, it.Key, it.Value)
	}
	n, err := m.rdb.Do(ctx, args...).Int64()
	return int(n), mapError(err)
}

// GetAll returns the values of the keys that are present and, in the
// order asked, the keys that are not (GETALL).
func (m *Map) GetAll(ctx context.Context, keys []string) (found map[string][]byte, misses []string, err error) {
	if err := m.check(ctx); err != nil {
		return nil, nil, err
	}
	if len(keys) == 0 {
		return map[string][]byte{}, nil, nil
	}
	r, err := m.rdb.Do(ctx, append([]any{"getall"}, stringArgs(keys)...)...).Slice()
	if err != nil {
		return nil, nil, mapError(err)
	}
	if len(r) != 2 {
		return nil, nil, fmt.Errorf("client: GETALL: expected [found, misses], got %d elements", len(r))
	}
	if found, err = itemMap(r[0]); err != nil {
		return nil, nil, err
	}
	ms, ok := r[1].([]any)
	if !ok {
		return nil, nil, fmt.Errorf("client: GETALL: misses: expected an array, got %T", r[1])
	}
	for _, k := range ms {
		s, ok := k.(string)
		if !ok {
			return nil, nil, fmt.Errorf("client: GETALL: unexpected miss %#v", k)
		}
		misses = append(misses, s)
	}
	return found, misses, nil
}

// RemoveItems deletes the keys and returns the items it removed
// (REMOVEITEMS).
func (m *Map) RemoveItems(ctx context.Context, keys []string) (map[string][]byte, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return map[string][]byte{}, nil
	}
	r, err := m.rdb.Do(ctx, append([]any{"removeitems"}, stringArgs(keys)...)...).Result()
	if err != nil {
		return nil, mapError(err)
	}
	return itemMap(r)
}

// RemoveItemsSeq is RemoveItems checked against the map's sequence
// (REMOVEITEMSSEQ). An empty key list sends nothing.
func (m *Map) RemoveItemsSeq(ctx context.Context, keys []string, seq uint64) (map[string][]byte, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return map[string][]byte{}, nil
	}
	args := append([]any{"removeitemsseq", strconv.FormatUint(seq, 10)}, stringArgs(keys)...)
	r, err := m.rdb.Do(ctx, args...).Result()
	if err != nil {
		return nil, mapError(err)
	}
	return itemMap(r)
}

func stringArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// itemMap reads a map reply of keys to values.
func itemMap(r any) (map[string][]byte, error) {
	pairs, err := replyPairs(r)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(pairs))
	for _, p := range pairs {
		s, ok := p.val.(string)
		if !ok {
			return nil, fmt.Errorf("client: unexpected value %#v for key %q", p.val, p.key)
		}
		out[p.key] = []byte(s)
	}
	return out, nil
}

// Keys returns the keys matching a Redis glob pattern ("" or "*": all
// keys), in no particular order (KEYS).
func (m *Map) Keys(ctx context.Context, pattern string) ([]string, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	if pattern == "" {
		pattern = "*"
	}
	keys, err := m.rdb.Keys(ctx, pattern).Result()
	return keys, mapError(err)
}

// Values returns every value, in no particular order (VALUES).
func (m *Map) Values(ctx context.Context) ([][]byte, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	vs, err := m.rdb.Do(ctx, "values").StringSlice()
	if err != nil {
		return nil, mapError(err)
	}
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = []byte(v)
	}
	return out, nil
}

// Scan returns a page of keys matching pattern ("" or "*": all) starting
// at cursor (0 to begin) and the cursor of the next page (0 when done),
// with Redis SCAN's guarantee: every key present for the whole scan is
// returned exactly once.
func (m *Map) Scan(ctx context.Context, cursor uint64, pattern string, count int) ([]string, uint64, error) {
	if err := m.check(ctx); err != nil {
		return nil, 0, err
	}
	if pattern == "" {
		pattern = "*"
	}
	keys, next, err := m.rdb.Scan(ctx, cursor, pattern, int64(count)).Result()
	if err != nil {
		return nil, 0, mapError(err)
	}
	return keys, next, nil
}

// EvictSince removes every item created more than age ago (EVICTSINCE,
// whole seconds: age is truncated) and returns how many it removed.
func (m *Map) EvictSince(ctx context.Context, age time.Duration) (int, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	if age < 0 {
		return 0, fmt.Errorf("client: EvictSince age must not be negative, got %v", age)
	}
	n, err := m.rdb.Do(ctx, "evictsince", int64(age/time.Second)).Int64()
	return int(n), mapError(err)
}

// Clear removes every item of the map (CLEAR).
func (m *Map) Clear(ctx context.Context) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	return mapError(m.rdb.Do(ctx, "clear").Err())
}

// SetMaxTTL sets the map's max TTL (SETMAXTTL): items older than d are
// never returned. It has second precision (d is rounded up); 0 removes
// the bound.
func (m *Map) SetMaxTTL(ctx context.Context, d time.Duration) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	if d < 0 {
		return errors.New("client: max TTL must not be negative")
	}
	secs := ceilDiv(d, time.Second)
	return mapError(m.rdb.Do(ctx, "setmaxttl", secs).Err())
}

// MaxTTL returns the map's max TTL, 0 if it has none (MAXTTL).
func (m *Map) MaxTTL(ctx context.Context) (time.Duration, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	secs, err := m.rdb.Do(ctx, "maxttl").Int64()
	if err != nil {
		return 0, mapError(err)
	}
	return time.Duration(secs) * time.Second, nil
}

// SetMaxKeys bounds the number of keys of the map, 0 for no bound
// (SETMAXKEYS).
func (m *Map) SetMaxKeys(ctx context.Context, n int64) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	if n < 0 {
		return errors.New("client: max keys must not be negative")
	}
	return mapError(m.rdb.Do(ctx, "setmaxkeys", n).Err())
}

// Sequence returns the map's sequence number (SEQUENCE); ok is false if
// no sequence-checked operation ever reached the map.
func (m *Map) Sequence(ctx context.Context) (seq uint64, ok bool, err error) {
	if err := m.check(ctx); err != nil {
		return 0, false, err
	}
	n, err := m.rdb.Do(ctx, "sequence").Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return 0, false, nil
	case err != nil:
		return 0, false, mapError(err)
	case n < 0:
		return 0, false, fmt.Errorf("client: SEQUENCE: negative sequence %d", n)
	}
	return uint64(n), true, nil
}

// Len returns the number of keys in the map (MAPSIZE), counting expired
// keys not yet removed.
func (m *Map) Len(ctx context.Context) (int64, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	n, err := m.rdb.Do(ctx, "mapsize").Int64()
	return n, mapError(err)
}
