// Package httpapi owns a node's HTTP JSON API: one route per capability of
// the store (the jc cache functions, their sequence-checked jc_s forms,
// map max TTLs and key bounds, expiry, counters, node meta functions and
// run-time memory settings), plus /healthz, /metrics and /v1/cluster.
//
// It owns the HTTP contract documented in docs/http.md: the URL scheme
// (map names and keys are percent-encoded path segments, the key last as
// {key...} so it may contain '/'), the JSON shapes, the binary encoding of
// keys and values in JSON (UTF-8 text or base64), the mapping of store
// errors to HTTP statuses and error codes, authentication, and the bounds on
// what a request may make the node read or hold (body size, batch size,
// scan page size). Bad input is refused before anything is written.
//
// Each data route has two implementations. On a standalone node it reads
// and writes the store directly (the fast path). On a cluster member
// (Options.Exec set) it runs the equivalent Redis-protocol command
// through Exec, which the node routes as it routes its RESP clients'
// commands, and parses the reply (internal/resp) back into the same JSON;
// error replies become the same statuses (cluster.go). The cluster path
// is tested by running the API's tests through a RESP server on one store
// (TestThroughExec) and against real in-process clusters (package engram).
//
// It imports internal/store (the data), internal/metrics (to serve and
// feed the registry), internal/resp (to read replies), internal/cluster
// (only its View and Ack types) and internal/config (only ParseSize, so
// "100mb" means the same here as in the config file). It must not import
// internal/server or the node package: the node wires this handler in,
// not the reverse, and cluster-wide routing belongs to the layer that
// owns the cluster.
package httpapi
