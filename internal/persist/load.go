package persist

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/engramdb/engram/internal/store"
)

// load is one read-through load in flight: concurrent misses of the key
// wait for it instead of asking the store again (singleflight).
type load struct {
	done  chan struct{}
	err   error
	stale atomic.Bool // the key changed while the store was read
}

// LoadError is a read-through load that failed: the caller must not
// answer "not found", since the store may hold the key.
type LoadError struct{ Err error }

func (e *LoadError) Error() string { return "cannot read through to the store: " + e.Err.Error() }

func (e *LoadError) Unwrap() error { return e.Err }

// Ensure makes keys of map mp present in memory if the store has them
// (read-through), for a command about to read them. A key already in
// memory, one with a pending delete, or one remembered missing costs no
// store call; concurrent misses of one key cause one load. A key changed
// while its load ran keeps the change (the loaded value is dropped). In a
// cluster it runs on the key's primary, so a key is loaded once
// cluster-wide at a time.
func (m *Manager) Ensure(ctx context.Context, ms *State, mp *store.Map, keys [][]byte) error {
	if len(keys) == 1 {
		return m.ensure(ctx, ms, mp, keys[0])
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 16)
	)
	for _, k := range keys {
		if mp.Contains(k) {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := m.ensure(ctx, ms, mp, k); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func (m *Manager) ensure(ctx context.Context, ms *State, mp *store.Map, key []byte) error {
	if mp.Contains(key) {
		return nil
	}
	k := loadKey(mp.Name(), key)
	if !ms.hasPending(key) && m.negativeHit(k) {
		ms.negHits.Add(1)
		return nil
	}
	for {
		m.loadMu.Lock()
		if l := m.loading[k]; l != nil {
			m.loadMu.Unlock()
			select {
			case <-l.done:
			case <-ctx.Done():
				return &LoadError{Err: ctx.Err()}
			}
			if l.err != nil {
				return l.err
			}
			if !l.stale.Load() || mp.Contains(key) {
				return nil
			}
			continue // the key changed during that load: look again
		}
		l := &load{done: make(chan struct{})}
		m.loading[k] = l
		m.inflightN.Add(1)
		m.loadMu.Unlock()
		l.err = m.loadOne(ctx, ms, mp, key, k, l)
		m.loadMu.Lock()
		delete(m.loading, k)
		m.inflightN.Add(-1)
		m.loadMu.Unlock()
		close(l.done)
		return l.err
	}
}

func (m *Manager) loadOne(ctx context.Context, ms *State, mp *store.Map, key []byte, k string, l *load) error {
	// A pending change is newer than the store: a pending write restores
	// a value evicted from memory, a pending delete means absent. Read
	// inside the load, so a change racing with it marks it stale (a
	// delete is not undone by the restore).
	if d := ms.dirty.Load(); d != nil {
		if b, ok := d.Get(nil, key); ok {
			if rec, ok := store.DecodeDirty(b); ok && rec.Op == store.DirtyWrite {
				_, err := mp.Fill(key, rec.Value, 0, func() bool { return !l.stale.Load() })
				return err
			}
			return nil
		}
	}
	ref := ms.bs.Load()
	if ref == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.o.OpTimeout)
	defer cancel()
	ms.loads.Add(1)
	v, found, err := ref.s.Load(ctx, mp.Name(), key)
	if err != nil {
		ms.loadErrors.Add(1)
		return &LoadError{Err: err}
	}
	if !found {
		if ttl := ms.set.Load().NegativeTTL; ttl > 0 {
			m.rememberMissing(k, m.o.Now()+ttl.Milliseconds(), l)
		}
		return nil
	}
	ms.loadsFound.Add(1)
	_, err = mp.Fill(key, v, 0, func() bool { return !l.stale.Load() })
	if errors.Is(err, store.ErrOOM) {
		// No room to cache it: the command reads memory and misses. Say so
		// rather than answer "not found" for a key the store has.
		return &LoadError{Err: err}
	}
	return err
}

// hasPending reports whether key has a change waiting for the store.
func (ms *State) hasPending(key []byte) bool {
	d := ms.dirty.Load()
	return d != nil && d.Contains(key)
}

func (m *Manager) negativeHit(k string) bool {
	if m.negN.Load() == 0 {
		return false
	}
	m.negMu.Lock()
	defer m.negMu.Unlock()
	until, ok := m.neg[k]
	if !ok {
		return false
	}
	if until <= m.o.Now() {
		delete(m.neg, k)
		m.negN.Store(int32(len(m.neg)))
		return false
	}
	return true
}

// rememberMissing records k as missing from the store until the given
// time, unless the key changed during the load. The check is under negMu,
// which the observer takes after marking a load stale, so a write racing
// with this either stops it or removes the entry.
func (m *Manager) rememberMissing(k string, until int64, l *load) {
	m.negMu.Lock()
	defer m.negMu.Unlock()
	if l.stale.Load() {
		return
	}
	if len(m.neg) >= maxNegative {
		// Full: forget a random tenth (map iteration order is random).
		n := maxNegative / 10
		for key := range m.neg {
			delete(m.neg, key)
			if n--; n == 0 {
				break
			}
		}
	}
	m.neg[k] = until
	m.negN.Store(int32(len(m.neg)))
}
