package node

import (
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

// httpHandler builds the HTTP API with /metrics and /healthz.
func (n *Node) httpHandler() (http.Handler, error) {
	return httpapi.New(httpapi.Options{
		Store:    n.store,
		Metrics:  n.metrics,
		Password: n.cfg.Password,
		Logger:   n.log.With("component", "http"),
		NodeInfo: func() httpapi.NodeInfo {
			self := n.RESPAddr()
			return httpapi.NodeInfo{ID: self, Version: Version, Active: []string{self}, Configured: []string{self}, StartedAt: n.started}
		},
	})
}
