package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// call is a Call waiting for its response. ch has room for exactly one
// result, and exactly one party sends it: whoever removes the call from
// its connection's pending map. So delivering never blocks, and a call that
// was received from can be reused.
type call struct{ ch chan result }

// result is a Call's outcome.
type result struct {
	payload []byte
	err     error
}

// conn is one authenticated connection. The protocol is symmetric (either
// side may send requests), but the transport only sends requests on
// connections it dialed, so a reader stalled by the in-flight bound never
// holds up responses someone is waiting for.
type conn struct {
	t *TCP
	// raw is the TCP connection, closed to break the link: closing a TLS
	// connection instead would try to send a close_notify alert, which
	// can block on a peer that stopped reading.
	raw net.Conn
	// nc is what frames travel on: raw, or TLS over raw.
	nc net.Conn
	// name is the address used in errors: the dialed address, or the
	// peer's advertised one for accepted connections.
	name string
	// peer is the peer's advertised address, the from of its requests.
	peer string
	// ctx is the parent of this connection's handler contexts; cancelled
	// when the connection fails.
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed, and dead set, when the connection fails.
	done chan struct{}
	dead atomic.Bool
	// sem holds a token per running handler (MaxInFlight).
	sem    chan struct{}
	nextID atomic.Uint64

	mu       sync.Mutex
	err      error                         // why the connection failed; guarded by mu
	pending  map[uint64]*call              // our requests awaiting responses
	inflight map[uint64]context.CancelFunc // the peer's requests being handled

	// The write side. Senders append whole frames to wbuf under wmu and
	// wake the writer, which swaps wbuf for spare and writes the batch in
	// one syscall: concurrent Calls coalesce into few writes, and the
	// buffers are reused, so queuing a frame does not allocate.
	wmu   sync.Mutex
	wbuf  []byte
	spare []byte
	wwait chan struct{} // closed when the writer takes a batch; nil if nobody waits
	wake  chan struct{} // a token means wbuf may be non-empty
}

func newConn(t *TCP, raw, nc net.Conn, name, peer string) *conn {
	ctx, cancel := context.WithCancel(t.ctx)
	return &conn{
		t:        t,
		raw:      raw,
		nc:       nc,
		name:     name,
		peer:     peer,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		sem:      make(chan struct{}, t.opts.MaxInFlight),
		pending:  map[uint64]*call{},
		inflight: map[uint64]context.CancelFunc{},
		wake:     make(chan struct{}, 1),
	}
}

// failure returns why the connection failed. Only valid once done is
// closed.
func (c *conn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail breaks the connection: pending calls fail at once with ErrClosed
// (cause is ErrClosed: this transport is closing) or ErrUnreachable
// (anything else), handlers are cancelled, and the socket is closed. Only
// the first call has an effect.
func (c *conn) fail(cause error) {
	var err error
	if errors.Is(cause, ErrClosed) {
		err = fmt.Errorf("call to %s: %w", c.name, ErrClosed)
	} else {
		err = fmt.Errorf("connection to %s broke: %w: %v", c.name, ErrUnreachable, cause)
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.dead.Store(true)
	close(c.done)
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()

	c.cancel()
	c.raw.Close()
	for _, cl := range pending {
		cl.ch <- result{err: err}
	}
	c.wmu.Lock()
	c.wbuf, c.spare = nil, nil
	c.wmu.Unlock()
	c.t.forgetConn(c)
	if !errors.Is(cause, ErrClosed) {
		c.t.log.Debug("node transport: connection broke", "peer", c.name, "err", cause, "failed_calls", len(pending))
	}
}

// register adds a pending call under id.
func (c *conn) register(id uint64, cl *call) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.pending[id] = cl
	return nil
}

// forget removes the pending call id and reports whether it was still
// there; if not, its result is being delivered.
func (c *conn) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; !ok {
		return false
	}
	delete(c.pending, id)
	return true
}

// complete delivers r to the pending call id, if it is still waiting.
func (c *conn) complete(id uint64, r result) {
	c.mu.Lock()
	cl, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	if ok {
		cl.ch <- r
	}
}

// enqueue queues a frame of h with payload for the writer. With wait set,
// it waits while writeHighWater bytes are queued, bounded by ctx; without
// it (tiny control frames, sent when ctx has already expired) it queues at
// once.
func (c *conn) enqueue(ctx context.Context, wait bool, h header, payload []byte) error {
	c.wmu.Lock()
	for wait && len(c.wbuf) >= writeHighWater {
		if c.wwait == nil {
			c.wwait = make(chan struct{})
		}
		w := c.wwait
		c.wmu.Unlock()
		select {
		case <-w:
		case <-c.done:
			return c.failure()
		case <-ctx.Done():
			return fmt.Errorf("call to %s: %w", c.name, ctx.Err())
		}
		c.wmu.Lock()
	}
	if c.dead.Load() {
		c.wmu.Unlock()
		return c.failure()
	}
	c.wbuf = appendFrame(c.wbuf, h.typ, h.kind, h.id, payload)
	c.wmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// writeLoop writes queued frames in batches until the connection fails.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		// Let the goroutines that are about to queue frames (other
		// callers, handlers finishing) run first, so one write carries
		// them all: under load this halves the syscalls per call.
		runtime.Gosched()
		for {
			c.wmu.Lock()
			if len(c.wbuf) == 0 {
				c.wmu.Unlock()
				break
			}
			buf := c.wbuf
			c.wbuf, c.spare = c.spare[:0], nil
			if c.wwait != nil {
				close(c.wwait)
				c.wwait = nil
			}
			c.wmu.Unlock()
			c.nc.SetWriteDeadline(time.Now().Add(c.t.opts.WriteTimeout))
			if _, err := c.nc.Write(buf); err != nil {
				c.fail(fmt.Errorf("cannot write: %w", err))
				return
			}
			if cap(buf) > maxRetainedBuffer {
				buf = nil
			}
			c.wmu.Lock()
			if !c.dead.Load() {
				c.spare = buf[:0]
			}
			c.wmu.Unlock()
		}
	}
}

// readLoop reads frames until the connection fails, delivering responses
// to their calls and requests to handlers.
func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, readBufferSize)
	scratch := new([headerLen]byte)
	for {
		f, err := readFrame(br, scratch, c.t.opts.MaxFrame)
		if err != nil {
			var big *tooLargeError
			if errors.As(err, &big) {
				c.refuse(big)
				continue
			}
			c.fail(err)
			return
		}
		switch f.typ {
		case typeRequest, typeOneway:
			if !c.serve(f) {
				return
			}
		case typeResponse:
			c.complete(f.id, result{payload: f.payload})
		case typeError:
			c.complete(f.id, result{err: decodeError(c.name, f.payload)})
		case typeCancel:
			c.mu.Lock()
			cancel := c.inflight[f.id]
			c.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	}
}

// refuse answers a frame whose payload was over MaxFrame (and skipped).
func (c *conn) refuse(big *tooLargeError) {
	switch big.typ {
	case typeRequest:
		msg := fmt.Sprintf("request of %d bytes exceeds the receiver's %d-byte frame limit", big.size, big.limit)
		c.enqueue(context.Background(), false, header{typ: typeError, kind: big.kind, id: big.id}, append([]byte{errCodeTooLarge}, msg...))
	case typeOneway:
		c.t.log.Warn("node transport: dropped a one-way message over the frame limit", "peer", c.name, "kind", big.kind, "size", big.size, "limit", big.limit)
	case typeResponse, typeError:
		c.complete(big.id, result{err: fmt.Errorf("call to %s: response of %d bytes exceeds the %d-byte frame limit: %w", c.name, big.size, big.limit, ErrTooLarge)})
	}
}

// serve starts a handler for request f, first waiting for an in-flight
// slot: while all are taken the reader stops, and TCP flow control pushes
// back on the peer. It returns false if the connection failed meanwhile.
func (c *conn) serve(f frame) bool {
	select {
	case c.sem <- struct{}{}:
	case <-c.done:
		return false
	}
	ctx, cancel := c.ctx, context.CancelFunc(nil)
	if f.typ == typeRequest {
		ctx, cancel = context.WithCancel(c.ctx)
		c.mu.Lock()
		c.inflight[f.id] = cancel
		c.mu.Unlock()
	}
	c.t.dispatch(task{c: c, ctx: ctx, cancel: cancel, f: f})
	return true
}

// task is one request for a worker.
type task struct {
	c      *conn
	ctx    context.Context
	cancel context.CancelFunc
	f      frame
}

// dispatch runs tk on an idle worker, or on a new one. Reusing workers is
// worth it: a fresh goroutine per request spends a fifth of a round trip's
// CPU growing its stack to what handling needs. The connection's
// in-flight bound still limits how many run at once.
func (t *TCP) dispatch(tk task) {
	select {
	case t.work <- tk:
		return
	default:
	}
	// Called from a reader, which is itself counted by wg, so adding
	// here cannot race with Close's Wait.
	t.wg.Go(func() { t.worker(tk) })
}

// worker runs tk, then waits for more work while fewer than maxIdleWorkers
// are idle, until the transport closes.
func (t *TCP) worker(tk task) {
	for {
		tk.c.handle(tk.ctx, tk.cancel, tk.f)
		tk = task{}
		if t.idle.Add(1) > maxIdleWorkers {
			t.idle.Add(-1)
			return
		}
		select {
		case tk = <-t.work:
			t.idle.Add(-1)
		case <-t.ctx.Done():
			t.idle.Add(-1)
			return
		}
	}
}

// handle runs one request and queues its response.
func (c *conn) handle(ctx context.Context, cancel context.CancelFunc, f frame) {
	defer func() { <-c.sem }()
	resp, err := c.t.invoke(ctx, c.peer, f.kind, f.payload)
	if f.typ == typeOneway {
		if err != nil {
			c.t.log.Debug("node transport: one-way handler failed", "from", c.peer, "kind", f.kind, "err", err)
		}
		return
	}
	c.mu.Lock()
	delete(c.inflight, f.id)
	c.mu.Unlock()
	// Cancelled means the caller gave up or the connection broke: nobody
	// is waiting for the answer.
	gone := ctx.Err() != nil
	cancel()
	if gone {
		return
	}
	h := header{typ: typeResponse, kind: f.kind, id: f.id}
	switch {
	case err != nil:
		h.typ = typeError
		msg := err.Error()
		if len(msg) > maxErrorMsg {
			msg = msg[:maxErrorMsg]
		}
		resp = append([]byte{errCodeHandler}, msg...)
	case len(resp) > c.t.opts.MaxFrame:
		h.typ = typeError
		resp = append([]byte{errCodeTooLarge}, fmt.Sprintf("response of %d bytes exceeds the responder's %d-byte frame limit", len(resp), c.t.opts.MaxFrame)...)
	}
	c.enqueue(context.Background(), true, h, resp)
}
