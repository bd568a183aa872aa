package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/engramdb/engram/internal/ring"
)

// BatchItem is one command of a forwarded pipeline: its partition and the
// command (keys all in that partition).
type BatchItem struct {
	P int
	C *Command
}

// Owner returns the primary of partition p by the current table ("" if
// none) and whether it is this node.
func (n *Node) Owner(p int) (ring.NodeID, bool) {
	t, _, _ := n.view()
	if t == nil || p < 0 || p >= t.Partitions() {
		return "", false
	}
	own := t.Primary(p)
	return own, own == n.id
}

// BatchResult is what became of one item of a forwarded batch.
type BatchResult struct {
	// Reply is the command's reply when Err is nil.
	Reply []byte
	// Err is a failure after the command ran (ErrReplicaTimeout: it must
	// not be run again).
	Err error
}

// ForwardBatch sends items, whose partitions all had primary to, to it in
// one message, to run in order, and returns what became of those that
// ran, in order (len(results) <= len(items)). It stops at the first item
// that could not run (the table changed, a backlog...): the caller runs
// that one and the rest one by one (Run), which keeps their order. An
// error means none ran.
func (n *Node) ForwardBatch(ctx context.Context, to ring.NodeID, items []BatchItem) ([]BatchResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.opts.RequestTimeout)
		defer cancel()
	}
	t, addrs, _ := n.view()
	if t == nil {
		return nil, ErrNoTable
	}
	r := &Request{Op: OpBatch, Epoch: t.Epoch, Args: make([][]byte, len(items))}
	for i, it := range items {
		sub := &Request{Op: OpCommand, Epoch: t.Epoch, Map: it.C.Map, Partition: uint64(it.P), Args: it.C.Args}
		n.commandFlags(sub, it.C)
		r.Args[i] = AppendRequest(nil, sub)
	}
	if d, ok := ctx.Deadline(); ok {
		r.TimeoutMs = uint64(max(time.Until(d)*9/10, time.Millisecond) / time.Millisecond)
	}
	n.batches.Add(1)
	resp, err := n.callResp(ctx, to, addrs[to], t, r)
	if err != nil {
		return nil, err
	}
	encs, err := decodeBatch(resp.Value)
	if err != nil {
		return nil, err
	}
	var out []BatchResult
	for _, enc := range encs {
		sub, err := DecodeResponse(enc)
		if err != nil {
			return out, nil
		}
		if sub.Status == StatusOK {
			out = append(out, BatchResult{Reply: sub.Value})
			continue
		}
		if sub.Status == StatusRetry && sub.Flags&FlagApplied != 0 {
			_, err := responseError(sub, to)
			out = append(out, BatchResult{Err: err})
		}
		break // not run: the caller runs it and the rest
	}
	return out, nil
}

// serveBatch runs the commands of an OpBatch in order, stopping after the
// first whose response is not OK; its value lists the responses.
func (n *Node) serveBatch(ctx context.Context, from string, t *ring.Table, r *Request) *Response {
	var out []byte
	count := 0
	var body []byte
	for _, enc := range r.Args {
		sub, err := DecodeRequest(enc)
		if err != nil || sub.Op != OpCommand {
			return &Response{Status: StatusError, Message: fmt.Sprintf("batch item %d is not a command", count)}
		}
		resp := n.serveCommand(ctx, from, t, sub)
		body = appendBytes(body, AppendResponse(nil, resp))
		count++
		if resp.Status != StatusOK {
			break // the sender runs the rest one by one, in order
		}
	}
	out = binary.AppendUvarint(out, uint64(count))
	return &Response{Value: append(out, body...)}
}

// decodeBatch splits an OpBatch response's value into the replies.
func decodeBatch(b []byte) ([][]byte, error) {
	d := decoder{b: b}
	n := d.uv("batch count")
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("batch count larger than the message")
	}
	var out [][]byte
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, d.bytes("batch reply"))
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return out, nil
}
