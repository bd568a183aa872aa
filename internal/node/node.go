package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/engramdb/engram/internal/config"
	"github.com/engramdb/engram/internal/metrics"
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
	resp    *server.Server
	http    *http.Server
	metrics *metrics.Metrics
	cluster *clusterNode // nil for a standalone node

	respLn, httpLn net.Listener
	started        time.Time
	wg             sync.WaitGroup
	closeOnce      sync.Once
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
	n := &Node{cfg: cfg, log: log, started: time.Now()}
	var obs store.Observer
	if cfg.Clustered() {
		n.cluster = newClusterNode(n)
		obs = n.cluster.obs
	}
	st, err := store.New(store.Options{
		Observer:      obs,
		Partitions:    cfg.Partitions,
		MaxMemory:     cfg.MaxMemory,
		Policy:        policy,
		MaxKeyLen:     cfg.MaxKeyLen,
		MaxValueLen:   cfg.MaxValueLen,
		MaxKeysPerMap: cfg.MaxKeysPerMap,
	})
	if err != nil {
		return nil, err
	}
	n.store = st
	sopts := server.Options{
		Store:      st,
		Password:   cfg.Password,
		MaxClients: cfg.MaxClients,
		Clock:      st.Now,
		Logger:     log.With("component", "resp"),
		Version:    Version,
	}
	if n.cluster != nil {
		if err := n.cluster.compose(); err != nil {
			st.Close()
			return nil, err
		}
		sopts.Cluster = n.cluster.data
		sopts.Nodes = n.cluster.lists
		sopts.ClusterView = n.cluster.view
	}
	n.resp, err = server.New(sopts)
	if err != nil {
		st.Close()
		return nil, err
	}
	n.metrics = metrics.New(metrics.Sources{Store: st, Server: n.serverStats})
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
	n.log.Info("engram node ready", "version", Version, "resp", n.RESPAddr(), "http", n.HTTPAddr(),
		"max_memory", n.cfg.MaxMemory, "policy", n.cfg.MaxMemoryPolicy, "auth", n.cfg.Password != "")
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
// expires, and stops the store's background jobs.
func (n *Node) Close(ctx context.Context) error {
	var errs []error
	n.closeOnce.Do(func() {
		if n.cluster != nil {
			n.cluster.close(true)
		}
		if err := n.resp.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cannot close RESP server: %w", err))
		}
		if n.http != nil {
			if err := n.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cannot close HTTP server: %w", err))
			}
		}
		n.wg.Wait()
		n.store.Close()
		n.log.Info("engram node stopped")
	})
	return errors.Join(errs...)
}
