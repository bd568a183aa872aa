package store

import (
	"slices"

	"github.com/engramdb/engram/internal/keyhash"
)

// Batch forms of the jc functions. Each item is applied on its own (the
// batch is not atomic across partitions); sequence-checked forms check the
// one sequence number once, before any item is applied.

// GetAll returns the found items and the keys that missed (jc get_all).
func (m *Map) GetAll(keys [][]byte) (found []KV, misses [][]byte) {
	for _, k := range keys {
		if v, ok := m.Get(nil, k); ok {
			found = append(found, KV{Key: append([]byte(nil), k...), Value: v})
		} else {
			misses = append(misses, append([]byte(nil), k...))
		}
	}
	return found, misses
}

// PutAll writes every item with the same options and returns how many were
// written (jc put_all). It stops at the first error, which it returns with
// the count written so far.
func (m *Map) PutAll(items []KV, o SetOptions) (n int, err error) {
	seq, hasSeq := o.Seq, o.HasSeq
	if hasSeq {
		// As in Set: checked first, recorded only if the batch succeeds.
		m.seqMu.Lock()
		defer m.seqMu.Unlock()
		if err := m.checkSeqLocked(seq); err != nil {
			return 0, err
		}
		o.HasSeq = false
	}
	// Check every limit first so a batch with one bad item changes nothing.
	for _, it := range items {
		if err := m.checkLimits(it.Key, len(it.Value)); err != nil {
			return 0, err
		}
	}
	if hasSeq {
		defer func() {
			if err == nil {
				m.seq, m.hasSeq = seq, true
			}
		}()
	}
	for _, it := range items {
		r, err := m.Set(it.Key, it.Value, o)
		if err != nil {
			return n, err
		}
		if r.Written {
			n++
		}
	}
	return n, nil
}

// RemoveItems deletes the given keys and returns the items it removed
// (jc remove_items).
func (m *Map) RemoveItems(keys [][]byte) []KV {
	var out []KV
	for _, k := range keys {
		if v, ok := m.GetDelete([]byte{}, k); ok {
			out = append(out, KV{Key: append([]byte(nil), k...), Value: v})
		}
	}
	return out
}

// RemoveItemsSeq is RemoveItems checked against the map's sequence.
func (m *Map) RemoveItemsSeq(keys [][]byte, seq uint64) ([]KV, error) {
	if err := m.advanceSeq(seq); err != nil {
		return nil, err
	}
	return m.RemoveItems(keys), nil
}

// SetAllIfAbsent writes every item only if none of the keys exists, as one
// atomic step (Redis MSETNX): it locks every partition involved, in
// partition order so concurrent callers cannot deadlock. It reports whether
// it wrote.
func (m *Map) SetAllIfAbsent(items []KV, expireAt int64) (bool, error) {
	var need int64
	for _, it := range items {
		if err := m.checkLimits(it.Key, len(it.Value)); err != nil {
			return false, err
		}
		need += int64(recordSize(len(it.Key), len(it.Value)) + indexBytesPerKey)
	}
	if err := m.s.makeRoom(need); err != nil {
		return false, err
	}
	hashes := make([]uint64, len(items))
	var parts []int
	for i, it := range items {
		hashes[i] = keyhash.Sum(it.Key)
		parts = append(parts, keyhash.Partition(hashes[i], len(m.parts)))
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	shards := make(map[int]*shard, len(parts))
	for _, p := range parts {
		sh := m.shardForWrite(uint64(p)) // a hash equal to p maps to partition p
		shards[p] = sh
		sh.mu.Lock()
	}
	defer func() {
		for _, p := range parts {
			shards[p].mu.Unlock()
		}
	}()
	now := m.s.now()
	for i, it := range items {
		sh := shards[keyhash.Partition(hashes[i], len(m.parts))]
		if loc, ok := sh.find(uint32(hashes[i]>>32), it.Key); ok && !m.expired(sh.hdr(loc), now) {
			return false, nil
		}
	}
	for i, it := range items {
		sh := shards[keyhash.Partition(hashes[i], len(m.parts))]
		h32 := uint32(hashes[i] >> 32)
		loc, ok := sh.find(h32, it.Key)
		if ok { // expired, or an earlier item of this batch with the same key
			if m.expired(sh.hdr(loc), now) {
				m.remove(sh, h32, loc, ReasonExpired)
				ok = false
			}
		}
		if err := m.put(sh, h32, it.Key, it.Value, expireAt, now, now, loc, ok, putUser); err != nil {
			return i > 0, err
		}
	}
	return true, nil
}
