package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/engramdb/engram"
)

// Options say how to reach a node. Zero durations and sizes take
// go-redis's defaults.
type Options struct {
	// Addr is the node's RESP address, host:port.
	Addr string
	// Password is sent with AUTH (HELLO ... AUTH default <password>).
	Password string
	// Protocol is the RESP version, 2 or 3; 0 means 3.
	Protocol int
	// PoolSize bounds the connections of each map's pool (see Client.Map).
	PoolSize int
	// DialTimeout bounds connecting.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound one command's socket I/O; a
	// context deadline bounds it too.
	ReadTimeout, WriteTimeout time.Duration
	// TLSConfig, when set, makes connections use TLS. With RouteToOwners
	// it is used for every node, so its ServerName (if set) must suit
	// them all.
	TLSConfig *tls.Config
	// RouteToOwners, for a cluster, sends each single-key command (Get,
	// Set, Delete, Incr, TTL, ...) straight to the primary of the key's
	// partition, saving the hop from the node at Addr (the seed) to the
	// owner. The client reads the partition table from the seed (CLUSTER
	// INFO, NODES, PARTITIONS), refreshes it every second and at once
	// after a -TRYAGAIN or a failure to reach an owner, and opens one
	// connection pool per member (and map) on first use. Multi-key and
	// whole-keyspace calls, sequence-checked writes, and keys whose owner
	// is unknown or unreachable go through the seed as without it. A
	// stale table costs a hop, never a wrong answer: a node forwards any
	// command it does not own. Against a single node it does nothing.
	RouteToOwners bool
}

// defaultMap is the map a connection is on before any SELECT.
const defaultMap = "0"

// Client is a connection pool to one node. It is safe for concurrent use.
type Client struct {
	base   *redis.Client // on map "0"; also Redis()
	opts   redis.Options // template for the per-map pools
	closed atomic.Bool

	router *router // nil unless Options.RouteToOwners

	mu   sync.Mutex
	maps map[string]*Map // per-map handles with their own pools, made lazily
}

// Dial connects to the node at opts.Addr and checks it answers a PING.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if opts.Addr == "" {
		return nil, errors.New("client: Options.Addr is required")
	}
	switch opts.Protocol {
	case 0:
		opts.Protocol = 3
	case 2, 3:
	default:
		return nil, fmt.Errorf("client: Options.Protocol must be 2 or 3, got %d", opts.Protocol)
	}
	ro := redis.Options{
		Addr:         opts.Addr,
		Password:     opts.Password,
		Protocol:     opts.Protocol,
		PoolSize:     opts.PoolSize,
		DialTimeout:  opts.DialTimeout,
		ReadTimeout:  opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout,
		TLSConfig:    opts.TLSConfig,
		// A context deadline must bound a command: a request fails within
		// its timeout rather than hang.
		ContextTimeoutEnabled: true,
		// No automatic retries: a write that may have been applied (INCR,
		// PUTALLSEQ) must never be sent twice behind the caller's back.
		MaxRetries: -1,
		// Engram does not track client library names; skip the two extra
		// round trips per new connection.
		DisableIndentity: true,
	}
	c := &Client{opts: ro, maps: make(map[string]*Map)}
	base := ro
	c.base = redis.NewClient(&base)
	if err := c.base.Ping(ctx).Err(); err != nil {
		c.base.Close()
		return nil, fmt.Errorf("client: cannot reach Engram at %s: %w", opts.Addr, mapError(err))
	}
	if opts.RouteToOwners {
		c.router = newRouter(c)
		c.router.start(ctx)
	}
	return c, nil
}

// Map returns the handle on the named map, creating its connection pool
// on first use; later calls return the same handle. Each map used holds
// up to Options.PoolSize connections of its own, because a connection is
// bound to the map it SELECTed. An invalid name (empty, or containing CR
// or LF) makes every call on the map fail.
func (c *Client) Map(name string) *Map {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.maps[name]; m != nil {
		return m
	}
	m := &Map{c: c, name: name}
	switch {
	case c.closed.Load():
		// No pool: every method reports ErrClosed before using one.
	case name == defaultMap:
		m.rdb = c.base
	default:
		m.rdb = redis.NewClient(c.mapOptions(name, c.opts.Addr))
	}
	c.maps[name] = m
	return m
}

// mapOptions returns the options of a pool to the node at addr whose
// connections are on map name.
func (c *Client) mapOptions(name, addr string) *redis.Options {
	o := c.opts
	o.Addr = addr
	if name != defaultMap {
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			// redis.Conn has no Do: build the command and process it.
			cmd := redis.NewStatusCmd(ctx, "select", name)
			if err := cn.Process(ctx, cmd); err != nil {
				return fmt.Errorf("cannot select map %q: %w", name, err)
			}
			return nil
		}
	}
	return &o
}

// check is the guard every call starts with.
func (c *Client) check(ctx context.Context) error {
	if c.closed.Load() {
		return engram.ErrClosed
	}
	return ctx.Err()
}

// Maps returns the names of the maps that hold keys or settings, sorted
// (MAPS).
func (c *Client) Maps(ctx context.Context) ([]string, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	names, err := c.base.Do(ctx, "maps").StringSlice()
	return names, mapError(err)
}

// Sequences returns the sequence number of every map that has one
// (SEQUENCES).
func (c *Client) Sequences(ctx context.Context) (map[string]uint64, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	r, err := c.base.Do(ctx, "sequences").Result()
	if err != nil {
		return nil, mapError(err)
	}
	pairs, err := replyPairs(r)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(pairs))
	for _, p := range pairs {
		n, ok := p.val.(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("client: SEQUENCES: unexpected value %#v for map %q", p.val, p.key)
		}
		out[p.key] = uint64(n)
	}
	return out, nil
}

// Flush clears every map (FLUSH). Silent sends no delete events.
func (c *Client) Flush(ctx context.Context, silent bool) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	args := []any{"flush"}
	if silent {
		args = append(args, "silent")
	}
	return mapError(c.base.Do(ctx, args...).Err())
}

// Redis returns the go-redis client on map "0", for commands this package
// does not wrap. Do not SELECT on it: its pooled connections would stay on
// the other map. Use Map for other maps.
func (c *Client) Redis() *redis.Client { return c.base }

// Close closes every connection. Afterwards every call returns
// engram.ErrClosed. Calling Close again does nothing.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.router != nil {
		c.router.close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for name, m := range c.maps {
		errs = append(errs, m.closeNodes()...)
		if m.rdb != nil && m.rdb != c.base {
			if err := m.rdb.Close(); err != nil {
				errs = append(errs, fmt.Errorf("client: cannot close the pool of map %q: %w", name, err))
			}
		}
	}
	if err := c.base.Close(); err != nil {
		errs = append(errs, fmt.Errorf("client: cannot close the connection pool: %w", err))
	}
	return errors.Join(errs...)
}

// mapError maps go-redis and server errors onto engram's sentinels,
// keeping the server's message. The prefixes are those of the server's
// error table (internal/server/errors.go); the client tests check every
// one against a real node.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.Nil) {
		return engram.ErrNotFound
	}
	if errors.Is(err, redis.ErrClosed) {
		return engram.ErrClosed
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return err
	}
	msg := re.Error()
	var kind error
	switch {
	case strings.HasPrefix(msg, "OOM "):
		kind = engram.ErrOutOfMemory
	case strings.HasPrefix(msg, "OUTOFSEQ "):
		kind = engram.ErrOutOfSequence
	case strings.HasPrefix(msg, "MAPFULL "):
		kind = engram.ErrMapFull
	case strings.HasPrefix(msg, "ERR key too long"):
		kind = engram.ErrKeyTooLong
	case strings.HasPrefix(msg, "ERR value too large"):
		kind = engram.ErrValueTooLarge
	case strings.HasPrefix(msg, "ERR value is not an integer"),
		strings.HasPrefix(msg, "ERR increment or decrement would overflow"):
		kind = engram.ErrNotInteger
	case strings.HasPrefix(msg, "TRYAGAIN "), strings.HasPrefix(msg, "CLUSTERDOWN "):
		// A partition changing hands, no table yet, replicas slow to
		// acknowledge, or a node cut off from the majority.
		kind = engram.ErrUnavailable
	default:
		return err
	}
	return engram.NewError(kind, err)
}

// pair is one entry of a map reply.
type pair struct {
	key string
	val any
}

// replyPairs reads a map reply: a RESP3 map, or the flat key-value array
// RESP2 sends instead.
func replyPairs(r any) ([]pair, error) {
	switch v := r.(type) {
	case map[any]any:
		out := make([]pair, 0, len(v))
		for k, val := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("client: unexpected map key %#v", k)
			}
			out = append(out, pair{ks, val})
		}
		return out, nil
	case []any:
		if len(v)%2 != 0 {
			return nil, fmt.Errorf("client: odd-length map reply (%d elements)", len(v))
		}
		out := make([]pair, 0, len(v)/2)
		for i := 0; i < len(v); i += 2 {
			ks, ok := v[i].(string)
			if !ok {
				return nil, fmt.Errorf("client: unexpected map key %#v", v[i])
			}
			out = append(out, pair{ks, v[i+1]})
		}
		return out, nil
	}
	return nil, fmt.Errorf("client: expected a map reply, got %T", r)
}
