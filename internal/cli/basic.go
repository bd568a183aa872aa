package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
)

// printJSON writes v as one line of JSON. HTML escaping is off: the output
// is for terminals and jq, where "\u003c" for "<" only hurts.
func (s *session) printJSON(v any) error {
	enc := json.NewEncoder(s.io.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// notFound is the error of get and ttl on a missing key: exit code 1 and a
// message on stderr, so 'engram get k || ...' works in scripts.
func notFound(key string) error {
	return fmt.Errorf("no such key: %s", printable(key))
}

var getCmd = &command{
	name: "get", synopsis: "KEY", summary: "print the value of a key",
	minArgs: 1, maxArgs: 1,
	details: `The value is written to stdout byte for byte, with no newline added, so
binary values can be redirected to a file. A missing key prints a message on
stderr and exits with status 1. With --json the value is a JSON string, or
base64 in "value_b64" when it is not valid UTF-8.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		return func(ctx context.Context, s *session, args []string) error {
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			v, err := c.Get(ctx, args[0]).Result()
			if errors.Is(err, redis.Nil) {
				return notFound(args[0])
			}
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(newRecord(args[0], v, -1))
			}
			_, err = io.WriteString(s.io.Stdout, v)
			return err
		}
	},
}

var setCmd = &command{
	name: "set", synopsis: "KEY [VALUE] [--ttl DURATION] [--stdin]", summary: "set a key to a value",
	minArgs: 1, maxArgs: 2,
	details: `Without --ttl the key does not expire. --stdin reads the value from
standard input instead of the VALUE argument, for binary or large values:
  engram set avatar:42 --stdin < avatar.png`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		ttl := fs.Duration("ttl", 0, "expire the key after this long (e.g. 10s, 1500ms, 2h); 0 for never")
		stdin := fs.Bool("stdin", false, "read the value from standard input")
		return func(ctx context.Context, s *session, args []string) error {
			if *ttl < 0 || *ttl > 0 && *ttl < time.Millisecond {
				return usagef("--ttl %v: want at least 1ms, or 0 for no expiry", *ttl)
			}
			var value string
			switch {
			case *stdin && len(args) == 2:
				return usagef("give either VALUE or --stdin, not both")
			case *stdin:
				b, err := io.ReadAll(s.io.Stdin)
				if err != nil {
					return fmt.Errorf("cannot read the value from stdin: %w", err)
				}
				value = string(b)
			case len(args) == 2:
				value = args[1]
			default:
				return usagef("missing VALUE (or --stdin)")
			}
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			if err := c.Set(ctx, args[0], value, *ttl).Err(); err != nil {
				return err
			}
			if s.json {
				return s.printJSON(map[string]bool{"ok": true})
			}
			_, err = fmt.Fprintln(s.io.Stdout, "OK")
			return err
		}
	},
}

var delCmd = &command{
	name: "del", synopsis: "KEY...", summary: "delete keys and print how many existed",
	minArgs: 1, maxArgs: -1,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		return func(ctx context.Context, s *session, args []string) error {
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			n, err := c.Del(ctx, args...).Result()
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(map[string]int64{"deleted": n})
			}
			_, err = fmt.Fprintln(s.io.Stdout, n)
			return err
		}
	},
}

// scanCount is the COUNT hint of every SCAN the CLI sends: large enough
// that a big map takes few round trips, small enough that one reply stays
// a modest allocation on the node.
const scanCount = 1000

var keysCmd = &command{
	name: "keys", synopsis: "[PATTERN]", summary: "list the keys matching a glob pattern (default *)",
	minArgs: 0, maxArgs: 1,
	details: `Keys are listed with SCAN, so a large map does not block the node the way
KEYS would. One key per line; a key that is not printable text is shown
Go-quoted ("\xff\x00"). --json prints an array of {"key":...} objects, with
"key_b64" for keys that are not valid UTF-8.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		return func(ctx context.Context, s *session, args []string) error {
			pattern := "*"
			if len(args) == 1 {
				pattern = args[0]
			}
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(s.io.Stdout)
			n := 0
			if s.json {
				w.WriteString("[")
			}
			var cursor uint64
			for {
				var keys []string
				keys, cursor, err = c.Scan(ctx, cursor, pattern, scanCount).Result()
				if err != nil {
					return err
				}
				for _, k := range keys {
					if s.json {
						if n > 0 {
							w.WriteString(",")
						}
						var r struct {
							Key    *string `json:"key,omitempty"`
							KeyB64 *string `json:"key_b64,omitempty"`
						}
						r.Key, r.KeyB64 = textOrBase64(k)
						b, _ := json.Marshal(r)
						w.Write(b)
					} else {
						w.WriteString(printable(k))
						w.WriteByte('\n')
					}
					n++
				}
				if cursor == 0 {
					break
				}
			}
			if s.json {
				w.WriteString("]\n")
			}
			return w.Flush()
		}
	},
}

var ttlCmd = &command{
	name: "ttl", synopsis: "KEY", summary: "print how long a key has left to live",
	minArgs: 1, maxArgs: 1,
	details: `Prints the time left (e.g. 9.998s), or "none" when the key does not expire.
A missing key prints a message on stderr and exits with status 1. --json
prints {"ttl_ms":N}, with N = -1 for no expiry.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		return func(ctx context.Context, s *session, args []string) error {
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			// PTTL through Do: go-redis's PTTL turns -1 and -2 into
			// durations of -1ns and -2ns, which is easy to misread.
			ms, err := c.Do(ctx, "pttl", args[0]).Int64()
			if err != nil {
				return err
			}
			switch {
			case ms == -2:
				return notFound(args[0])
			case s.json:
				return s.printJSON(map[string]int64{"ttl_ms": ms})
			case ms == -1:
				_, err = fmt.Fprintln(s.io.Stdout, "none")
			default:
				_, err = fmt.Fprintln(s.io.Stdout, time.Duration(ms)*time.Millisecond)
			}
			return err
		}
	},
}

var incrCmd = &command{
	name: "incr", synopsis: "KEY [N]", summary: "add N (default 1, may be negative) to an integer key and print the result",
	minArgs: 1, maxArgs: 2,
	details: `A missing key counts as 0. The value must be a decimal integer that fits in
64 bits, as in Redis's INCRBY.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		return func(ctx context.Context, s *session, args []string) error {
			by := int64(1)
			if len(args) == 2 {
				n, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil {
					return usagef("N %q is not a 64-bit integer", args[1])
				}
				by = n
			}
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			v, err := c.IncrBy(ctx, args[0], by).Result()
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(map[string]int64{"value": v})
			}
			_, err = fmt.Fprintln(s.io.Stdout, v)
			return err
		}
	},
}

// mapStat is one map in the output of 'engram maps'.
type mapStat struct {
	Name  string `json:"name"`
	Keys  int64  `json:"keys"`
	Bytes int64  `json:"bytes"`
}

var mapsCmd = &command{
	name: "maps", summary: "list the maps on the node",
	minArgs: 0, maxArgs: 0,
	details: `One map name per line; -l adds each map's key count and bytes. --json
prints [{"name":...,"keys":N,"bytes":N}, ...].`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		long := fs.Bool("l", false, "long listing: keys and bytes per map")
		return func(ctx context.Context, s *session, _ []string) error {
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			maps, err := cacheSize(ctx, c)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(maps)
			}
			if !*long {
				w := bufio.NewWriter(s.io.Stdout)
				for _, m := range maps {
					fmt.Fprintln(w, printable(m.Name))
				}
				return w.Flush()
			}
			tw := tabwriter.NewWriter(s.io.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "KEYS\tBYTES\t  MAP\n")
			for _, m := range maps {
				fmt.Fprintf(tw, "%d\t%s\t  %s\n", m.Keys, humanBytes(m.Bytes), printable(m.Name))
			}
			return tw.Flush()
		}
	},
}

// cacheSize reads CACHESIZE: one [name, keys, bytes] triple per map.
func cacheSize(ctx context.Context, c *redis.Client) ([]mapStat, error) {
	rows, err := c.Do(ctx, "cachesize").Slice()
	if err != nil {
		return nil, err
	}
	out := make([]mapStat, 0, len(rows))
	for _, r := range rows {
		t, ok := r.([]any)
		if !ok || len(t) != 3 {
			return nil, fmt.Errorf("unexpected CACHESIZE reply %v", r)
		}
		name, ok1 := t[0].(string)
		keys, ok2 := t[1].(int64)
		size, ok3 := t[2].(int64)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("unexpected CACHESIZE reply %v", r)
		}
		out = append(out, mapStat{Name: name, Keys: keys, Bytes: size})
	}
	return out, nil
}

// nodeInfo is the summary 'engram info' prints.
type nodeInfo struct {
	Addr             string   `json:"addr"`
	Version          string   `json:"version"`
	UptimeSeconds    int64    `json:"uptime_seconds"`
	Clients          int64    `json:"connected_clients"`
	Maps             int64    `json:"maps"`
	Keys             int64    `json:"keys"`
	Map              string   `json:"map"`
	MapKeys          int64    `json:"map_keys"`
	UsedMemory       int64    `json:"used_memory"`
	RSS              int64    `json:"used_memory_rss"`
	MaxMemory        int64    `json:"maxmemory"`
	Policy           string   `json:"maxmemory_policy"`
	Hits             int64    `json:"keyspace_hits"`
	Misses           int64    `json:"keyspace_misses"`
	HitRatio         *float64 `json:"hit_ratio"` // null before the first read
	Commands         int64    `json:"commands_processed"`
	Expired          int64    `json:"expired_keys"`
	Evicted          int64    `json:"evicted_keys"`
	TotalConnections int64    `json:"total_connections_received"`
}

var infoCmd = &command{
	name: "info", summary: "print a summary of the node: keys, memory, uptime, hit ratio",
	minArgs: 0, maxArgs: 0,
	details: `--raw prints the node's full INFO text instead (every section, as
redis-cli info everything would).`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		raw := fs.Bool("raw", false, "print the full INFO text")
		return func(ctx context.Context, s *session, _ []string) error {
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			if *raw {
				text, err := c.Info(ctx, "everything").Result()
				if err != nil {
					return err
				}
				_, err = io.WriteString(s.io.Stdout, strings.ReplaceAll(text, "\r\n", "\n"))
				return err
			}
			text, err := c.Info(ctx).Result()
			if err != nil {
				return err
			}
			mapKeys, err := c.DBSize(ctx).Result()
			if err != nil {
				return err
			}
			in := parseInfo(text)
			in.Addr, in.Map, in.MapKeys = s.addr, s.mapName, mapKeys
			if s.json {
				return s.printJSON(in)
			}
			return writeInfo(s.io.Stdout, in)
		}
	},
}

// parseInfo reads the fields of the summary out of INFO text. Fields a
// node does not report stay zero rather than failing the command: info is
// for looking, and a partial summary beats none.
func parseInfo(text string) nodeInfo {
	var in nodeInfo
	ints := map[string]*int64{
		"uptime_in_seconds":          &in.UptimeSeconds,
		"connected_clients":          &in.Clients,
		"used_memory":                &in.UsedMemory,
		"used_memory_rss":            &in.RSS,
		"maxmemory":                  &in.MaxMemory,
		"keyspace_hits":              &in.Hits,
		"keyspace_misses":            &in.Misses,
		"total_commands_processed":   &in.Commands,
		"expired_keys":               &in.Expired,
		"evicted_keys":               &in.Evicted,
		"total_connections_received": &in.TotalConnections,
	}
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case ints[k] != nil:
			*ints[k], _ = strconv.ParseInt(v, 10, 64)
		case k == "engram_version":
			in.Version = v
		case k == "maxmemory_policy":
			in.Policy = v
		case strings.HasPrefix(k, "map_"):
			// map_<name>:keys=N,bytes=N,max_ttl=N; the node replaces ':'
			// in names, so the first ':' ends the name.
			in.Maps++
			for f := range strings.SplitSeq(v, ",") {
				if n, ok := strings.CutPrefix(f, "keys="); ok {
					keys, _ := strconv.ParseInt(n, 10, 64)
					in.Keys += keys
				}
			}
		}
	}
	if total := in.Hits + in.Misses; total > 0 {
		r := float64(in.Hits) / float64(total)
		in.HitRatio = &r
	}
	return in
}

func writeInfo(w io.Writer, in nodeInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	maxMem := "unlimited"
	if in.MaxMemory > 0 {
		maxMem = humanBytes(in.MaxMemory)
	}
	ratio := "n/a (no reads yet)"
	if in.HitRatio != nil {
		ratio = fmt.Sprintf("%.1f%%", *in.HitRatio*100)
	}
	fmt.Fprintf(tw, "node\t%s (engram %s)\n", in.Addr, in.Version)
	fmt.Fprintf(tw, "uptime\t%s\n", time.Duration(in.UptimeSeconds)*time.Second)
	fmt.Fprintf(tw, "clients\t%d connected, %d since start\n", in.Clients, in.TotalConnections)
	fmt.Fprintf(tw, "keys\t%d in %d maps (%d in map %s)\n", in.Keys, in.Maps, in.MapKeys, printable(in.Map))
	fmt.Fprintf(tw, "memory\t%s used, %s resident, max %s (%s)\n", humanBytes(in.UsedMemory), humanBytes(in.RSS), maxMem, in.Policy)
	fmt.Fprintf(tw, "hit ratio\t%s (%d hits, %d misses)\n", ratio, in.Hits, in.Misses)
	fmt.Fprintf(tw, "commands\t%d\n", in.Commands)
	fmt.Fprintf(tw, "expired\t%d keys\n", in.Expired)
	fmt.Fprintf(tw, "evicted\t%d keys\n", in.Evicted)
	return tw.Flush()
}

// humanBytes formats a byte count with binary units (1.5 MiB).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var pingCmd = &command{
	name: "ping", summary: "check that the node answers",
	minArgs: 0, maxArgs: 0,
	details: `Prints PONG and exits 0 when the node answers (and the password and map are
accepted); exits 1 with the reason otherwise. --json adds the round trip.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		return func(ctx context.Context, s *session, _ []string) error {
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			// The connect PING dialled; this one measures a round trip.
			start := time.Now()
			if err := c.Ping(ctx).Err(); err != nil {
				return err
			}
			rtt := time.Since(start)
			if s.json {
				return s.printJSON(map[string]any{"addr": s.addr, "pong": true, "rtt_ms": float64(rtt.Microseconds()) / 1000})
			}
			_, err = fmt.Fprintln(s.io.Stdout, "PONG")
			return err
		}
	},
}
