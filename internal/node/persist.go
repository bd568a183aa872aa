package node

import (
	"context"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/persist"
	"github.com/engramdb/engram/internal/store"
)

// persistObserver hands the store's changes to the persist manager, which
// is created after the store (it needs the store; the store needs its
// observers when it is created).
type persistObserver struct {
	m atomic.Pointer[persist.Manager]
}

func (o *persistObserver) OnEvent(ev *store.Event) {
	if m := o.m.Load(); m != nil {
		m.OnEvent(ev)
	}
}

// OnDropPartition hands partition drops to the manager
// (store.PartitionDropper).
func (o *persistObserver) OnDropPartition(mapName string, p int) {
	if m := o.m.Load(); m != nil {
		m.OnDropPartition(mapName, p)
	}
}

// dirtyGuardMap names the shadow maps' writes to the cluster's write
// guard (it only orders them with the partition's other writes).
const dirtyGuardMap = "\x00dirty"

// newPersist builds the node's backing-store manager.
func (n *Node) newPersist(obs *persistObserver) error {
	def, err := persist.ParseSettings(persist.Settings{Mode: persist.ModeWriteBehind}, n.cfg.StoreDefaults)
	if err != nil {
		return err
	}
	o := persist.Options{
		Store:        n.store,
		DefaultStore: n.cfg.Store,
		Default:      def,
		Logger:       n.log.With("component", "store"),
	}
	if n.cluster != nil {
		cl := n.cluster.data
		o.IsPrimary = cl.IsPrimary
		o.Guard = func(ctx context.Context, p int, fn func()) error {
			return cl.Local(ctx, p, &cluster.Command{Map: dirtyGuardMap, Write: true}, fn)
		}
		// Longer than one store call: a write-back the previous primary
		// started has ended (done or failed) before the new one starts.
		o.OpTimeout = 5 * time.Second
		o.Grace = o.OpTimeout + time.Second
	}
	m, err := persist.New(o)
	if err != nil {
		return err
	}
	obs.m.Store(m)
	n.persist = m
	return nil
}

// Persist returns the node's backing-store manager.
func (n *Node) Persist() *persist.Manager { return n.persist }

// closePersist writes back the changes this node still leads (a
// graceful stop; a crash-like stop writes nothing back: its replicas do).
func (n *Node) closePersist(ctx context.Context, graceful bool) {
	if n.persist == nil {
		return
	}
	if !graceful {
		n.persist.Abort()
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if left := n.persist.Close(ctx); left > 0 {
		n.log.Error("stopping with changes not written back to the store", "pending", left)
	} else {
		n.log.Info("changes written back to the store", "took", time.Since(start).Round(time.Millisecond))
	}
}

// storeSummary names a store URL for logs: its kind and bucket or path,
// never a query (endpoints may carry tokens) or a user.
func storeSummary(raw string) string {
	if raw == "" {
		return "none"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
