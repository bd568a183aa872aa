package persist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/store"
)

// Options configure a Manager.
type Options struct {
	// Store is the node's keyspace. Pass the Manager to it as an observer
	// (store.Observers) when creating it.
	Store *store.Store
	// DefaultStore is the store URL maps use unless their settings name
	// one (--store); "" for none.
	DefaultStore string
	// Default is the settings of maps never configured, when DefaultStore
	// is set (default: write-behind with the defaults).
	Default Settings
	// Open opens a store URL (default backing.Open).
	Open func(url string) (backing.Store, error)
	// IsPrimary reports whether this node leads partition p (nil: a
	// standalone node leads every partition). Only a partition's primary
	// records changes and writes them back.
	IsPrimary func(p int) bool
	// Guard runs fn as partition p's primary, ordered with the
	// partition's writes (a cluster runs it as a write of the partition;
	// nil: fn runs directly). It fails if this node no longer leads p.
	Guard func(ctx context.Context, p int, fn func()) error
	// Grace is how long a node that became primary of a partition waits
	// before writing its changes back, so that a write-back the previous
	// primary started has finished (a store write cannot be fenced).
	// It should exceed OpTimeout. Unused on a standalone node.
	Grace time.Duration
	// OpTimeout bounds one store call (default 5s).
	OpTimeout time.Duration
	// Tick is how often the write-back loop looks for due changes
	// (default 50ms).
	Tick time.Duration
	// Workers bounds concurrent write-back batches (default 8).
	Workers int
	// Logger receives store failures and recoveries (never credentials).
	Logger *slog.Logger
	// Now returns the time in Unix ms (default: the store's clock).
	Now func() int64
}

// Manager connects the maps of one node to their backing stores:
// read-through loads (one per key at a time), the write-back of recorded
// changes (write-behind and write-through), persist-now, and the view of
// what is pending. Create it with New, give it to the store as an
// observer, then Start it.
type Manager struct {
	o   Options
	st  *store.Store
	log *slog.Logger

	mu     sync.Mutex                          // guards creation in maps, settings, stores
	maps   atomic.Pointer[map[string]*State]   // copy on write: read lock-free by the observer
	config atomic.Pointer[map[string]Settings] // explicit per-map settings, copy on write under mu
	stores map[string]backing.Store            // open stores by URL
	any    atomic.Bool                         // some map may use a store: the observer has work
	def    Settings                            // settings of maps never configured

	primaryFrom []atomic.Int64 // per partition: Unix ms since this node leads it, 0 if it does not

	loadMu    sync.Mutex
	loading   map[string]*load
	inflightN atomic.Int32

	negMu sync.Mutex
	neg   map[string]int64 // map\x00key -> Unix ms until "not in the store" is trusted
	negN  atomic.Int32

	sem     chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started atomic.Bool
	closed  atomic.Bool
}

// maxNegative bounds the remembered read-through misses per node.
const maxNegative = 100_000

// New creates a manager. It opens no store until a map needs one.
func New(o Options) (*Manager, error) {
	if o.Store == nil {
		return nil, errors.New("persist: Options.Store is required")
	}
	if o.Open == nil {
		o.Open = backing.Open
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.Tick <= 0 {
		o.Tick = 50 * time.Millisecond
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = o.Store.Now
	}
	def := Settings{}
	if o.DefaultStore != "" {
		def = o.Default
		if def.Mode == ModeNone && def == (Settings{}) {
			def.Mode = ModeWriteBehind
		}
		def = def.WithDefaults()
		if err := def.Validate(); err != nil {
			return nil, fmt.Errorf("default store settings: %w", err)
		}
	}
	m := &Manager{o: o, st: o.Store, log: o.Logger, stores: map[string]backing.Store{},
		def: def, primaryFrom: make([]atomic.Int64, o.Store.Partitions()), loading: map[string]*load{},
		neg: map[string]int64{}, sem: make(chan struct{}, o.Workers), stop: make(chan struct{}), done: make(chan struct{})}
	m.maps.Store(&map[string]*State{})
	m.config.Store(&map[string]Settings{})
	m.any.Store(def.Mode != ModeNone)
	if o.IsPrimary == nil {
		for p := range m.primaryFrom {
			m.primaryFrom[p].Store(1) // a standalone node has led everything since long ago
		}
	}
	return m, nil
}

// DefaultSettings returns the settings of maps never configured.
func (m *Manager) DefaultSettings() Settings { return m.def }

// Start starts the write-back loop.
func (m *Manager) Start() {
	if m.started.Swap(true) {
		return
	}
	go m.loop()
}

// State is one map's link to its store, and the index of its pending
// changes (the shadow map's keys by partition, in the order they became
// dirty). The index is a hint built from the shadow map's events on every
// node (replicas too, so a new primary has it); the shadow map is the
// truth, and a periodic rescan repairs the index.
type State struct {
	name   string
	set    atomic.Pointer[Settings] // nil until activated
	bs     atomic.Pointer[storeRef]
	actMu  sync.Mutex // serialises activation
	dirty  atomic.Pointer[store.Map]
	queues []partQueue

	claimMu sync.Mutex
	claimed map[string]chan struct{} // keys being written back now

	pending      atomic.Int64 // keys in the index (all partitions held)
	pendingBytes atomic.Int64 // their keys and shadow records

	received, written, deleted, batches, failures atomic.Int64
	loads, loadsFound, loadErrors, negHits        atomic.Int64
	consecutive                                   atomic.Int32
	backoffUntil                                  atomic.Int64
	lastErr                                       atomic.Pointer[string]
	lastLog                                       atomic.Int64
}

type storeRef struct {
	url string
	s   backing.Store
}

type partQueue struct {
	mu  sync.Mutex
	q   []dirtyRef
	set map[string]int64 // pending keys -> bytes (key + shadow record)
}

type dirtyRef struct {
	key   string
	since int64 // when it became dirty (due at since + delay)
	retry int64 // not before (after a failure)
}

// state returns name's State, creating an inactive one.
func (m *Manager) state(name string) *State {
	if ms := (*m.maps.Load())[name]; ms != nil {
		return ms
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.maps.Load()
	if ms := cur[name]; ms != nil {
		return ms
	}
	ms := &State{name: name, queues: make([]partQueue, m.st.Partitions()), claimed: map[string]chan struct{}{}}
	next := make(map[string]*State, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[name] = ms
	m.maps.Store(&next)
	return ms
}

// settingsOf returns the settings map name runs with.
// It takes no lock: the embedded API asks it on every call to a map that
// has not used a store yet.
func (m *Manager) settingsOf(name string) Settings {
	s, _ := m.Settings(name)
	return s
}

// Configure sets map name's settings (a cluster applies them on every
// node). Changes already pending are written back to the new store.
func (m *Manager) Configure(name string, s Settings) error {
	if store.IsInternal(name) {
		return errors.New("internal maps have no store settings")
	}
	s = s.WithDefaults()
	if err := m.Check(s); err != nil {
		return err
	}
	m.mu.Lock()
	cur := *m.config.Load()
	next := make(map[string]Settings, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[name] = s
	m.config.Store(&next)
	if s.Mode != ModeNone {
		m.any.Store(true)
	}
	m.mu.Unlock()
	ms := m.state(name)
	ms.actMu.Lock()
	defer ms.actMu.Unlock()
	if ms.set.Load() == nil {
		return nil // activated with these settings on first use
	}
	return m.activateLocked(ms, s)
}

// Check reports whether s can be applied on this node.
func (m *Manager) Check(s Settings) error {
	if err := s.WithDefaults().Validate(); err != nil {
		return err
	}
	if s.Mode != ModeNone && s.Store == "" && m.o.DefaultStore == "" {
		return errors.New("this node has no default store (--store): name one with store=URL")
	}
	return nil
}

// Probe opens the store s names (kept open for the map), so that a
// setting naming a store that cannot be opened (a misconfigured bucket,
// missing credentials) is refused when it is set, not at the first
// command. An unreachable store opens (it may come back).
func (m *Manager) Probe(s Settings) error {
	if s.Mode == ModeNone {
		return nil
	}
	url := s.Store
	if url == "" {
		url = m.o.DefaultStore
	}
	_, err := m.openStore(url)
	return err
}

// Settings returns map name's settings and whether they were set
// explicitly (otherwise they are the node's defaults).
func (m *Manager) Settings(name string) (Settings, bool) {
	s, ok := (*m.config.Load())[name]
	if !ok {
		s = m.def
	}
	return s, ok
}

// Uses reports whether map name has (or will have, on first use) a
// store: callers with a faster path that bypasses the commands (the
// embedded API, HTTP) must take the command path for it. It opens
// nothing.
func (m *Manager) Uses(name string) bool {
	if m == nil || !m.any.Load() || store.IsInternal(name) {
		return false
	}
	if ms := (*m.maps.Load())[name]; ms != nil {
		if s := ms.set.Load(); s != nil {
			return s.Mode != ModeNone
		}
	}
	return m.settingsOf(name).Mode != ModeNone
}

// Policy returns the state of map mp if it uses a store (nil otherwise),
// activating it on first use: its store is opened and, if it writes
// back, the map starts recording changes. A node calls it before running
// any command on mp, so a map records its changes from its first write.
func (m *Manager) Policy(mp *store.Map) (*State, error) {
	if m == nil || !m.any.Load() {
		return nil, nil
	}
	name := mp.Name()
	ms := (*m.maps.Load())[name]
	if ms != nil {
		if s := ms.set.Load(); s != nil {
			if s.Mode == ModeNone {
				return nil, nil
			}
			if s.Mode.Writes() && !mp.Tracked() {
				if err := m.track(ms, mp); err != nil {
					return nil, err
				}
			}
			return ms, nil
		}
	} else if store.IsInternal(name) {
		return nil, nil
	}
	if m.settingsOf(name).Mode == ModeNone {
		return nil, nil
	}
	ms = m.state(name)
	if err := m.activate(ms); err != nil {
		return nil, err
	}
	return m.Policy(mp)
}

func (m *Manager) activate(ms *State) error {
	ms.actMu.Lock()
	defer ms.actMu.Unlock()
	if ms.set.Load() != nil {
		return nil
	}
	return m.activateLocked(ms, m.settingsOf(ms.name))
}

// activateLocked applies s to ms (ms.actMu held): opens the store and
// turns change recording on or off.
func (m *Manager) activateLocked(ms *State, s Settings) error {
	url := s.Store
	if url == "" {
		url = m.o.DefaultStore
	}
	if url != "" {
		bs, err := m.openStore(url)
		if err != nil {
			return err
		}
		ms.bs.Store(&storeRef{url: url, s: bs})
	}
	mp, err := m.st.OpenMap(ms.name)
	if err != nil {
		return err
	}
	ms.set.Store(&s)
	if s.Mode.Writes() {
		return m.track(ms, mp)
	}
	_, err = mp.Track(nil)
	return err
}

func (m *Manager) track(ms *State, mp *store.Map) error {
	d, err := mp.Track(func(key []byte) bool { return m.leads(m.st.PartitionOf(key)) })
	if err != nil {
		return err
	}
	ms.dirty.Store(d)
	return nil
}

func (m *Manager) openStore(url string) (backing.Store, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.stores[url]; ok {
		return s, nil
	}
	s, err := m.o.Open(url)
	if err != nil {
		return nil, err
	}
	m.stores[url] = s
	return s, nil
}

func (m *Manager) leads(p int) bool {
	return m.o.IsPrimary == nil || m.o.IsPrimary(p)
}

// ready reports whether this node has led p long enough to write its
// changes back (see Options.Grace).
func (m *Manager) ready(p int, now int64) bool {
	from := m.primaryFrom[p].Load()
	return from != 0 && now-from >= m.o.Grace.Milliseconds()
}

// OnEvent implements store.Observer: it indexes the shadow maps' records
// and keeps read-through loads and remembered misses consistent with
// writes. It runs under the key's shard lock and never blocks for long.
func (m *Manager) OnEvent(ev *store.Event) {
	if !m.any.Load() {
		return
	}
	if name, ok := store.DirtyMapOf(ev.Map); ok {
		ms := m.state(name)
		p := m.st.PartitionOf(ev.Key)
		if ev.Kind == store.EventWrite {
			rec, ok := store.DecodeDirty(ev.Value)
			if !ok {
				return
			}
			if m.leads(p) {
				ms.received.Add(1)
			}
			ms.index(p, string(ev.Key), rec.Since, int64(len(ev.Key)+len(ev.Value)))
		} else {
			ms.unindex(p, string(ev.Key))
		}
		return
	}
	if ev.Loaded || store.IsInternal(ev.Map) {
		return
	}
	if m.inflightN.Load() > 0 {
		k := loadKey(ev.Map, ev.Key)
		m.loadMu.Lock()
		if l := m.loading[k]; l != nil {
			l.stale.Store(true)
		}
		m.loadMu.Unlock()
	}
	if m.negN.Load() > 0 && ev.Kind == store.EventWrite {
		k := loadKey(ev.Map, ev.Key)
		m.negMu.Lock()
		if _, ok := m.neg[k]; ok {
			delete(m.neg, k)
			m.negN.Store(int32(len(m.neg)))
		}
		m.negMu.Unlock()
	}
}

// OnDropPartition implements store.PartitionDropper: a shadow map's
// records of partition p left this node with its data (DropPartition
// sends no events), so their index entries go too.
func (m *Manager) OnDropPartition(mapName string, p int) {
	name, ok := store.DirtyMapOf(mapName)
	if !ok {
		return
	}
	if ms := (*m.maps.Load())[name]; ms != nil {
		q := &ms.queues[p]
		q.mu.Lock()
		ms.pending.Add(-int64(len(q.set)))
		for _, size := range q.set {
			ms.pendingBytes.Add(-size)
		}
		q.set, q.q = nil, nil
		q.mu.Unlock()
	}
}

func loadKey(mapName string, key []byte) string {
	b := make([]byte, 0, len(mapName)+1+len(key))
	b = append(b, mapName...)
	b = append(b, 0)
	return string(append(b, key...))
}

// index records that key of partition p has a pending change of size
// bytes (its key and shadow record), dirty since since.
func (ms *State) index(p int, key string, since, size int64) {
	q := &ms.queues[p]
	q.mu.Lock()
	if q.set == nil {
		q.set = map[string]int64{}
	}
	if old, ok := q.set[key]; ok {
		ms.pendingBytes.Add(size - old)
	} else {
		q.q = append(q.q, dirtyRef{key: key, since: since})
		ms.pending.Add(1)
		ms.pendingBytes.Add(size)
	}
	q.set[key] = size
	q.mu.Unlock()
}

func (ms *State) unindex(p int, key string) {
	q := &ms.queues[p]
	q.mu.Lock()
	if size, ok := q.set[key]; ok {
		delete(q.set, key)
		ms.pending.Add(-1)
		ms.pendingBytes.Add(-size)
	}
	q.mu.Unlock()
}

// requeue puts refs back (after a failure, or a change during the
// write-back) if their keys are still pending.
func (ms *State) requeue(p int, refs []dirtyRef) {
	q := &ms.queues[p]
	q.mu.Lock()
	for _, r := range refs {
		if _, ok := q.set[r.key]; ok {
			q.q = append(q.q, r)
		}
	}
	q.mu.Unlock()
}

// due pops up to n refs of partition p that are due at now. Refs of keys
// no longer pending are dropped. A ref not yet due stops the scan: refs
// are in the order keys became dirty (retried ones go to the back, so a
// ref waiting for its retry is skipped over, not waited for).
func (ms *State) due(p int, now, delay int64, n int, out []dirtyRef) []dirtyRef {
	q := &ms.queues[p]
	q.mu.Lock()
	defer q.mu.Unlock()
	i := 0
	var later []dirtyRef
	for ; i < len(q.q) && n > 0; i++ {
		r := q.q[i]
		if _, ok := q.set[r.key]; !ok {
			continue
		}
		if r.retry > now {
			later = append(later, r)
			continue
		}
		if r.since+delay > now {
			break
		}
		out = append(out, r)
		n--
	}
	rest := q.q[i:]
	if len(later) > 0 {
		rest = append(later, rest...)
	}
	if len(rest) == 0 {
		q.q = q.q[:0]
	} else if i > 0 {
		q.q = append(q.q[:0], rest...)
	}
	return out
}

// claim marks key as being written back, waiting while another write-back
// of it runs. It returns the release function.
func (ms *State) claim(ctx context.Context, key string) (func(), error) {
	for {
		ms.claimMu.Lock()
		ch, busy := ms.claimed[key]
		if !busy {
			ch = make(chan struct{})
			ms.claimed[key] = ch
			ms.claimMu.Unlock()
			return func() {
				ms.claimMu.Lock()
				delete(ms.claimed, key)
				ms.claimMu.Unlock()
				close(ch)
			}, nil
		}
		ms.claimMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// tryClaim claims key if no write-back of it runs.
func (ms *State) tryClaim(key string) (func(), bool) {
	ms.claimMu.Lock()
	defer ms.claimMu.Unlock()
	if _, busy := ms.claimed[key]; busy {
		return nil, false
	}
	ch := make(chan struct{})
	ms.claimed[key] = ch
	return func() {
		ms.claimMu.Lock()
		delete(ms.claimed, key)
		ms.claimMu.Unlock()
		close(ch)
	}, true
}

// loop is the write-back loop: every tick it writes back the due changes
// of the partitions this node leads, and every rescanEvery it repairs the
// index from the shadow maps.
func (m *Manager) loop() {
	defer close(m.done)
	t := time.NewTicker(m.o.Tick)
	defer t.Stop()
	lastScan := time.Now()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		now := m.o.Now()
		m.updatePrimaries(now)
		if !m.any.Load() {
			continue
		}
		if time.Since(lastScan) > rescanEvery {
			lastScan = time.Now()
			m.rescan()
		}
		m.writeBackDue(context.Background(), now, false)
	}
}

const rescanEvery = 10 * time.Second

func (m *Manager) updatePrimaries(now int64) {
	if m.o.IsPrimary == nil {
		return
	}
	for p := range m.primaryFrom {
		lead := m.o.IsPrimary(p)
		from := m.primaryFrom[p].Load()
		switch {
		case lead && from == 0:
			m.primaryFrom[p].Store(now)
		case !lead && from != 0:
			m.primaryFrom[p].Store(0)
		}
	}
}

// writeBackDue starts write-backs of the due changes (all pending ones
// with all set) and, with all, waits for them.
func (m *Manager) writeBackDue(ctx context.Context, now int64, all bool) (started int) {
	var wg sync.WaitGroup
	for _, ms := range *m.maps.Load() {
		if ms.pending.Load() == 0 {
			continue
		}
		if ms.set.Load() == nil {
			if err := m.activate(ms); err != nil {
				ms.fail(m, err, now)
				continue
			}
		}
		if !all && ms.backoffUntil.Load() > now {
			continue
		}
		s := ms.set.Load()
		delay := s.Delay.Milliseconds()
		if all {
			delay = -1 << 40
		}
		for p := range ms.queues {
			if !m.ready(p, now) {
				continue
			}
			for {
				refs := ms.due(p, now, delay, s.Batch, nil)
				if len(refs) == 0 {
					break
				}
				started += len(refs)
				select {
				case m.sem <- struct{}{}:
				case <-ctx.Done():
					ms.requeue(p, refs)
					wg.Wait()
					return started
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-m.sem }()
					m.writeBack(ctx, ms, p, refs)
				}()
				if len(refs) < s.Batch || !all {
					break
				}
			}
		}
	}
	if all {
		wg.Wait()
	}
	return started
}

// pendingRec is one change read from the shadow map for a write-back.
type pendingRec struct {
	ref     dirtyRef
	rec     []byte // the shadow record as read (the clean compares it)
	release func()
}

// writeBack writes the changes refs of partition p to the store, then
// removes each shadow record unless it changed meanwhile.
func (m *Manager) writeBack(ctx context.Context, ms *State, p int, refs []dirtyRef) {
	var recs []pendingRec
	d := ms.dirty.Load()
	if d == nil {
		mp, err := m.st.OpenMap(ms.name)
		if err == nil {
			d, err = m.shadowOf(mp)
		}
		if err != nil {
			ms.requeue(p, refs)
			return
		}
	}
	var busy []dirtyRef
	for _, r := range refs {
		release, ok := ms.tryClaim(r.key)
		if !ok {
			busy = append(busy, r)
			continue
		}
		b, ok := d.Get(nil, []byte(r.key))
		if !ok {
			release()
			ms.unindex(p, r.key) // cleaned or moved away
			continue
		}
		recs = append(recs, pendingRec{ref: r, rec: b, release: release})
	}
	ms.requeue(p, busy)
	if len(recs) == 0 {
		return
	}
	defer func() {
		for _, r := range recs {
			r.release()
		}
	}()
	if err := m.storeRecs(ctx, ms, recs); err != nil {
		now := m.o.Now()
		ms.fail(m, err, now)
		retry := now + ms.backoff()
		back := make([]dirtyRef, len(recs))
		for i, r := range recs {
			back[i] = r.ref
			back[i].retry = retry
		}
		ms.requeue(p, back)
		return
	}
	ms.ok(m)
	changed := m.clean(ctx, d, p, recs)
	ms.requeue(p, changed)
}

// shadowOf returns mp's shadow map (creating it without turning change
// recording on: a replica's shadow records arrive by replication).
func (m *Manager) shadowOf(mp *store.Map) (*store.Map, error) {
	if d := m.st.Map(store.DirtyMapName(mp.Name())); d != nil {
		return d, nil
	}
	return m.st.OpenMap(store.DirtyMapName(mp.Name()))
}

// storeRecs writes recs to the map's store: writes in one batch, deletes
// in another.
func (m *Manager) storeRecs(ctx context.Context, ms *State, recs []pendingRec) error {
	ref := ms.bs.Load()
	if ref == nil {
		return errors.New("the map has changes to write back but no store (set one with STORECONFIG)")
	}
	var puts []backing.Entry
	var dels [][]byte
	for _, r := range recs {
		dr, ok := store.DecodeDirty(r.rec)
		if !ok {
			continue // cannot happen: only the store writes shadow records
		}
		if dr.Op == store.DirtyWrite {
			puts = append(puts, backing.Entry{Key: []byte(r.ref.key), Value: dr.Value})
		} else {
			dels = append(dels, []byte(r.ref.key))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, m.o.OpTimeout)
	defer cancel()
	if len(puts) > 0 {
		if err := ref.s.StoreBatch(ctx, ms.name, puts); err != nil {
			return err
		}
	}
	if len(dels) > 0 {
		if err := ref.s.DeleteBatch(ctx, ms.name, dels); err != nil {
			return err
		}
	}
	ms.written.Add(int64(len(puts)))
	ms.deleted.Add(int64(len(dels)))
	ms.batches.Add(1)
	return nil
}

// clean removes the shadow records of recs that are unchanged (the store
// now has them), as the partition's primary, and returns the refs of
// those that changed (to write back again) or could not be cleaned.
func (m *Manager) clean(ctx context.Context, d *store.Map, p int, recs []pendingRec) []dirtyRef {
	var again []dirtyRef
	fn := func() {
		for _, r := range recs {
			kept := false
			d.Mutate([]byte(r.ref.key), func(cur store.Entry, exists bool) (store.Mutation, error) {
				if exists && string(cur.Value) == string(r.rec) {
					return store.Mutation{Action: store.Remove}, nil
				}
				kept = exists
				return store.Mutation{Action: store.Keep}, nil
			})
			if kept {
				again = append(again, dirtyRef{key: r.ref.key, since: r.ref.since})
			}
		}
	}
	var err error
	if m.o.Guard != nil {
		err = m.o.Guard(ctx, p, fn)
	} else {
		fn()
	}
	if err != nil {
		// No longer the primary: the new primary writes them back (again,
		// which is harmless: the records are still in its shadow map).
		again = again[:0]
		for _, r := range recs {
			again = append(again, r.ref)
		}
	}
	return again
}

// maxBackoffMs caps the wait between write-back attempts of a failing
// store (before jitter).
const maxBackoffMs = 4000

func (ms *State) backoff() int64 {
	// 100ms doubling to 4s, with jitter (0.5x to 1.5x): a store that
	// comes back is written to again within seconds, and nodes that failed
	// together do not retry in step.
	n := min(int(ms.consecutive.Load()), 6)
	base := min(int64(100)<<n, maxBackoffMs)
	return base/2 + rand.Int64N(base)
}

func (ms *State) fail(m *Manager, err error, now int64) {
	ms.failures.Add(1)
	n := ms.consecutive.Add(1)
	ms.backoffUntil.Store(now + ms.backoff())
	s := err.Error()
	ms.lastErr.Store(&s)
	if last := ms.lastLog.Load(); n == 1 || now-last > 30_000 {
		ms.lastLog.Store(now)
		m.log.Warn("cannot write changes back to the store; retrying with backoff", "map", ms.name,
			"consecutive_failures", n, "pending", ms.pending.Load(), "err", err)
	}
}

func (ms *State) ok(m *Manager) {
	if n := ms.consecutive.Swap(0); n > 0 {
		ms.backoffUntil.Store(0)
		m.log.Info("writing changes back to the store again", "map", ms.name, "after_failures", n)
	}
}

// rescan adds to the index every shadow record of a led partition it is
// missing (events are its normal source; this repairs what a partition
// move without events left out).
func (m *Manager) rescan() {
	for _, ms := range *m.maps.Load() {
		d := m.st.Map(store.DirtyMapName(ms.name))
		if d == nil || d.Len() == 0 {
			continue
		}
		var parts []int
		for p := range ms.queues {
			if m.leads(p) {
				parts = append(parts, p)
			}
		}
		for _, kv := range d.ItemsIn(parts, nil, 0) {
			rec, ok := store.DecodeDirty(kv.Value)
			if !ok {
				continue
			}
			ms.index(m.st.PartitionOf(kv.Key), string(kv.Key), rec.Since, int64(len(kv.Key)+len(kv.Value)))
		}
	}
}

// Close stops the write-back loop and writes back every pending change
// of the partitions this node leads, until ctx ends (a graceful shutdown:
// a standalone node's changes are otherwise only in its memory). It
// returns the number of changes still pending.
func (m *Manager) Close(ctx context.Context) int64 {
	if m.closed.Swap(true) {
		return 0
	}
	if m.started.Load() {
		close(m.stop)
		<-m.done
	}
	m.rescan()
	for ctx.Err() == nil && m.pendingLed() > 0 {
		now := m.o.Now()
		m.updatePrimaries(now)
		if m.writeBackDue(ctx, now, true) == 0 {
			// Only changes waiting for a retry are left: wait a tick.
			select {
			case <-ctx.Done():
			case <-time.After(m.o.Tick):
			}
		}
	}
	left := m.pendingLed()
	m.mu.Lock()
	for _, s := range m.stores {
		s.Close()
	}
	m.mu.Unlock()
	return left
}

// Abort stops the write-back loop without writing anything back (a
// crash-like stop: the partitions' replicas write the changes back).
func (m *Manager) Abort() {
	if m.closed.Swap(true) {
		return
	}
	if m.started.Load() {
		close(m.stop)
		<-m.done
	}
}

// pendingLed counts the pending changes of partitions this node leads.
func (m *Manager) pendingLed() int64 {
	var n int64
	for _, ms := range *m.maps.Load() {
		for p := range ms.queues {
			if !m.leads(p) {
				continue
			}
			q := &ms.queues[p]
			q.mu.Lock()
			n += int64(len(q.set))
			q.mu.Unlock()
		}
	}
	return n
}

// names returns the map names with a state, sorted.
func (m *Manager) names() []string {
	var out []string
	for name := range *m.maps.Load() {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
