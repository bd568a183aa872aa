package store

import (
	"encoding/binary"
	"strings"

	"github.com/engramdb/engram/internal/keyhash"
)

// Change tracking for the backing store (write-behind).
//
// A tracked map records every client write and explicit delete of a key in
// its shadow map (DirtyMapName), inside the same critical section as the
// change itself: the shadow record is written under the shadow shard's lock
// while the key's shard is still locked. The shadow map is an ordinary
// internal map in the same partition as the key (partitions depend on the
// key only), so it is replicated, snapshotted, moved and failed over with
// the data, and a replica that becomes primary has every change the old
// primary had not yet written back. Lock order: a data shard, then a
// shadow shard; nothing locks a shadow shard and then a data shard.
//
// A shadow record is op (1 byte) | since (8 bytes, Unix ms, big endian) |
// value. since is when the key became dirty: later writes keep it, so a
// key written continuously is still written back once per delay
// (coalescing), never postponed forever.

// Dirty record operations.
const (
	DirtyWrite  byte = 1 // the store must hold Value
	DirtyDelete byte = 2 // the store must not hold the key
)

const dirtyPrefix = "\x00dirty:"

// DirtyMapName returns the name of the shadow map of map name.
func DirtyMapName(name string) string { return dirtyPrefix + name }

// DirtyMapOf reports whether name is a shadow map, and whose.
func DirtyMapOf(name string) (string, bool) {
	if strings.HasPrefix(name, dirtyPrefix) {
		return name[len(dirtyPrefix):], true
	}
	return "", false
}

// Dirty is a decoded shadow record. Value aliases the record's bytes.
type Dirty struct {
	Op    byte
	Since int64 // Unix ms when the key became dirty
	Value []byte
}

// DecodeDirty decodes a shadow record; false if it is malformed.
func DecodeDirty(b []byte) (Dirty, bool) {
	if len(b) < 9 || (b[0] != DirtyWrite && b[0] != DirtyDelete) {
		return Dirty{}, false
	}
	return Dirty{Op: b[0], Since: int64(binary.BigEndian.Uint64(b[1:9])), Value: b[9:]}, true
}

// AppendDirty appends the encoding of a shadow record to dst.
func AppendDirty(dst []byte, op byte, since int64, val []byte) []byte {
	dst = append(dst, op)
	dst = binary.BigEndian.AppendUint64(dst, uint64(since))
	return append(dst, val...)
}

// Track turns change tracking on for m and returns its shadow map: from
// now on every client write and explicit delete of a key for which
// decide(key) is true is also recorded there (expiry, eviction and clears
// are not changes to write back). decide runs under the key's shard lock
// and must be cheap (a cluster node answers "am I the primary of the key's
// partition": replicas receive the primary's shadow records instead).
// Track(nil) stops recording; records already there stay until cleaned.
func (m *Map) Track(decide func(key []byte) bool) (*Map, error) {
	if m.internal {
		return nil, ErrInternalMap
	}
	d, err := m.s.createMap(DirtyMapName(m.name), 0)
	if err != nil {
		return nil, err
	}
	m.dirty.Store(d)
	if decide == nil {
		m.tracker.Store(nil)
	} else {
		m.tracker.Store(&decide)
	}
	return d, nil
}

// Tracked reports whether m records its changes.
func (m *Map) Tracked() bool { return m.tracker.Load() != nil }

func (m *Map) afterWrite(key, val []byte, now int64, how putKind) error {
	if how != putUser {
		return nil
	}
	return m.markDirty(key, DirtyWrite, val, now)
}

func (m *Map) afterDelete(key []byte) {
	if err := m.markDirty(key, DirtyDelete, nil, m.s.now()); err != nil {
		m.s.dirtyErrors.Add(1)
	}
}

// markDirty records a change of key in the shadow map, under the key's
// shard lock (held by the caller).
func (m *Map) markDirty(key []byte, op byte, val []byte, now int64) error {
	t := m.tracker.Load()
	if t == nil {
		return nil
	}
	d := m.dirty.Load()
	if d == nil || !(*t)(key) {
		return nil
	}
	h := keyhash.Sum(key)
	sh := d.shardForWrite(h)
	h32 := uint32(h >> 32)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	loc, exists := sh.find(h32, key)
	since := now
	if exists {
		if old, ok := DecodeDirty(sh.value(loc)); ok {
			since = old.Since
		}
	}
	rec := AppendDirty(make([]byte, 0, 9+len(val)), op, since, val)
	return d.put(sh, h32, key, rec, 0, now, now, loc, exists, putImport)
}

// Fill writes key = val read from the backing store (read-through), if
// key is absent and ok() still holds, both checked under the key's lock:
// the caller's ok says no change of the key raced with the load. The write
// is not a change (Event.Loaded; never tracked), skips the map's key limit
// and sequence, and respects the memory bound. It reports whether it wrote.
func (m *Map) Fill(key, val []byte, expireAt int64, ok func() bool) (bool, error) {
	if err := m.checkLimits(key, len(val)); err != nil {
		return false, err
	}
	if err := m.s.makeRoom(int64(recordSize(len(key), len(val)) + indexBytesPerKey)); err != nil {
		return false, err
	}
	h := keyhash.Sum(key)
	sh := m.shardForWrite(h)
	now := m.s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h32 := uint32(h >> 32)
	loc, exists := sh.find(h32, key)
	if exists && m.expired(sh.hdr(loc), now) {
		m.remove(sh, h32, loc, ReasonExpired)
		exists = false
	}
	if exists || !ok() {
		return false, nil
	}
	if err := m.put(sh, h32, key, val, expireAt, now, now, loc, false, putLoad); err != nil {
		return false, err
	}
	return true, nil
}
