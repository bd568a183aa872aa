// Package metrics owns a node's Prometheus metrics: one private
// prometheus.Registry per node (never the default registry, so two nodes can
// live in one process), a collector that reads the store's and the RESP
// front end's counters at scrape time, the Go and process collectors, and
// the HTTP API's own request counters and latency histogram.
//
// Store and server figures are gathered only when Prometheus scrapes: the
// data path keeps its own cheap atomic counters and this package merely
// copies them, so serving metrics costs the hot path nothing.
//
// It imports internal/store (read-only: Stats, MapNames, Lookup, Len,
// Bytes) and the Prometheus client. It must not import internal/server,
// internal/httpapi or the node: they feed it through Sources, the
// dependency points from them to here.
package metrics
