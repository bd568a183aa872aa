package memnet

import (
	"context"
	"fmt"
	"sync"

	"github.com/engramdb/engram/internal/transport"
)

// node is one attached node: its Transport.
type node struct {
	w    *Network
	addr string
	h    transport.Handler
	// ctx is the parent of the node's handler contexts; cancelled when it
	// is killed or closed.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts running handlers; Add happens under w.mu while the node is
	// alive, so Close's Wait never races with it.
	wg sync.WaitGroup

	// Guarded by w.mu.
	dead   bool // killed or closed: off the network
	closed bool // Close was called
}

// pending is a Call awaiting its response.
type pending struct {
	from, to       string
	caller, callee *node
	// ch receives the one result; complete sends it under w.mu.
	ch chan result
	// Guarded by w.mu.
	done   bool               // a result was sent, or the caller gave up
	cancel context.CancelFunc // cancels the running handler; nil until it starts
}

// result is a Call's outcome.
type result struct {
	payload []byte
	err     error
}

var _ transport.Transport = (*node)(nil)

// Addr implements transport.Transport.
func (n *node) Addr() string { return n.addr }

// Call implements transport.Transport.
func (n *node) Call(ctx context.Context, addr string, kind uint8, req []byte) ([]byte, error) {
	w := n.w
	w.mu.Lock()
	if n.dead {
		w.mu.Unlock()
		return nil, fmt.Errorf("call from %s: %w: %w", n.addr, transport.ErrNotSent, transport.ErrClosed)
	}
	if len(req) > w.maxFrame {
		limit := w.maxFrame
		w.mu.Unlock()
		return nil, fmt.Errorf("cannot call %s: request of %d bytes exceeds the %d-byte frame limit: %w", addr, len(req), limit, transport.ErrTooLarge)
	}
	callee, err := w.route(n.addr, addr)
	if err != nil {
		w.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", transport.ErrNotSent, err)
	}
	p := &pending{from: n.addr, to: addr, caller: n, callee: callee, ch: make(chan result, 1)}
	w.inflight[p] = true
	drop, delay := w.fate(n.addr, addr)
	filter := w.filter
	w.mu.Unlock()

	payload := clone(req)
	if !drop && (filter == nil || filter(n.addr, addr, kind, payload)) {
		after(delay, func() { w.deliverRequest(p, kind, payload) })
	}
	select {
	case r := <-p.ch:
		return r.payload, r.err
	case <-ctx.Done():
	}
	w.mu.Lock()
	if p.done {
		// The result won the race; it is in p.ch.
		w.mu.Unlock()
		r := <-p.ch
		return r.payload, r.err
	}
	p.done = true
	delete(w.inflight, p)
	cancel := p.cancel
	w.mu.Unlock()
	if cancel != nil {
		// As a TCP caller sends a cancel frame.
		cancel()
	}
	return nil, fmt.Errorf("call to %s: %w", addr, ctx.Err())
}

// Send implements transport.Transport.
func (n *node) Send(ctx context.Context, addr string, kind uint8, req []byte) error {
	w := n.w
	w.mu.Lock()
	if n.dead {
		w.mu.Unlock()
		return fmt.Errorf("send from %s: %w", n.addr, transport.ErrClosed)
	}
	if len(req) > w.maxFrame {
		limit := w.maxFrame
		w.mu.Unlock()
		return fmt.Errorf("cannot send to %s: message of %d bytes exceeds the %d-byte frame limit: %w", addr, len(req), limit, transport.ErrTooLarge)
	}
	callee, err := w.route(n.addr, addr)
	if err != nil {
		w.mu.Unlock()
		return err
	}
	drop, delay := w.fate(n.addr, addr)
	filter := w.filter
	w.mu.Unlock()

	payload := clone(req)
	if !drop && (filter == nil || filter(n.addr, addr, kind, payload)) {
		from := n.addr
		after(delay, func() { w.deliverOneway(from, callee, kind, payload) })
	}
	return nil
}

// Close takes the node off the network (Calls waiting on it fail with
// ErrUnreachable, its own with ErrClosed), cancels its handlers and waits
// for them to return. Calling Close from one of the node's own handlers
// deadlocks, as it would with TCP.
func (n *node) Close() error {
	w := n.w
	w.mu.Lock()
	if n.closed {
		w.mu.Unlock()
		return nil
	}
	n.closed = true
	w.kill(n, fmt.Sprintf("node %s closed", n.addr))
	w.mu.Unlock()
	n.wg.Wait()
	return nil
}

// deliverRequest starts the handler for Call p, unless the call ended, the
// callee died or the link was cut while the request was in flight.
func (w *Network) deliverRequest(p *pending, kind uint8, payload []byte) {
	w.mu.Lock()
	callee := p.callee
	if p.done || callee.dead || w.blocked(p.from, p.to) {
		w.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(callee.ctx)
	p.cancel = cancel
	callee.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer callee.wg.Done()
		resp, err := callee.h(ctx, p.from, kind, payload)
		cancel()
		w.respond(p, kind, resp, err)
	}()
}

// respond carries a handler's outcome back to the caller of p, through the
// same faults as requests.
func (w *Network) respond(p *pending, kind uint8, resp []byte, err error) {
	w.mu.Lock()
	if p.done || p.callee.dead {
		w.mu.Unlock()
		return
	}
	limit := w.maxFrame
	drop, delay := w.fate(p.to, p.from)
	filter := w.respFilt
	w.mu.Unlock()

	var r result
	switch {
	case err != nil:
		// Only the text crosses a real wire.
		r.err = &transport.RemoteError{Msg: err.Error()}
	case len(resp) > limit:
		r.err = fmt.Errorf("call to %s: response of %d bytes exceeds the responder's %d-byte frame limit: %w", p.to, len(resp), limit, transport.ErrTooLarge)
	default:
		r.payload = clone(resp)
	}
	if drop || (filter != nil && !filter(p.to, p.from, kind, r.payload)) {
		return
	}
	after(delay, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		// A cut or a crash meanwhile has already failed the call.
		if !p.callee.dead && !w.blocked(p.to, p.from) {
			w.complete(p, r)
		}
	})
}

// deliverOneway runs the handler for a one-way message, unless the callee
// died (or was restarted: callee is the instance it was sent to) or the
// link was cut while it was in flight.
func (w *Network) deliverOneway(from string, callee *node, kind uint8, payload []byte) {
	w.mu.Lock()
	if callee.dead || w.blocked(from, callee.addr) {
		w.mu.Unlock()
		return
	}
	callee.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer callee.wg.Done()
		callee.h(callee.ctx, from, kind, payload)
	}()
}
