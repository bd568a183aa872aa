package server

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// scanAll runs a full SCAN iteration with the given options and returns
// how many times each key came back.
func scanAll(t *testing.T, c *client, opts ...string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	cursor := "0"
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("SCAN did not finish")
		}
		v := c.do(append([]string{"SCAN", cursor}, opts...)...)
		if v.Kind != '*' || len(v.Elems) != 2 {
			t.Fatalf("SCAN %s: got %s", cursor, render(v))
		}
		for _, k := range v.Elems[1].Elems {
			seen[string(k.Str)]++
		}
		cursor = string(v.Elems[0].Str)
		if cursor == "0" {
			return seen
		}
	}
}

func TestScanFullIteration(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	const n = 1000
	for i := range n {
		c.must("+OK", "SET", fmt.Sprint("key:", i), "v")
	}
	for _, count := range []string{"1", "7", "10", "1000", "100000"} {
		seen := scanAll(t, c, "COUNT", count)
		if len(seen) != n {
			t.Errorf("COUNT %s: %d distinct keys, want %d", count, len(seen), n)
		}
		for k, times := range seen {
			if times != 1 {
				t.Errorf("COUNT %s: %s returned %d times", count, k, times)
			}
		}
	}
	// MATCH filters: key:1, key:10..19, key:100..199.
	seen := scanAll(t, c, "MATCH", "key:1*", "COUNT", "5")
	if len(seen) != 111 {
		t.Errorf("MATCH key:1*: %d keys, want 111", len(seen))
	}
	for k := range seen {
		if !strings.HasPrefix(k, "key:1") {
			t.Errorf("MATCH key:1* returned %q", k)
		}
	}
	if seen := scanAll(t, c, "TYPE", "string"); len(seen) != n {
		t.Errorf("TYPE string: %d keys, want %d", len(seen), n)
	}
	if seen := scanAll(t, c, "TYPE", "list"); len(seen) != 0 {
		t.Errorf("TYPE list: %d keys, want none", len(seen))
	}
}

// TestScanWhileWriting checks Redis's SCAN guarantee (and Engram's
// stronger one): a key present for the whole iteration is returned, and
// Engram returns it exactly once, while other keys come and go.
func TestScanWhileWriting(t *testing.T) {
	ts := startServer(t)
	c, w := ts.dial(t), ts.dial(t)
	const n = 500
	for i := range n {
		c.must("+OK", "SET", fmt.Sprint("stay:", i), "v")
	}
	seen := map[string]int{}
	cursor, step := "0", 0
	for {
		// Between every two SCAN calls, add some keys and remove others.
		for j := range 5 {
			w.must("+OK", "SET", fmt.Sprint("new:", step, ":", j), "v")
			w.do("DEL", fmt.Sprint("new:", step-1, ":", j))
		}
		step++
		v := c.do("SCAN", cursor, "COUNT", "3")
		for _, k := range v.Elems[1].Elems {
			seen[string(k.Str)]++
		}
		if cursor = string(v.Elems[0].Str); cursor == "0" {
			break
		}
	}
	for i := range n {
		if k := fmt.Sprint("stay:", i); seen[k] != 1 {
			t.Errorf("%s returned %d times, want once", k, seen[k])
		}
	}
}

// TestMapsAreIsolated checks that connections on different maps (SELECT)
// do not see each other's keys, and that the selection is per connection.
func TestMapsAreIsolated(t *testing.T) {
	ts := startServer(t)
	a, b := ts.dial(t), ts.dial(t)
	a.must("+OK", "SELECT", "orders")
	a.must("+OK", "SET", "k", "order")
	b.must("(nil)", "GET", "k") // b is still on "0"
	b.must("+OK", "SET", "k", "default")
	a.must(`"order"`, "GET", "k")
	b.must("+OK", "SELECT", "orders")
	b.must(`"order"`, "GET", "k")
	b.must(":1", "DEL", "k")
	a.must("(nil)", "GET", "k")
	a.must("+OK", "SELECT", "0")
	a.must(`"default"`, "GET", "k")
	a.must(":1", "DBSIZE")
	a.must("+OK", "FLUSHDB")
	b.must("+OK", "SET", "x", "1")
	b.must(":1", "DBSIZE")
}

func TestSelectRefusesTooManyMaps(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.storeOpts.MaxMaps = 3 })
	c := ts.dial(t)
	c.must("+OK", "SELECT", "0") // the default map counts
	c.must("+OK", "SELECT", "a")
	c.must("+OK", "SELECT", "b")
	c.must("-ERR too many maps: 3 maps exist, the limit is 3", "SELECT", "c")
	c.must("+OK", "SELECT", "a")
	c.must("+OK", "SET", "still", "on a")
	c.must(`"on a"`, "GET", "still")
}

func TestKeyTooLong(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.storeOpts.MaxKeyLen = 8 })
	c := ts.dial(t)
	c.must("-ERR key too long: 9 bytes, the limit is 8", "SET", "123456789", "v")
	c.must("-ERR key too long: 9 bytes, the limit is 8", "INCR", "123456789")
	c.must("+OK", "SET", "12345678", "v")
	c.must(":1", "DBSIZE")
}

// TestClientListWhileOthersChange runs CLIENT LIST while other connections
// change what it reports; the race detector checks the locking.
func TestClientListWhileOthersChange(t *testing.T) {
	ts := startServer(t)
	const rounds = 200
	var wg sync.WaitGroup
	for g := range 3 {
		c := ts.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				name := fmt.Sprintf("c%d-%d", g, i)
				for _, cmd := range [][]string{
					{"CLIENT", "SETNAME", name},
					{"SELECT", name},
					{"HELLO", strconv.Itoa(2 + i%2)},
					{"CLIENT", "SETINFO", "LIB-NAME", name},
					{"RESET"},
				} {
					if v := c.do(cmd...); v.Kind == '-' {
						t.Errorf("%v: %s", cmd, v.Str)
						return
					}
				}
			}
		}()
	}
	l := ts.dial(t)
	for range rounds {
		v := l.do("CLIENT", "LIST")
		lines := strings.Split(strings.TrimSuffix(string(v.Str), "\n"), "\n")
		if len(lines) < 1 || len(lines) > 4 {
			t.Fatalf("CLIENT LIST has %d lines:\n%s", len(lines), v.Str)
		}
		for _, line := range lines {
			if !strings.HasPrefix(line, "id=") || strings.Count(line, "=") != 10 {
				t.Fatalf("malformed CLIENT LIST line %q", line)
			}
		}
	}
	wg.Wait()
}

// TestCommandListing checks that COMMAND, COMMAND LIST, COMMAND COUNT and
// COMMAND INFO agree with the command table.
func TestCommandListing(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	want := len(commandTable())
	c.must(fmt.Sprintf(":%d", want), "COMMAND", "COUNT")
	list := c.do("COMMAND", "LIST")
	if len(list.Elems) != want {
		t.Fatalf("COMMAND LIST has %d names, want %d", len(list.Elems), want)
	}
	all := c.do("COMMAND")
	if len(all.Elems) != want {
		t.Fatalf("COMMAND has %d entries, want %d", len(all.Elems), want)
	}
	for i, name := range list.Elems {
		info := c.do("COMMAND", "INFO", string(name.Str))
		if len(info.Elems) != 1 || len(info.Elems[0].Elems) != 10 || string(info.Elems[0].Elems[0].Str) != string(name.Str) {
			t.Errorf("COMMAND INFO %s: %s", name.Str, render(info))
		}
		if got := string(all.Elems[i].Elems[0].Str); got != string(name.Str) {
			t.Errorf("COMMAND entry %d is %q, COMMAND LIST says %q", i, got, name.Str)
		}
	}
}

// TestStatsCount checks the counters INFO and metrics are built on.
func TestStatsCount(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	c.must("+OK", "SET", "k", "v")
	c.must(`"v"`, "GET", "k")
	c.must("-ERR value is not an integer or out of range", "INCR", "k")
	st := ts.srv.Stats()
	if got := st.Commands["set"]; got.Calls != 1 || got.Errors != 0 {
		t.Errorf("set stats = %+v, want 1 call, 0 errors", got)
	}
	if got := st.Commands["incr"]; got.Calls != 1 || got.Errors != 1 {
		t.Errorf("incr stats = %+v, want 1 call, 1 error", got)
	}
	if st.ConnectedClients != 1 || st.TotalConnections != 1 {
		t.Errorf("clients: %d connected, %d total; want 1 and 1", st.ConnectedClients, st.TotalConnections)
	}
	if st.NetInputBytes == 0 || st.NetOutputBytes == 0 {
		t.Errorf("net bytes in/out = %d/%d, want both counted", st.NetInputBytes, st.NetOutputBytes)
	}
	c.must("+OK", "CONFIG", "RESETSTAT")
	if got := ts.srv.Stats().Commands["set"]; got.Calls != 0 {
		t.Errorf("after CONFIG RESETSTAT, set stats = %+v", got)
	}
}

// TestCacheNodesFromOptions checks that CACHENODES reports the cluster's
// view when the node supplies one.
func TestCacheNodesFromOptions(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) {
		c.opts.Nodes = func() ([]string, []string) { return []string{"a:1"}, []string{"a:1", "b:2"} }
	})
	ts.dial(t).must(`["active" ["a:1"] "configured" ["a:1" "b:2"]]`, "CACHENODES")
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a store: no error")
	}
	ts := startServer(t)
	if _, err := New(Options{Store: ts.st, MaxClients: -1}); err == nil {
		t.Error("New with MaxClients -1: no error")
	}
}
