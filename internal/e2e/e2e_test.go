package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// lines splits redis-cli output into its lines.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestRedisCLI(t *testing.T) {
	cli := tool(t, "redis-cli")
	n := startNode(t)
	// rc runs redis-cli and returns its output without the final newline.
	rc := func(args ...string) string {
		t.Helper()
		return strings.TrimSuffix(run(t, nil, cli, append([]string{"-h", "127.0.0.1", "-p", n.port}, args...)...), "\n")
	}
	for _, s := range []struct{ cmd, want string }{
		{"set a 1", "OK"},
		{"get a", "1"},
		{"incr a", "2"},
		{"incrby a 10", "12"},
		{"mset b 2 c 3", "OK"},
		{"mget a b c nokey", "12\n2\n3\n"}, // a null prints as an empty line
		{"get nokey", ""},
		{"expire a 100", "1"},
		{"dbsize", "3"},
		{"-n 1 set a other", "OK"}, // -n selects a database: a map here
		{"-n 1 get a", "other"},
		{"-n 1 dbsize", "1"},
		{"get a", "12"},
		{"del b c nokey", "2"},
		{"dbsize", "1"},
		{"incr a x", "ERR wrong number of arguments for 'incr' command\n"}, // errors get a blank line after
		{"set s hello", "OK"},
		{"incr s", "ERR value is not an integer or out of range\n"},
	} {
		if got := rc(strings.Fields(s.cmd)...); got != s.want {
			t.Errorf("redis-cli %s: got %q, want %q", s.cmd, got, s.want)
		}
	}
	if ttl, err := strconv.Atoi(rc("ttl", "a")); err != nil || ttl < 1 || ttl > 100 {
		t.Errorf("redis-cli ttl a: %d, %v; want 1..100", ttl, err)
	}
	keys := lines(rc("keys", "*"))
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "s"}) {
		t.Errorf("redis-cli keys *: %q", keys)
	}
	scan := lines(rc("scan", "0", "count", "1000"))
	if scan[0] != "0" || !slices.Equal(sorted(scan[1:]), []string{"a", "s"}) {
		t.Errorf("redis-cli scan 0: %q", scan)
	}
	// --scan iterates with SCAN until the cursor is 0.
	if got := sorted(lines(rc("--scan", "--pattern", "*"))); !slices.Equal(got, []string{"a", "s"}) {
		t.Errorf("redis-cli --scan: %q", got)
	}
	info := rc("info")
	for _, want := range []string{"# Server", "redis_version:", "# Clients", "connected_clients:", "# Memory", "used_memory:", "# Keyspace"} {
		if !strings.Contains(info, want) {
			t.Errorf("redis-cli info lacks %q:\n%s", want, info)
		}
	}
	// Several commands on one connection, from stdin.
	got := run(t, strings.NewReader("select 2\nset x 1\nincr x\nget x\n"), cli, "-h", "127.0.0.1", "-p", n.port)
	if got != "OK\nOK\n2\n2\n" {
		t.Errorf("redis-cli with commands on stdin: %q", got)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestRedisCLIPipe mass-inserts 10k keys with redis-cli --pipe, which
// streams raw protocol and counts the replies.
func TestRedisCLIPipe(t *testing.T) {
	cli := tool(t, "redis-cli")
	n := startNode(t)
	var in bytes.Buffer
	const keys = 10000
	for i := range keys {
		k, v := fmt.Sprint("key:", i), fmt.Sprint("value:", i)
		fmt.Fprintf(&in, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
	}
	out := run(t, &in, cli, "-h", "127.0.0.1", "-p", n.port, "--pipe")
	if !strings.Contains(out, fmt.Sprintf("errors: 0, replies: %d", keys)) {
		t.Fatalf("redis-cli --pipe:\n%s", out)
	}
	if got := run(t, nil, cli, "-h", "127.0.0.1", "-p", n.port, "dbsize"); got != fmt.Sprintf("%d\n", keys) {
		t.Fatalf("dbsize after --pipe: %q", got)
	}
	if got := run(t, nil, cli, "-h", "127.0.0.1", "-p", n.port, "get", "key:9999"); got != "value:9999\n" {
		t.Fatalf("get key:9999: %q", got)
	}
}

func TestRedisCLIRESP3(t *testing.T) {
	cli := tool(t, "redis-cli")
	n := startNode(t)
	out := run(t, nil, cli, "-3", "-h", "127.0.0.1", "-p", n.port, "hello", "3")
	// redis-cli prints a map's pairs as "key value" lines.
	if !strings.Contains(out, "server redis\n") || !strings.Contains(out, "proto 3\n") {
		t.Fatalf("redis-cli -3 hello 3:\n%s", out)
	}
	// In RESP3 mode every command goes over RESP3; maps come back as maps.
	got := run(t, strings.NewReader("set k v\nget k\nget nokey\ngetall k nokey\n"), cli, "-3", "-h", "127.0.0.1", "-p", n.port)
	if got != "OK\nv\n\nk v\nnokey\n" {
		t.Fatalf("redis-cli -3 session: %q", got)
	}
}

func TestRedisBenchmark(t *testing.T) {
	bench := tool(t, "redis-benchmark")
	n := startNode(t)
	out := run(t, nil, bench, "-h", "127.0.0.1", "-p", n.port, "-n", "2000", "-c", "10", "-t", "set,get,incr,mset", "-q")
	// -q redraws a progress line with \r; the result of each test is the
	// text after the last \r of its line.
	var results []string
	for _, line := range lines(out) {
		parts := strings.Split(line, "\r")
		results = append(results, strings.TrimSpace(parts[len(parts)-1]))
	}
	for _, test := range []string{"SET", "GET", "INCR", "MSET (10 keys)"} {
		re := regexp.MustCompile(`^` + regexp.QuoteMeta(test) + `: [0-9.]+ requests per second`)
		if !slices.ContainsFunc(results, re.MatchString) {
			t.Errorf("no result for %s in:\n%s", test, out)
		}
	}
	if strings.Contains(strings.ToLower(out), "error") || strings.Contains(out, "ERR") {
		t.Errorf("redis-benchmark reported errors:\n%s", out)
	}
}

func TestGoRedisAgainstBinary(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: n.addr, Protocol: proto, DB: proto, PoolSize: 8,
				DialTimeout: waitTimeout, ReadTimeout: waitTimeout, WriteTimeout: waitTimeout})
			defer rdb.Close()
			if err := rdb.Set(ctx, "k", "v", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
				t.Fatalf("GET = %q, %v", v, err)
			}
			if d, err := rdb.TTL(ctx, "k").Result(); err != nil || d <= 0 {
				t.Fatalf("TTL = %v, %v", d, err)
			}
			// A pipeline of 3000 commands in one round trip.
			cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range 1000 {
					p.Set(ctx, fmt.Sprint("p", i), i, 0)
					p.IncrBy(ctx, fmt.Sprint("p", i), 5)
					p.Get(ctx, fmt.Sprint("p", i))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 1000 {
				if got := cmds[3*i+2].(*redis.StringCmd).Val(); got != fmt.Sprint(i+5) {
					t.Fatalf("pipelined GET p%d = %q", i, got)
				}
			}
			// Concurrent clients on one counter and their own keys.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 100 {
						key := fmt.Sprintf("w%d:%d", w, i)
						if err := rdb.MSet(ctx, key, i, key+":x", i).Err(); err != nil {
							errs <- err
							return
						}
						if err := rdb.Incr(ctx, "counter").Err(); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got, err := rdb.Get(ctx, "counter").Int(); err != nil || got != 800 {
				t.Fatalf("counter = %d, %v; want 800", got, err)
			}
			if got, err := rdb.DBSize(ctx).Result(); err != nil || got != 1+1000+1600+1 {
				t.Fatalf("DBSIZE = %d, %v", got, err)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	cli := tool(t, "redis-cli")
	n := startNode(t, "--password", "s3cret")
	base := []string{"-h", "127.0.0.1", "-p", n.port}
	if got := run(t, nil, cli, append(base, "set", "k", "v")...); got != "NOAUTH Authentication required.\n\n" {
		t.Errorf("redis-cli without -a: %q", got)
	}
	if got := run(t, nil, cli, append(base, "-a", "s3cret", "--no-auth-warning", "set", "k", "v")...); got != "OK\n" {
		t.Errorf("redis-cli -a: %q", got)
	}
	if got := run(t, nil, cli, append(base, "--user", "default", "--pass", "s3cret", "--no-auth-warning", "get", "k")...); got != "v\n" {
		t.Errorf("redis-cli --user default --pass: %q", got)
	}
	out, errOut, _ := runErr(t, nil, cli, append(base, "-a", "wrong", "--no-auth-warning", "get", "k")...)
	if !strings.Contains(errOut+out, "WRONGPASS") || strings.Contains(out, "v\n") {
		t.Errorf("redis-cli with a wrong password: stdout %q, stderr %q", out, errOut)
	}
	ctx := context.Background()
	ok := redis.NewClient(&redis.Options{Addr: n.addr, Password: "s3cret"})
	defer ok.Close()
	if v, err := ok.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("go-redis with the password: %q, %v", v, err)
	}
	no := redis.NewClient(&redis.Options{Addr: n.addr})
	defer no.Close()
	if err := no.Get(ctx, "k").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("go-redis without the password: err = %v, want NOAUTH", err)
	}
}

// TestProtectedMode: like Redis's protected mode, a node refuses to
// listen beyond loopback without a password.
func TestProtectedMode(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0"} {
		_, errOut, err := runErr(t, nil, engramBin, "serve", "--resp", addr, "--http", "off", "--cluster", "127.0.0.1:0")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("--resp %s without a password: err = %v, want a non-zero exit", addr, err)
		}
		if want := "refusing to listen on " + addr + " without a password"; !strings.Contains(errOut, want) {
			t.Errorf("--resp %s: stderr lacks %q:\n%s", addr, want, errOut)
		}
	}
}

// TestSignalShutdown: SIGTERM and SIGINT make the node close its clients,
// log its shutdown and exit 0.
func TestSignalShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			n := startNode(t)
			// An idle client must not hold the shutdown up.
			nc, err := net.Dial("tcp", n.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write([]byte("PING\r\n")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 7)
			nc.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, err := nc.Read(buf); err != nil || string(buf) != "+PONG\r\n" {
				t.Fatalf("PING: %q, %v", buf, err)
			}
			if err := n.signalAndWait(sig); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
					// Seen when the signal comes right after the ready line:
					// cmd/engram logs "ready" (in node.Start) before it
					// installs its signal handler, so for a moment the
					// default action, death, applies.
					t.Fatalf("engram was killed by %v instead of shutting down: its signal handler was not installed yet although it had logged that it was ready\n%s", sig, n.log())
				}
				t.Fatalf("exit after %v: %v\n%s", sig, err, n.log())
			}
			log := n.log()
			for _, want := range []string{`msg="shutting down"`, `msg="engram node stopped"`} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %s:\n%s", want, log)
				}
			}
			// The server closed the client's connection.
			nc.SetReadDeadline(time.Now().Add(waitTimeout))
			if n, err := nc.Read(buf); err == nil {
				t.Errorf("client read %q after shutdown, want EOF", buf[:n])
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	if out := run(t, nil, engramBin, "version"); !regexp.MustCompile(`^engram \S+\n$`).MatchString(out) {
		t.Errorf("engram version: %q", out)
	}
	if out := run(t, nil, engramBin); !strings.Contains(out, "engram serve") {
		t.Errorf("engram with no arguments does not print help:\n%s", out)
	}
}
