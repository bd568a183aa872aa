package persist

import "fmt"

// MapStats is the view of one map's backing store on this node.
type MapStats struct {
	Map      string
	Settings Settings
	Active   bool // the map has used its store on this node
	// Pending is the number of changes waiting to be written back, in the
	// partitions this node leads; OldestMs the age of the oldest (ms).
	Pending      int64
	PendingBytes int64 // their keys and values (all partitions held here)
	OldestMs     int64
	// Received counts changes recorded here (as primary); Written and
	// Deleted the keys written and deleted in the store; Received /
	// (Written + Deleted) is the write coalescing factor.
	Received, Written, Deleted, Batches int64
	// Failures counts failed store calls of write-backs; Consecutive the
	// current run of them (0 once one succeeds); LastError the latest.
	Failures    int64
	Consecutive int32
	LastError   string
	// Loads counts read-through store reads, LoadsFound those that found
	// the key, LoadErrors those that failed, NegativeHits misses answered
	// from the remembered "not in the store".
	Loads, LoadsFound, LoadErrors, NegativeHits int64
}

// Stats returns the view of every map that has a state on this node,
// sorted by name.
func (m *Manager) Stats() []MapStats {
	now := m.o.Now()
	var out []MapStats
	for _, name := range m.names() {
		ms := (*m.maps.Load())[name]
		st := MapStats{Map: name, Received: ms.received.Load(), Written: ms.written.Load(), Deleted: ms.deleted.Load(),
			Batches: ms.batches.Load(), Failures: ms.failures.Load(), Consecutive: ms.consecutive.Load(),
			Loads: ms.loads.Load(), LoadsFound: ms.loadsFound.Load(), LoadErrors: ms.loadErrors.Load(),
			NegativeHits: ms.negHits.Load(), PendingBytes: ms.pendingBytes.Load()}
		if s := ms.set.Load(); s != nil {
			st.Settings, st.Active = *s, true
		} else {
			st.Settings, _ = m.Settings(name)
		}
		if e := ms.lastErr.Load(); e != nil {
			st.LastError = *e
		}
		oldest := int64(0)
		for p := range ms.queues {
			if !m.leads(p) {
				continue
			}
			q := &ms.queues[p]
			q.mu.Lock()
			st.Pending += int64(len(q.set))
			for _, r := range q.q {
				if _, ok := q.set[r.key]; ok {
					if oldest == 0 || r.since < oldest {
						oldest = r.since
					}
					break // the first pending ref is the oldest of the queue, retries aside
				}
			}
			q.mu.Unlock()
		}
		if oldest != 0 {
			st.OldestMs = max(0, now-oldest)
		}
		out = append(out, st)
	}
	return out
}

// Totals sums Stats over every map (for metrics).
func (m *Manager) Totals() MapStats {
	var t MapStats
	for _, s := range m.Stats() {
		t.Pending += s.Pending
		t.PendingBytes += s.PendingBytes
		t.OldestMs = max(t.OldestMs, s.OldestMs)
		t.Received += s.Received
		t.Written += s.Written
		t.Deleted += s.Deleted
		t.Batches += s.Batches
		t.Failures += s.Failures
		t.Loads += s.Loads
		t.LoadsFound += s.LoadsFound
		t.LoadErrors += s.LoadErrors
		t.NegativeHits += s.NegativeHits
	}
	return t
}

// CheckDirty refuses a write to a map whose pending changes reached its
// max_dirty bound on this node: the store is not keeping up, and memory
// for pending changes must stay bounded.
func (ms *State) CheckDirty() error {
	s := ms.set.Load()
	if s == nil || !s.Mode.Writes() {
		return nil
	}
	if n := ms.pending.Load(); n >= s.MaxDirty {
		return &DirtyFullError{Map: ms.name, Pending: n, Max: s.MaxDirty}
	}
	if b := ms.pendingBytes.Load(); b >= s.MaxDirtyBytes {
		return &DirtyFullError{Map: ms.name, Pending: b, Max: s.MaxDirtyBytes, Bytes: true}
	}
	return nil
}

// DirtyFullError refuses a write while too many changes are pending.
type DirtyFullError struct {
	Map          string
	Pending, Max int64
	Bytes        bool // the bound is max_dirty_bytes
}

func (e *DirtyFullError) Error() string {
	if e.Bytes {
		return fmt.Sprintf("changes of map %q waiting for the store hold %d bytes (max_dirty_bytes %d): the store is not keeping up; retry later", e.Map, e.Pending, e.Max)
	}
	return fmt.Sprintf("too many changes of map %q waiting for the store (%d, max_dirty %d): the store is not keeping up; retry later", e.Map, e.Pending, e.Max)
}

// Settings returns the map's active settings.
func (ms *State) Settings() Settings {
	if s := ms.set.Load(); s != nil {
		return *s
	}
	return Settings{}
}
