package engram

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/config"
	"github.com/engramdb/engram/internal/node"
	"github.com/engramdb/engram/internal/store"
)

// Config configures an embedded node. The zero value is a pure in-process
// node with the defaults of `engram serve`: no listeners, no memory bound,
// noeviction.
type Config struct {
	// RESPAddr is where the node listens for Redis clients, e.g.
	// "127.0.0.1:7379", or "127.0.0.1:0" for any free port (read it back
	// with Node.RESPAddr). Empty: no listener; only this process reaches
	// the node.
	RESPAddr string
	// HTTPAddr is where the HTTP API listens; empty: no HTTP.
	HTTPAddr string
	// Password is required from Redis and HTTP clients when set. Without
	// it the node refuses to listen on a non-loopback address.
	Password string
	// MaxMemory bounds the bytes of data; 0 means no bound.
	MaxMemory int64
	// EvictionPolicy applies at MaxMemory: "noeviction" (the default:
	// writes fail with ErrOutOfMemory), "allkeys-lru", "allkeys-lfu",
	// "volatile-lru", "volatile-ttl" or "allkeys-random".
	EvictionPolicy string
	// MaxKeyLen is the longest key accepted; 0 means the default (64 KiB).
	MaxKeyLen int
	// MaxValueLen is the largest value accepted; 0 means the default
	// (512 MiB, Redis's largest string).
	MaxValueLen int64
	// MaxKeysPerMap bounds the keys of every map; 0 means no bound. A map
	// can override it with Map.SetMaxKeys.
	MaxKeysPerMap int64
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger

	// ClusterSecret, when set, makes the node a member of a cluster: it
	// joins the nodes named by Join (or starts a new cluster without
	// Join), holds a share of the partitions, and every Map method runs
	// where the data is (see "Clusters" in the package documentation).
	// It must be the same on every member, at least 16 bytes; nodes
	// without it cannot join or send requests. Empty: a standalone node.
	ClusterSecret string
	// ClusterAddr is the gossip address (TCP and UDP) of a cluster
	// member; node-to-node data uses the next port and the control plane
	// the one after. Empty: "127.0.0.1:7946", as engram serve. With port
	// 0 ("127.0.0.1:0") each listener picks a free port; read the gossip
	// address back with Node.ClusterAddr. Loopback addresses get fast
	// failure detection (about a second), others LAN timings.
	ClusterAddr string
	// Join lists the ClusterAddrs of existing members to contact (one
	// answering is enough; retried until one does). Empty: start a new
	// cluster.
	Join []string
	// Replicas is the number of copies of each partition, the primary
	// included; 0 means the default, 2. Set it the same on every member.
	Replicas int
	// Partitions is the number of partitions the keys are spread over; 0
	// means the default, 271. It must be the same on every member and
	// never changes for the life of a cluster.
	Partitions int
	// Role is "data" (the default: holds partitions) or "client" (a
	// member that routes requests and holds no data).
	Role string
	// NodeName names the node in cluster views; member IDs are the name
	// plus a random suffix chosen at each start. Default: ClusterAddr.
	NodeName string
	// NearCache is the number of entries of the near cache (0: off):
	// eventual reads (Map.WithEventualReads) of keys other nodes own are
	// kept locally and invalidated by their owners (docs/cluster.md).
	NearCache int

	// Store is the default backing store of the maps: "file:///path" (a
	// local directory) or "s3://bucket/prefix?endpoint=URL&region=R&
	// path_style=true" (credentials from the usual AWS environment and
	// files). Empty: no default store (a map can still name one, see
	// Map.ConfigureStore). See docs/backing.md.
	Store string
	// StoreDefaults are the settings of maps that have none of their own,
	// as "field=value" pairs: mode (write-behind, the default;
	// write-through; read-through; none), delay, batch, max_dirty, max_dirty_bytes,
	// negative_ttl.
	StoreDefaults string

	// MaxIndexesPerMap bounds the JSON query indexes of one map
	// (Map.StartIndexing); 0 means the default, 4 (jc's limit).
	MaxIndexesPerMap int
	// AutoIndex is the automatic indexing threshold: a path queried on a
	// map without an index more than this many times within a minute is
	// indexed (docs/queries.md). 0 means the default, 10; negative
	// switches automatic indexing off.
	AutoIndex int
}

// nodeConfig turns c into the node's configuration: the defaults of
// `engram serve`, overridden by every field c sets.
func (c Config) nodeConfig() config.Config {
	nc := config.Default()
	nc.RESPAddr = c.RESPAddr
	nc.HTTPAddr = c.HTTPAddr
	nc.Password = c.Password
	nc.MaxMemory = c.MaxMemory
	if c.EvictionPolicy != "" {
		nc.MaxMemoryPolicy = c.EvictionPolicy
	}
	if c.MaxKeyLen != 0 {
		nc.MaxKeyLen = c.MaxKeyLen
	}
	if c.MaxValueLen != 0 {
		nc.MaxValueLen = c.MaxValueLen
	}
	nc.MaxKeysPerMap = c.MaxKeysPerMap
	nc.ClusterSecret = c.ClusterSecret
	if c.ClusterAddr != "" {
		nc.ClusterAddr = c.ClusterAddr
	}
	nc.Join = c.Join
	if c.Replicas != 0 {
		nc.Replicas = c.Replicas
	}
	if c.Partitions != 0 {
		nc.Partitions = c.Partitions
	}
	if c.Role != "" {
		nc.Role = c.Role
	}
	nc.NodeName = c.NodeName
	nc.NearCache = c.NearCache
	nc.Store = c.Store
	nc.StoreDefaults = c.StoreDefaults
	if c.MaxIndexesPerMap != 0 {
		nc.MaxIndexesPerMap = c.MaxIndexesPerMap
	}
	switch {
	case c.AutoIndex < 0:
		nc.AutoIndex = 0 // off
	case c.AutoIndex > 0:
		nc.AutoIndex = c.AutoIndex
	}
	return nc
}

// closeGrace is how long Close lets Redis clients finish the command they
// are running before their connections are cut: long enough for any
// single command, short enough that a client that stopped reading cannot
// hold Close up.
const closeGrace = 5 * time.Second

// Node is a node running in this process. Its maps are reached with no
// network hop; when Config.RESPAddr or HTTPAddr is set, other processes
// reach the same data over the network. It is safe for concurrent use.
type Node struct {
	node *node.Node
	st   *store.Store
	// clustered sends every Map method through the cluster (node.Do)
	// instead of to the local store.
	clustered bool
	log       *slog.Logger
	closed    atomic.Bool

	closeOnce sync.Once
	closeErr  error

	subMu sync.Mutex
	subs  map[*subscription]struct{} // OnNodeEvent subscriptions, ended by Close
}

// Open starts a node in this process.
func Open(cfg Config) (*Node, error) {
	nd, err := node.New(cfg.nodeConfig(), cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("engram: invalid config: %w", err)
	}
	if err := nd.Start(); err != nil {
		nd.Close(context.Background())
		return nil, fmt.Errorf("engram: cannot start node: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Node{node: nd, st: nd.Store(), clustered: nd.Clustered(), log: log}, nil
}

// Close stops the listeners and background jobs. Afterwards every method
// that returns an error returns ErrClosed. Calling Close again does
// nothing.
//
// A cluster member leaves gracefully: it hands the partitions it leads
// over to other members (waiting up to 10 seconds for that) and tells
// them it is leaving, so they report it with NodeEvent.Left rather than
// as a failure. Node event subscriptions end.
func (n *Node) Close() error { return n.close(true) }

func (n *Node) close(graceful bool) error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.endSubscriptions()
		if graceful {
			// Hand the partitions over first: closeGrace is for the
			// commands in flight when the listeners close, after that.
			n.node.Leave()
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		stop := n.node.Close
		if !graceful {
			stop = n.node.Kill
		}
		if err := stop(ctx); err != nil {
			n.closeErr = fmt.Errorf("engram: cannot close node cleanly: %w", err)
		}
	})
	return n.closeErr
}

// check is the guard every error-returning call starts with.
func (n *Node) check(ctx context.Context) error {
	if n.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// Map returns a handle on the named map, creating the map on first use.
// Names are binary-safe strings; "0" is the map Redis clients see before
// they SELECT another (a Redis client can select any non-empty name
// without CR or LF). Handles are cheap and safe for concurrent use; keep
// one rather than calling Map per operation.
func (n *Node) Map(name string) *Map {
	return &Map{n: n, sm: n.st.Map(name)}
}

// Maps returns the names of the maps that hold keys or settings, sorted
// (jc maps()). After Close it reports the maps as Close left them.
//
// In a cluster it asks every primary (MAPS); if the cluster cannot answer
// within its request timeout, or the node is closed, it logs why and
// returns nil.
func (n *Node) Maps() []string {
	if n.clustered {
		return n.clusterMaps()
	}
	return n.st.MapNames()
}

// Sequences returns the sequence number of every map that has one (jc_s
// sequence()). After Close it reports them as Close left them.
//
// In a cluster it asks every primary (SEQUENCES); if the cluster cannot
// answer within its request timeout, or the node is closed, it logs why
// and returns nil.
func (n *Node) Sequences() map[string]uint64 {
	if n.clustered {
		return n.clusterSequences()
	}
	return n.st.Sequences()
}

// Flush clears every map (jc flush); in a cluster, every map on every
// node. Silent sends no delete events to subscribers.
func (n *Node) Flush(ctx context.Context, silent bool) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	if n.clustered {
		return n.clusterFlush(ctx, silent)
	}
	n.st.Flush(silent)
	return nil
}

// RESPAddr returns the address Redis clients connect to, or "" when the
// node does not listen for them.
func (n *Node) RESPAddr() string { return n.node.RESPAddr() }

// HTTPAddr returns the address of the HTTP API, or "" when it is off.
func (n *Node) HTTPAddr() string { return n.node.HTTPAddr() }

// Stats is a snapshot of a node's counters.
type Stats struct {
	Maps           int   // maps created
	Keys           int64 // keys in all maps, counting expired keys not yet removed
	UsedMemory     int64 // bytes of live data and index
	MaxMemory      int64 // the memory bound; 0 = none
	EvictionPolicy string
	Hits           int64 // reads that found their key
	Misses         int64 // reads that did not
	Expired        int64 // items removed because their TTL or the map's max TTL passed
	Evicted        int64 // items removed for the memory bound or by EvictSince
	Uptime         time.Duration
}

// Stats returns a snapshot of the node's counters. In a cluster they are
// this node's: its share of the keys (replica copies included), its
// memory, its reads.
func (n *Node) Stats() Stats {
	s := n.st.Stats()
	return Stats{Maps: s.Maps, Keys: s.Keys, UsedMemory: s.UsedMemory, MaxMemory: s.MaxMemory,
		EvictionPolicy: s.Policy.String(), Hits: s.Hits, Misses: s.Misses, Expired: s.Expired,
		Evicted: s.Evicted, Uptime: s.Uptime}
}
