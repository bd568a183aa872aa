package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/replication"
	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/transport"
)

// Command is a client command routed through the cluster as its argument
// vector: the node that owns the data runs it through its own command
// table, so every command has one implementation whichever node a client
// talks to.
type Command struct {
	// Map is the map the client's connection has selected.
	Map string
	// Args is the command and its arguments, as the client sent them.
	Args [][]byte
	// RESP3 asks for the reply in RESP3 (the client's protocol).
	RESP3 bool
	// Write marks a command that changes data: it runs under the
	// partition's write guard and waits for replicas as Ack says.
	Write bool
	// Ack says when a write returns.
	Ack Ack
	// Eventual allows a read to be served by any owner's copy (READONLY
	// connections), which may be stale.
	Eventual bool
	// NearKey, for an eventual single-key read whose reply depends only
	// on that key's value (GET), names the key: with a near cache the
	// reply may be served from, and kept in, this node's near cache.
	NearKey []byte
}

// Executor runs commands this node received from other nodes. The front
// end (the RESP server) implements it; Exec must run the command locally
// (through Node.Local), never forward it again.
type Executor interface {
	// Exec runs c, whose keys all fall in partition p, and returns its
	// reply in the client's protocol.
	Exec(ctx context.Context, p int, c *Command) ([]byte, error)
	// ExecScatter runs c restricted to partitions parts (which this node
	// leads) and returns the reply for that share of the data.
	ExecScatter(ctx context.Context, parts []int, c *Command) ([]byte, error)
}

type executorBox struct{ Executor }

// SetExecutor installs the executor of forwarded commands. Until it is
// set, forwarded commands are refused as retryable.
func (n *Node) SetExecutor(e Executor) { n.exec2.Store(&executorBox{e}) }

// Lease errors.
var (
	// ErrNoQuorum: this node has lost contact with the control plane's
	// majority for longer than the lease, so it refuses consistent
	// operations rather than risk split-brain answers. Retryable: the
	// answer changes when the network heals or a new table reaches it.
	ErrNoQuorum = retryable("no contact with the cluster majority (lease expired): consistent operations are refused on this side of a network split")
)

// Local runs fn as the owner of partition p on behalf of c: for a write,
// as the primary, after admission by the replication log, under the
// partition's write mutex (so the log position read after fn covers
// every change fn made), then waits for the replicas as c.Ack says. A
// consistent read runs on the primary; an eventual read on any owner.
// It returns ErrNotOwner (retryable) without calling fn if this node is
// not the right owner, and ErrReplicaTimeout if fn ran but replicas did
// not acknowledge in time.
func (n *Node) Local(ctx context.Context, p int, c *Command, fn func()) error {
	t, _, _ := n.view()
	if t == nil {
		return ErrNoTable
	}
	if p < 0 || p >= t.Partitions() {
		return fmt.Errorf("no partition %d", p)
	}
	ps := &n.parts[p]
	if (c.Write || !c.Eventual) && ps.handoff.Load() != 0 {
		return fmt.Errorf("%w: %s is taking partition %d over (waiting for the previous primary to stop)", ErrNotOwner, n.id, p)
	}
	if !c.Write {
		switch {
		case ps.primary.Load():
			if !c.Eventual {
				if err := n.leaseOK(); err != nil {
					return err
				}
				lg, era, err := n.readEra(p)
				if err != nil {
					return err
				}
				fn()
				return n.readBarrier(ctx, p, lg, era)
			}
		case c.Eventual && slices.Contains(t.Owners[p], n.id) && n.Readable(p):
		default:
			return fmt.Errorf("%w: %s is not the primary of partition %d", ErrNotOwner, n.id, p)
		}
		fn()
		return nil
	}
	if err := n.leaseOK(); err != nil {
		return err
	}
	lg := ps.log.Load()
	if lg == nil || !ps.primary.Load() {
		return fmt.Errorf("%w: %s is not the primary of partition %d", ErrNotOwner, n.id, p)
	}
	if err := lg.Admit(); err != nil {
		return fmt.Errorf("%w: partition %d: %v", ErrBacklog, p, err)
	}
	ps.mu.Lock()
	if !ps.primary.Load() {
		ps.mu.Unlock()
		return fmt.Errorf("%w: %s is no longer the primary of partition %d", ErrNotOwner, n.id, p)
	}
	fn()
	lsn := lg.Last()
	ps.mu.Unlock()
	if c.Ack != AckAll {
		return nil
	}
	wctx, cancel := n.ackContext(ctx)
	defer cancel()
	if err := lg.Wait(wctx, lsn); err != nil {
		return fmt.Errorf("%w: partition %d: %v", ErrReplicaTimeout, p, err)
	}
	return nil
}

// LocalParts runs fn, a read over the partitions in parts, on this node
// as their primary (the local share of a scatter). It returns ErrNotOwner
// without calling fn if this node does not lead them all.
func (n *Node) LocalParts(ctx context.Context, parts []int, c *Command, fn func()) error {
	for _, p := range parts {
		if p < 0 || p >= len(n.parts) || !n.parts[p].primary.Load() || n.parts[p].handoff.Load() != 0 {
			return fmt.Errorf("%w: %s is not the primary of partition %d", ErrNotOwner, n.id, p)
		}
	}
	if err := n.leaseOK(); err != nil {
		return err
	}
	logs := make([]*replication.Log, len(parts))
	eras := make([]uint64, len(parts))
	for i, p := range parts {
		var err error
		if logs[i], eras[i], err = n.readEra(p); err != nil {
			return err
		}
	}
	fn()
	for i, p := range parts {
		if err := n.readBarrier(ctx, p, logs[i], eras[i]); err != nil {
			return err
		}
	}
	return nil
}

// readEra returns partition p's log and its era, for a consistent read
// about to run on this node as primary (see readBarrier). It checks
// again that this node leads p after taking the era: a node stops leading
// before it retires the log, so a read either sees that or a later era.
func (n *Node) readEra(p int) (*replication.Log, uint64, error) {
	ps := &n.parts[p]
	lg := ps.log.Load()
	var era uint64
	if lg != nil {
		era = lg.Era()
	}
	if !ps.primary.Load() || ps.log.Load() != lg {
		return nil, 0, fmt.Errorf("%w: %s is no longer the primary of partition %d", ErrNotOwner, n.id, p)
	}
	return lg, era, nil
}

// readBarrier returns once every complete replica of partition p has
// acknowledged the writes a consistent read just ran on this primary may
// have seen (replication.Log.WaitReadable), or ErrReadUnconfirmed: the
// read's reply must then be discarded. Usually nothing is pending and it
// returns at once.
func (n *Node) readBarrier(ctx context.Context, p int, lg *replication.Log, era uint64) error {
	if lg == nil {
		return nil
	}
	ctx, cancel := n.ackContext(ctx)
	defer cancel()
	if err := lg.WaitReadable(ctx, era); err != nil {
		return fmt.Errorf("%w: partition %d: %v", ErrReadUnconfirmed, p, err)
	}
	return nil
}

// ackContext bounds a wait for replicas by Options.AckTimeout when ctx
// has no deadline of its own.
func (n *Node) ackContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, n.opts.AckTimeout)
}

// leaseOK returns ErrNoQuorum when the configured lease says this node
// may be on the minority side of a split.
func (n *Node) leaseOK() error {
	if n.lease == nil {
		return nil
	}
	if err := n.lease(); err != nil {
		return fmt.Errorf("%w: %v", ErrNoQuorum, err)
	}
	return nil
}

// Run runs c, whose keys all fall in partition p, where it belongs: if
// this node is the place (the primary, or an owner for an eventual read)
// it calls local through Local and returns (nil, err); otherwise it
// forwards c to the primary and returns the reply bytes. Retryable
// failures are retried, with a fresh table, until ctx ends (or
// Options.RequestTimeout if ctx has no deadline). An error after a write
// ran (ErrReplicaTimeout) is returned at once: local has already written
// its reply, which the caller must replace.
func (n *Node) Run(ctx context.Context, p int, c *Command, local func()) ([]byte, error) {
	return retry(ctx, n, func(ctx context.Context, t *ring.Table, addrs map[ring.NodeID]string) ([]byte, error) {
		return n.runOnce(ctx, t, addrs, p, c, local)
	}, func(err error, attempt int) bool {
		return !errors.Is(err, ErrReplicaTimeout) && !(errors.Is(err, ErrNoQuorum) && attempt > 0)
	})
}

// retry calls try (with ctx bounded as below) and the current table until it succeeds, fails with
// an error that is not retryable or that again says no (again(err,
// attempt) false), or ctx ends (bounded by Options.RequestTimeout when ctx
// has no deadline). Between attempts it backs off from RetryMin to
// RetryMax, woken early by a new table.
func retry[T any](ctx context.Context, n *Node, try func(context.Context, *ring.Table, map[ring.NodeID]string) (T, error), again func(err error, attempt int) bool) (T, error) {
	var zero T
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.opts.RequestTimeout)
		defer cancel()
	}
	var last error
	backoff := n.opts.RetryMin
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, giveUp(last, err)
		}
		if attempt > 0 {
			n.retries.Add(1)
		}
		t, addrs, changed := n.view()
		v, err := try(ctx, t, addrs)
		if err == nil {
			return v, nil
		}
		if !IsRetryable(err) || errors.Is(err, ErrWriteInDoubt) || !again(err, attempt) {
			return zero, err
		}
		last = err
		timer := time.NewTimer(backoff)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		backoff = min(2*backoff, n.opts.RetryMax)
	}
}

func (n *Node) runOnce(ctx context.Context, t *ring.Table, addrs map[ring.NodeID]string, p int, c *Command, local func()) ([]byte, error) {
	if t == nil {
		return nil, ErrNoTable
	}
	if p < 0 || p >= t.Partitions() {
		return nil, fmt.Errorf("no partition %d", p)
	}
	own := t.Owners[p]
	if len(own) == 0 {
		return nil, fmt.Errorf("%w: partition %d", ErrNoTable, p)
	}
	if own[0] == n.id || (!c.Write && c.Eventual && slices.Contains(own, n.id) && n.Readable(p)) {
		return nil, n.Local(ctx, p, c, local)
	}
	r := &Request{Op: OpCommand, Epoch: t.Epoch, Map: c.Map, Partition: uint64(p), Args: c.Args}
	n.commandFlags(r, c)
	if n.near == nil || c.NearKey == nil || !c.Eventual || c.Write {
		return n.call(ctx, own[0], addrs[own[0]], t, r)
	}
	nk := nearKey{m: c.Map, k: string(c.NearKey), resp3: c.RESP3}
	if reply, ok := n.near.get(nk); ok {
		return reply, nil
	}
	token := n.near.begin(nk)
	r.Flags |= FlagNearCache
	resp, err := n.callResp(ctx, own[0], addrs[own[0]], t, r)
	if err != nil {
		return nil, err
	}
	if resp.Flags&FlagCacheable != 0 && len(resp.Value) > 0 && resp.Value[0] != '-' {
		n.near.store(nk, token, resp.Value)
	}
	return resp.Value, nil
}

func (n *Node) commandFlags(r *Request, c *Command) {
	r.SetAck(c.Ack)
	if c.RESP3 {
		r.Flags |= FlagRESP3
	}
	if !c.Eventual {
		r.Flags |= FlagConsistent
	}
	if c.Write {
		r.Flags |= FlagWrite
	}
}

// call sends r to node to and returns the reply bytes of a command.
func (n *Node) call(ctx context.Context, to ring.NodeID, addr string, t *ring.Table, r *Request) ([]byte, error) {
	resp, err := n.callResp(ctx, to, addr, t, r)
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

// callResp is call returning the whole response.
func (n *Node) callResp(ctx context.Context, to ring.NodeID, addr string, t *ring.Table, r *Request) (*Response, error) {
	if d, ok := ctx.Deadline(); ok {
		// The owner stops waiting a little before we do, so its answer
		// (say, replicas too slow) reaches us.
		r.TimeoutMs = uint64(max(time.Until(d)*9/10, time.Millisecond) / time.Millisecond)
	}
	n.forwarded.Add(1)
	b, err := n.tr.Call(ctx, addr, KindData, AppendRequest(nil, r))
	if err != nil {
		if r.Op == OpCommand && r.Flags&FlagWrite != 0 && !errors.Is(err, transport.ErrNotSent) && ctx.Err() == nil {
			// The owner may have run the write before the connection
			// broke: sending it again (to it, or to the next primary,
			// which may have its replicated effect) could run it twice.
			return nil, fmt.Errorf("%w: %s (%s): %w", ErrWriteInDoubt, to, addr, err)
		}
		return nil, fmt.Errorf("%w: %s (%s): %w", ErrUnreachable, to, addr, err)
	}
	resp, err := DecodeResponse(b)
	if err != nil {
		return nil, err
	}
	if resp.Status == StatusWrongEpoch {
		return nil, fmt.Errorf("%w: %s has epoch %d, this node %d", ErrWrongEpoch, to, resp.Epoch, t.Epoch)
	}
	if resp.Status == StatusRetry && resp.Code == CodeNoQuorum {
		return nil, fmt.Errorf("%w: %s: %s", ErrNoQuorum, to, resp.Message)
	}
	return responseError(resp, to)
}

// Scatter runs c over every partition: the primary of each answers for
// the partitions it leads (local for this node's share). It returns one
// reply per node consulted. If any node refuses (the table changed) or
// cannot be reached, the whole scatter is retried with a fresh table
// until ctx ends, so every partition is answered exactly once by the
// primary of one table. Commands scattered must be safe to repeat.
func (n *Node) Scatter(ctx context.Context, c *Command, local func(parts []int) ([]byte, error)) ([][]byte, error) {
	return retry(ctx, n, func(ctx context.Context, t *ring.Table, addrs map[ring.NodeID]string) ([][]byte, error) {
		return n.scatterOnce(ctx, t, addrs, c, local)
	}, func(err error, attempt int) bool {
		return !(errors.Is(err, ErrNoQuorum) && attempt > 0)
	})
}

func (n *Node) scatterOnce(ctx context.Context, t *ring.Table, addrs map[ring.NodeID]string, c *Command, local func(parts []int) ([]byte, error)) ([][]byte, error) {
	if t == nil {
		return nil, ErrNoTable
	}
	byNode := map[ring.NodeID][]uint64{}
	for p, own := range t.Owners {
		if len(own) == 0 {
			return nil, fmt.Errorf("%w: partition %d", ErrNoTable, p)
		}
		byNode[own[0]] = append(byNode[own[0]], uint64(p))
	}
	type result struct {
		reply []byte
		err   error
	}
	nodes := make([]ring.NodeID, 0, len(byNode))
	for id := range byNode {
		if id != n.id {
			nodes = append(nodes, id)
		}
	}
	slices.Sort(nodes)
	results := make([]result, len(nodes))
	var pending atomic.Int32
	done := make(chan struct{})
	if len(nodes) == 0 {
		close(done)
	}
	pending.Store(int32(len(nodes)))
	for i, id := range nodes {
		r := &Request{Op: OpScatter, Epoch: t.Epoch, Map: c.Map, Args: c.Args, Parts: byNode[id]}
		n.commandFlags(r, c)
		r.Flags |= FlagConsistent
		go func() {
			b, err := n.call(ctx, id, addrs[id], t, r)
			results[i] = result{b, err}
			if pending.Add(-1) == 0 {
				close(done)
			}
		}()
	}
	var replies [][]byte
	if mine := byNode[n.id]; len(mine) > 0 {
		if err := n.leaseOK(); err != nil {
			<-done
			return nil, err
		}
		parts := make([]int, len(mine))
		for i, p := range mine {
			parts[i] = int(p)
		}
		b, err := local(parts)
		if err != nil {
			<-done
			return nil, err
		}
		replies = append(replies, b)
	}
	<-done
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		replies = append(replies, r.reply)
	}
	return replies, nil
}

// serveCommand answers OpCommand and OpScatter (epoch already checked).
func (n *Node) serveCommand(ctx context.Context, from string, t *ring.Table, r *Request) *Response {
	box := n.exec2.Load()
	if box == nil {
		return &Response{Status: StatusRetry, Message: ErrNotReady.Error()}
	}
	c := &Command{Map: r.Map, Args: r.Args, RESP3: r.Flags&FlagRESP3 != 0, Write: r.Flags&FlagWrite != 0,
		Ack: r.Ack(), Eventual: r.Flags&FlagConsistent == 0}
	if c.Ack > AckNone {
		return &Response{Status: StatusError, Message: fmt.Sprintf("unknown ack level %d", c.Ack)}
	}
	if len(c.Args) == 0 {
		return &Response{Status: StatusError, Message: "empty command"}
	}
	if r.Op == OpScatter {
		parts := make([]int, len(r.Parts))
		for i, p := range r.Parts {
			if p >= uint64(t.Partitions()) {
				return &Response{Status: StatusError, Message: fmt.Sprintf("no partition %d", p)}
			}
			if t.Primary(int(p)) != n.id {
				n.fenced.Add(1)
				return &Response{Status: StatusNotOwner, Message: fmt.Sprintf("partition %d is led by %q", p, t.Primary(int(p)))}
			}
			parts[i] = int(p)
		}
		if err := n.leaseOK(); err != nil {
			return &Response{Status: StatusRetry, Code: CodeNoQuorum, Message: err.Error()}
		}
		b, err := box.ExecScatter(ctx, parts, c)
		return commandResponse(b, err)
	}
	if r.Partition >= uint64(t.Partitions()) {
		return &Response{Status: StatusError, Message: fmt.Sprintf("no partition %d", r.Partition)}
	}
	p := int(r.Partition)
	if t.Primary(p) != n.id && !(c.Eventual && !c.Write && slices.Contains(t.Owners[p], n.id) && n.Readable(p)) {
		n.fenced.Add(1)
		return &Response{Status: StatusNotOwner, Message: fmt.Sprintf("partition %d is led by %q", p, t.Primary(p))}
	}
	// A near-caching reader is registered before the read, so a change
	// after the read is reported to it.
	cacheable := false
	if r.Flags&FlagNearCache != 0 && c.Eventual && !c.Write && len(c.Args) >= 2 {
		n.mu.RLock()
		src, known := n.byAddr[from]
		n.mu.RUnlock()
		cacheable = known && n.intr.register(r.Map, string(c.Args[1]), src)
	}
	b, err := box.Exec(ctx, p, c)
	resp := commandResponse(b, err)
	if cacheable {
		resp.Flags |= FlagCacheable
	}
	return resp
}

// commandResponse turns an executor's result into a response, keeping
// retryable errors retryable for the sender.
func commandResponse(b []byte, err error) *Response {
	switch {
	case err == nil:
		return &Response{Value: b}
	case errors.Is(err, ErrNotOwner), errors.Is(err, ErrNoTable):
		return &Response{Status: StatusNotOwner, Message: err.Error()}
	case errors.Is(err, ErrNoQuorum):
		return &Response{Status: StatusRetry, Code: CodeNoQuorum, Message: err.Error()}
	case errors.Is(err, ErrReplicaTimeout):
		return &Response{Status: StatusRetry, Flags: FlagApplied, Message: err.Error()}
	case IsRetryable(err):
		return &Response{Status: StatusRetry, Message: err.Error()}
	}
	return &Response{Status: StatusError, Code: codeOf(err), Message: err.Error()}
}
