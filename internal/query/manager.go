package query

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/engramdb/engram/internal/keyhash"
	"github.com/engramdb/engram/internal/store"
	"github.com/tidwall/gjson"
)

// Errors of index definitions.
var (
	// ErrNoIndexesAvailable: the map already has its maximum number of
	// indexes (jc's {error, no_indexes_available}).
	ErrNoIndexesAvailable = errors.New("no indexes available")
	// ErrInternalMap: internal maps (names starting with a zero byte)
	// cannot be indexed or queried.
	ErrInternalMap = errors.New("internal maps cannot be indexed")
	// ErrNotAttached: the manager has no store yet (Attach).
	ErrNotAttached = errors.New("query manager has no store")
)

// Defaults of Options.
const (
	DefaultMaxIndexesPerMap = 4
	DefaultAutoThreshold    = 10
	DefaultAutoWindow       = time.Minute
	// MaxIndexes bounds the indexes of all maps of a node: an empty index
	// costs a table per partition (about 20 KiB with 271 partitions), so
	// clients creating maps and indexes cannot grow memory without bound.
	MaxIndexes = 1024
	// maxAutoPaths bounds the (map, path) pairs counted for auto-indexing
	// in one window, so clients inventing paths cannot grow memory.
	maxAutoPaths = 10000
)

// Options configure a Manager.
type Options struct {
	// Partitions must equal the store's partition count. Default 271.
	Partitions int
	// MaxIndexesPerMap bounds the indexes of one map (jc: four). Default 4.
	MaxIndexesPerMap int
	// AutoThreshold: a path queried on a map without an index more than
	// this many times within AutoWindow gets indexed automatically, if
	// the map has a free index slot. 0 means DefaultAutoThreshold;
	// negative switches automatic indexing off.
	AutoThreshold int
	// AutoWindow is the period over which unindexed queries are counted.
	// Default one minute.
	AutoWindow time.Duration
	// Logger receives index life-cycle logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the auto-index window; default time.Now.
	Now func() time.Time
}

// Manager owns one node's query indexes. It is the store's observer for
// them: install it in store.Options.Observer (alone or through
// store.Observers), create the store, then Attach it.
type Manager struct {
	opts Options
	log  *slog.Logger
	st   atomic.Pointer[store.Store]

	// mem is the estimated memory of every index on this node: the store
	// counts it against its memory bound (MemoryBytes).
	mem atomic.Int64

	mu   sync.Mutex                          // serialises definition changes
	defs atomic.Pointer[map[string][]*index] // map name -> its indexes; replaced, never changed

	autoThreshold atomic.Int64
	autoMu        sync.Mutex
	autoCounts    map[[2]string]int
	autoStart     time.Time
	// OnAuto, when set, is called (outside locks) when a path is indexed
	// automatically; a cluster records the new index cluster-wide with it.
	OnAuto func(mapName, path string)

	wg   sync.WaitGroup
	quit chan struct{}
	once sync.Once
}

// New returns a Manager.
func New(o Options) *Manager {
	if o.Partitions <= 0 {
		o.Partitions = 271
	}
	if o.MaxIndexesPerMap <= 0 {
		o.MaxIndexesPerMap = DefaultMaxIndexesPerMap
	}
	if o.AutoThreshold == 0 {
		o.AutoThreshold = DefaultAutoThreshold
	}
	if o.AutoWindow <= 0 {
		o.AutoWindow = DefaultAutoWindow
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Manager{opts: o, log: o.Logger, quit: make(chan struct{}), autoCounts: map[[2]string]int{}}
	m.autoThreshold.Store(int64(o.AutoThreshold))
	empty := map[string][]*index{}
	m.defs.Store(&empty)
	return m
}

// Attach gives the manager the store it indexes. Call it once, after the
// store was created with the manager as (one of) its observers.
func (m *Manager) Attach(st *store.Store) error {
	if st.Partitions() != m.opts.Partitions {
		return fmt.Errorf("query: the store has %d partitions, the manager %d", st.Partitions(), m.opts.Partitions)
	}
	m.st.Store(st)
	return nil
}

// Close stops index builds in progress and waits for them.
func (m *Manager) Close() {
	m.once.Do(func() { close(m.quit) })
	m.wg.Wait()
}

// MaxIndexesPerMap returns the bound on the indexes of one map.
func (m *Manager) MaxIndexesPerMap() int { return m.opts.MaxIndexesPerMap }

// AutoThreshold returns the automatic indexing threshold (negative: off).
func (m *Manager) AutoThreshold() int { return int(m.autoThreshold.Load()) }

// SetAutoThreshold changes the automatic indexing threshold at run time;
// a negative value switches automatic indexing off, 0 restores the
// default.
func (m *Manager) SetAutoThreshold(n int) {
	if n == 0 {
		n = DefaultAutoThreshold
	}
	m.autoThreshold.Store(int64(n))
	m.autoMu.Lock()
	clear(m.autoCounts)
	m.autoMu.Unlock()
}

// OnEvent keeps the indexes exact: it runs for every change with the
// key's partition locked (store.Observer). It costs one map lookup for a
// map without indexes; for an indexed map, one JSON validation and one
// path lookup per index, and a short per-partition lock.
func (m *Manager) OnEvent(ev *store.Event) {
	list := (*m.defs.Load())[ev.Map]
	if len(list) == 0 {
		return
	}
	p := keyhash.Partition(keyhash.Sum(ev.Key), m.opts.Partitions)
	if ev.Kind != store.EventWrite {
		for _, ix := range list {
			pt := &ix.parts[p]
			pt.mu.Lock()
			pt.del(ev.Key)
			pt.account(&m.mem)
			pt.mu.Unlock()
		}
		return
	}
	valid := gjson.ValidBytes(ev.Value)
	for _, ix := range list {
		var vk string
		ok := false
		if valid {
			vk, ok = valueKeyAt(ev.Value, ix.gpath)
		}
		pt := &ix.parts[p]
		pt.mu.Lock()
		pt.set(ev.Key, vk, ok)
		pt.account(&m.mem)
		pt.mu.Unlock()
	}
}

// OnDropPartition drops partition p from the indexes of mapName: the
// store dropped it without events (store.PartitionDropper; called with
// the map's partition locked, so no change races with it).
func (m *Manager) OnDropPartition(mapName string, p int) {
	if p < 0 || p >= m.opts.Partitions {
		return
	}
	for _, ix := range (*m.defs.Load())[mapName] {
		pt := &ix.parts[p]
		pt.mu.Lock()
		pt.reset()
		pt.gen++
		pt.account(&m.mem)
		pt.mu.Unlock()
	}
}

// Def is an index definition.
type Def struct {
	Path string `json:"path"`
	Auto bool   `json:"auto,omitempty"`
}

// Add starts indexing path on mapName (jc start_indexing): the index is
// installed at once (it follows every change from then on) and filled in
// the background with the existing items; queries use it once it is
// ready. It reports false if the index already exists. It refuses with
// ErrNoIndexesAvailable when the map has MaxIndexesPerMap indexes.
func (m *Manager) Add(mapName, path string, auto bool) (bool, error) {
	if store.IsInternal(mapName) {
		return false, ErrInternalMap
	}
	canon, err := ParsePath(path)
	if err != nil {
		return false, err
	}
	st := m.st.Load()
	if st == nil {
		return false, ErrNotAttached
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.defs.Load()
	for _, ix := range cur[mapName] {
		if ix.path == canon {
			if !auto {
				ix.auto.Store(false) // asked for explicitly now: a user's index
			}
			return false, nil
		}
	}
	total := 0
	for _, l := range cur {
		total += len(l)
	}
	if total >= MaxIndexes {
		return false, fmt.Errorf("%w: this node has %d indexes over all maps, the limit is %d", ErrNoIndexesAvailable, total, MaxIndexes)
	}
	if len(cur[mapName]) >= m.opts.MaxIndexesPerMap {
		return false, fmt.Errorf("%w: map %q has %d indexes, the limit is %d", ErrNoIndexesAvailable, mapName, len(cur[mapName]), m.opts.MaxIndexesPerMap)
	}
	_, gpath, err := pathOf(canon)
	if err != nil {
		return false, err
	}
	ix := newIndex(mapName, canon, gpath, auto, m.opts.Partitions)
	next := make(map[string][]*index, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[mapName] = append(slices.Clone(cur[mapName]), ix)
	// From here every change reaches the index; the backfill copies what
	// was there before.
	m.defs.Store(&next)
	how := "requested"
	if auto {
		how = "automatic"
	}
	m.log.Info("index build started", "map", mapName, "path", canon, "origin", how)
	m.wg.Add(1)
	go m.build(st, ix)
	return true, nil
}

// Remove stops indexing path on mapName (jc stop_indexing) and frees the
// index. It reports whether there was one.
func (m *Manager) Remove(mapName, path string) (bool, error) {
	canon, err := ParsePath(path)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.defs.Load()
	i := slices.IndexFunc(cur[mapName], func(ix *index) bool { return ix.path == canon })
	if i < 0 {
		return false, nil
	}
	ix := cur[mapName][i]
	ix.stopped.Store(true)
	for p := range ix.parts {
		pt := &ix.parts[p]
		pt.mu.Lock()
		pt.release(&m.mem)
		pt.mu.Unlock()
	}
	next := make(map[string][]*index, len(cur))
	for k, v := range cur {
		next[k] = v
	}
	rest := slices.Delete(slices.Clone(cur[mapName]), i, i+1)
	if len(rest) == 0 {
		delete(next, mapName)
	} else {
		next[mapName] = rest
	}
	m.defs.Store(&next)
	m.log.Info("index removed", "map", mapName, "path", canon)
	return true, nil
}

// MemoryBytes returns the estimated memory of every index on this node
// (the store counts it against its memory bound).
func (m *Manager) MemoryBytes() int64 { return m.mem.Load() }

// Defs returns the index definitions of mapName, in creation order.
func (m *Manager) Defs(mapName string) []Def {
	var out []Def
	for _, ix := range (*m.defs.Load())[mapName] {
		out = append(out, Def{Path: ix.path, Auto: ix.auto.Load()})
	}
	return out
}

// SetDefs makes mapName's indexes those of defs (a cluster applies the
// definitions its control plane agreed on): missing ones are added,
// others removed. It returns the first error (e.g. more definitions than
// MaxIndexesPerMap) after applying what it could.
func (m *Manager) SetDefs(mapName string, defs []Def) error {
	want := map[string]bool{}
	for _, d := range defs {
		canon, err := ParsePath(d.Path)
		if err != nil {
			return err
		}
		want[canon] = true
	}
	var errs []error
	for _, d := range m.Defs(mapName) {
		if !want[d.Path] {
			if _, err := m.Remove(mapName, d.Path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, d := range defs {
		if _, err := m.Add(mapName, d.Path, d.Auto); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Info describes one index (jc indexes/0,1, with Engram's details).
type Info struct {
	Map   string `json:"map"`
	Path  string `json:"path"`
	State string `json:"state"` // StateBuilding or StateReady
	Auto  bool   `json:"auto"`  // created by automatic indexing
	// Position is the index's place among the map's indexes (1-based, as
	// jc's {{Map, Path}, Position}).
	Position int `json:"position"`
	// BuildDone and BuildTotal are the backfill's progress in keys (Total
	// is the map's size when the build started).
	BuildDone  int64 `json:"build_done"`
	BuildTotal int64 `json:"build_total"`
	// Keys is the number of keys indexed (those whose value has the path),
	// Values the number of distinct values.
	Keys   int64 `json:"keys"`
	Values int64 `json:"values"`
	// Bytes estimates the memory the index holds (entries and key copies).
	Bytes   int64     `json:"bytes"`
	Created time.Time `json:"created"`
}

// List describes the indexes of mapName, or of every map if mapName is
// "" and all is set, sorted by map then position.
func (m *Manager) List(mapName string, all bool) []Info {
	defs := *m.defs.Load()
	var names []string
	if all {
		for n := range defs {
			names = append(names, n)
		}
		slices.Sort(names)
	} else {
		names = []string{mapName}
	}
	var out []Info
	for _, n := range names {
		for i, ix := range defs[n] {
			out = append(out, ix.info(i+1))
		}
	}
	return out
}

func (ix *index) info(pos int) Info {
	in := Info{Map: ix.mapName, Path: ix.path, State: StateBuilding, Auto: ix.auto.Load(), Position: pos,
		BuildDone: ix.keys.Load(), BuildTotal: ix.total.Load(), Created: ix.created}
	if ix.ready.Load() {
		in.State = StateReady
	}
	for p := range ix.parts {
		pt := &ix.parts[p]
		pt.mu.RLock()
		in.Keys += int64(len(pt.byKey))
		in.Values += int64(len(pt.byVal))
		in.Bytes += pt.bytes
		pt.mu.RUnlock()
	}
	return in
}

// lookup returns the index of mapName on canonical path, or nil.
func (m *Manager) lookup(mapName, path string) *index {
	for _, ix := range (*m.defs.Load())[mapName] {
		if ix.path == path {
			return ix
		}
	}
	return nil
}

// build fills ix with the items that existed when it was installed, one
// partition at a time, then marks it ready.
//
// Exactness with racing writes: ix was installed (every change reaches
// it) before the build reads anything. For each partition the build
// copies (key, value at path) pairs under the partition's read lock, then
// adds those pairs under the index partition's lock, skipping every key
// a live change touched since the index was installed (such keys are in
// byKey, or in tomb if the change removed them) because the change is
// newer than or equal to what the build read. A partition dropped in
// between (its generation changed) is read again.
func (m *Manager) build(st *store.Store, ix *index) {
	defer m.wg.Done()
	start := time.Now()
	type pair struct{ key, vk string }
	var pairs []pair
	sm, ok := st.Lookup([]byte(ix.mapName))
	if ok {
		ix.total.Store(sm.Len())
	}
	lastLog := start
	for p := range ix.parts {
		pt := &ix.parts[p]
		for ok {
			if ix.stopped.Load() {
				return
			}
			select {
			case <-m.quit:
				return
			default:
			}
			pt.mu.RLock()
			gen := pt.gen
			pt.mu.RUnlock()
			pairs = pairs[:0]
			sm.ViewIn(p, func(k, v []byte) bool {
				if gjson.ValidBytes(v) {
					if vk, ok := valueKeyAt(v, ix.gpath); ok {
						pairs = append(pairs, pair{string(k), vk})
						return true
					}
				}
				ix.keys.Add(1) // visited, nothing to index
				return true
			})
			pt.mu.Lock()
			if pt.gen != gen {
				pt.mu.Unlock()
				continue // dropped meanwhile: read it again
			}
			for _, kv := range pairs {
				if _, touched := pt.byKey[kv.key]; touched {
					continue
				}
				if _, touched := pt.tomb[kv.key]; touched {
					continue
				}
				pt.add(kv.key, kv.vk)
			}
			pt.filled, pt.tomb = true, nil
			pt.account(&m.mem)
			pt.mu.Unlock()
			ix.keys.Add(int64(len(pairs)))
			break
		}
		if !ok {
			pt.mu.Lock()
			pt.filled, pt.tomb = true, nil
			pt.mu.Unlock()
		}
		ix.done.Add(1)
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			m.log.Info("index build progress", "map", ix.mapName, "path", ix.path,
				"keys_done", ix.keys.Load(), "keys_total", ix.total.Load(),
				"partitions_done", p+1, "partitions", len(ix.parts))
		}
	}
	ix.ready.Store(true)
	m.log.Info("index ready", "map", ix.mapName, "path", ix.path, "keys", ix.keys.Load(),
		"took", time.Since(start).Round(time.Millisecond))
}

// bytesOf views s as bytes without copying; the store does not keep or
// change its arguments.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
