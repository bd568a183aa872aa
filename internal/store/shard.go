package store

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/engramdb/engram/internal/keyhash"
)

// Record layout inside a slab, 8-byte aligned:
//
//	header (32 bytes) | key | value | padding to 8
//
// The header holds no pointers, so slabs are plain []byte the garbage
// collector never scans.
type header struct {
	klen    uint32 // low 24 bits: key length; then flags; top 6 bits: slack in 8-byte units
	vlen    uint32 // value length
	access  uint32 // LRU clock (seconds) or LFU counter; readers update it atomically
	created uint32 // creation time in Unix seconds (map max TTL, evict since)
	expire  int64  // absolute expiry in Unix ms; 0 = none
}

const (
	headerSize = int(unsafe.Sizeof(header{}))
	flagDead   = 1 << 24
	flagDirty  = 1 << 25 // reserved for the backing store: not yet flushed
	keyMask    = 1<<24 - 1
	slackShift = 26
	maxSlack   = 63 << 3 // bytes of unused room a record may carry for in-place growth

	// Slab geometry. A location is 32 bits: a collision-list flag, a 14-bit
	// slab id and a 17-bit offset in 8-byte units (so slabs are at most 1 MiB).
	collBit      = 1 << 31
	slabIDBits   = 14
	offsetBits   = 17
	maxSlabs     = 1 << slabIDBits
	slabMax      = 8 << offsetBits // 1 MiB
	slabMin      = 1 << 10         // a new shard starts small: most maps are small
	dedicatedMin = 64 << 10        // records this large get a slab of their own
)

func recordSize(klen, vlen int) int { return (headerSize + klen + vlen + 7) &^ 7 }

func makeLoc(id, off int) uint32 { return uint32(id)<<offsetBits | uint32(off>>3) }
func locSlab(loc uint32) int     { return int(loc>>offsetBits) & (maxSlabs - 1) }
func locOff(loc uint32) int      { return int(loc&(1<<offsetBits-1)) << 3 }

type slab struct {
	buf       []byte
	used      int  // bytes handed out
	dead      int  // bytes of dead records (and the tail abandoned when sealed)
	dedicated bool // holds one large record
}

// shard is one partition of one map.
type shard struct {
	mu sync.RWMutex
	// The hit counters sit beside the lock: a read has that cache line
	// already, so counting costs no extra miss.
	hits   atomic.Int64
	misses atomic.Int64

	index map[uint32]uint32 // high 32 bits of the key hash -> location or collision list
	coll  [][]uint32        // collision lists: locations of keys sharing 32 hash bits
	free  []uint32          // free collision list slots
	slabs []*slab
	ids   []int // free slab ids
	cur   int   // slab new records go to; -1 when none

	count   int   // live records, expired-but-unswept included
	nttl    int   // live records with an expiry
	live    int64 // bytes of live records
	sweepAt int   // sweeper cursor: slab id
	sweepOf int   // sweeper cursor: offset

	acct *accounting

	// ev is the event handed to observers for a change of this shard:
	// changes are made with the shard locked, so one per shard suffices,
	// and a write allocates nothing for its event (Observer: an event is
	// valid only during the call).
	ev Event
}

// accounting is the store-wide memory tally that shards update.
type accounting struct {
	arena atomic.Int64 // bytes of slab memory allocated
	used  atomic.Int64 // bytes of live records plus the index estimate
}

// indexBytesPerKey estimates what one key costs in the index map (8-byte
// slot, control byte, load factor), for the memory bound.
const indexBytesPerKey = 12

func newShard(acct *accounting) *shard {
	return &shard{index: make(map[uint32]uint32), cur: -1, acct: acct}
}

func (sh *shard) hdr(loc uint32) *header {
	return (*header)(unsafe.Pointer(&sh.slabs[locSlab(loc)].buf[locOff(loc)]))
}

func (h *header) keyLen() int { return int(h.klen & keyMask) }

// capacity returns the record's size in its slab: what it needs plus the
// slack left when a smaller value was written in place.
func (h *header) capacity() int {
	return recordSize(h.keyLen(), int(h.vlen)) + int(h.klen>>slackShift)<<3
}
func (h *header) dead() bool { return h.klen&flagDead != 0 }

// key returns the record's key; valid while the shard lock is held.
func (sh *shard) key(loc uint32) []byte {
	s := sh.slabs[locSlab(loc)]
	off := locOff(loc)
	h := (*header)(unsafe.Pointer(&s.buf[off]))
	return s.buf[off+headerSize : off+headerSize+h.keyLen()]
}

// value returns the record's value; valid while the shard lock is held.
func (sh *shard) value(loc uint32) []byte {
	s := sh.slabs[locSlab(loc)]
	off := locOff(loc)
	h := (*header)(unsafe.Pointer(&s.buf[off]))
	start := off + headerSize + h.keyLen()
	return s.buf[start : start+int(h.vlen)]
}

// find returns the location of key, whose hash's high bits are h32.
func (sh *shard) find(h32 uint32, key []byte) (uint32, bool) {
	v, ok := sh.index[h32]
	if !ok {
		return 0, false
	}
	if v&collBit == 0 {
		if string(sh.key(v)) == string(key) {
			return v, true
		}
		return 0, false
	}
	for _, loc := range sh.coll[v&^collBit] {
		if string(sh.key(loc)) == string(key) {
			return loc, true
		}
	}
	return 0, false
}

// link adds loc to the index under h32; the key must not be present.
func (sh *shard) link(h32, loc uint32) {
	v, ok := sh.index[h32]
	switch {
	case !ok:
		sh.index[h32] = loc
	case v&collBit == 0:
		var i uint32
		if n := len(sh.free); n > 0 {
			i, sh.free = sh.free[n-1], sh.free[:n-1]
			sh.coll[i] = append(sh.coll[i][:0], v, loc)
		} else {
			i = uint32(len(sh.coll))
			sh.coll = append(sh.coll, []uint32{v, loc})
		}
		sh.index[h32] = i | collBit
	default:
		i := v &^ collBit
		sh.coll[i] = append(sh.coll[i], loc)
	}
}

// relink replaces old by loc under h32.
func (sh *shard) relink(h32, old, loc uint32) {
	v := sh.index[h32]
	if v&collBit == 0 {
		if v != old {
			panic("BUG: store: relink of a location the index does not hold")
		}
		sh.index[h32] = loc
		return
	}
	l := sh.coll[v&^collBit]
	for i := range l {
		if l[i] == old {
			l[i] = loc
			return
		}
	}
	panic("BUG: store: relink of a location no collision list holds")
}

// unlink removes loc from the index under h32.
func (sh *shard) unlink(h32, loc uint32) {
	v := sh.index[h32]
	if v&collBit == 0 {
		delete(sh.index, h32)
		return
	}
	i := v &^ collBit
	l := sh.coll[i]
	for j := range l {
		if l[j] == loc {
			l[j] = l[len(l)-1]
			l = l[:len(l)-1]
			break
		}
	}
	if len(l) == 1 {
		sh.index[h32] = l[0]
		sh.coll[i] = l[:0]
		sh.free = append(sh.free, i)
		return
	}
	sh.coll[i] = l
}

// alloc reserves size bytes (a multiple of 8) and returns their location.
// When the current slab is full: if half of it is dead it is rebuilt
// (compacted into a new slab sized to the shard's live data); otherwise it
// grows by an eighth up to slabMax, and past that it is sealed and a new
// one started. mayCompact is false during a compaction.
func (sh *shard) alloc(size int, mayCompact bool) (uint32, error) {
	if size >= dedicatedMin {
		id, err := sh.newSlab(size, true)
		if err != nil {
			return 0, err
		}
		sh.slabs[id].used = size
		return makeLoc(id, 0), nil
	}
	if sh.cur >= 0 {
		s := sh.slabs[sh.cur]
		if s.used+size > len(s.buf) {
			switch {
			case mayCompact && s.dead*2 >= s.used:
				// Mostly overwritten or evicted: growing would keep the
				// dead bytes; rebuilding drops them.
				s.dead += len(s.buf) - s.used
				old := sh.cur
				sh.cur = -1
				sh.compact(old)
			case len(s.buf) < slabMax:
				// Grow the current slab by an eighth rather than start a
				// new one, so a shard's memory tracks its data closely
				// (locations stay valid: same slab, same offsets).
				n := max(len(s.buf)+len(s.buf)/8, s.used+size)
				n = min((n+7)&^7, slabMax)
				if n >= s.used+size {
					buf := make([]byte, n)
					copy(buf, s.buf[:s.used])
					sh.acct.arena.Add(int64(n - len(s.buf)))
					s.buf = buf
				}
			}
		}
		if sh.cur >= 0 {
			if c := sh.slabs[sh.cur]; c.used+size <= len(c.buf) {
				off := c.used
				c.used += size
				return makeLoc(sh.cur, off), nil
			}
			// Seal the current slab: its unused tail counts as dead so
			// the compaction arithmetic sees the whole slab.
			c := sh.slabs[sh.cur]
			c.dead += len(c.buf) - c.used
			old := sh.cur
			sh.cur = -1
			if mayCompact && c.dead*2 >= len(c.buf) {
				sh.compact(old)
				if sh.cur >= 0 {
					if c := sh.slabs[sh.cur]; c.used+size <= len(c.buf) {
						off := c.used
						c.used += size
						return makeLoc(sh.cur, off), nil
					}
				}
			}
		}
	}
	id, err := sh.newSlab(sh.slabSizeFor(size), false)
	if err != nil {
		return 0, err
	}
	sh.cur = id
	sh.slabs[id].used = size
	return makeLoc(id, 0), nil
}

// slabSizeFor sizes a new current slab: room for the shard's live data and
// an eighth more (a compaction moves live records into it), at least
// slabMin and the record, at most slabMax.
func (sh *shard) slabSizeFor(size int) int {
	n := int(sh.live) + int(sh.live)/8
	n = max(n, slabMin, size)
	return min((n+7)&^7, max(slabMax, size))
}

func (sh *shard) newSlab(n int, dedicated bool) (int, error) {
	s := &slab{buf: make([]byte, n), dedicated: dedicated}
	sh.acct.arena.Add(int64(n))
	if k := len(sh.ids); k > 0 {
		id := sh.ids[k-1]
		sh.ids = sh.ids[:k-1]
		sh.slabs[id] = s
		return id, nil
	}
	if len(sh.slabs) >= maxSlabs {
		return 0, ErrShardFull
	}
	sh.slabs = append(sh.slabs, s)
	return len(sh.slabs) - 1, nil
}

// release marks the record at loc dead, and frees or compacts its slab when
// enough of it is dead.
func (sh *shard) release(loc uint32) {
	h := sh.hdr(loc)
	h.klen |= flagDead
	id := locSlab(loc)
	s := sh.slabs[id]
	s.dead += h.capacity()
	switch {
	case s.dedicated || (id != sh.cur && s.dead >= len(s.buf)):
		sh.freeSlab(id)
	case id != sh.cur && s.dead*2 >= len(s.buf):
		sh.compact(id)
	}
}

func (sh *shard) freeSlab(id int) {
	sh.acct.arena.Add(-int64(len(sh.slabs[id].buf)))
	sh.slabs[id] = nil
	sh.ids = append(sh.ids, id)
	if sh.cur == id {
		sh.cur = -1
	}
}

// compact moves the live records of slab id into the current slab and frees
// it, so a slab never stays more than half dead for long.
func (sh *shard) compact(id int) {
	s := sh.slabs[id]
	for off := 0; off < s.used; {
		h := (*header)(unsafe.Pointer(&s.buf[off]))
		size := h.capacity()
		if !h.dead() {
			need := recordSize(h.keyLen(), int(h.vlen))
			loc, err := sh.alloc(need, false)
			if err != nil {
				return // keep the slab: correctness over compactness
			}
			copy(sh.slabs[locSlab(loc)].buf[locOff(loc):locOff(loc)+need], s.buf[off:off+need])
			sh.hdr(loc).klen &^= 63 << slackShift
			sh.relink(uint32(keyhash.Sum(sh.key(loc))>>32), makeLoc(id, off), loc)
			h.klen |= flagDead
			s.dead += size
		}
		off += size
	}
	sh.freeSlab(id)
}

// write fills the record at loc.
func (sh *shard) write(loc uint32, capacity int, key, val []byte, expire int64, created uint32, access uint32) {
	s := sh.slabs[locSlab(loc)]
	off := locOff(loc)
	h := (*header)(unsafe.Pointer(&s.buf[off]))
	slack := uint32(capacity-recordSize(len(key), len(val))) >> 3
	if slack > 63 {
		panic("BUG: store: record written with more slack than the header holds")
	}
	*h = header{klen: uint32(len(key)) | slack<<slackShift, vlen: uint32(len(val)), access: access, expire: expire, created: created}
	p := off + headerSize
	p += copy(s.buf[p:], key)
	copy(s.buf[p:], val)
}

// reset drops every record and returns the slab memory.
func (sh *shard) reset() {
	for _, s := range sh.slabs {
		if s != nil {
			sh.acct.arena.Add(-int64(len(s.buf)))
		}
	}
	sh.acct.used.Add(-(sh.live + int64(sh.count)*indexBytesPerKey))
	sh.index = make(map[uint32]uint32)
	sh.coll, sh.free, sh.slabs, sh.ids = nil, nil, nil, nil
	sh.cur = -1
	sh.count, sh.nttl, sh.live, sh.sweepAt, sh.sweepOf = 0, 0, 0, 0, 0
}

// each calls fn for every live record in slab order, starting at the
// cursor (slab id, offset), until fn returns false or budget records were
// visited. It returns the cursor to resume from, or done.
func (sh *shard) each(id, off, budget int, fn func(loc uint32, h *header) bool) (int, int, bool) {
	for ; id < len(sh.slabs); id, off = id+1, 0 {
		s := sh.slabs[id]
		if s == nil {
			continue
		}
		for off < s.used {
			h := (*header)(unsafe.Pointer(&s.buf[off]))
			size := h.capacity()
			loc := makeLoc(id, off)
			off += size
			if h.dead() {
				continue
			}
			if budget--; budget < 0 {
				return id, off - size, false
			}
			if !fn(loc, h) {
				return id, off, false
			}
		}
	}
	return 0, 0, true
}
