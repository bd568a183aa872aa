package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/engramdb/engram/internal/resp"
)

// protocolErrorCases are inputs that are not valid RESP, each with the
// reply that must come back before the server closes the connection. Each
// input is complete: the server reads all of it before it can decide, so
// it never closes with unread bytes (which would reset the connection and
// could drop the reply).
func protocolErrorCases() []struct {
	name, input, want string
	redisToo          bool // Redis words it the same way
} {
	return []struct {
		name, input, want string
		redisToo          bool
	}{
		{"bulk length over the limit", "*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length", true},
		{"negative bulk length", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length", true},
		{"garbage bulk length", "*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length", true},
		{"garbage multibulk length", "*abc\r\n", "-ERR Protocol error: invalid multibulk length", true},
		{"multibulk length over int32", "*3000000000\r\n", "-ERR Protocol error: invalid multibulk length", true},
		{"missing dollar", "*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'", true},
		{"inline line over 64KB", strings.Repeat("a", 64<<10+1), "-ERR Protocol error: too big inline request", true},
		{"bulk count line over 64KB", "*1\r\n$" + strings.Repeat("1", 64<<10), "-ERR Protocol error: too big bulk count string", true},
		{"multibulk count line over 64KB", "*" + strings.Repeat("1", 64<<10), "-ERR Protocol error: too big mbulk count string", true},
		{"unbalanced double quotes", "SET k \"abc\r\n", "-ERR Protocol error: unbalanced quotes in request", true},
		{"unbalanced single quotes", "SET k 'abc\r\n", "-ERR Protocol error: unbalanced quotes in request", true},
		{"closing quote followed by a letter", "SET k \"a\"b\r\n", "-ERR Protocol error: unbalanced quotes in request", true},
		// Engram's own checks (docs/commands.md, "Limits").
		{"too many arguments", "*1048577\r\n", "-ERR Protocol error: too many arguments", false},
		{"bulk not followed by CRLF", "*1\r\n$3\r\nfooXY", "-ERR Protocol error: expected CRLF after bulk argument", false},
	}
}

// TestProtocolErrors checks that bad input gets Redis's error, the
// connection is closed, replies to the commands before it still arrive,
// and the data they wrote is intact.
func TestProtocolErrors(t *testing.T) {
	for _, tc := range protocolErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t)
			c := ts.dial(t)
			// A valid command in the same write as the bad input.
			c.write(append([]byte("SET before v\r\n"), tc.input...))
			if got := render(c.read()); got != "+OK" {
				t.Fatalf("reply to the SET before the bad input: %s, want +OK", got)
			}
			if got := render(c.read()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			c.expectClosed()
			ts.dial(t).must(`"v"`, "GET", "before")
		})
	}
}

// TestProtocolErrorsMatchRedis sends the same inputs to redis-server.
func TestProtocolErrorsMatchRedis(t *testing.T) {
	rs := startRedis(t)
	for _, tc := range protocolErrorCases() {
		if !tc.redisToo {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			c := rs.dial(t)
			c.write([]byte(tc.input))
			if got := render(c.read()); got != tc.want {
				t.Fatalf("redis-server replied %s, want %s", got, tc.want)
			}
			c.expectClosed()
		})
	}
}

// TestConfiguredLimits checks limits set in Options rather than Redis's
// defaults.
func TestConfiguredLimits(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) {
		c.opts.Limits = resp.Limits{MaxBulkLen: 1024, MaxArgs: 8, MaxInlineLen: 256}
	})
	for _, tc := range []struct{ name, input, want string }{
		{"bulk", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n", "-ERR Protocol error: invalid bulk length"},
		{"args", "*9\r\n", "-ERR Protocol error: too many arguments"},
		{"inline args", "MSET a 1 b 2 c 3 d 4\r\n", "-ERR Protocol error: too many arguments"},
		{"inline length", strings.Repeat("x", 257), "-ERR Protocol error: too big inline request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t)
			c.write([]byte(tc.input))
			if got := render(c.read()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			c.expectClosed()
		})
	}
	// At the limits everything works.
	c := ts.dial(t)
	c.must("+OK", "SET", "k", strings.Repeat("v", 1024))
	c.must("[(nil) (nil) (nil) (nil) (nil) (nil) (nil)]", "MGET", "a", "b", "c", "d", "e", "f", "g")
}

// TestCommandErrorsKeepTheConnection checks that an error reply to a
// well-formed command leaves the connection and the data alone.
func TestCommandErrorsKeepTheConnection(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	c.must("+OK", "SET", "k", "10")
	c.must("-ERR value is not an integer or out of range", "INCRBY", "k", "x")
	c.must("-ERR wrong number of arguments for 'get' command", "GET")
	c.must("-ERR unknown command 'NOPE', with args beginning with: ", "NOPE")
	c.must("-ERR syntax error", "SET", "k", "v", "NX", "XX")
	c.must(`"10"`, "GET", "k")
}

func TestInlineCommands(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	c.write([]byte("SET k \"a b\\x00\\r\\n\"\r\n\r\n   \r\nGET k\nAPPEND k 'c\\'d'\r\nGET k\r\n"))
	for _, want := range []string{"+OK", `"a b\x00\r\n"`, ":9", `"a b\x00\r\nc'd"`} {
		if got := render(c.read()); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}

func TestQuit(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	c.must("+OK", "SET", "k", "v")
	// Commands pipelined after QUIT are not run.
	c.write(append(encode("QUIT"), encode("SET", "k", "changed")...))
	if got := render(c.read()); got != "+OK" {
		t.Fatalf("QUIT: got %s, want +OK", got)
	}
	c.expectClosed()
	ts.dial(t).must(`"v"`, "GET", "k")
}

func TestIdleTimeoutClosesConnections(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.opts.IdleTimeout = 1 }) // 1ns: at once
	ts.dial(t).expectClosed()
}

func TestMaxClients(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.opts.MaxClients = 2 })
	a, b := ts.dial(t), ts.dial(t)
	// A reply proves the server has accepted and counted the connection.
	a.must("+PONG", "PING")
	b.must("+PONG", "PING")
	c := ts.dial(t)
	if got := render(c.read()); got != "-ERR max number of clients reached" {
		t.Fatalf("third client: got %s, want -ERR max number of clients reached", got)
	}
	c.expectClosed()
	if got := ts.srv.Stats().RejectedConnections; got != 1 {
		t.Errorf("RejectedConnections = %d, want 1", got)
	}
	// A slot frees when a client leaves.
	a.nc.Close()
	waitFor(t, "the server to notice the closed client", func() bool { return ts.srv.Stats().ConnectedClients == 1 })
	ts.dial(t).must("+PONG", "PING")
	b.must("+PONG", "PING")
}

// TestDeclaredHugeBulkDoesNotAllocate checks that a client announcing a
// 512 MiB argument and sending three bytes of it makes the server allocate
// about what arrived, not what was announced.
func TestDeclaredHugeBulkDoesNotAllocate(t *testing.T) {
	ts := startServer(t)
	const clients = 20
	header := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	in := ts.srv.Stats().NetInputBytes
	for range clients {
		ts.dial(t).write([]byte(header))
	}
	// Only once the server has read every header could it have allocated.
	waitFor(t, "the server to read the headers", func() bool {
		return ts.srv.Stats().NetInputBytes >= in+int64(clients*len(header))
	})
	runtime.GC()
	runtime.ReadMemStats(&after)
	if growth := int64(after.HeapAlloc) - int64(before.HeapAlloc); growth > 32<<20 {
		t.Fatalf("heap grew by %d MiB for %d clients that each declared 512 MiB and sent 3 bytes", growth>>20, clients)
	}
	ts.dial(t).must("+PONG", "PING")
}

// TestPipelineWithoutReadingIsBounded pipelines 100k GETs of a 1 KiB value
// (100 MiB of replies) and reads nothing. Over a net.Pipe, which buffers
// nothing, the server's first write blocks for good; by then it must have
// stopped reading and hold only a bounded amount of output. Then the
// client reads, and every reply must arrive.
func TestPipelineWithoutReadingIsBounded(t *testing.T) {
	var hooks writeHooks
	ln := newPipeListener()
	ln.wrap = func(c net.Conn) net.Conn { return hookedConn{c, &hooks} }
	startServer(t, func(c *serverConfig) { c.listener = ln })
	nc := ln.dial(t)
	defer nc.Close()
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	val := strings.Repeat("v", 1024)
	c.must("+OK", "SET", "k", val)

	const n = 100_000
	pipeline := bytes.Repeat(encode("GET", "k"), n)
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	writeDone := make(chan error, 1)
	go func() {
		_, err := nc.Write(pipeline)
		writeDone <- err
	}()
	waitFor(t, "a server write to block", func() bool { return hooks.started.Load() > hooks.done.Load() })
	read := hooks.read.Load()
	runtime.GC()
	runtime.ReadMemStats(&during)
	if growth := int64(during.HeapAlloc) - int64(before.HeapAlloc); growth > 16<<20 {
		t.Errorf("heap grew by %d MiB while the client did not read", growth>>20)
	}
	if read >= int64(len(pipeline)) {
		t.Errorf("the server read the whole %d-byte pipeline while its writes could not complete", len(pipeline))
	}

	want := fmt.Sprintf("$%d\r\n%s\r\n", len(val), val)
	buf := make([]byte, len(want))
	for i := range n {
		if _, err := io.ReadFull(c.br, buf); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if string(buf) != want {
			t.Fatalf("reply %d: got %q", i, buf)
		}
	}
	if err := <-writeDone; err != nil {
		t.Fatalf("writing the pipeline: %v", err)
	}
	c.must("+PONG", "PING")
}

// TestPipelineOverTCP pipelines 100k commands over TCP while reading
// concurrently: every reply arrives, in order.
func TestPipelineOverTCP(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	const n = 100_000
	var pipeline []byte
	for i := range n {
		if i%2 == 0 {
			pipeline = append(pipeline, encode("SET", fmt.Sprint("k", i), fmt.Sprint(i))...)
		} else {
			pipeline = append(pipeline, encode("GET", fmt.Sprint("k", i-1))...)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var writeErr error
	go func() {
		defer wg.Done()
		_, writeErr = c.nc.Write(pipeline)
	}()
	for i := range n {
		want := "+OK"
		if i%2 == 1 {
			want = fmt.Sprintf("%q", fmt.Sprint(i-1))
		}
		if got := render(c.read()); got != want {
			t.Fatalf("reply %d: got %s, want %s", i, got, want)
		}
	}
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	c.must(fmt.Sprintf(":%d", n/2), "DBSIZE")
}

// TestBinarySafeRoundTrip writes every byte value in keys and values.
func TestBinarySafeRoundTrip(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, kv := range [][2]string{
		{string(all), string(all)},
		{"\x00", "\x00"},
		{"\r\n", "\r\n$3\r\n*1\r\n"}, // looks like protocol
		{"\xff\xfe", strings.Repeat("\x00\xff", 5000)},
		{"empty", ""},
	} {
		c.must("+OK", "SET", kv[0], kv[1])
		c.must(fmt.Sprintf("%q", kv[1]), "GET", kv[0])
	}
	c.must(":5", "DBSIZE")
	c.must(fmt.Sprintf("[%q %q]", all, "\r\n$3\r\n*1\r\n"), "MGET", string(all), "\r\n")
}

// TestUnauthenticatedLimits: before AUTH, a client may only send small
// commands, so without the password nobody can make the node buffer big
// arguments; after AUTH the normal limits apply.
func TestUnauthenticatedLimits(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.opts.Password = "pw" })
	c := ts.dial(t)
	c.write([]byte("*2\r\n$3\r\nGET\r\n$100000\r\n"))
	if got := render(c.read()); !strings.Contains(got, "Protocol error") {
		t.Fatalf("big argument before AUTH: %s", got)
	}
	c.expectClosed()
	c = ts.dial(t)
	c.must("+OK", "AUTH", "pw")
	big := strings.Repeat("x", 100000)
	c.must("+OK", "SET", "k", big)
	if got := c.doS("STRLEN", "k"); got != ":100000" {
		t.Fatalf("STRLEN after AUTH: %s", got)
	}
	c.must("+RESET", "RESET")
	c.write([]byte("*2\r\n$3\r\nGET\r\n$100000\r\n"))
	if got := render(c.read()); !strings.Contains(got, "Protocol error") {
		t.Fatalf("big argument after RESET: %s", got)
	}
}
