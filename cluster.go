package engram

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/node"
	"github.com/engramdb/engram/internal/resp"
)

// Ack is the acknowledgement level of a write in a cluster: how many
// copies of the data must have it before the write returns. On a
// standalone node every level means the same: a write returns once
// applied.
type Ack uint8

// Acknowledgement levels.
const (
	// AckAll returns once every replica of the key's partition has
	// applied the write (the default). A write acknowledged this way
	// survives the failure of its primary.
	AckAll Ack = iota
	// AckPrimary returns once the partition's primary has applied it;
	// replicas receive it in the background, so the failure of the
	// primary right after may lose it.
	AckPrimary
	// AckNone waits for no copy to apply it (jc unsafe_set): the primary
	// runs the write and answers, but does not wait for its replicas.
	AckNone
)

// String names the level as the HTTP API's ack parameter does.
func (a Ack) String() string {
	switch a {
	case AckAll:
		return "all"
	case AckPrimary:
		return "primary"
	case AckNone:
		return "none"
	}
	return "Ack(" + strconv.Itoa(int(a)) + ")"
}

// clusterAck converts a level for the cluster layer.
func (a Ack) clusterAck() (cluster.Ack, error) {
	switch a {
	case AckAll:
		return cluster.AckAll, nil
	case AckPrimary:
		return cluster.AckPrimary, nil
	case AckNone:
		return cluster.AckNone, nil
	}
	return 0, fmt.Errorf("engram: unknown acknowledgement level %d", a)
}

// WithAck returns a handle on the same map whose writes return at the
// given acknowledgement level (AckAll by default). The handle m is not
// changed, so one map can be written at different levels:
//
//	events := n.Map("events")
//	fast := events.WithAck(engram.AckPrimary)
//	err := fast.Set(ctx, id, payload)   // returns once the primary has it
//	err = events.Set(ctx, id2, payload) // waits for every replica
//
// On a standalone node it changes nothing.
func (m *Map) WithAck(level Ack) *Map {
	v := *m
	v.ack = level
	return &v
}

// WithEventualReads returns a handle on the same map whose reads may be
// served by a replica on this node when it holds a copy of the key's
// partition, without asking the primary: faster, but a read may miss
// writes acknowledged moments ago, or (on the minority side of a network
// split) keep answering with data that is no longer current. Reads through
// m stay consistent. On a standalone node it changes nothing.
func (m *Map) WithEventualReads() *Map {
	v := *m
	v.eventual = true
	return &v
}

// NodeEvent is a change in a cluster's membership (jc node events): a
// node came up, failed or left, with the lists of nodes after the change.
type NodeEvent struct {
	// Up is true for a node that joined (or came back), false for one
	// that failed or left.
	Up bool
	// Node is the member ID of the node that changed (see Node.ID).
	Node string
	// Left is true when a node that went down left gracefully (its Close),
	// so it is no longer configured; false when it failed (it stays in
	// Configured).
	Left bool
	// Active and Configured are the member IDs after the change, sorted.
	Active, Configured []string
}

// OnNodeEvent calls fn with every change in the cluster's membership
// from now on, in order, until cancel is called or the node is closed.
// fn runs on a goroutine of its own for this subscription, so it may
// take its time (later events wait for it) without holding up the
// cluster. After cancel returns fn is not called again, except for a call
// already under way. On a standalone node fn is never called.
func (n *Node) OnNodeEvent(fn func(NodeEvent)) (cancel func()) {
	s := &subscription{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.unsub = n.node.OnNodeEvent(func(e node.NodeEvent) {
		s.push(NodeEvent{Up: e.Up, Node: e.Node, Left: e.Left, Active: e.Active, Configured: e.Configured})
	})
	n.subMu.Lock()
	if n.closed.Load() {
		n.subMu.Unlock()
		s.unsub()
		return func() {}
	}
	if n.subs == nil {
		n.subs = map[*subscription]struct{}{}
	}
	n.subs[s] = struct{}{}
	n.subMu.Unlock()
	go s.run()
	return func() {
		n.subMu.Lock()
		delete(n.subs, s)
		n.subMu.Unlock()
		s.stop()
	}
}

// endSubscriptions stops every OnNodeEvent subscription (Close).
func (n *Node) endSubscriptions() {
	n.subMu.Lock()
	subs := n.subs
	n.subs = nil
	n.subMu.Unlock()
	for s := range subs {
		s.stop()
	}
}

// subscription delivers node events to one OnNodeEvent callback, in
// order, from a queue the gossip layer never waits on.
type subscription struct {
	fn    func(NodeEvent)
	unsub func()
	wake  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu    sync.Mutex
	queue []NodeEvent
}

func (s *subscription) push(e NodeEvent) {
	s.mu.Lock()
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscription) run() {
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, e := range batch {
			select {
			case <-s.done:
				return
			default:
			}
			s.fn(e)
		}
	}
}

func (s *subscription) stop() {
	s.once.Do(func() {
		if s.unsub != nil {
			s.unsub()
		}
		close(s.done)
	})
}

// Nodes returns the member IDs of the cluster's data nodes: those up now
// and all those configured (up, or failed and not yet replaced), sorted
// (jc cache_nodes). A standalone node lists itself in both.
func (n *Node) Nodes() (active, configured []string) { return n.node.Nodes() }

// ID returns the node's member ID in its cluster (its NodeName or
// ClusterAddr with a suffix chosen at each start), or on a standalone
// node its RESP address ("local" without one).
func (n *Node) ID() string { return n.node.ID() }

// ClusterAddr returns the gossip address other members join through
// (what Config.Join names), with the port the node actually listens on,
// or "" on a standalone node.
func (n *Node) ClusterAddr() string { return n.node.GossipAddr() }

// errInternalMap refuses the names of the cluster's internal maps.
var errInternalMap = errors.New("engram: invalid map name: names starting with a zero byte are reserved for Engram's internal maps")

// do runs one command on map mapName through the cluster and returns its
// parsed reply; an error reply becomes an error matching the sentinels.
func (n *Node) do(ctx context.Context, mapName string, ack Ack, eventual bool, args ...[]byte) (resp.Value, error) {
	if len(mapName) > 0 && mapName[0] == 0 {
		return resp.Value{}, errInternalMap
	}
	ca, err := ack.clusterAck()
	if err != nil {
		return resp.Value{}, err
	}
	reply := n.node.Do(ctx, mapName, args, false, ca, eventual)
	v, err := resp.ReadValue(bufio.NewReader(bytes.NewReader(reply)), len(reply)+1)
	if err != nil {
		return v, fmt.Errorf("engram: BUG: unreadable reply to %s: %v", args[0], err)
	}
	if v.Kind == '-' || v.Kind == '!' {
		return v, replyError(string(v.Str))
	}
	return v, nil
}

// do runs one command on m's map with m's options.
func (m *Map) do(ctx context.Context, args ...[]byte) (resp.Value, error) {
	return m.n.do(ctx, m.sm.Name(), m.ack, m.eventual, args...)
}

// integer runs a command whose reply is an integer.
func (m *Map) integer(ctx context.Context, args ...[]byte) (int64, error) {
	v, err := m.do(ctx, args...)
	if err != nil {
		return 0, err
	}
	if v.Kind != ':' {
		return 0, unexpected(args[0], v)
	}
	return v.Int, nil
}

func unexpected(cmd []byte, v resp.Value) error {
	return fmt.Errorf("engram: BUG: unexpected reply of type %q to %s", v.Kind, cmd)
}

// b copies s into a command argument (arguments are never views of
// strings: the command path may keep or change them).
func b(s string) []byte { return []byte(s) }

func itoa(n int64) []byte  { return strconv.AppendInt(nil, n, 10) }
func utoa(n uint64) []byte { return strconv.AppendUint(nil, n, 10) }

// The Map methods in a cluster: each runs the Redis-protocol command that
// does the same thing through the node (internal/node.Do), which routes
// it as it routes its RESP clients' commands.

func (m *Map) cGetTo(ctx context.Context, dst []byte, key string) ([]byte, error) {
	v, err := m.do(ctx, b("GET"), b(key))
	switch {
	case err != nil:
		return dst, err
	case v.Null:
		return dst, ErrNotFound
	case v.Kind != '$':
		return dst, unexpected(b("GET"), v)
	}
	return append(dst, v.Str...), nil
}

// cSet runs SET (or cmd: UNSAFESET), or SETSEQ with WithSeq.
func (m *Map) cSet(ctx context.Context, cmd, key string, value []byte, p SetParams) (bool, error) {
	var args [][]byte
	if p.HasSeq {
		args = [][]byte{b("SETSEQ"), utoa(p.Seq), b(key), bytes.Clone(value)}
	} else {
		args = [][]byte{b(cmd), b(key), bytes.Clone(value)}
	}
	if p.TTL > 0 {
		args = append(args, b("PX"), itoa(p.TTL.Milliseconds()))
	}
	if p.KeepTTL {
		args = append(args, b("KEEPTTL"))
	}
	switch {
	case p.IfAbsent:
		args = append(args, b("NX"))
	case p.IfPresent:
		args = append(args, b("XX"))
	}
	v, err := m.do(ctx, args...)
	if err != nil {
		return false, err
	}
	return !v.Null, nil // SET NX/XX answers null when its condition fails
}

// cPutAll is PUTALL (PUTALLSEQ with WithSeq), whose TTL has whole
// seconds; a TTL with a fraction of a second is written item by item.
func (m *Map) cPutAll(ctx context.Context, items []KV, p SetParams) (int, error) {
	if p.TTL%time.Second != 0 {
		if p.HasSeq {
			return 0, fmt.Errorf("engram: in a cluster, PutAll with WithSeq takes a TTL in whole seconds, got %v", p.TTL)
		}
		for _, it := range items {
			if err := m.sm.CheckLimits(b(it.Key), len(it.Value)); err != nil {
				return 0, publicError(err)
			}
		}
		n := 0
		for _, it := range items {
			ok, err := m.cSet(ctx, "SET", it.Key, it.Value, p)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
		return n, nil
	}
	args := make([][]byte, 0, 3+2*len(items))
	if p.HasSeq {
		args = append(args, b("PUTALLSEQ"), utoa(p.Seq))
	} else {
		args = append(args, b("PUTALL"))
	}
	args = append(args, itoa(int64(p.TTL/time.Second)))
	for _, it := range items {
		args = append(args, b(it.Key), bytes.Clone(it.Value))
	}
	n, err := m.integer(ctx, args...)
	return int(n), err
}

func (m *Map) cGetAll(ctx context.Context, keys []string) (map[string][]byte, []string, error) {
	found := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return found, nil, nil
	}
	args := make([][]byte, 0, 1+len(keys))
	args = append(args, b("GETALL"))
	for _, k := range keys {
		args = append(args, b(k))
	}
	v, err := m.do(ctx, args...)
	if err != nil {
		return nil, nil, err
	}
	if len(v.Elems) != 2 || len(v.Elems[0].Elems)%2 != 0 {
		return nil, nil, unexpected(args[0], v)
	}
	kv := v.Elems[0].Elems
	for i := 0; i < len(kv); i += 2 {
		found[string(kv[i].Str)] = kv[i+1].Str
	}
	// The misses in the order asked (the reply lists them by partition).
	var misses []string
	for _, k := range keys {
		if _, ok := found[k]; !ok {
			misses = append(misses, k)
		}
	}
	return found, misses, nil
}

func (m *Map) cRemoveItems(ctx context.Context, keys []string, seq uint64, hasSeq bool) (map[string][]byte, error) {
	out := make(map[string][]byte)
	if len(keys) == 0 {
		return out, nil
	}
	args := make([][]byte, 0, 2+len(keys))
	if hasSeq {
		args = append(args, b("REMOVEITEMSSEQ"), utoa(seq))
	} else {
		args = append(args, b("REMOVEITEMS"))
	}
	for _, k := range keys {
		args = append(args, b(k))
	}
	v, err := m.do(ctx, args...)
	if err != nil {
		return nil, err
	}
	if len(v.Elems)%2 != 0 {
		return nil, unexpected(args[0], v)
	}
	for i := 0; i < len(v.Elems); i += 2 {
		out[string(v.Elems[i].Str)] = v.Elems[i+1].Str
	}
	return out, nil
}

// strings reads an array reply of bulk strings.
func stringsOf(v resp.Value) []string {
	out := make([]string, len(v.Elems))
	for i, e := range v.Elems {
		out[i] = string(e.Str)
	}
	return out
}

// allPattern maps "" to the glob of every key.
func allPattern(p string) string {
	if p == "" {
		return "*"
	}
	return p
}

func (m *Map) cKeys(ctx context.Context, pattern string) ([]string, error) {
	v, err := m.do(ctx, b("KEYS"), b(allPattern(pattern)))
	if err != nil {
		return nil, err
	}
	return stringsOf(v), nil
}

func (m *Map) cValues(ctx context.Context) ([][]byte, error) {
	v, err := m.do(ctx, b("VALUES"))
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(v.Elems))
	for i, e := range v.Elems {
		out[i] = e.Str
	}
	return out, nil
}

// cScan is SCAN, whose cursor is a partition number in a cluster too.
func (m *Map) cScan(ctx context.Context, cursor uint64, pattern string, count int) ([][]byte, uint64, error) {
	args := [][]byte{b("SCAN"), utoa(cursor), b("MATCH"), b(allPattern(pattern)), b("COUNT"), itoa(int64(max(count, 1)))}
	v, err := m.do(ctx, args...)
	if err != nil {
		return nil, 0, err
	}
	if len(v.Elems) != 2 {
		return nil, 0, unexpected(args[0], v)
	}
	next, err := strconv.ParseUint(string(v.Elems[0].Str), 10, 64)
	if err != nil {
		return nil, 0, unexpected(args[0], v)
	}
	keys := make([][]byte, len(v.Elems[1].Elems))
	for i, e := range v.Elems[1].Elems {
		keys[i] = e.Str
	}
	return keys, next, nil
}

// cWalk calls page with the keys of one non-empty partition at a time
// until page returns false, ctx is done, the node closes or a page cannot
// be read (which is logged: an iterator has no error to return).
func (m *Map) cWalk(ctx context.Context, pattern string, page func(keys [][]byte) bool) {
	var cursor uint64
	for {
		if m.n.check(ctx) != nil {
			return
		}
		keys, next, err := m.cScan(ctx, cursor, pattern, 1)
		if err != nil {
			if m.n.check(ctx) == nil {
				m.n.log.Warn("engram: a walk over a map stopped early: cannot read its next page", "map", m.Name(), "cursor", cursor, "err", err)
			}
			return
		}
		if len(keys) > 0 && !page(keys) {
			return
		}
		if next == 0 {
			return
		}
		cursor = next
	}
}

// cAll is All in a cluster: each page's values are read together
// (GETALL) before its first item is yielded.
func (m *Map) cAll(ctx context.Context) iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		m.cWalk(ctx, "", func(keys [][]byte) bool {
			ks := make([]string, len(keys))
			for i, k := range keys {
				ks[i] = string(k)
			}
			found, _, err := m.cGetAll(ctx, ks)
			if err != nil {
				if m.n.check(ctx) == nil {
					m.n.log.Warn("engram: a walk over a map stopped early: cannot read a page's values", "map", m.Name(), "err", err)
				}
				return false
			}
			for _, k := range ks {
				if m.n.check(ctx) != nil {
					return false
				}
				v, ok := found[k]
				if !ok {
					continue // deleted or expired since its page was listed
				}
				if !yield(k, v) {
					return false
				}
			}
			return true
		})
	}
}

func (m *Map) cKeysSeq(ctx context.Context, pattern string) iter.Seq[string] {
	return func(yield func(string) bool) {
		m.cWalk(ctx, pattern, func(keys [][]byte) bool {
			for _, k := range keys {
				if m.n.check(ctx) != nil || !yield(string(k)) {
					return false
				}
			}
			return true
		})
	}
}

func (m *Map) cSequence(ctx context.Context) (uint64, bool, error) {
	v, err := m.do(ctx, b("SEQUENCE"))
	switch {
	case err != nil:
		return 0, false, err
	case v.Null:
		return 0, false, nil
	case v.Kind != ':' || v.Int < 0:
		return 0, false, unexpected(b("SEQUENCE"), v)
	}
	return uint64(v.Int), true, nil
}

// Node-wide calls run "in" map 0, which always exists.

func (n *Node) clusterMaps() []string {
	if n.closed.Load() {
		return nil
	}
	v, err := n.do(context.Background(), "0", AckAll, false, b("MAPS"))
	if err != nil {
		n.log.Warn("engram: cannot list the cluster's maps", "err", err)
		return nil
	}
	return stringsOf(v)
}

func (n *Node) clusterSequences() map[string]uint64 {
	if n.closed.Load() {
		return nil
	}
	v, err := n.do(context.Background(), "0", AckAll, false, b("SEQUENCES"))
	if err == nil && len(v.Elems)%2 != 0 {
		err = unexpected(b("SEQUENCES"), v)
	}
	if err != nil {
		n.log.Warn("engram: cannot read the cluster's sequence numbers", "err", err)
		return nil
	}
	out := make(map[string]uint64, len(v.Elems)/2)
	for i := 0; i < len(v.Elems); i += 2 {
		out[string(v.Elems[i].Str)] = uint64(v.Elems[i+1].Int)
	}
	return out
}

func (n *Node) clusterFlush(ctx context.Context, silent bool) error {
	args := [][]byte{b("FLUSH")}
	if silent {
		args = append(args, b("SILENT"))
	}
	_, err := n.do(ctx, "0", AckAll, false, args...)
	return err
}
