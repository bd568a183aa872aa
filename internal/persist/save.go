package persist

import (
	"context"
	"fmt"
	"time"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/store"
)

// Save writes keys of map mp to the store now (persist now, Brain's
// {p, id}) and returns when the store has them: a pending change is
// written back (a delete deletes), and a key with no pending change that
// is in memory is written as it is. It returns how many keys it wrote or
// deleted in the store. It must run on the keys' primary.
func (m *Manager) Save(ctx context.Context, ms *State, mp *store.Map, keys [][]byte) (int, error) {
	ref := ms.bs.Load()
	if ref == nil {
		return 0, fmt.Errorf("map %q has no store", mp.Name())
	}
	d := ms.dirty.Load()
	if d == nil {
		var err error
		if d, err = m.shadowOf(mp); err != nil {
			return 0, err
		}
	}
	byPart := map[int][]pendingRec{}
	var plain []backing.Entry
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	seen := map[string]bool{}
	for _, key := range keys {
		k := string(key)
		if seen[k] {
			continue
		}
		seen[k] = true
		p := m.st.PartitionOf(key)
		if err := m.waitReady(ctx, p); err != nil {
			return 0, err
		}
		release, err := ms.claim(ctx, k)
		if err != nil {
			return 0, err
		}
		releases = append(releases, release)
		if b, ok := d.Get(nil, key); ok {
			byPart[p] = append(byPart[p], pendingRec{ref: dirtyRef{key: k}, rec: b, release: func() {}})
			continue
		}
		if v, ok := mp.Get(nil, key); ok {
			plain = append(plain, backing.Entry{Key: key, Value: v})
		}
	}
	n := 0
	var all []pendingRec
	for _, recs := range byPart {
		all = append(all, recs...)
	}
	if len(all) > 0 {
		if err := m.storeRecs(ctx, ms, all); err != nil {
			ms.fail(m, err, m.o.Now())
			return 0, err
		}
		ms.ok(m)
		n += len(all)
		for p, recs := range byPart {
			if again := m.clean(ctx, d, p, recs); len(again) > 0 {
				ms.requeue(p, again)
			}
		}
	}
	if len(plain) > 0 {
		cctx, cancel := context.WithTimeout(ctx, m.o.OpTimeout)
		defer cancel()
		if err := ref.s.StoreBatch(cctx, mp.Name(), plain); err != nil {
			ms.fail(m, err, m.o.Now())
			return n, err
		}
		ms.written.Add(int64(len(plain)))
		n += len(plain)
	}
	return n, nil
}

// SaveParts writes back now every pending change of map mp in partitions
// parts (which this node leads) and returns how many it wrote.
func (m *Manager) SaveParts(ctx context.Context, ms *State, mp *store.Map, parts []int) (int, error) {
	d := m.st.Map(store.DirtyMapName(mp.Name()))
	if d == nil {
		return 0, nil
	}
	total := 0
	for _, p := range parts {
		keys := d.KeysIn([]int{p}, nil)
		for len(keys) > 0 {
			chunk := keys[:min(len(keys), ms.set.Load().Batch)]
			keys = keys[len(chunk):]
			var pending [][]byte
			for _, k := range chunk {
				if _, ok := d.Get(nil, k); ok {
					pending = append(pending, k)
				}
			}
			if len(pending) == 0 {
				continue
			}
			n, err := m.savePending(ctx, ms, mp, d, pending)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// savePending is Save restricted to keys with a pending change.
func (m *Manager) savePending(ctx context.Context, ms *State, mp *store.Map, d *store.Map, keys [][]byte) (int, error) {
	var only [][]byte
	for _, k := range keys {
		if _, ok := d.Get(nil, k); ok {
			only = append(only, k)
		}
	}
	return m.Save(ctx, ms, mp, only)
}

// waitReady waits until this node may write back partition p's changes
// (see Options.Grace).
func (m *Manager) waitReady(ctx context.Context, p int) error {
	for !m.ready(p, m.o.Now()) {
		if !m.leads(p) && m.o.IsPrimary != nil {
			m.updatePrimaries(m.o.Now())
			if !m.leads(p) {
				return fmt.Errorf("this node does not lead partition %d", p)
			}
		}
		if m.primaryFrom[p].Load() == 0 {
			m.updatePrimaries(m.o.Now())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(m.o.Tick):
		}
	}
	return nil
}
