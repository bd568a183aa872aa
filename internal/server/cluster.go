package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/glob"
	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/store"
)

// How a command is routed in a cluster. Commands not listed run on the
// node the client is connected to (connection and node commands: PING,
// INFO, CLIENT, CONFIG, ...).
type routeKind uint8

const (
	routeLocal   routeKind = iota
	routeKeys              // keys at fixed positions; split by partition if they span several
	routeScatter           // every primary answers for its partitions; replies are merged
	routeScan              // SCAN: partition-numbered cursor, each partition read on its primary
)

// merge says how the replies of a split or scattered command combine.
type merge uint8

const (
	mergeNone      merge = iota // single partition only (CROSSSLOT otherwise)
	mergeSum                    // integers add up
	mergeOK                     // +OK unless one failed
	mergeByKey                  // arrays with one element per key, in key order (MGET)
	mergeConcat                 // arrays concatenate (KEYS)
	mergeUnion                  // arrays of names: sorted union (MAPS)
	mergeMaps                   // maps concatenate (REMOVEITEMS)
	mergeGetAll                 // GETALL: [map of found, array of misses]
	mergeAny                    // the first non-null reply (RANDOMKEY)
	mergeCacheSize              // CACHESIZE: [name, keys, bytes] summed by name
)

// route is a command's routing in a cluster.
type route struct {
	kind routeKind
	// Keys (routeKeys): arguments first..last (last < 0 counts from the
	// end: -1 is the last argument) every step are keys; arguments before
	// first are a prefix every split part repeats.
	first, last, step int
	merge             merge
}

var key1 = route{kind: routeKeys, first: 1, last: 1, step: 1}

// routes lists every command that touches keys.
var routes = map[string]route{
	"get": key1, "set": key1, "setnx": key1, "setex": key1, "psetex": key1, "getset": key1,
	"getdel": key1, "getex": key1, "type": key1, "expire": key1, "pexpire": key1,
	"expireat": key1, "pexpireat": key1, "ttl": key1, "pttl": key1, "expiretime": key1,
	"pexpiretime": key1, "persist": key1, "incr": key1, "decr": key1, "incrby": key1,
	"decrby": key1, "incrbyfloat": key1, "append": key1, "strlen": key1, "getrange": key1,
	"substr": key1, "setrange": key1, "contains": key1, "unsafeset": key1,

	"mget":   {kind: routeKeys, first: 1, last: -1, step: 1, merge: mergeByKey},
	"mset":   {kind: routeKeys, first: 1, last: -1, step: 2, merge: mergeOK},
	"msetnx": {kind: routeKeys, first: 1, last: -1, step: 2},
	"del":    {kind: routeKeys, first: 1, last: -1, step: 1, merge: mergeSum},
	"unlink": {kind: routeKeys, first: 1, last: -1, step: 1, merge: mergeSum},
	"exists": {kind: routeKeys, first: 1, last: -1, step: 1, merge: mergeSum},

	"getall":      {kind: routeKeys, first: 1, last: -1, step: 1, merge: mergeGetAll},
	"putall":      {kind: routeKeys, first: 2, last: -1, step: 2, merge: mergeSum},
	"removeitems": {kind: routeKeys, first: 1, last: -1, step: 1, merge: mergeMaps},
	// The sequence commands (SETSEQ, ..., SEQUENCES) are not listed: the
	// map's sequence is checked on its home partition first (seq.go).

	"dbsize":     {kind: routeScatter, merge: mergeSum},
	"keys":       {kind: routeScatter, merge: mergeConcat},
	"keyset":     {kind: routeScatter, merge: mergeConcat},
	"values":     {kind: routeScatter, merge: mergeConcat},
	"randomkey":  {kind: routeScatter, merge: mergeAny},
	"flushdb":    {kind: routeScatter, merge: mergeOK},
	"flushall":   {kind: routeScatter, merge: mergeOK},
	"clear":      {kind: routeScatter, merge: mergeOK},
	"flush":      {kind: routeScatter, merge: mergeOK},
	"evictsince": {kind: routeScatter, merge: mergeSum},
	"mapsize":    {kind: routeScatter, merge: mergeSum},
	"maps":       {kind: routeScatter, merge: mergeUnion},
	"cachesize":  {kind: routeScatter, merge: mergeCacheSize},
	"scan":       {kind: routeScan},

	// JSON queries (query.go): VALUESMATCH and the sequence forms route
	// themselves; the evictions are scattered writes.
	"evictmatch":    {kind: routeScatter, merge: mergeSum},
	"evictallmatch": {kind: routeScatter, merge: mergeSum},

	"savekey": {kind: routeKeys, first: 1, last: -1, step: 1, merge: mergeSum},
	"savemap": {kind: routeScatter, merge: mergeSum},
}

// keyArgs returns the indexes of args that are keys under r.
func (r route) keyArgs(n int) (first, last int) {
	last = r.last
	if last < 0 {
		last = n + last
	}
	return r.first, last
}

// clusterRun runs cmd for c through the cluster: on this node if it owns
// the data, otherwise on the owner. It reports false if cmd is not routed
// (the caller runs it locally).
func (s *Server) clusterRun(c *conn, cmd *command, args [][]byte) bool {
	if s.cl == nil || c.forwarded {
		return false
	}
	if s.clusterSeq(c, cmd, args) {
		return true
	}
	r, ok := routes[cmd.name]
	if !ok {
		return false
	}
	switch r.kind {
	case routeKeys:
		s.runKeys(c, cmd, r, args)
	case routeScatter:
		s.runScatter(c, cmd, r, args)
	case routeScan:
		s.runScan(c, args)
	default:
		return false
	}
	return true
}

func (c *conn) clusterCommand(cmd *command, args [][]byte) *cluster.Command {
	cc := &cluster.Command{Map: c.m.Name(), Args: args, RESP3: c.proto == 3, Write: cmd.write,
		Ack: c.ack, Eventual: c.readonly && !cmd.write}
	if cmd.name == "unsafeset" {
		cc.Ack = cluster.AckNone
	}
	if cc.Eventual && c.mapPolicy() != nil {
		// A replica must not fill its copy from the store (only the
		// primary changes a partition): read-through reads go to the
		// primary.
		cc.Eventual = false
	}
	if cc.Eventual && cmd.name == "get" && len(args) == 2 {
		cc.NearKey = args[1] // its reply depends on that key only: near-cacheable
	}
	return cc
}

// clusterErr replies with a cluster failure: retryable ones with
// TRYAGAIN (Redis Cluster's word for "retry later"), no quorum with
// CLUSTERDOWN.
func (c *conn) clusterErr(err error) {
	switch {
	case errors.Is(err, cluster.ErrNoQuorum):
		c.err("CLUSTERDOWN " + oneLine(err.Error()))
	case errors.Is(err, cluster.ErrReplicaTimeout):
		c.err("TRYAGAIN write applied on the primary but not acknowledged by every replica in time: " + oneLine(err.Error()))
	case cluster.IsRetryable(err):
		c.err("TRYAGAIN " + oneLine(err.Error()))
	default:
		c.err("ERR " + oneLine(err.Error()))
	}
}

func oneLine(s string) string {
	return string(bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, []byte(s)))
}

// runPart runs args (all keys in partition p) where p lives and appends
// the reply to c.out.
func (s *Server) runPart(c *conn, cmd *command, p int, args [][]byte) {
	mark := len(c.out)
	cc := c.clusterCommand(cmd, args)
	// A consistent read may run here and then be refused (its value not
	// yet on every replica) and retried: each run starts from mark.
	reply, err := s.cl.Run(c.ctx(), p, cc, func() {
		c.out = c.out[:mark]
		cmd.fn(c, args)
	})
	if err != nil {
		c.out = c.out[:mark]
		c.clusterErr(err)
		return
	}
	if reply != nil {
		c.out = append(c.out, reply...)
		if len(reply) > 0 && reply[0] == '-' {
			c.failed = true
		}
	}
}

// runKeys routes a keyed command, splitting it by partition if needed.
func (s *Server) runKeys(c *conn, cmd *command, r route, args [][]byte) {
	first, last := r.keyArgs(len(args))
	if first >= len(args) || last < first || (last-first+1)%r.step != 0 {
		// Malformed (e.g. MSET with an odd count): let the command say so.
		cmd.fn(c, args)
		return
	}
	t := s.cl.Table()
	if t == nil {
		c.err("TRYAGAIN this node has no partition table yet (joining the cluster)")
		return
	}
	p0 := t.PartitionOf(args[first])
	single := true
	for i := first + r.step; i <= last; i += r.step {
		if t.PartitionOf(args[i]) != p0 {
			single = false
			break
		}
	}
	if single {
		s.runPart(c, cmd, p0, args)
		return
	}
	if r.step == 2 && cmd.write {
		// Check every key and value before any part runs, so limits
		// refuse the whole command as on one node, not half of it.
		for i := first; i+1 <= last; i += 2 {
			if err := c.m.CheckLimits(args[i], len(args[i+1])); err != nil {
				c.storeErr(err)
				return
			}
		}
	}
	if r.merge == mergeNone {
		c.err("CROSSSLOT Keys in request don't hash to the same slot (in a cluster, " + cmd.name + " needs keys of one partition)")
		return
	}
	// Split by partition, keeping key order within each part.
	type part struct {
		p    int
		args [][]byte
		idx  []int // positions of its keys among all keys
	}
	var parts []*part
	byP := map[int]*part{}
	k := 0
	for i := first; i <= last; i += r.step {
		p := t.PartitionOf(args[i])
		pt := byP[p]
		if pt == nil {
			pt = &part{p: p, args: slices.Clone(args[:first])}
			byP[p] = pt
			parts = append(parts, pt)
		}
		pt.args = append(pt.args, args[i:i+r.step]...)
		pt.idx = append(pt.idx, k)
		k++
	}
	replies := make([][]byte, len(parts))
	saved := c.out
	for i, pt := range parts {
		c.out = nil
		s.runPart(c, cmd, pt.p, pt.args)
		replies[i] = c.out
	}
	c.out = saved
	idx := make([][]int, len(parts))
	for i, pt := range parts {
		idx[i] = pt.idx
	}
	c.mergeReplies(r.merge, replies, idx, k)
}

// runScatter runs a command over every partition's primary and merges.
func (s *Server) runScatter(c *conn, cmd *command, r route, args [][]byte) {
	cc := c.clusterCommand(cmd, args)
	replies, err := s.cl.Scatter(c.ctx(), cc, func(parts []int) ([]byte, error) {
		return s.execScatter(c.ctx(), c, cmd, parts, cc, args)
	})
	if err != nil {
		c.clusterErr(err)
		return
	}
	c.mergeReplies(r.merge, replies, nil, 0)
}

// execScatter runs cmd restricted to parts on this node as their
// primary, through fc (a connection whose output is captured). Writes run
// partition by partition under each one's write guard.
func (s *Server) execScatter(ctx context.Context, fc *conn, cmd *command, parts []int, cc *cluster.Command, args [][]byte) ([]byte, error) {
	saved, savedParts := fc.out, fc.parts
	defer func() { fc.out, fc.parts = saved, savedParts }()
	r := routes[cmd.name]
	if !cc.Write {
		fc.out, fc.parts = nil, parts
		err := s.cl.LocalParts(ctx, parts, cc, func() { cmd.fn(fc, args) })
		return fc.out, err
	}
	replies := make([][]byte, 0, len(parts))
	for _, p := range parts {
		fc.out, fc.parts = nil, []int{p}
		if err := s.cl.Local(ctx, p, cc, func() { cmd.fn(fc, args) }); err != nil {
			return nil, err
		}
		replies = append(replies, fc.out)
	}
	fc.out = nil
	fc.mergeReplies(r.merge, replies, nil, 0)
	return fc.out, nil
}

// runScan serves SCAN in a cluster: the cursor is a partition number, as
// on one node; each partition's keys are read on its primary, whole
// partitions at a time until COUNT keys were collected.
func (s *Server) runScan(c *conn, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.err("ERR invalid cursor")
		return
	}
	pattern := []byte("*")
	count := 10
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.err(errSyntax)
			return
		}
		switch {
		case eq(args[i], "match"):
			pattern = args[i+1]
		case eq(args[i], "count"):
			n, ok := parseInt(args[i+1])
			if !ok {
				c.err(errNotInt)
				return
			}
			if n < 1 {
				c.err(errSyntax)
				return
			}
			count = int(min(n, 1<<20))
		case eq(args[i], "type"):
			if !eq(args[i+1], "string") {
				pattern = nil // Engram keys are all strings: nothing matches
			}
		default:
			c.err(errSyntax)
			return
		}
	}
	n := s.st.Partitions()
	var keys [][]byte
	p := int(min(cursor, uint64(n)))
	for ; p < n && len(keys) < count && pattern != nil; p++ {
		sub := [][]byte{[]byte("PSCAN"), []byte(strconv.Itoa(p)), pattern}
		saved := c.out
		c.out = nil
		s.runPart(c, s.cmds["pscan"], p, sub)
		reply := c.out
		c.out = saved
		v, err := parseReply(reply)
		if err != nil || v.Kind == '-' {
			c.out = append(c.out, reply...)
			c.failed = true
			return
		}
		for _, e := range v.Elems {
			keys = append(keys, e.Str)
		}
	}
	next := uint64(p)
	if p >= n || pattern == nil {
		next = 0
	}
	c.array(2)
	c.bulkString(strconv.FormatUint(next, 10))
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

// cmdPScan is PSCAN partition pattern: the keys of one partition of the
// selected map (the cluster's SCAN step; run on the partition's primary).
func cmdPScan(c *conn, a [][]byte) {
	p, err := strconv.Atoi(string(a[1]))
	if err != nil || p < 0 || p >= c.s.st.Partitions() {
		c.err("ERR invalid partition")
		return
	}
	pattern := a[2]
	if glob.MatchAll(pattern) {
		pattern = nil
	}
	keys := c.m.KeysIn([]int{p}, pattern)
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

func parseReply(b []byte) (resp.Value, error) {
	return resp.ReadValue(bufio.NewReader(bytes.NewReader(b)), len(b)+1)
}

// mergeReplies combines the replies of a split (idx: the key positions of
// each part, of total keys) or scattered command and appends the result.
// An error reply wins.
func (c *conn) mergeReplies(m merge, replies [][]byte, idx [][]int, total int) {
	vals := make([]resp.Value, len(replies))
	for i, b := range replies {
		v, err := parseReply(b)
		if err != nil {
			c.err("ERR cannot merge cluster replies: " + err.Error())
			return
		}
		if v.Kind == '-' || v.Kind == '!' {
			c.out = append(c.out, b...)
			c.failed = true
			return
		}
		vals[i] = v
	}
	switch m {
	case mergeSum:
		var n int64
		for _, v := range vals {
			n += v.Int
		}
		c.int(n)
	case mergeOK:
		c.ok()
	case mergeByKey:
		out := make([]resp.Value, total)
		for i, v := range vals {
			for j, e := range v.Elems {
				if j < len(idx[i]) {
					out[idx[i][j]] = e
				}
			}
		}
		c.array(total)
		for _, e := range out {
			c.appendValue(e)
		}
	case mergeConcat:
		var all []resp.Value
		for _, v := range vals {
			all = append(all, v.Elems...)
		}
		c.array(len(all))
		for _, e := range all {
			c.appendValue(e)
		}
	case mergeUnion:
		set := map[string]bool{}
		for _, v := range vals {
			for _, e := range v.Elems {
				set[string(e.Str)] = true
			}
		}
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		slices.Sort(names)
		c.array(len(names))
		for _, n := range names {
			c.bulkString(n)
		}
	case mergeMaps:
		var kvs []resp.Value
		for _, v := range vals {
			kvs = append(kvs, v.Elems...)
		}
		c.mapHeader(len(kvs) / 2)
		for _, e := range kvs {
			c.appendValue(e)
		}
	case mergeGetAll:
		var found, misses []resp.Value
		for _, v := range vals {
			if len(v.Elems) == 2 {
				found = append(found, v.Elems[0].Elems...)
				misses = append(misses, v.Elems[1].Elems...)
			}
		}
		c.array(2)
		c.mapHeader(len(found) / 2)
		for _, e := range found {
			c.appendValue(e)
		}
		c.array(len(misses))
		for _, e := range misses {
			c.appendValue(e)
		}
	case mergeAny:
		var cands []resp.Value
		for _, v := range vals {
			if !v.Null {
				cands = append(cands, v)
			}
		}
		if len(cands) == 0 {
			c.null()
			return
		}
		c.appendValue(cands[rand.IntN(len(cands))])
	case mergeCacheSize:
		type sz struct{ keys, bytes int64 }
		sizes := map[string]*sz{}
		for _, v := range vals {
			for _, e := range v.Elems {
				if len(e.Elems) != 3 {
					continue
				}
				name := string(e.Elems[0].Str)
				if sizes[name] == nil {
					sizes[name] = &sz{}
				}
				sizes[name].keys += e.Elems[1].Int
				sizes[name].bytes += e.Elems[2].Int
			}
		}
		names := make([]string, 0, len(sizes))
		for n := range sizes {
			names = append(names, n)
		}
		slices.Sort(names)
		c.array(len(names))
		for _, n := range names {
			c.array(3)
			c.bulkString(n)
			c.int(sizes[n].keys)
			c.int(sizes[n].bytes)
		}
	default:
		c.err(fmt.Sprintf("ERR BUG: no merge %d", m))
	}
}

// appendValue re-encodes a parsed reply in the connection's protocol.
func (c *conn) appendValue(v resp.Value) {
	switch v.Kind {
	case '+':
		c.simple(string(v.Str))
	case ':':
		c.int(v.Int)
	case '$', '=', '(':
		if v.Null {
			c.null()
		} else {
			c.bulk(v.Str)
		}
	case '_':
		c.null()
	case ',':
		c.out = resp.AppendDouble(c.out, v.Float, c.proto)
	case '#':
		c.out = resp.AppendBool(c.out, v.Bool, c.proto)
	case '%':
		c.mapHeader(len(v.Elems) / 2)
		for _, e := range v.Elems {
			c.appendValue(e)
		}
	case '~':
		c.out = resp.AppendSetHeader(c.out, len(v.Elems), c.proto)
		for _, e := range v.Elems {
			c.appendValue(e)
		}
	default: // '*' and anything else aggregate
		if v.Null {
			c.out = resp.AppendNullArray(c.out, c.proto)
			return
		}
		c.array(len(v.Elems))
		for _, e := range v.Elems {
			c.appendValue(e)
		}
	}
}

// Exec implements cluster.Executor: it runs a command forwarded by
// another node, as the owner of partition p.
func (s *Server) Exec(ctx context.Context, p int, cc *cluster.Command) ([]byte, error) {
	fc, cmd, err := s.forwardedConn(cc)
	if err != nil {
		return resp.AppendError(nil, err.Error()), nil
	}
	if err := s.cl.Local(ctx, p, cc, func() { s.call(fc, cmd, cc.Args) }); err != nil {
		return nil, err
	}
	return fc.out, nil
}

// ExecScatter implements cluster.Executor for scattered commands.
func (s *Server) ExecScatter(ctx context.Context, parts []int, cc *cluster.Command) ([]byte, error) {
	fc, cmd, err := s.forwardedConn(cc)
	if err != nil {
		return resp.AppendError(nil, err.Error()), nil
	}
	return s.execScatter(ctx, fc, cmd, parts, cc, cc.Args)
}

// forwardedConn builds the connection state a forwarded command runs in.
func (s *Server) forwardedConn(cc *cluster.Command) (*conn, *command, error) {
	if len(cc.Args) == 0 {
		return nil, nil, errors.New("ERR empty command")
	}
	name := string(bytes.ToLower(cc.Args[0]))
	cmd := s.cmds[name]
	if cmd == nil {
		cmd = s.internal[name]
	}
	if cmd == nil {
		return nil, nil, fmt.Errorf("ERR unknown command '%s'", trunc(cc.Args[0]))
	}
	if (cmd.arity > 0 && len(cc.Args) != cmd.arity) || (cmd.arity < 0 && len(cc.Args) < -cmd.arity) {
		return nil, nil, fmt.Errorf("ERR wrong number of arguments for '%s' command", cmd.name)
	}
	var m *store.Map
	if store.IsInternal(cc.Map) {
		// Only nodes name internal maps (clients cannot select them):
		// they are not bounded by the number of maps clients may open.
		m = s.st.Map(cc.Map)
	} else {
		var err error
		if m, err = s.st.OpenMap(cc.Map); err != nil {
			return nil, nil, errors.New(replyError(err))
		}
	}
	fc := &conn{s: s, nc: nopConn{}, m: m, proto: 2, authed: true, forwarded: true, ack: cc.Ack, readonly: cc.Eventual}
	if cc.RESP3 {
		fc.proto = 3
	}
	return fc, cmd, nil
}

// call runs cmd with its counters, as dispatch does.
func (s *Server) call(c *conn, cmd *command, args [][]byte) {
	cmd.calls.Add(1)
	c.failed = false
	cmd.fn(c, args)
	if c.failed {
		cmd.errors.Add(1)
	}
}

// Do runs one command on map mapName as a client of this node would
// (routed through the cluster when there is one) and returns its raw
// reply, in RESP3 when resp3 is set. It is how the HTTP API and the
// embedded Go API reach data that may live on other nodes. ack is the
// write acknowledgement level; eventual allows replica reads.
func (s *Server) Do(ctx context.Context, mapName string, args [][]byte, resp3 bool, ack cluster.Ack, eventual bool) []byte {
	if len(args) == 0 {
		return resp.AppendError(nil, "ERR empty command")
	}
	if store.IsInternal(mapName) {
		return resp.AppendError(nil, errInternalMap)
	}
	m, err := s.st.OpenMap(mapName)
	if err != nil {
		return resp.AppendError(nil, replyError(err))
	}
	c := &conn{s: s, nc: nopConn{}, m: m, proto: 2, authed: true, ack: ack, readonly: eventual}
	if resp3 {
		c.proto = 3
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("BUG: panic running a command for an API call", "command", trunc(args[0]), "panic", r)
			c.out = resp.AppendError(nil, "ERR internal error (logged)")
		}
	}()
	s.dispatch(c, args)
	return c.out
}

// nopConn stands in for the network connection of commands that arrive
// from another node or from the HTTP/Go APIs (their replies are
// captured, never written).
type nopConn struct{}

type internalAddr struct{}

func (internalAddr) Network() string { return "internal" }
func (internalAddr) String() string  { return "internal:0" }

func (nopConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return internalAddr{} }
func (nopConn) RemoteAddr() net.Addr             { return internalAddr{} }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
