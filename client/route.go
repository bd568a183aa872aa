package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/engramdb/engram/internal/keyhash"
)

// Refresh timings of the owner table (Options.RouteToOwners).
const (
	// refreshEvery is the period of the background refresh.
	refreshEvery = time.Second
	// refreshGap is the least time between two refreshes, so a burst of
	// failures asks the cluster once.
	refreshGap = 50 * time.Millisecond
	// refreshTimeout bounds one refresh.
	refreshTimeout = 2 * time.Second
)

// table is one view of the cluster: each partition's primary and each
// data member's RESP address.
type table struct {
	epoch   uint64
	seedID  string            // member ID of the node at Options.Addr
	primary []string          // partition -> primary's member ID ("" unknown)
	addrs   map[string]string // member ID -> RESP address, alive data nodes
}

// router keeps the owner table fresh and says where a key's commands go.
type router struct {
	c *Client

	mu sync.RWMutex
	t  *table // nil until the first successful refresh

	kick chan struct{} // asks for a refresh now (buffered, 1)
	ctx  context.Context
	stop context.CancelFunc // ends the refresh loop and any refresh running
	done chan struct{}
}

func newRouter(c *Client) *router {
	ctx, stop := context.WithCancel(context.Background())
	return &router{c: c, kick: make(chan struct{}, 1), ctx: ctx, stop: stop, done: make(chan struct{})}
}

// start loads the table once (a failure leaves routing to the seed) and
// starts the background refresh.
func (r *router) start(ctx context.Context) {
	_ = r.refresh(ctx)
	go r.loop()
}

func (r *router) loop() {
	defer close(r.done)
	tick := time.NewTicker(refreshEvery)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		case <-r.kick:
		}
		ctx, cancel := context.WithTimeout(r.ctx, refreshTimeout)
		_ = r.refresh(ctx)
		cancel()
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(refreshGap):
		}
	}
}

// close stops the refresh and waits for it.
func (r *router) close() {
	r.stop()
	<-r.done
}

// invalidate asks for a refresh soon, without waiting.
func (r *router) invalidate() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// owner returns the RESP address of key's primary, or "" when the seed
// should take the command: no table, unknown owner, or the seed itself.
func (r *router) owner(key string) string {
	r.mu.RLock()
	t := r.t
	r.mu.RUnlock()
	if t == nil || len(t.primary) == 0 {
		return ""
	}
	id := t.primary[keyhash.Partition(keyhash.SumString(key), len(t.primary))]
	if id == "" || id == t.seedID {
		return ""
	}
	return t.addrs[id]
}

// members returns the RESP addresses of the table's members.
func (r *router) members() map[string]bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]bool)
	if r.t != nil {
		for _, a := range r.t.addrs {
			out[a] = true
		}
	}
	return out
}

// refresh reads the table from the seed or, if the seed does not answer,
// from any member it knew, then closes the pools of members that left.
func (r *router) refresh(ctx context.Context) error {
	t, err := readTable(ctx, r.c.base)
	if err != nil && !isReplyError(err) {
		// The seed is unreachable: ask the others (the seed ID stays the
		// old one, so its keys keep going to the seed).
		for addr := range r.members() {
			rdb := r.c.Map(defaultMap).pool(addr)
			if rdb == nil {
				break
			}
			var err2 error
			if t, err2 = readTable(ctx, rdb); err2 == nil {
				r.mu.RLock()
				if r.t != nil {
					t.seedID = r.t.seedID
				}
				r.mu.RUnlock()
				err = nil
				break
			}
		}
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.t = t
	r.mu.Unlock()
	r.c.prune(r.members())
	return nil
}

// isReplyError reports whether err is a reply of the server (it was
// reached), not a failure to reach it.
func isReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// readTable asks one node for the cluster's table.
func readTable(ctx context.Context, rdb *redis.Client) (*table, error) {
	info, err := rdb.Do(ctx, "cluster", "info").Text()
	if err != nil {
		return nil, err
	}
	t := &table{addrs: make(map[string]string)}
	parts := -1
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "cluster_epoch":
			t.epoch, _ = strconv.ParseUint(v, 10, 64)
		case "cluster_my_id":
			t.seedID = v
		case "cluster_partitions":
			parts, _ = strconv.Atoi(v)
		}
	}
	nodes, err := rdb.Do(ctx, "cluster", "nodes").Text()
	if err != nil {
		return nil, err
	}
	// id resp-addr data-addr role[,myself][,leader] state manager ...
	for line := range strings.SplitSeq(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		role, _, _ := strings.Cut(f[3], ",")
		if role == "data" && f[4] == "alive" && f[1] != "-" {
			t.addrs[f[0]] = f[1]
		}
	}
	rows, err := rdb.Do(ctx, "cluster", "partitions").Slice()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return t, nil // no table yet: everything goes to the seed
	}
	if len(rows) != parts {
		return nil, fmt.Errorf("client: CLUSTER PARTITIONS has %d partitions, CLUSTER INFO says %d", len(rows), parts)
	}
	t.primary = make([]string, parts)
	for _, row := range rows {
		pr, ok := row.([]any)
		if !ok || len(pr) != 2 {
			return nil, fmt.Errorf("client: CLUSTER PARTITIONS: unexpected row %#v", row)
		}
		p, ok := pr[0].(int64)
		owners, ok2 := pr[1].([]any)
		if !ok || !ok2 || p < 0 || int(p) >= parts {
			return nil, fmt.Errorf("client: CLUSTER PARTITIONS: unexpected row %#v", row)
		}
		if len(owners) > 0 {
			if id, ok := owners[0].(string); ok {
				t.primary[p] = id
			}
		}
	}
	return t, nil
}

// prune closes every map's pool to an address no longer in the table, so
// there is at most one pool per member and map.
func (c *Client) prune(keep map[string]bool) {
	c.mu.Lock()
	ms := make([]*Map, 0, len(c.maps))
	for _, m := range c.maps {
		ms = append(ms, m)
	}
	c.mu.Unlock()
	for _, m := range ms {
		m.mu.Lock()
		for addr, rdb := range m.nodes {
			if !keep[addr] {
				delete(m.nodes, addr)
				rdb.Close()
			}
		}
		m.mu.Unlock()
	}
}

// pool returns the map's pool to the node at addr, creating it on first
// use, or nil once the client is closed.
func (m *Map) pool(addr string) *redis.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rdb := m.nodes[addr]; rdb != nil {
		return rdb
	}
	if m.c.closed.Load() || m.rdb == nil {
		return nil
	}
	if m.nodes == nil {
		m.nodes = make(map[string]*redis.Client)
	}
	rdb := redis.NewClient(m.c.mapOptions(m.name, addr))
	m.nodes[addr] = rdb
	return rdb
}

// closeNodes closes the map's pools to owners.
func (m *Map) closeNodes() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for addr, rdb := range m.nodes {
		if err := rdb.Close(); err != nil {
			errs = append(errs, fmt.Errorf("client: cannot close the pool of map %q to %s: %w", m.name, addr, err))
		}
	}
	m.nodes = nil
	return errs
}

// keyed runs a single-key command: on key's primary when routing is on
// and the owner is known, else on the seed. f must only send the command
// to rdb and keep its result. A failure to reach the owner asks for a
// new table and, if the command cannot have run there (it was never
// sent, or it only reads), runs it on the seed, which forwards it. A
// -TRYAGAIN from the owner asks for a new table too.
func (m *Map) keyed(ctx context.Context, key string, read bool, f func(rdb *redis.Client) error) error {
	r := m.c.router
	if r == nil {
		return f(m.rdb)
	}
	addr := r.owner(key)
	if addr == "" {
		return f(m.rdb)
	}
	rdb := m.pool(addr)
	if rdb == nil {
		return f(m.rdb)
	}
	err := f(rdb)
	switch {
	case err == nil, errors.Is(err, redis.Nil), ctx.Err() != nil:
		return err
	case isReplyError(err):
		if strings.HasPrefix(err.Error(), "TRYAGAIN ") {
			r.invalidate()
		}
		return err
	}
	// The owner could not be reached, or its pool was closed (it left).
	r.invalidate()
	if m.c.closed.Load() || !(read || notSent(err)) {
		return err
	}
	return f(m.rdb)
}

// notSent reports whether err proves the command never left the client:
// a refused or failed dial, or a pool closed before a connection was
// taken.
func notSent(err error) bool {
	if errors.Is(err, redis.ErrClosed) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
