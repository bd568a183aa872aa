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
	"github.com/engramdb/engram/internal/store"
)

// This file holds replication streams (primary side), snapshot transfer
// (both sides), the application of replicated entries (replica side) and
// the dropping of partitions no longer owned. See doc.go, "Snapshots".

// streamState is one stream of a partition's log to one follower.
type streamState struct {
	p      int
	to     ring.NodeID
	stop   context.CancelFunc
	exited chan struct{} // closed when the stream's goroutine returns
	prev   chan struct{} // the previous stream to the same follower, if it may still run

	// Progress, for Syncing.
	sent, total atomic.Int64
	caughtUp    atomic.Bool // the last snapshot completed and was acknowledged
	synced      bool        // OnSynced was called (stream goroutine only)
}

// SyncProgress is the state of one replication stream of a partition this
// node leads: the snapshot sent to a follower (the copy a migration or a
// new replica needs), then the live stream.
type SyncProgress struct {
	Partition int
	Follower  ring.NodeID
	// SentRecords counts the records of the current (or last) snapshot
	// the follower acknowledged; TotalRecords estimates the snapshot's
	// size (the partition's item count when it started).
	SentRecords, TotalRecords int64
	// Done: the follower completed the snapshot and acknowledged the log
	// position it started from (its copy is complete; it may lag).
	Done bool
}

// Syncing returns the state of every replication stream of the partitions
// this node leads, by partition then follower (for admin views: a stream
// not Done is a copy in progress).
func (n *Node) Syncing() []SyncProgress {
	n.mu.RLock()
	out := make([]SyncProgress, 0, len(n.streams))
	for _, s := range n.streams {
		out = append(out, SyncProgress{Partition: s.p, Follower: s.to, SentRecords: s.sent.Load(),
			TotalRecords: s.total.Load(), Done: s.caughtUp.Load()})
	}
	n.mu.RUnlock()
	slices.SortFunc(out, func(a, b SyncProgress) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		switch {
		case a.Follower < b.Follower:
			return -1
		case a.Follower > b.Follower:
			return 1
		}
		return 0
	})
	return out
}

// Readable reports whether this node holds a complete copy of partition p
// by its latest table: it is the primary, or a replica that completed a
// snapshot from the current primary (its copy may lag, as any replica's).
// A replica still receiving a snapshot must not serve reads from its
// partial copy.
func (n *Node) Readable(p int) bool {
	if p < 0 || p >= len(n.parts) {
		return false
	}
	ps := &n.parts[p]
	if ps.primary.Load() {
		return true
	}
	r := ps.role.Load()
	return r != nil && r.owner && ps.complete.Load() == r.era+1
}

// errRestart stops a snapshot that must start again.
var errRestart = errors.New("snapshot must start again")

// stream ships partition p's data to follower s.to until ctx ends: a
// snapshot first, then the log entries after the position the snapshot
// started from, in LSN order. It sends a new snapshot whenever the
// follower cannot continue from the log (entries dropped, or the follower
// refuses them).
func (n *Node) stream(ctx context.Context, s *streamState, lg *replication.Log) {
	defer n.wg.Done()
	defer close(s.exited)
	if s.prev != nil {
		select {
		case <-s.prev:
		case <-ctx.Done():
			return
		}
	}
	backoff := n.opts.RetryMin
	pause := func() {
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		backoff = min(2*backoff, n.opts.RetryMax)
	}
	var buf []byte
	var after uint64
	restarts := 0 // snapshots restarted in a row for the backlog
	need := true  // a snapshot before any entry
	again := false
	for ctx.Err() == nil {
		if need {
			lsn0, err := n.sendSnapshot(ctx, s, lg, again, &restarts, &buf)
			if errors.Is(err, replication.ErrNoLongerFollower) {
				return // SetTable stops this stream
			}
			if err != nil {
				continue // ctx ended
			}
			after, need, again, backoff = lsn0, false, true, n.opts.RetryMin
			continue
		}
		entries, err := lg.Read(ctx, after, n.opts.BatchEntries)
		if errors.Is(err, replication.ErrTrimmed) {
			need = true // (or no longer a follower: sendSnapshot says so)
			continue
		}
		if err != nil {
			continue // ctx ended
		}
		r := &Request{Op: OpReplicate, Partition: uint64(s.p), Entries: make([]WireEntry, len(entries))}
		for i, e := range entries {
			r.Entries[i] = WireEntry{LSN: e.LSN, Delete: e.Delete, Map: e.Map, Key: e.Key, Value: e.Value, ExpireAt: e.ExpireAt, Created: e.Created}
		}
		resp, err := n.replicaCall(ctx, s.to, r, &buf)
		switch {
		case err != nil:
			pause()
			continue
		case resp.Status != StatusOK && resp.Flags&FlagResync != 0:
			need = true
			continue
		case resp.Status != StatusOK:
			pause()
			continue
		}
		backoff = n.opts.RetryMin
		if resp.LSN > after {
			after = resp.LSN
			if err := n.ack(ctx, lg, s.to, after); err != nil {
				return // no longer a follower: SetTable stops this stream
			}
		}
	}
}

// ack records in the log that follower to applied everything up to lsn,
// unless the stream was stopped: a stream stopped by SetTable must not
// acknowledge for a later stream to the same follower (whose copy starts
// over).
func (n *Node) ack(ctx context.Context, lg *replication.Log, to ring.NodeID, lsn uint64) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	return lg.Ack(string(to), lsn)
}

// sendSnapshot sends a complete copy of the partition to the follower and
// returns the log position it covers: the follower applies the log
// entries after it. It starts again while the follower refuses it, or
// (up to Options.SnapshotRestarts times in a row) when the follower's
// backlog overflows meanwhile. It fails only when ctx ends or the
// follower was removed. again says the follower had a snapshot from this
// stream before (counted as a resync).
func (n *Node) sendSnapshot(ctx context.Context, s *streamState, lg *replication.Log, again bool, restarts *int, buf *[]byte) (uint64, error) {
	for ; ; again = true {
		s.caughtUp.Store(false)
		// Every change up to lsn0 is in the store now, so the export
		// below sees it (or a later state of its key); the log keeps the
		// changes after lsn0, which the follower replays after the
		// snapshot: replaying effects in order converges, even for keys
		// the export already saw in their newer state.
		lsn0, err := lg.Restart(string(s.to))
		if err != nil {
			return 0, err
		}
		if again {
			n.resyncs.Add(1)
		}
		s.sent.Store(0)
		s.total.Store(n.st.PartitionLen(s.p))
		id := n.snapSeq.Add(1)
		epoch, err := n.trySnapshot(ctx, s, lg, id, lsn0, restarts, buf)
		if err == nil {
			*restarts = 0
			n.snapsSent.Add(1)
			if err := n.ack(ctx, lg, s.to, lsn0); err != nil {
				return 0, err
			}
			s.caughtUp.Store(true)
			if !s.synced {
				s.synced = true
				if n.onSynced != nil {
					n.onSynced(s.p, s.to, epoch)
				}
			}
			return lsn0, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if !errors.Is(err, errRestart) {
			return 0, err
		}
	}
}

// trySnapshot sends snapshot id of the partition, covering the log up to
// lsn0: begin, the records in batches, end. It returns the epoch the
// follower accepted the end in, or errRestart if the snapshot must start
// again.
func (n *Node) trySnapshot(ctx context.Context, s *streamState, lg *replication.Log, id, lsn0 uint64, restarts *int, buf *[]byte) (uint64, error) {
	if _, err := n.snapshotCall(ctx, s, &Request{Op: OpSnapshotBegin, Partition: uint64(s.p), Snapshot: id, LSN: lsn0}, nil, buf); err != nil {
		return 0, err
	}
	overflow := func() error {
		if *restarts < n.opts.SnapshotRestarts && lg.Pending(string(s.to)) > n.opts.BacklogBytes {
			*restarts++
			return errRestart
		}
		return nil
	}
	batch := &Request{Op: OpSnapshot, Partition: uint64(s.p), Snapshot: id}
	size := 0
	flush := func() error {
		if len(batch.Entries) == 0 {
			return nil
		}
		if _, err := n.snapshotCall(ctx, s, batch, overflow, buf); err != nil {
			return err
		}
		s.sent.Add(int64(len(batch.Entries)))
		clear(batch.Entries)
		batch.Entries, size = batch.Entries[:0], 0
		return nil
	}
	err := n.st.ExportPartition(s.p, func(rec store.Record) error {
		e := WireEntry{Map: rec.Map, Key: rec.Key, Value: rec.Value, ExpireAt: rec.ExpireAt, Created: rec.Created}
		sz := entrySize(&e)
		if len(batch.Entries) > 0 && (size+sz > n.opts.SnapshotBatchBytes || len(batch.Entries) >= n.opts.SnapshotBatchEntries) {
			if err := flush(); err != nil {
				return err
			}
		}
		batch.Entries = append(batch.Entries, e)
		size += sz
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return 0, err
	}
	resp, err := n.snapshotCall(ctx, s, &Request{Op: OpSnapshotEnd, Partition: uint64(s.p), Snapshot: id, LSN: lsn0}, nil, buf)
	if err != nil {
		return 0, err
	}
	if resp.LSN < lsn0 {
		return 0, errRestart // cannot happen with a correct replica
	}
	return resp.Epoch, nil
}

// snapshotCall sends one message of a snapshot until the follower accepts
// it. check, if set, runs before each attempt and may stop it. A refusal
// with FlagResync returns errRestart.
func (n *Node) snapshotCall(ctx context.Context, s *streamState, r *Request, check func() error, buf *[]byte) (*Response, error) {
	backoff := n.opts.RetryMin
	for {
		if check != nil {
			if err := check(); err != nil {
				return nil, err
			}
		}
		resp, err := n.replicaCall(ctx, s.to, r, buf)
		if err == nil && resp.Status == StatusOK {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && resp.Flags&FlagResync != 0 {
			return nil, errRestart
		}
		// Unreachable, slow, or a transient refusal (the tables differ):
		// the same message again, with the current epoch.
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		backoff = min(2*backoff, n.opts.RetryMax)
	}
}

// replicaCall sends r to follower to with the current epoch, bounded by
// Options.ReplicateTimeout.
func (n *Node) replicaCall(ctx context.Context, to ring.NodeID, r *Request, buf *[]byte) (*Response, error) {
	t, addrs, _ := n.view()
	r.Epoch = t.Epoch
	*buf = AppendRequest((*buf)[:0], r)
	cctx, cancel := context.WithTimeout(ctx, n.opts.ReplicateTimeout)
	defer cancel()
	b, err := n.tr.Call(cctx, addrs[to], KindData, *buf)
	if err != nil {
		return nil, err
	}
	return DecodeResponse(b)
}

// resync is the answer of a replica that cannot take a message of the
// partition's stream: the primary must send a new snapshot.
func resync(applied uint64, format string, args ...any) *Response {
	return &Response{Status: StatusRetry, Flags: FlagResync, LSN: applied, Message: fmt.Sprintf(format, args...)}
}

// serveReplica answers a replication or snapshot message of a partition
// this node replicates, sent by the node at address from.
func (n *Node) serveReplica(from string, t *ring.Table, r *Request) *Response {
	if r.Partition >= uint64(t.Partitions()) {
		return &Response{Status: StatusError, Message: fmt.Sprintf("no partition %d", r.Partition)}
	}
	p := int(r.Partition)
	own := t.Owners[p]
	n.mu.RLock()
	src, known := n.byAddr[from]
	n.mu.RUnlock()
	if !known || len(own) == 0 || own[0] != src || !slices.Contains(own[1:], n.id) {
		return &Response{Status: StatusNotOwner, Message: fmt.Sprintf("%s (%s) is not the primary of partition %d with %s as replica", src, from, p, n.id)}
	}
	ps := &n.parts[p]
	ps.mu.Lock()
	defer ps.mu.Unlock()
	// The latest table (SetTable may have run since t was read).
	role := ps.role.Load()
	if role == nil || !role.owner || role.primary != src || src == n.id {
		return &Response{Status: StatusNotOwner, Message: fmt.Sprintf("%s is no longer the primary of partition %d with %s as replica", src, p, n.id)}
	}
	if ps.era != role.era {
		// A new primary, or this node stopped owning the partition in
		// between: what it holds cannot be continued.
		ps.era, ps.snap, ps.syncing, ps.synced, ps.applied = role.era, 0, false, false, 0
	}
	switch r.Op {
	case OpSnapshotBegin:
		switch {
		case r.Snapshot < ps.snap:
			return resync(ps.applied, "snapshot %d of partition %d superseded by %d", r.Snapshot, p, ps.snap)
		case r.Snapshot == ps.snap:
			return &Response{LSN: ps.applied} // a repeated begin
		}
		ps.complete.Store(0)
		if err := n.st.DropPartition(p); err != nil {
			return &Response{Status: StatusError, Message: err.Error()}
		}
		ps.snap, ps.syncing, ps.synced, ps.applied = r.Snapshot, true, false, r.LSN
		return &Response{LSN: ps.applied}
	case OpSnapshot:
		if !ps.syncing || r.Snapshot != ps.snap {
			return resync(ps.applied, "partition %d is not receiving snapshot %d", p, r.Snapshot)
		}
		for i := range r.Entries {
			if err := n.applyEntry(&r.Entries[i]); err != nil {
				return &Response{Status: StatusError, Code: codeOf(err), Message: fmt.Sprintf("applying a snapshot record of partition %d: %v", p, err)}
			}
		}
		n.snapRecords.Add(int64(len(r.Entries)))
		return &Response{LSN: ps.applied}
	case OpSnapshotEnd:
		if r.Snapshot != ps.snap || !ps.syncing && !ps.synced {
			return resync(ps.applied, "partition %d is not receiving snapshot %d", p, r.Snapshot)
		}
		if ps.syncing {
			ps.syncing, ps.synced = false, true
			ps.complete.Store(role.era + 1)
			n.snapsRecv.Add(1)
		}
		return &Response{LSN: ps.applied}
	}
	// OpReplicate: entries in LSN order, after a completed snapshot.
	if !ps.synced {
		return resync(ps.applied, "no complete copy of partition %d from %s yet", p, src)
	}
	for i := range r.Entries {
		e := &r.Entries[i]
		if e.LSN <= ps.applied {
			continue
		}
		if e.LSN != ps.applied+1 {
			return resync(ps.applied, "partition %d: lsn %d after %d", p, e.LSN, ps.applied)
		}
		if err := n.applyEntry(e); err != nil {
			return &Response{Status: StatusError, LSN: ps.applied, Code: codeOf(err), Message: fmt.Sprintf("applying lsn %d of partition %d: %v", e.LSN, p, err)}
		}
		ps.applied = e.LSN
		n.applied.Add(1)
	}
	return &Response{LSN: ps.applied}
}

// dropUnowned drops partitions this node stopped owning from its store,
// each once the streams it had for it (waits) have returned, unless a
// newer table gave it back.
func (n *Node) dropUnowned(parts []int, waits [][]chan struct{}) {
	defer n.wg.Done()
	for i, p := range parts {
		for _, ch := range waits[i] {
			<-ch // cancelled streams return promptly
		}
		ps := &n.parts[p]
		ps.mu.Lock()
		if r := ps.role.Load(); r != nil && !r.owner && n.st.PartitionLen(p) > 0 {
			if err := n.st.DropPartition(p); err == nil {
				n.dropped.Add(1)
			}
		}
		ps.mu.Unlock()
	}
}
