package store

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
func (m *Map) PutAll(items []KV, o SetOptions) (int, error) {
	if o.HasSeq {
		if err := m.advanceSeq(o.Seq); err != nil {
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
	n := 0
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
