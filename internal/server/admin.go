package server

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/engramdb/engram/internal/glob"
	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/store"
)

func cmdAuth(c *conn, a [][]byte) {
	if len(a) > 3 {
		c.err(errSyntax)
		return
	}
	if len(a) == 2 && c.s.opts.Password == "" {
		c.err(errNoPassword)
		return
	}
	user := []byte("default")
	if len(a) == 3 {
		user = a[1]
	}
	if !c.s.authenticate(user, a[len(a)-1]) {
		c.err(errWrongPass)
		return
	}
	c.setAuthed(true)
	c.ok()
}

// authenticate checks a username and password the way Redis's ACL checks
// its only user here, "default": with no password configured that user is
// "nopass" and any password is accepted for it, which clients that always
// send AUTH default <pw> (go-redis with a password set) rely on.
func (s *Server) authenticate(user, pw []byte) bool {
	if !eq(user, "default") {
		return false
	}
	return s.opts.Password == "" || s.checkPassword(pw)
}

func cmdHello(c *conn, a [][]byte) {
	proto := c.proto
	if len(a) > 1 {
		v, ok := parseInt(a[1])
		if !ok {
			c.err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			c.err("NOPROTO unsupported protocol version")
			return
		}
		proto = int(v)
	}
	var name []byte
	authed := c.authed
	for i := 2; i < len(a); i++ {
		switch {
		case eq(a[i], "auth") && i+2 < len(a):
			if !c.s.authenticate(a[i+1], a[i+2]) {
				c.err(errWrongPass)
				return
			}
			authed = true
			i += 2
		case eq(a[i], "setname") && i+1 < len(a):
			// Checked here, as Redis does, so a bad name changes nothing.
			if !validName(a[i+1]) {
				c.err("ERR Client names cannot contain spaces, newlines or special characters.")
				return
			}
			name = a[i+1]
			i++
		default:
			c.errorf("ERR Syntax error in HELLO option '%s'", trunc(a[i]))
			return
		}
	}
	if !authed {
		c.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	c.setAuthed(true)
	c.info.Lock()
	c.proto = proto
	if name != nil {
		c.name = string(name)
	}
	c.info.Unlock()
	c.mapHeader(7)
	c.bulkString("server")
	c.bulkString("redis") // clients check this field; Engram speaks Redis
	c.bulkString("version")
	c.bulkString(redisCompatVersion)
	c.bulkString("proto")
	c.int(int64(c.proto))
	c.bulkString("id")
	c.int(c.id)
	c.bulkString("mode")
	c.bulkString("standalone")
	c.bulkString("role")
	c.bulkString("master")
	c.bulkString("modules")
	c.array(0)
}

// redisCompatVersion is the Redis version whose commands Engram follows;
// clients use it to decide which features to use.
const redisCompatVersion = "7.2.0"

func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func cmdClient(c *conn, a [][]byte) {
	switch {
	case eq(a[1], "setname") && len(a) == 3:
		if !validName(a[2]) {
			c.err("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.info.Lock()
		c.name = string(a[2])
		c.info.Unlock()
		c.ok()
	case eq(a[1], "getname") && len(a) == 2:
		if c.name == "" {
			c.null()
		} else {
			c.bulkString(c.name)
		}
	case eq(a[1], "id") && len(a) == 2:
		c.int(c.id)
	case eq(a[1], "setinfo") && len(a) == 4:
		// CLIENT LIST is space-separated key=value pairs: a value with a
		// space in it would break every parser of it, so Redis refuses one.
		var dst *string
		switch {
		case eq(a[2], "lib-name"):
			dst = &c.lib[0]
		case eq(a[2], "lib-ver"):
			dst = &c.lib[1]
		default:
			c.errorf("ERR Unrecognized option '%s'", trunc(a[2]))
			return
		}
		if !validName(a[3]) {
			c.errorf("ERR %s cannot contain spaces, newlines or special characters.", strings.ToLower(string(a[2])))
			return
		}
		c.info.Lock()
		*dst = string(a[3])
		c.info.Unlock()
		c.ok()
	case eq(a[1], "info") && len(a) == 2:
		c.bulkString(c.describe(time.Now()))
	case eq(a[1], "list"):
		var sb strings.Builder
		now := time.Now()
		c.s.mu.Lock()
		for o := range c.s.conns {
			if o == c {
				sb.WriteString(c.describe(now))
				continue
			}
			o.info.Lock()
			sb.WriteString(o.describe(now))
			o.info.Unlock()
		}
		c.s.mu.Unlock()
		c.bulkString(sb.String())
	case eq(a[1], "help"):
		help := []string{"CLIENT ID", "CLIENT GETNAME", "CLIENT SETNAME <name>", "CLIENT SETINFO LIB-NAME|LIB-VER <value>", "CLIENT INFO", "CLIENT LIST"}
		c.array(len(help))
		for _, h := range help {
			c.simple(h)
		}
	default:
		subcommandErr(c, "client", a[1], "setname", "getname", "id", "setinfo", "info", "list", "help")
	}
}

// subcommandErr replies to a subcommand that did not match: Redis 7
// words a known subcommand with the wrong arguments differently from an
// unknown one, and clients and people recognise both texts.
func subcommandErr(c *conn, cmd string, sub []byte, known ...string) {
	for _, k := range known {
		if eq(sub, k) {
			c.errorf("ERR wrong number of arguments for '%s|%s' command", cmd, k)
			return
		}
	}
	c.errorf("ERR unknown subcommand '%s'. Try %s HELP.", trunc(sub), strings.ToUpper(cmd))
}

// describe renders the connection like a CLIENT LIST line. Called for
// another connection, the caller must hold that connection's info lock.
func (c *conn) describe(now time.Time) string {
	idle := int64(0)
	if l := c.last.Load(); l > 0 {
		idle = (now.UnixMilli() - l) / 1000
	}
	// The map name is binary-safe: sanitize it so the line stays parseable.
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d idle=%d db=%s resp=%d lib-name=%s lib-ver=%s\n",
		c.id, c.nc.RemoteAddr(), c.nc.LocalAddr(), c.name, int(now.Sub(c.since).Seconds()), idle, sanitize(c.m.Name()), c.proto, c.lib[0], c.lib[1])
}

func cmdCommand(c *conn, a [][]byte) {
	names := make([]string, 0, len(c.s.cmds))
	for n := range c.s.cmds {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(a) == 1 || eq(a[1], "info") {
		want := names
		if len(a) > 2 {
			want = nil
			for _, n := range a[2:] {
				want = append(want, strings.ToLower(string(n)))
			}
		}
		c.array(len(want))
		for _, n := range want {
			cmd := c.s.cmds[n]
			if cmd == nil {
				c.null() // Redis replies a null bulk here, not a null array
				continue
			}
			c.commandInfo(cmd)
		}
		return
	}
	switch {
	case eq(a[1], "count"):
		c.int(int64(len(names)))
	case eq(a[1], "list"):
		c.array(len(names))
		for _, n := range names {
			c.bulkString(n)
		}
	case eq(a[1], "docs"):
		// redis-cli asks for docs to offer hints; an empty reply means
		// "no docs", which it handles. docs/commands.md has them.
		c.mapHeader(0)
	default:
		c.errorf("ERR unknown subcommand '%s'. Try COMMAND HELP.", trunc(a[1]))
	}
}

func (c *conn) commandInfo(cmd *command) {
	first, last, step := 0, 0, 0
	switch cmd.name {
	case "get", "set", "setnx", "setex", "psetex", "getset", "getdel", "getex", "type", "expire", "pexpire",
		"expireat", "pexpireat", "ttl", "pttl", "persist", "incr", "decr", "incrby", "decrby", "incrbyfloat",
		"append", "strlen", "getrange", "setrange", "substr", "expiretime", "pexpiretime":
		first, last, step = 1, 1, 1
	case "mget", "del", "unlink", "exists":
		first, last, step = 1, -1, 1
	case "mset", "msetnx":
		first, last, step = 1, -1, 2
	}
	flags := "readonly"
	if cmd.write {
		flags = "write"
	}
	c.array(10)
	c.bulkString(cmd.name)
	c.int(int64(cmd.arity))
	c.array(1)
	c.simple(flags)
	c.int(int64(first))
	c.int(int64(last))
	c.int(int64(step))
	c.array(0) // ACL categories
	c.array(0) // tips
	c.array(0) // key specs
	c.array(0) // subcommands
}

func cmdTime(c *conn, _ [][]byte) {
	now := time.Now()
	c.array(2)
	c.bulkString(strconv.FormatInt(now.Unix(), 10))
	c.bulkString(strconv.FormatInt(int64(now.Nanosecond()/1000), 10))
}

func cmdReset(c *conn, _ [][]byte) {
	c.info.Lock()
	c.proto, c.name = 2, ""
	c.m = c.s.st.Map("0")
	c.info.Unlock()
	c.setAuthed(c.s.opts.Password == "")
	c.resetPubSub()
	c.simple("RESET")
}

// config parameters CONFIG GET/SET know.
func (s *Server) configGet(name string) (string, bool) {
	switch name {
	case "maxmemory":
		return strconv.FormatInt(s.st.MaxMemory(), 10), true
	case "maxmemory-policy":
		return s.st.Policy().String(), true
	case "maxclients":
		return strconv.Itoa(s.opts.MaxClients), true
	case "proto-max-bulk-len":
		// CONFIG SET of it lowers the value limit (the protocol limit is
		// fixed at start), so report the limit in force: GET must show
		// what SET set.
		return strconv.FormatInt(min(int64(s.opts.Limits.MaxBulkLen), s.st.MaxValueLen()), 10), true
	case "timeout":
		return strconv.Itoa(int(s.opts.IdleTimeout / time.Second)), true
	case "databases":
		return strconv.Itoa(s.st.MaxMaps()), true
	case "save", "appendonly":
		// Engram keeps no snapshot or AOF of its own (the backing store
		// is its persistence); redis-benchmark asks for these.
		if name == "save" {
			return "", true
		}
		return "no", true
	case "max-value-len":
		return strconv.FormatInt(s.st.MaxValueLen(), 10), true
	case "max-key-len":
		return strconv.Itoa(s.st.MaxKeyLen()), true
	}
	return "", false
}

var configNames = []string{"maxmemory", "maxmemory-policy", "maxclients", "proto-max-bulk-len", "timeout", "databases", "save", "appendonly", "max-value-len", "max-key-len"}

func cmdConfig(c *conn, a [][]byte) {
	switch {
	case eq(a[1], "get") && len(a) >= 3:
		var out []string
		for _, p := range a[2:] {
			for _, n := range configNames {
				if glob.Match(p, []byte(n), true) && !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
		c.mapHeader(len(out))
		for _, n := range out {
			v, _ := c.s.configGet(n)
			c.bulkString(n)
			c.bulkString(v)
		}
	case eq(a[1], "set") && len(a) >= 4 && len(a)%2 == 0:
		// Validate everything first so a bad pair changes nothing.
		type change struct{ apply func() error }
		var changes []change
		for i := 2; i < len(a); i += 2 {
			name, val := strings.ToLower(string(a[i])), string(a[i+1])
			switch name {
			case "maxmemory":
				n, err := parseSize(val)
				if err != nil {
					c.errorf("ERR Invalid argument '%s' for CONFIG SET 'maxmemory' - %v", trunc(a[i+1]), err)
					return
				}
				changes = append(changes, change{func() error { return c.s.st.SetMaxMemory(n) }})
			case "maxmemory-policy":
				p, err := store.ParsePolicy(strings.ToLower(val))
				if err != nil {
					c.errorf("ERR Invalid argument '%s' for CONFIG SET 'maxmemory-policy' - %v", trunc(a[i+1]), err)
					return
				}
				changes = append(changes, change{func() error { return c.s.st.SetPolicy(p) }})
			case "max-value-len", "proto-max-bulk-len":
				n, err := parseSize(val)
				if err != nil {
					c.errorf("ERR Invalid argument '%s' for CONFIG SET '%s' - %v", trunc(a[i+1]), name, err)
					return
				}
				changes = append(changes, change{func() error { return c.s.st.SetMaxValueLen(n) }})
			case "save", "appendonly":
				changes = append(changes, change{func() error { return nil }})
			default:
				c.errorf("ERR Unknown option or number of arguments for CONFIG SET - '%s'", trunc(a[i]))
				return
			}
		}
		for _, ch := range changes {
			if err := ch.apply(); err != nil {
				c.storeErr(err)
				return
			}
		}
		c.ok()
	case eq(a[1], "resetstat") && len(a) == 2:
		c.s.st.ResetStats()
		for _, cmd := range c.s.cmds {
			cmd.calls.Store(0)
			cmd.errors.Store(0)
			cmd.usec.Store(0)
		}
		c.ok()
	case eq(a[1], "rewrite"):
		c.err("ERR Engram does not rewrite its configuration file; set options with flags, ENGRAM_* variables or the config file")
	default:
		subcommandErr(c, "config", a[1], "get", "set", "resetstat", "rewrite")
	}
}

// parseSize reads a byte count with Redis's units (1k=1000, 1kb=1024, ...).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size too large")
	}
	return n * mult, nil
}

func cmdInfo(c *conn, a [][]byte) {
	sections := map[string]bool{}
	for _, s := range a[1:] {
		sections[strings.ToLower(string(s))] = true
	}
	all := len(sections) == 0 || sections["all"] || sections["everything"] || sections["default"]
	want := func(s string) bool { return all || sections[s] }
	var b strings.Builder
	st := c.s.st.Stats()
	ss := c.s.Stats()
	if want("server") {
		fmt.Fprintf(&b, "# Server\r\nredis_version:%s\r\nengram_version:%s\r\nredis_mode:standalone\r\nos:%s %s\r\narch_bits:64\r\ngo_version:%s\r\nprocess_id:%d\r\ntcp_port:%s\r\nuptime_in_seconds:%d\r\nuptime_in_days:%d\r\n",
			redisCompatVersion, c.s.opts.Version, runtime.GOOS, runtime.GOARCH, runtime.Version(), os.Getpid(), portOf(c.nc.LocalAddr().String()),
			int64(st.Uptime.Seconds()), int64(st.Uptime.Hours()/24))
		if c.s.opts.Info != nil {
			extra := c.s.opts.Info()
			keys := make([]string, 0, len(extra))
			for k := range extra {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "%s:%s\r\n", k, extra[k])
			}
		}
		b.WriteString("\r\n")
	}
	if want("clients") {
		fmt.Fprintf(&b, "# Clients\r\nconnected_clients:%d\r\nmaxclients:%d\r\n\r\n", ss.ConnectedClients, c.s.opts.MaxClients)
	}
	if want("memory") {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss := residentBytes()
		frag := 0.0
		if st.UsedMemory > 0 {
			frag = float64(st.ArenaMemory) / float64(st.UsedMemory)
		}
		fmt.Fprintf(&b, "# Memory\r\nused_memory:%d\r\nused_memory_human:%s\r\nused_memory_rss:%d\r\nused_memory_rss_human:%s\r\nused_memory_arena:%d\r\nused_memory_go_heap:%d\r\nmaxmemory:%d\r\nmaxmemory_human:%s\r\nmaxmemory_policy:%s\r\nmem_fragmentation_ratio:%.2f\r\ngc_cycles:%d\r\ngc_pause_total_ns:%d\r\n\r\n",
			st.UsedMemory, human(st.UsedMemory), rss, human(rss), st.ArenaMemory, ms.HeapInuse, st.MaxMemory, human(st.MaxMemory), st.Policy, frag, ms.NumGC, ms.PauseTotalNs)
	}
	if want("stats") {
		var total int64
		for _, cs := range ss.Commands {
			total += cs.Calls
		}
		fmt.Fprintf(&b, "# Stats\r\ntotal_connections_received:%d\r\ntotal_commands_processed:%d\r\nrejected_connections:%d\r\ntotal_net_input_bytes:%d\r\ntotal_net_output_bytes:%d\r\nexpired_keys:%d\r\nevicted_keys:%d\r\nkeyspace_hits:%d\r\nkeyspace_misses:%d\r\n\r\n",
			ss.TotalConnections, total, ss.RejectedConnections, ss.NetInputBytes, ss.NetOutputBytes, st.Expired, st.Evicted, st.Hits, st.Misses)
	}
	if want("commandstats") && (sections["commandstats"] || sections["everything"]) {
		b.WriteString("# Commandstats\r\n")
		names := make([]string, 0, len(ss.Commands))
		for n := range ss.Commands {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			cs := ss.Commands[n]
			fmt.Fprintf(&b, "cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,failed_calls=%d\r\n", n, cs.Calls, cs.Usec, float64(cs.Usec)/float64(cs.Calls), cs.Errors)
		}
		b.WriteString("\r\n")
	}
	if want("store") && c.s.opts.Persist != nil {
		// The backing store (docs/backing.md): totals over the maps, as
		// STORESTATUS and the metrics show them per map.
		t := c.s.opts.Persist.Totals()
		fmt.Fprintf(&b, "# Store\r\nstore_default:%s\r\nstore_pending_changes:%d\r\nstore_pending_bytes:%d\r\nstore_oldest_pending_ms:%d\r\nstore_changes_received:%d\r\nstore_keys_written:%d\r\nstore_keys_deleted:%d\r\nstore_write_failures:%d\r\nstore_loads:%d\r\nstore_loads_found:%d\r\nstore_load_errors:%d\r\n\r\n",
			c.s.opts.Persist.DefaultSettings().Mode, t.Pending, t.PendingBytes, t.OldestMs, t.Received, t.Written, t.Deleted, t.Failures, t.Loads, t.LoadsFound, t.LoadErrors)
	}
	if want("keyspace") {
		b.WriteString("# Keyspace\r\n")
		for _, name := range c.s.st.MapNames() {
			if m, ok := c.s.st.Lookup([]byte(name)); ok {
				fmt.Fprintf(&b, "map_%s:keys=%d,bytes=%d,max_ttl=%d\r\n", sanitize(name), m.Len(), m.Bytes(), m.MaxTTL())
			}
		}
	}
	c.out = resp.AppendVerbatim(c.out, "txt", b.String(), c.proto)
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < '!' || r > '~' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// residentBytes reads the process's resident set size (Linux); 0 elsewhere.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
