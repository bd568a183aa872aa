package store

// ViewIn calls fn for every live, unexpired item of partition p of the
// map, holding the partition's read lock, so the items it sees are the
// partition's current state and writers of that partition wait until it
// returns. key and val are valid only during the call; fn must be quick,
// must not block and must not call back into the store. It stops when fn
// returns false and reports whether it visited every item. Queries and
// index builds (internal/query) read partitions through it without
// copying values.
func (m *Map) ViewIn(p int, fn func(key, val []byte) bool) bool {
	if p < 0 || p >= len(m.parts) {
		return true
	}
	return m.eachIn(p, m.s.now(), func(k, v []byte, _ *header) bool { return fn(k, v) })
}

// PartitionDropper is implemented by observers that keep state per
// partition (query indexes, the backing store's pending-change index).
// DropPartition emits no events (the data is not deleted, it lives on its
// new owner), so it calls OnDropPartition(mapName, p) instead, for each
// map that held data in partition p, right after emptying it and with
// that map's partition still locked: no change of the partition can come
// between the drop and the observer's (as for OnEvent, the observer must
// not call back into the store).
type PartitionDropper interface {
	OnDropPartition(mapName string, p int)
}

// OnDropPartition hands the drop to every observer that implements
// PartitionDropper.
func (m multiObserver) OnDropPartition(mapName string, p int) {
	for _, o := range m {
		if d, ok := o.(PartitionDropper); ok {
			d.OnDropPartition(mapName, p)
		}
	}
}
