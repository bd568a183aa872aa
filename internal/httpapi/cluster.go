package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/store"
)

// The cluster path. On a cluster member (Options.Exec set) every data
// route runs the Redis-protocol command that does the same thing through
// Exec, so the node routes it as it routes its RESP clients' commands: to
// the primary of the key's partition, split by partition and merged for
// batches, scattered over every primary and gathered for whole-map and
// whole-keyspace routes. The request is checked here first exactly as on
// the standalone path (parameters, key and value limits, batch bodies),
// so refused input never reaches the cluster; the reply is parsed back
// into the same JSON, and error replies become the same statuses and
// codes (plus 503 with Retry-After while the cluster cannot answer).
//
// Node-local routes stay local in a cluster: memory settings
// (/v1/config), /v1/stats, /v1/up, and the reads of per-map settings
// (max_ttl, max_keys, max_ttls), which every node applies.

// Cluster query parameters of data routes.
const (
	// paramAck is the acknowledgement level of a write: all, primary or
	// none.
	paramAck = "ack"
	// paramConsistent=false lets a read be served by a replica.
	paramConsistent = "consistent"
)

// execOptions reads ack and consistent. A standalone node checks them too
// (and needs neither: its writes are acknowledged once applied and its
// reads are always consistent), so one client works against both.
func execOptions(q url.Values) (ExecOptions, error) {
	var o ExecOptions
	if q.Has(paramAck) {
		switch q.Get(paramAck) {
		case "all":
			o.Ack = cluster.AckAll
		case "primary":
			o.Ack = cluster.AckPrimary
		case "none":
			o.Ack = cluster.AckNone
		default:
			return o, badRequest("ack must be all, primary or none, got %q", q.Get(paramAck))
		}
	}
	if q.Has(paramConsistent) {
		c, err := boolParam(q, paramConsistent)
		if err != nil {
			return o, err
		}
		o.Eventual = !c
	}
	return o, nil
}

// clustered picks the handler of the node's mode: h on a standalone node,
// c on a cluster member.
func (a *api) clustered(h, c handlerFunc) handlerFunc {
	switch {
	case a.exec == nil:
		return h
	case a.direct == nil:
		return c
	}
	// A standalone node: maps with a backing store take the command path
	// (read-through, write-back), the others the store directly.
	return func(w http.ResponseWriter, r *http.Request) error {
		if a.direct(r.PathValue("map")) {
			return h(w, r)
		}
		return c(w, r)
	}
}

// clusterMap returns the request's map name for the cluster path. Names
// starting with a zero byte are the cluster's internal maps
// (store.IsInternal): clients may not reach them.
func clusterMap(r *http.Request) (string, error) {
	name := r.PathValue("map")
	if len(name) > 0 && name[0] == 0 {
		return "", badRequest("invalid map name: names starting with a zero byte are reserved for Engram's internal maps")
	}
	return name, nil
}

// call is one request's access to the cluster: its map and options.
type call struct {
	a   *api
	r   *http.Request
	m   string
	opt ExecOptions
}

// newCall reads the map and the cluster options of a request whose query
// q was already checked.
func (a *api) newCall(r *http.Request, q url.Values) (*call, error) {
	m, err := clusterMap(r)
	if err != nil {
		return nil, err
	}
	o, err := execOptions(q)
	if err != nil {
		return nil, err
	}
	return &call{a: a, r: r, m: m, opt: o}, nil
}

// do runs one command and returns its reply; an error reply becomes the
// matching API error.
func (c *call) do(args ...[]byte) (resp.Value, error) {
	reply := c.a.exec(c.r.Context(), c.m, args, c.opt)
	v, err := resp.ReadValue(bufio.NewReader(bytes.NewReader(reply)), len(reply)+1)
	if err != nil {
		return v, fmt.Errorf("BUG: unreadable reply to %s: %v", args[0], err)
	}
	if v.Kind == '-' || v.Kind == '!' {
		return v, replyError(string(v.Str))
	}
	return v, nil
}

// integer runs a command whose reply is an integer.
func (c *call) integer(args ...[]byte) (int64, error) {
	v, err := c.do(args...)
	if err != nil {
		return 0, err
	}
	if v.Kind != ':' {
		return 0, unexpected(args[0], v)
	}
	return v.Int, nil
}

// bulk runs a command whose reply is a bulk string or null.
func (c *call) bulk(args ...[]byte) (val []byte, ok bool, err error) {
	v, err := c.do(args...)
	switch {
	case err != nil:
		return nil, false, err
	case v.Null:
		return nil, false, nil
	case v.Kind != '$':
		return nil, false, unexpected(args[0], v)
	}
	return v.Str, true, nil
}

func unexpected(cmd []byte, v resp.Value) error {
	return fmt.Errorf("BUG: unexpected reply of type %q to %s", v.Kind, cmd)
}

// words turns command words into arguments.
func words(ws ...string) [][]byte {
	out := make([][]byte, len(ws))
	for i, w := range ws {
		out[i] = []byte(w)
	}
	return out
}

func itoa(n int64) []byte  { return strconv.AppendInt(nil, n, 10) }
func utoa(n uint64) []byte { return strconv.AppendUint(nil, n, 10) }

// clusterSeq reads seq for the cluster path, whose sequence numbers are
// at most 2^63-1 (the Redis protocol's integers).
func clusterSeq(q url.Values) (uint64, bool, error) {
	seq, has, err := seqParam(q)
	if err == nil && has && seq > math.MaxInt64 {
		return 0, false, badRequest("in a cluster, seq must be at most %d, got %d", int64(math.MaxInt64), seq)
	}
	return seq, has, err
}

// pairsOf reads a map reply (a flat key, value list) into a lookup.
func pairsOf(cmd []byte, v resp.Value) (map[string][]byte, error) {
	if len(v.Elems)%2 != 0 {
		return nil, unexpected(cmd, v)
	}
	out := make(map[string][]byte, len(v.Elems)/2)
	for i := 0; i < len(v.Elems); i += 2 {
		out[string(v.Elems[i].Str)] = v.Elems[i+1].Str
	}
	return out, nil
}

// inOrder lists the items of found in the order of keys (once per
// mention, as the standalone path does), and the keys not found.
func inOrder(keys [][]byte, found map[string][]byte) (items []store.KV, misses [][]byte) {
	for _, k := range keys {
		if v, ok := found[string(k)]; ok {
			items = append(items, store.KV{Key: k, Value: v})
		} else {
			misses = append(misses, k)
		}
	}
	return items, misses
}

// Single keys.

func (a *api) cGetValue(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	k := key(r)
	val, ok, err := c.bulk([]byte("GET"), k)
	if err != nil {
		return err
	}
	if !ok {
		return errKeyNotFound
	}
	// The expiry is a second command: if the key changed in between, the
	// headers describe the newer state (as a read just after would).
	ttl, err := c.integer([]byte("PTTL"), k)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(val)))
	h.Set("Cache-Control", "no-store")
	a.ttlHeaders(w, ttl)
	_, _ = w.Write(val)
	return nil
}

func (a *api) cHeadValue(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	ttl, err := c.integer([]byte("PTTL"), key(r))
	if err != nil {
		return err
	}
	if ttl == -2 {
		return errKeyNotFound
	}
	a.ttlHeaders(w, ttl)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (a *api) cExists(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	n, err := c.integer([]byte("EXISTS"), key(r))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"exists": n > 0})
}

// expiryArgs returns the SET options giving the expiry that q asks for,
// relative (PX) so that the owner's clock applies it, or absolute (PXAT)
// for at_ms.
func expiryArgs(q url.Values) ([][]byte, error) {
	// now = 0: the relative amounts themselves, checked for overflow.
	ms, err := expiry(q, 0)
	switch {
	case err != nil:
		return nil, err
	case ms == 0:
		return nil, nil
	case q.Has("at_ms"):
		return [][]byte{[]byte("PXAT"), itoa(ms)}, nil
	}
	return [][]byte{[]byte("PX"), itoa(ms)}, nil
}

// setArgs builds SET key value [PX ms] [KEEPTTL] [NX|XX] for the write
// options o (already checked) read from q; withGet adds GET, so the reply
// tells whether the key existed.
func setArgs(q url.Values, o store.SetOptions, k, val []byte, withGet bool) ([][]byte, error) {
	args := [][]byte{[]byte("SET"), k, val}
	ex, err := expiryArgs(q)
	if err != nil {
		return nil, err
	}
	args = append(args, ex...)
	if o.KeepTTL {
		args = append(args, []byte("KEEPTTL"))
	}
	switch o.Cond {
	case store.IfAbsent:
		args = append(args, []byte("NX"))
	case store.IfPresent:
		args = append(args, []byte("XX"))
	}
	if withGet {
		args = append(args, []byte("GET"))
	}
	return args, nil
}

// errSeqOptions refuses write options the cluster's sequence-checked
// commands (SETSEQ, PUTALLSEQ) do not have.
var errSeqOptions = badRequest("in a cluster, seq combines only with ttl or ttl_ms (not with nx, xx or keepttl)")

func (a *api) cPutValue(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, writeParams...)
	if err != nil {
		return err
	}
	o, err := a.setOptions(q)
	if err != nil {
		return err
	}
	if _, _, err := clusterSeq(q); err != nil {
		return err
	}
	if o.HasSeq && (o.KeepTTL || o.Cond != store.Always) {
		return errSeqOptions
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	k := key(r)
	if err := a.checkKey(k); err != nil {
		return err
	}
	val, err := a.readValue(w, r)
	if err != nil {
		return err
	}
	if o.HasSeq {
		// SETSEQ answers OK only: whether the key existed is read just
		// before (not atomically with the write).
		n, err := c.integer([]byte("EXISTS"), k)
		if err != nil {
			return err
		}
		args := [][]byte{[]byte("SETSEQ"), utoa(o.Seq), k, val}
		ex, err := expiryArgs(q)
		if err != nil {
			return err
		}
		if _, err := c.do(append(args, ex...)...); err != nil {
			return err
		}
		return writeJSON(w, map[string]bool{"written": true, "existed": n > 0})
	}
	// Without a condition, SET ... GET tells whether the key existed (its
	// old value, or null); with NX or XX, whether it was written does.
	args, err := setArgs(q, o, k, val, o.Cond == store.Always)
	if err != nil {
		return err
	}
	v, err := c.do(args...)
	if err != nil {
		return err
	}
	null := v.Null
	switch o.Cond {
	case store.IfAbsent:
		return writeJSON(w, map[string]bool{"written": !null, "existed": null})
	case store.IfPresent:
		return writeJSON(w, map[string]bool{"written": !null, "existed": !null})
	}
	return writeJSON(w, map[string]bool{"written": true, "existed": !null})
}

func (a *api) cDeleteValue(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "seq", paramAck)
	if err != nil {
		return err
	}
	seq, hasSeq, err := clusterSeq(q)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	k := key(r)
	var n int64
	if hasSeq {
		if err := a.checkKey(k); err != nil {
			return err
		}
		n, err = c.integer([]byte("DELSEQ"), utoa(seq), k)
	} else {
		n, err = c.integer([]byte("DEL"), k)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"deleted": n > 0})
}

func (a *api) cGetTTL(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	ms, err := c.integer([]byte("PTTL"), key(r))
	if err != nil {
		return err
	}
	switch ms {
	case -2:
		return errKeyNotFound
	case -1:
		return writeJSON(w, map[string]int64{"ttl_ms": -1, "ttl": -1})
	}
	return writeJSON(w, map[string]int64{"ttl_ms": ms, "ttl": (ms + 500) / 1000})
}

func (a *api) cExpire(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "ttl", "ttl_ms", "at_ms", paramAck)
	if err != nil {
		return err
	}
	ms, err := expiry(q, 0)
	if err != nil {
		return err
	}
	if ms == 0 {
		return badRequest("give one of ttl, ttl_ms or at_ms")
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	cmd, ttl := "PEXPIRE", ms
	if q.Has("at_ms") {
		// An absolute time already past deletes the key (PEXPIREAT does).
		cmd, ttl = "PEXPIREAT", ms-a.clock()
	}
	n, err := c.integer([]byte(cmd), key(r), itoa(ms))
	if err != nil {
		return err
	}
	if n == 0 {
		return errKeyNotFound
	}
	if ttl <= 0 {
		return writeJSON(w, map[string]any{"updated": true, "ttl_ms": -2})
	}
	return writeJSON(w, map[string]any{"updated": true, "ttl_ms": ttl})
}

func (a *api) cPersist(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, paramAck)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	k := key(r)
	n, err := c.integer([]byte("PERSIST"), k)
	if err != nil {
		return err
	}
	if n == 0 {
		// PERSIST answers 0 for a missing key and for one without an
		// expiry: ask which.
		if n, err = c.integer([]byte("EXISTS"), k); err != nil {
			return err
		}
		if n == 0 {
			return errKeyNotFound
		}
		return writeJSON(w, map[string]bool{"updated": false})
	}
	return writeJSON(w, map[string]bool{"updated": true})
}

func (a *api) cIncr(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "by", paramAck)
	if err != nil {
		return err
	}
	by, err := intParam(q, "by", 1, -1<<63, 1<<63-1)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	k := key(r)
	if err := a.checkKey(k); err != nil {
		return err
	}
	n, err := c.integer([]byte("INCRBY"), k, itoa(by))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]int64{"value": n})
}

// Batches.

func (a *api) cGetAll(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "encoding", paramConsistent)
	if err != nil {
		return err
	}
	if _, err := responseEncoding(q, func(func([]byte) bool) {}); err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	b, err := a.batch(w, r, "keys")
	if err != nil {
		return err
	}
	found, misses, err := c.getAll(b.keys)
	if err != nil {
		return err
	}
	enc, _ := responseEncoding(q, func(yield func([]byte) bool) {
		for _, it := range found {
			if !yield(it.Key) || !yield(it.Value) {
				return
			}
		}
		for _, k := range misses {
			if !yield(k) {
				return
			}
		}
	})
	j := newJSONStream(w, enc)
	j.header()
	j.raw(`,"found":`)
	j.pairList(found)
	j.raw(`,"misses":`)
	j.binaryList(misses)
	return j.close()
}

// getAll runs GETALL (split by partition, merged by the node) and lists
// the found items and the misses in the order of keys.
func (c *call) getAll(keys [][]byte) (found []store.KV, misses [][]byte, err error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	args := append([][]byte{[]byte("GETALL")}, keys...)
	v, err := c.do(args...)
	if err != nil {
		return nil, nil, err
	}
	if len(v.Elems) != 2 {
		return nil, nil, unexpected(args[0], v)
	}
	m, err := pairsOf(args[0], v.Elems[0])
	if err != nil {
		return nil, nil, err
	}
	found, misses = inOrder(keys, m)
	return found, misses, nil
}

func (a *api) cPutAll(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, writeParams...)
	if err != nil {
		return err
	}
	o, err := a.setOptions(q)
	if err != nil {
		return err
	}
	if _, _, err := clusterSeq(q); err != nil {
		return err
	}
	ms, _ := expiry(q, 0)
	// PUTALL and PUTALLSEQ take one TTL in whole seconds and no
	// conditions; other options are written item by item with SET.
	whole := ms%1000 == 0 && !o.KeepTTL && o.Cond == store.Always
	if o.HasSeq && !whole {
		if o.KeepTTL || o.Cond != store.Always {
			return errSeqOptions
		}
		return badRequest("in a cluster, put_all with seq takes a ttl in whole seconds (ttl, or ttl_ms a multiple of 1000)")
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	b, err := a.batch(w, r, "items")
	if err != nil {
		return err
	}
	for _, it := range b.items {
		if err := a.checkKey(it.Key); err != nil {
			return err
		}
		if err := a.checkValue(len(it.Value)); err != nil {
			return err
		}
	}
	if len(b.items) == 0 {
		return writeJSON(w, map[string]int{"written": 0})
	}
	if whole {
		args := make([][]byte, 0, 3+2*len(b.items))
		if o.HasSeq {
			args = append(args, []byte("PUTALLSEQ"), utoa(o.Seq))
		} else {
			args = append(args, []byte("PUTALL"))
		}
		args = append(args, itoa(ms/1000))
		for _, it := range b.items {
			args = append(args, it.Key, it.Value)
		}
		// A failure part-way cannot say how many items went in: the
		// parts on other nodes answer separately and an error wins.
		n, err := c.integer(args...)
		if err != nil {
			return err
		}
		return writeJSON(w, map[string]int64{"written": n})
	}
	n := 0
	for _, it := range b.items {
		args, err := setArgs(q, o, it.Key, it.Value, false)
		if err != nil {
			return err
		}
		v, err := c.do(args...)
		if err != nil {
			ae := toAPIError(err)
			return &apiError{status: ae.status, code: ae.code, msg: ae.msg, written: &n, retryAfter: ae.retryAfter}
		}
		if !v.Null {
			n++
		}
	}
	return writeJSON(w, map[string]int{"written": n})
}

func (a *api) cRemoveItems(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "seq", "encoding", paramAck)
	if err != nil {
		return err
	}
	if _, err := responseEncoding(q, func(func([]byte) bool) {}); err != nil {
		return err
	}
	seq, hasSeq, err := clusterSeq(q)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	b, err := a.batch(w, r, "keys")
	if err != nil {
		return err
	}
	var removed []store.KV
	if len(b.keys) > 0 {
		args := [][]byte{[]byte("REMOVEITEMS")}
		if hasSeq {
			args = [][]byte{[]byte("REMOVEITEMSSEQ"), utoa(seq)}
		}
		args = append(args, b.keys...)
		v, err := c.do(args...)
		if err != nil {
			return err
		}
		m, err := pairsOf(args[0], v)
		if err != nil {
			return err
		}
		// A key named twice is removed once.
		seen := make(map[string]bool, len(m))
		for _, k := range b.keys {
			if v, ok := m[string(k)]; ok && !seen[string(k)] {
				seen[string(k)] = true
				removed = append(removed, store.KV{Key: k, Value: v})
			}
		}
	}
	enc, _ := responseEncoding(q, pairs(removed))
	j := newJSONStream(w, enc)
	j.header()
	j.raw(`,"removed":`)
	j.pairList(removed)
	return j.close()
}

// cPage is one page of a listing through SCAN, whose cursor is a
// partition number in a cluster too.
func (a *api) cPage(r *http.Request) (q url.Values, c *call, keys [][]byte, next uint64, err error) {
	if q, err = query(r, "cursor", "match", "count", "encoding", paramConsistent); err != nil {
		return
	}
	if _, err = responseEncoding(q, func(func([]byte) bool) {}); err != nil {
		return
	}
	cursor, err := intParam(q, "cursor", 0, 0, int64(a.st.Partitions()-1))
	if err != nil {
		return
	}
	count, err := intParam(q, "count", DefaultScanCount, 1, MaxScanCount)
	if err != nil {
		return
	}
	pattern := "*"
	if q.Has("match") {
		pattern = q.Get("match")
	}
	if c, err = a.newCall(r, q); err != nil {
		return
	}
	v, err := c.do(words("SCAN", strconv.FormatInt(cursor, 10), "MATCH", pattern, "COUNT", strconv.FormatInt(count, 10))...)
	if err != nil {
		return
	}
	if len(v.Elems) != 2 {
		err = unexpected([]byte("SCAN"), v)
		return
	}
	if next, err = strconv.ParseUint(string(v.Elems[0].Str), 10, 64); err != nil {
		err = unexpected([]byte("SCAN"), v)
		return
	}
	for _, e := range v.Elems[1].Elems {
		keys = append(keys, e.Str)
	}
	return q, c, keys, next, nil
}

func (a *api) cListKeys(w http.ResponseWriter, r *http.Request) error {
	q, _, keys, next, err := a.cPage(r)
	if err != nil {
		return err
	}
	enc, _ := responseEncoding(q, func(yield func([]byte) bool) {
		for _, k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	j := newJSONStream(w, enc)
	j.header()
	j.raw(`,"cursor":` + strconv.FormatUint(next, 10) + `,"keys":`)
	j.binaryList(keys)
	return j.close()
}

func (a *api) cListValues(withKeys bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q, c, keys, next, err := a.cPage(r)
		if err != nil {
			return err
		}
		found, _, err := c.getAll(keys)
		if err != nil {
			return err
		}
		enc, _ := responseEncoding(q, func(yield func([]byte) bool) {
			for _, it := range found {
				if (withKeys && !yield(it.Key)) || !yield(it.Value) {
					return
				}
			}
		})
		j := newJSONStream(w, enc)
		j.header()
		j.raw(`,"cursor":` + strconv.FormatUint(next, 10))
		if withKeys {
			j.raw(`,"items":`)
			j.pairList(found)
			return j.close()
		}
		j.raw(`,"values":[`)
		for i, it := range found {
			if i > 0 {
				j.raw(",")
			}
			j.binary(it.Value)
		}
		j.raw("]")
		return j.close()
	}
}

func (a *api) cEvictSince(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "age", paramAck)
	if err != nil {
		return err
	}
	if !q.Has("age") {
		return badRequest("age (seconds) is required")
	}
	age, err := intParam(q, "age", 0, 0, 1<<40)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	n, err := c.integer([]byte("EVICTSINCE"), itoa(age))
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]int64{"evicted": n})
}

// cClearMap is CLEAR. silent is checked but has no effect in a cluster:
// CLEAR has no silent form (subscribers are told of every delete).
func (a *api) cClearMap(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "silent", paramAck)
	if err != nil {
		return err
	}
	if _, err := boolParam(q, "silent"); err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	if _, err := c.do([]byte("CLEAR")); err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"ok": true})
}

func (a *api) cFlush(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "silent", paramAck)
	if err != nil {
		return err
	}
	silent, err := boolParam(q, "silent")
	if err != nil {
		return err
	}
	o, err := execOptions(q)
	if err != nil {
		return err
	}
	// FLUSH acts on every map; the map it runs "in" does not matter.
	c := &call{a: a, r: r, m: "0", opt: o}
	args := words("FLUSH")
	if silent {
		args = words("FLUSH", "SILENT")
	}
	if _, err := c.do(args...); err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"ok": true})
}

// Maps and meta.

// nodeCall is a call not about one map (MAPS, CACHESIZE, SEQUENCES): it
// runs "in" map 0, which always exists.
func (a *api) nodeCall(r *http.Request, q url.Values) (*call, error) {
	o, err := execOptions(q)
	if err != nil {
		return nil, err
	}
	return &call{a: a, r: r, m: "0", opt: o}, nil
}

// names encodes map names in a response's encoding.
func names(q url.Values, list [][]byte) ([]string, encoding, error) {
	enc, err := responseEncoding(q, func(yield func([]byte) bool) {
		for _, n := range list {
			if !yield(n) {
				return
			}
		}
	})
	if err != nil {
		return nil, enc, err
	}
	out := make([]string, len(list))
	for i, n := range list {
		out[i] = enc.str(n)
	}
	return out, enc, nil
}

func (a *api) cMaps(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "encoding", paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.nodeCall(r, q)
	if err != nil {
		return err
	}
	v, err := c.do([]byte("MAPS"))
	if err != nil {
		return err
	}
	list := make([][]byte, len(v.Elems))
	for i, e := range v.Elems {
		list[i] = e.Str
	}
	out, enc, err := names(q, list)
	if err != nil {
		return err
	}
	return writeJSON(w, struct {
		Encoding string   `json:"encoding"`
		Maps     []string `json:"maps"`
	}{enc.String(), out})
}

// sizeEntry is one map of CACHESIZE.
type sizeEntry struct {
	name         []byte
	keys, nbytes int64
}

// cacheSizes runs CACHESIZE: records and bytes of every map, summed over
// the primaries (replica copies are not counted).
func (c *call) cacheSizes() ([]sizeEntry, error) {
	v, err := c.do([]byte("CACHESIZE"))
	if err != nil {
		return nil, err
	}
	out := make([]sizeEntry, 0, len(v.Elems))
	for _, e := range v.Elems {
		if len(e.Elems) != 3 {
			return nil, unexpected([]byte("CACHESIZE"), v)
		}
		out = append(out, sizeEntry{e.Elems[0].Str, e.Elems[1].Int, e.Elems[2].Int})
	}
	return out, nil
}

func (a *api) cMapInfo(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	sizes, err := c.cacheSizes()
	if err != nil {
		return err
	}
	var info mapInfo
	for _, s := range sizes {
		if string(s.name) == c.m {
			info.Exists, info.Records, info.Bytes = true, s.keys, s.nbytes
		}
	}
	// MAPINFO gives the settings (every node has them) and the map's
	// cluster-wide sequence; its keys and bytes are this node's share.
	v, err := c.do([]byte("MAPINFO"))
	if err != nil {
		return err
	}
	if v.Null {
		return writeJSON(w, info)
	}
	fields, err := fieldsOf([]byte("MAPINFO"), v)
	if err != nil {
		return err
	}
	info.MaxTTL, info.MaxKeys = fields["max_ttl"].Int, fields["max_keys"].Int
	if s := fields["sequence"]; s.Kind == ':' {
		info.Sequence, info.HasSequence = uint64(s.Int), true
	}
	info.Exists = info.Exists || info.MaxTTL > 0 || info.HasSequence
	return writeJSON(w, info)
}

// fieldsOf reads a map reply with string keys.
func fieldsOf(cmd []byte, v resp.Value) (map[string]resp.Value, error) {
	if len(v.Elems)%2 != 0 {
		return nil, unexpected(cmd, v)
	}
	out := make(map[string]resp.Value, len(v.Elems)/2)
	for i := 0; i < len(v.Elems); i += 2 {
		out[string(v.Elems[i].Str)] = v.Elems[i+1]
	}
	return out, nil
}

func (a *api) cCacheSize(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "encoding", paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.nodeCall(r, q)
	if err != nil {
		return err
	}
	sizes, err := c.cacheSizes()
	if err != nil {
		return err
	}
	list := make([][]byte, len(sizes))
	for i, s := range sizes {
		list[i] = s.name
	}
	out, enc, err := names(q, list)
	if err != nil {
		return err
	}
	type entry struct {
		Map     string `json:"map"`
		Records int64  `json:"records"`
		Bytes   int64  `json:"bytes"`
	}
	res := struct {
		Encoding   string  `json:"encoding"`
		Maps       []entry `json:"maps"`
		Records    int64   `json:"records"`
		Bytes      int64   `json:"bytes"`
		UsedMemory int64   `json:"used_memory"`
	}{Encoding: enc.String(), Maps: []entry{}, UsedMemory: a.st.Stats().UsedMemory}
	for i, s := range sizes {
		res.Maps = append(res.Maps, entry{Map: out[i], Records: s.keys, Bytes: s.nbytes})
		res.Records += s.keys
		res.Bytes += s.nbytes
	}
	return writeJSON(w, res)
}

func (a *api) cSequences(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "encoding", paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.nodeCall(r, q)
	if err != nil {
		return err
	}
	v, err := c.do([]byte("SEQUENCES"))
	if err != nil {
		return err
	}
	if len(v.Elems)%2 != 0 {
		return unexpected([]byte("SEQUENCES"), v)
	}
	type seq struct {
		name []byte
		n    int64
	}
	var seqs []seq
	for i := 0; i < len(v.Elems); i += 2 {
		seqs = append(seqs, seq{v.Elems[i].Str, v.Elems[i+1].Int})
	}
	slices.SortFunc(seqs, func(x, y seq) int { return bytes.Compare(x.name, y.name) })
	list := make([][]byte, len(seqs))
	for i, s := range seqs {
		list[i] = s.name
	}
	out, enc, err := names(q, list)
	if err != nil {
		return err
	}
	type entry struct {
		Map      string `json:"map"`
		Sequence uint64 `json:"sequence"`
	}
	res := []entry{}
	for i, s := range seqs {
		res = append(res, entry{out[i], uint64(s.n)})
	}
	return writeJSON(w, struct {
		Encoding  string  `json:"encoding"`
		Sequences []entry `json:"sequences"`
	}{enc.String(), res})
}

func (a *api) cSequence(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, paramConsistent)
	if err != nil {
		return err
	}
	c, err := a.newCall(r, q)
	if err != nil {
		return err
	}
	v, err := c.do([]byte("SEQUENCE"))
	if err != nil {
		return err
	}
	var seq uint64
	has := !v.Null
	if has {
		if v.Kind != ':' {
			return unexpected([]byte("SEQUENCE"), v)
		}
		seq = uint64(v.Int)
	}
	return writeJSON(w, struct {
		Sequence    uint64 `json:"sequence"`
		HasSequence bool   `json:"has_sequence"`
	}{seq, has})
}

// cPutSetting is PUT of a per-map setting: SETMAXTTL or SETMAXKEYS, which
// the cluster runs on every node that leads partitions (each applies it
// to its share). This node then applies it too, as it may lead none (a
// client-role node, a new member) and the GET routes read its own
// settings.
func (a *api) cPutSetting(name, cmd string, set func(*store.Map, int64) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := query(r); err != nil {
			return err
		}
		m, err := clusterMap(r)
		if err != nil {
			return err
		}
		body, err := readBody(w, r, maxSettingsBody)
		if err != nil {
			return err
		}
		n, err := settingValue(body, name)
		if err != nil {
			return err
		}
		c := &call{a: a, r: r, m: m}
		if _, err := c.do([]byte(cmd), itoa(n)); err != nil {
			return err
		}
		sm, err := a.st.OpenMap(m)
		if err != nil {
			return err
		}
		if err := set(sm, n); err != nil {
			return badRequest("%v", err)
		}
		return writeJSON(w, map[string]int64{name: n})
	}
}

// clusterView serves GET /v1/cluster: the cluster as this node sees it
// (members, partition table epoch, leader, migrations, state), with the
// owners of every partition unless owners=false.
func (a *api) clusterView(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "owners")
	if err != nil {
		return err
	}
	if a.cluster == nil {
		return notFound("this node is not a cluster member (it runs standalone: start it with --cluster-secret to join a cluster)")
	}
	owners := true
	if q.Has("owners") {
		if owners, err = boolParam(q, "owners"); err != nil {
			return err
		}
	}
	return writeJSON(w, a.cluster(owners))
}

// healthz answers ok on a standalone node; on a cluster member it
// reports the cluster's state as this node sees it: 200 "ok", or 503
// "fail: <reason>" while the node has no partition table or has lost
// contact with the control plane's majority (its consistent reads and
// writes are refused then).
func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if a.cluster != nil {
		if v := a.cluster(false); v.State != "ok" {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "fail: %s\n", v.Reason)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}
