package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/metrics"
	"github.com/engramdb/engram/internal/pubsub"
	"github.com/engramdb/engram/internal/store"
)

// Limits of the API. They bound what one request can make the node read,
// decode or hold, whatever the client sends.
const (
	// DefaultMaxBodyBytes is the default bound on a request body: the
	// store's largest value (512 MiB) plus room for a JSON envelope.
	DefaultMaxBodyBytes = 512<<20 + 1<<20
	// MaxBatchItems is the most keys or items one batch request may carry.
	MaxBatchItems = 100_000
	// DefaultScanCount is the page size of key, value and item listings
	// when the request gives no count.
	DefaultScanCount = 1000
	// MaxScanCount is the largest page size a listing accepts.
	MaxScanCount = 100_000
	// maxSettingsBody bounds the small JSON bodies of settings routes.
	maxSettingsBody = 64 << 10
)

// Options configure the API handler.
type Options struct {
	// Store is the node's keyspace. Required.
	Store *store.Store
	// Metrics serves /metrics and records the API's own request metrics;
	// nil leaves both out.
	Metrics *metrics.Metrics
	// Password, when not empty, is required on every route but /healthz,
	// as "Authorization: Bearer <password>" or as the password of HTTP
	// basic auth (any user name).
	Password string
	// NodeInfo describes the node for /v1/nodes and /v1/up; nil reports a
	// standalone node named "local" that started with the store.
	NodeInfo func() NodeInfo
	// Logger receives server-side failures; nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; larger ones get 413 without
	// being read. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Clock returns the current time in Unix milliseconds. It must be the
	// store's clock (store.Options.Clock), because relative TTLs become
	// absolute expiry times here and the store compares them with its own
	// clock. Default: the wall clock.
	Clock func() int64
	// Exec, when set, makes the API a client of the cluster the node
	// belongs to: every data route runs the equivalent Redis-protocol
	// command through it (the node routes it to the owners of its keys,
	// or scatters it over every primary and merges the replies) instead
	// of reading and writing Store, which then only supplies this node's
	// limits, settings and statistics. Exec must run args on map mapName
	// as a client of the node would and return the raw reply in RESP2
	// (an error reply for a failure). Nil: a standalone node, served from
	// Store directly.
	Exec func(ctx context.Context, mapName string, args [][]byte, o ExecOptions) []byte
	// Direct, when set with Exec on a standalone node, says which maps are
	// still served from Store directly (true) rather than through Exec:
	// maps with a backing store go through Exec, where read-through and
	// write-back happen. Nil: every map goes through Exec.
	Direct func(mapName string) bool
	// Cluster, when set, describes the cluster as this node sees it, for
	// GET /v1/cluster and /healthz (owners adds the partition table). Nil
	// on a standalone node.
	Cluster func(owners bool) cluster.View
	// Commands runs a Redis-protocol command on this node as a client of
	// it would, whatever the node's mode (same contract as Exec). The
	// JSON query and index routes use it on a standalone node too (one
	// implementation of queries, in internal/server). Nil: Exec; with
	// neither, those routes answer 501.
	Commands func(ctx context.Context, mapName string, args [][]byte, o ExecOptions) []byte
	// PubSub, when set, serves GET /v1/events (server-sent events of
	// topics, map events and node events) and POST /v1/topics/{topic}
	// (events.go).
	PubSub *pubsub.Hub
}

// ExecOptions qualify one command run through Options.Exec.
type ExecOptions struct {
	// Ack is when a write returns: after every replica applied it (the
	// default), after the primary did, or at once.
	Ack cluster.Ack
	// Eventual lets a read be served by a replica (possibly stale).
	Eventual bool
}

// NodeInfo describes the node serving the API.
type NodeInfo struct {
	// ID is the node's name in the cluster.
	ID string
	// Version is the Engram version the node runs.
	Version string
	// Active lists the nodes currently up.
	Active []string
	// Configured lists the nodes the cluster is configured with.
	Configured []string
	// StartedAt is when the node started.
	StartedAt time.Time
}

// api is the handler New returns.
type api struct {
	st      *store.Store
	met     *metrics.Metrics
	auth    bool
	pwHash  [sha256.Size]byte
	node    func() NodeInfo
	log     *slog.Logger
	maxBody int64
	clock   func() int64
	mux     *http.ServeMux
	exec    func(ctx context.Context, mapName string, args [][]byte, o ExecOptions) []byte
	direct  func(mapName string) bool
	cluster func(owners bool) cluster.View
	// commands runs the query routes' commands (Options.Commands).
	commands func(ctx context.Context, mapName string, args [][]byte, o ExecOptions) []byte
	hub      *pubsub.Hub // pub/sub routes (events.go)
}

// New returns the API handler for one node.
func New(o Options) (http.Handler, error) {
	if o.Store == nil {
		return nil, errors.New("httpapi: a store is required")
	}
	if o.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("httpapi: max body bytes must not be negative, got %d", o.MaxBodyBytes)
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = func() int64 { return time.Now().UnixMilli() }
	}
	a := &api{st: o.Store, met: o.Metrics, node: o.NodeInfo, log: o.Logger,
		maxBody: o.MaxBodyBytes, clock: o.Clock, mux: http.NewServeMux(), exec: o.Exec, direct: o.Direct, cluster: o.Cluster, commands: o.Commands,
		hub: o.PubSub}
	if o.Password != "" {
		// Comparing fixed-size digests keeps the comparison constant-time
		// in the password's length too.
		a.auth, a.pwHash = true, sha256.Sum256([]byte(o.Password))
	}
	if a.node == nil {
		started := o.Store.Stats().Started
		a.node = func() NodeInfo {
			return NodeInfo{ID: "local", Active: []string{"local"}, Configured: []string{"local"}, StartedAt: started}
		}
	}
	a.routes()
	return a, nil
}

// handlerFunc is a route handler; a returned error becomes the JSON error
// response (the handler must not have written anything then).
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers a route that requires authentication.
func (a *api) handle(pattern string, h handlerFunc) {
	a.mux.Handle(pattern, a.authenticated(a.errors(h)))
}

// errors turns a handler's error into its JSON response.
func (a *api) errors(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// authenticated refuses requests without the password.
func (a *api) authenticated(next http.Handler) http.Handler {
	if !a.auth {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="engram", charset="UTF-8"`)
			a.writeError(w, r, &apiError{status: http.StatusUnauthorized, code: "unauthorized",
				msg: "authentication required: send Authorization: Bearer <password> or basic auth"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *api) authorized(r *http.Request) bool {
	var given string
	if _, pw, ok := r.BasicAuth(); ok {
		given = pw
	} else if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		given = strings.TrimSpace(h[7:])
	} else {
		return false
	}
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], a.pwHash[:]) == 1
}

// ServeHTTP checks the path, dispatches to the route, renders the mux's own
// 404 and 405 as JSON, recovers from panics and records the request.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.log.Error("http handler panic", "method", r.Method, "route", r.Pattern, "panic", p)
			if !sw.wrote {
				a.writeError(sw, r, &apiError{status: http.StatusInternalServerError, code: "internal", msg: "internal error"})
			}
		}
		if a.met != nil {
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			a.met.ObserveHTTP(route, sw.code(), time.Since(start))
		}
	}()
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	if err := checkPath(r.URL.EscapedPath()); err != nil {
		a.writeError(sw, r, err)
		return
	}
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.serveUnmatched(sw, r)
		return
	}
	a.mux.ServeHTTP(sw, r)
}

// checkPath refuses paths the mux would clean and redirect: following such
// a redirect would silently address another key ("a//b" becomes "a/b").
// Keys and map names must percent-encode '/' (and may encode anything).
func checkPath(p string) error {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return badPath()
		}
	}
	if strings.Contains(p, "//") {
		return badPath()
	}
	return nil
}

func badPath() error {
	return &apiError{status: http.StatusBadRequest, code: "bad_path",
		msg: "path has an empty, '.' or '..' segment: percent-encode '/' in map names and keys as %2F and '.' segments as %2E"}
}

// serveUnmatched renders the mux's answer for a request no route takes
// (404, or 405 with its Allow header) as a JSON error.
func (a *api) serveUnmatched(w http.ResponseWriter, r *http.Request) {
	cw := &captureWriter{header: make(http.Header)}
	a.mux.ServeHTTP(cw, r)
	switch {
	case cw.status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", cw.header.Get("Allow"))
		a.writeError(w, r, &apiError{status: cw.status, code: "method_not_allowed",
			msg: fmt.Sprintf("method %s not allowed here (allowed: %s)", r.Method, cw.header.Get("Allow"))})
	case cw.status >= 300 && cw.status < 400:
		for k, v := range cw.header {
			w.Header()[k] = v
		}
		w.WriteHeader(cw.status)
	default:
		a.writeError(w, r, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no such route: see docs/http.md"})
	}
}

// statusWriter records the status for metrics and whether anything was
// written (so a panic after a partial response is not answered twice).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = http.StatusOK, true
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// captureWriter keeps the mux's status and headers and drops its
// plain-text body.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}
