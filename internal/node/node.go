package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/config"
	"github.com/engramdb/engram/internal/metrics"
	"github.com/engramdb/engram/internal/persist"
	"github.com/engramdb/engram/internal/pubsub"
	"github.com/engramdb/engram/internal/query"
	"github.com/engramdb/engram/internal/server"
	"github.com/engramdb/engram/internal/store"
)

// Version is the Engram version the node reports; the binary sets it.
const Version = "0.1.0"

// Node is one running Engram node.
type Node struct {
	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	queries *query.Manager
	resp    *server.Server
	http    *http.Server
	metrics *metrics.Metrics
	cluster *clusterNode // nil for a standalone node
	hub     *pubsub.Hub
	psObs   *cluster.PubSubObserver // a cluster member's pub/sub observer (pubsub.go)
	persist *persist.Manager

	respLn, httpLn net.Listener
	started        time.Time
	wg             sync.WaitGroup
	closeOnce      sync.Once
	leaveOnce      sync.Once // the cluster is left once (Leave, Close)
}

// New builds a node from cfg (validated here) without opening listeners.
func New(cfg config.Config, log *slog.Logger) (*Node, error) {
	// An empty RESPAddr means no RESP listener (an embedded node used only
	// in-process). config.Validate requires an address, so validate the
	// rest of the configuration as if it listened on loopback.
	check := cfg
	if check.RESPAddr == "" {
		check.RESPAddr = "127.0.0.1:0"
	}
	if err := check.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	policy, err := store.ParsePolicy(cfg.MaxMemoryPolicy)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, started: time.Now(), hub: pubsub.New(pubsub.Options{})}
	// Every consumer of the store's changes is listed here, in the order
	// it sees them (replication first: it assigns the change its place in
	// the partition's log).
	var observers []store.Observer
	if cfg.Clustered() {
		n.cluster = newClusterNode(n)
		observers = append(observers, n.cluster.obs)
	}
	observers = append(observers, n.pubsubObserver())
	pobs := &persistObserver{}
	observers = append(observers, pobs)
	// JSON query indexes follow every change (and partition drops).
	autoIndex := cfg.AutoIndex
	if autoIndex == 0 {
		autoIndex = -1 // off
	}
	n.queries = query.New(query.Options{Partitions: cfg.Partitions, MaxIndexesPerMap: cfg.MaxIndexesPerMap,
		AutoThreshold: autoIndex, Logger: log.With("component", "query")})
	observers = append(observers, n.queries)
	st, err := store.New(store.Options{
		Observer: store.Observers(observers...),
		// Indexes hold memory for the keyspace: it counts against the bound.
		ExternalMemory: n.queries.MemoryBytes,
		Partitions:     cfg.Partitions,
		MaxMemory:      cfg.MaxMemory,
		Policy:         policy,
		MaxKeyLen:      cfg.MaxKeyLen,
		MaxValueLen:    cfg.MaxValueLen,
		MaxKeysPerMap:  cfg.MaxKeysPerMap,
	})
	if err != nil {
		return nil, err
	}
	n.store = st
	if err := n.queries.Attach(st); err != nil {
		st.Close()
		return nil, err
	}
	sopts := server.Options{
		Store:      st,
		Password:   cfg.Password,
		MaxClients: cfg.MaxClients,
		Clock:      st.Now,
		Logger:     log.With("component", "resp"),
		Version:    Version,
		PubSub:     n.hub,
	}
	sopts.Queries = n.queries
	if n.cluster != nil {
		if err := n.cluster.compose(); err != nil {
			st.Close()
			return nil, err
		}
		sopts.Cluster = n.cluster.data
		sopts.Nodes = n.cluster.lists
		sopts.ClusterView = n.cluster.view
		sopts.MapConfig = n.cluster.setMapConfig
		sopts.IndexConfig = n.cluster.setIndexConfig
		if err := n.wirePubSub(); err != nil {
			st.Close()
			return nil, err
		}
	}
	if err := n.newPersist(pobs); err != nil {
		st.Close()
		return nil, err
	}
	sopts.Persist = n.persist
	if n.cluster != nil {
		sopts.MapStore = n.cluster.setMapStore
	}
	n.resp, err = server.New(sopts)
	if err != nil {
		st.Close()
		return nil, err
	}
	n.metrics = metrics.New(metrics.Sources{Store: st, Server: n.serverStats})
	n.metrics.Registry().MustRegister(metrics.NewStoreCollector(n.persist.Stats))
	return n, nil
}

// Start opens the listeners and serves in the background. It returns once
// the node accepts connections, or the first listen error. An empty
// RESPAddr opens no RESP listener.
func (n *Node) Start() error {
	if n.cfg.RESPAddr != "" {
		ln, err := net.Listen("tcp", n.cfg.RESPAddr)
		if err != nil {
			return fmt.Errorf("cannot listen for RESP on %s: %w", n.cfg.RESPAddr, err)
		}
		n.respLn = ln
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.resp.Serve(ln); err != nil {
				n.log.Error("RESP server stopped", "err", err)
			}
		}()
	}
	if n.cfg.HTTPEnabled() {
		hl, err := net.Listen("tcp", n.cfg.HTTPAddr)
		if err != nil {
			n.Close(context.Background())
			return fmt.Errorf("cannot listen for HTTP on %s: %w", n.cfg.HTTPAddr, err)
		}
		n.httpLn = hl
		h, err := n.httpHandler()
		if err != nil {
			n.Close(context.Background())
			return err
		}
		n.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
		n.http.RegisterOnShutdown(n.hub.CloseAll) // end event streams, which never go idle
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.http.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("HTTP server stopped", "err", err)
			}
		}()
	}
	if n.cluster != nil {
		if err := n.cluster.start(); err != nil {
			n.Close(context.Background())
			return err
		}
	}
	n.persist.Start()
	if n.cluster != nil && strings.HasPrefix(n.cfg.Store, "file:") {
		n.log.Warn("a cluster member with a file:// store: partitions move between nodes, so keys written back here are not where the next owner reads them; use an S3 store in a cluster (docs/backing.md)",
			"store", storeSummary(n.cfg.Store))
	}
	n.log.Info("engram node ready", "version", Version, "resp", n.RESPAddr(), "http", n.HTTPAddr(),
		"max_memory", n.cfg.MaxMemory, "policy", n.cfg.MaxMemoryPolicy, "auth", n.cfg.Password != "",
		"store", storeSummary(n.cfg.Store))
	return nil
}

// Store returns the node's storage engine (the embedded, no-hop path).
func (n *Node) Store() *store.Store { return n.store }

// RESPAddr returns the address the Redis protocol listens on, or "".
func (n *Node) RESPAddr() string {
	if n.respLn == nil {
		return ""
	}
	return n.respLn.Addr().String()
}

// HTTPAddr returns the address the HTTP API listens on, or "".
func (n *Node) HTTPAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// Close stops the listeners, lets in-flight commands finish until ctx
// expires, and stops the store's background jobs. A cluster member first
// leaves the cluster gracefully (it hands its partitions over, and the
// others see it leave rather than fail).
func (n *Node) Close(ctx context.Context) error { return n.shutdown(ctx, true) }

// Kill stops the node as a crash would, as far as the cluster can tell: a
// cluster member stops gossip without announcing that it leaves or
// handing its partitions over, so the others detect a failure. It is for
// tests of failures; Close is the way to stop a node.
func (n *Node) Kill(ctx context.Context) error { return n.shutdown(ctx, false) }

// Leave makes a cluster member leave the cluster gracefully (it hands
// its partitions over, waiting up to 10 seconds, and tells the others it
// leaves) without stopping its listeners; Close then stops the node. Close
// leaves by itself: Leave is for callers whose deadline for in-flight
// commands (Close's ctx) should start after the hand-over. It does nothing
// on a standalone node or when called again.
func (n *Node) Leave() { n.leave(true) }

func (n *Node) leave(graceful bool) {
	if n.cluster != nil && graceful {
		// Hand the partitions over while still serving: clients connected
		// here keep working (their commands are forwarded to the new
		// owners) until the listeners close.
		n.leaveOnce.Do(func() { n.cluster.drain(10 * time.Second) })
	}
}

func (n *Node) shutdown(ctx context.Context, graceful bool) error {
	var errs []error
	n.closeOnce.Do(func() {
		n.leave(graceful)
		if !graceful && n.cluster != nil {
			// A crash-like stop: vanish from the cluster before anything else.
			n.cluster.close(false)
		}
		if err := n.resp.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cannot close RESP server: %w", err))
		}
		if n.http != nil {
			if err := n.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cannot close HTTP server: %w", err))
			}
		}
		// Subscribers of every kind (Go API subscriptions too) end with
		// the node: their owners see Done.
		n.hub.CloseAll()
		n.closePersist(ctx, graceful)
		if graceful && n.cluster != nil {
			n.cluster.close(true)
		}
		n.wg.Wait()
		n.queries.Close()
		n.store.Close()
		n.log.Info("engram node stopped")
	})
	return errors.Join(errs...)
}

// Clustered reports whether the node is a cluster member (started with a
// cluster secret).
func (n *Node) Clustered() bool { return n.cluster != nil }

// Do runs one command of the Redis protocol on map mapName as a client of
// this node would, routed through the cluster when there is one, and
// returns its raw reply (RESP3 when resp3 is set). ack is the write
// acknowledgement level; eventual lets a read be served by a replica. The
// HTTP and embedded Go APIs reach data on other nodes through it.
func (n *Node) Do(ctx context.Context, mapName string, args [][]byte, resp3 bool, ack cluster.Ack, eventual bool) []byte {
	return n.resp.Do(ctx, mapName, args, resp3, ack, eventual)
}

// ID returns the node's member ID in its cluster, or, on a standalone
// node, its RESP address ("local" without a RESP listener).
func (n *Node) ID() string {
	if n.cluster != nil {
		return n.cluster.id
	}
	if a := n.RESPAddr(); a != "" {
		return a
	}
	return "local"
}

// Nodes returns the active and configured data nodes of the cluster,
// sorted (jc cache_nodes); a standalone node lists itself in both.
func (n *Node) Nodes() (active, configured []string) {
	if n.cluster != nil {
		return n.cluster.lists()
	}
	self := n.ID()
	return []string{self}, []string{self}
}

// ClusterView describes the cluster as this node sees it (CLUSTER INFO,
// GET /v1/cluster); owners adds the partition table. ok is false on a
// standalone node.
func (n *Node) ClusterView(owners bool) (v cluster.View, ok bool) {
	if n.cluster == nil {
		return cluster.View{}, false
	}
	return n.cluster.view(owners), true
}

// GossipAddr returns the cluster address other nodes join through (the
// address --join names), or "" on a standalone node or before Start.
func (n *Node) GossipAddr() string {
	if n.cluster == nil || n.cluster.mem == nil {
		return ""
	}
	return n.cluster.mem.Addr()
}

// OnNodeEvent calls fn for every change in the cluster's membership (a
// node joined, failed or left) until the returned cancel is called. fn
// runs on the gossip goroutine: it must not block. On a standalone node
// nothing ever happens and cancel does nothing.
func (n *Node) OnNodeEvent(fn func(NodeEvent)) (cancel func()) {
	if n.cluster == nil {
		return func() {}
	}
	return n.cluster.subscribe(fn)
}
