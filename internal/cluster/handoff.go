package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/engramdb/engram/internal/ring"
)

// Planned moves: when a table makes this node primary of partitions that
// a live node led, that node may go on answering as primary until its own
// copy of the table arrives (milliseconds, but enough for a stale read).
// The new primary therefore holds consistent operations on those
// partitions (ps.handoff) and asks the old one to stop (OpStepDown); the
// old one stops at once, even before it installs the table, and answers.
// If it cannot be reached, the new primary serves after HandoffWait, by
// which time an unreachable node's lease has expired and it refuses
// consistent operations by itself. Failovers (the old primary is not in
// the table any more) need no handoff: failure detection took longer
// than the lease.

// handoff asks old to stop leading parts (moved to this node by the table
// of epoch), then releases them here.
func (n *Node) handoff(epoch uint64, old ring.NodeID, addr string, parts []uint64) {
	defer n.wg.Done()
	deadline := time.Now().Add(n.opts.HandoffWait)
	req := AppendRequest(nil, &Request{Op: OpStepDown, Epoch: epoch, Parts: parts})
	backoff := n.opts.RetryMin
	for time.Now().Before(deadline) && n.ctx.Err() == nil {
		ctx, cancel := context.WithDeadline(n.ctx, deadline)
		b, err := n.tr.Call(ctx, addr, KindData, req)
		cancel()
		if err == nil {
			if resp, derr := DecodeResponse(b); derr == nil && resp.Status == StatusOK {
				break
			}
		}
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-n.ctx.Done():
		}
		timer.Stop()
		backoff = min(2*backoff, n.opts.RetryMax)
	}
	for _, p := range parts {
		n.parts[p].handoff.CompareAndSwap(epoch, 0)
	}
	n.mu.Lock()
	close(n.changed) // wake requests retrying on these partitions
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

// stepDown serves OpStepDown: stop leading the partitions now (and keep
// tables older than r.Epoch from making this node their primary again).
func (n *Node) stepDown(r *Request) *Response {
	for _, p := range r.Parts {
		if p >= uint64(len(n.parts)) {
			return &Response{Status: StatusError, Message: fmt.Sprintf("no partition %d", p)}
		}
	}
	t, _, _ := n.view()
	if t != nil && t.Epoch > r.Epoch {
		// A newer table than the move's is installed here: it decides
		// (this node may lead some of them again by now).
		return &Response{Epoch: t.Epoch}
	}
	for _, p := range r.Parts {
		ps := &n.parts[p]
		for {
			cur := ps.steppedDown.Load()
			if cur >= r.Epoch || ps.steppedDown.CompareAndSwap(cur, r.Epoch) {
				break
			}
		}
		// Under the write mutex: a write in progress finishes (and its
		// waiters learn the log retired), none starts as primary after.
		ps.mu.Lock()
		ps.primary.Store(false)
		if lg := ps.log.Load(); lg != nil {
			lg.Retire()
		}
		ps.mu.Unlock()
	}
	// The events these partitions produced here reach subscribers before
	// the new primary's (bounded: the new primary waits for this answer).
	n.drainPubSub(n.opts.HandoffWait / 3)
	var epoch uint64
	if t != nil {
		epoch = t.Epoch
	}
	return &Response{Epoch: epoch}
}
