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
	// key of the value there and the key's place in that value's set;
	// byVal the sets. A key string is shared by both (one allocation).
	byKey map[string]entry
	byVal map[string]*keySet
	// filled: the backfill has copied the partition's existing items in.
	// Until then tomb holds the keys a live change removed from (or never
	// added to) the index, so the backfill does not add their older value.
	filled bool
	tomb   map[string]struct{}
	bytes  int64  // estimate of the memory the entries hold
	gen    uint64 // incremented when the partition is dropped
	// counted is the part of bytes added to the node's total (Manager
	// memory); dead: the index was removed, its bytes left the total.
	counted int64
	dead    bool
}

// account brings the node's index memory total up to date with this
// partition's estimate (pt.mu held).
func (pt *ipart) account(total *atomic.Int64) {
	if pt.dead || pt.bytes == pt.counted {
		return
	}
	total.Add(pt.bytes - pt.counted)
	pt.counted = pt.bytes
}

// release takes this partition's bytes out of the total for good: its
// index was removed (pt.mu held).
func (pt *ipart) release(total *atomic.Int64) {
	if !pt.dead {
		total.Add(-pt.counted)
		pt.counted, pt.dead = 0, true
	}
}

// entry is what byKey holds for a key: its value's canonical key (the
// set's copy, shared by every key of the value) and its place in the
// value's set.
type entry struct {
	vk  string
	pos int32
}

// keySet is the set of keys holding one value: a slice, each key's
// place recorded in byKey, so adding and removing a key are O(1) and no
// hash map is churned (a churning Go map fills with tombstones and its
// lookups slow down). vk is the value's canonical key.
type keySet struct {
	vk   string
	keys []string
}

// each calls fn for every key until it returns false.
func (s *keySet) each(fn func(k string) bool) bool {
	for _, k := range s.keys {
		if !fn(k) {
			return false
		}
	}
	return true
}

// Per-entry overheads used for the memory estimate (calibrated against
// the heap growth BenchmarkValuesMatch measures): a byKey slot (string
// key and entry) with Go maps' load factor, control bytes and growth
// slack; a byVal slot with its keySet; a set's slice slot with append's
// slack.
const (
	byKeyEntryBytes = 72
	byValEntryBytes = 112
	setSlotBytes    = 24
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
		if old.vk == vk {
			return
		}
		// The key moves to another value's set; its byKey slot is
		// overwritten, not deleted and inserted again.
		k := string(key)
		pt.leave(old)
		pt.byKey[k] = pt.join(k, vk)
		return
	}
	if !pt.filled {
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
		pt.byKey, pt.byVal = map[string]entry{}, map[string]*keySet{}
	}
	pt.bytes += byKeyEntryBytes + stringBytes + int64(len(k))
	pt.byKey[k] = pt.join(k, vk)
}

// join appends k to the set of value vk and returns k's entry.
func (pt *ipart) join(k, vk string) entry {
	s, had := pt.byVal[vk]
	if !had {
		s = &keySet{vk: vk}
		pt.byVal[vk] = s
		pt.bytes += byValEntryBytes + stringBytes + int64(len(vk))
	}
	s.keys = append(s.keys, k)
	pt.bytes += setSlotBytes
	return entry{vk: s.vk, pos: int32(len(s.keys) - 1)}
}

// remove drops key k, whose entry is e.
func (pt *ipart) remove(k string, e entry) {
	delete(pt.byKey, k)
	pt.bytes -= byKeyEntryBytes + stringBytes + int64(len(k))
	pt.leave(e)
}

// leave takes the key at e out of its value's set: the set's last key
// takes its place (and its byKey entry is updated in place).
func (pt *ipart) leave(e entry) {
	s := pt.byVal[e.vk]
	pt.bytes -= setSlotBytes
	last := len(s.keys) - 1
	if last == 0 {
		delete(pt.byVal, e.vk)
		pt.bytes -= byValEntryBytes + stringBytes + int64(len(e.vk))
		return
	}
	if int(e.pos) != last {
		moved := s.keys[last]
		s.keys[e.pos] = moved
		pt.byKey[moved] = entry{vk: s.vk, pos: e.pos}
	}
	s.keys[last] = ""
	s.keys = s.keys[:last]
	if cap(s.keys) > 64 && len(s.keys) < cap(s.keys)/4 {
		s.keys = append([]string(nil), s.keys...) // give back a mostly empty array
	}
}

// reset drops every entry (the partition left this node).
func (pt *ipart) reset() {
	pt.byKey, pt.byVal, pt.tomb = nil, nil, nil
	pt.bytes = 0
}
