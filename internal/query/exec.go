package query

import (
	"github.com/engramdb/engram/internal/store"
)

// Plan says how a query ran.
type Plan struct {
	// Index is the path of the index the query used, "" for a scan.
	Index string
}

// rank orders operators by how selective an index lookup with them is.
func rank(op Op) int {
	switch op {
	case OpEq, OpIn:
		return 0
	case OpNe:
		return 2
	}
	return 1
}

// choose returns the best ready index for c on mapName and the term it
// serves, or nil.
func (m *Manager) choose(mapName string, c *Criteria) (*index, *Criterion) {
	var best *index
	var term *Criterion
	for i := range c.Terms {
		t := &c.Terms[i]
		ix := m.lookup(mapName, t.Path)
		if ix == nil || !ix.ready.Load() {
			continue
		}
		if best == nil || rank(t.Op) < rank(term.Op) {
			best, term = ix, t
		}
	}
	return best, term
}

// candidates appends the keys of partition p whose indexed value satisfies t.
func (ix *index) candidates(p int, t *Criterion, out []string) []string {
	pt := &ix.parts[p]
	pt.mu.RLock()
	defer pt.mu.RUnlock()
	add := func(k string) bool { out = append(out, k); return true }
	switch t.Op {
	case OpEq, OpIn:
		for _, v := range t.Values {
			if s, ok := pt.byVal[v.key]; ok {
				s.each(add)
			}
		}
	default:
		for vk, s := range pt.byVal {
			if t.MatchKey(vk) {
				s.each(add)
			}
		}
	}
	return out
}

// partList returns parts, or every partition for nil, without numbers out
// of range.
func (m *Manager) partList(parts []int) []int {
	if parts == nil {
		all := make([]int, m.opts.Partitions)
		for i := range all {
			all[i] = i
		}
		return all
	}
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		if p >= 0 && p < m.opts.Partitions {
			out = append(out, p)
		}
	}
	return out
}

// Match calls fn with every item of sm in the partitions parts (nil =
// all) whose value matches c (values_match), partition by partition, and
// stops when fn returns false. key and val are valid only during the
// call; fn runs outside the store's locks (it may block, but must not
// write to sm's matching keys if it expects them once). A ready index on
// one of the criteria's paths supplies the candidates, whose current
// values are then checked against every criterion; otherwise each
// partition is scanned. Every item that matches for the whole call is
// passed exactly once.
func (m *Manager) Match(sm *store.Map, c *Criteria, parts []int, fn func(key, val []byte) bool) Plan {
	ix, term := m.choose(sm.Name(), c)
	var plan Plan
	if ix != nil {
		plan.Index = ix.path
	}
	var (
		cands []string
		buf   []byte
		hits  []store.KV
		arena []byte
	)
	for _, p := range m.partList(parts) {
		if ix != nil {
			cands = ix.candidates(p, term, cands[:0])
			for _, k := range cands {
				var ok bool
				buf, ok = sm.Get(buf[:0], bytesOf(k))
				if ok && c.Match(buf) && !fn(bytesOf(k), buf) {
					return plan
				}
			}
			continue
		}
		// Scan: match under the partition's read lock, copy the matches
		// out, hand them over outside the lock.
		hits, arena = hits[:0], arena[:0]
		sm.ViewIn(p, func(k, v []byte) bool {
			if c.Match(v) {
				start := len(arena)
				arena = append(arena, k...)
				arena = append(arena, v...)
				hits = append(hits, store.KV{Key: arena[start : start+len(k) : start+len(k)], Value: arena[start+len(k):]})
			}
			return true
		})
		// arena may have grown (moved) while appending: rebuild the views.
		off := 0
		for i := range hits {
			kl, vl := len(hits[i].Key), len(hits[i].Value)
			hits[i] = store.KV{Key: arena[off : off+kl : off+kl], Value: arena[off+kl : off+kl+vl : off+kl+vl]}
			off += kl + vl
		}
		for _, kv := range hits {
			if !fn(kv.Key, kv.Value) {
				return plan
			}
		}
		if cap(arena) > 16<<20 {
			arena, hits = nil, nil // one huge partition: do not keep its buffer
		}
	}
	return plan
}

// Evict removes every item of sm in the partitions parts (nil = all)
// whose value matches c (evict_match), each with an explicit delete
// (store.ReasonDeleted) that checks the criteria again under the key's
// lock, so an item changed meanwhile to a value that does not match is
// kept. It returns how many items it removed.
func (m *Manager) Evict(sm *store.Map, c *Criteria, parts []int) (int, Plan) {
	var keys [][]byte
	n := 0
	var plan Plan
	for _, p := range m.partList(parts) {
		keys = keys[:0]
		plan = m.Match(sm, c, []int{p}, func(k, _ []byte) bool {
			keys = append(keys, append([]byte(nil), k...))
			return true
		})
		for _, k := range keys {
			removed := false
			err := sm.Mutate(k, func(cur store.Entry, exists bool) (store.Mutation, error) {
				if exists && c.Match(cur.Value) {
					removed = true
					return store.Mutation{Action: store.Remove}, nil
				}
				return store.Mutation{Action: store.Keep}, nil
			})
			if err == nil && removed {
				n++
			}
		}
	}
	return n, plan
}

// Note records one query of c on mapName for automatic indexing (call it
// once per client query, on the node the client asked): when a path is
// queried without any index on the query's paths more than the threshold
// times within the window, and the map has a free index slot, the path
// is indexed. It reports the paths it started indexing.
func (m *Manager) Note(mapName string, c *Criteria) []string {
	thr := m.autoThreshold.Load()
	if thr < 0 || store.IsInternal(mapName) {
		return nil
	}
	for _, t := range c.Terms {
		if m.lookup(mapName, t.Path) != nil {
			return nil // an index serves (or soon will) this query
		}
	}
	if st := m.st.Load(); st == nil {
		return nil
	} else if _, ok := st.Lookup([]byte(mapName)); !ok {
		return nil
	}
	now := m.opts.Now()
	var due []string
	m.autoMu.Lock()
	if now.Sub(m.autoStart) > m.opts.AutoWindow {
		clear(m.autoCounts)
		m.autoStart = now
	}
	for _, path := range c.Paths() {
		k := [2]string{mapName, path}
		n, ok := m.autoCounts[k]
		if !ok && len(m.autoCounts) >= maxAutoPaths {
			continue
		}
		n++
		m.autoCounts[k] = n
		if int64(n) > thr {
			due = append(due, path)
			delete(m.autoCounts, k)
		}
	}
	m.autoMu.Unlock()
	var started []string
	for _, path := range due {
		created, err := m.Add(mapName, path, true)
		if err != nil {
			m.log.Info("automatic index not created", "map", mapName, "path", path, "err", err)
			continue
		}
		if created {
			m.log.Info("automatic index: path queried without an index more often than the threshold",
				"map", mapName, "path", path, "threshold", thr, "window", m.opts.AutoWindow)
			started = append(started, path)
			if m.OnAuto != nil {
				m.OnAuto(mapName, path)
			}
		}
	}
	return started
}
