package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/ring"
)

// The near cache keeps, on a node that does not own a key, the replies of
// eventual single-key reads (GET after READONLY, or the Go API's eventual
// reads), so hot keys are served without a hop (Brain's local node per
// front server). The owner registers the reader when it serves the read
// and, on any change of the key, sends it an invalidation (OpInvalidate).
// Invalidations are best effort, so every entry also has a maximum age
// (Options.NearCacheTTL): a near-cached read is an eventual read, stale by
// at most that long. A new partition table clears the cache (the new
// owners do not know the old registrations).

// nearKey names a cached reply: the key, its map and the protocol.
type nearKey struct {
	m, k  string
	resp3 bool
}

type nearEntry struct {
	reply []byte
	until time.Time
}

// nearCache is one node's near cache. Safe for concurrent use.
type nearCache struct {
	max int
	ttl time.Duration

	mu      sync.Mutex
	entries map[nearKey]nearEntry
	// pending holds a token per key read but not stored yet: an
	// invalidation between the read and the store deletes it, and the
	// reply is then not stored (it may be older than the change).
	pending map[[2]string]uint64
	next    uint64

	hits, misses, invalidations atomic.Int64
}

func newNearCache(max int, ttl time.Duration) *nearCache {
	return &nearCache{max: max, ttl: ttl, entries: map[nearKey]nearEntry{}, pending: map[[2]string]uint64{}}
}

func (c *nearCache) get(k nearKey) ([]byte, bool) {
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && time.Now().After(e.until) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if ok {
		c.hits.Add(1)
		return e.reply, true
	}
	c.misses.Add(1)
	return nil, false
}

// begin marks a read of k about to be sent and returns its token.
func (c *nearCache) begin(k nearKey) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	if len(c.pending) < c.max {
		c.pending[[2]string{k.m, k.k}] = c.next
	}
	return c.next
}

// store keeps reply for k if no invalidation came since begin.
func (c *nearCache) store(k nearKey, token uint64, reply []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pk := [2]string{k.m, k.k}
	if c.pending[pk] != token {
		return
	}
	delete(c.pending, pk)
	if len(c.entries) >= c.max {
		for victim := range c.entries { // a random entry: Go randomises map order
			delete(c.entries, victim)
			break
		}
	}
	c.entries[k] = nearEntry{reply: append([]byte(nil), reply...), until: time.Now().Add(c.ttl)}
}

// invalidate drops every cached reply of key m/k.
func (c *nearCache) invalidate(m, k string) {
	c.invalidations.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, nearKey{m, k, false})
	delete(c.entries, nearKey{m, k, true})
	delete(c.pending, [2]string{m, k})
}

// clear drops everything (a new partition table).
func (c *nearCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	clear(c.pending)
}

func (c *nearCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// interests is the owner's side: which nodes cache which keys.
type interests struct {
	max int
	n   atomic.Int64 // registered keys, to skip the lock when zero

	mu   sync.Mutex
	keys map[[2]string]map[ring.NodeID]struct{}
}

func newInterests(max int) *interests {
	return &interests{max: max, keys: map[[2]string]map[ring.NodeID]struct{}{}}
}

// register records that node caches m/k; false if the registry is full.
func (in *interests) register(m, k string, node ring.NodeID) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	pk := [2]string{m, k}
	set := in.keys[pk]
	if set == nil {
		if len(in.keys) >= in.max {
			return false
		}
		set = map[ring.NodeID]struct{}{}
		in.keys[pk] = set
		in.n.Add(1)
	}
	set[node] = struct{}{}
	return true
}

// take returns and forgets the nodes caching m/k.
func (in *interests) take(m string, k []byte) []ring.NodeID {
	if in.n.Load() == 0 {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	pk := [2]string{m, string(k)}
	set := in.keys[pk]
	if set == nil {
		return nil
	}
	delete(in.keys, pk)
	in.n.Add(-1)
	out := make([]ring.NodeID, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	return out
}

// invalidation is one key change to tell a node about.
type invalidation struct {
	to   ring.NodeID
	m, k string
}

// NearCacheStats count the near cache's work.
type NearCacheStats struct {
	Entries                     int
	Hits, Misses, Invalidations int64
	InvalidationsSent, Dropped  int64
	RegisteredKeys              int64
}

// sendInvalidations tells near-caching nodes about changed keys, one
// message per key, until the node closes.
func (n *Node) sendInvalidations() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case inv := <-n.invq:
			_, addrs, _ := n.view()
			addr, ok := addrs[inv.to]
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(n.ctx, n.opts.ReplicateTimeout)
			err := n.tr.Send(ctx, addr, KindData, AppendRequest(nil, &Request{Op: OpInvalidate, Map: inv.m, Key: []byte(inv.k)}))
			cancel()
			if err != nil {
				n.invDropped.Add(1)
			} else {
				n.invSent.Add(1)
			}
		}
	}
}

// NearCache returns the near cache's counters (zero when it is off).
func (n *Node) NearCache() NearCacheStats {
	st := NearCacheStats{InvalidationsSent: n.invSent.Load(), Dropped: n.invDropped.Load(), RegisteredKeys: n.intr.n.Load()}
	if n.near != nil {
		st.Entries = n.near.len()
		st.Hits, st.Misses, st.Invalidations = n.near.hits.Load(), n.near.misses.Load(), n.near.invalidations.Load()
	}
	return st
}
