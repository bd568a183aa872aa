package node

import (
	"context"
	"net/http"

	"github.com/engramdb/engram/internal/httpapi"
	"github.com/engramdb/engram/internal/metrics"
)

// serverStats adapts the RESP server's counters for the metrics package
// (which must not import the server).
func (n *Node) serverStats() metrics.ServerStats {
	st := n.resp.Stats()
	out := metrics.ServerStats{ConnectedClients: st.ConnectedClients, TotalConnections: st.TotalConnections,
		RejectedConnections: st.RejectedConnections, NetInputBytes: st.NetInputBytes, NetOutputBytes: st.NetOutputBytes,
		Commands: make(map[string]metrics.CommandStats, len(st.Commands))}
	for name, c := range st.Commands {
		out.Commands[name] = metrics.CommandStats{Calls: c.Calls, Errors: c.Errors, Usec: c.Usec}
	}
	return out
}

// httpHandler builds the HTTP API with /metrics and /healthz. On a
// cluster member its data routes run their commands through the RESP
// server's Do, routed as RESP clients' commands are, and it serves the
// cluster's view and state.
func (n *Node) httpHandler() (http.Handler, error) {
	o := httpapi.Options{
		Store:    n.store,
		Metrics:  n.metrics,
		Password: n.cfg.Password,
		Logger:   n.log.With("component", "http"),
		Clock:    n.store.Now,
		PubSub:   n.hub,
		NodeInfo: func() httpapi.NodeInfo {
			active, configured := n.Nodes()
			return httpapi.NodeInfo{ID: n.ID(), Version: Version, Active: active, Configured: configured, StartedAt: n.started}
		},
	}
	// The query routes run the RESP commands on a standalone node too.
	o.Commands = func(ctx context.Context, mapName string, args [][]byte, eo httpapi.ExecOptions) []byte {
		return n.Do(ctx, mapName, args, false, eo.Ack, eo.Eventual)
	}
	o.Exec = func(ctx context.Context, mapName string, args [][]byte, eo httpapi.ExecOptions) []byte {
		return n.Do(ctx, mapName, args, false, eo.Ack, eo.Eventual)
	}
	if n.cluster != nil {
		o.Cluster = n.cluster.view
	} else {
		// Standalone: the store directly, but for maps with a backing store.
		o.Direct = func(mapName string) bool { return !n.persist.Uses(mapName) }
	}
	return httpapi.New(o)
}
