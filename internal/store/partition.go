package store

import (
	"fmt"

	"github.com/engramdb/engram/internal/keyhash"
)

// Partition-level operations: the cluster moves, copies and drops data one
// partition at a time (a partition is one shard in every map).

// Record is one item with its metadata, as it travels between nodes.
type Record struct {
	Map      string
	Key      []byte
	Value    []byte
	ExpireAt int64 // Unix ms; 0 = none
	Created  int64 // Unix ms (second precision)
}

// exportPage bounds how many records are copied out under one lock hold,
// so exporting a big partition never blocks its writers for long.
const exportPage = 512

// ExportPartition calls fn with a copy of every live item of partition p,
// map by map. Records are copied out a page at a time under the
// partition's read lock and handed to fn outside it, so fn may block (send
// over the network). Items written while the export runs may or may not be
// included; the caller covers them (the cluster forwards live writes to the
// receiver before it starts exporting). fn's error stops the export.
func (s *Store) ExportPartition(p int, fn func(Record) error) error {
	if p < 0 || p >= s.opts.Partitions {
		return fmt.Errorf("cannot export partition %d: there are %d partitions", p, s.opts.Partitions)
	}
	var page []Record
	for _, m := range *s.list.Load() {
		sh := m.parts[p].Load()
		if sh == nil {
			continue
		}
		id, off := 0, 0
		for {
			page = page[:0]
			now := s.now()
			sh.mu.RLock()
			var done bool
			id, off, done = sh.each(id, off, exportPage, func(loc uint32, h *header) bool {
				if !m.expired(h, now) {
					page = append(page, Record{Map: m.name, Key: append([]byte(nil), sh.key(loc)...),
						Value: append([]byte(nil), sh.value(loc)...), ExpireAt: h.expire, Created: int64(h.created) * 1000})
				}
				return true
			})
			sh.mu.RUnlock()
			for _, r := range page {
				if err := fn(r); err != nil {
					return err
				}
			}
			if done {
				break
			}
		}
	}
	return nil
}

// Import writes a record received from another node, keeping its expiry and
// creation time. With ifAbsent it leaves an existing item alone (a
// snapshot record must not overwrite a newer live write). Limits and
// sequences are not checked (the sender checked them); the memory bound is.
// It reports whether it wrote.
func (s *Store) Import(r Record, ifAbsent bool) (bool, error) {
	m, err := s.OpenMap(r.Map)
	if err != nil {
		return false, err
	}
	if r.ExpireAt != 0 && r.ExpireAt <= s.now() {
		return false, nil
	}
	if err := s.makeRoom(int64(recordSize(len(r.Key), len(r.Value)) + indexBytesPerKey)); err != nil {
		return false, err
	}
	h := keyhash.Sum(r.Key)
	sh := m.shardForWrite(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h32 := uint32(h >> 32)
	loc, exists := sh.find(h32, r.Key)
	if exists && m.expired(sh.hdr(loc), now) {
		m.remove(sh, h32, loc, ReasonExpired)
		exists = false
	}
	if exists && ifAbsent {
		return false, nil
	}
	if err := m.put(sh, h32, r.Key, r.Value, r.ExpireAt, now, r.Created, loc, exists, putImport); err != nil {
		return false, err
	}
	return true, nil
}

// DropPartition removes every item of partition p in every map, without
// events: the data is not deleted, it lives on its new owner.
func (s *Store) DropPartition(p int) error {
	if p < 0 || p >= s.opts.Partitions {
		return fmt.Errorf("cannot drop partition %d: there are %d partitions", p, s.opts.Partitions)
	}
	d, _ := s.obs.(PartitionDropper)
	for _, m := range *s.list.Load() {
		if sh := m.parts[p].Load(); sh != nil {
			sh.mu.Lock()
			m.count.Add(-int64(sh.count))
			sh.reset()
			if d != nil {
				// Under the lock: a write landing after the reset must not
				// be dropped from the observer's state too.
				d.OnDropPartition(m.name, p)
			}
			sh.mu.Unlock()
		}
	}
	return nil
}

// PartitionLen returns the number of items of partition p across maps.
func (s *Store) PartitionLen(p int) int64 {
	var n int64
	for _, m := range *s.list.Load() {
		if sh := m.parts[p].Load(); sh != nil {
			sh.mu.RLock()
			n += int64(sh.count)
			sh.mu.RUnlock()
		}
	}
	return n
}
