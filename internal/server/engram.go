package server

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/store"
)

// engramCommands are the capabilities Redis lacks: jc's cache, sequence
// (jc_s) and eviction-manager functions, and the meta functions. They act
// on the connection's selected map unless they name one. docs/commands.md
// documents each with examples.
func engramCommands() []*command {
	return []*command{
		{name: "maps", arity: 1, fn: cmdMaps},
		{name: "mapsize", arity: -1, fn: cmdMapSize},
		{name: "mapinfo", arity: -1, fn: cmdMapInfo},
		{name: "cachesize", arity: 1, fn: cmdCacheSize},
		{name: "up", arity: 1, fn: cmdUp},
		{name: "cachenodes", arity: 1, fn: cmdCacheNodes},
		{name: "contains", arity: 2, fn: func(c *conn, a [][]byte) { c.int(int64(btoi(c.m.Contains(a[1])))) }},
		{name: "getall", arity: -2, fn: cmdGetAll},
		{name: "keyset", arity: 1, fn: cmdKeySet},
		{name: "values", arity: 1, fn: cmdValues},
		{name: "putall", arity: -4, write: true, fn: func(c *conn, a [][]byte) { cmdPutAll(c, a, false) }},
		{name: "putallseq", arity: -5, write: true, fn: func(c *conn, a [][]byte) { cmdPutAll(c, a, true) }},
		{name: "setseq", arity: -4, write: true, fn: cmdSetSeq},
		{name: "delseq", arity: -3, write: true, fn: cmdDelSeq},
		{name: "removeitems", arity: -2, write: true, fn: func(c *conn, a [][]byte) { cmdRemoveItems(c, a, false) }},
		{name: "removeitemsseq", arity: -3, write: true, fn: func(c *conn, a [][]byte) { cmdRemoveItems(c, a, true) }},
		{name: "sequence", arity: -1, fn: cmdSequence},
		{name: "sequences", arity: 1, fn: cmdSequences},
		{name: "evictsince", arity: 2, write: true, fn: cmdEvictSince},
		{name: "setmaxttl", arity: -2, write: true, fn: cmdSetMaxTTL},
		{name: "maxttl", arity: -1, fn: cmdMaxTTL},
		{name: "getmaxttls", arity: 1, fn: cmdGetMaxTTLs},
		{name: "setmaxkeys", arity: -2, write: true, fn: cmdSetMaxKeys},
		{name: "clear", arity: -1, write: true, fn: cmdClear},
		{name: "flush", arity: -1, write: true, fn: cmdFlush},
		{name: "unsafeset", arity: -3, write: true, fn: cmdSet},
		{name: "pscan", arity: 3, fn: cmdPScan},
		{name: "readonly", arity: 1, fn: func(c *conn, _ [][]byte) { c.readonly = true; c.ok() }},
		{name: "readwrite", arity: 1, fn: func(c *conn, _ [][]byte) { c.readonly = false; c.ok() }},
		{name: "ack", arity: -1, fn: cmdAck},
		{name: "cluster", arity: -2, fn: cmdCluster},
	}
}

// mapArg returns the map named by a[i] if present, else the selected map.
// It never creates a map for a read.
func mapArg(c *conn, a [][]byte, i int) (*store.Map, bool) {
	if len(a) <= i {
		return c.m, true
	}
	if len(a) > i+1 {
		c.err(errSyntax)
		return nil, false
	}
	if store.IsInternal(string(a[i])) {
		c.err(errInternalMap)
		return nil, false
	}
	if m, ok := c.s.st.Lookup(a[i]); ok {
		return m, true
	}
	return nil, true
}

// openMapArg is mapArg for settings, which create the map.
func openMapArg(c *conn, a [][]byte, i int) (*store.Map, bool) {
	if len(a) <= i {
		return c.m, true
	}
	if len(a) > i+1 {
		c.err(errSyntax)
		return nil, false
	}
	if store.IsInternal(string(a[i])) {
		c.err(errInternalMap)
		return nil, false
	}
	m, err := c.s.st.OpenMap(string(a[i]))
	if err != nil {
		c.storeErr(err)
		return nil, false
	}
	return m, true
}

// mapNames returns the names of the maps that hold keys or settings, as
// MAPS and CACHESIZE list them.
func (c *conn) mapNames() []string {
	names := c.s.st.MapNames()
	if sm, ok := c.s.st.Lookup([]byte(seqMapName)); ok && c.s.cl != nil {
		// In a cluster a map's sequence is a record of the internal
		// sequence map, on its home partition's owners (seq.go): a map
		// with a sequence is listed, as on one node.
		for _, k := range sm.KeysIn(c.parts, nil) {
			names = append(names, string(k))
		}
		slices.Sort(names)
		names = slices.Compact(names)
	}
	return names
}

func cmdMaps(c *conn, _ [][]byte) {
	names := c.mapNames()
	c.array(len(names))
	for _, n := range names {
		c.bulkString(n)
	}
}

func cmdMapSize(c *conn, a [][]byte) {
	m, ok := mapArg(c, a, 1)
	if !ok {
		return
	}
	if m == nil {
		c.int(0)
		return
	}
	c.int(m.LenIn(c.parts))
}

func cmdMapInfo(c *conn, a [][]byte) {
	m, ok := mapArg(c, a, 1)
	if !ok {
		return
	}
	if m == nil {
		c.null()
		return
	}
	seq, hasSeq := m.Sequence()
	if c.s.cl != nil && !c.forwarded {
		// In a cluster the sequence is the cluster's, kept on the map's
		// home partition (seq.go).
		if seq, hasSeq, ok = c.s.clusterSeqOf(c, []byte(m.Name())); !ok {
			return
		}
	}
	c.mapHeader(6)
	c.bulkString("name")
	c.bulkString(m.Name())
	c.bulkString("keys")
	c.int(m.Len())
	c.bulkString("bytes")
	c.int(m.Bytes())
	c.bulkString("max_ttl")
	c.int(m.MaxTTL())
	c.bulkString("max_keys")
	c.int(m.MaxKeys())
	c.bulkString("sequence")
	if hasSeq {
		c.int(int64(seq))
	} else {
		c.null()
	}
}

func cmdCacheSize(c *conn, _ [][]byte) {
	names := c.mapNames()
	c.array(len(names))
	for _, n := range names {
		var keys, size int64
		if m, ok := c.s.st.Lookup([]byte(n)); ok {
			keys, size = m.LenIn(c.parts), m.BytesIn(c.parts)
		}
		c.array(3)
		c.bulkString(n)
		c.int(keys)
		c.int(size)
	}
}

func cmdUp(c *conn, _ [][]byte) {
	st := c.s.st.Stats()
	up := st.Uptime
	d := int64(up.Hours()) / 24
	h, m, s := int64(up.Hours())%24, int64(up.Minutes())%60, int64(up.Seconds())%60
	c.mapHeader(4)
	c.bulkString("up_at")
	c.bulkString(st.Started.UTC().Format(time.RFC3339))
	c.bulkString("now")
	c.bulkString(time.Now().UTC().Format(time.RFC3339))
	c.bulkString("uptime_seconds")
	c.int(int64(up.Seconds()))
	c.bulkString("up_time")
	c.bulkString(fmt.Sprintf("%dd %02d:%02d:%02d", d, h, m, s))
}

func cmdCacheNodes(c *conn, _ [][]byte) {
	active, configured := []string{c.nc.LocalAddr().String()}, []string{c.nc.LocalAddr().String()}
	if c.s.opts.Nodes != nil {
		active, configured = c.s.opts.Nodes()
	}
	c.mapHeader(2)
	c.bulkString("active")
	c.array(len(active))
	for _, n := range active {
		c.bulkString(n)
	}
	c.bulkString("configured")
	c.array(len(configured))
	for _, n := range configured {
		c.bulkString(n)
	}
}

func cmdGetAll(c *conn, a [][]byte) {
	found, misses := c.m.GetAll(a[1:])
	c.array(2)
	c.mapHeader(len(found))
	for _, kv := range found {
		c.bulk(kv.Key)
		c.bulk(kv.Value)
	}
	c.array(len(misses))
	for _, k := range misses {
		c.bulk(k)
	}
}

func cmdKeySet(c *conn, _ [][]byte) {
	keys := c.m.KeysIn(c.parts, nil)
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

func cmdValues(c *conn, _ [][]byte) {
	items := c.m.ItemsIn(c.parts, nil, 0)
	c.array(len(items))
	for _, kv := range items {
		c.bulk(kv.Value)
	}
}

// parseSeq reads a sequence number argument.
func parseSeq(c *conn, b []byte) (uint64, bool) {
	// Bounded to int64 because RESP integers, in which SEQUENCE replies,
	// are signed.
	n, err := strconv.ParseUint(string(b), 10, 63)
	if err != nil {
		c.err("ERR sequence must be an integer between 0 and 9223372036854775807")
		return 0, false
	}
	return n, true
}

// PUTALL ttl-seconds key value [key value ...]
// PUTALLSEQ seq ttl-seconds key value [key value ...]
func cmdPutAll(c *conn, a [][]byte, withSeq bool) {
	o, items, ok := parsePutAll(c, a, withSeq)
	if !ok {
		return
	}
	n, err := c.m.PutAll(items, o)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(n))
}

// parsePutAll reads the arguments of PUTALL or PUTALLSEQ. It reports
// false after replying with the error.
func parsePutAll(c *conn, a [][]byte, withSeq bool) (store.SetOptions, []store.KV, bool) {
	var o store.SetOptions
	i := 1
	if withSeq {
		seq, ok := parseSeq(c, a[1])
		if !ok {
			return o, nil, false
		}
		o.Seq, o.HasSeq = seq, true
		i = 2
	}
	ttl, ok := parseInt(a[i])
	if !ok || ttl < 0 || ttl > 1<<40 {
		c.err("ERR ttl must be a non-negative integer of seconds (0 = none)")
		return o, nil, false
	}
	if ttl > 0 {
		o.ExpireAt = c.s.now() + ttl*1000
	}
	items, ok := pairs(c, a[i+1:], strings.ToLower(string(a[0])))
	return o, items, ok
}

// SETSEQ seq key value [EX seconds|PX milliseconds|EXAT s|PXAT ms]
func cmdSetSeq(c *conn, a [][]byte) {
	o, ok := parseSetSeq(c, a)
	if !ok {
		return
	}
	if _, err := c.m.Set(a[2], a[3], o); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

// parseSetSeq reads the arguments of SETSEQ. It reports false after
// replying with the error.
func parseSetSeq(c *conn, a [][]byte) (store.SetOptions, bool) {
	seq, ok := parseSeq(c, a[1])
	if !ok {
		return store.SetOptions{}, false
	}
	o := store.SetOptions{Seq: seq, HasSeq: true}
	var e expiry
	for i := 4; i < len(a); {
		n := e.parse(a, i)
		if n == 0 {
			c.err(errSyntax)
			return o, false
		}
		i += n
	}
	at, ok := e.resolve(c, "setseq")
	if !ok {
		return o, false
	}
	o.ExpireAt = at
	return o, true
}

// DELSEQ seq key [key ...]
func cmdDelSeq(c *conn, a [][]byte) {
	seq, ok := parseSeq(c, a[1])
	if !ok {
		return
	}
	if err := c.m.CheckSequence(seq); err != nil {
		c.storeErr(err)
		return
	}
	var n int64
	for _, k := range a[2:] {
		if c.m.Delete(k) {
			n++
		}
	}
	c.int(n)
}

func cmdRemoveItems(c *conn, a [][]byte, withSeq bool) {
	keys := a[1:]
	if withSeq {
		seq, ok := parseSeq(c, a[1])
		if !ok {
			return
		}
		if err := c.m.CheckSequence(seq); err != nil {
			c.storeErr(err)
			return
		}
		keys = a[2:]
	}
	removed := c.m.RemoveItems(keys)
	c.mapHeader(len(removed))
	for _, kv := range removed {
		c.bulk(kv.Key)
		c.bulk(kv.Value)
	}
}

func cmdSequence(c *conn, a [][]byte) {
	m, ok := mapArg(c, a, 1)
	if !ok {
		return
	}
	if m == nil {
		c.null()
		return
	}
	seq, has := m.Sequence()
	if !has {
		c.null()
		return
	}
	c.int(int64(seq))
}

func cmdSequences(c *conn, _ [][]byte) {
	seqs := c.s.st.Sequences()
	names := sortedKeys(seqs)
	c.mapHeader(len(names))
	for _, n := range names {
		c.bulkString(n)
		c.int(int64(seqs[n]))
	}
}

func cmdEvictSince(c *conn, a [][]byte) {
	age, ok := parseInt(a[1])
	if !ok || age < 0 {
		c.err("ERR age must be a non-negative integer of seconds")
		return
	}
	c.int(int64(c.m.EvictSinceIn(c.parts, age)))
}

// SETMAXTTL seconds [map]
func cmdSetMaxTTL(c *conn, a [][]byte) {
	setMapSetting(c, a, "ERR max ttl must be a non-negative integer of seconds (0 = none)", (*store.Map).SetMaxTTL)
}

// setMapSetting runs "CMD n [map]": a non-negative n applied to the named
// (or selected) map by set.
func setMapSetting(c *conn, a [][]byte, bad string, set func(*store.Map, int64) error) {
	n, ok := parseInt(a[1])
	if !ok || n < 0 {
		c.err(bad)
		return
	}
	m, ok := openMapArg(c, a, 2)
	if !ok {
		return
	}
	if err := set(m, n); err != nil {
		c.storeErr(err)
		return
	}
	if c.s.opts.MapConfig != nil && !c.forwarded {
		// A cluster's map settings are cluster configuration: record them
		// in the control plane, which applies them on every node (and on
		// nodes that join later).
		setting := "max_ttl"
		if eq(a[0], "setmaxkeys") {
			setting = "max_keys"
		}
		if err := c.s.opts.MapConfig(m.Name(), setting, n); err != nil {
			c.clusterErr(err)
			return
		}
	}
	c.ok()
}

func cmdMaxTTL(c *conn, a [][]byte) {
	m, ok := mapArg(c, a, 1)
	if !ok {
		return
	}
	if m == nil {
		c.int(0)
		return
	}
	c.int(m.MaxTTL())
}

func cmdGetMaxTTLs(c *conn, _ [][]byte) {
	out := map[string]int64{}
	for _, n := range c.s.st.MapNames() {
		if m, ok := c.s.st.Lookup([]byte(n)); ok && m.MaxTTL() > 0 {
			out[n] = m.MaxTTL()
		}
	}
	names := sortedKeys(out)
	c.mapHeader(len(names))
	for _, n := range names {
		c.bulkString(n)
		c.int(out[n])
	}
}

// SETMAXKEYS n [map]
func cmdSetMaxKeys(c *conn, a [][]byte) {
	setMapSetting(c, a, "ERR max keys must be a non-negative integer (0 = none)", (*store.Map).SetMaxKeys)
}

// CLEAR [map]
func cmdClear(c *conn, a [][]byte) {
	m, ok := mapArg(c, a, 1)
	if !ok {
		return
	}
	if m != nil {
		m.ClearIn(c.parts, false)
	}
	c.ok()
}

// FLUSH [SILENT]
func cmdFlush(c *conn, a [][]byte) {
	silent := false
	switch {
	case len(a) == 2 && eq(a[1], "silent"):
		silent = true
	case len(a) > 1:
		c.err(errSyntax)
		return
	}
	c.s.st.FlushIn(c.parts, silent)
	c.ok()
}

// ACK [ALL|PRIMARY|NONE]: this connection's write acknowledgement level
// in a cluster (default ALL); without an argument, the current level.
func cmdAck(c *conn, a [][]byte) {
	if len(a) == 1 {
		c.bulkString(c.ack.String())
		return
	}
	if len(a) > 2 {
		c.err(errSyntax)
		return
	}
	switch {
	case eq(a[1], "all"):
		c.ack = cluster.AckAll
	case eq(a[1], "primary"):
		c.ack = cluster.AckPrimary
	case eq(a[1], "none"):
		c.ack = cluster.AckNone
	default:
		c.err("ERR ack level must be ALL, PRIMARY or NONE")
		return
	}
	c.ok()
}
