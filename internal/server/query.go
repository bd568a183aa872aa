package server

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/query"
	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/store"
)

// JSON queries and indexes (jc values_match, evict_match,
// evict_all_match, their jc_s forms, start_indexing, stop_indexing,
// indexes); docs/queries.md.
//
// In a cluster:
//   - VALUESMATCH without a cursor scatters over every primary (each
//     answers for the partitions it leads, a moved partition makes the
//     whole scatter retry) and concatenates the maps; with CURSOR it reads
//     one partition at a time on its primary (PVALUESMATCH), as SCAN does.
//   - EVICTMATCH and EVICTALLMATCH are scattered writes (routes table):
//     each primary evicts partition by partition under the partition's
//     write guard, so the deletes replicate as any delete does.
//   - The sequence forms advance the map's cluster-wide sequence first
//     (seq.go), then run the scattered eviction.
//   - INDEX ADD/DEL apply on the node asked, then are recorded in the
//     control plane (Options.IndexConfig: every node applies the map's
//     index definitions, nodes that join later too) or, without one,
//     scattered to every primary; INDEX LIST shows this node's indexes.

// queryCommands are the query and index commands.
func queryCommands() []*command {
	return []*command{
		{name: "valuesmatch", arity: -2, fn: cmdValuesMatch},
		{name: "pvaluesmatch", arity: 3, fn: cmdPValuesMatch},
		{name: "evictmatch", arity: 2, write: true, fn: cmdEvictMatch},
		{name: "evictmatchseq", arity: 3, write: true, fn: cmdEvictMatchSeq},
		{name: "evictallmatch", arity: 2, write: true, fn: cmdEvictAllMatch},
		{name: "evictallmatchseq", arity: 3, write: true, fn: cmdEvictAllMatchSeq},
		{name: "index", arity: -2, fn: cmdIndex},
	}
}

// DefaultMatchCount is VALUESMATCH's page size with CURSOR and no COUNT.
const DefaultMatchCount = 100

// queries returns the index manager, or replies with an error.
func (c *conn) queries() (*query.Manager, bool) {
	if c.s.opts.Queries == nil {
		c.err("ERR JSON queries are not enabled on this server (no index manager)")
		return nil, false
	}
	return c.s.opts.Queries, true
}

// criteria parses a criteria argument, or replies with the error.
func (c *conn) criteria(b []byte) (*query.Criteria, bool) {
	cr, err := query.Parse(string(b))
	if err != nil {
		c.err("ERR " + oneLine(err.Error()))
		return nil, false
	}
	return cr, true
}

// queryOn is the preamble of the query commands: the node's index
// manager and the parsed criteria b, or a reply saying why not.
func (c *conn) queryOn(b []byte) (*query.Manager, *query.Criteria, bool) {
	qm, ok := c.queries()
	if !ok {
		return nil, nil, false
	}
	cr, ok := c.criteria(b)
	return qm, cr, ok
}

// kvReply appends a map reply of key/value pairs.
func (c *conn) kvReply(kvs []store.KV) {
	c.mapHeader(len(kvs))
	for _, kv := range kvs {
		c.bulk(kv.Key)
		c.bulk(kv.Value)
	}
}

// match collects the matches of cr in the partitions parts (nil: all).
func (c *conn) match(qm *query.Manager, cr *query.Criteria, parts []int, out []store.KV) []store.KV {
	qm.Match(c.m, cr, parts, func(k, v []byte) bool {
		out = append(out, store.KV{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
		return true
	})
	return out
}

// VALUESMATCH criteria [CURSOR cursor] [COUNT count]
func cmdValuesMatch(c *conn, a [][]byte) {
	qm, cr, ok := c.queryOn(a[1])
	if !ok {
		return
	}
	paged, cursor, count := false, uint64(0), DefaultMatchCount
	for i := 2; i < len(a); i += 2 {
		if i+1 >= len(a) {
			c.err(errSyntax)
			return
		}
		switch {
		case eq(a[i], "cursor"):
			n, err := strconv.ParseUint(string(a[i+1]), 10, 64)
			if err != nil {
				c.err("ERR invalid cursor")
				return
			}
			paged, cursor = true, n
		case eq(a[i], "count"):
			n, ok := parseInt(a[i+1])
			if !ok || n < 1 {
				c.err("ERR count must be a positive integer")
				return
			}
			count = int(min(n, 1<<20))
		default:
			c.err(errSyntax)
			return
		}
	}
	if !c.forwarded && c.parts == nil && cursor == 0 {
		c.noteQuery(qm, cr)
	}
	// A client's query on a cluster member (not a part of a scatter,
	// which runs with c.parts set) is routed.
	clustered := c.s.cl != nil && !c.forwarded && c.parts == nil
	switch {
	case !paged && clustered:
		c.s.scatterQuery(c, a[:2])
	case !paged:
		kvs := c.match(qm, cr, c.parts, nil)
		if !c.stillLeads(c.parts) {
			return
		}
		c.kvReply(kvs)
	default:
		c.matchPages(qm, cr, a[1], cursor, count, clustered)
	}
}

// matchPages is VALUESMATCH with CURSOR: whole partitions from the
// cursor on until count matches were collected; the next cursor is the
// next partition (0 when done), as SCAN's.
func (c *conn) matchPages(qm *query.Manager, cr *query.Criteria, crit []byte, cursor uint64, count int, clustered bool) {
	n := c.s.st.Partitions()
	var kvs []store.KV
	p := int(min(cursor, uint64(n)))
	for ; p < n && len(kvs) < count; p++ {
		if !clustered {
			kvs = c.match(qm, cr, []int{p}, kvs)
			continue
		}
		var reply []byte
		for attempt := 0; ; attempt++ {
			saved := c.out
			c.out = nil
			c.s.runPart(c, c.s.cmds["pvaluesmatch"], p, [][]byte{[]byte("PVALUESMATCH"), []byte(strconv.Itoa(p)), crit})
			reply = c.out
			c.out = saved
			if !movedReply(reply) || !backoff(attempt) {
				break
			}
		}
		v, err := parseReply(reply)
		if err != nil || v.Kind == '-' || v.Kind == '!' || len(v.Elems)%2 != 0 {
			c.out = append(c.out, reply...)
			c.failed = true
			return
		}
		for i := 0; i < len(v.Elems); i += 2 {
			kvs = append(kvs, store.KV{Key: v.Elems[i].Str, Value: v.Elems[i+1].Str})
		}
	}
	next := uint64(p)
	if p >= n {
		next = 0
	}
	c.array(2)
	c.bulkString(strconv.FormatUint(next, 10))
	c.kvReply(kvs)
}

// PVALUESMATCH partition criteria: the matches of one partition of the
// selected map (the paged VALUESMATCH's step; run on its primary).
func cmdPValuesMatch(c *conn, a [][]byte) {
	qm, ok := c.queries()
	if !ok {
		return
	}
	p, err := strconv.Atoi(string(a[1]))
	if err != nil || p < 0 || p >= c.s.st.Partitions() {
		c.err("ERR invalid partition")
		return
	}
	cr, ok := c.criteria(a[2])
	if !ok {
		return
	}
	kvs := c.match(qm, cr, []int{p}, nil)
	if !c.stillLeads([]int{p}) {
		return
	}
	c.kvReply(kvs)
}

// errMoved is the TRYAGAIN reason of a query part whose partition stopped
// being led by the node while it read it (the node may have dropped part
// of it): the caller runs the part again with the new table.
const errMoved = "TRYAGAIN a partition moved while this node read it"

// stillLeads reports whether this node, in a cluster, still leads parts
// after reading them (always true on one node). Otherwise it replies
// with errMoved.
func (c *conn) stillLeads(parts []int) bool {
	if c.s.cl == nil {
		return true
	}
	for _, p := range parts {
		if !c.s.cl.IsPrimary(p) {
			c.err(errMoved + " (partition " + strconv.Itoa(p) + ")")
			return false
		}
	}
	return true
}

func movedReply(b []byte) bool { return bytes.HasPrefix(b, []byte("-"+errMoved)) }

// backoff sleeps before retry attempt+1 of a query part and reports
// whether to retry (for at most about ten seconds, the cluster's request
// timeout).
func backoff(attempt int) bool {
	if attempt >= 100 {
		return false
	}
	time.Sleep(time.Duration(min(attempt+1, 10)) * 10 * time.Millisecond)
	return true
}

// scatterQuery is VALUESMATCH without a cursor in a cluster: every
// primary matches the partitions it leads and the maps are concatenated.
// A part whose partition moved while it was read (errMoved) makes the
// whole scatter run again.
func (s *Server) scatterQuery(c *conn, args [][]byte) {
	cmd := s.cmds["valuesmatch"]
	cc := c.clusterCommand(cmd, args)
	for attempt := 0; ; attempt++ {
		replies, err := s.cl.Scatter(c.ctx(), cc, func(parts []int) ([]byte, error) {
			return s.execScatter(c.ctx(), c, cmd, parts, cc, args)
		})
		if err != nil {
			c.clusterErr(err)
			return
		}
		if slices.ContainsFunc(replies, movedReply) && backoff(attempt) {
			continue
		}
		c.mergeReplies(mergeMaps, replies, nil, 0)
		return
	}
}

// noteQuery counts a client's query for automatic indexing and, in a
// cluster, gives the indexes it starts to every primary.
func (c *conn) noteQuery(qm *query.Manager, cr *query.Criteria) {
	for _, path := range qm.Note(c.m.Name(), cr) {
		if c.s.cl == nil {
			continue
		}
		var err error
		if c.s.opts.IndexConfig != nil {
			err = c.s.opts.IndexConfig(c.m.Name(), path, true, true)
		} else {
			err = c.s.broadcastIndex(c, [][]byte{[]byte("INDEX"), []byte("ADD"), []byte(c.m.Name()), []byte(path), []byte("AUTO")})
		}
		if err != nil {
			c.s.log.Warn("automatic index not given to every node", "map", c.m.Name(), "path", path, "err", err)
		}
	}
}

// EVICTMATCH criteria: remove the selected map's items that match.
func cmdEvictMatch(c *conn, a [][]byte) {
	qm, cr, ok := c.queryOn(a[1])
	if !ok {
		return
	}
	if !c.forwarded && c.parts == nil {
		c.noteQuery(qm, cr)
	}
	n, _ := qm.Evict(c.m, cr, c.parts)
	c.int(int64(n))
}

// EVICTMATCHSEQ seq criteria: EVICTMATCH checked against the map's
// sequence (jc_s evict_match/3).
func cmdEvictMatchSeq(c *conn, a [][]byte) {
	qm, ok := c.queries()
	if !ok {
		return
	}
	seq, ok := parseSeq(c, a[1])
	if !ok {
		return
	}
	cr, ok := c.criteria(a[2])
	if !ok {
		return
	}
	if c.s.cl != nil && !c.forwarded {
		if !c.s.clusterSeqAdvance(c, []byte(c.m.Name()), seq) {
			return
		}
		c.s.runScatter(c, c.s.cmds["evictmatch"], routes["evictmatch"], [][]byte{[]byte("EVICTMATCH"), a[2]})
		return
	}
	if err := c.m.CheckSequence(seq); err != nil {
		c.storeErr(err)
		return
	}
	n, _ := qm.Evict(c.m, cr, c.parts)
	c.int(int64(n))
}

// clusterSeqAdvance runs SEQADVANCE for map name on its home primary. It
// reports false after replying with the refusal or failure.
func (s *Server) clusterSeqAdvance(c *conn, name []byte, seq uint64) bool {
	t := s.cl.Table()
	if t == nil {
		c.err("TRYAGAIN this node has no partition table yet (joining the cluster)")
		return false
	}
	reply, ok := s.runInternal(c, t.PartitionOf(name), [][]byte{[]byte("SEQADVANCE"), name, strconv.AppendUint(nil, seq, 10)})
	if !ok {
		return false
	}
	if len(reply) > 0 && reply[0] == '-' {
		c.out = append(c.out, reply...)
		c.failed = true
		return false
	}
	return true
}

// EVICTALLMATCH criteria: remove the matching items of every map.
func cmdEvictAllMatch(c *conn, a [][]byte) {
	qm, cr, ok := c.queryOn(a[1])
	if !ok {
		return
	}
	c.int(int64(evictAll(c, qm, cr)))
}

func evictAll(c *conn, qm *query.Manager, cr *query.Criteria) int {
	n := 0
	for _, name := range c.s.st.MapNames() {
		if m, ok := c.s.st.Lookup([]byte(name)); ok {
			k, _ := qm.Evict(m, cr, c.parts)
			n += k
		}
	}
	return n
}

// EVICTALLMATCHSEQ seq criteria: EVICTALLMATCH checked against every
// map's sequence (jc_s evict_all_match/2): if any map's sequence is
// higher than seq, nothing is removed (OUTOFSEQ); otherwise every map's
// sequence becomes seq and the matching items are removed.
func cmdEvictAllMatchSeq(c *conn, a [][]byte) {
	qm, ok := c.queries()
	if !ok {
		return
	}
	seq, ok := parseSeq(c, a[1])
	if !ok {
		return
	}
	cr, ok := c.criteria(a[2])
	if !ok {
		return
	}
	if c.s.cl != nil && !c.forwarded {
		c.s.clusterEvictAllSeq(c, seq, a[2])
		return
	}
	names := c.s.st.MapNames()
	for _, name := range names {
		if m, ok := c.s.st.Lookup([]byte(name)); ok {
			if cur, has := m.Sequence(); has && seq < cur {
				c.storeErr(store.OutOfSequence(name, seq, cur))
				return
			}
		}
	}
	for _, name := range names {
		if m, ok := c.s.st.Lookup([]byte(name)); ok {
			if err := m.CheckSequence(seq); err != nil {
				c.storeErr(err) // a racing sequence-checked write won
				return
			}
		}
	}
	c.int(int64(evictAll(c, qm, cr)))
}

// clusterEvictAllSeq is EVICTALLMATCHSEQ in a cluster: every map's
// cluster-wide sequence is checked, then advanced, then EVICTALLMATCH is
// scattered. A map created between the listing and the eviction has its
// items evicted without its sequence being advanced.
func (s *Server) clusterEvictAllSeq(c *conn, seq uint64, crit []byte) {
	saved := c.out
	c.out = nil
	s.runScatter(c, s.cmds["maps"], routes["maps"], [][]byte{[]byte("MAPS")})
	reply := c.out
	c.out = saved
	v, err := parseReply(reply)
	if err != nil || v.Kind == '-' || v.Kind == '!' {
		c.out = append(c.out, reply...)
		c.failed = true
		return
	}
	for _, e := range v.Elems {
		cur, has, ok := s.clusterSeqOf(c, e.Str)
		if !ok {
			return
		}
		if has && seq < cur {
			c.storeErr(store.OutOfSequence(string(e.Str), seq, cur))
			return
		}
	}
	for _, e := range v.Elems {
		if !s.clusterSeqAdvance(c, e.Str, seq) {
			return
		}
	}
	s.runScatter(c, s.cmds["evictallmatch"], routes["evictallmatch"], [][]byte{[]byte("EVICTALLMATCH"), crit})
}

// INDEX ADD map path [AUTO] | INDEX DEL map path | INDEX LIST [map] |
// INDEX AUTO [threshold|OFF]
func cmdIndex(c *conn, a [][]byte) {
	qm, ok := c.queries()
	if !ok {
		return
	}
	sub := a[1]
	switch {
	case eq(sub, "add") && (len(a) == 4 || len(a) == 5 && eq(a[4], "auto")):
		if store.IsInternal(string(a[2])) {
			c.err(errInternalMap)
			return
		}
		if _, err := query.ParsePath(string(a[3])); err != nil {
			c.indexErr(err) // before the map is created: bad input changes nothing
			return
		}
		if _, err := c.s.st.OpenMap(string(a[2])); err != nil {
			c.storeErr(err)
			return
		}
		_, err := qm.Add(string(a[2]), string(a[3]), len(a) == 5)
		if err != nil {
			c.indexErr(err)
			return
		}
		c.indexBroadcast(a, true, len(a) == 5)
	case eq(sub, "del") && len(a) == 4:
		if _, err := qm.Remove(string(a[2]), string(a[3])); err != nil {
			c.indexErr(err)
			return
		}
		c.indexBroadcast(a, false, false)
	case eq(sub, "list") && len(a) <= 3:
		var list []query.Info
		if len(a) == 3 {
			list = qm.List(string(a[2]), false)
		} else {
			list = qm.List("", true)
		}
		c.indexList(list)
	case eq(sub, "auto") && len(a) == 2:
		c.int(int64(qm.AutoThreshold()))
	case eq(sub, "auto") && len(a) == 3:
		n := -1
		if !eq(a[2], "off") {
			v, ok := parseInt(a[2])
			if !ok || v < 1 || v > 1<<30 {
				c.err("ERR auto-index threshold must be a positive integer or OFF")
				return
			}
			n = int(v)
		}
		qm.SetAutoThreshold(n)
		c.ok()
	default:
		c.err("ERR unknown INDEX form: use INDEX ADD map path | INDEX DEL map path | INDEX LIST [map] | INDEX AUTO [threshold|OFF]")
	}
}

// indexErr replies with an index definition error.
func (c *conn) indexErr(err error) {
	switch {
	case errors.Is(err, query.ErrNoIndexesAvailable):
		c.err("NOINDEX " + oneLine(err.Error()))
	default:
		c.err("ERR " + oneLine(err.Error()))
	}
}

// indexBroadcast replies to INDEX ADD/DEL after applying it here: in a
// cluster (for a client's command) it first records it in the control
// plane (Options.IndexConfig), which applies it on every node, nodes
// that join later included; without one it gives it to every primary.
func (c *conn) indexBroadcast(a [][]byte, add, auto bool) {
	if c.s.cl != nil && !c.forwarded {
		var err error
		if c.s.opts.IndexConfig != nil {
			err = c.s.opts.IndexConfig(string(a[2]), string(a[3]), add, auto)
		} else {
			err = c.s.broadcastIndex(c, slices.Clone(a))
		}
		if err != nil {
			c.clusterErr(err)
			return
		}
	}
	c.ok()
}

// broadcastIndex runs an INDEX command on every other node that leads
// partitions (each applies it locally).
func (s *Server) broadcastIndex(c *conn, args [][]byte) error {
	cc := &cluster.Command{Map: c.m.Name(), Args: args}
	replies, err := s.cl.Scatter(c.ctx(), cc, func([]int) ([]byte, error) {
		return []byte("+OK\r\n"), nil // applied here already
	})
	if err != nil {
		return err
	}
	for _, r := range replies {
		if len(r) > 0 && r[0] == '-' {
			return errors.New(oneLine(string(r[1:])))
		}
	}
	return nil
}

// indexList replies with index descriptions.
func (c *conn) indexList(list []query.Info) {
	c.array(len(list))
	for _, in := range list {
		c.mapHeader(11)
		c.bulkString("map")
		c.bulkString(in.Map)
		c.bulkString("path")
		c.bulkString(in.Path)
		c.bulkString("position")
		c.int(int64(in.Position))
		c.bulkString("state")
		c.bulkString(in.State)
		c.bulkString("auto")
		c.int(int64(btoi(in.Auto)))
		c.bulkString("build_done")
		c.int(in.BuildDone)
		c.bulkString("build_total")
		c.int(in.BuildTotal)
		c.bulkString("keys")
		c.int(in.Keys)
		c.bulkString("values")
		c.int(in.Values)
		c.bulkString("bytes")
		c.int(in.Bytes)
		c.bulkString("created")
		c.out = resp.AppendBulkString(c.out, in.Created.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
}
