package server

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/engramdb/engram/internal/glob"
	"github.com/engramdb/engram/internal/store"
)

// command is one entry of the command table.
type command struct {
	name   string
	arity  int // Redis convention: exact if > 0, minimum if < 0
	noAuth bool
	write  bool
	fn     func(c *conn, args [][]byte)

	calls, errors, usec atomic.Int64
}

// commandTable builds a fresh table per server: its counters are per node.
func commandTable() map[string]*command {
	list := []*command{
		{name: "ping", arity: -1, fn: cmdPing},
		{name: "echo", arity: 2, fn: func(c *conn, a [][]byte) { c.bulk(a[1]) }},
		{name: "quit", arity: -1, noAuth: true, fn: func(c *conn, _ [][]byte) { c.ok(); c.closed = true }},
		{name: "auth", arity: -2, noAuth: true, fn: cmdAuth},
		{name: "hello", arity: -1, noAuth: true, fn: cmdHello},
		{name: "select", arity: 2, fn: cmdSelect},
		{name: "client", arity: -2, fn: cmdClient},
		{name: "command", arity: -1, fn: cmdCommand},
		{name: "info", arity: -1, fn: cmdInfo},
		{name: "config", arity: -2, fn: cmdConfig},
		{name: "time", arity: 1, fn: cmdTime},
		{name: "reset", arity: 1, noAuth: true, fn: cmdReset},
		{name: "dbsize", arity: 1, fn: func(c *conn, _ [][]byte) { c.int(c.m.LenIn(c.parts)) }},
		{name: "flushdb", arity: -1, write: true, fn: cmdFlushDB},
		{name: "flushall", arity: -1, write: true, fn: cmdFlushAll},

		{name: "get", arity: 2, fn: cmdGet},
		{name: "set", arity: -3, write: true, fn: cmdSet},
		{name: "setnx", arity: 3, write: true, fn: cmdSetNX},
		{name: "setex", arity: 4, write: true, fn: func(c *conn, a [][]byte) { cmdSetEx(c, a, 1000) }},
		{name: "psetex", arity: 4, write: true, fn: func(c *conn, a [][]byte) { cmdSetEx(c, a, 1) }},
		{name: "getset", arity: 3, write: true, fn: cmdGetSet},
		{name: "getdel", arity: 2, write: true, fn: cmdGetDel},
		{name: "getex", arity: -2, write: true, fn: cmdGetEx},
		{name: "mget", arity: -2, fn: cmdMGet},
		{name: "mset", arity: -3, write: true, fn: cmdMSet},
		{name: "msetnx", arity: -3, write: true, fn: cmdMSetNX},
		{name: "del", arity: -2, write: true, fn: cmdDel},
		{name: "unlink", arity: -2, write: true, fn: cmdDel},
		{name: "exists", arity: -2, fn: cmdExists},
		{name: "type", arity: 2, fn: cmdType},
		{name: "expire", arity: -3, write: true, fn: func(c *conn, a [][]byte) { cmdExpire(c, a, 1000, false) }},
		{name: "pexpire", arity: -3, write: true, fn: func(c *conn, a [][]byte) { cmdExpire(c, a, 1, false) }},
		{name: "expireat", arity: -3, write: true, fn: func(c *conn, a [][]byte) { cmdExpire(c, a, 1000, true) }},
		{name: "pexpireat", arity: -3, write: true, fn: func(c *conn, a [][]byte) { cmdExpire(c, a, 1, true) }},
		{name: "ttl", arity: 2, fn: func(c *conn, a [][]byte) { cmdTTL(c, a, false) }},
		{name: "pttl", arity: 2, fn: func(c *conn, a [][]byte) { cmdTTL(c, a, true) }},
		{name: "expiretime", arity: 2, fn: func(c *conn, a [][]byte) { cmdExpireTime(c, a, 1000) }},
		{name: "pexpiretime", arity: 2, fn: func(c *conn, a [][]byte) { cmdExpireTime(c, a, 1) }},
		{name: "persist", arity: 2, write: true, fn: cmdPersist},
		{name: "keys", arity: 2, fn: cmdKeys},
		{name: "scan", arity: -2, fn: cmdScan},
		{name: "randomkey", arity: 1, fn: cmdRandomKey},
		{name: "incr", arity: 2, write: true, fn: func(c *conn, a [][]byte) { incrBy(c, a[1], 1) }},
		{name: "decr", arity: 2, write: true, fn: func(c *conn, a [][]byte) { incrBy(c, a[1], -1) }},
		{name: "incrby", arity: 3, write: true, fn: cmdIncrBy},
		{name: "decrby", arity: 3, write: true, fn: cmdDecrBy},
		{name: "incrbyfloat", arity: 3, write: true, fn: cmdIncrByFloat},
		{name: "append", arity: 3, write: true, fn: cmdAppend},
		{name: "strlen", arity: 2, fn: cmdStrlen},
		{name: "getrange", arity: 4, fn: cmdGetRange},
		{name: "substr", arity: 4, fn: cmdGetRange},
		{name: "setrange", arity: 4, write: true, fn: cmdSetRange},
	}
	list = append(list, engramCommands()...)
	list = append(list, queryCommands()...)
	list = append(list, persistCommands()...)
	list = append(list, pubsubCommands()...)
	t := make(map[string]*command, len(list))
	for _, c := range list {
		if t[c.name] != nil {
			panic("BUG: server: command " + c.name + " registered twice")
		}
		t[c.name] = c
	}
	return t
}

func eq(a []byte, s string) bool { return len(a) == len(s) && strings.EqualFold(string(a), s) }

// parseInt parses a Redis integer argument as strictly as Redis's
// string2ll: an optional '-', then digits with no leading zero ("01" and
// "-0" are not integers), no '+', no spaces. Being as strict matters for
// stored values too: INCR on "01" must fail as it does on Redis.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	d := b
	if d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || d[0] < '0' || d[0] > '9' || (d[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// maxFloatLen is Redis's MAX_LONG_DOUBLE_CHARS: INCRBYFLOAT writes values
// like 1e300 out in full, and must be able to read them back.
const maxFloatLen = 5 << 10

func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > maxFloatLen || b[0] == ' ' || b[len(b)-1] == ' ' {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func cmdPing(c *conn, a [][]byte) {
	switch len(a) {
	case 1:
		c.out = append(c.out, "+PONG\r\n"...)
	case 2:
		c.bulk(a[1])
	default:
		c.err("ERR wrong number of arguments for 'ping' command")
	}
}

func cmdGet(c *conn, a [][]byte) {
	v, ok := c.m.Get(c.tmp[:0], a[1])
	if !ok {
		c.null()
		return
	}
	c.bulk(v)
	c.keepTmp(v)
}

// keepTmp keeps the scratch buffer for the next command unless it grew big.
func (c *conn) keepTmp(v []byte) {
	if cap(v) <= 1<<20 {
		c.tmp = v[:0]
	}
}

// expiry holds the expiry options of SET, GETEX and SETSEQ while they are
// parsed. Like Redis, options are parsed for syntax first and the expire
// time is validated after, so "SET k v EX abc NX XX" is a syntax error.
type expiry struct {
	kind string // "ex", "px", "exat", "pxat", "keepttl", "persist"; "" = none
	arg  []byte // the time argument of ex/px/exat/pxat
}

// allow reports whether an expiry option of kind may follow those already
// parsed. Redis lets an option repeat (the last one wins) but refuses two
// different kinds, e.g. EX with PX or KEEPTTL.
func (e *expiry) allow(kind string) bool { return e.kind == "" || e.kind == kind }

// parse consumes a time option (EX, PX, EXAT, PXAT and its argument) at
// a[i]. It returns how many arguments it consumed, or 0 if a[i] is not
// such an option or not allowed here, which is a syntax error.
func (e *expiry) parse(a [][]byte, i int) int {
	for _, k := range [...]string{"ex", "px", "exat", "pxat"} {
		if eq(a[i], k) {
			if !e.allow(k) || i+1 >= len(a) {
				return 0
			}
			e.kind, e.arg = k, a[i+1]
			return 2
		}
	}
	return 0
}

// resolve returns the absolute expiry (Unix ms) of a time option, 0 if
// none was given, or false after replying with Redis's error.
func (e *expiry) resolve(c *conn, cmd string) (int64, bool) {
	at, msg := e.at(c.s.now(), cmd)
	if msg != "" {
		c.err(msg)
		return 0, false
	}
	return at, true
}

// at is resolve without the reply: it returns the error message instead.
func (e *expiry) at(now int64, cmd string) (int64, string) {
	if e.arg == nil {
		return 0, ""
	}
	unit, abs := int64(1000), false
	switch e.kind {
	case "px":
		unit = 1
	case "exat":
		abs = true
	case "pxat":
		unit, abs = 1, true
	}
	n, ok := parseInt(e.arg)
	if !ok {
		return 0, errNotInt
	}
	if n <= 0 || n > math.MaxInt64/unit {
		return 0, "ERR invalid expire time in '" + cmd + "' command"
	}
	n *= unit
	if !abs {
		if n > math.MaxInt64-now {
			return 0, "ERR invalid expire time in '" + cmd + "' command"
		}
		n += now
	}
	return n, ""
}

func cmdSet(c *conn, a [][]byte) {
	var o store.SetOptions
	var e expiry
	get := false
	for i := 3; i < len(a); {
		switch {
		case eq(a[i], "nx") && o.Cond != store.IfPresent:
			o.Cond = store.IfAbsent
		case eq(a[i], "xx") && o.Cond != store.IfAbsent:
			o.Cond = store.IfPresent
		case eq(a[i], "get"):
			get = true
		case eq(a[i], "keepttl") && e.allow("keepttl"):
			e.kind = "keepttl"
		default:
			n := e.parse(a, i)
			if n == 0 {
				c.err(errSyntax)
				return
			}
			i += n
			continue
		}
		i++
	}
	at, ok := e.resolve(c, "set")
	if !ok {
		return
	}
	o.ExpireAt, o.KeepTTL = at, e.kind == "keepttl"
	if get {
		o.ReturnOld, o.OldBuf = true, c.tmp[:0]
	}
	r, err := c.m.Set(a[1], a[2], o)
	if err != nil {
		c.storeErr(err)
		return
	}
	switch {
	case get && r.Existed:
		c.bulk(r.Old)
		c.keepTmp(r.Old)
	case get:
		c.null()
	case r.Written:
		c.ok()
	default:
		c.null()
	}
}

func cmdSetNX(c *conn, a [][]byte) {
	r, err := c.m.Set(a[1], a[2], store.SetOptions{Cond: store.IfAbsent})
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(btoi(r.Written)))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmdSetEx(c *conn, a [][]byte, unit int64) {
	n, ok := parseInt(a[2])
	if !ok {
		c.err(errNotInt)
		return
	}
	if n <= 0 || n > (math.MaxInt64-c.s.now())/unit {
		c.errorf("ERR invalid expire time in '%s' command", strings.ToLower(string(a[0])))
		return
	}
	if _, err := c.m.Set(a[1], a[3], store.SetOptions{ExpireAt: c.s.now() + n*unit}); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

func cmdGetSet(c *conn, a [][]byte) {
	r, err := c.m.Set(a[1], a[2], store.SetOptions{ReturnOld: true, OldBuf: c.tmp[:0]})
	if err != nil {
		c.storeErr(err)
		return
	}
	if !r.Existed {
		c.null()
		return
	}
	c.bulk(r.Old)
	c.keepTmp(r.Old)
}

func cmdGetDel(c *conn, a [][]byte) {
	// GetDelete copies the value only into a non-nil dst, and c.tmp is
	// nil until a command has used it.
	dst := c.tmp[:0]
	if dst == nil {
		dst = []byte{}
	}
	v, ok := c.m.GetDelete(dst, a[1])
	if !ok {
		c.null()
		return
	}
	c.bulk(v)
	c.keepTmp(v)
}

func cmdGetEx(c *conn, a [][]byte) {
	var e expiry
	for i := 2; i < len(a); {
		if eq(a[i], "persist") && e.allow("persist") {
			e.kind = "persist"
			i++
			continue
		}
		n := e.parse(a, i)
		if n == 0 {
			c.err(errSyntax)
			return
		}
		i += n
	}
	now := c.s.now()
	var val []byte
	found := false
	var bad string
	err := c.m.Mutate(a[1], func(cur store.Entry, exists bool) (store.Mutation, error) {
		if !exists {
			return store.Mutation{}, nil
		}
		// Redis checks the expire time only once it has found the key:
		// GETEX of a missing key is null even with a bad time.
		var at int64
		if at, bad = e.at(now, "getex"); bad != "" {
			return store.Mutation{}, nil
		}
		found = true
		val = append(c.tmp[:0], cur.Value...)
		switch {
		case e.kind == "persist":
			return store.Mutation{Action: store.SetExpiry}, nil
		case e.arg != nil && at <= now:
			// An EXAT/PXAT in the past deletes the key at once, as Redis
			// does, rather than leave it counted until the sweeper runs.
			return store.Mutation{Action: store.Remove}, nil
		case e.arg != nil:
			return store.Mutation{Action: store.SetExpiry, ExpireAt: at}, nil
		}
		return store.Mutation{}, nil
	})
	switch {
	case err != nil:
		c.storeErr(err)
	case bad != "":
		c.err(bad)
	case !found:
		c.null()
	default:
		c.bulk(val)
		c.keepTmp(val)
	}
}

func cmdMGet(c *conn, a [][]byte) {
	c.array(len(a) - 1)
	for _, k := range a[1:] {
		v, ok := c.m.Get(c.tmp[:0], k)
		if ok {
			c.bulk(v)
			c.keepTmp(v)
		} else {
			c.null()
		}
	}
}

func pairs(c *conn, a [][]byte, cmd string) ([]store.KV, bool) {
	if len(a)%2 != 0 {
		c.errorf("ERR wrong number of arguments for '%s' command", cmd)
		return nil, false
	}
	items := make([]store.KV, 0, len(a)/2)
	for i := 0; i < len(a); i += 2 {
		items = append(items, store.KV{Key: a[i], Value: a[i+1]})
	}
	return items, true
}

func cmdMSet(c *conn, a [][]byte) {
	items, ok := pairs(c, a[1:], "mset")
	if !ok {
		return
	}
	if _, err := c.m.PutAll(items, store.SetOptions{}); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

func cmdMSetNX(c *conn, a [][]byte) {
	items, ok := pairs(c, a[1:], "msetnx")
	if !ok {
		return
	}
	wrote, err := c.m.SetAllIfAbsent(items, 0)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(btoi(wrote)))
}

func cmdDel(c *conn, a [][]byte) {
	var n int64
	for _, k := range a[1:] {
		if c.m.Delete(k) {
			n++
		}
	}
	c.int(n)
}

func cmdExists(c *conn, a [][]byte) {
	var n int64
	for _, k := range a[1:] {
		if c.m.Contains(k) {
			n++
		}
	}
	c.int(n)
}

func cmdType(c *conn, a [][]byte) {
	if c.m.Contains(a[1]) {
		c.simple("string")
	} else {
		c.simple("none")
	}
}

func cmdExpire(c *conn, a [][]byte, unit int64, abs bool) {
	// Options first, then the number, in Redis's order, so the same bad
	// command gets the same error.
	var nx, xx, gt, lt bool
	for _, o := range a[3:] {
		switch {
		case eq(o, "nx"):
			nx = true
		case eq(o, "xx"):
			xx = true
		case eq(o, "gt"):
			gt = true
		case eq(o, "lt"):
			lt = true
		default:
			c.errorf("ERR Unsupported option %s", trunc(o))
			return
		}
	}
	if nx && (xx || gt || lt) {
		c.err("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if gt && lt {
		c.err("ERR GT and LT options at the same time are not compatible")
		return
	}
	n, ok := parseInt(a[2])
	if !ok {
		c.err(errNotInt)
		return
	}
	now := c.s.now()
	if (n > 0 && n > math.MaxInt64/unit) || (n < 0 && n < math.MinInt64/unit) {
		c.errorf("ERR invalid expire time in '%s' command", strings.ToLower(string(a[0])))
		return
	}
	at := n * unit
	if !abs {
		if at > 0 && at > math.MaxInt64-now {
			c.errorf("ERR invalid expire time in '%s' command", strings.ToLower(string(a[0])))
			return
		}
		at += now
	}
	set := false
	err := c.m.Mutate(a[1], func(cur store.Entry, exists bool) (store.Mutation, error) {
		if !exists {
			return store.Mutation{}, nil
		}
		old := cur.ExpireAt // 0 = persistent, which GT/LT treat as infinite
		switch {
		case nx && old != 0, xx && old == 0:
			return store.Mutation{}, nil
		case gt && (old == 0 || at <= old):
			return store.Mutation{}, nil
		case lt && old != 0 && at >= old:
			return store.Mutation{}, nil
		}
		set = true
		if at <= now {
			return store.Mutation{Action: store.Remove}, nil // an expiry in the past deletes, as Redis
		}
		return store.Mutation{Action: store.SetExpiry, ExpireAt: at}, nil
	})
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(btoi(set)))
}

func cmdTTL(c *conn, a [][]byte, ms bool) {
	t := c.m.TTL(a[1])
	if t >= 0 && !ms {
		t = (t + 500) / 1000
	}
	c.int(t)
}

func cmdExpireTime(c *conn, a [][]byte, unit int64) {
	e, ok := c.m.GetEntry(c.tmp[:0], a[1])
	switch {
	case !ok:
		c.int(-2)
	case e.ExpireAt == 0:
		c.int(-1)
	case unit == 1:
		c.int(e.ExpireAt)
	default:
		c.int((e.ExpireAt + 500) / 1000) // rounded, as Redis rounds TTL and EXPIRETIME
	}
}

func cmdPersist(c *conn, a [][]byte) {
	done := false
	err := c.m.Mutate(a[1], func(cur store.Entry, exists bool) (store.Mutation, error) {
		if !exists || cur.ExpireAt == 0 {
			return store.Mutation{}, nil
		}
		done = true
		return store.Mutation{Action: store.SetExpiry}, nil
	})
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(btoi(done)))
}

func cmdKeys(c *conn, a [][]byte) {
	keys := c.m.KeysIn(c.parts, a[1])
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

func cmdScan(c *conn, a [][]byte) {
	cursor, err := strconv.ParseUint(string(a[1]), 10, 64)
	if err != nil {
		c.err("ERR invalid cursor")
		return
	}
	var pattern []byte
	count := 10
	typ := ""
	for i := 2; i < len(a); i += 2 {
		if i+1 >= len(a) {
			c.err(errSyntax)
			return
		}
		switch {
		case eq(a[i], "match"):
			pattern = a[i+1]
			if glob.MatchAll(pattern) {
				pattern = nil
			}
		case eq(a[i], "count"):
			n, ok := parseInt(a[i+1])
			if !ok {
				c.err(errNotInt)
				return
			}
			if n < 1 {
				c.err(errSyntax)
				return
			}
			count = int(min(n, 1<<20))
		case eq(a[i], "type"):
			typ = strings.ToLower(string(a[i+1]))
		default:
			c.err(errSyntax)
			return
		}
	}
	var keys [][]byte
	next := uint64(0)
	if cursor < uint64(c.s.st.Partitions()) {
		keys, next = c.m.Scan(cursor, pattern, count)
	}
	if typ != "" && typ != "string" {
		keys = nil
	}
	c.array(2)
	c.bulkString(strconv.FormatUint(next, 10))
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

func cmdRandomKey(c *conn, _ [][]byte) {
	if k, ok := c.m.RandomKeyIn(c.parts); ok {
		c.bulk(k)
	} else {
		c.null()
	}
}

func cmdIncrBy(c *conn, a [][]byte) {
	n, ok := parseInt(a[2])
	if !ok {
		c.err(errNotInt)
		return
	}
	incrBy(c, a[1], n)
}

func cmdDecrBy(c *conn, a [][]byte) {
	n, ok := parseInt(a[2])
	if !ok {
		c.err(errNotInt)
		return
	}
	if n == math.MinInt64 {
		// -n does not exist; Redis's own words for it.
		c.err("ERR decrement would overflow")
		return
	}
	incrBy(c, a[1], -n)
}

func incrBy(c *conn, key []byte, delta int64) {
	var result int64
	err := c.m.Mutate(key, func(cur store.Entry, exists bool) (store.Mutation, error) {
		var v int64
		if exists {
			var ok bool
			if v, ok = parseInt(cur.Value); !ok {
				return store.Mutation{}, store.ErrNotInteger
			}
		}
		if (delta > 0 && v > math.MaxInt64-delta) || (delta < 0 && v < math.MinInt64-delta) {
			return store.Mutation{}, store.ErrOverflow
		}
		result = v + delta
		c.tmp = strconv.AppendInt(c.tmp[:0], result, 10)
		return store.Mutation{Action: store.Put, Value: c.tmp, ExpireAt: cur.ExpireAt}, nil
	})
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(result)
}

func cmdIncrByFloat(c *conn, a [][]byte) {
	d, ok := parseFloat(a[2])
	if !ok {
		c.err(errNotFloat)
		return
	}
	var result []byte
	err := c.m.Mutate(a[1], func(cur store.Entry, exists bool) (store.Mutation, error) {
		var v float64
		if exists {
			var ok bool
			if v, ok = parseFloat(cur.Value); !ok {
				return store.Mutation{}, store.ErrNotFloat
			}
		}
		r := v + d
		if math.IsInf(r, 0) || math.IsNaN(r) {
			return store.Mutation{}, errIncrNaN
		}
		result = strconv.AppendFloat(c.tmp[:0], r, 'f', -1, 64)
		return store.Mutation{Action: store.Put, Value: result, ExpireAt: cur.ExpireAt}, nil
	})
	if err != nil {
		c.storeErr(err)
		return
	}
	c.bulk(result)
}

type constError string

func (e constError) Error() string { return string(e) }

const errIncrNaN = constError("increment would produce NaN or Infinity")

func cmdAppend(c *conn, a [][]byte) {
	var n int
	err := c.m.Mutate(a[1], func(cur store.Entry, exists bool) (store.Mutation, error) {
		c.tmp = append(append(c.tmp[:0], cur.Value...), a[2]...)
		n = len(c.tmp)
		return store.Mutation{Action: store.Put, Value: c.tmp, ExpireAt: cur.ExpireAt}, nil
	})
	c.keepTmp(c.tmp)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(n))
}

func cmdStrlen(c *conn, a [][]byte) {
	v, _ := c.m.Get(c.tmp[:0], a[1])
	c.int(int64(len(v)))
	c.keepTmp(v)
}

func cmdGetRange(c *conn, a [][]byte) {
	start, ok1 := parseInt(a[2])
	end, ok2 := parseInt(a[3])
	if !ok1 || !ok2 {
		c.err(errNotInt)
		return
	}
	v, _ := c.m.Get(c.tmp[:0], a[1])
	defer c.keepTmp(v)
	n := int64(len(v))
	if start < 0 && end < 0 && start > end {
		c.bulk(nil)
		return
	}
	if start < 0 {
		start = max(n+start, 0)
	}
	if end < 0 {
		end = max(n+end, 0)
	}
	end = min(end, n-1)
	if start > end || n == 0 {
		c.bulk([]byte{})
		return
	}
	c.bulk(v[start : end+1])
}

func cmdSetRange(c *conn, a [][]byte) {
	off, ok := parseInt(a[2])
	if !ok {
		c.err(errNotInt)
		return
	}
	if off < 0 {
		c.err("ERR offset is out of range")
		return
	}
	if off+int64(len(a[3])) > c.s.st.MaxValueLen() {
		c.err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
		return
	}
	var n int
	err := c.m.Mutate(a[1], func(cur store.Entry, exists bool) (store.Mutation, error) {
		if len(a[3]) == 0 {
			n = len(cur.Value)
			return store.Mutation{}, nil
		}
		v := append(c.tmp[:0], cur.Value...)
		if need := int(off) + len(a[3]); need > len(v) {
			v = append(v, make([]byte, need-len(v))...)
		}
		copy(v[off:], a[3])
		c.tmp = v
		n = len(v)
		return store.Mutation{Action: store.Put, Value: v, ExpireAt: cur.ExpireAt}, nil
	})
	c.keepTmp(c.tmp)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(n))
}

func cmdFlushDB(c *conn, a [][]byte) {
	if len(a) > 2 || (len(a) == 2 && !eq(a[1], "async") && !eq(a[1], "sync")) {
		c.err(errSyntax)
		return
	}
	c.m.ClearIn(c.parts, false)
	c.ok()
}

func cmdFlushAll(c *conn, a [][]byte) {
	if len(a) > 2 || (len(a) == 2 && !eq(a[1], "async") && !eq(a[1], "sync")) {
		c.err(errSyntax)
		return
	}
	c.s.st.FlushIn(c.parts, false)
	c.ok()
}

func cmdSelect(c *conn, a [][]byte) {
	if len(a[1]) == 0 || len(a[1]) > c.s.st.MaxKeyLen() || bytes.ContainsAny(a[1], "\r\n") {
		c.err("ERR invalid map name")
		return
	}
	if store.IsInternal(string(a[1])) {
		c.err(errInternalMap)
		return
	}
	m, err := c.s.st.OpenMap(string(a[1]))
	if err != nil {
		c.storeErr(err)
		return
	}
	c.info.Lock()
	c.m = m
	c.info.Unlock()
	c.ok()
}
