package backing

import (
	"context"
	"sync/atomic"
)

// Counting wraps a Store and counts the calls that reach it, for tests of
// write coalescing and singleflight loads. It is safe for concurrent use.
type Counting struct {
	inner                                   Store
	loads, stores, deletes, lists           atomic.Int64
	storeBatches, deleteBatches, loadsFound atomic.Int64
}

var _ Store = (*Counting)(nil)

// Counts is a snapshot of a Counting's counters. Stores and Deletes count
// keys (a batch of n counts n) and StoreBatches and DeleteBatches count
// batch calls.
type Counts struct {
	Loads, LoadsFound, Stores, Deletes, Lists int64
	StoreBatches, DeleteBatches               int64
}

// NewCounting returns a Counting around s.
func NewCounting(s Store) *Counting { return &Counting{inner: s} }

// Counts returns the counters so far.
func (c *Counting) Counts() Counts {
	return Counts{
		Loads: c.loads.Load(), LoadsFound: c.loadsFound.Load(), Stores: c.stores.Load(),
		Deletes: c.deletes.Load(), Lists: c.lists.Load(),
		StoreBatches: c.storeBatches.Load(), DeleteBatches: c.deleteBatches.Load(),
	}
}

// Reset sets every counter to zero.
func (c *Counting) Reset() {
	for _, n := range []*atomic.Int64{&c.loads, &c.loadsFound, &c.stores, &c.deletes, &c.lists, &c.storeBatches, &c.deleteBatches} {
		n.Store(0)
	}
}

// Load implements Store.
func (c *Counting) Load(ctx context.Context, m string, key []byte) ([]byte, bool, error) {
	c.loads.Add(1)
	v, found, err := c.inner.Load(ctx, m, key)
	if found {
		c.loadsFound.Add(1)
	}
	return v, found, err
}

// Store implements Store.
func (c *Counting) Store(ctx context.Context, m string, key, value []byte) error {
	c.stores.Add(1)
	return c.inner.Store(ctx, m, key, value)
}

// Delete implements Store.
func (c *Counting) Delete(ctx context.Context, m string, key []byte) error {
	c.deletes.Add(1)
	return c.inner.Delete(ctx, m, key)
}

// StoreBatch implements Store.
func (c *Counting) StoreBatch(ctx context.Context, m string, entries []Entry) error {
	c.storeBatches.Add(1)
	c.stores.Add(int64(len(entries)))
	return c.inner.StoreBatch(ctx, m, entries)
}

// DeleteBatch implements Store.
func (c *Counting) DeleteBatch(ctx context.Context, m string, keys [][]byte) error {
	c.deleteBatches.Add(1)
	c.deletes.Add(int64(len(keys)))
	return c.inner.DeleteBatch(ctx, m, keys)
}

// List implements Store.
func (c *Counting) List(ctx context.Context, m string, opts ListOptions) (ListPage, error) {
	c.lists.Add(1)
	return c.inner.List(ctx, m, opts)
}

// Close implements Store.
func (c *Counting) Close() error { return c.inner.Close() }
