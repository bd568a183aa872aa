package transport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/transport"
	"github.com/engramdb/engram/internal/transport/memnet"
)

// The behaviour every Transport must have, run against TCP and memnet.

// testMaxFrame is the frame limit of the suite's transports: small, so
// "near the limit" payloads are quick to move under -race.
const testMaxFrame = 1 << 20

// patience bounds every wait in these tests, so a broken transport fails
// the test instead of hanging it. It is a safety net, not a timing
// assertion: a healthy run never comes near it.
const patience = 20 * time.Second

var testSecret = []byte("engram transport test secret")

// env makes the nodes of one test on one implementation.
type env interface {
	// node starts a node serving with h; the test closes it at cleanup.
	node(t *testing.T, h transport.Handler) transport.Transport
	// kill crashes the node tr (it stops serving; its connections break).
	kill(t *testing.T, tr transport.Transport)
	// restart starts a node serving with h at addr, where a killed node was.
	restart(t *testing.T, addr string, h transport.Handler) transport.Transport
	// deadAddr returns an address where no node listens.
	deadAddr(t *testing.T) string
}

type tcpEnv struct{}

func (tcpEnv) node(t *testing.T, h transport.Handler) transport.Transport {
	return startTCP(t, transport.TCPOptions{Handler: h})
}

func (tcpEnv) kill(t *testing.T, tr transport.Transport) {
	if err := tr.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func (tcpEnv) restart(t *testing.T, addr string, h transport.Handler) transport.Transport {
	return startTCP(t, transport.TCPOptions{ListenAddr: addr, Handler: h})
}

func (tcpEnv) deadAddr(t *testing.T) string {
	tr := startTCP(t, transport.TCPOptions{Handler: echo})
	addr := tr.Addr()
	tr.Close()
	return addr
}

// startTCP starts a TCP transport on 127.0.0.1:0 with the suite's secret
// and frame limit unless opts says otherwise, closed at cleanup.
func startTCP(t testing.TB, opts transport.TCPOptions) *transport.TCP {
	t.Helper()
	if opts.Secret == nil {
		opts.Secret = testSecret
	}
	if opts.MaxFrame == 0 {
		opts.MaxFrame = testMaxFrame
	}
	tr, err := transport.NewTCP(opts)
	if err != nil {
		t.Fatalf("NewTCP: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

type memEnv struct {
	net *memnet.Network
	n   *atomic.Int64
}

func newMemEnv(t *testing.T) memEnv {
	seed := time.Now().UnixNano()
	t.Logf("memnet seed %d", seed)
	w := memnet.NewNetwork(seed)
	w.SetMaxFrame(testMaxFrame)
	return memEnv{net: w, n: new(atomic.Int64)}
}

func (e memEnv) node(t *testing.T, h transport.Handler) transport.Transport {
	tr := e.net.Node("node-"+strconv.FormatInt(e.n.Add(1), 10), h)
	t.Cleanup(func() { tr.Close() })
	return tr
}

func (e memEnv) kill(t *testing.T, tr transport.Transport) { e.net.Kill(tr.Addr()) }

func (e memEnv) restart(t *testing.T, addr string, h transport.Handler) transport.Transport {
	tr := e.net.Restart(addr, h)
	t.Cleanup(func() { tr.Close() })
	return tr
}

func (e memEnv) deadAddr(t *testing.T) string { return "nobody-" + strconv.FormatInt(e.n.Add(1), 10) }

// forEach runs test against each implementation.
func forEach(t *testing.T, test func(t *testing.T, e env)) {
	t.Run("tcp", func(t *testing.T) { test(t, tcpEnv{}) })
	t.Run("memnet", func(t *testing.T) { test(t, newMemEnv(t)) })
}

// echo answers with the request.
func echo(_ context.Context, _ string, _ uint8, req []byte) ([]byte, error) { return req, nil }

// refuse is the handler of nodes that only call.
func refuse(context.Context, string, uint8, []byte) ([]byte, error) {
	return nil, errors.New("this node serves no requests")
}

// withTimeout returns a context bounded by d, cancelled at cleanup.
func withTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEcho(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		client := e.node(t, refuse)
		var gotFrom atomic.Value
		server := e.node(t, func(_ context.Context, from string, kind uint8, req []byte) ([]byte, error) {
			gotFrom.Store(from)
			return append([]byte{kind}, req...), nil
		})
		ctx := withTimeout(t, patience)
		for _, req := range [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{0, 255}, 1000)} {
			resp, err := client.Call(ctx, server.Addr(), 42, req)
			if err != nil {
				t.Fatalf("Call(%d bytes): %v", len(req), err)
			}
			if want := append([]byte{42}, req...); !bytes.Equal(resp, want) {
				t.Fatalf("Call(%d bytes) = %d bytes %q..., want %d bytes", len(req), len(resp), resp[:min(8, len(resp))], len(want))
			}
		}
		if from := gotFrom.Load(); from != client.Addr() {
			t.Fatalf("handler saw from = %v, want the caller's address %s", from, client.Addr())
		}
		// The empty response arrives empty.
		resp, err := client.Call(ctx, server.Addr(), 0, nil)
		if err != nil || len(resp) != 1 {
			t.Fatalf("Call(nil) = %q, %v; want the kind byte alone", resp, err)
		}
	})
}

func TestConcurrentCallsMatchTheirResponses(t *testing.T) {
	const goroutines, perG = 20, 50
	const total = goroutines * perG
	forEach(t, func(t *testing.T, e env) {
		// Every handler waits until all requests have arrived, so all
		// 1000 are in flight at once and responses return out of order.
		var arrived atomic.Int64
		all := make(chan struct{})
		server := e.node(t, func(ctx context.Context, _ string, kind uint8, req []byte) ([]byte, error) {
			if arrived.Add(1) == total {
				close(all)
			}
			select {
			case <-all:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []byte(fmt.Sprintf("%d:%s", kind, req)), nil
		})
		client := e.node(t, refuse)
		ctx := withTimeout(t, patience)
		var wg sync.WaitGroup
		errs := make(chan error, total)
		for g := range goroutines {
			for i := range perG {
				wg.Go(func() {
					req := fmt.Sprintf("g%d-i%d", g, i)
					kind := uint8(g*perG + i)
					resp, err := client.Call(ctx, server.Addr(), kind, []byte(req))
					if err != nil {
						errs <- fmt.Errorf("call %s: %w", req, err)
						return
					}
					if want := fmt.Sprintf("%d:%s", kind, req); string(resp) != want {
						errs <- fmt.Errorf("call %s got %q, want %q", req, resp, want)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestLargePayloads(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		server := e.node(t, func(_ context.Context, _ string, kind uint8, req []byte) ([]byte, error) {
			if kind == 1 {
				return make([]byte, testMaxFrame+1), nil
			}
			return req, nil
		})
		client := e.node(t, refuse)
		ctx := withTimeout(t, patience)

		big := make([]byte, testMaxFrame)
		for i := range big {
			big[i] = byte(i * 7)
		}
		resp, err := client.Call(ctx, server.Addr(), 0, big)
		if err != nil {
			t.Fatalf("Call with a payload of exactly MaxFrame: %v", err)
		}
		if !bytes.Equal(resp, big) {
			t.Fatalf("payload of MaxFrame bytes came back altered")
		}

		_, err = client.Call(ctx, server.Addr(), 0, make([]byte, testMaxFrame+1))
		if !errors.Is(err, transport.ErrTooLarge) {
			t.Fatalf("Call over MaxFrame: err = %v, want ErrTooLarge", err)
		}
		if err := client.Send(ctx, server.Addr(), 0, make([]byte, testMaxFrame+1)); !errors.Is(err, transport.ErrTooLarge) {
			t.Fatalf("Send over MaxFrame: err = %v, want ErrTooLarge", err)
		}
		_, err = client.Call(ctx, server.Addr(), 1, []byte("make it big"))
		if !errors.Is(err, transport.ErrTooLarge) {
			t.Fatalf("response over MaxFrame: err = %v, want ErrTooLarge", err)
		}
		// Nothing above broke the link.
		if resp, err := client.Call(ctx, server.Addr(), 0, []byte("still there")); err != nil || string(resp) != "still there" {
			t.Fatalf("Call after oversized messages = %q, %v", resp, err)
		}
	})
}

func TestRemoteError(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		server := e.node(t, func(context.Context, string, uint8, []byte) ([]byte, error) {
			return []byte("ignored"), fmt.Errorf("no map named %q", "sessions")
		})
		client := e.node(t, refuse)
		_, err := client.Call(withTimeout(t, patience), server.Addr(), 3, []byte("x"))
		var re *transport.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("err = %v (%T), want a *RemoteError", err, err)
		}
		if want := `no map named "sessions"`; re.Msg != want {
			t.Fatalf("RemoteError.Msg = %q, want %q", re.Msg, want)
		}
		if errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("a handler's error must not read as ErrUnreachable: %v", err)
		}
	})
}

func TestSend(t *testing.T) {
	type msg struct {
		from string
		kind uint8
		body string
	}
	forEach(t, func(t *testing.T, e env) {
		got := make(chan msg, 10)
		server := e.node(t, func(_ context.Context, from string, kind uint8, req []byte) ([]byte, error) {
			got <- msg{from, kind, string(req)}
			return []byte("discarded"), errors.New("also discarded")
		})
		client := e.node(t, refuse)
		ctx := withTimeout(t, patience)
		buf := []byte("unsafe set k v")
		if err := client.Send(ctx, server.Addr(), 9, buf); err != nil {
			t.Fatalf("Send: %v", err)
		}
		copy(buf, "XXXXXX") // The caller may reuse its buffer at once.
		select {
		case m := <-got:
			if (m != msg{client.Addr(), 9, "unsafe set k v"}) {
				t.Fatalf("handler got %+v", m)
			}
		case <-ctx.Done():
			t.Fatal("the one-way message never arrived")
		}
		if err := client.Send(ctx, e.deadAddr(t), 9, buf); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("Send to a dead address: err = %v, want ErrUnreachable", err)
		}
	})
}

func TestCallDeadlineCancelsHandler(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		cancelled := make(chan struct{})
		server := e.node(t, func(ctx context.Context, _ string, _ uint8, _ []byte) ([]byte, error) {
			<-ctx.Done()
			close(cancelled)
			return nil, ctx.Err()
		})
		client := e.node(t, refuse)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := client.Call(ctx, server.Addr(), 0, []byte("slow"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		// The caller gave up, so the handler's context ends too.
		select {
		case <-cancelled:
		case <-time.After(patience):
			t.Fatal("the handler's context was never cancelled after the caller gave up")
		}
	})
}

func TestCallDeadlineWithHandlerThatNeverReturns(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		release := make(chan struct{})
		server := e.node(t, func(context.Context, string, uint8, []byte) ([]byte, error) {
			<-release // Ignores its context.
			return nil, nil
		})
		client := e.node(t, refuse)
		// Registered after the nodes, so it runs before their Close, which
		// waits for handlers.
		t.Cleanup(func() { close(release) })
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			_, err := client.Call(ctx, server.Addr(), 0, nil)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want context.DeadlineExceeded", err)
			}
		}
		// Cancellation works the same way as a deadline.
		ctx, cancel := context.WithCancel(context.Background())
		go func() { cancel() }()
		if _, err := client.Call(ctx, server.Addr(), 0, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestPeerKilledMidCall(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		var started atomic.Int64
		stuck := func(ctx context.Context, _ string, _ uint8, _ []byte) ([]byte, error) {
			started.Add(1)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		server := e.node(t, stuck)
		addr := server.Addr()
		client := e.node(t, refuse)

		const calls = 10
		errs := make(chan error, calls)
		for range calls {
			go func() {
				_, err := client.Call(withTimeout(t, patience), addr, 0, []byte("x"))
				errs <- err
			}()
		}
		waitFor(t, "every call to reach the handler", func() bool { return started.Load() == calls })
		e.kill(t, server)
		for range calls {
			if err := <-errs; !errors.Is(err, transport.ErrUnreachable) {
				t.Fatalf("pending call: err = %v, want ErrUnreachable", err)
			}
		}
		// Until a node is back, calls fail at once, never by the deadline.
		_, err := client.Call(withTimeout(t, patience), addr, 0, nil)
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("call to the dead node: err = %v, want ErrUnreachable", err)
		}

		restarted := e.restart(t, addr, echo)
		if restarted.Addr() != addr {
			t.Fatalf("restarted at %s, want %s", restarted.Addr(), addr)
		}
		// The client redials (after its backoff) without help.
		var resp []byte
		waitFor(t, "a call to the restarted node to succeed", func() bool {
			resp, err = client.Call(withTimeout(t, patience), addr, 0, []byte("back"))
			if err != nil && !errors.Is(err, transport.ErrUnreachable) {
				t.Fatalf("call to the restarting node: %v", err)
			}
			return err == nil
		})
		if string(resp) != "back" {
			t.Fatalf("restarted node answered %q", resp)
		}
	})
}

func TestClosedTransport(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		started := make(chan struct{})
		server := e.node(t, func(ctx context.Context, _ string, _ uint8, req []byte) ([]byte, error) {
			if string(req) == "wait" {
				close(started)
				<-ctx.Done()
			}
			return req, nil
		})
		client := e.node(t, refuse)
		ctx := withTimeout(t, patience)
		if _, err := client.Call(ctx, server.Addr(), 0, nil); err != nil {
			t.Fatalf("Call: %v", err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := client.Call(ctx, server.Addr(), 0, []byte("wait"))
			errc <- err
		}()
		<-started
		if err := client.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-errc; !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("call pending at Close: err = %v, want ErrClosed", err)
		}
		if _, err := client.Call(ctx, server.Addr(), 0, nil); !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Call after Close: err = %v, want ErrClosed", err)
		}
		if err := client.Send(ctx, server.Addr(), 0, nil); !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Send after Close: err = %v, want ErrClosed", err)
		}
		if err := client.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func TestCloseWaitsForHandlers(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		started := make(chan struct{})
		var finished atomic.Bool
		server := e.node(t, func(ctx context.Context, _ string, _ uint8, _ []byte) ([]byte, error) {
			close(started)
			<-ctx.Done()
			finished.Store(true)
			return nil, nil
		})
		client := e.node(t, refuse)
		go client.Call(withTimeout(t, patience), server.Addr(), 0, nil)
		<-started
		server.Close()
		if !finished.Load() {
			t.Fatal("Close returned while a handler was still running")
		}
	})
}

func TestUnreachable(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		client := e.node(t, refuse)
		_, err := client.Call(withTimeout(t, patience), e.deadAddr(t), 0, nil)
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("err = %v, want ErrUnreachable", err)
		}
	})
}
