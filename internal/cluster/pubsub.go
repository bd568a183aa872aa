package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/pubsub"
	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/store"
)

// Cluster-wide pub/sub (docs/pubsub.md). Each node's hub (internal/pubsub)
// serves the subscribers connected to it; this file carries what crosses
// nodes, as OpPubSub requests on the authenticated data transport:
//
//   - Interest ("I"): what a node's subscribers want (topics, maps, any
//     map). A node announces a change to every node before the
//     (un)subscription returns, re-announces a non-empty interest every
//     second (so joining nodes learn it, and lost messages heal), and
//     answers an announcement with its own. An interest not refreshed
//     for InterestTTL is forgotten (the node is gone).
//   - Events ("E"): map events, produced only by the primary of the key's
//     partition (its store observer, as replication), sent only to the
//     nodes that want the map. One queue and one sender per destination,
//     one request in flight, so a destination gets a key's events in the
//     order the primary made them. The queue is bounded
//     (peerQueueBytes): beyond it, and when a destination stays
//     unreachable, events are dropped and counted (PubSubStats).
//   - Publish ("P"): a topic message, sent to every node with topic
//     subscribers, each answering how many received it: PUBLISH returns
//     the cluster-wide count.
//
// Node events need no message: every node learns membership changes from
// its own gossip.

const (
	// InterestTTL is how long a node's announced interest lasts without a
	// refresh.
	InterestTTL = 3500 * time.Millisecond
	// interestEvery is the re-announcement period of a non-empty interest.
	interestEvery = time.Second
	// peerQueueBytes bounds the events queued for one destination.
	peerQueueBytes = 16 << 20
	// peerBatchBytes and peerBatchEvents bound one "E" message.
	peerBatchBytes  = 1 << 20
	peerBatchEvents = 1024
)

// PubSubObserver is the store observer of a cluster member's pub/sub:
// pass it in the store's observers, then bind it with EnablePubSub.
type PubSubObserver struct{ ps atomic.Pointer[pubSub] }

// NewPubSubObserver returns an unbound observer (it ignores events until
// bound).
func NewPubSubObserver() *PubSubObserver { return &PubSubObserver{} }

// OnEvent implements store.Observer: events of partitions this node leads
// go to the local hub and to the nodes whose subscribers want them. It
// only queues.
func (o *PubSubObserver) OnEvent(ev *store.Event) {
	if p := o.ps.Load(); p != nil {
		p.onEvent(ev)
	}
}

// PubSubStats count the cluster side of pub/sub.
type PubSubStats struct {
	// EventsSent and EventsReceived count map events shipped between
	// nodes; EventsDropped those lost (queue full, destination
	// unreachable).
	EventsSent, EventsReceived, EventsDropped int64
	// Peers is the number of nodes whose subscribers want something.
	Peers int
}

// pubSub is a Node's cluster pub/sub.
type pubSub struct {
	n   *Node
	hub *pubsub.Hub

	mu        sync.Mutex
	peers     map[ring.NodeID]*peer
	exchanged map[ring.NodeID]bool // nodes this one has exchanged interests with
	mine      pubsub.Interest
	snap      atomic.Pointer[psSnap]

	// stream names this process's event streams; lastSeq holds the last
	// batch delivered from each sender's stream (a batch resent after a
	// lost answer is not delivered twice).
	stream  uint64
	seqMu   sync.Mutex
	lastSeq map[uint64]uint64

	sent, received, dropped atomic.Int64
}

// psSnap is an immutable view of the peers' interests for the event path.
type psSnap struct {
	byMap  map[string][]*peer // peers wanting one map (not those in all)
	all    []*peer            // peers wanting every map
	topics []*peer
}

// peer is another node's interest and the queue of events for it.
type peer struct {
	id   ring.NodeID
	in   pubsub.Interest
	seen time.Time // under pubSub.mu

	seq uint64 // the last batch number sent (send's goroutine only)

	mu       sync.Mutex
	q        [][]byte
	qBytes   int
	inFlight bool
	wake     chan struct{}
	stop     chan struct{}
}

// EnablePubSub connects hub to the cluster: o (one of the store's
// observers) feeds it the map events of partitions this node leads, and
// the hub reaches the other nodes' subscribers through this node.
func (n *Node) EnablePubSub(h *pubsub.Hub, o *PubSubObserver) error {
	p := &pubSub{n: n, hub: h, peers: map[ring.NodeID]*peer{}, exchanged: map[ring.NodeID]bool{},
		stream: rand.Uint64(), lastSeq: map[uint64]uint64{}}
	p.snap.Store(&psSnap{})
	if !n.pubsub.CompareAndSwap(nil, p) {
		return errors.New("pub/sub already enabled")
	}
	if !o.ps.CompareAndSwap(nil, p) {
		return errors.New("pub/sub observer already bound")
	}
	n.wg.Add(1)
	go p.announceLoop()
	h.SetRemote(p)
	return nil
}

// PubSub returns the cluster pub/sub counters.
func (n *Node) PubSub() PubSubStats {
	p := n.pubsub.Load()
	if p == nil {
		return PubSubStats{}
	}
	p.mu.Lock()
	peers := len(p.peers)
	p.mu.Unlock()
	return PubSubStats{EventsSent: p.sent.Load(), EventsReceived: p.received.Load(), EventsDropped: p.dropped.Load(), Peers: peers}
}

// onEvent runs under the key's shard lock.
func (p *pubSub) onEvent(ev *store.Event) {
	if ev.Loaded || (ev.Kind == store.EventDelete && ev.Reason == store.ReasonClearedSilent) || store.IsInternal(ev.Map) {
		return
	}
	snap := p.snap.Load()
	local := p.hub.WantsMap(ev.Map)
	remote := snap.byMap[ev.Map]
	if !local && len(remote) == 0 && len(snap.all) == 0 {
		return
	}
	// Only the primary announces: replicas apply the same changes (and
	// expire and drop copies on their own).
	if ps := &p.n.parts[p.n.st.PartitionOf(ev.Key)]; !ps.primary.Load() || ps.applying.Load() > 0 {
		return
	}
	if local {
		p.hub.OnEvent(ev)
	}
	if len(remote) == 0 && len(snap.all) == 0 {
		return
	}
	b := encodeEvent(ev)
	for _, list := range [2][]*peer{remote, snap.all} {
		for _, pr := range list {
			if !pr.enqueue(b) {
				p.dropped.Add(1)
			}
		}
	}
}

// encodeEvent: u8 kind | u8 reason | bytes map | bytes key | value.
func encodeEvent(ev *store.Event) []byte {
	b := make([]byte, 0, 2+2*binary.MaxVarintLen32+len(ev.Map)+len(ev.Key)+len(ev.Value))
	b = append(b, byte(ev.Kind), byte(ev.Reason))
	b = appendString(b, ev.Map)
	b = appendBytes(b, ev.Key)
	return append(b, ev.Value...)
}

func decodeEvent(b []byte) (store.Event, error) {
	d := decoder{b: b}
	ev := store.Event{Kind: store.EventKind(d.u8("event kind")), Reason: store.Reason(d.u8("reason"))}
	ev.Map = string(d.bytes("map"))
	ev.Key = d.bytes("key")
	ev.Value = d.b
	if d.err == nil && ev.Kind > store.EventDelete {
		d.fail("event kind")
	}
	return ev, d.err
}

func (pr *peer) enqueue(b []byte) bool {
	pr.mu.Lock()
	if pr.qBytes+len(b) > peerQueueBytes {
		pr.mu.Unlock()
		return false
	}
	pr.q = append(pr.q, b)
	pr.qBytes += len(b)
	pr.mu.Unlock()
	select {
	case pr.wake <- struct{}{}:
	default:
	}
	return true
}

// takeBatch removes the next batch from the queue and marks it in flight.
func (pr *peer) takeBatch() [][]byte {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	n, size := 0, 0
	for n < len(pr.q) && n < peerBatchEvents && (n == 0 || size+len(pr.q[n]) <= peerBatchBytes) {
		size += len(pr.q[n])
		n++
	}
	batch := append([][]byte(nil), pr.q[:n]...)
	clear(pr.q[:n])
	pr.q = pr.q[n:]
	if len(pr.q) == 0 {
		pr.q = nil
	}
	pr.qBytes -= size
	pr.inFlight = n > 0
	return batch
}

func (pr *peer) idle() bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.q) == 0 && !pr.inFlight
}

// send runs one destination's stream: batches in order, one in flight.
func (p *pubSub) send(pr *peer) {
	defer p.n.wg.Done()
	for {
		select {
		case <-pr.wake:
		case <-pr.stop:
			return
		case <-p.n.ctx.Done():
			return
		}
		for {
			batch := pr.takeBatch()
			if len(batch) == 0 {
				break
			}
			pr.seq++
			var hdr [16]byte
			binary.BigEndian.PutUint64(hdr[:8], p.stream)
			binary.BigEndian.PutUint64(hdr[8:], pr.seq)
			args := append([][]byte{[]byte("E"), hdr[:]}, batch...)
			req := AppendRequest(nil, &Request{Op: OpPubSub, Args: args})
			var err error
			backoff := 20 * time.Millisecond
			for attempt := 0; attempt < 4; attempt++ {
				if err = p.call(pr.id, req); err == nil {
					break
				}
				select {
				case <-pr.stop:
				case <-p.n.ctx.Done():
				case <-time.After(backoff):
					backoff *= 2
					continue
				}
				break
			}
			if err != nil {
				p.dropped.Add(int64(len(batch)))
			} else {
				p.sent.Add(int64(len(batch)))
			}
			pr.mu.Lock()
			pr.inFlight = false
			pr.mu.Unlock()
		}
	}
}

// call sends an OpPubSub request to node id and decodes the answer.
func (p *pubSub) call(id ring.NodeID, req []byte) error {
	_, addrs, _ := p.n.view()
	addr, ok := addrs[id]
	if !ok {
		return fmt.Errorf("%w: no address for %s", ErrUnreachable, id)
	}
	ctx, cancel := context.WithTimeout(p.n.ctx, p.n.opts.ReplicateTimeout)
	defer cancel()
	b, err := p.n.tr.Call(ctx, addr, KindData, req)
	if err != nil {
		return err
	}
	resp, err := DecodeResponse(b)
	if err != nil {
		return err
	}
	if resp.Status != StatusOK {
		return fmt.Errorf("%s: %s", id, resp.Message)
	}
	return nil
}

// drain waits (up to timeout) until every destination's queue is sent:
// a primary stepping down hands its partitions over after the events it
// produced reached the subscribers, so a key's events stay in order
// across a planned move.
func (n *Node) drainPubSub(timeout time.Duration) {
	p := n.pubsub.Load()
	if p == nil {
		return
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		busy := false
		for _, pr := range p.peers {
			if !pr.idle() {
				busy = true
				break
			}
		}
		p.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// encodeInterest: u8 flags (1 topics, 2 all maps) | uv count | count x bytes map.
func encodeInterest(in pubsub.Interest) []byte {
	var f byte
	if in.Topics {
		f |= 1
	}
	if in.AllMaps {
		f |= 2
	}
	b := []byte{f}
	b = binary.AppendUvarint(b, uint64(len(in.Maps)))
	for _, m := range in.Maps {
		b = appendString(b, m)
	}
	return b
}

func decodeInterest(b []byte) (pubsub.Interest, error) {
	d := decoder{b: b}
	f := d.u8("interest flags")
	in := pubsub.Interest{Topics: f&1 != 0, AllMaps: f&2 != 0}
	n := d.uv("map count")
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("map count larger than the message")
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		in.Maps = append(in.Maps, string(d.bytes("map")))
	}
	return in, d.end()
}

func emptyInterest(in pubsub.Interest) bool { return !in.Topics && !in.AllMaps && len(in.Maps) == 0 }

// setPeer records node id's interest (empty: forget it) and rebuilds the
// snapshot. Under p.mu.
func (p *pubSub) setPeerLocked(id ring.NodeID, in pubsub.Interest) {
	if id == p.n.id {
		return
	}
	p.exchanged[id] = true
	pr := p.peers[id]
	if emptyInterest(in) {
		if pr != nil {
			close(pr.stop)
			delete(p.peers, id)
			p.rebuildLocked()
		}
		return
	}
	if pr == nil {
		pr = &peer{id: id, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		p.peers[id] = pr
		p.n.wg.Add(1)
		go p.send(pr)
	}
	pr.seen = time.Now()
	if !pr.in.Equal(in) {
		pr.in = in
		p.rebuildLocked()
	}
}

func (p *pubSub) rebuildLocked() {
	s := &psSnap{byMap: map[string][]*peer{}}
	for _, pr := range p.peers {
		if pr.in.Topics {
			s.topics = append(s.topics, pr)
		}
		if pr.in.AllMaps {
			s.all = append(s.all, pr)
			continue
		}
		for _, m := range pr.in.Maps {
			s.byMap[m] = append(s.byMap[m], pr)
		}
	}
	p.snap.Store(s)
}

// InterestChanged implements pubsub.Remote: tell every node, in
// parallel, and learn theirs from the answers.
func (p *pubSub) InterestChanged(ctx context.Context, in pubsub.Interest) {
	p.mu.Lock()
	p.mine = in
	p.mu.Unlock()
	_, addrs, _ := p.n.view()
	var ids []ring.NodeID
	for id := range addrs {
		if id != p.n.id {
			ids = append(ids, id)
		}
	}
	p.exchange(ctx, ids)
}

// exchange sends this node's interest to ids and records their answers.
func (p *pubSub) exchange(ctx context.Context, ids []ring.NodeID) {
	if len(ids) == 0 {
		return
	}
	p.mu.Lock()
	req := AppendRequest(nil, &Request{Op: OpPubSub, Args: [][]byte{[]byte("I"), encodeInterest(p.mine), []byte(p.n.id)}})
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, p.n.opts.ReplicateTimeout)
	defer cancel()
	_, addrs, _ := p.n.view()
	var wg sync.WaitGroup
	for _, id := range ids {
		addr, ok := addrs[id]
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := p.n.tr.Call(ctx, addr, KindData, req)
			if err != nil {
				return
			}
			resp, err := DecodeResponse(b)
			if err != nil || resp.Status != StatusOK {
				return
			}
			theirs, err := decodeInterest(resp.Value)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.setPeerLocked(id, theirs)
			p.mu.Unlock()
		}()
	}
	wg.Wait()
}

// announceLoop exchanges interests with nodes not met yet (every 250ms),
// re-announces a non-empty interest (every second) and forgets peers that
// stopped refreshing theirs.
func (p *pubSub) announceLoop() {
	defer p.n.wg.Done()
	tick := time.NewTicker(interestEvery / 4)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-p.n.ctx.Done():
			return
		case <-tick.C:
		}
		_, addrs, _ := p.n.view()
		p.mu.Lock()
		refresh := time.Since(last) >= interestEvery && !emptyInterest(p.mine)
		var ids []ring.NodeID
		for id := range addrs {
			if id != p.n.id && (refresh || !p.exchanged[id]) {
				ids = append(ids, id)
			}
		}
		for id, pr := range p.peers {
			if time.Since(pr.seen) > InterestTTL {
				close(pr.stop)
				delete(p.peers, id)
				delete(p.exchanged, id)
				p.rebuildLocked()
			}
		}
		for id := range p.exchanged {
			if _, ok := addrs[id]; !ok && p.peers[id] == nil {
				delete(p.exchanged, id) // gone from the table: meet it again if it returns
			}
		}
		p.mu.Unlock()
		if refresh {
			last = time.Now()
		}
		p.exchange(p.n.ctx, ids)
	}
}

// Publish implements pubsub.Remote: the message goes to every node with
// topic subscribers, in parallel; the answer is the receivers there.
func (p *pubSub) Publish(ctx context.Context, channel string, payload []byte) (int, error) {
	peers := p.snap.Load().topics
	if len(peers) == 0 {
		return 0, nil
	}
	req := AppendRequest(nil, &Request{Op: OpPubSub, Args: [][]byte{[]byte("P"), []byte(channel), payload}})
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.n.opts.ReplicateTimeout)
		defer cancel()
	}
	_, addrs, _ := p.n.view()
	var (
		mu    sync.Mutex
		total int
		errs  []error
		wg    sync.WaitGroup
	)
	for _, pr := range peers {
		addr, ok := addrs[pr.id]
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := p.publishTo(ctx, addr, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", pr.id, err))
				return
			}
			total += n
		}()
	}
	wg.Wait()
	return total, errors.Join(errs...)
}

func (p *pubSub) publishTo(ctx context.Context, addr string, req []byte) (int, error) {
	b, err := p.n.tr.Call(ctx, addr, KindData, req)
	if err != nil {
		return 0, err
	}
	resp, err := DecodeResponse(b)
	if err != nil {
		return 0, err
	}
	if resp.Status != StatusOK {
		return 0, errors.New(resp.Message)
	}
	return strconv.Atoi(string(resp.Value))
}

// servePubSub answers an OpPubSub request.
func (n *Node) servePubSub(r *Request) *Response {
	p := n.pubsub.Load()
	if p == nil {
		return &Response{Status: StatusRetry, Message: "pub/sub not enabled on this node yet"}
	}
	if len(r.Args) == 0 {
		return &Response{Status: StatusError, Message: "empty pub/sub message"}
	}
	switch string(r.Args[0]) {
	case "E":
		if len(r.Args) < 2 || len(r.Args[1]) != 16 {
			return &Response{Status: StatusError, Message: "bad events message"}
		}
		stream, seq := binary.BigEndian.Uint64(r.Args[1][:8]), binary.BigEndian.Uint64(r.Args[1][8:])
		// One batch in flight per stream: delivering under seqMu keeps the
		// check and the delivery together.
		p.seqMu.Lock()
		defer p.seqMu.Unlock()
		if seq <= p.lastSeq[stream] {
			return &Response{} // delivered already; the answer was lost
		}
		p.lastSeq[stream] = seq
		for _, a := range r.Args[2:] {
			ev, err := decodeEvent(a)
			if err != nil {
				return &Response{Status: StatusError, Message: err.Error()}
			}
			p.received.Add(1)
			p.hub.OnEvent(&ev)
		}
		return &Response{}
	case "P":
		if len(r.Args) != 3 {
			return &Response{Status: StatusError, Message: "bad publish message"}
		}
		cnt := p.hub.PublishLocal(string(r.Args[1]), append([]byte(nil), r.Args[2]...))
		return &Response{Value: strconv.AppendInt(nil, int64(cnt), 10)}
	case "I":
		if len(r.Args) != 3 {
			return &Response{Status: StatusError, Message: "bad interest message"}
		}
		in, err := decodeInterest(r.Args[1])
		if err != nil {
			return &Response{Status: StatusError, Message: err.Error()}
		}
		p.mu.Lock()
		p.setPeerLocked(ring.NodeID(r.Args[2]), in)
		mine := encodeInterest(p.mine)
		p.mu.Unlock()
		return &Response{Value: mine}
	}
	return &Response{Status: StatusError, Message: fmt.Sprintf("unknown pub/sub message %q", r.Args[0])}
}
