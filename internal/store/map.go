package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/engramdb/engram/internal/glob"
	"github.com/engramdb/engram/internal/keyhash"
)

// Map is a named namespace of keys (jc's map, Redis's database). Handles
// stay valid for the life of the store; methods are safe for concurrent use.
type Map struct {
	s     *Store
	name  string
	parts []atomic.Pointer[shard]

	count   atomic.Int64 // live records (expired-but-unswept included, as Redis's DBSIZE)
	maxTTL  atomic.Int64 // seconds; 0 = none (jc set_max_ttl)
	maxKeys atomic.Int64 // 0 = unbounded

	seqMu  sync.Mutex
	seq    uint64
	hasSeq bool

	internal bool // IsInternal(name): kept out of listings, flushes and eviction

	// Change tracking (dirty.go): the map's shadow map of changes not yet
	// in the backing store, and who decides whether a change is tracked.
	dirty   atomic.Pointer[Map]
	tracker atomic.Pointer[func(key []byte) bool]
}

// Name returns the map's name.
func (m *Map) Name() string { return m.name }

// Len returns the number of keys, counting expired keys not yet swept.
func (m *Map) Len() int64 { return m.count.Load() }

// MaxTTL returns the map-level max age in seconds (0 = none).
func (m *Map) MaxTTL() int64 { return m.maxTTL.Load() }

// SetMaxTTL sets the map-level max age in seconds (0 removes it). Items
// older than that are never returned and are removed by the sweeper.
func (m *Map) SetMaxTTL(secs int64) error {
	if secs < 0 {
		return fmt.Errorf("max ttl must not be negative, got %d", secs)
	}
	m.maxTTL.Store(secs)
	return nil
}

// MaxKeys returns the map's key bound (0 = none).
func (m *Map) MaxKeys() int64 { return m.maxKeys.Load() }

// SetMaxKeys sets the map's key bound (0 = none). Keys already stored are
// kept; new keys are refused while the map is at or over the bound.
func (m *Map) SetMaxKeys(n int64) error {
	if n < 0 {
		return fmt.Errorf("max keys must not be negative, got %d", n)
	}
	m.maxKeys.Store(n)
	return nil
}

// Sequence returns the map's highest accepted sequence number and whether
// any sequence-checked operation was made.
func (m *Map) Sequence() (uint64, bool) {
	m.seqMu.Lock()
	defer m.seqMu.Unlock()
	return m.seq, m.hasSeq
}

// advanceSeq accepts seq if it is not lower than the map's maximum.
func (m *Map) advanceSeq(seq uint64) error {
	m.seqMu.Lock()
	defer m.seqMu.Unlock()
	if err := m.checkSeqLocked(seq); err != nil {
		return err
	}
	m.seq, m.hasSeq = seq, true
	return nil
}

func (m *Map) checkSeqLocked(seq uint64) error {
	if m.hasSeq && seq < m.seq {
		return OutOfSequence(m.name, seq, m.seq)
	}
	return nil
}

// OutOfSequence returns the ErrOutOfSequence error refusing seq for map
// mapName, whose current sequence is cur: the one text of this refusal,
// whether a map checks its own sequence or the cluster checks it.
func OutOfSequence(mapName string, seq, cur uint64) error {
	return fmt.Errorf("%w: sequence %d is lower than map %q's current %d", ErrOutOfSequence, seq, mapName, cur)
}

// CheckSequence applies jc_s's rule for an operation carrying seq: it is
// refused with ErrOutOfSequence if seq is lower than the map's maximum, and
// otherwise becomes the new maximum.
func (m *Map) CheckSequence(seq uint64) error { return m.advanceSeq(seq) }

func (m *Map) shardFor(h uint64) *shard {
	return m.parts[keyhash.Partition(h, len(m.parts))].Load()
}

func (m *Map) shardForWrite(h uint64) *shard {
	p := &m.parts[keyhash.Partition(h, len(m.parts))]
	if sh := p.Load(); sh != nil {
		return sh
	}
	sh := newShard(&m.s.acct)
	if p.CompareAndSwap(nil, sh) {
		return sh
	}
	return p.Load()
}

// expired reports whether the record is past its TTL or the map's max age.
func (m *Map) expired(h *header, now int64) bool {
	if h.expire != 0 && h.expire <= now {
		return true
	}
	if t := m.maxTTL.Load(); t > 0 && (int64(h.created)+t)*1000 <= now {
		return true
	}
	return false
}

// Get appends the value of key to dst. It returns false if the key is
// absent or expired. It does not allocate when dst has room.
func (m *Map) Get(dst, key []byte) ([]byte, bool) {
	h := keyhash.Sum(key)
	sh := m.shardFor(h)
	if sh == nil {
		m.s.misses.Add(1)
		return dst, false
	}
	now := m.s.now()
	sh.mu.RLock()
	loc, ok := sh.find(uint32(h>>32), key)
	if ok {
		hd := sh.hdr(loc)
		if m.expired(hd, now) {
			ok = false
		} else {
			m.s.touch(hd, now)
			dst = append(dst, sh.value(loc)...)
		}
	}
	sh.mu.RUnlock()
	if ok {
		sh.hits.Add(1)
	} else {
		sh.misses.Add(1)
	}
	return dst, ok
}

// Entry is a read view of one item.
type Entry struct {
	Value    []byte
	ExpireAt int64 // Unix ms; 0 = none
	Created  int64 // Unix ms (second precision)
}

// GetEntry returns a copy of key's item (value appended to dst).
func (m *Map) GetEntry(dst, key []byte) (Entry, bool) {
	h := keyhash.Sum(key)
	sh := m.shardFor(h)
	if sh == nil {
		m.s.misses.Add(1)
		return Entry{}, false
	}
	now := m.s.now()
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	loc, ok := sh.find(uint32(h>>32), key)
	if !ok {
		sh.misses.Add(1)
		return Entry{}, false
	}
	hd := sh.hdr(loc)
	if m.expired(hd, now) {
		sh.misses.Add(1)
		return Entry{}, false
	}
	sh.hits.Add(1)
	m.s.touch(hd, now)
	return Entry{Value: append(dst, sh.value(loc)...), ExpireAt: m.effectiveExpire(hd), Created: int64(hd.created) * 1000}, true
}

// effectiveExpire folds the map's max age into the item's expiry.
func (m *Map) effectiveExpire(h *header) int64 {
	e := h.expire
	if t := m.maxTTL.Load(); t > 0 {
		if me := (int64(h.created) + t) * 1000; e == 0 || me < e {
			e = me
		}
	}
	return e
}

// Contains reports whether key is present and not expired.
func (m *Map) Contains(key []byte) bool {
	h := keyhash.Sum(key)
	sh := m.shardFor(h)
	if sh == nil {
		return false
	}
	now := m.s.now()
	sh.mu.RLock()
	loc, ok := sh.find(uint32(h>>32), key)
	ok = ok && !m.expired(sh.hdr(loc), now)
	sh.mu.RUnlock()
	return ok
}

// TTL returns the remaining time to live of key in milliseconds: -2 if the
// key does not exist, -1 if it has no expiry.
func (m *Map) TTL(key []byte) int64 {
	h := keyhash.Sum(key)
	sh := m.shardFor(h)
	if sh == nil {
		return -2
	}
	now := m.s.now()
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	loc, ok := sh.find(uint32(h>>32), key)
	if !ok {
		return -2
	}
	hd := sh.hdr(loc)
	if m.expired(hd, now) {
		return -2
	}
	e := m.effectiveExpire(hd)
	if e == 0 {
		return -1
	}
	return e - now
}

// Cond is a write precondition.
type Cond uint8

// Write preconditions.
const (
	Always    Cond = iota
	IfAbsent       // NX
	IfPresent      // XX
)

// SetOptions qualify a Set.
type SetOptions struct {
	ExpireAt  int64 // absolute expiry in Unix ms; 0 = none
	KeepTTL   bool  // keep the existing expiry (ExpireAt ignored if the key exists)
	Cond      Cond
	ReturnOld bool   // fill SetResult.Old (appended to OldBuf)
	OldBuf    []byte // where the old value is appended
	Seq       uint64 // sequence number, checked if HasSeq
	HasSeq    bool
}

// SetResult says what a Set did.
type SetResult struct {
	Written bool   // false when the precondition failed
	Existed bool   // the key was present (and not expired) before
	Old     []byte // old value when ReturnOld and Existed
}

// CheckLimits reports whether key and a value of vlen bytes are within
// the store's key and value length limits (what Set checks first), so a
// cluster node can refuse a multi-key write before splitting it.
func (m *Map) CheckLimits(key []byte, vlen int) error { return m.checkLimits(key, vlen) }

func (m *Map) checkLimits(key []byte, vlen int) error {
	if len(key) > m.s.opts.MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrKeyTooLong, len(key), m.s.opts.MaxKeyLen)
	}
	if int64(vlen) > m.s.maxValue() {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, vlen, m.s.maxValue())
	}
	return nil
}

// Set writes key = val.
func (m *Map) Set(key, val []byte, o SetOptions) (SetResult, error) {
	var res SetResult
	if err := m.checkLimits(key, len(val)); err != nil {
		return res, err
	}
	if err := m.s.makeRoom(int64(recordSize(len(key), len(val)) + indexBytesPerKey)); err != nil {
		return res, err
	}
	if o.HasSeq {
		// Sequence-checked writes of a map are serialised (jc_sequence is
		// a singleton too): the number is checked before and recorded only
		// after the write succeeds, so a refused write changes nothing.
		m.seqMu.Lock()
		defer m.seqMu.Unlock()
		if err := m.checkSeqLocked(o.Seq); err != nil {
			return res, err
		}
	}
	h := keyhash.Sum(key)
	sh := m.shardForWrite(h)
	now := m.s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h32 := uint32(h >> 32)
	loc, exists := sh.find(h32, key)
	var hd *header
	if exists {
		hd = sh.hdr(loc)
		if m.expired(hd, now) {
			m.remove(sh, h32, loc, ReasonExpired)
			exists = false
		}
	}
	res.Existed = exists
	if (o.Cond == IfAbsent && exists) || (o.Cond == IfPresent && !exists) {
		if exists && o.ReturnOld {
			res.Old = append(o.OldBuf, sh.value(loc)...)
		}
		return res, nil
	}
	expire := o.ExpireAt
	if exists {
		if o.ReturnOld {
			res.Old = append(o.OldBuf, sh.value(loc)...)
		}
		if o.KeepTTL {
			expire = hd.expire
		}
	}
	if err := m.put(sh, h32, key, val, expire, now, now, loc, exists, putUser); err != nil {
		return res, err
	}
	if o.HasSeq {
		m.seq, m.hasSeq = o.Seq, true
	}
	res.Written = true
	return res, nil
}

// putKind says where a write comes from.
type putKind uint8

const (
	putUser   putKind = iota // a client's write: limits apply, tracked
	putImport                // replicated or snapshot record: the primary decided
	putLoad                  // read from the backing store: not a change
)

// put writes a record for key under the shard lock. exists says whether
// loc holds the key's current (unexpired) record; a user write applies the
// map's key limit (records imported from a primary skip it: the primary
// decided) and is recorded as a change for the backing store.
func (m *Map) put(sh *shard, h32 uint32, key, val []byte, expire, now, createdMs int64, loc uint32, exists bool, how putKind) error {
	limit := how == putUser
	size := recordSize(len(key), len(val))
	created := uint32(createdMs / 1000)
	access := m.s.initialAccess(now)
	if exists {
		hd := sh.hdr(loc)
		c := hd.capacity()
		if size == c || (size < c && c-size <= maxSlack && size*2 > c && !sh.slabs[locSlab(loc)].dedicated) {
			oldLive, hadTTL := recordSize(hd.keyLen(), int(hd.vlen)), hd.expire != 0
			sh.write(loc, c, key, val, expire, created, access)
			sh.live += int64(size - oldLive)
			m.s.acct.used.Add(int64(size - oldLive))
			sh.nttl += btoi(expire != 0) - btoi(hadTTL)
			m.s.emitWrite(sh, m, key, val, expire, int64(created)*1000, how == putLoad)
			return m.afterWrite(key, val, now, how)
		}
	} else if mk := m.maxKeys.Load(); limit && mk > 0 && m.count.Load() >= mk {
		return fmt.Errorf("%w: map %q holds %d keys, the limit is %d", ErrMapFull, m.name, m.count.Load(), mk)
	}
	nloc, err := sh.alloc(size, true)
	if err != nil {
		return fmt.Errorf("cannot store key in map %q: %w", m.name, err)
	}
	// alloc may have compacted and moved the old record: find it again.
	if exists {
		loc, _ = sh.find(h32, key)
	}
	sh.write(nloc, size, key, val, expire, created, access)
	if exists {
		hd := sh.hdr(loc)
		oldLive, hadTTL := recordSize(hd.keyLen(), int(hd.vlen)), hd.expire != 0
		sh.relink(h32, loc, nloc)
		sh.live -= int64(oldLive)
		m.s.acct.used.Add(-int64(oldLive))
		sh.nttl -= btoi(hadTTL)
		sh.release(loc)
	} else {
		sh.link(h32, nloc)
		sh.count++
		m.count.Add(1)
		m.s.acct.used.Add(indexBytesPerKey)
	}
	sh.live += int64(size)
	m.s.acct.used.Add(int64(size))
	sh.nttl += btoi(expire != 0)
	m.s.emitWrite(sh, m, key, val, expire, int64(created)*1000, how == putLoad)
	return m.afterWrite(key, val, now, how)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// remove deletes the record at loc under the shard lock.
func (m *Map) remove(sh *shard, h32, loc uint32, why Reason) {
	hd := sh.hdr(loc)
	size := recordSize(hd.keyLen(), int(hd.vlen))
	if hd.expire != 0 {
		sh.nttl--
	}
	if m.s.obs != nil {
		m.s.emitDelete(sh, m, sh.key(loc), why)
	}
	if why == ReasonDeleted {
		m.afterDelete(sh.key(loc))
	}
	sh.unlink(h32, loc)
	sh.count--
	m.count.Add(-1)
	sh.live -= int64(size)
	m.s.acct.used.Add(-int64(size) - indexBytesPerKey)
	switch why {
	case ReasonExpired:
		m.s.expired.Add(1)
	case ReasonEvicted:
		m.s.evicted.Add(1)
	}
	sh.release(loc)
}

// Delete removes key and reports whether it was present (and unexpired).
func (m *Map) Delete(key []byte) bool {
	ok, _ := m.deleteReason(key, ReasonDeleted, nil)
	return ok
}

// DeleteSeq is Delete checked against the map's sequence (jc_s evict).
func (m *Map) DeleteSeq(key []byte, seq uint64) (bool, error) {
	if err := m.advanceSeq(seq); err != nil {
		return false, err
	}
	return m.Delete(key), nil
}

// GetDelete removes key and appends its value to dst (Redis GETDEL).
func (m *Map) GetDelete(dst, key []byte) ([]byte, bool) {
	ok, v := m.deleteReason(key, ReasonDeleted, dst)
	return v, ok
}

func (m *Map) deleteReason(key []byte, why Reason, dst []byte) (bool, []byte) {
	h := keyhash.Sum(key)
	sh := m.shardFor(h)
	if sh == nil {
		return false, dst
	}
	now := m.s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h32 := uint32(h >> 32)
	loc, ok := sh.find(h32, key)
	if !ok {
		return false, dst
	}
	if m.expired(sh.hdr(loc), now) {
		m.remove(sh, h32, loc, ReasonExpired)
		return false, dst
	}
	if dst != nil {
		dst = append(dst, sh.value(loc)...)
	}
	m.remove(sh, h32, loc, why)
	return true, dst
}

// Action is what a Mutate callback asks for.
type Action uint8

// Mutate actions.
const (
	Keep      Action = iota // leave the item as it is
	Put                     // store Mutation.Value with Mutation.ExpireAt
	Remove                  // delete the item
	SetExpiry               // change only the expiry to Mutation.ExpireAt (no write event)
)

// Mutation is a Mutate callback's decision.
type Mutation struct {
	Action   Action
	Value    []byte
	ExpireAt int64 // Unix ms; 0 = none. Ignored unless Action is Put.
}

// Mutate runs fn on key's current item under the key's lock and applies its
// decision atomically: the building block of read-modify-write commands
// (INCR, APPEND, GETEX, EXPIRE, ...). cur.Value is valid only during fn.
// fn must not call back into the store.
func (m *Map) Mutate(key []byte, fn func(cur Entry, exists bool) (Mutation, error)) error {
	if err := m.checkLimits(key, 0); err != nil {
		return err
	}
	h := keyhash.Sum(key)
	sh := m.shardForWrite(h)
	now := m.s.now()
	sh.mu.Lock()
	h32 := uint32(h >> 32)
	loc, exists := sh.find(h32, key)
	var cur Entry
	if exists {
		hd := sh.hdr(loc)
		if m.expired(hd, now) {
			m.remove(sh, h32, loc, ReasonExpired)
			exists = false
		} else {
			cur = Entry{Value: sh.value(loc), ExpireAt: hd.expire, Created: int64(hd.created) * 1000}
		}
	}
	mu, err := fn(cur, exists)
	if err != nil {
		sh.mu.Unlock()
		return err
	}
	switch mu.Action {
	case Put:
		if err := m.checkLimits(key, len(mu.Value)); err != nil {
			sh.mu.Unlock()
			return err
		}
		if need := int64(recordSize(len(key), len(mu.Value)) + indexBytesPerKey); m.s.overLimit(need) {
			// Evicting takes other shard locks: release ours and retry.
			sh.mu.Unlock()
			if err := m.s.makeRoom(need); err != nil {
				return err
			}
			return m.Mutate(key, fn)
		}
		err = m.put(sh, h32, key, mu.Value, mu.ExpireAt, now, now, loc, exists, putUser)
	case Remove:
		if exists {
			m.remove(sh, h32, loc, ReasonDeleted)
		}
	case SetExpiry:
		if exists {
			hd := sh.hdr(loc)
			sh.nttl += btoi(mu.ExpireAt != 0) - btoi(hd.expire != 0)
			hd.expire = mu.ExpireAt
		}
	}
	sh.mu.Unlock()
	return err
}

// eachOf calls fn for every live, unexpired item of the partitions in
// parts (nil = all), partition by partition, holding one partition's read
// lock at a time. fn must not call back into the store. It stops when fn
// returns false.
func (m *Map) eachOf(parts []int, fn func(key, val []byte, h *header) bool) {
	now := m.s.now()
	for _, p := range m.partList(parts) {
		if !m.eachIn(p, now, fn) {
			return
		}
	}
}

func (m *Map) eachIn(p int, now int64, fn func(key, val []byte, h *header) bool) bool {
	sh := m.parts[p].Load()
	if sh == nil {
		return true
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	_, _, done := sh.each(0, 0, int(^uint(0)>>1), func(loc uint32, h *header) bool {
		if m.expired(h, now) {
			return true
		}
		return fn(sh.key(loc), sh.value(loc), h)
	})
	return done
}

// Keys returns copies of the keys matching the glob pattern (nil = all).
func (m *Map) Keys(pattern []byte) [][]byte { return m.KeysIn(nil, pattern) }

// KeysIn is Keys over the partitions in parts (nil = all).
func (m *Map) KeysIn(parts []int, pattern []byte) [][]byte {
	var out [][]byte
	all := pattern == nil || string(pattern) == "*"
	m.eachOf(parts, func(k, _ []byte, _ *header) bool {
		if all || glob.Match(pattern, k, false) {
			out = append(out, append([]byte(nil), k...))
		}
		return true
	})
	return out
}

// KV is a key and its value.
type KV struct {
	Key, Value []byte
}

// Items returns copies of every item whose key matches the glob pattern
// (nil = all), up to limit items (0 = no limit).
func (m *Map) Items(pattern []byte, limit int) []KV { return m.ItemsIn(nil, pattern, limit) }

// ItemsIn is Items over the partitions in parts (nil = all).
func (m *Map) ItemsIn(parts []int, pattern []byte, limit int) []KV {
	var out []KV
	all := pattern == nil || string(pattern) == "*"
	m.eachOf(parts, func(k, v []byte, _ *header) bool {
		if all || glob.Match(pattern, k, false) {
			out = append(out, KV{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		return limit == 0 || len(out) < limit
	})
	return out
}

// Scan visits partitions starting at cursor and returns the keys that
// match pattern (nil = all) and the cursor to continue from (0 when the
// scan is complete). It returns whole partitions until at least count keys
// were collected, so every key present for the whole scan is returned
// exactly once, whatever writes happen meanwhile (Redis's SCAN guarantee).
func (m *Map) Scan(cursor uint64, pattern []byte, count int) ([][]byte, uint64) {
	if count < 1 {
		count = 10
	}
	var out [][]byte
	all := pattern == nil || string(pattern) == "*"
	now := m.s.now()
	p := int(cursor)
	for ; p < len(m.parts) && len(out) < count; p++ {
		m.eachIn(p, now, func(k, _ []byte, _ *header) bool {
			if all || glob.Match(pattern, k, false) {
				out = append(out, append([]byte(nil), k...))
			}
			return true
		})
	}
	if p >= len(m.parts) {
		return out, 0
	}
	return out, uint64(p)
}

// RandomKey returns a random key, or false if the map is empty.
func (m *Map) RandomKey() ([]byte, bool) { return m.RandomKeyIn(nil) }

// RandomKeyIn is RandomKey over the partitions in parts (nil = all).
func (m *Map) RandomKeyIn(parts []int) ([]byte, bool) {
	if m.count.Load() == 0 {
		return nil, false
	}
	now := m.s.now()
	list := m.partList(parts)
	n := len(list)
	if n == 0 {
		return nil, false
	}
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		sh := m.parts[list[(start+i)%n]].Load()
		if sh == nil {
			continue
		}
		sh.mu.RLock()
		for _, v := range sh.index {
			loc := v
			if v&collBit != 0 {
				loc = sh.coll[v&^collBit][0]
			}
			if !m.expired(sh.hdr(loc), now) {
				k := append([]byte(nil), sh.key(loc)...)
				sh.mu.RUnlock()
				return k, true
			}
		}
		sh.mu.RUnlock()
	}
	return nil, false
}

// removeWhere deletes every item for which pred is true and calls fn (if
// not nil) with each removed item. It works one partition at a time and
// collects the matching keys before removing them, because a removal may
// compact a slab and move records under a running walk.
func (m *Map) removeWhere(parts []int, pred func(key []byte, h *header, now int64) bool, why Reason, fn func(key, val []byte)) int {
	n := 0
	var keys [][]byte
	for _, p := range m.partList(parts) {
		sh := m.parts[p].Load()
		if sh == nil {
			continue
		}
		now := m.s.now()
		keys = keys[:0]
		sh.mu.Lock()
		sh.each(0, 0, int(^uint(0)>>1), func(loc uint32, h *header) bool {
			if k := sh.key(loc); pred(k, h, now) {
				keys = append(keys, append([]byte(nil), k...))
			}
			return true
		})
		for _, k := range keys {
			h32 := uint32(keyhash.Sum(k) >> 32)
			loc, ok := sh.find(h32, k)
			if !ok {
				continue
			}
			if fn != nil {
				fn(k, sh.value(loc))
			}
			m.remove(sh, h32, loc, why)
			n++
		}
		sh.mu.Unlock()
	}
	return n
}

// EvictSince removes every item created more than ageSecs seconds ago (jc
// evict_map_since) and returns how many it removed.
func (m *Map) EvictSince(ageSecs int64) int { return m.EvictSinceIn(nil, ageSecs) }

// EvictSinceIn is EvictSince over the partitions in parts (nil = all).
func (m *Map) EvictSinceIn(parts []int, ageSecs int64) int {
	return m.removeWhere(parts, func(_ []byte, h *header, now int64) bool {
		return (int64(h.created)+ageSecs)*1000 <= now
	}, ReasonEvicted, nil)
}

// Clear removes every item. Unless silent, subscribers get a delete event
// for each key.
func (m *Map) Clear(silent bool) { m.ClearIn(nil, silent) }

// ClearIn is Clear over the partitions in parts (nil = all). With an
// observer, a silent clear still reports each delete, with
// ReasonClearedSilent, so replicas apply it (subscribers are not told).
func (m *Map) ClearIn(parts []int, silent bool) {
	if m.s.obs != nil {
		why := ReasonCleared
		if silent {
			why = ReasonClearedSilent
		}
		m.removeWhere(parts, func([]byte, *header, int64) bool { return true }, why, nil)
		return
	}
	for _, p := range m.partList(parts) {
		sh := m.parts[p].Load()
		if sh == nil {
			continue
		}
		sh.mu.Lock()
		m.count.Add(-int64(sh.count))
		sh.reset()
		sh.mu.Unlock()
	}
}

// Bytes returns the bytes of the map's live records.
func (m *Map) Bytes() int64 { return m.BytesIn(nil) }

// BytesIn is Bytes over the partitions in parts (nil = all).
func (m *Map) BytesIn(parts []int) int64 {
	var n int64
	for _, p := range m.partList(parts) {
		if sh := m.parts[p].Load(); sh != nil {
			sh.mu.RLock()
			n += sh.live
			sh.mu.RUnlock()
		}
	}
	return n
}

// LenIn returns the number of items in the partitions in parts (nil =
// all; then it equals Len).
func (m *Map) LenIn(parts []int) int64 {
	if parts == nil {
		return m.Len()
	}
	var n int64
	for _, p := range m.partList(parts) {
		if sh := m.parts[p].Load(); sh != nil {
			sh.mu.RLock()
			n += int64(sh.count)
			sh.mu.RUnlock()
		}
	}
	return n
}

// partList returns parts, or every partition for nil, dropping numbers
// out of range.
func (m *Map) partList(parts []int) []int {
	if parts == nil {
		all := make([]int, len(m.parts))
		for i := range all {
			all[i] = i
		}
		return all
	}
	out := parts[:0:0]
	for _, p := range parts {
		if p >= 0 && p < len(m.parts) {
			out = append(out, p)
		}
	}
	return out
}
