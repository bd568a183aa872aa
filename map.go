package engram

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/engramdb/engram/internal/store"
)

// NoExpiry is the TTL of a key that never expires. It is negative, so
// "ttl > 0" reads as "will expire".
const NoExpiry time.Duration = -1

// KV is a key and its value, an item of PutAll.
type KV struct {
	Key   string
	Value []byte
}

// Map is a handle on one map of an embedded node: a named namespace of
// keys (jc's map, the map a Redis connection SELECTs). Every method takes
// a context and checks it first; a single node never blocks, but in a
// cluster the same methods run where the key's partition lives and wait
// for other nodes (see "Clusters" in the package documentation). Values
// passed in are copied; values returned are the caller's.
type Map struct {
	n  *Node
	sm *store.Map
	// In a cluster: the acknowledgement level of writes (WithAck) and
	// whether reads may be served by a replica (WithEventualReads).
	ack      Ack
	eventual bool
}

// bytesOf views s as bytes without copying. The store never retains or
// modifies a key it is given (it copies keys it keeps), which is what
// makes the view safe and keeps the read path allocation-free.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// now reads the store's clock, so that relative expiries computed here
// agree with the expiry checks the store makes.
func (m *Map) now() int64 { return m.n.st.Now() }

// routed reports whether calls must take the command path (node.Do)
// rather than the store directly: on a cluster member, and for maps with
// a backing store (read-through and write-back happen there).
func (m *Map) routed() bool {
	return m.n.clustered || m.n.node.Persist().Uses(m.sm.Name())
}

// Name returns the map's name.
func (m *Map) Name() string { return m.sm.Name() }

// Get returns a copy of key's value, or ErrNotFound.
func (m *Map) Get(ctx context.Context, key string) ([]byte, error) {
	return m.GetTo(ctx, nil, key)
}

// GetTo appends key's value to dst and returns the extended slice, or dst
// and ErrNotFound. It does not allocate when dst has room for the value:
// this is the embedded hit path, meant to be called with a reused buffer.
func (m *Map) GetTo(ctx context.Context, dst []byte, key string) ([]byte, error) {
	if err := m.n.check(ctx); err != nil {
		return dst, err
	}
	if m.routed() {
		return m.cGetTo(ctx, dst, key)
	}
	v, ok := m.sm.Get(dst, bytesOf(key))
	if !ok {
		return dst, ErrNotFound
	}
	return v, nil
}

// Set writes key = value. With IfAbsent or IfPresent a write whose
// condition fails is skipped without error; use SetIf to learn whether it
// happened.
func (m *Map) Set(ctx context.Context, key string, value []byte, opts ...SetOption) error {
	_, err := m.SetIf(ctx, key, value, opts...)
	return err
}

// SetIf is Set reporting whether the value was written: false only when an
// IfAbsent or IfPresent condition failed (Redis SETNX's answer).
func (m *Map) SetIf(ctx context.Context, key string, value []byte, opts ...SetOption) (bool, error) {
	if err := m.n.check(ctx); err != nil {
		return false, err
	}
	p, err := ResolveSetOptions(opts)
	if err != nil {
		return false, err
	}
	if m.routed() {
		return m.cSet(ctx, "SET", key, value, p)
	}
	o := store.SetOptions{KeepTTL: p.KeepTTL, Seq: p.Seq, HasSeq: p.HasSeq}
	if p.TTL > 0 {
		o.ExpireAt = m.now() + p.TTL.Milliseconds()
	}
	switch {
	case p.IfAbsent:
		o.Cond = store.IfAbsent
	case p.IfPresent:
		o.Cond = store.IfPresent
	}
	r, err := m.sm.Set(bytesOf(key), value, o)
	if err != nil {
		return false, publicError(err)
	}
	return r.Written, nil
}

// UnsafeSet is Set without waiting for any acknowledgement (jc
// unsafe_set): Set at AckNone. On a single node it is exactly Set; in a
// cluster it returns before the partition's replicas have the write, so
// a failure of the primary right after may lose it.
func (m *Map) UnsafeSet(ctx context.Context, key string, value []byte, opts ...SetOption) error {
	if m.routed() {
		if err := m.n.check(ctx); err != nil {
			return err
		}
		p, err := ResolveSetOptions(opts)
		if err != nil {
			return err
		}
		_, err = m.WithAck(AckNone).cSet(ctx, "UNSAFESET", key, value, p)
		return err
	}
	return m.Set(ctx, key, value, opts...)
}

// Delete removes key and reports whether it was present.
func (m *Map) Delete(ctx context.Context, key string) (bool, error) {
	if err := m.n.check(ctx); err != nil {
		return false, err
	}
	if m.routed() {
		n, err := m.integer(ctx, b("DEL"), b(key))
		return n > 0, err
	}
	return m.sm.Delete(bytesOf(key)), nil
}

// DeleteSeq is Delete checked against the map's sequence (jc_s evict): it
// fails with ErrOutOfSequence, deleting nothing, if seq is lower than the
// map's sequence, and otherwise makes seq the map's sequence.
func (m *Map) DeleteSeq(ctx context.Context, key string, seq uint64) (bool, error) {
	if err := m.n.check(ctx); err != nil {
		return false, err
	}
	if m.routed() {
		n, err := m.integer(ctx, b("DELSEQ"), utoa(seq), b(key))
		return n > 0, err
	}
	ok, err := m.sm.DeleteSeq(bytesOf(key), seq)
	return ok, publicError(err)
}

// Contains reports whether key is present (jc contains_key).
func (m *Map) Contains(ctx context.Context, key string) (bool, error) {
	if err := m.n.check(ctx); err != nil {
		return false, err
	}
	if m.routed() {
		n, err := m.integer(ctx, b("EXISTS"), b(key))
		return n > 0, err
	}
	return m.sm.Contains(bytesOf(key)), nil
}

// TTL returns key's remaining time to live (millisecond precision, the
// map's max TTL included), NoExpiry if it never expires, or ErrNotFound.
func (m *Map) TTL(ctx context.Context, key string) (time.Duration, error) {
	if err := m.n.check(ctx); err != nil {
		return 0, err
	}
	ms := int64(0)
	if m.routed() {
		var err error
		if ms, err = m.integer(ctx, b("PTTL"), b(key)); err != nil {
			return 0, err
		}
	} else {
		ms = m.sm.TTL(bytesOf(key))
	}
	switch ms {
	case -2:
		return 0, ErrNotFound
	case -1:
		return NoExpiry, nil
	default:
		return time.Duration(ms) * time.Millisecond, nil
	}
}

// Expire makes key expire d from now (millisecond precision, rounded up)
// and reports whether key exists. A d of zero or less deletes the key at
// once, as Redis's EXPIRE does.
func (m *Map) Expire(ctx context.Context, key string, d time.Duration) (bool, error) {
	if err := m.n.check(ctx); err != nil {
		return false, err
	}
	if m.routed() {
		// PEXPIRE with 0 deletes the key, as a past time does here.
		n, err := m.integer(ctx, b("PEXPIRE"), b(key), itoa(expireMillis(d)))
		return n > 0, err
	}
	now := m.now()
	at := now + expireMillis(d)
	found := false
	err := m.sm.Mutate(bytesOf(key), func(_ store.Entry, exists bool) (store.Mutation, error) {
		found = exists
		switch {
		case !exists:
			return store.Mutation{}, nil
		case at <= now:
			return store.Mutation{Action: store.Remove}, nil
		}
		return store.Mutation{Action: store.SetExpiry, ExpireAt: at}, nil
	})
	return found, publicError(err)
}

// expireMillis converts a relative expiry to whole milliseconds, rounding
// a positive d up so it never becomes "now" (which deletes), and clamping
// so that adding it to the clock cannot overflow.
func expireMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return min(roundUp(d, time.Millisecond).Milliseconds(), math.MaxInt64/4)
}

// Persist removes key's expiry and reports whether it had one.
func (m *Map) Persist(ctx context.Context, key string) (bool, error) {
	if err := m.n.check(ctx); err != nil {
		return false, err
	}
	if m.routed() {
		n, err := m.integer(ctx, b("PERSIST"), b(key))
		return n > 0, err
	}
	done := false
	err := m.sm.Mutate(bytesOf(key), func(cur store.Entry, exists bool) (store.Mutation, error) {
		if !exists || cur.ExpireAt == 0 {
			return store.Mutation{}, nil
		}
		done = true
		return store.Mutation{Action: store.SetExpiry}, nil
	})
	return done, publicError(err)
}

// Incr adds one to the integer stored at key and returns the result; see
// IncrBy.
func (m *Map) Incr(ctx context.Context, key string) (int64, error) {
	return m.IncrBy(ctx, key, 1)
}

// IncrBy adds delta to the decimal integer stored at key (a missing key
// counts as 0) and returns the result, keeping the key's expiry. A value
// that is not a 64-bit integer, or a result that would overflow, fails
// with ErrNotInteger and changes nothing.
func (m *Map) IncrBy(ctx context.Context, key string, delta int64) (int64, error) {
	if err := m.n.check(ctx); err != nil {
		return 0, err
	}
	if m.routed() {
		return m.integer(ctx, b("INCRBY"), b(key), itoa(delta))
	}
	var result int64
	var buf [20]byte
	err := m.sm.Mutate(bytesOf(key), func(cur store.Entry, exists bool) (store.Mutation, error) {
		var v int64
		if exists {
			var ok bool
			if v, ok = parseInt(cur.Value); !ok {
				return store.Mutation{}, store.ErrNotInteger
			}
		}
		if (delta > 0 && v > math.MaxInt64-delta) || (delta < 0 && v < math.MinInt64-delta) {
			return store.Mutation{}, store.ErrOverflow
		}
		result = v + delta
		return store.Mutation{Action: store.Put, Value: strconv.AppendInt(buf[:0], result, 10), ExpireAt: cur.ExpireAt}, nil
	})
	if err != nil {
		return 0, publicError(err)
	}
	return result, nil
}

// parseInt parses a value as Redis's INCR does: a plain decimal integer,
// no sign '+', no spaces.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// PutAll writes every item with the same options (TTL and WithSeq only)
// and returns how many it wrote (jc put_all). Every key and value is
// checked against the limits first, so a batch with one item over a limit
// changes nothing; the batch is not atomic otherwise (a full map or memory
// bound can stop it part way, and the count says how far it got). An empty
// batch does nothing, not even check the sequence.
//
// In a cluster the batch is split by partition and each part written on
// its primary (PUTALL): a failure part-way returns 0 with the error, as
// the parts' counts cannot be told apart then. A TTL with a fraction of
// a second is written item by item (PUTALL has whole seconds), and with
// WithSeq is refused.
func (m *Map) PutAll(ctx context.Context, items []KV, opts ...SetOption) (int, error) {
	if err := m.n.check(ctx); err != nil {
		return 0, err
	}
	p, err := ResolvePutAllOptions(opts)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	if m.routed() {
		return m.cPutAll(ctx, items, p)
	}
	o := store.SetOptions{Seq: p.Seq, HasSeq: p.HasSeq}
	if p.TTL > 0 {
		o.ExpireAt = m.now() + p.TTL.Milliseconds()
	}
	kvs := make([]store.KV, len(items))
	for i, it := range items {
		kvs[i] = store.KV{Key: bytesOf(it.Key), Value: it.Value}
	}
	n, err := m.sm.PutAll(kvs, o)
	return n, publicError(err)
}

// GetAll returns the values of the keys that are present and, in the
// order asked, the keys that are not (jc get_all).
func (m *Map) GetAll(ctx context.Context, keys []string) (found map[string][]byte, misses []string, err error) {
	if err := m.n.check(ctx); err != nil {
		return nil, nil, err
	}
	if m.routed() {
		return m.cGetAll(ctx, keys)
	}
	found = make(map[string][]byte, len(keys))
	for _, k := range keys {
		if v, ok := m.sm.Get(nil, bytesOf(k)); ok {
			found[k] = v
		} else {
			misses = append(misses, k)
		}
	}
	return found, misses, nil
}

// RemoveItems deletes the keys and returns the items it removed (jc
// remove_items).
func (m *Map) RemoveItems(ctx context.Context, keys []string) (map[string][]byte, error) {
	if err := m.n.check(ctx); err != nil {
		return nil, err
	}
	if m.routed() {
		return m.cRemoveItems(ctx, keys, 0, false)
	}
	return m.removeItems(keys), nil
}

// RemoveItemsSeq is RemoveItems checked against the map's sequence: it
// fails with ErrOutOfSequence, removing nothing, if seq is lower than the
// map's sequence. An empty key list does nothing, not even check seq.
func (m *Map) RemoveItemsSeq(ctx context.Context, keys []string, seq uint64) (map[string][]byte, error) {
	if err := m.n.check(ctx); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return map[string][]byte{}, nil
	}
	if m.routed() {
		return m.cRemoveItems(ctx, keys, seq, true)
	}
	if err := m.sm.CheckSequence(seq); err != nil {
		return nil, publicError(err)
	}
	return m.removeItems(keys), nil
}

func (m *Map) removeItems(keys []string) map[string][]byte {
	out := make(map[string][]byte)
	for _, k := range keys {
		// A non-nil dst asks GetDelete for the value.
		if v, ok := m.sm.GetDelete([]byte{}, bytesOf(k)); ok {
			out[k] = v
		}
	}
	return out
}

// Keys returns the keys matching a Redis glob pattern ("" or "*": all
// keys), in no particular order (jc key_set).
func (m *Map) Keys(ctx context.Context, pattern string) ([]string, error) {
	if err := m.n.check(ctx); err != nil {
		return nil, err
	}
	if m.routed() {
		return m.cKeys(ctx, pattern)
	}
	keys := m.sm.Keys(globPattern(pattern))
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k)
	}
	return out, nil
}

// globPattern maps the "all keys" patterns to the store's nil.
func globPattern(p string) []byte {
	if p == "" || p == "*" {
		return nil
	}
	return []byte(p)
}

// Values returns copies of every value, in no particular order (jc values).
func (m *Map) Values(ctx context.Context) ([][]byte, error) {
	if err := m.n.check(ctx); err != nil {
		return nil, err
	}
	if m.routed() {
		return m.cValues(ctx)
	}
	items := m.sm.Items(nil, 0)
	out := make([][]byte, len(items))
	for i, it := range items {
		out[i] = it.Value
	}
	return out, nil
}

// Scan returns a page of keys matching pattern ("" or "*": all) starting
// at cursor (0 to begin) and the cursor of the next page (0 when done), as
// Redis SCAN: every key present for the whole scan is returned exactly
// once, whatever writes happen meanwhile. A page holds whole partitions
// until it has at least count keys.
func (m *Map) Scan(ctx context.Context, cursor uint64, pattern string, count int) ([]string, uint64, error) {
	if err := m.n.check(ctx); err != nil {
		return nil, 0, err
	}
	if cursor >= uint64(m.n.st.Partitions()) {
		return nil, 0, nil // as Redis: an unknown cursor ends the scan
	}
	var keys [][]byte
	var next uint64
	if m.routed() {
		var err error
		if keys, next, err = m.cScan(ctx, cursor, pattern, count); err != nil {
			return nil, 0, err
		}
	} else {
		keys, next = m.sm.Scan(cursor, globPattern(pattern), count)
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k)
	}
	return out, next, nil
}

// All iterates over the map's items, one partition at a time: it copies a
// partition's keys, releases the partition, then reads and yields each
// item, so no lock is held while the caller's loop body runs and the loop
// body may use the map. Items written during the walk may or may not be
// seen; every item present for the whole walk is seen exactly once.
// The walk stops early when ctx is done or the node is closed: check
// ctx.Err() after the loop when that matters.
//
// In a cluster a partition's values are read together, before its first
// item is yielded, and the walk also stops (logging why) if the cluster
// cannot answer for a page within its request timeout.
func (m *Map) All(ctx context.Context) iter.Seq2[string, []byte] {
	if m.routed() {
		return m.cAll(ctx)
	}
	return func(yield func(string, []byte) bool) {
		m.walk(ctx, nil, func(k []byte) bool {
			v, ok := m.sm.Get(nil, k) // counted in Stats as a read
			if !ok {
				return true // deleted or expired since its page was copied
			}
			return yield(string(k), v)
		})
	}
}

// KeysSeq iterates over the keys matching a Redis glob pattern ("" or
// "*": all) the way All iterates over items.
func (m *Map) KeysSeq(ctx context.Context, pattern string) iter.Seq[string] {
	if m.routed() {
		return m.cKeysSeq(ctx, pattern)
	}
	return func(yield func(string) bool) {
		m.walk(ctx, globPattern(pattern), func(k []byte) bool { return yield(string(k)) })
	}
}

// walk calls fn with every key matching pattern, a partition's copied
// keys at a time, until fn returns false, ctx is done or the node closes.
func (m *Map) walk(ctx context.Context, pattern []byte, fn func(key []byte) bool) {
	var cursor uint64
	for {
		if m.n.check(ctx) != nil {
			return
		}
		// A count of 1 makes each page one non-empty partition: the
		// smallest unit the store can copy consistently.
		keys, next := m.sm.Scan(cursor, pattern, 1)
		for _, k := range keys {
			if m.n.check(ctx) != nil || !fn(k) {
				return
			}
		}
		if next == 0 {
			return
		}
		cursor = next
	}
}

// EvictSince removes every item created more than age ago and returns how
// many it removed (jc evict_map_since). Creation times are kept in whole
// seconds, so age is truncated to seconds.
func (m *Map) EvictSince(ctx context.Context, age time.Duration) (int, error) {
	if err := m.n.check(ctx); err != nil {
		return 0, err
	}
	if age < 0 {
		return 0, fmt.Errorf("engram: EvictSince age must not be negative, got %v", age)
	}
	if m.routed() {
		n, err := m.integer(ctx, b("EVICTSINCE"), itoa(int64(age/time.Second)))
		return int(n), err
	}
	return m.sm.EvictSince(int64(age / time.Second)), nil
}

// Clear removes every item of the map (jc clear). Subscribers get a delete
// event per key.
func (m *Map) Clear(ctx context.Context) error {
	if err := m.n.check(ctx); err != nil {
		return err
	}
	if m.routed() {
		_, err := m.do(ctx, b("CLEAR"))
		return err
	}
	m.sm.Clear(false)
	return nil
}

// SetMaxTTL sets the map's max TTL (jc set_max_ttl): items older than d
// are never returned and are removed in the background. It has second
// precision (d is rounded up); 0 removes the bound.
func (m *Map) SetMaxTTL(ctx context.Context, d time.Duration) error {
	if err := m.n.check(ctx); err != nil {
		return err
	}
	if d < 0 {
		return errors.New("engram: max TTL must not be negative")
	}
	secs := int64(roundUp(d, time.Second) / time.Second)
	if m.routed() {
		if _, err := m.do(ctx, b("SETMAXTTL"), itoa(secs)); err != nil {
			return err
		}
		// The cluster sets it on the nodes that lead partitions; this
		// node may lead none (a client-role node, a new member), and
		// reads its own setting in MaxTTL.
		return m.sm.SetMaxTTL(secs)
	}
	return m.sm.SetMaxTTL(secs)
}

// MaxTTL returns the map's max TTL, 0 if it has none.
func (m *Map) MaxTTL(ctx context.Context) (time.Duration, error) {
	if err := m.n.check(ctx); err != nil {
		return 0, err
	}
	if m.routed() {
		secs, err := m.integer(ctx, b("MAXTTL"))
		return time.Duration(secs) * time.Second, err
	}
	return time.Duration(m.sm.MaxTTL()) * time.Second, nil
}

// SetMaxKeys bounds the number of keys of the map (0: no bound). Keys
// already stored stay; new keys fail with ErrMapFull while the map is at
// the bound.
func (m *Map) SetMaxKeys(ctx context.Context, n int64) error {
	if err := m.n.check(ctx); err != nil {
		return err
	}
	if n < 0 {
		return errors.New("engram: max keys must not be negative")
	}
	if m.routed() {
		if _, err := m.do(ctx, b("SETMAXKEYS"), itoa(n)); err != nil {
			return err
		}
		return m.sm.SetMaxKeys(n) // as in SetMaxTTL
	}
	return m.sm.SetMaxKeys(n)
}

// Sequence returns the map's sequence number (jc_s sequence(map)): the
// highest number a sequence-checked operation carried. ok is false if no
// sequence-checked operation ever reached the map.
func (m *Map) Sequence(ctx context.Context) (seq uint64, ok bool, err error) {
	if err := m.n.check(ctx); err != nil {
		return 0, false, err
	}
	if m.routed() {
		return m.cSequence(ctx)
	}
	seq, ok = m.sm.Sequence()
	return seq, ok, nil
}

// Len returns the number of keys in the map (jc map_size), counting
// expired keys the background job has not removed yet, as Redis's DBSIZE.
func (m *Map) Len(ctx context.Context) (int64, error) {
	if err := m.n.check(ctx); err != nil {
		return 0, err
	}
	if m.routed() {
		return m.integer(ctx, b("MAPSIZE"))
	}
	return m.sm.Len(), nil
}
