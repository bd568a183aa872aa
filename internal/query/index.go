package query

import (
	"sync"
	"sync/atomic"
	"time"
)

// Index states.
const (
	// StateBuilding: the index applies every change but is still filling
	// in the data that existed when it was created; queries do not use it.
	StateBuilding = "building"
	// StateReady: the index is exact; queries use it.
	StateReady = "ready"
)

// index is one map's index on one path: canonical value -> keys, kept
// per partition so a partition the node drops (or moves away) is dropped
// from the index with it.
type index struct {
	mapName string
	path    string // canonical
	gpath   string
	auto    atomic.Bool
	created time.Time

	ready   atomic.Bool
	done    atomic.Int64 // partitions filled (progress)
	keys    atomic.Int64 // keys done by the backfill (progress)
	total   atomic.Int64 // keys the backfill found to do (progress)
	stopped atomic.Bool  // removed: the backfill stops

	parts []ipart
}

// ipart is one partition of one index.
type ipart struct {
	mu sync.RWMutex
	// byKey holds every key whose value has the path, with the canonical
	// key of the value there; byVal the reverse. A key string is shared
	// by both maps (one allocation).
	byKey map[string]string
	byVal map[string]keySet
	// filled: the backfill has copied the partition's existing items in.
	// Until then tomb holds the keys a live change removed from (or never
	// added to) the index, so the backfill does not add their older value.
	filled bool
	tomb   map[string]struct{}
	bytes  int64 // estimate of the memory the entries hold
	gen    uint64 // incremented when the partition is dropped
}

// keySet is the set of keys holding one value: inline while it has one
// key (unique values are common: ids), a map beyond.
type keySet struct {
	one  string
	many map[string]struct{}
}

func (s keySet) len() int {
	if s.many != nil {
		return len(s.many)
	}
	return 1
}

// each calls fn for every key until it returns false.
func (s keySet) each(fn func(k string) bool) bool {
	if s.many != nil {
		for k := range s.many {
			if !fn(k) {
				return false
			}
		}
		return true
	}
	return fn(s.one)
}

// Per-entry overheads used for the memory estimate: a map slot of a
// string key and string value (byKey), and of a string key and keySet
// (byVal), with Go maps' load factor and control bytes.
const (
	byKeyEntryBytes = 48
	byValEntryBytes = 72
	setEntryBytes   = 24
	setMapBytes     = 48
)

func newIndex(mapName, path, gpath string, auto bool, partitions int) *index {
	ix := &index{mapName: mapName, path: path, gpath: gpath, created: time.Now(),
		parts: make([]ipart, partitions)}
	ix.auto.Store(auto)
	return ix
}

// set records that key (which may be a view of a buffer the caller
// reuses) holds value vk at the path; ok false: no value there (or the
// document is not JSON), so the key leaves the index. Caller holds mu.
func (pt *ipart) set(key []byte, vk string, ok bool) {
	old, had := pt.byKey[string(key)]
	if !ok {
		if had {
			pt.remove(string(key), old)
		}
		pt.tombstone(key)
		return
	}
	if had {
		if old == vk {
			return
		}
		pt.remove(string(key), old)
	} else if !pt.filled {
		delete(pt.tomb, string(key))
	}
	pt.add(string(key), vk)
}

// del removes key from the index. Caller holds mu.
func (pt *ipart) del(key []byte) {
	if old, had := pt.byKey[string(key)]; had {
		pt.remove(string(key), old)
	}
	pt.tombstone(key)
}

// tombstone records, while the partition is not filled yet, that a live
// change left key out of the index.
func (pt *ipart) tombstone(key []byte) {
	if pt.filled {
		return
	}
	if pt.tomb == nil {
		pt.tomb = map[string]struct{}{}
	}
	pt.tomb[string(key)] = struct{}{}
}

// add indexes key k under value vk; k must not be indexed.
func (pt *ipart) add(k, vk string) {
	if pt.byKey == nil {
		pt.byKey, pt.byVal = map[string]string{}, map[string]keySet{}
	}
	pt.byKey[k] = vk
	pt.bytes += byKeyEntryBytes + int64(len(k))
	s, had := pt.byVal[vk]
	switch {
	case !had:
		s = keySet{one: k}
		pt.bytes += byValEntryBytes + int64(len(vk))
	case s.many == nil:
		s = keySet{many: map[string]struct{}{s.one: {}, k: {}}}
		pt.bytes += setMapBytes + 2*setEntryBytes
	default:
		s.many[k] = struct{}{}
		pt.bytes += setEntryBytes
	}
	pt.byVal[vk] = s
}

// remove drops key k, indexed under vk.
func (pt *ipart) remove(k, vk string) {
	delete(pt.byKey, k)
	pt.bytes -= byKeyEntryBytes + int64(len(k))
	s := pt.byVal[vk]
	switch {
	case s.many == nil:
		delete(pt.byVal, vk)
		pt.bytes -= byValEntryBytes + int64(len(vk))
		return
	case len(s.many) == 2:
		delete(s.many, k)
		for rest := range s.many {
			s = keySet{one: rest}
		}
		pt.bytes -= setMapBytes + 2*setEntryBytes
	default:
		delete(s.many, k)
		pt.bytes -= setEntryBytes
	}
	pt.byVal[vk] = s
}

// reset drops every entry (the partition left this node).
func (pt *ipart) reset() {
	pt.byKey, pt.byVal, pt.tomb = nil, nil, nil
	pt.bytes = 0
}
