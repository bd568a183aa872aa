package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/config"
	"github.com/engramdb/engram/internal/node"
	"github.com/redis/go-redis/v9"
)

// startNode runs a real node in-process on a free loopback port and
// returns its RESP address.
func startNode(t *testing.T, edit func(*config.Config)) string {
	t.Helper()
	cfg := config.Default()
	cfg.RESPAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "off"
	cfg.ClusterAddr = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return n.RESPAddr()
}

// result is what one CLI run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// cliRun runs a subcommand with ENGRAM_ADDR pointing at addr.
func cliRun(t *testing.T, addr, stdin string, args ...string) result {
	t.Helper()
	return cliRunEnv(t, map[string]string{"ENGRAM_ADDR": addr}, stdin, args...)
}

func cliRunEnv(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args[0], args[1:], IO{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] },
	})
	return result{out.String(), errb.String(), code}
}

// ok fails the test unless the run succeeded, and returns its stdout.
func (r result) ok(t *testing.T) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	return r.stdout
}

// redisClient is an independent client, to check the CLI's effects
// without trusting the CLI.
func redisClient(t *testing.T, addr, mapName string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, OnConnect: func(ctx context.Context, cn *redis.Conn) error {
		return cn.Process(ctx, redis.NewStatusCmd(ctx, "select", mapName))
	}})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGetSetDelTTLIncr(t *testing.T) {
	addr := startNode(t, nil)
	ctx := context.Background()
	rc := redisClient(t, addr, "0")

	if got := cliRun(t, addr, "", "set", "greeting", "hello world").ok(t); got != "OK\n" {
		t.Errorf("set printed %q", got)
	}
	if got := cliRun(t, addr, "", "get", "greeting").ok(t); got != "hello world" {
		t.Errorf("get printed %q, want the bytes with no newline", got)
	}
	r := cliRun(t, addr, "", "get", "missing")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "no such key: missing") {
		t.Errorf("get of a missing key: %+v", r)
	}

	// Binary value through --stdin comes back byte for byte.
	bin := "\x00\xff\r\n\x80value"
	cliRun(t, addr, bin, "set", "bin", "--stdin").ok(t)
	if got := cliRun(t, addr, "", "get", "bin").ok(t); got != bin {
		t.Errorf("binary get = %q, want %q", got, bin)
	}
	var rec record
	if err := json.Unmarshal([]byte(cliRun(t, addr, "", "get", "bin", "--json").ok(t)), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ValueB64 == nil || rec.Value != nil || *rec.Key != "bin" {
		t.Errorf("get --json of a binary value: %+v", rec)
	}

	// TTL: flags after the arguments, and the TTL really set on the node.
	cliRun(t, addr, "", "set", "temp", "v", "--ttl", "1h").ok(t)
	pttl, err := rc.PTTL(ctx, "temp").Result()
	if err != nil || pttl < 59*time.Minute || pttl > time.Hour {
		t.Errorf("PTTL after set --ttl 1h = %v, %v", pttl, err)
	}
	d, err := time.ParseDuration(strings.TrimSpace(cliRun(t, addr, "", "ttl", "temp").ok(t)))
	if err != nil || d < 59*time.Minute || d > time.Hour {
		t.Errorf("ttl printed %v (%v)", d, err)
	}
	var ttl struct {
		TTLms int64 `json:"ttl_ms"`
	}
	json.Unmarshal([]byte(cliRun(t, addr, "", "ttl", "greeting", "--json").ok(t)), &ttl)
	if ttl.TTLms != -1 {
		t.Errorf("ttl --json of a persistent key = %d, want -1", ttl.TTLms)
	}
	if got := cliRun(t, addr, "", "ttl", "greeting").ok(t); got != "none\n" {
		t.Errorf("ttl of a persistent key printed %q", got)
	}
	if r := cliRun(t, addr, "", "ttl", "missing"); r.code != 1 || !strings.Contains(r.stderr, "no such key") {
		t.Errorf("ttl of a missing key: %+v", r)
	}

	// incr: default 1, explicit, negative (not taken for a flag).
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"incr", "n"}, "1\n"},
		{[]string{"incr", "n", "41"}, "42\n"},
		{[]string{"incr", "n", "-50"}, "-8\n"},
	} {
		if got := cliRun(t, addr, "", c.args...).ok(t); got != c.want {
			t.Errorf("%v printed %q, want %q", c.args, got, c.want)
		}
	}
	if r := cliRun(t, addr, "", "incr", "greeting"); r.code != 1 || !strings.Contains(r.stderr, "not an integer") {
		t.Errorf("incr of a non-integer: %+v", r)
	}

	if got := cliRun(t, addr, "", "del", "greeting", "n", "missing").ok(t); got != "2\n" {
		t.Errorf("del printed %q, want 2", got)
	}
	if n, _ := rc.Exists(ctx, "greeting", "n").Result(); n != 0 {
		t.Errorf("%d deleted keys still exist", n)
	}
}

func TestKeysMapsInfoPing(t *testing.T) {
	addr := startNode(t, nil)
	const other = "sessions: eu/west" // any string is a map name
	for _, k := range []string{"user:1", "user:2", "order:1"} {
		cliRun(t, addr, "", "set", k, "v").ok(t)
	}
	cliRun(t, addr, "", "set", "\xffbin", "v").ok(t)
	cliRun(t, addr, "", "set", "--map", other, "s1", "v").ok(t)

	lines := strings.Split(strings.TrimSpace(cliRun(t, addr, "", "keys", "user:*").ok(t)), "\n")
	if strings.Join(slices.Sorted(slices.Values(lines)), ",") != "user:1,user:2" {
		t.Errorf("keys user:* = %q", lines)
	}
	all := cliRun(t, addr, "", "keys").ok(t)
	if !strings.Contains(all, `"\xffbin"`) || strings.Count(all, "\n") != 4 {
		t.Errorf("keys printed %q; want 4 lines, the binary key quoted", all)
	}
	var keys []record
	if err := json.Unmarshal([]byte(cliRun(t, addr, "", "keys", "--json").ok(t)), &keys); err != nil || len(keys) != 4 {
		t.Fatalf("keys --json: %v, %d keys", err, len(keys))
	}
	b64 := 0
	for _, k := range keys {
		if k.KeyB64 != nil {
			b64++
		}
	}
	if b64 != 1 {
		t.Errorf("keys --json: %d keys in base64, want 1", b64)
	}
	// The map is selected per connection: the other map's key is not
	// in map 0, and is in the other map.
	if r := cliRun(t, addr, "", "get", "s1"); r.code != 1 {
		t.Errorf("key of map %q visible in map 0: %+v", other, r)
	}
	if got := cliRun(t, addr, "", "keys", "--map", other).ok(t); got != "s1\n" {
		t.Errorf("keys --map %q = %q", other, got)
	}

	names := strings.Split(strings.TrimSpace(cliRun(t, addr, "", "maps").ok(t)), "\n")
	if strings.Join(slices.Sorted(slices.Values(names)), ",") != "0,"+other {
		t.Errorf("maps = %q", names)
	}
	var maps []mapStat
	if err := json.Unmarshal([]byte(cliRun(t, addr, "", "maps", "--json").ok(t)), &maps); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, m := range maps {
		counts[m.Name] = m.Keys
	}
	if counts["0"] != 4 || counts[other] != 1 {
		t.Errorf("maps --json = %+v", maps)
	}

	cliRun(t, addr, "", "get", "user:1").ok(t)
	cliRun(t, addr, "", "get", "nope")
	var in nodeInfo
	if err := json.Unmarshal([]byte(cliRun(t, addr, "", "info", "--json").ok(t)), &in); err != nil {
		t.Fatal(err)
	}
	if in.Keys != 5 || in.Maps != 2 || in.MapKeys != 4 || in.Version != node.Version || in.UsedMemory <= 0 {
		t.Errorf("info --json = %+v", in)
	}
	if in.HitRatio == nil || in.Hits < 1 || in.Misses < 1 || *in.HitRatio != float64(in.Hits)/float64(in.Hits+in.Misses) {
		t.Errorf("info hit ratio = %v from %d hits, %d misses", in.HitRatio, in.Hits, in.Misses)
	}
	plain := cliRun(t, addr, "", "info").ok(t)
	for _, want := range []string{"uptime", "5 in 2 maps", "memory", "hit ratio"} {
		if !strings.Contains(plain, want) {
			t.Errorf("info output lacks %q:\n%s", want, plain)
		}
	}
	if raw := cliRun(t, addr, "", "info", "--raw").ok(t); !strings.Contains(raw, "# Keyspace") || strings.Contains(raw, "\r") {
		t.Errorf("info --raw:\n%s", raw)
	}

	if got := cliRun(t, addr, "", "ping").ok(t); got != "PONG\n" {
		t.Errorf("ping printed %q", got)
	}
}

func TestExportFlushImportRoundTrip(t *testing.T) {
	addr := startNode(t, nil)
	ctx := context.Background()
	const m = "round trip"
	rc := redisClient(t, addr, m)

	type item struct {
		key, value string
		ttl        time.Duration
	}
	items := []item{
		{"plain", "value", 0},
		{"empty value", "", 0},
		{"\xff\x00binary key", "text value", 0},
		{"binary value", "\x00\x01\xfe\xff", 0},
		{"\x80both\n", "\xc3\x28", 90 * time.Second},
		{"unicode ✓", "json {\"a\":[1,2]} <&>", time.Hour},
		{"short ttl", "v", 45 * time.Second},
	}
	for i := range 2500 { // several SCAN batches
		items = append(items, item{"bulk:" + strconv.Itoa(i), strings.Repeat("x", i%50), time.Duration(i%3) * time.Minute})
	}
	for _, it := range items {
		if err := rc.Set(ctx, it.key, it.value, it.ttl).Err(); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]time.Duration{}
	for _, it := range items {
		before[it.key] = rc.PTTL(ctx, it.key).Val()
	}

	file := filepath.Join(t.TempDir(), "dump.jsonl")
	r := cliRun(t, addr, "", "export", "--map", m, "--out", file, "--progress")
	r.ok(t)
	if r.stdout != "" {
		t.Errorf("export --out wrote to stdout: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "exported "+commas(int64(len(items)))+" keys") || !strings.Contains(r.stderr, "/"+commas(int64(len(items)))+" keys") {
		t.Errorf("export stderr lacks the progress line or summary:\n%s", r.stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Every line parses, and strings are used wherever valid UTF-8 allows.
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != len(items) {
		t.Fatalf("export wrote %d lines for %d keys", len(lines), len(items))
	}
	for _, l := range lines {
		if _, _, _, err := parseRecord([]byte(l)); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		if strings.Contains(l, `"key":"plain"`) && !strings.Contains(l, `"value":"value"`) {
			t.Errorf("UTF-8 value not written as a string: %s", l)
		}
	}
	// Export to stdout gives the same records, and the progress line stays
	// on stderr.
	r = cliRun(t, addr, "", "export", "--map", m, "--progress")
	if got := strings.Count(r.ok(t), "\n"); got != len(items) {
		t.Errorf("export to stdout wrote %d lines", got)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		if _, _, _, err := parseRecord(sc.Bytes()); err != nil {
			t.Fatalf("stdout line %q is not a record: %v", sc.Text(), err)
		}
	}

	if err := rc.Do(ctx, "flush").Err(); err != nil {
		t.Fatal(err)
	}
	if n := rc.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("%d keys after FLUSH", n)
	}
	exported := time.Now()

	r = cliRun(t, addr, "", "import", "--map", m, "--in", file, "--batch", "100")
	r.ok(t)
	if !strings.Contains(r.stderr, "imported "+commas(int64(len(items)))+" keys") {
		t.Errorf("import summary: %s", r.stderr)
	}
	for _, it := range items {
		v, err := rc.Get(ctx, it.key).Result()
		if err != nil || v != it.value {
			t.Fatalf("after import, %q = %q, %v; want %q", it.key, v, err, it.value)
		}
		got := rc.PTTL(ctx, it.key).Val()
		want := before[it.key]
		if want < 0 {
			if got != want {
				t.Errorf("%q: PTTL %v after import, want no expiry", it.key, got)
			}
			continue
		}
		// ttl_ms is relative: the import restarts the clock, so the TTL
		// is within a second of what it was, plus the time since.
		slack := time.Second + time.Since(exported)
		if got < want-slack || got > want+slack {
			t.Errorf("%q: PTTL %v after import, was %v", it.key, got, want)
		}
	}

	// --match exports only the matching keys.
	r = cliRun(t, addr, "", "export", "--map", m, "--match", "bulk:1?")
	if got := strings.Count(r.ok(t), "\n"); got != 10 {
		t.Errorf("export --match bulk:1? wrote %d lines, want 10", got)
	}
}

func TestImportMalformedLine(t *testing.T) {
	addr := startNode(t, nil)
	ctx := context.Background()
	rc := redisClient(t, addr, "imp")
	input := strings.Join([]string{
		`{"key":"a","value":"1"}`,
		``,
		`{"key_b64":"/w==","value":"2","ttl_ms":60000}`,
		`{"key":"c","value":"3","extra":true}`,
		`{"key":"d","value":"4"}`,
	}, "\n") + "\n"

	r := cliRun(t, addr, input, "import", "--map", "imp")
	if r.code != 1 {
		t.Fatalf("import of a malformed line: exit %d, stderr %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "line 4:") || !strings.Contains(r.stderr, "2 keys written") || !strings.Contains(r.stderr, `unknown field "extra"`) {
		t.Errorf("error does not name the line, the cause and the count: %s", r.stderr)
	}
	if v := rc.Get(ctx, "a").Val(); v != "1" {
		t.Errorf("line 1 not written: %q", v)
	}
	if v := rc.Get(ctx, "\xff").Val(); v != "2" {
		t.Errorf("line 3 not written: %q", v)
	}
	if n := rc.Exists(ctx, "c", "d").Val(); n != 0 {
		t.Errorf("%d keys from the bad line or after it were written", n)
	}

	r = cliRun(t, addr, input, "import", "--map", "imp", "--skip-bad", "--json")
	r.ok(t)
	var res importResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	want := importResult{Written: 3, Lines: 5, BadLines: 1, FirstBadLine: 4, FirstBad: res.FirstBad}
	if res != want || !strings.Contains(res.FirstBad, "extra") {
		t.Errorf("import --skip-bad --json = %+v, want %+v", res, want)
	}
	if !strings.Contains(r.stderr, "the first was line 4") {
		t.Errorf("--skip-bad summary: %s", r.stderr)
	}
	if v := rc.Get(ctx, "d").Val(); v != "4" {
		t.Errorf("the line after the bad one was not written with --skip-bad: %q", v)
	}
}

func TestImportWriteRefused(t *testing.T) {
	addr := startNode(t, func(c *config.Config) { c.MaxValueLen = 8 })
	input := `{"key":"a","value":"small"}` + "\n" + `{"key":"b","value":"far too large a value"}` + "\n" + `{"key":"c","value":"ok"}` + "\n"
	r := cliRun(t, addr, input, "import")
	if r.code != 1 || !strings.Contains(r.stderr, "line 2: the node refused the write") || !strings.Contains(r.stderr, "2 keys written") {
		t.Errorf("import over the value limit: %+v", r)
	}
}

func TestBench(t *testing.T) {
	addr := startNode(t, nil)
	r := cliRun(t, addr, "", "bench", "--map", "bench", "--clients", "2", "--requests", "200", "--json")
	var res benchResult
	if err := json.Unmarshal([]byte(r.ok(t)), &res); err != nil {
		t.Fatalf("bench --json output %q: %v", r.stdout, err)
	}
	if res.Ops != 200 || res.Errors != 0 || res.Sets != 100 || res.Gets != 100 || res.Misses > res.Gets {
		t.Errorf("bench counts: %+v", res)
	}
	l := res.LatencyMS
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) || res.OpsPerSec <= 0 {
		t.Errorf("bench latencies are not ordered quantiles: %+v", res)
	}
	if n := redisClient(t, addr, "bench").DBSize(context.Background()).Val(); n < 1 || n > 100 {
		t.Errorf("bench left %d keys in its map after 100 sets", n)
	}

	// Plain output: "name value" lines; a pipeline that does not divide
	// the request count still sends exactly the requests; writes only.
	r = cliRun(t, addr, "", "bench", "--map", "bench", "--clients", "3", "--requests", "200", "--pipeline", "16", "--ratio", "1:0", "--progress")
	fields := map[string]string{}
	for line := range strings.Lines(r.ok(t)) {
		name, value, _ := strings.Cut(line, " ")
		fields[name] = strings.Fields(value)[0]
	}
	if fields["ops"] != "200" || fields["errors"] != "0" || !strings.HasPrefix(r.stdout, "target") {
		t.Errorf("bench plain output:\n%s", r.stdout)
	}
	for _, k := range []string{"ops/s", "p50", "p90", "p99", "p99.9", "max"} {
		if _, err := strconv.ParseFloat(fields[k], 64); err != nil {
			t.Errorf("bench %s = %q: %v", k, fields[k], err)
		}
	}
	if !strings.Contains(r.stderr, "bench ") || !strings.Contains(r.stderr, "200 ops") {
		t.Errorf("bench --progress wrote no final progress line: %q", r.stderr)
	}
}

func TestConnectionAndAuthErrors(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := cliRun(t, dead, "", "get", "k")
	want := "cannot connect to " + dead + ": connection refused; is a node running? start one with 'engram serve'"
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("get against no node: %+v; want %q", r, want)
	}

	addr := startNode(t, func(c *config.Config) { c.Password = "s3cret" })
	if r := cliRun(t, addr, "", "ping"); r.code != 1 || !strings.Contains(r.stderr, "requires a password") {
		t.Errorf("ping without the password: %+v", r)
	}
	if r := cliRunEnv(t, map[string]string{"ENGRAM_ADDR": addr, "ENGRAM_PASSWORD": "wrong"}, "", "ping"); r.code != 1 || !strings.Contains(r.stderr, "refused the password") {
		t.Errorf("ping with a wrong password: %+v", r)
	}
	if got := cliRunEnv(t, map[string]string{"ENGRAM_ADDR": addr, "ENGRAM_PASSWORD": "s3cret"}, "", "set", "k", "v").ok(t); got != "OK\n" {
		t.Errorf("set with ENGRAM_PASSWORD printed %q", got)
	}
	if got := cliRun(t, addr, "", "get", "k", "--password", "s3cret").ok(t); got != "v" {
		t.Errorf("get with --password printed %q", got)
	}
}

func TestUsageErrors(t *testing.T) {
	// No node: every case must fail before connecting.
	const addr = "127.0.0.1:1"
	for _, args := range [][]string{
		{"get"},
		{"get", "a", "b"},
		{"get", "--nope", "a"},
		{"set", "k"},
		{"set", "k", "v", "--stdin"},
		{"set", "k", "v", "--ttl", "-1s"},
		{"incr", "k", "1.5"},
		{"maps", "extra"},
		{"import", "--batch", "0"},
		{"bench", "--requests", "0"},
		{"bench", "--ratio", "0:0"},
		{"bench", "--pipeline", "0"},
		{"get", "k", "--addr", "no-port"},
		{"get", "k", "--map", ""},
	} {
		r := cliRun(t, addr, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "engram "+args[0]+":") || !strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error (2)", args, r.code, r.stderr)
		}
	}
	for _, c := range commands {
		r := cliRun(t, addr, "", c.name, "--help")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: engram "+c.name) || !strings.Contains(r.stdout, "--addr") {
			t.Errorf("%s --help: exit %d, %q", c.name, r.code, r.stdout)
		}
	}
	var b bytes.Buffer
	if !Help("set", &b) || !strings.Contains(b.String(), "--ttl") {
		t.Errorf("Help(set) lacks the command's own flags:\n%s", b.String())
	}
	if Help("serve", &b) || IsCommand("serve") {
		t.Error("serve is not a client command")
	}
}

func TestClusterCommand(t *testing.T) {
	standalone := startNode(t, nil)
	if r := cliRun(t, standalone, "", "cluster"); r.code != 1 || !strings.Contains(r.stderr, "cluster support disabled") {
		t.Fatalf("cluster on a standalone node: code %d, stderr %q", r.code, r.stderr)
	}
	member := startNode(t, func(c *config.Config) { c.ClusterSecret = "cli-test-secret-0123456789" })
	// A one-node cluster settles at once; wait for its first table.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := cliRun(t, member, "", "cluster")
		if out.code == 0 && strings.Contains(out.stdout, "cluster_state:ok") {
			if !strings.Contains(out.stdout, "data,myself,leader alive manager") {
				t.Fatalf("cluster output lacks this node's line:\n%s", out.stdout)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster never reported ok: %+v", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var js struct {
		Info  map[string]string `json:"info"`
		Nodes []string          `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(cliRun(t, member, "", "cluster", "--json").ok(t)), &js); err != nil {
		t.Fatal(err)
	}
	if js.Info["cluster_data_nodes"] != "1" || len(js.Nodes) != 1 {
		t.Fatalf("cluster --json: %+v", js)
	}
}

func TestStoreCommand(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Store = "file://" + t.TempDir() + "?fsync=false"
		c.StoreDefaults = "mode=write-behind delay=1h"
	})
	if out := cliRun(t, n, "", "store").ok(t); !strings.Contains(out, "no map uses a backing store") {
		t.Fatalf("store before any write:\n%s", out)
	}
	cliRun(t, n, "", "set", "k", "v").ok(t)
	out := cliRun(t, n, "", "store").ok(t)
	if !strings.Contains(out, "MAP") || !strings.Contains(out, "write-behind") {
		t.Fatalf("store after a write:\n%s", out)
	}
	var rows []map[string]string
	if err := json.Unmarshal([]byte(cliRun(t, n, "", "store", "0", "--json").ok(t)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["pending"] != "1" || rows[0]["map"] != "0" {
		t.Fatalf("store --json: %+v", rows)
	}
}
