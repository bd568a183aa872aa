package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/netutil"
)

// Tuning that is not worth an option.
const (
	// maxHandshakes bounds inbound connections that have not yet proved
	// the secret, so strangers cannot make the node hold unbounded
	// goroutines; beyond it the accept loop waits.
	maxHandshakes = 256
	// minBackoff and maxBackoff bound the pause after a failed dial, during
	// which calls to that peer fail at once instead of hammering a dead
	// node; short, because a restarted node should be back in use quickly.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
	// maxIdleWorkers bounds the handler goroutines kept waiting for work
	// between bursts, across all connections.
	maxIdleWorkers = 256
	// readBufferSize is the reader's buffer: many small frames per read
	// syscall.
	readBufferSize = 64 << 10
	// writeHighWater is how many queued bytes make senders wait for the
	// writer, so a peer that reads slowly bounds the memory we queue for it.
	writeHighWater = 4 << 20
	// maxRetainedBuffer is the largest write buffer kept for reuse after
	// a batch; one large frame must not pin its size for the connection's
	// life.
	maxRetainedBuffer = 1 << 20
)

// keepAlive detects a peer whose host vanished on an idle connection in
// about 30s (Go's default takes minutes), so the pool redials instead of
// sending into a dead connection.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// TCP is the Transport between nodes over TCP (optionally TLS): a few
// long-lived, authenticated connections per peer, each carrying many
// requests at once, matched to their responses by request id.
type TCP struct {
	opts TCPOptions
	log  *slog.Logger
	ln   net.Listener
	addr string

	// ctx is cancelled by Close; it bounds dials and is the parent of
	// every handler's context.
	ctx    context.Context
	cancel context.CancelFunc
	// handshakes holds a token per inbound handshake in progress.
	handshakes chan struct{}
	// work hands requests to idle workers; idle counts them.
	work chan task
	idle atomic.Int32
	// calls recycles pending-call records, one per Call.
	calls sync.Pool
	// peers maps a dialed address to its *peer; read on every Call, so it
	// is a sync.Map rather than a map under mu.
	peers sync.Map
	// closing is set at the start of Close, for the lock-free fast path.
	closing atomic.Bool

	mu     sync.Mutex
	closed bool               // guarded by mu; no goroutine starts after it is set
	conns  map[*conn]struct{} // every live connection, dialed or accepted
	wg     sync.WaitGroup     // every goroutine the transport starts
}

var _ Transport = (*TCP)(nil)

// NewTCP starts listening and serving peers. Callers must Close it.
func NewTCP(opts TCPOptions) (*TCP, error) {
	opts = opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("cannot start the node transport: %w", err)
	}
	// The caller may reuse its slice; the secret must not change under us.
	opts.Secret = append([]byte(nil), opts.Secret...)
	lc := net.ListenConfig{KeepAliveConfig: keepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", opts.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("cannot start the node transport: %w", err)
	}
	addr := opts.AdvertiseAddr
	if addr == "" {
		addr = ln.Addr().String()
	}
	if len(addr) > maxAddrLen {
		ln.Close()
		return nil, fmt.Errorf("cannot start the node transport: address %q is longer than %d bytes", addr, maxAddrLen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TCP{
		opts:       opts,
		log:        opts.Logger,
		ln:         ln,
		addr:       addr,
		ctx:        ctx,
		cancel:     cancel,
		handshakes: make(chan struct{}, maxHandshakes),
		work:       make(chan task),
		conns:      map[*conn]struct{}{},
	}
	t.calls.New = func() any { return &call{ch: make(chan result, 1)} }
	t.wg.Go(t.acceptLoop)
	return t, nil
}

// Addr returns the address peers dial to reach this node.
func (t *TCP) Addr() string { return t.addr }

// Close stops listening, fails pending Calls with ErrClosed, closes every
// connection, cancels running handlers and waits for them and for every
// goroutine of the transport. A handler that ignores its context delays
// Close until it returns, so a handler must not call Close itself.
func (t *TCP) Close() error {
	t.closing.Store(true)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	conns := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	for _, c := range conns {
		c.fail(ErrClosed)
	}
	t.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("cannot close the node transport: %w", err)
	}
	return nil
}

// goUnlessClosed runs f in a goroutine counted by wg, unless the transport
// is closed. Adding to wg under mu, after checking closed, is what makes
// Close's Wait safe against goroutines started concurrently with it.
func (t *TCP) goUnlessClosed(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Go(f)
	return true
}

// Call implements Transport.
func (t *TCP) Call(ctx context.Context, addr string, kind uint8, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cannot call %s: %w", addr, err)
	}
	if len(req) > t.opts.MaxFrame {
		return nil, fmt.Errorf("cannot call %s: request of %d bytes exceeds the %d-byte frame limit: %w", addr, len(req), t.opts.MaxFrame, ErrTooLarge)
	}
	c, err := t.conn(ctx, addr)
	if err != nil {
		return nil, notSent(err)
	}
	cl := t.calls.Get().(*call)
	id := c.nextID.Add(1)
	if err := c.register(id, cl); err != nil {
		t.calls.Put(cl)
		return nil, notSent(err)
	}
	if err := c.enqueue(ctx, true, header{typ: typeRequest, kind: kind, id: id}, req); err != nil {
		if c.forget(id) {
			t.calls.Put(cl)
			return nil, err
		}
		// The connection failed and is delivering its error to cl.
		return t.finish(cl)
	}
	select {
	case r := <-cl.ch:
		t.calls.Put(cl)
		return r.payload, r.err
	case <-ctx.Done():
		if c.forget(id) {
			// The handler may still be running: let it stop early.
			c.enqueue(context.Background(), false, header{typ: typeCancel, id: id}, nil)
			t.calls.Put(cl)
			return nil, fmt.Errorf("call to %s: %w", addr, ctx.Err())
		}
		// The response won the race; it is (about to be) in cl.ch.
		return t.finish(cl)
	}
}

// finish waits for the result that is being delivered to cl and recycles
// it. Only used once cl has left its connection's pending map, when exactly
// one result is guaranteed to arrive.
func (t *TCP) finish(cl *call) ([]byte, error) {
	r := <-cl.ch
	t.calls.Put(cl)
	return r.payload, r.err
}

// Send implements Transport.
func (t *TCP) Send(ctx context.Context, addr string, kind uint8, req []byte) error {
	if len(req) > t.opts.MaxFrame {
		return fmt.Errorf("cannot send to %s: message of %d bytes exceeds the %d-byte frame limit: %w", addr, len(req), t.opts.MaxFrame, ErrTooLarge)
	}
	c, err := t.conn(ctx, addr)
	if err != nil {
		return err
	}
	return c.enqueue(ctx, true, header{typ: typeOneway, kind: kind}, req)
}

// conn returns a live connection to addr, dialing if needed.
func (t *TCP) conn(ctx context.Context, addr string) (*conn, error) {
	if t.closing.Load() {
		return nil, fmt.Errorf("cannot call %s: %w", addr, ErrClosed)
	}
	p, ok := t.peers.Load(addr)
	if !ok {
		p, _ = t.peers.LoadOrStore(addr, newPeer(t, addr))
	}
	return p.(*peer).get(ctx)
}

// peer is the pool of connections to one address. Entries are never
// removed: a peer that left costs this small struct and its dead slots.
type peer struct {
	t    *TCP
	addr string
	// next spreads calls over the slots, round robin.
	next  atomic.Uint32
	slots []atomic.Pointer[conn]

	mu      sync.Mutex
	dialing []chan struct{} // per slot: closed when its dial ends; nil if none
	retryAt time.Time       // no dial before this, after a failure
	backoff time.Duration   // the last pause; doubles on each failure
	lastErr error           // why the last dial failed
}

func newPeer(t *TCP, addr string) *peer {
	return &peer{
		t:       t,
		addr:    addr,
		slots:   make([]atomic.Pointer[conn], t.opts.ConnsPerPeer),
		dialing: make([]chan struct{}, t.opts.ConnsPerPeer),
	}
}

// get returns a live connection. The fast path takes no lock.
func (p *peer) get(ctx context.Context) (*conn, error) {
	i := int(p.next.Add(1) % uint32(len(p.slots)))
	if c := p.slots[i].Load(); c != nil && !c.dead.Load() {
		return c, nil
	}
	for waited := false; ; waited = true {
		p.mu.Lock()
		// Any live connection serves while slot i is (re)dialed.
		if c := p.live(i); c != nil {
			p.mu.Unlock()
			return c, nil
		}
		if p.dialing[i] == nil {
			if waited && p.lastErr != nil {
				// The dial this call waited for failed.
				err := p.lastErr
				p.mu.Unlock()
				return nil, err
			}
			if wait := time.Until(p.retryAt); wait > 0 {
				err := p.lastErr
				p.mu.Unlock()
				return nil, fmt.Errorf("%w (next attempt in %v)", err, wait.Round(time.Millisecond))
			}
			ch := make(chan struct{})
			// The dial is not tied to this caller's context: a caller
			// with a short deadline must not waste the connection for the
			// callers behind it.
			if !p.t.goUnlessClosed(func() { p.dial(i, ch) }) {
				p.mu.Unlock()
				return nil, fmt.Errorf("cannot call %s: %w", p.addr, ErrClosed)
			}
			p.dialing[i] = ch
		}
		ch := p.dialing[i]
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot call %s: %w", p.addr, ctx.Err())
		}
	}
}

// live returns a live connection, slot i's if it has one. The caller holds
// p.mu.
func (p *peer) live(i int) *conn {
	if c := p.slots[i].Load(); c != nil && !c.dead.Load() {
		return c
	}
	for j := range p.slots {
		if c := p.slots[j].Load(); c != nil && !c.dead.Load() {
			return c
		}
	}
	return nil
}

// dial connects slot i and records the outcome; ch is closed when done.
func (p *peer) dial(i int, ch chan struct{}) {
	c, err := p.t.dial(p.addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing[i] = nil
	close(ch)
	if err != nil {
		p.lastErr = err
		p.backoff = min(max(2*p.backoff, minBackoff), maxBackoff)
		p.retryAt = time.Now().Add(p.backoff)
		return
	}
	p.backoff, p.retryAt, p.lastErr = 0, time.Time{}, nil
	p.slots[i].Store(c)
}

// dial connects to addr and authenticates both ways.
func (t *TCP) dial(addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAliveConfig: keepAlive}
	if la := netutil.LocalAddr(t.ln.Addr().String(), addr); la != nil {
		d.LocalAddr = la // from the address peers know this node by
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if t.ctx.Err() != nil {
			return nil, fmt.Errorf("cannot connect to %s: %w", addr, ErrClosed)
		}
		return nil, fmt.Errorf("cannot connect to %s: %w: %v", addr, ErrUnreachable, err)
	}
	nc, peerAddr, err := t.secure(ctx, raw, addr)
	if err != nil {
		raw.Close()
		switch {
		case t.ctx.Err() != nil:
			return nil, fmt.Errorf("cannot connect to %s: %w", addr, ErrClosed)
		case errors.Is(err, ErrAuth) || errors.Is(err, ErrUnreachable):
			return nil, fmt.Errorf("cannot connect to %s: %w", addr, err)
		default:
			return nil, fmt.Errorf("cannot connect to %s: %w: handshake: %v", addr, ErrUnreachable, err)
		}
	}
	return t.startConn(raw, nc, addr, peerAddr)
}

// acceptLoop accepts connections until the listener closes.
func (t *TCP) acceptLoop() {
	var delay time.Duration
	for {
		raw, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: pause rather than spin, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("node transport: accept failed; retrying", "err", err, "retry_in", delay)
			timer := time.NewTimer(delay)
			select {
			case <-timer.C:
			case <-t.ctx.Done():
				timer.Stop()
				return
			}
			continue
		}
		delay = 0
		select {
		case t.handshakes <- struct{}{}:
		case <-t.ctx.Done():
			raw.Close()
			return
		}
		if !t.goUnlessClosed(func() { t.accept(raw) }) {
			raw.Close()
			return
		}
	}
}

// accept authenticates an inbound connection and starts serving it.
func (t *TCP) accept(raw net.Conn) {
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.DialTimeout)
	nc, peerAddr, err := t.secure(ctx, raw, "")
	cancel()
	<-t.handshakes
	if err != nil {
		raw.Close()
		if errors.Is(err, ErrAuth) {
			t.log.Warn("node transport: refused a connection", "remote", raw.RemoteAddr().String(), "err", err)
		} else {
			t.log.Debug("node transport: inbound handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		}
		return
	}
	t.startConn(raw, nc, peerAddr, peerAddr)
}

// secure runs TLS (if configured) and the secret handshake on raw, bounded
// by ctx. dialed is the address dialed, or "" on the accepting side. It
// returns the connection to use (raw, or TLS over raw) and the peer's
// advertised address.
func (t *TCP) secure(ctx context.Context, raw net.Conn, dialed string) (net.Conn, string, error) {
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	// Cancellation (Close) interrupts blocked reads and writes too.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	var nc net.Conn = raw
	if t.opts.TLS != nil {
		var tc *tls.Conn
		if dialed != "" {
			tc = tls.Client(raw, t.clientTLS(dialed))
		} else {
			tc = tls.Server(raw, t.opts.TLS)
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			return nil, "", tlsError(err)
		}
		nc = tc
	}
	var peerAddr string
	var err error
	if dialed != "" {
		peerAddr, err = handshakeDial(nc, t.opts.Secret, t.addr)
	} else {
		peerAddr, err = handshakeAccept(nc, t.opts.Secret, t.addr)
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, "", err
	}
	raw.SetDeadline(time.Time{})
	return nc, peerAddr, nil
}

// clientTLS returns the TLS config for dialing addr: ServerName defaults
// to the dialed host, so certificates are checked against it.
func (t *TCP) clientTLS(addr string) *tls.Config {
	if t.opts.TLS.ServerName != "" {
		return t.opts.TLS
	}
	cfg := t.opts.TLS.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		cfg.ServerName = host
	}
	return cfg
}

// tlsError classifies a TLS handshake failure: an untrusted certificate, a
// peer that refused ours, or a peer not speaking TLS is a configuration
// error (ErrAuth); anything else is the network (ErrUnreachable).
func tlsError(err error) error {
	var verify *tls.CertificateVerificationError
	var header tls.RecordHeaderError
	var op *net.OpError
	if errors.As(err, &verify) || errors.As(err, &header) || (errors.As(err, &op) && op.Op == "remote error") {
		return fmt.Errorf("TLS handshake failed: %v (%w)", err, ErrAuth)
	}
	return fmt.Errorf("TLS handshake failed: %w: %v", ErrUnreachable, err)
}

// startConn registers an authenticated connection and starts its reader
// and writer.
func (t *TCP) startConn(raw, nc net.Conn, name, peerAddr string) (*conn, error) {
	c := newConn(t, raw, nc, name, peerAddr)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		raw.Close()
		c.cancel()
		return nil, fmt.Errorf("cannot connect to %s: %w", name, ErrClosed)
	}
	t.conns[c] = struct{}{}
	t.wg.Go(c.readLoop)
	t.wg.Go(c.writeLoop)
	return c, nil
}

// forgetConn drops a failed connection from the registry.
func (t *TCP) forgetConn(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// invoke runs the handler. A panic is a bug in the handler; like the RESP
// server, the transport logs it loudly and fails only this request rather
// than take the node (and its replicas' data) down.
func (t *TCP) invoke(ctx context.Context, from string, kind uint8, req []byte) (resp []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			t.log.Error("BUG: panic in a node transport handler", "from", from, "kind", kind, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return t.opts.Handler(ctx, from, kind, req)
}
