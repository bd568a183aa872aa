package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/replication"
	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/store"
	"github.com/engramdb/engram/internal/transport"
)

// Options tune a Node. The zero value is usable: EnsureDefaults fills
// every unset field.
type Options struct {
	// RetryMin and RetryMax bound the backoff between attempts of a
	// request that got a retryable error (defaults 1ms and 50ms). A new
	// partition table wakes a waiting request at once.
	RetryMin, RetryMax time.Duration
	// RequestTimeout bounds a request (with its retries) whose context
	// has no deadline (default 10s), so no request can hang.
	RequestTimeout time.Duration
	// AckTimeout bounds an AckAll write's wait for its replicas when the
	// caller's context has no deadline (default 5s), so a write never
	// hangs on an unreachable replica.
	AckTimeout time.Duration
	// ReplicateTimeout bounds one replication message's round trip
	// (default 1s); a stream retries after it.
	ReplicateTimeout time.Duration
	// BacklogBytes bounds the changes a partition's log keeps for lagging
	// replicas (default 64 MiB); beyond it writes are refused with
	// ErrBacklog.
	BacklogBytes int
	// BatchEntries bounds the entries of one replication message (default
	// 256).
	BatchEntries int
	// SnapshotBatchBytes and SnapshotBatchEntries bound one snapshot
	// message (defaults 1 MiB and 1024 records; a single larger record
	// travels alone).
	SnapshotBatchBytes   int
	SnapshotBatchEntries int
	// SnapshotRestarts bounds how many times in a row a snapshot is
	// started again because the follower's backlog (the changes made
	// since the snapshot began) passed BacklogBytes while it was being
	// sent, which lets writers go on (default 3; negative: never). Past
	// it the snapshot goes on to its end and writes are refused with
	// ErrBacklog until the follower catches up.
	SnapshotRestarts int
	// NearCacheEntries enables the near cache with that many entries
	// (0: off): eventual single-key reads of keys this node does not own
	// are kept locally and invalidated by their owners (see nearcache.go).
	NearCacheEntries int
	// NearCacheTTL bounds how long a near-cached reply is served without
	// a confirmation (default 1s): the staleness bound if an
	// invalidation is lost.
	NearCacheTTL time.Duration
	// HandoffWait bounds how long a node that became primary in place of
	// a live node waits for that node to confirm it stopped (OpStepDown)
	// before serving anyway (default 3s; it should exceed the lease, after
	// which an unreachable old primary refuses by itself).
	HandoffWait time.Duration
}

// EnsureDefaults returns o with every zero field set to its default.
func (o Options) EnsureDefaults() Options {
	if o.RetryMin == 0 {
		o.RetryMin = time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 50 * time.Millisecond
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.ReplicateTimeout == 0 {
		o.ReplicateTimeout = time.Second
	}
	if o.BacklogBytes == 0 {
		o.BacklogBytes = 64 << 20
	}
	if o.BatchEntries == 0 {
		o.BatchEntries = 256
	}
	if o.SnapshotBatchBytes == 0 {
		o.SnapshotBatchBytes = 1 << 20
	}
	if o.SnapshotBatchEntries == 0 {
		o.SnapshotBatchEntries = 1024
	}
	if o.SnapshotRestarts == 0 {
		o.SnapshotRestarts = 3
	}
	if o.NearCacheTTL == 0 {
		o.NearCacheTTL = time.Second
	}
	if o.HandoffWait == 0 {
		o.HandoffWait = 3 * time.Second
	}
	return o
}

// Validate reports the first setting that is out of range.
func (o Options) Validate() error {
	switch {
	case o.RetryMin <= 0 || o.RetryMax < o.RetryMin:
		return fmt.Errorf("retry backoff must satisfy 0 < min <= max, got %v and %v", o.RetryMin, o.RetryMax)
	case o.RequestTimeout <= 0:
		return fmt.Errorf("request timeout must be positive, got %v", o.RequestTimeout)
	case o.AckTimeout <= 0:
		return fmt.Errorf("ack timeout must be positive, got %v", o.AckTimeout)
	case o.ReplicateTimeout <= 0:
		return fmt.Errorf("replicate timeout must be positive, got %v", o.ReplicateTimeout)
	case o.BacklogBytes < 1:
		return fmt.Errorf("replication backlog must be positive, got %d", o.BacklogBytes)
	case o.BatchEntries < 1:
		return fmt.Errorf("replication batch must be positive, got %d", o.BatchEntries)
	case o.NearCacheEntries < 0 || o.NearCacheTTL < 0:
		return fmt.Errorf("near cache entries and TTL must not be negative, got %d and %v", o.NearCacheEntries, o.NearCacheTTL)
	case o.SnapshotBatchBytes < 1 || o.SnapshotBatchEntries < 1:
		return fmt.Errorf("snapshot batch bounds must be positive, got %d bytes and %d entries", o.SnapshotBatchBytes, o.SnapshotBatchEntries)
	}
	return nil
}

// Observer captures a store's changes for the cluster. Pass it as
// store.Options.Observer when creating the store, then give it to New,
// which binds it to the Node; events before that are not replicated.
type Observer struct{ node atomic.Pointer[Node] }

// NewObserver returns an unbound Observer.
func NewObserver() *Observer { return &Observer{} }

// OnEvent implements store.Observer. It runs under the key's shard lock:
// it only appends to the partition's replication log.
func (o *Observer) OnEvent(ev *store.Event) {
	if n := o.node.Load(); n != nil {
		n.onEvent(ev)
	}
}

// Handler serves the cluster's transport messages. Create it before the
// transport (which needs its Handle method), then give it to New, which
// binds it to the Node; until then it refuses messages with ErrNotReady.
type Handler struct{ node atomic.Pointer[Node] }

// NewHandler returns an unbound Handler.
func NewHandler() *Handler { return &Handler{} }

// Handle implements transport.Handler.
func (h *Handler) Handle(ctx context.Context, from string, kind uint8, req []byte) ([]byte, error) {
	if kind != KindData {
		return nil, fmt.Errorf("unknown message kind %d", kind)
	}
	r, err := DecodeRequest(req)
	if err != nil {
		return nil, err
	}
	n := h.node.Load()
	if n == nil {
		return AppendResponse(nil, &Response{Status: StatusRetry, Message: ErrNotReady.Error()}), nil
	}
	return AppendResponse(nil, n.serve(ctx, from, r)), nil
}

// Config is what a Node is composed from.
type Config struct {
	// ID is this node's name in partition tables.
	ID ring.NodeID
	// Store is this node's keyspace, created with Observer as its
	// observer.
	Store *store.Store
	// Transport carries data-plane messages; its handler must be
	// Handler.Handle.
	Transport transport.Transport
	// Observer and Handler are bound to the new Node.
	Observer *Observer
	Handler  *Handler
	// Options tune the node.
	Options Options
	// Lease, when set, is asked before consistent operations; an error
	// means this node may be on the minority side of a network split
	// (no recent contact with the control plane's majority) and the
	// operation is refused with ErrNoQuorum.
	Lease func() error
	// OnSynced, when set, is called on the primary of partition p when
	// follower has received a complete snapshot of it and acknowledged
	// the log position the snapshot started from: its copy is complete
	// (it may still lag, as any replica). epoch is the table epoch the
	// follower accepted the snapshot's end in. It is called once per
	// stream (a follower added to the partition; added again after
	// being removed, again), from the stream's goroutine with no lock
	// held: it should return quickly (the stream waits for it).
	OnSynced func(p int, follower ring.NodeID, epoch uint64)
}

// Stats count what a Node did, for tests and metrics.
type Stats struct {
	// Forwarded counts requests sent to another owner.
	Forwarded int64
	// Retries counts attempts repeated after a retryable error.
	Retries int64
	// Fenced counts requests this node refused for a wrong epoch.
	Fenced int64
	// Applied counts replicated entries applied as a replica.
	Applied int64
	// SnapshotsSent counts snapshots a follower completed, as primary;
	// Resyncs the snapshots started again for a follower (its log
	// entries were dropped, the backlog overflowed during the snapshot,
	// or it refused entries or a snapshot message).
	SnapshotsSent, Resyncs int64
	// SnapshotsReceived counts snapshots completed as a replica, and
	// SnapshotRecords the records they carried.
	SnapshotsReceived, SnapshotRecords int64
	// Dropped counts partitions dropped from the store because this node
	// stopped owning them.
	Dropped int64
	// Batches counts pipelines forwarded as one message (ForwardBatch).
	Batches int64
}

// Node is one member of the cluster's data plane: it routes requests for
// keys to their partition's primary, serves the partitions it owns, and
// replicates its primaries' changes to their replicas. Safe for
// concurrent use.
type Node struct {
	id    ring.NodeID
	st    *store.Store
	tr    transport.Transport
	opts  Options
	parts []partState

	mu      sync.RWMutex
	table   *ring.Table
	addrs   map[ring.NodeID]string
	byAddr  map[string]ring.NodeID
	changed chan struct{} // closed and replaced by SetTable
	streams map[streamKey]*streamState
	exiting map[streamKey]chan struct{} // streams stopped, maybe still running: closed when they return
	closed  bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	forwarded, retries, fenced, applied                 atomic.Int64
	snapsSent, resyncs, snapsRecv, snapRecords, dropped atomic.Int64

	onSynced func(p int, follower ring.NodeID, epoch uint64)
	snapSeq  atomic.Uint64 // the last snapshot ID this node used

	exec2 atomic.Pointer[executorBox] // runs forwarded commands (SetExecutor)
	lease func() error

	batches atomic.Int64 // pipelines forwarded as one message

	near                *nearCache // nil: no near cache here
	intr                *interests // nodes near-caching keys this node leads
	invq                chan invalidation
	invSent, invDropped atomic.Int64

	pubsub atomic.Pointer[pubSub] // cluster pub/sub (pubsub.go); nil until EnablePubSub
}

// partState is a node's state for one partition.
type partState struct {
	// mu serialises this node's writes to the partition as its primary
	// (so the LSN read after a write covers it), the application of
	// replicated entries and snapshots as a replica, and dropping the
	// partition once not owned.
	mu      sync.Mutex
	primary atomic.Bool
	log     atomic.Pointer[replication.Log] // created when first primary
	// role is this node's part in the partition by the latest table.
	role atomic.Pointer[partRole]
	// complete is the role era + 1 once this node, as a replica, holds a
	// complete copy from the era's primary (0: none).
	complete atomic.Uint64
	// As a replica (under mu), for role era era: the snapshot in progress
	// (syncing) or completed (synced) from the primary, and the last LSN
	// applied from it.
	era     uint64
	snap    uint64
	syncing bool
	synced  bool
	applied uint64
	// handoff is the epoch of a table that made this node primary of the
	// partition in place of another live node, until that node confirmed
	// it stopped serving it (OpStepDown) or HandoffWait passed: until
	// then consistent operations here are refused (retryable), so the
	// two never both answer as primary.
	handoff atomic.Uint64
	// steppedDown is the epoch of a table in which another node leads the
	// partition, as that node told this one (OpStepDown) before this
	// node installed the table: tables older than it do not make this
	// node primary again.
	steppedDown atomic.Uint64
	// applying counts replicated changes being applied here: events they
	// cause are not this node's to announce (pubsub.go), even if a new
	// table made it primary meanwhile.
	applying atomic.Int32
}

// partRole is a node's part in one partition by one table.
type partRole struct {
	primary ring.NodeID // the partition's primary
	owner   bool        // this node is one of the owners
	// era changes when the primary changes or this node stops owning the
	// partition: a replica's copy from an older era cannot be continued
	// (it may have diverged, or been dropped) and is replaced by a
	// snapshot.
	era uint64
}

type streamKey struct {
	p  int
	to ring.NodeID
}

// New composes a Node and binds c.Observer and c.Handler to it. It has no
// table until SetTable.
func New(c Config) (*Node, error) {
	switch {
	case c.ID == "":
		return nil, errors.New("cluster node needs an ID")
	case c.Store == nil || c.Transport == nil || c.Observer == nil || c.Handler == nil:
		return nil, errors.New("cluster node needs a store, a transport, an observer and a handler")
	}
	opts := c.Options.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{id: c.ID, st: c.Store, tr: c.Transport, opts: opts, parts: make([]partState, c.Store.Partitions()),
		changed: make(chan struct{}), streams: map[streamKey]*streamState{}, exiting: map[streamKey]chan struct{}{},
		ctx: ctx, cancel: cancel, lease: c.Lease, onSynced: c.OnSynced}
	// Snapshot IDs only grow, across restarts of the process too.
	n.snapSeq.Store(uint64(time.Now().UnixNano()))
	if opts.NearCacheEntries > 0 {
		n.near = newNearCache(opts.NearCacheEntries, opts.NearCacheTTL)
	}
	n.intr = newInterests(1 << 20)
	n.invq = make(chan invalidation, 1<<14)
	if !c.Observer.node.CompareAndSwap(nil, n) || !c.Handler.node.CompareAndSwap(nil, n) {
		cancel()
		return nil, errors.New("observer or handler already bound to another node")
	}
	n.wg.Add(1)
	go n.sendInvalidations()
	return n, nil
}

// ID returns the node's ID.
func (n *Node) ID() ring.NodeID { return n.id }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{Forwarded: n.forwarded.Load(), Retries: n.retries.Load(), Fenced: n.fenced.Load(), Applied: n.applied.Load(),
		SnapshotsSent: n.snapsSent.Load(), Resyncs: n.resyncs.Load(), SnapshotsReceived: n.snapsRecv.Load(),
		SnapshotRecords: n.snapRecords.Load(), Dropped: n.dropped.Load(), Batches: n.batches.Load()}
}

// Table returns the current partition table (nil before SetTable). It
// must not be modified.
func (n *Node) Table() *ring.Table {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.table
}

// SetTable installs a new partition table and the data address of each
// node in it. A table older than the current one is refused. The node
// starts or stops replication streams for the partitions it leads (a new
// follower first gets a snapshot), and in the background drops from its
// store the partitions it no longer owns, once their streams stopped.
func (n *Node) SetTable(t *ring.Table, addrs map[ring.NodeID]string) error {
	if t == nil {
		return errors.New("nil partition table")
	}
	if t.Partitions() != len(n.parts) {
		return fmt.Errorf("table has %d partitions, the store %d", t.Partitions(), len(n.parts))
	}
	for _, own := range t.Owners {
		for _, o := range own {
			if _, ok := addrs[o]; !ok && o != n.id {
				return fmt.Errorf("no address for node %s", o)
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("cluster node closed")
	}
	if n.table != nil && t.Epoch < n.table.Epoch {
		return fmt.Errorf("table epoch %d is older than the current %d", t.Epoch, n.table.Epoch)
	}
	n.table = t
	n.addrs = maps.Clone(addrs)
	// Two members may share an address: a node restarted in place comes
	// back under a new id while the control plane still lists the old
	// one (failed). The one that owns partitions in t is the sender of
	// streams; taking the other at random left its copies stuck.
	owning := map[ring.NodeID]bool{}
	for _, own := range t.Owners {
		for _, id := range own {
			owning[id] = true
		}
	}
	n.byAddr = make(map[string]ring.NodeID, len(addrs))
	for _, id := range slices.Sorted(maps.Keys(addrs)) {
		a := addrs[id]
		if prev, ok := n.byAddr[a]; !ok || owning[id] && !owning[prev] {
			n.byAddr[a] = id
		}
	}
	want := map[streamKey]*replication.Log{}
	var drops []int
	live := map[ring.NodeID]bool{}
	for _, own := range t.Owners {
		for _, o := range own {
			live[o] = true
		}
	}
	handoffs := map[ring.NodeID][]uint64{}
	for p, own := range t.Owners {
		ps := &n.parts[p]
		primary := len(own) > 0 && own[0] == n.id && ps.steppedDown.Load() <= t.Epoch
		r0, r1 := ps.role.Load(), &partRole{owner: slices.Contains(own, n.id)}
		if len(own) > 0 {
			r1.primary = own[0]
		}
		if r0 != nil {
			r1.era = r0.era
		}
		if r0 == nil || r0.primary != r1.primary || r0.owner && !r1.owner {
			r1.era++
		}
		ps.role.Store(r1)
		if primary && r0 != nil && r0.primary != "" && r0.primary != n.id && live[r0.primary] {
			// Planned move: the old primary is alive and may still think
			// it leads until its table arrives. Hold consistent operations
			// until it confirms it stopped.
			ps.handoff.Store(t.Epoch)
			handoffs[r0.primary] = append(handoffs[r0.primary], uint64(p))
		} else if !primary {
			ps.handoff.Store(0)
		}
		if !r1.owner && (r0 == nil || r0.owner) {
			drops = append(drops, p)
		}
		lg := ps.log.Load()
		if primary {
			if lg == nil {
				lg = replication.New(n.opts.BacklogBytes)
				ps.log.Store(lg)
			}
			var fs []string
			for _, f := range own[1:] {
				fs = append(fs, string(f))
				want[streamKey{p, f}] = lg
			}
			// A new follower starts at the current position; its stream
			// sends it a snapshot first (see stream), and writes from
			// now on wait for it.
			lg.SetFollowers(fs, lg.Last())
			ps.primary.Store(true)
		} else {
			// Stop leading before retiring the log: a consistent read
			// then either sees it no longer leads or a changed era
			// (readEra).
			ps.primary.Store(false)
			if lg != nil {
				lg.Retire()
			}
		}
	}
	for k, ch := range n.exiting {
		select {
		case <-ch:
			delete(n.exiting, k)
		default:
		}
	}
	for k, s := range n.streams {
		if want[k] == nil {
			s.stop()
			n.exiting[k] = s.exited
			delete(n.streams, k)
		}
	}
	for k, lg := range want {
		if n.streams[k] == nil {
			ctx, stop := context.WithCancel(n.ctx)
			s := &streamState{p: k.p, to: k.to, stop: stop, exited: make(chan struct{}), prev: n.exiting[k]}
			delete(n.exiting, k)
			n.streams[k] = s
			n.wg.Add(1)
			go n.stream(ctx, s, lg)
		}
	}
	if len(drops) > 0 {
		// Drop only once the partitions' streams stopped (an export in
		// progress must not see a half-dropped partition).
		waits := make([][]chan struct{}, len(drops))
		for i, p := range drops {
			for k, ch := range n.exiting {
				if k.p == p {
					waits[i] = append(waits[i], ch)
				}
			}
		}
		n.wg.Add(1)
		go n.dropUnowned(drops, waits)
	}
	for old, parts := range handoffs {
		n.wg.Add(1)
		go n.handoff(t.Epoch, old, addrs[old], parts)
	}
	if n.near != nil {
		n.near.clear() // the new owners do not know the old registrations
	}
	close(n.changed)
	n.changed = make(chan struct{})
	return nil
}

// view returns the current table, addresses and change channel.
func (n *Node) view() (*ring.Table, map[ring.NodeID]string, <-chan struct{}) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.table, n.addrs, n.changed
}

// Close stops the replication streams and waits for them. It does not
// close the store or the transport.
func (n *Node) Close() error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
	return nil
}

// onEvent appends a change of a partition this node leads to its log.
func (n *Node) onEvent(ev *store.Event) {
	for _, to := range n.intr.take(ev.Map, ev.Key) {
		select {
		case n.invq <- invalidation{to: to, m: ev.Map, k: string(ev.Key)}:
		default:
			n.invDropped.Add(1) // the entry expires by its TTL
		}
	}
	p := n.st.PartitionOf(ev.Key)
	ps := &n.parts[p]
	if !ps.primary.Load() {
		return
	}
	lg := ps.log.Load()
	if lg == nil {
		return
	}
	e := replication.Entry{Map: ev.Map, Key: ev.Key, Delete: ev.Kind == store.EventDelete}
	if !e.Delete {
		e.Value = ev.Value
		if e.Value == nil {
			e.Value = []byte{}
		}
		e.ExpireAt, e.Created = ev.ExpireAt, ev.Created
	}
	lg.Append(e)
}

// Get returns the value of key in map mapName. A consistent read is served
// by the partition's primary; an eventual one may be served by this
// node's replica copy, and may be stale.
func (n *Node) Get(ctx context.Context, mapName string, key []byte, consistent bool) ([]byte, bool, error) {
	r := &Request{Op: OpGet, Map: mapName, Key: key}
	if consistent {
		r.Flags |= FlagConsistent
	}
	resp, err := n.do(ctx, r)
	if err != nil {
		return nil, false, err
	}
	return resp.Value, resp.Flags&FlagFound != 0, nil
}

// Set writes key = value in map mapName on the partition's primary and
// returns as ack says. Supported options: ExpireAt, KeepTTL, Cond (the
// sequence and old-value options are not carried yet and are refused).
func (n *Node) Set(ctx context.Context, mapName string, key, value []byte, o store.SetOptions, ack Ack) error {
	if o.HasSeq || o.ReturnOld {
		return errors.New("cluster Set does not support sequence numbers or returning the old value yet")
	}
	if ack > AckNone {
		return fmt.Errorf("unknown ack level %d", ack)
	}
	r := &Request{Op: OpSet, Map: mapName, Key: key, Value: value, ExpireAt: o.ExpireAt, Cond: uint8(o.Cond)}
	if o.KeepTTL {
		r.Flags |= FlagKeepTTL
	}
	r.SetAck(ack)
	_, err := n.do(ctx, r)
	return err
}

// Delete removes key from map mapName on the partition's primary and
// reports whether it was present (always false with AckNone).
func (n *Node) Delete(ctx context.Context, mapName string, key []byte, ack Ack) (bool, error) {
	if ack > AckNone {
		return false, fmt.Errorf("unknown ack level %d", ack)
	}
	r := &Request{Op: OpDelete, Map: mapName, Key: key}
	r.SetAck(ack)
	resp, err := n.do(ctx, r)
	if err != nil {
		return false, err
	}
	return resp.Flags&FlagFound != 0, nil
}

// do routes r to the owner of its key, retrying retryable failures until
// ctx ends (or Options.RequestTimeout if ctx has no deadline).
func (n *Node) do(ctx context.Context, r *Request) (*Response, error) {
	return retry(ctx, n, func(ctx context.Context, t *ring.Table, addrs map[ring.NodeID]string) (*Response, error) {
		return n.attempt(ctx, t, addrs, r)
	}, func(err error, _ int) bool { return !errors.Is(err, ErrReplicaTimeout) })
}

// attempt makes one try of r by table t.
func (n *Node) attempt(ctx context.Context, t *ring.Table, addrs map[ring.NodeID]string, r *Request) (*Response, error) {
	if t == nil {
		return nil, ErrNoTable
	}
	p := t.PartitionOf(r.Key)
	own := t.Owners[p]
	if len(own) == 0 {
		return nil, fmt.Errorf("%w: partition %d", ErrNoTable, p)
	}
	if own[0] == n.id || (r.Op == OpGet && r.Flags&FlagConsistent == 0 && slices.Contains(own, n.id) && n.Readable(p)) {
		return responseError(n.exec(ctx, p, r, own[0] == n.id), n.id)
	}
	r.Epoch = t.Epoch
	r.TimeoutMs = 0
	if d, ok := ctx.Deadline(); ok {
		// The owner stops waiting a little before we do, so its answer
		// (say, replicas too slow) reaches us.
		r.TimeoutMs = uint64(max(time.Until(d)*9/10, time.Millisecond) / time.Millisecond)
	}
	addr := addrs[own[0]]
	n.forwarded.Add(1)
	if r.Ack() == AckNone && r.Op != OpGet {
		if err := n.tr.Send(ctx, addr, KindData, AppendRequest(nil, r)); err != nil {
			return nil, fmt.Errorf("%w: %s (%s): %w", ErrUnreachable, own[0], addr, err)
		}
		return &Response{}, nil
	}
	b, err := n.tr.Call(ctx, addr, KindData, AppendRequest(nil, r))
	if err != nil {
		var re *transport.RemoteError
		if errors.As(err, &re) {
			return nil, err
		}
		if r.Op != OpGet && !errors.Is(err, transport.ErrNotSent) && ctx.Err() == nil {
			// As for forwarded commands (callResp): the owner may have
			// applied the write before the connection broke, so it is
			// not sent again (it could overwrite later writes).
			return nil, fmt.Errorf("%w: %s (%s): %w", ErrWriteInDoubt, own[0], addr, err)
		}
		return nil, fmt.Errorf("%w: %s (%s): %w", ErrUnreachable, own[0], addr, err)
	}
	resp, err := DecodeResponse(b)
	if err != nil {
		return nil, err
	}
	if resp.Status == StatusWrongEpoch {
		return nil, fmt.Errorf("%w: %s has epoch %d, this node %d", ErrWrongEpoch, own[0], resp.Epoch, t.Epoch)
	}
	return responseError(resp, own[0])
}

// responseError turns a failed response into its error.
func responseError(resp *Response, from ring.NodeID) (*Response, error) {
	switch resp.Status {
	case StatusOK:
		return resp, nil
	case StatusWrongEpoch:
		return nil, fmt.Errorf("%w: %s has epoch %d", ErrWrongEpoch, from, resp.Epoch)
	case StatusNotOwner:
		return nil, fmt.Errorf("%w: %s: %s", ErrNotOwner, from, resp.Message)
	case StatusRetry:
		if resp.Flags&FlagApplied != 0 {
			return nil, fmt.Errorf("%w: %s: %s", ErrReplicaTimeout, from, resp.Message)
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrBacklog, from, resp.Message)
	}
	return nil, errorOf(resp.Code, string(from), resp.Message)
}

// serve answers a message from the node at address from.
func (n *Node) serve(ctx context.Context, from string, r *Request) *Response {
	t, _, _ := n.view()
	var epoch uint64
	if t != nil {
		epoch = t.Epoch
	}
	if r.Op == OpStepDown {
		return n.stepDown(r)
	}
	if r.Op == OpInvalidate {
		if n.near != nil {
			n.near.invalidate(r.Map, string(r.Key))
		}
		return &Response{Epoch: epoch}
	}
	if r.Op == OpPubSub {
		resp := n.servePubSub(r)
		resp.Epoch = epoch
		return resp
	}
	// Fencing. A request from a node with a newer table than this one is
	// refused: this node may no longer own what it is asked for. A client
	// request from a node with an older table is served if this node leads
	// the partition in its own, newer table (checked per partition below):
	// the sender routed right, and a node that cannot learn newer tables
	// (one that just left the control plane) must not have its requests
	// refused until they time out. Replication stays strictly fenced.
	clientOp := r.Op == OpCommand || r.Op == OpScatter || r.Op == OpBatch || r.Op == OpGet || r.Op == OpSet || r.Op == OpDelete
	if t == nil || r.Epoch > t.Epoch || (r.Epoch < t.Epoch && !clientOp) {
		n.fenced.Add(1)
		return &Response{Status: StatusWrongEpoch, Epoch: epoch, Message: fmt.Sprintf("request epoch %d, node epoch %d", r.Epoch, epoch)}
	}
	switch r.Op {
	case OpReplicate, OpSnapshotBegin, OpSnapshot, OpSnapshotEnd:
		resp := n.serveReplica(from, t, r)
		resp.Epoch = epoch
		return resp
	}
	if r.TimeoutMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(r.TimeoutMs)*time.Millisecond)
		defer cancel()
	}
	if r.Op == OpBatch {
		resp := n.serveBatch(ctx, from, t, r)
		resp.Epoch = epoch
		return resp
	}
	if r.Op == OpCommand || r.Op == OpScatter {
		resp := n.serveCommand(ctx, from, t, r)
		resp.Epoch = epoch
		return resp
	}
	p := t.PartitionOf(r.Key)
	if t.Primary(p) != n.id {
		return &Response{Status: StatusNotOwner, Epoch: epoch, Message: fmt.Sprintf("partition %d is led by %q", p, t.Primary(p))}
	}
	if r.Ack() == AckNone {
		r.SetAck(AckPrimary) // the sender did not wait; nobody reads the answer
	}
	resp := n.exec(ctx, p, r, true)
	resp.Epoch = epoch
	return resp
}

// exec runs r on the local store: as the partition's primary, or (for an
// eventual read) as one of its owners.
func (n *Node) exec(ctx context.Context, p int, r *Request, primary bool) *Response {
	switch r.Op {
	case OpGet:
		consistent := primary && r.Flags&FlagConsistent != 0
		var lg *replication.Log
		var era uint64
		if consistent {
			if err := n.leaseOK(); err != nil {
				return &Response{Status: StatusRetry, Code: CodeNoQuorum, Message: err.Error()}
			}
			var err error
			if lg, era, err = n.readEra(p); err != nil {
				return &Response{Status: StatusNotOwner, Message: err.Error()}
			}
		}
		m, ok := n.st.Lookup([]byte(r.Map))
		if !ok {
			return &Response{}
		}
		v, found := m.Get(nil, r.Key)
		if consistent {
			if err := n.readBarrier(ctx, p, lg, era); err != nil {
				return &Response{Status: StatusRetry, Message: err.Error()}
			}
		}
		resp := &Response{Value: v}
		if found {
			resp.Flags |= FlagFound
		}
		return resp
	case OpSet, OpDelete:
		if !primary {
			return &Response{Status: StatusNotOwner, Message: "not the primary"}
		}
		return n.write(ctx, p, r)
	}
	return &Response{Status: StatusError, Message: fmt.Sprintf("op %d cannot be executed", r.Op)}
}

// write applies a Set or Delete as the partition's primary, then waits as
// its ack level says.
func (n *Node) write(ctx context.Context, p int, r *Request) *Response {
	ps := &n.parts[p]
	lg := ps.log.Load()
	if lg == nil || !ps.primary.Load() {
		return &Response{Status: StatusNotOwner, Message: fmt.Sprintf("not the primary of partition %d", p)}
	}
	if err := lg.Admit(); err != nil {
		return &Response{Status: StatusRetry, Message: err.Error()}
	}
	m, err := n.st.OpenMap(r.Map)
	if err != nil {
		return &Response{Status: StatusError, Code: codeOf(err), Message: err.Error()}
	}
	var done bool
	ps.mu.Lock()
	if !ps.primary.Load() {
		// Demoted meanwhile (and maybe no longer an owner, its copy
		// about to be dropped).
		ps.mu.Unlock()
		return &Response{Status: StatusNotOwner, Message: fmt.Sprintf("no longer the primary of partition %d", p)}
	}
	if r.Op == OpSet {
		o := store.SetOptions{ExpireAt: r.ExpireAt, KeepTTL: r.Flags&FlagKeepTTL != 0, Cond: store.Cond(r.Cond)}
		var res store.SetResult
		res, err = m.Set(r.Key, r.Value, o)
		done = res.Written
	} else {
		done = m.Delete(r.Key)
	}
	lsn := lg.Last()
	ps.mu.Unlock()
	if err != nil {
		return &Response{Status: StatusError, Code: codeOf(err), Message: err.Error()}
	}
	resp := &Response{LSN: lsn}
	if done {
		resp.Flags |= FlagFound
	}
	if r.Ack() != AckAll {
		return resp
	}
	wctx, cancel := n.ackContext(ctx)
	defer cancel()
	if err := lg.Wait(wctx, lsn); err != nil {
		return &Response{Status: StatusRetry, Flags: resp.Flags | FlagApplied, LSN: lsn,
			Message: fmt.Sprintf("partition %d: %v", p, err)}
	}
	return resp
}

// applyEntry applies one replicated change (or snapshot record).
func (n *Node) applyEntry(e *WireEntry) error {
	ps := &n.parts[n.st.PartitionOf(e.Key)]
	ps.applying.Add(1)
	defer ps.applying.Add(-1)
	if e.Delete {
		if m, ok := n.st.Lookup([]byte(e.Map)); ok {
			m.Delete(e.Key)
		}
		return nil
	}
	wrote, err := n.st.Import(store.Record{Map: e.Map, Key: e.Key, Value: e.Value, ExpireAt: e.ExpireAt, Created: e.Created}, false)
	if err != nil {
		return err
	}
	if !wrote && e.ExpireAt != 0 {
		// Already expired: the older value it replaced must go too.
		if m, ok := n.st.Lookup([]byte(e.Map)); ok {
			m.Delete(e.Key)
		}
	}
	return nil
}
