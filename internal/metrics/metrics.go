package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/engramdb/engram/internal/store"
)

// ServerStats is what the RESP front end reports (the node fills it in).
type ServerStats struct {
	// ConnectedClients is the number of open client connections.
	ConnectedClients int64
	// TotalConnections counts every connection ever accepted.
	TotalConnections int64
	// RejectedConnections counts connections refused (max clients reached).
	RejectedConnections int64
	// NetInputBytes counts bytes read from clients.
	NetInputBytes int64
	// NetOutputBytes counts bytes written to clients.
	NetOutputBytes int64
	// Commands holds per-command counters by lower-case command name.
	Commands map[string]CommandStats
}

// CommandStats are the counters of one RESP command.
type CommandStats struct {
	// Calls counts executions.
	Calls int64
	// Errors counts executions that replied with an error.
	Errors int64
	// Usec is the total time spent executing, in microseconds.
	Usec int64
}

// Sources are what the metrics are read from at scrape time.
type Sources struct {
	// Store is the node's keyspace; nil leaves the store metrics out.
	Store *store.Store
	// Server returns the RESP front end's counters; nil leaves the
	// connection and command metrics out (a node without a RESP listener).
	Server func() ServerStats
}

// Metrics is one node's metric registry and the HTTP instrumentation the
// HTTP API records into. It is safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	handler  http.Handler
}

// New builds the registry for one node: the scrape-time collector over src,
// the Go and process collectors, and the HTTP API's request metrics.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engram_http_requests_total",
			Help: "HTTP API requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "engram_http_request_seconds",
			Help: "HTTP API request latency by route pattern.",
			// From 100µs (a cached GET) to 10s (a large batch or scan page).
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{"route"}),
	}
	reg.MustRegister(
		newCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests,
		m.latency,
	)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A failing collector must not blank the whole page: serve what
		// was gathered and count the error.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
	return m
}

// Registry returns the node's registry, for registering more collectors or
// for gathering in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return m.handler }

// ObserveHTTP records one HTTP API request. route must come from a fixed
// set (the router's patterns), never from the request path, so the label's
// cardinality stays bounded whatever clients send.
func (m *Metrics) ObserveHTTP(route string, code int, elapsed time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(elapsed.Seconds())
}
