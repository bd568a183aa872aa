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
	byVal map[string]*keySet
	// filled: the backfill has copied the partition's existing items in.
	// Until then tomb holds the keys a live change removed from (or never
	// added to) the index, so the backfill does not add their older value.
	filled bool
	tomb   map[string]struct{}
	bytes  int64  // estimate of the memory the entries hold
	gen    uint64 // incremented when the partition is dropped
}

// keySet is the set of keys holding one value. Most sets are small (a
// unique id; or few keys of one value per partition), so a set is a
// single inline key, then a short slice, and a map only past
// maxListSet keys. vk is the value's canonical key, which every byKey
// entry of the set shares (one allocation per distinct value).
type keySet struct {
	vk   string
	one  string
	list []string
	many map[string]struct{}
}

// maxListSet is the largest set kept as a slice.
const maxListSet = 16

func (s *keySet) len() int {
	switch {
	case s.many != nil:
		return len(s.many)
	case s.list != nil:
		return len(s.list)
	}
	return 1
}

// each calls fn for every key until it returns false.
func (s *keySet) each(fn func(k string) bool) bool {
	switch {
	case s.many != nil:
		for k := range s.many {
			if !fn(k) {
				return false
			}
		}
		return true
	case s.list != nil:
		for _, k := range s.list {
			if !fn(k) {
				return false
			}
		}
		return true
	}
	return fn(s.one)
}

// insert adds k (not in the set); it returns the change in bytes.
func (s *keySet) insert(k string) int64 {
	switch {
	case s.many != nil:
		s.many[k] = struct{}{}
		return setEntryBytes
	case s.list == nil:
		s.list = make([]string, 2, 4)
		s.list[0], s.list[1] = s.one, k
		s.one = ""
		return 4 * 16
	case len(s.list) < maxListSet:
		var d int64
		if len(s.list) == cap(s.list) {
			d = int64(cap(s.list)) * 16 // the slice doubles
		}
		s.list = append(s.list, k)
		return d
	}
	s.many = make(map[string]struct{}, 2*maxListSet)
	for _, x := range s.list {
		s.many[x] = struct{}{}
	}
	s.many[k] = struct{}{}
	d := setMapBytes + int64(len(s.many))*setEntryBytes - int64(cap(s.list))*16
	s.list = nil
	return d
}

// erase removes k (in the set, which keeps at least one other key); it
// returns the change in bytes.
func (s *keySet) erase(k string) int64 {
	if s.many != nil {
		delete(s.many, k)
		return -setEntryBytes
	}
	i := 0
	for i < len(s.list) && s.list[i] != k {
		i++
	}
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.list[last] = ""
	s.list = s.list[:last]
	if last == 1 {
		d := -int64(cap(s.list)) * 16
		s.one, s.list = s.list[0], nil
		return d
	}
	return 0
}

// Per-entry overheads used for the memory estimate (calibrated against
// the heap growth BenchmarkValuesMatch measures): a map slot of a string
// key and string value (byKey) with Go maps' load factor, control bytes
// and growth slack; a slot of byVal (string key and keySet); a slot of a
// large set.
const (
	byKeyEntryBytes = 64
	byValEntryBytes = 112
	setEntryBytes   = 32
	setMapBytes     = 64
	stringBytes     = 16 // allocation rounding of a short string
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
		pt.byKey, pt.byVal = map[string]string{}, map[string]*keySet{}
	}
	pt.bytes += byKeyEntryBytes + stringBytes + int64(len(k))
	s, had := pt.byVal[vk]
	if !had {
		s = &keySet{vk: vk, one: k}
		pt.byVal[vk] = s
		pt.byKey[k] = vk
		pt.bytes += byValEntryBytes + stringBytes + int64(len(vk))
		return
	}
	pt.byKey[k] = s.vk // the set's copy: one allocation per distinct value
	pt.bytes += s.insert(k)
}

// remove drops key k, indexed under vk.
func (pt *ipart) remove(k, vk string) {
	delete(pt.byKey, k)
	pt.bytes -= byKeyEntryBytes + stringBytes + int64(len(k))
	s := pt.byVal[vk]
	if s.len() == 1 {
		delete(pt.byVal, vk)
		pt.bytes -= byValEntryBytes + stringBytes + int64(len(vk))
		return
	}
	pt.bytes += s.erase(k)
}

// reset drops every entry (the partition left this node).
func (pt *ipart) reset() {
	pt.byKey, pt.byVal, pt.tomb = nil, nil, nil
	pt.bytes = 0
}
