package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/persist"
	"github.com/engramdb/engram/internal/pubsub"
	"github.com/engramdb/engram/internal/query"
	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/store"
)

// Options configure a Server.
type Options struct {
	Store    *store.Store
	Password string // "" = no AUTH needed
	// MaxClients bounds concurrent connections; more are refused with an
	// error. Default 10000 (Redis's maxclients).
	MaxClients int
	// Limits bound what one command may make the server buffer.
	Limits resp.Limits
	// OutputFlush is how many reply bytes a pipelined batch accumulates
	// before they are written, bounding per-client output memory. Default 64 KiB.
	OutputFlush int
	// IdleTimeout closes connections idle for that long; 0 = never (Redis
	// default timeout 0).
	IdleTimeout time.Duration
	// Clock returns Unix milliseconds; it must be the store's clock so
	// relative expiries agree with it. Default: wall clock.
	Clock   func() int64
	Logger  *slog.Logger
	Version string
	// Info adds node-level fields to INFO's server section.
	Info func() map[string]string
	// Nodes reports the active and configured nodes (CACHENODES); nil
	// means this node alone.
	Nodes func() (active, configured []string)
	// Cluster, when set, routes key commands to their partition's owner
	// and scatters whole-keyspace commands; the server runs commands
	// forwarded by other nodes (it becomes the cluster's Executor).
	Cluster *cluster.Node
	// ClusterView describes the cluster for CLUSTER INFO/NODES (owners:
	// include the partition table); nil on a standalone node.
	ClusterView func(owners bool) cluster.View
	// MapConfig records a map setting ("max_ttl" seconds or "max_keys")
	// cluster-wide (SETMAXTTL, SETMAXKEYS); nil on a standalone node.
	MapConfig func(mapName, setting string, value int64) error
	// Queries runs JSON queries and owns the indexes (VALUESMATCH,
	// EVICTMATCH, INDEX, ...); it must be the store's observer. Nil: those
	// commands reply with an error.
	Queries *query.Manager
	// IndexConfig records that a map gains (add) or loses an index on a
	// path cluster-wide (INDEX ADD/DEL, automatic indexing); nil on a
	// standalone node (and then a cluster member broadcasts the change to
	// every primary instead).
	IndexConfig func(mapName, path string, add, auto bool) error
	// Persist connects maps to their backing stores (read-through,
	// write-back, SAVEKEY...); nil: no map has a store.
	Persist *persist.Manager
	// MapStore records a map's backing-store settings (persist.Settings
	// in String form) cluster-wide (STORECONFIG); nil on a standalone
	// node.
	MapStore func(mapName, spec string) error
	// PubSub is the node's pub/sub hub (SUBSCRIBE, PUBLISH...); nil: the
	// server makes one of its own (topics only: no store events reach it).
	PubSub *pubsub.Hub
}

// Server serves the Redis protocol.
type Server struct {
	opts Options
	st   *store.Store
	cl   *cluster.Node
	log  *slog.Logger
	cmds map[string]*command
	hub  *pubsub.Hub
	// internal are the commands only cluster nodes send (seq.go).
	internal map[string]*command
	start    time.Time
	nextID   atomic.Int64

	mu    sync.Mutex
	lns   []net.Listener
	conns map[*conn]struct{}
	quit  bool
	wg    sync.WaitGroup

	connected atomic.Int64
	total     atomic.Int64
	rejected  atomic.Int64
	netIn     atomic.Int64
	netOut    atomic.Int64
}

// New builds a server; call Serve to accept connections.
func New(o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("server: a store is required")
	}
	if o.MaxClients == 0 {
		o.MaxClients = 10000
	}
	if o.MaxClients < 1 {
		return nil, fmt.Errorf("server: max clients must be positive, got %d", o.MaxClients)
	}
	o.Limits = o.Limits.WithDefaults()
	if o.OutputFlush == 0 {
		o.OutputFlush = 64 << 10
	}
	if o.Clock == nil {
		o.Clock = func() int64 { return time.Now().UnixMilli() }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	s := &Server{opts: o, st: o.Store, cl: o.Cluster, log: o.Logger, start: time.Now(), conns: make(map[*conn]struct{})}
	s.hub = o.PubSub
	if s.hub == nil {
		s.hub = pubsub.New(pubsub.Options{})
	}
	s.cmds = commandTable()
	s.internal = internalCommands()
	s.wrapPersist()
	if s.cl != nil {
		s.cl.SetExecutor(s)
	}
	return s, nil
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.quit {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			quit := s.quit
			s.mu.Unlock()
			if quit {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				// Out of file descriptors or a transient error: back off
				// rather than spin, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("cannot accept RESP connections: %w", err)
		}
		delay = 0
		s.total.Add(1)
		if s.connected.Load() >= int64(s.opts.MaxClients) {
			s.rejected.Add(1)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("-ERR max number of clients reached\r\n"))
			nc.Close()
			continue
		}
		c := s.newConn(nc)
		s.mu.Lock()
		if s.quit {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.connected.Add(1)
		go s.handle(c)
	}
}

// Close stops accepting, closes every connection after its current
// command, and waits for their goroutines to end or ctx to expire.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.quit = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		// Unblock reads; a command in flight finishes and its reply is sent.
		c.nc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// Stats are the server's counters.
type Stats struct {
	ConnectedClients, TotalConnections, RejectedConnections int64
	NetInputBytes, NetOutputBytes                           int64
	Commands                                                map[string]CommandStats
}

// CommandStats count one command's calls.
type CommandStats struct{ Calls, Errors, Usec int64 }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{ConnectedClients: s.connected.Load(), TotalConnections: s.total.Load(),
		RejectedConnections: s.rejected.Load(), NetInputBytes: s.netIn.Load(), NetOutputBytes: s.netOut.Load(),
		Commands: make(map[string]CommandStats)}
	for name, c := range s.cmds {
		if n := c.calls.Load(); n > 0 {
			st.Commands[name] = CommandStats{Calls: n, Errors: c.errors.Load(), Usec: c.usec.Load()}
		}
	}
	return st
}

// conn is one client connection's state. info guards m, proto, name and
// lib, which CLIENT LIST on another connection reads: only the owning
// goroutine writes them, under info, and it reads them without it.
type conn struct {
	s      *Server
	nc     net.Conn
	rd     *resp.Reader
	id     int64
	out    []byte
	tmp    []byte // scratch for values read from the store
	m      *store.Map
	proto  int
	authed bool
	name   string
	lib    [2]string  // CLIENT SETINFO lib-name, lib-ver
	info   sync.Mutex // see above
	since  time.Time
	last   atomic.Int64 // Unix ms of the last command
	cmd    string       // last command name
	closed bool         // QUIT: reply, then close
	failed bool         // the current command replied with an error

	// Cluster state: ack is this connection's write acknowledgement
	// level (ACK command), readonly allows reads from replicas
	// (READONLY), forwarded marks a command another node sent (run here,
	// never routed again), parts restricts whole-keyspace commands to the
	// partitions this node answers for in a scatter (nil = all).
	ack       cluster.Ack
	readonly  bool
	forwarded bool
	parts     []int

	ps *connPubSub // pub/sub state once subscribed (pubsub.go)
}

// ctx is the context of the connection's current command.
func (c *conn) ctx() context.Context { return context.Background() }

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, id: s.nextID.Add(1), proto: 2, authed: s.opts.Password == "", since: time.Now(),
		m: s.st.Map("0"), out: make([]byte, 0, 4096)}
	c.rd = resp.NewReader(countingReader{nc, &s.netIn}, s.opts.Limits)
	if !c.authed {
		c.rd.SetLimits(unauthLimits)
	}
	return c
}

// unauthLimits hold a client that has not authenticated yet to commands
// of a few small arguments (AUTH, HELLO), as Redis does: without the
// password, nobody can make the node buffer a 512 MiB argument.
var unauthLimits = resp.Limits{MaxBulkLen: 16 << 10, MaxArgs: 10, MaxInlineLen: 16 << 10, MaxQueryBuf: 64 << 10}

// setAuthed records the result of authentication and the limits that go
// with it.
func (c *conn) setAuthed(ok bool) {
	c.authed = ok
	if ok {
		c.rd.SetLimits(c.s.opts.Limits)
	} else {
		c.rd.SetLimits(unauthLimits)
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (s *Server) handle(c *conn) {
	defer func() {
		if r := recover(); r != nil {
			// A bug in one command must not take the node down: log it
			// loudly and drop this connection only.
			s.log.Error("BUG: panic serving a RESP client; connection closed", "client", c.nc.RemoteAddr().String(), "panic", r)
		}
		c.nc.Close()
		c.closePubSub()
		s.connected.Add(-1)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	for {
		if s.opts.IdleTimeout > 0 && c.rd.Buffered() == 0 {
			c.nc.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		}
		args, err := c.rd.ReadCommand()
		if err != nil {
			var pe *resp.ProtocolError
			if errors.As(err, &pe) {
				c.out = resp.AppendError(c.out, "ERR "+pe.Msg)
				c.flush()
				s.log.Debug("closing RESP client after protocol error", "client", c.nc.RemoteAddr().String(), "err", pe.Msg)
			}
			c.flush()
			return
		}
		if s.cl != nil && c.rd.Buffered() > 0 {
			if _, _, ok := s.batchable(c, args); ok {
				s.runPipeline(c, args)
			} else {
				s.dispatch(c, args)
			}
		} else {
			s.dispatch(c, args)
		}
		if c.closed {
			c.flush()
			return
		}
		if c.rd.Buffered() == 0 || len(c.out) >= s.opts.OutputFlush {
			if !c.flush() {
				return
			}
		}
	}
}

func (c *conn) flush() bool {
	if c.ps != nil {
		// A subscriber's pusher writes to the socket too.
		c.ps.wmu.Lock()
		defer c.ps.wmu.Unlock()
	}
	return c.writeOut()
}

// writeOut writes the pending replies (flush without the pub/sub lock).
func (c *conn) writeOut() bool {
	if len(c.out) == 0 {
		return true
	}
	n, err := c.nc.Write(c.out)
	c.s.netOut.Add(int64(n))
	if cap(c.out) > 1<<20 {
		c.out = make([]byte, 0, 4096) // do not pin a big reply's buffer
	} else {
		c.out = c.out[:0]
	}
	return err == nil
}

// dispatch runs one command.
func (s *Server) dispatch(c *conn, args [][]byte) {
	name := args[0]
	var lower [32]byte
	if len(name) > len(lower) {
		c.errorf("ERR unknown command '%s', with args beginning with: %s", trunc(name), argsPreview(args[1:]))
		return
	}
	for i, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		lower[i] = b
	}
	cmd := s.cmds[string(lower[:len(name)])]
	if cmd == nil {
		c.errorf("ERR unknown command '%s', with args beginning with: %s", trunc(name), argsPreview(args[1:]))
		return
	}
	if !c.authed && !cmd.noAuth {
		c.err(errNoAuth)
		return
	}
	if (cmd.arity > 0 && len(args) != cmd.arity) || (cmd.arity < 0 && len(args) < -cmd.arity) {
		c.errorf("ERR wrong number of arguments for '%s' command", cmd.name)
		return
	}
	if c.ps != nil && c.subscribedGate(cmd, args) {
		return
	}
	c.failed = false
	c.cmd = cmd.name
	c.last.Store(s.now())
	// Reading the system clock twice would cost more than a GET, so the
	// per-command time (INFO commandstats, metrics) is sampled: one call
	// in 16 is timed and counts for 16.
	mark := len(c.out)
	if cmd.calls.Add(1)&15 == 0 {
		start := time.Now()
		if !s.clusterRun(c, cmd, args) {
			cmd.fn(c, args)
		}
		cmd.usec.Add(16 * int64(time.Since(start)/time.Microsecond))
	} else if !s.clusterRun(c, cmd, args) {
		cmd.fn(c, args)
	}
	if s.opts.Persist != nil && cmd.write {
		s.afterWrite(c, cmd, args, mark)
	}
	if c.failed {
		cmd.errors.Add(1)
	}
}

func trunc(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	return strings.ToValidUTF8(string(b), "?")
}

func argsPreview(args [][]byte) string {
	var sb strings.Builder
	for i, a := range args {
		if i == 8 {
			break
		}
		fmt.Fprintf(&sb, "'%s' ", trunc(a))
	}
	return sb.String()
}

func (s *Server) now() int64 { return s.opts.Clock() }

// checkPassword compares in constant time.
func (s *Server) checkPassword(pw []byte) bool {
	return subtle.ConstantTimeCompare(pw, []byte(s.opts.Password)) == 1
}

// Reply helpers.

func (c *conn) ok()                 { c.out = append(c.out, "+OK\r\n"...) }
func (c *conn) simple(s string)     { c.out = resp.AppendSimple(c.out, s) }
func (c *conn) int(n int64)         { c.out = resp.AppendInt(c.out, n) }
func (c *conn) bulk(b []byte)       { c.out = resp.AppendBulk(c.out, b) }
func (c *conn) bulkString(s string) { c.out = resp.AppendBulkString(c.out, s) }
func (c *conn) null()               { c.out = resp.AppendNull(c.out, c.proto) }
func (c *conn) array(n int)         { c.out = resp.AppendArrayHeader(c.out, n) }
func (c *conn) mapHeader(n int)     { c.out = resp.AppendMapHeader(c.out, n, c.proto) }
func (c *conn) err(msg string) {
	c.failed = true
	c.out = resp.AppendError(c.out, msg)
}
func (c *conn) errorf(format string, a ...any) { c.err(fmt.Sprintf(format, a...)) }
func (c *conn) storeErr(err error)             { c.err(replyError(err)) }
