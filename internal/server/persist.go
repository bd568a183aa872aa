package server

import (
	"errors"
	"strconv"
	"strings"

	"github.com/engramdb/engram/internal/persist"
	"github.com/engramdb/engram/internal/store"
)

// The backing store (internal/persist) at the command level:
//
//   - every keyed command on a map with a store first makes its keys
//     present (read-through), unless it overwrites them without reading;
//   - writes are refused while the map's pending changes are at max_dirty;
//   - on a write-through map a write returns once SAVEKEY of its keys did;
//   - SAVEKEY, SAVEMAP, STORECONFIG and STORESTATUS.
//
// It runs where the command runs on the data (the partition's primary in
// a cluster), so a key is loaded once cluster-wide at a time.

// overwrites lists keyed commands that replace their keys' values without
// reading them: they need no read-through load.
var overwrites = map[string]bool{
	"setex": true, "psetex": true, "mset": true, "putall": true, "unsafeset": true,
}

// plainSet reports whether a SET replaces its key without reading it (no
// NX/XX/GET/KEEPTTL).
func plainSet(args [][]byte) bool {
	for _, a := range args[3:] {
		if eq(a, "nx") || eq(a, "xx") || eq(a, "get") || eq(a, "keepttl") {
			return false
		}
	}
	return true
}

// persistCommands are the backing-store commands.
func persistCommands() []*command {
	return []*command{
		{name: "savekey", arity: -2, fn: cmdSaveKey},
		{name: "savemap", arity: 1, fn: cmdSaveMap},
		{name: "storeconfig", arity: -2, fn: cmdStoreConfig},
		{name: "storestatus", arity: -1, fn: cmdStoreStatus},
	}
}

// wrapPersist makes every keyed command of the table read through and
// respect max_dirty on maps with a store.
func (s *Server) wrapPersist() {
	if s.opts.Persist == nil {
		return
	}
	for name, cmd := range s.cmds {
		r, ok := routes[name]
		if !ok || r.kind != routeKeys || name == "savekey" {
			continue
		}
		orig, write, load := cmd.fn, cmd.write, !overwrites[name]
		cmd.fn = func(c *conn, a [][]byte) {
			ms, err := s.opts.Persist.Policy(c.m)
			if err != nil {
				c.persistErr(err)
				return
			}
			if ms == nil {
				orig(c, a)
				return
			}
			if write {
				if err := ms.CheckDirty(); err != nil {
					c.err("TRYAGAIN " + oneLine(err.Error()))
					return
				}
			}
			if load && !(name == "set" && plainSet(a)) {
				if err := s.opts.Persist.Ensure(c.ctx(), ms, c.m, keysOf(r, a)); err != nil {
					c.persistErr(err)
					return
				}
			}
			orig(c, a)
		}
	}
}

// keysOf returns the keys of a keyed command's arguments.
func keysOf(r route, a [][]byte) [][]byte {
	first, last := r.keyArgs(len(a))
	if first >= len(a) || last < first {
		return nil
	}
	keys := make([][]byte, 0, (last-first)/r.step+1)
	for i := first; i <= last && i < len(a); i += r.step {
		keys = append(keys, a[i])
	}
	return keys
}

// persistErr replies with a backing-store failure: "STORE" for the
// store's own errors (so a client can tell "the store failed" from "not
// found"), ERR for a bad setting.
func (c *conn) persistErr(err error) {
	var le *persist.LoadError
	if errors.As(err, &le) || strings.Contains(err.Error(), "backing store") {
		c.err("STORE " + oneLine(err.Error()))
		return
	}
	c.err("ERR " + oneLine(err.Error()))
}

// mapPolicy returns the backing-store state of c's map (nil for none).
func (c *conn) mapPolicy() *persist.State {
	if c.s.opts.Persist == nil {
		return nil
	}
	ms, err := c.s.opts.Persist.Policy(c.m)
	if err != nil {
		return nil
	}
	return ms
}

// writeThrough reports whether writes to c's map wait for the store.
func (c *conn) writeThrough() bool {
	ms := c.mapPolicy()
	return ms != nil && ms.Settings().Mode == persist.ModeWriteThrough
}

// afterWrite makes a write to a write-through map wait until the store
// has its keys (SAVEKEY, routed like any keyed command). If the store
// fails, the client gets the error: the write is applied in memory and
// stays pending, written back in the background.
func (s *Server) afterWrite(c *conn, cmd *command, args [][]byte, start int) {
	if c.forwarded || c.failed || !cmd.write || !c.writeThrough() {
		return // the common case costs an atomic load (no map has a store)
	}
	r, ok := routes[cmd.name]
	if !ok || r.kind != routeKeys {
		return
	}
	keys := keysOf(r, args)
	if len(keys) == 0 {
		return
	}
	save := append([][]byte{[]byte("savekey")}, keys...)
	mark := len(c.out)
	sk := s.cmds["savekey"]
	if !s.clusterRun(c, sk, save) {
		sk.fn(c, save)
	}
	reply := c.out[mark:]
	if len(reply) > 0 && reply[0] == '-' {
		msg := strings.TrimRight(string(reply[1:]), "\r\n")
		// Replace the command's reply with the failure.
		c.out = c.out[:start]
		c.err("STORE write applied in memory but not yet in the store (it is retried in the background): " + msg)
		return
	}
	c.out = c.out[:mark]
}

// storeOf returns the state of c's map for a command that needs a store,
// or replies with why there is none.
func (c *conn) storeOf() (*persist.State, bool) {
	ms, err := c.s.opts.Persist.Policy(c.m)
	if err != nil {
		c.persistErr(err)
		return nil, false
	}
	if ms == nil {
		c.err("ERR map '" + trunc([]byte(c.m.Name())) + "' has no backing store (see STORECONFIG)")
		return nil, false
	}
	return ms, true
}

func cmdSaveKey(c *conn, a [][]byte) {
	ms, ok := c.storeOf()
	if !ok {
		return
	}
	n, err := c.s.opts.Persist.Save(c.ctx(), ms, c.m, a[1:])
	if err != nil {
		c.persistErr(err)
		return
	}
	c.int(int64(n))
}

func cmdSaveMap(c *conn, _ [][]byte) {
	ms, ok := c.storeOf()
	if !ok {
		return
	}
	parts := c.parts
	if parts == nil {
		parts = make([]int, c.s.st.Partitions())
		for i := range parts {
			parts[i] = i
		}
	}
	n, err := c.s.opts.Persist.SaveParts(c.ctx(), ms, c.m, parts)
	if err != nil {
		c.persistErr(err)
		return
	}
	c.int(int64(n))
}

// STORECONFIG map                       -> the map's settings
// STORECONFIG map field value [...]     -> change them (cluster-wide)
func cmdStoreConfig(c *conn, a [][]byte) {
	p := c.s.opts.Persist
	if p == nil {
		c.err("ERR this node has no backing store support")
		return
	}
	name := string(a[1])
	if store.IsInternal(name) {
		c.err(errInternalMap)
		return
	}
	if len(a) == 2 {
		s, explicit := p.Settings(name)
		fields := s.Fields(redactURL)
		c.array(len(fields) + 2)
		for _, f := range fields {
			c.bulk([]byte(f))
		}
		c.bulk([]byte("explicit"))
		c.bulk([]byte(strconv.FormatBool(explicit)))
		return
	}
	pairs := make([]string, 0, len(a)-2)
	for _, x := range a[2:] {
		pairs = append(pairs, string(x))
	}
	cur, _ := p.Settings(name)
	next, err := persist.ApplyFields(cur, pairs)
	if err == nil {
		next = next.WithDefaults()
		err = p.Check(next)
	}
	if err != nil {
		c.err("ERR " + oneLine(err.Error()))
		return
	}
	if err := p.Probe(next); err != nil {
		c.persistErr(err)
		return
	}
	if c.s.opts.MapStore != nil && !c.forwarded {
		// Cluster configuration: recorded by the control plane and applied
		// on every node (and on nodes that join later).
		if err := c.s.opts.MapStore(name, next.String()); err != nil {
			c.clusterErr(err)
			return
		}
		c.ok()
		return
	}
	if _, err := c.s.st.OpenMap(name); err != nil {
		c.storeErr(err)
		return
	}
	if err := p.Configure(name, next); err != nil {
		c.persistErr(err)
		return
	}
	c.ok()
}

// STORESTATUS [map]: this node's view of each map's backing store.
func cmdStoreStatus(c *conn, a [][]byte) {
	p := c.s.opts.Persist
	if p == nil {
		c.array(0)
		return
	}
	var list []persist.MapStats
	for _, st := range p.Stats() {
		if len(a) > 1 && st.Map != string(a[1]) {
			continue
		}
		list = append(list, st)
	}
	c.array(len(list))
	for _, st := range list {
		f := []string{"map", st.Map, "mode", st.Settings.Mode.String(), "active", strconv.FormatBool(st.Active),
			"pending", i64(st.Pending), "pending_bytes", i64(st.PendingBytes), "oldest_ms", i64(st.OldestMs), "received", i64(st.Received),
			"written", i64(st.Written), "deleted", i64(st.Deleted), "batches", i64(st.Batches),
			"failures", i64(st.Failures), "consecutive_failures", strconv.Itoa(int(st.Consecutive)),
			"last_error", st.LastError, "loads", i64(st.Loads), "loads_found", i64(st.LoadsFound),
			"load_errors", i64(st.LoadErrors), "negative_hits", i64(st.NegativeHits)}
		c.array(len(f))
		for _, x := range f {
			c.bulk([]byte(x))
		}
	}
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// redactURL hides a password someone put in a store URL.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndexByte(rest, '@')
	slash := strings.IndexByte(rest, '/')
	if at < 0 || (slash >= 0 && at > slash) {
		return u
	}
	return scheme + "://REDACTED@" + rest[at+1:]
}
