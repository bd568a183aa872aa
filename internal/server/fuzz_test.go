package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/store"
)

// fuzzSeeds are real client sessions (what redis-cli, redis-benchmark and
// go-redis send) and the awkward corners, for the fuzzer to mutate.
func fuzzSeeds() []string {
	return []string{
		string(encode("PING")),
		string(encode("SET", "key:000000000001", "xxx")) + string(encode("GET", "key:000000000001")),
		string(encode("HELLO", "3")) + string(encode("CLIENT", "SETINFO", "LIB-NAME", "go-redis")) +
			string(encode("MGET", "a", "b")) + string(encode("GET", "nokey")),
		string(encode("SET", "k", "v", "EX", "10", "NX", "GET")) + string(encode("GETEX", "k", "PERSIST")),
		string(encode("MSET", "a", "1", "b", "2")) + string(encode("INCRBYFLOAT", "a", "1.5")) +
			string(encode("SETRANGE", "b", "10", "x")) + string(encode("GETRANGE", "b", "-3", "-1")),
		string(encode("SELECT", "users")) + string(encode("SETSEQ", "5", "k", "v")) +
			string(encode("DELSEQ", "4", "k")) + string(encode("SEQUENCES")),
		string(encode("PUTALL", "10", "a", "1", "b", "2")) + string(encode("GETALL", "a", "b", "c")) +
			string(encode("REMOVEITEMS", "a")) + string(encode("SETMAXTTL", "1")) + string(encode("EVICTSINCE", "0")),
		string(encode("SCAN", "0", "MATCH", "a*", "COUNT", "5")) + string(encode("KEYS", "h[ae]llo")),
		string(encode("CONFIG", "GET", "*")) + string(encode("INFO")) + string(encode("CLIENT", "LIST")) +
			string(encode("COMMAND", "COUNT")),
		"PING\r\nSET k \"a b\\x41\\n\" 'it\\'s'\r\nGET k\nQUIT\r\n",
		"*1\r\n$536870912\r\nabc",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$-1\r\n",
		"*2\r\n$3\r\nGET\r\n$1\r\nkXY",
		"SET k \"abc\r\n",
		"*0\r\n*-1\r\n\r\n\n" + string(encode("ECHO", "\x00\r\n\xff")),
		string(encode("AUTH", "x")) + string(encode("HELLO", "3", "AUTH", "default", "x", "SETNAME", "n")) + string(encode("RESET")),
	}
}

// FuzzServer feeds arbitrary bytes to a server as one client's stream and
// checks that no command panics and that the server still serves others
// afterwards and shuts down cleanly.
func FuzzServer(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bugs := &bugLog{}
		st, err := store.New(store.Options{Partitions: 7, MaxMaps: 16, MaxValueLen: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		// Small limits, so that the fuzzer reaches them.
		srv, err := New(Options{Store: st, Logger: slog.New(bugs),
			Limits: resp.Limits{MaxBulkLen: 4096, MaxArgs: 64, MaxInlineLen: 1024, MaxQueryBuf: 64 << 10}})
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()

		// The client writes the input and then hangs up, while a reader
		// drains the replies (a pipe has no buffer: unread replies would
		// block the server).
		nc := ln.dial(t)
		drained := make(chan struct{})
		go func() {
			io.Copy(io.Discard, nc)
			close(drained)
		}()
		nc.SetDeadline(time.Now().Add(ioTimeout))
		nc.Write(data) // fails if the server closed first (QUIT, protocol error): fine
		nc.Close()
		<-drained

		// Another client is served normally.
		c2 := ln.dial(t)
		c := &client{t: t, nc: c2, br: bufio.NewReader(c2)}
		c.must("+PONG", "PING")
		c.must(`"x\x00y"`, "ECHO", "x\x00y")
		c2.Close()

		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Fatalf("Close: %v (a connection goroutine did not end)", err)
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if msg := bugs.String(); msg != "" {
			t.Fatalf("the server logged a bug:\n%s", msg)
		}
	})
}

// bugLog is a slog.Handler that keeps error records: the server logs a
// recovered panic at error level, which a fuzz run must treat as a crash.
type bugLog struct {
	mu   sync.Mutex
	msgs []string
}

func (b *bugLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (b *bugLog) WithAttrs([]slog.Attr) slog.Handler           { return b }
func (b *bugLog) WithGroup(string) slog.Handler                { return b }

func (b *bugLog) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		sb.WriteString(" " + a.String())
		return true
	})
	b.mu.Lock()
	b.msgs = append(b.msgs, sb.String())
	b.mu.Unlock()
	return nil
}

func (b *bugLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.msgs, "\n")
}
