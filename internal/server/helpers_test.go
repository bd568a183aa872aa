package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/persist"
	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/store"
)

// ioTimeout bounds every network read and write of a test client, so a
// server that stops answering fails the test instead of hanging it. It is
// a safety net, not a timing assertion: nothing healthy comes close.
const ioTimeout = 20 * time.Second

// startMs is the fake clock's starting time (2023-11-14T22:13:20Z). Tests
// that depend on time advance it explicitly instead of sleeping.
const startMs = 1_700_000_000_000

// fakeClock is a settable Unix-millisecond clock shared by the store and
// the server, so expiry is driven by the test and never by the wall clock.
type fakeClock struct{ ms atomic.Int64 }

func (f *fakeClock) now() int64           { return f.ms.Load() }
func (f *fakeClock) advance(d int64)      { f.ms.Add(d) }
func newFakeClock(start int64) *fakeClock { f := &fakeClock{}; f.ms.Store(start); return f }

// testServer is a Server listening on 127.0.0.1 port 0.
type testServer struct {
	srv   *Server
	st    *store.Store
	clock *fakeClock
	addr  string
}

// serverConfig lets a test adjust the options before the server starts.
type serverConfig struct {
	opts      Options
	storeOpts store.Options
	realClock bool // use the wall clock (for tests against real time or Redis)
	// wrap, if set, wraps the listener (to observe the server's side of
	// each connection).
	wrap func(net.Listener) net.Listener
	// listener, if set, is served instead of a TCP listener.
	listener net.Listener
}

func startServer(t testing.TB, configure ...func(*serverConfig)) *testServer {
	t.Helper()
	clock := newFakeClock(startMs)
	cfg := serverConfig{storeOpts: store.Options{Partitions: 31}}
	for _, f := range configure {
		f(&cfg)
	}
	if !cfg.realClock {
		cfg.storeOpts.Clock = clock.now
		cfg.opts.Clock = clock.now
	}
	// Every test server can give maps a backing store: STORECONFIG with
	// store=mem://NAME gives one an in-memory store of its own.
	pobs := &persistProxy{}
	cfg.storeOpts.Observer = store.Observers(cfg.storeOpts.Observer, pobs)
	st, err := store.New(cfg.storeOpts)
	if err != nil {
		t.Fatalf("store.New: %v", err)
	}
	cfg.opts.Store = st
	if cfg.opts.Persist == nil {
		pm, err := persist.New(persist.Options{Store: st,
			Open: func(string) (backing.Store, error) { return backing.NewMem(), nil }})
		if err != nil {
			t.Fatal(err)
		}
		pobs.m = pm
		cfg.opts.Persist = pm
	}
	srv, err := New(cfg.opts)
	if err != nil {
		st.Close()
		t.Fatalf("server.New: %v", err)
	}
	ln := cfg.listener
	if ln == nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			st.Close()
			t.Fatalf("listen: %v", err)
		}
	}
	addr := ln.Addr().String()
	if cfg.wrap != nil {
		ln = cfg.wrap(ln)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("server Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after Close, want nil", err)
		}
		st.Close()
	})
	return &testServer{srv: srv, st: st, clock: clock, addr: addr}
}

// persistProxy hands store events to the persist manager created after
// the store.
type persistProxy struct{ m *persist.Manager }

func (p *persistProxy) OnEvent(ev *store.Event) {
	if p.m != nil {
		p.m.OnEvent(ev)
	}
}

// client is a raw RESP client: it writes commands as multibulk (or raw
// bytes) and decodes replies with resp.ReadValue.
type client struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func (ts *testServer) dial(t testing.TB) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ts.addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", ts.addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// encode renders args as a RESP multibulk command.
func encode(args ...string) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

func (c *client) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next reply; it fails the test on EOF or a decode error.
func (c *client) read() resp.Value {
	c.t.Helper()
	v, err := c.tryRead()
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return v
}

func (c *client) tryRead() (resp.Value, error) {
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	return resp.ReadValue(c.br, 0)
}

// do sends one command and returns its reply.
func (c *client) do(args ...string) resp.Value {
	c.t.Helper()
	c.write(encode(args...))
	return c.read()
}

// doS is do rendered with render.
func (c *client) doS(args ...string) string {
	c.t.Helper()
	return render(c.do(args...))
}

// must runs a command and fails the test unless its rendered reply is want.
func (c *client) must(want string, args ...string) {
	c.t.Helper()
	if got := c.doS(args...); got != want {
		c.t.Fatalf("%s: got %s, want %s", strings.Join(quoteAll(args), " "), got, want)
	}
}

// expectClosed reads until the server closes the connection and fails the
// test if any reply other than the ones allowed arrives.
func (c *client) expectClosed() {
	c.t.Helper()
	for {
		v, err := c.tryRead()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("connection still open after %v", ioTimeout)
			}
			return
		}
		c.t.Fatalf("unexpected reply %s while waiting for the connection to close", render(v))
	}
}

// render turns a reply into a compact, unambiguous string for comparisons:
//
//	+OK  -ERR msg  :1  "bulk"  (nil) (RESP2 null bulk)  (nil-array)
//	_ (RESP3 null)  ,1.5  #t  [a b] (array)  %[k v] (map)  ~[a] (set)
//	=txt:... (verbatim)
func render(v resp.Value) string {
	switch v.Kind {
	case '+':
		return "+" + string(v.Str)
	case '-':
		return "-" + string(v.Str)
	case ':':
		return ":" + strconv.FormatInt(v.Int, 10)
	case '$':
		if v.Null {
			return "(nil)"
		}
		return strconv.Quote(string(v.Str))
	case '_':
		return "_"
	case ',':
		return "," + strconv.FormatFloat(v.Float, 'g', -1, 64)
	case '#':
		if v.Bool {
			return "#t"
		}
		return "#f"
	case '=':
		return "=" + string(v.Str)
	case '*', '%', '~', '>':
		if v.Null {
			return "(nil-array)"
		}
		parts := make([]string, len(v.Elems))
		for i, e := range v.Elems {
			parts[i] = render(e)
		}
		prefix := ""
		if v.Kind != '*' {
			prefix = string(v.Kind)
		}
		return prefix + "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("?%q", v.Kind)
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strconv.Quote(a)
	}
	return out
}

// splitArgs splits a step's command line on spaces; an argument written as
// a Go double-quoted string may contain spaces, escapes and binary bytes.
func splitArgs(t testing.TB, line string) []string {
	t.Helper()
	var args []string
	for i := 0; i < len(line); {
		switch {
		case line[i] == ' ':
			i++
		case line[i] == '"':
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' {
					j++
				}
			}
			s, err := strconv.Unquote(line[i : j+1])
			if err != nil {
				t.Fatalf("bad quoted argument in %q: %v", line, err)
			}
			args = append(args, s)
			i = j + 1
		default:
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			args = append(args, line[i:i+j])
			i += j
		}
	}
	return args
}

// step is one command of a scripted case and the reply it must get.
//
// want is a rendering (see render) compared exactly, or, if it starts with
// "~", a regular expression the rendering must match in full. A "sorted:"
// prefix sorts the reply's elements first, for replies in hash order. A cmd of
// "@advance MS" moves the fake clock forward instead of sending anything.
type step struct{ cmd, want string }

// runSteps plays steps on one connection. advance moves the clock for
// "@advance" steps; nil means the case cannot run there (real Redis).
func runSteps(t *testing.T, c *client, advance func(ms int64), steps []step) {
	t.Helper()
	for i, s := range steps {
		args := splitArgs(t, s.cmd)
		if args[0] == "@advance" {
			ms, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || advance == nil {
				t.Fatalf("step %d: bad @advance", i)
			}
			advance(ms)
			continue
		}
		v, want := c.do(args...), s.want
		if w, ok := strings.CutPrefix(want, "sorted:"); ok {
			want = w
			slices.SortFunc(v.Elems, func(a, b resp.Value) int { return strings.Compare(render(a), render(b)) })
		}
		got := render(v)
		if !matches(got, want) {
			t.Errorf("step %d: %s\n got  %s\n want %s", i, s.cmd, got, s.want)
		}
	}
}

func matches(got, want string) bool {
	if strings.HasPrefix(want, "~") {
		return regexp.MustCompile("^(?:" + want[1:] + ")$").MatchString(got)
	}
	return got == want
}

// redisServer is a real redis-server started for a test, reachable over a
// unix socket: redis-server cannot listen on TCP port 0, and a socket in a
// private directory needs no port at all.
type redisServer struct {
	sock string
}

// startRedis starts redis-server, or skips the test when it is not
// installed (scripts/install-test-deps.sh installs it; CI always has it).
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed; run scripts/install-test-deps.sh to compare Engram with real Redis")
	}
	// A short directory: unix socket paths are limited to ~100 bytes and
	// t.TempDir's include the test name.
	dir, err := os.MkdirTemp("", "rds")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	args := append([]string{"--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	// Poll until the socket accepts connections (never sleep and hope).
	deadline := time.Now().Add(ioTimeout)
	for {
		nc, err := net.Dial("unix", sock)
		if err == nil {
			nc.Close()
			return &redisServer{sock: sock}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server exited before accepting connections: %v\n%s", err, log)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not accept connections on %s within %v", sock, ioTimeout)
		}
	}
}

func (r *redisServer) dial(t testing.TB) *client {
	t.Helper()
	nc, err := net.DialTimeout("unix", r.sock, ioTimeout)
	if err != nil {
		t.Fatalf("dial redis-server: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// waitFor polls cond until it holds, failing the test at ioTimeout. It is
// how tests wait for something another goroutine does: never a fixed sleep.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", ioTimeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// pipeListener is a net.Listener over in-memory net.Pipe connections.
// A net.Pipe has no buffer: a write blocks until the other side reads it,
// which makes back-pressure deterministic, and no port is involved.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	// wrap, if set, wraps the server's end of each connection.
	wrap func(net.Conn) net.Conn
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial hands the server one end of a new pipe and returns the other.
func (l *pipeListener) dial(t testing.TB) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	if l.wrap != nil {
		server = l.wrap(server)
	}
	select {
	case l.conns <- server:
	case <-l.closed:
		t.Fatal("dial on a closed pipeListener")
	case <-time.After(ioTimeout):
		t.Fatal("the server did not accept a pipe connection")
	}
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// writeHooks counts the writes a connection starts and finishes, so a test
// can see a write that is blocked.
type writeHooks struct {
	started, done atomic.Int64
	read          atomic.Int64 // bytes read
}

type hookedConn struct {
	net.Conn
	h *writeHooks
}

func (c hookedConn) Write(p []byte) (int, error) {
	c.h.started.Add(1)
	defer c.h.done.Add(1)
	return c.Conn.Write(p)
}

func (c hookedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.h.read.Add(int64(n))
	return n, err
}
