package memnet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/engramdb/engram/internal/transport"
)

// Filter decides whether one message is delivered: it returns false to
// drop it. from and to are node addresses; payload is the message, which
// the filter must not modify. Filters run concurrently, outside the
// network's lock, so they may call the Network's methods (say, to
// partition the network when a chosen message passes).
type Filter func(from, to string, kind uint8, payload []byte) (deliver bool)

// Network is an in-memory network of nodes. Its zero value is not usable;
// call NewNetwork. All methods are safe for concurrent use.
type Network struct {
	seed int64

	mu       sync.Mutex
	nodes    map[string]*node // live nodes by address
	cuts     map[link]bool    // directed links cut by Partition
	isolated map[string]bool  // nodes cut off from every other node
	dropRate float64
	minDelay time.Duration
	maxDelay time.Duration
	filter   Filter
	respFilt Filter
	maxFrame int
	// seq numbers the messages on each directed link; a message's fate
	// (drop, delay) is a hash of the seed, the link and its number.
	seq      map[link]uint64
	inflight map[*pending]bool // Calls awaiting a response
}

// link is a directed pair of addresses.
type link struct{ from, to string }

// NewNetwork returns an empty network whose random choices (drops and
// delays) all derive from seed. Log the seed in tests, so a failure can be
// replayed.
func NewNetwork(seed int64) *Network {
	return &Network{
		seed:     seed,
		nodes:    map[string]*node{},
		cuts:     map[link]bool{},
		isolated: map[string]bool{},
		maxFrame: transport.DefaultMaxFrame,
		seq:      map[link]uint64{},
		inflight: map[*pending]bool{},
	}
}

// Seed returns the seed the network was made with.
func (w *Network) Seed() int64 { return w.seed }

// Inflight returns how many Calls are waiting for a response, so a test
// can wait for a call to be in flight before injecting a fault, without
// sleeping.
func (w *Network) Inflight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inflight)
}

// Node attaches a node at addr that serves requests with h, and returns
// its Transport. Addresses are arbitrary strings. It panics if a live node
// already has addr: like binding a port in use, it is a bug in the test's
// setup.
func (w *Network) Node(addr string, h transport.Handler) transport.Transport {
	if h == nil {
		panic("memnet: a handler is required")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nodes[addr] != nil {
		panic(fmt.Sprintf("memnet: address %s is in use", addr))
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{w: w, addr: addr, h: h, ctx: ctx, cancel: cancel}
	w.nodes[addr] = n
	return n
}

// Partition cuts every link between a node of groupA and a node of
// groupB, in both directions, until Heal. Calls already waiting across the
// cut fail at once with ErrUnreachable, as when a TCP connection breaks,
// and their handlers' contexts are cancelled; new Calls and Sends across
// it fail at once with ErrUnreachable, like a refused connection, rather
// than waiting for their deadline. (For messages that vanish silently,
// use SetFilter.) Partitions accumulate: two calls cut both sets of links.
func (w *Network) Partition(groupA, groupB []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range groupA {
		for _, b := range groupB {
			if a != b {
				w.cuts[link{a, b}] = true
				w.cuts[link{b, a}] = true
			}
		}
	}
	w.failCut()
}

// Isolate cuts addr off from every other node, including nodes attached
// later, until Heal; the failures are those of Partition.
func (w *Network) Isolate(addr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.isolated[addr] = true
	w.failCut()
}

// Heal restores every link cut by Partition or Isolate. It leaves the
// drop rate, delay and filters as they are.
func (w *Network) Heal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.cuts)
	clear(w.isolated)
}

// SetDropRate makes each message (request, response or one-way) lost with
// probability p, decided from the seed. A Call whose request or response
// is lost fails by its context. It panics unless 0 <= p <= 1.
func (w *Network) SetDropRate(p float64) {
	if !(p >= 0 && p <= 1) {
		panic(fmt.Sprintf("memnet: drop rate must be between 0 and 1, got %v", p))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropRate = p
}

// SetDelay delays each message by a duration between min and max
// (inclusive), decided from the seed. Messages overtake each other when
// delays differ, as they may over separate TCP connections. Zero for both
// delivers at once. It panics unless 0 <= min <= max.
func (w *Network) SetDelay(min, max time.Duration) {
	if min < 0 || max < min {
		panic(fmt.Sprintf("memnet: delay must satisfy 0 <= min <= max, got %v and %v", min, max))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.minDelay, w.maxDelay = min, max
}

// SetFilter sets the filter every request and one-way message passes
// before delivery; nil removes it. A Call whose request is dropped fails by
// its context, as if the message was lost.
func (w *Network) SetFilter(f Filter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.filter = f
}

// SetResponseFilter sets the filter every response passes before
// delivery; nil removes it. from is the responding node and to the caller,
// kind is the request's, and payload is the response (nil for an error).
// A dropped response models a request that ran but whose answer was lost:
// the caller fails by its context.
func (w *Network) SetResponseFilter(f Filter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.respFilt = f
}

// SetMaxFrame sets the largest payload the network carries, as
// TCPOptions.MaxFrame does for TCP. Default transport.DefaultMaxFrame, so
// code that would send an oversized message fails here as it would in
// production.
func (w *Network) SetMaxFrame(n int) {
	if n < 1 {
		panic(fmt.Sprintf("memnet: max frame must be positive, got %d", n))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxFrame = n
}

// Kill crashes the node at addr, as if its process died and its host
// reset every connection: Calls waiting on it fail at once with
// ErrUnreachable, its running handlers' contexts are cancelled and their
// responses never arrive, messages still in flight to it are lost, and
// new Calls to addr fail with ErrUnreachable until Restart. Its own
// Transport fails every call with ErrClosed from then on. (For a node that
// hangs without resetting anything, drop its messages with SetFilter.)
// Kill does not wait for the node's handlers; Close on its old Transport
// does. Killing an address with no live node does nothing.
func (w *Network) Kill(addr string) {
	w.mu.Lock()
	n := w.nodes[addr]
	if n != nil {
		w.kill(n, fmt.Sprintf("node %s was killed", addr))
	}
	w.mu.Unlock()
}

// Restart kills the node at addr if it is live and attaches a new one
// there that serves with h, like a process restarting on the same port.
// It returns the new node's Transport; the old one stays closed.
func (w *Network) Restart(addr string, h transport.Handler) transport.Transport {
	w.Kill(addr)
	return w.Node(addr, h)
}

// kill takes n off the network and fails the Calls that involve it. The
// caller holds w.mu.
func (w *Network) kill(n *node, why string) {
	if n.dead {
		return
	}
	n.dead = true
	if w.nodes[n.addr] == n {
		delete(w.nodes, n.addr)
	}
	for p := range w.inflight {
		switch {
		case p.callee == n:
			w.complete(p, result{err: fmt.Errorf("connection to %s broke: %s: %w", n.addr, why, transport.ErrUnreachable)})
		case p.caller == n:
			w.complete(p, result{err: fmt.Errorf("call from %s: %w", n.addr, transport.ErrClosed)})
			if p.cancel != nil {
				p.cancel()
			}
		}
	}
	n.cancel()
}

// blocked reports whether the link from a to b is cut. The caller holds
// w.mu.
func (w *Network) blocked(a, b string) bool {
	if a == b {
		return false
	}
	return w.isolated[a] || w.isolated[b] || w.cuts[link{a, b}]
}

// failCut fails the Calls waiting across a cut link. The caller holds
// w.mu.
func (w *Network) failCut() {
	for p := range w.inflight {
		if w.blocked(p.from, p.to) || w.blocked(p.to, p.from) {
			w.complete(p, result{err: fmt.Errorf("connection from %s to %s broke: partitioned: %w", p.from, p.to, transport.ErrUnreachable)})
			if p.cancel != nil {
				p.cancel()
			}
		}
	}
}

// route returns the live node at to, or why from cannot reach it. The
// caller holds w.mu.
func (w *Network) route(from, to string) (*node, error) {
	n := w.nodes[to]
	switch {
	case n == nil:
		return nil, fmt.Errorf("cannot reach %s from %s: no node there (connection refused): %w: %w", to, from, transport.ErrNotSent, transport.ErrUnreachable)
	case w.blocked(from, to):
		return nil, fmt.Errorf("cannot reach %s from %s: partitioned: %w: %w", to, from, transport.ErrNotSent, transport.ErrUnreachable)
	}
	return n, nil
}

// fate decides, from the seed, whether the next message from from to to is
// lost and how long it takes. The caller holds w.mu.
func (w *Network) fate(from, to string) (drop bool, delay time.Duration) {
	l := link{from, to}
	n := w.seq[l]
	w.seq[l] = n + 1
	h := mix(uint64(w.seed) ^ mix(hashString(from)^mix(hashString(to)+n)))
	if w.dropRate > 0 {
		drop = float64(h>>11)/(1<<53) < w.dropRate
	}
	delay = w.minDelay
	if span := w.maxDelay - w.minDelay; span > 0 {
		delay += time.Duration(mix(h) % uint64(span+1))
	}
	return drop, delay
}

// complete finishes Call p with r, unless it is already finished. The
// caller holds w.mu.
func (w *Network) complete(p *pending, r result) {
	if p.done {
		return
	}
	p.done = true
	delete(w.inflight, p)
	p.ch <- r
}

// after runs f after d, or at once if d is zero.
func after(d time.Duration, f func()) {
	if d <= 0 {
		f()
		return
	}
	time.AfterFunc(d, f)
}

// mix is SplitMix64's finalizer: a cheap, well-spread hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hashString is 64-bit FNV-1a.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// clone copies b, so sender and receiver never share a buffer, as on a
// real wire; empty payloads arrive as nil, as over TCP.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
