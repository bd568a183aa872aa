package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/engramdb/engram/internal/clock"
	"github.com/engramdb/engram/internal/keyhash"
)

// Reason says why an item was deleted.
type Reason uint8

// Delete reasons carried by events. ONLY APPEND TO THIS LIST: the values
// travel between nodes.
const (
	ReasonDeleted Reason = iota // an explicit delete
	ReasonExpired               // its TTL or the map's max age passed
	ReasonEvicted               // removed to respect the memory bound, or by evict-since
	ReasonCleared               // its map was cleared
	// ReasonClearedSilent: its map was cleared silently (FLUSH SILENT).
	// Replicas must apply it; subscribers must not be told.
	ReasonClearedSilent
)

var reasonNames = [...]string{"delete", "expired", "evicted", "cleared", "cleared_silent"}

// String returns the reason's name as events show it.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", r)
}

// EventKind says whether an event is a write or a delete.
type EventKind uint8

// Event kinds.
const (
	EventWrite EventKind = iota
	EventDelete
)

// Event is one change to one key. The event, its Key and its Value are
// valid only during the Observer call: copy what you keep.
type Event struct {
	Map   string
	Key   []byte
	Value []byte // new value of a write
	// ExpireAt (Unix ms, 0 = none) and Created (Unix ms, second precision)
	// of a write: what a replica needs to store an identical record.
	ExpireAt int64
	Created  int64
	Kind     EventKind
	Reason   Reason // why a delete happened
	// Loaded marks a write that copied the backing store's value into
	// memory (read-through): the data did not change, so it is replicated
	// (the copy is state) but is not news for subscribers and is not a
	// change to write back.
	Loaded bool
}

// Observer receives every change. OnEvent is called with the key's
// partition locked, so events of one key arrive in order; it must not block
// or call back into the store.
type Observer interface {
	OnEvent(ev *Event)
}

// Store is one node's keyspace. Create it with New; it is safe for
// concurrent use.
type Store struct {
	opts   Options
	coarse *clock.Coarse // nil when Options.Clock was given
	obs    Observer
	acct   accounting
	start  time.Time

	maxMemory atomic.Int64
	policy    atomic.Uint32
	maxVal    atomic.Int64

	mu   sync.RWMutex
	maps map[string]*Map
	list atomic.Pointer[[]*Map] // snapshot for the sweeper and eviction

	misses  atomic.Int64 // misses on partitions never written
	expired atomic.Int64
	evicted atomic.Int64
	// dirtyErrors counts deletes whose change record could not be written
	// (the shadow map's partition storage was exhausted).
	dirtyErrors atomic.Int64

	sweepMu  sync.Mutex
	sweepPos int // next map*partitions+partition the sweeper visits

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New creates a store and starts its background sweeper.
func New(opts Options) (*Store, error) {
	opts = opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("invalid store options: %w", err)
	}
	var coarse *clock.Coarse
	if opts.Clock == nil {
		coarse = clock.NewCoarse()
		opts.Clock = coarse.Now
	}
	s := &Store{coarse: coarse, opts: opts, obs: opts.Observer, start: time.Now(), maps: make(map[string]*Map),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.maxMemory.Store(opts.MaxMemory)
	s.policy.Store(uint32(opts.Policy))
	s.maxVal.Store(opts.MaxValueLen)
	s.list.Store(&[]*Map{})
	go s.sweepLoop()
	return s, nil
}

// Close stops the background jobs. The data stays readable.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		if s.coarse != nil {
			s.coarse.Stop()
		}
	})
	return nil
}

func (s *Store) now() int64 { return s.opts.Clock() }

// Partitions returns the number of partitions each map is split into.
func (s *Store) Partitions() int { return s.opts.Partitions }

// PartitionOf returns the partition of key.
func (s *Store) PartitionOf(key []byte) int {
	return keyhash.Partition(keyhash.Sum(key), s.opts.Partitions)
}

// Map returns the named map, creating it if needed (without the bound on
// the number of maps: for names the application chose, not clients).
func (s *Store) Map(name string) *Map {
	m, _ := s.createMap(name, 0)
	return m
}

// Now returns the store's clock in Unix milliseconds.
func (s *Store) Now() int64 { return s.now() }

// createMap returns the named map, creating it unless limit > 0 maps
// already exist.
func (s *Store) createMap(name string, limit int) (*Map, error) {
	s.mu.RLock()
	m := s.maps[name]
	s.mu.RUnlock()
	if m != nil {
		return m, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m = s.maps[name]; m != nil {
		return m, nil
	}
	if limit > 0 && len(s.maps) >= limit {
		return nil, fmt.Errorf("%w: %d maps exist, the limit is %d", ErrTooManyMaps, len(s.maps), limit)
	}
	m = &Map{s: s, name: name, parts: make([]atomic.Pointer[shard], s.opts.Partitions), internal: IsInternal(name)}
	m.maxKeys.Store(s.opts.MaxKeysPerMap)
	s.maps[name] = m
	l := append(slices.Clone(*s.list.Load()), m)
	s.list.Store(&l)
	return m, nil
}

// OpenMap returns the named map, creating it if needed, unless that would
// pass the bound on the number of maps (each map costs a partition table,
// so a client must not create them without bound).
func (s *Store) OpenMap(name string) (*Map, error) {
	if m, ok := s.Lookup(stringBytes(name)); ok {
		return m, nil
	}
	if IsInternal(name) {
		// Only nodes name internal maps (a client cannot select one), one
		// per client map at most: they do not count against the bound.
		return s.createMap(name, 0)
	}
	s.mu.Lock()
	n := len(s.maps)
	_, exists := s.maps[name]
	s.mu.Unlock()
	// Checked and created under one lock hold by createMap below.
	if !exists && n >= s.opts.MaxMaps {
		return nil, fmt.Errorf("%w: %d maps exist, the limit is %d", ErrTooManyMaps, n, s.opts.MaxMaps)
	}
	return s.createMap(name, s.opts.MaxMaps)
}

// stringBytes views s as bytes without copying; the result must not be
// modified.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// IsInternal reports whether name is the name of an internal map: one
// that starts with a zero byte. Such maps hold Engram's own records (the
// cluster's sequence numbers), not client data: front ends refuse to let
// clients select or configure them, MapNames does not list them, Flush
// does not clear them and eviction never takes their keys. They are
// partitioned, exported and imported like any other map, so the cluster
// replicates and moves them with the data.
func IsInternal(name string) bool { return len(name) > 0 && name[0] == 0 }

// Lookup returns the named map if it exists.
func (s *Store) Lookup(name []byte) (*Map, bool) {
	s.mu.RLock()
	m, ok := s.maps[string(name)]
	s.mu.RUnlock()
	return m, ok
}

// MapNames returns the names of the maps that hold keys or settings
// (jc maps()), sorted. Internal maps are not listed.
func (s *Store) MapNames() []string {
	var names []string
	for _, m := range *s.list.Load() {
		if m.internal {
			continue
		}
		_, hasSeq := m.Sequence()
		if m.Len() > 0 || m.MaxTTL() > 0 || hasSeq {
			names = append(names, m.name)
		}
	}
	slices.Sort(names)
	return names
}

// Flush clears every map (jc flush). Silent sends no events. Like each
// map's settings and sequence number, internal maps are kept.
func (s *Store) Flush(silent bool) { s.FlushIn(nil, silent) }

// FlushIn is Flush over the partitions in parts (nil = all).
func (s *Store) FlushIn(parts []int, silent bool) {
	for _, m := range *s.list.Load() {
		if !m.internal {
			m.ClearIn(parts, silent)
		}
	}
}

// Sequences returns the highest sequence number of every map that has one
// (jc_s sequence()).
func (s *Store) Sequences() map[string]uint64 {
	out := make(map[string]uint64)
	for _, m := range *s.list.Load() {
		if seq, ok := m.Sequence(); ok {
			out[m.name] = seq
		}
	}
	return out
}

// SetMaxMemory changes the memory bound at run time (0 = none).
func (s *Store) SetMaxMemory(n int64) error {
	if n < 0 {
		return fmt.Errorf("max memory must not be negative, got %d", n)
	}
	s.maxMemory.Store(n)
	return nil
}

// MaxMemory returns the memory bound (0 = none).
func (s *Store) MaxMemory() int64 { return s.maxMemory.Load() }

// SetPolicy changes the eviction policy at run time.
func (s *Store) SetPolicy(p Policy) error {
	if int(p) >= len(policyNames) {
		return fmt.Errorf("unknown eviction policy %d", p)
	}
	s.policy.Store(uint32(p))
	return nil
}

// Policy returns the eviction policy.
func (s *Store) Policy() Policy { return Policy(s.policy.Load()) }

// SetMaxValueLen changes the largest value accepted.
func (s *Store) SetMaxValueLen(n int64) error {
	if n < 0 || n > 1<<32-1-(1<<20) {
		return fmt.Errorf("max value length must be between 0 and 4 GiB, got %d", n)
	}
	s.maxVal.Store(n)
	return nil
}

func (s *Store) maxValue() int64 { return s.maxVal.Load() }

// MaxValueLen returns the largest value accepted.
func (s *Store) MaxValueLen() int64 { return s.maxVal.Load() }

// MaxMaps returns the bound on the number of maps.
func (s *Store) MaxMaps() int { return s.opts.MaxMaps }

// MaxKeyLen returns the longest key accepted.
func (s *Store) MaxKeyLen() int { return s.opts.MaxKeyLen }

// Stats is a snapshot of the store's counters.
type Stats struct {
	Maps        int   // maps created
	Keys        int64 // keys in all maps (expired-but-unswept included)
	UsedMemory  int64 // bytes of live records plus the index estimate
	ArenaMemory int64 // bytes of slab memory allocated
	MaxMemory   int64
	Policy      Policy
	Hits        int64
	Misses      int64
	Expired     int64 // items removed because they expired
	Evicted     int64 // items removed for the memory bound (or evict-since)
	// ExternalMemory is the part of UsedMemory held outside the store for
	// the keyspace (JSON query indexes).
	ExternalMemory int64
	// DirtyErrors counts explicit deletes of tracked maps whose change
	// record could not be written (storage exhausted): they may not reach
	// the backing store.
	DirtyErrors int64
	Uptime      time.Duration
	Started     time.Time
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	st := Stats{UsedMemory: s.used(), ExternalMemory: s.externalMemory(), ArenaMemory: s.acct.arena.Load(), MaxMemory: s.MaxMemory(),
		Policy: s.Policy(), Misses: s.misses.Load(), Expired: s.expired.Load(), Evicted: s.evicted.Load(), DirtyErrors: s.dirtyErrors.Load(),
		Started: s.start, Uptime: time.Since(s.start)}
	l := *s.list.Load()
	st.Maps = len(l)
	for _, m := range l {
		st.Keys += m.Len()
		for p := range m.parts {
			if sh := m.parts[p].Load(); sh != nil {
				st.Hits += sh.hits.Load()
				st.Misses += sh.misses.Load()
			}
		}
	}
	return st
}

// ResetStats zeroes the hit, miss, expired and evicted counters.
func (s *Store) ResetStats() {
	s.misses.Store(0)
	s.expired.Store(0)
	s.evicted.Store(0)
	for _, m := range *s.list.Load() {
		for p := range m.parts {
			if sh := m.parts[p].Load(); sh != nil {
				sh.hits.Store(0)
				sh.misses.Store(0)
			}
		}
	}
}

// emitWrite and emitDelete run with sh locked (exclusively) and reuse its
// event.
func (s *Store) emitWrite(sh *shard, m *Map, key, val []byte, expireAt, created int64, loaded bool) {
	if s.obs != nil {
		sh.ev = Event{Map: m.name, Key: key, Value: val, Kind: EventWrite, ExpireAt: expireAt, Created: created, Loaded: loaded}
		s.obs.OnEvent(&sh.ev)
		sh.ev = Event{} // keep no reference to the caller's bytes
	}
}

func (s *Store) emitDelete(sh *shard, m *Map, key []byte, why Reason) {
	sh.ev = Event{Map: m.name, Key: key, Kind: EventDelete, Reason: why}
	s.obs.OnEvent(&sh.ev)
	sh.ev = Event{}
}

// LFU counter layout in header.access: minutes (16 bits) << 8 | counter.
const lfuInit = 5 // new keys start above zero so they are not evicted at once (Redis LFU_INIT_VAL)

func (s *Store) initialAccess(now int64) uint32 {
	if s.Policy() == AllKeysLFU {
		return uint32(now/60000)&0xffff<<8 | lfuInit
	}
	return uint32(now / 1000)
}

// touch records an access for the eviction policy. Readers hold only the
// read lock, so it updates atomically; a lost update only blurs the sample.
func (s *Store) touch(h *header, now int64) {
	if s.maxMemory.Load() == 0 {
		return // no eviction: save the cache-line write on the hot path
	}
	if s.Policy() != AllKeysLFU {
		if t := uint32(now / 1000); atomic.LoadUint32(&h.access) != t {
			atomic.StoreUint32(&h.access, t)
		}
		return
	}
	a := atomic.LoadUint32(&h.access)
	atomic.StoreUint32(&h.access, lfuTouch(a, now))
}

// lfuDecayed returns the counter after decaying it by one per minute idle.
func lfuDecayed(a uint32, now int64) uint32 {
	c := a & 0xff
	idle := (uint32(now/60000) - a>>8) & 0xffff
	if idle >= c {
		return 0
	}
	return c - idle
}

// lfuTouch increments the counter logarithmically (Redis's LFU_LOG_FACTOR 10).
func lfuTouch(a uint32, now int64) uint32 {
	c := lfuDecayed(a, now)
	if c < 255 {
		base := float64(0)
		if c > lfuInit {
			base = float64(c - lfuInit)
		}
		if rand.Float64() < 1/(base*10+1) {
			c++
		}
	}
	return uint32(now/60000)&0xffff<<8 | c
}

// overLimit reports whether adding need bytes would pass the memory bound.
func (s *Store) overLimit(need int64) bool {
	max := s.maxMemory.Load()
	return max > 0 && s.used()+need > max
}

func (s *Store) externalMemory() int64 {
	if s.opts.ExternalMemory == nil {
		return 0
	}
	return s.opts.ExternalMemory()
}

// used is the memory counted against the bound: records and index
// estimate, plus what others hold for the keyspace (ExternalMemory).
func (s *Store) used() int64 {
	u := s.acct.used.Load()
	if s.opts.ExternalMemory != nil {
		u += s.opts.ExternalMemory()
	}
	return u
}

// makeRoom evicts until need more bytes fit under the memory bound, or
// returns ErrOOM if the policy forbids eviction or nothing can be evicted.
func (s *Store) makeRoom(need int64) error {
	if !s.overLimit(need) {
		return nil
	}
	if s.Policy() == NoEviction {
		return s.oom()
	}
	for tries := 0; s.overLimit(need); tries++ {
		if tries > 1000 || !s.evictOne() {
			return s.oom()
		}
	}
	return nil
}

func (s *Store) oom() error {
	return fmt.Errorf("%w (used %d bytes, max %d, policy %s)", ErrOOM, s.used(), s.maxMemory.Load(), s.Policy())
}

// evictOne samples keys and evicts the best candidate for the policy.
func (s *Store) evictOne() bool {
	l := *s.list.Load()
	if len(l) == 0 {
		return false
	}
	policy := s.Policy()
	now := s.now()
	var (
		bestMap   *Map
		bestKey   []byte
		bestScore int64
	)
	samples := 0
	for attempt := 0; samples < s.opts.EvictionSamples && attempt < 16*s.opts.EvictionSamples; attempt++ {
		m := l[rand.IntN(len(l))]
		if m.Len() == 0 || m.internal {
			continue // internal records (sequence numbers) are not cache entries
		}
		sh := m.parts[rand.IntN(len(m.parts))].Load()
		if sh == nil {
			continue
		}
		sh.mu.RLock()
		for _, v := range sh.index {
			loc := v
			if v&collBit != 0 {
				loc = sh.coll[v&^collBit][0]
			}
			h := sh.hdr(loc)
			var score int64 // lower is evicted first
			switch policy {
			case AllKeysLRU, VolatileLRU:
				score = int64(atomic.LoadUint32(&h.access))
			case AllKeysLFU:
				score = int64(lfuDecayed(atomic.LoadUint32(&h.access), now))
			case VolatileTTL:
				score = h.expire
			case AllKeysRandom:
				score = rand.Int64()
			}
			if (policy == VolatileLRU || policy == VolatileTTL) && h.expire == 0 {
				break
			}
			samples++
			if bestMap == nil || score < bestScore {
				bestMap, bestScore = m, score
				bestKey = append(bestKey[:0], sh.key(loc)...)
			}
			break
		}
		sh.mu.RUnlock()
	}
	if bestMap == nil {
		return false
	}
	bestMap.deleteReason(bestKey, ReasonEvicted, nil)
	return true
}

// sweepLoop removes expired items in the background, a budget of records
// per tick, so expired items free their memory even if never read again.
func (s *Store) sweepLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep(context.Background())
		}
	}
}

// Sweep runs one sweep tick: it examines up to the sweep budget of records
// in maps with expiring items, resuming where the previous tick stopped,
// and removes those that expired. It returns how many it removed. The
// background job calls it; tests call it directly.
func (s *Store) Sweep(ctx context.Context) int {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	l := *s.list.Load()
	if len(l) == 0 {
		return 0
	}
	parts := s.opts.Partitions
	total := len(l) * parts
	pos := s.sweepPos % total
	budget := s.opts.SweepBudget
	removed := 0
	var keys [][]byte
	for i := 0; i < total && budget > 0 && ctx.Err() == nil; i++ {
		cur := (pos + i) % total
		m, sh := l[cur/parts], l[cur/parts].parts[cur%parts].Load()
		s.sweepPos = cur
		if sh == nil {
			continue
		}
		sh.mu.Lock()
		if sh.count == 0 || (sh.nttl == 0 && m.MaxTTL() == 0) {
			sh.mu.Unlock()
			continue
		}
		now := s.now()
		keys = keys[:0]
		visited := 0
		id, off, done := sh.each(sh.sweepAt, sh.sweepOf, budget, func(loc uint32, h *header) bool {
			visited++
			if m.expired(h, now) {
				keys = append(keys, append([]byte(nil), sh.key(loc)...))
			}
			return true
		})
		budget -= visited
		if done {
			sh.sweepAt, sh.sweepOf = 0, 0
		} else {
			sh.sweepAt, sh.sweepOf = id, off
		}
		for _, k := range keys {
			h32 := uint32(keyhash.Sum(k) >> 32)
			if loc, ok := sh.find(h32, k); ok && m.expired(sh.hdr(loc), now) {
				m.remove(sh, h32, loc, ReasonExpired)
				removed++
			}
		}
		sh.mu.Unlock()
		if done {
			s.sweepPos = cur + 1
		}
	}
	return removed
}

// multiObserver hands every event to several observers in order.
type multiObserver []Observer

func (m multiObserver) OnEvent(ev *Event) {
	for _, o := range m {
		o.OnEvent(ev)
	}
}

// Observers combines observers (nil ones are skipped) into one, called in
// the order given: replication, the backing store's write-behind queue,
// indexes and pub/sub all consume the same stream of changes. It returns
// nil when there is none, which keeps the store's event path free.
func Observers(list ...Observer) Observer {
	var out multiObserver
	for _, o := range list {
		if o != nil {
			out = append(out, o)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}
