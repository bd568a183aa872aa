package memnet_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/transport"
	"github.com/engramdb/engram/internal/transport/memnet"
)

// The behaviour shared with TCP is tested in package transport; these
// tests cover the faults.

// patience bounds every wait, so a broken network fails the test instead
// of hanging it; a healthy run never comes near it.
const patience = 20 * time.Second

// lost is the deadline of calls the test expects to be lost: a lost call
// fails only by its context, so the test waits this long for it.
const lost = 20 * time.Millisecond

func newNetwork(t *testing.T, seed int64) *memnet.Network {
	t.Logf("memnet seed %d", seed)
	return memnet.NewNetwork(seed)
}

func echo(_ context.Context, _ string, _ uint8, req []byte) ([]byte, error) { return req, nil }

// nodes attaches echo nodes at the given addresses, closed at cleanup.
func nodes(t *testing.T, w *memnet.Network, addrs ...string) map[string]transport.Transport {
	m := map[string]transport.Transport{}
	for _, a := range addrs {
		tr := w.Node(a, echo)
		t.Cleanup(func() { tr.Close() })
		m[a] = tr
	}
	return m
}

func call(t *testing.T, from transport.Transport, to string, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := from.Call(ctx, to, 1, []byte("ping"))
	if err == nil && string(resp) != "ping" {
		t.Fatalf("%s -> %s answered %q", from.Addr(), to, resp)
	}
	return err
}

func TestPartitionAndHeal(t *testing.T) {
	w := newNetwork(t, 1)
	n := nodes(t, w, "a", "b", "c")
	w.Partition([]string{"a"}, []string{"b", "c"})
	for _, l := range [][2]string{{"a", "b"}, {"b", "a"}, {"c", "a"}} {
		// Fails at once, like a refused connection: not by the deadline.
		if err := call(t, n[l[0]], l[1], patience); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("%s -> %s across the partition: err = %v, want ErrUnreachable", l[0], l[1], err)
		}
		if err := n[l[0]].Send(context.Background(), l[1], 1, nil); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("Send %s -> %s across the partition: err = %v, want ErrUnreachable", l[0], l[1], err)
		}
	}
	if err := call(t, n["b"], "c", patience); err != nil {
		t.Fatalf("b -> c on the same side: %v", err)
	}
	if err := call(t, n["a"], "a", patience); err != nil {
		t.Fatalf("a -> a: a node always reaches itself: %v", err)
	}
	w.Heal()
	for _, l := range [][2]string{{"a", "b"}, {"b", "a"}, {"c", "a"}} {
		if err := call(t, n[l[0]], l[1], patience); err != nil {
			t.Fatalf("%s -> %s after Heal: %v", l[0], l[1], err)
		}
	}
}

func TestPartitionBreaksWaitingCalls(t *testing.T) {
	w := newNetwork(t, 2)
	started := make(chan struct{})
	cancelled := make(chan struct{})
	b := w.Node("b", func(ctx context.Context, _ string, _ uint8, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	})
	t.Cleanup(func() { b.Close() })
	a := nodes(t, w, "a")["a"]
	errc := make(chan error, 1)
	go func() { errc <- call(t, a, "b", patience) }()
	<-started
	w.Partition([]string{"b"}, []string{"a"})
	if err := <-errc; !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call waiting across a new partition: err = %v, want ErrUnreachable", err)
	}
	select {
	case <-cancelled:
	case <-time.After(patience):
		t.Fatal("the handler's context was not cancelled when its link broke")
	}
}

func TestIsolate(t *testing.T) {
	w := newNetwork(t, 3)
	n := nodes(t, w, "a", "b")
	w.Isolate("a")
	late := nodes(t, w, "late")["late"] // attached after Isolate: still cut off
	for _, l := range []struct {
		from transport.Transport
		to   string
	}{{n["a"], "b"}, {n["b"], "a"}, {late, "a"}, {n["a"], "late"}} {
		if err := call(t, l.from, l.to, patience); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("%s -> %s with a isolated: err = %v, want ErrUnreachable", l.from.Addr(), l.to, err)
		}
	}
	if err := call(t, late, "b", patience); err != nil {
		t.Fatalf("late -> b: %v", err)
	}
	w.Heal()
	if err := call(t, late, "a", patience); err != nil {
		t.Fatalf("late -> a after Heal: %v", err)
	}
}

// delivered sends count one-way messages from a to b over a network with
// the given seed and drop rate, and returns which arrived.
func delivered(t *testing.T, seed int64, rate float64, count int) []int {
	w := newNetwork(t, seed)
	w.SetDropRate(rate)
	var mu sync.Mutex
	var got []int
	b := w.Node("b", func(_ context.Context, _ string, _ uint8, req []byte) ([]byte, error) {
		i, _ := strconv.Atoi(string(req))
		mu.Lock()
		got = append(got, i)
		mu.Unlock()
		return nil, nil
	})
	a := w.Node("a", echo)
	defer a.Close()
	for i := range count {
		if err := a.Send(context.Background(), "b", 0, []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	b.Close() // Waits for b's handlers, so got is complete.
	slices.Sort(got)
	return got
}

func TestDropRateIsSeeded(t *testing.T) {
	const count = 400
	first := delivered(t, 42, 0.3, count)
	again := delivered(t, 42, 0.3, count)
	other := delivered(t, 43, 0.3, count)
	if !slices.Equal(first, again) {
		t.Fatalf("the same seed lost different messages:\n%v\n%v", first, again)
	}
	if slices.Equal(first, other) {
		t.Fatal("different seeds lost exactly the same messages")
	}
	// 30% of 400: 280 expected; the bounds are many standard deviations wide.
	if n := len(first); n < 200 || n > 360 {
		t.Fatalf("%d of %d messages arrived at a 30%% drop rate", n, count)
	}
	if n := len(delivered(t, 42, 0, count)); n != count {
		t.Fatalf("%d of %d arrived with no drops", n, count)
	}
	if n := len(delivered(t, 42, 1, count)); n != 0 {
		t.Fatalf("%d of %d arrived at a 100%% drop rate", n, count)
	}
}

func TestDroppedCallFailsByItsContext(t *testing.T) {
	w := newNetwork(t, 5)
	n := nodes(t, w, "a", "b")
	w.SetDropRate(1)
	if err := call(t, n["a"], "b", lost); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lost call: err = %v, want context.DeadlineExceeded", err)
	}
	w.SetDropRate(0)
	if err := call(t, n["a"], "b", patience); err != nil {
		t.Fatalf("call with drops off: %v", err)
	}
}

func TestDelay(t *testing.T) {
	w := newNetwork(t, 6)
	n := nodes(t, w, "a", "b")
	w.SetDelay(time.Millisecond, 3*time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if err := call(t, n["a"], "b", patience); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("delayed call: %v", err)
	}
	// A message in flight when its link is cut is lost; the call fails
	// at once because the cut breaks it.
	w.SetDelay(time.Hour, time.Hour)
	errc := make(chan error, 1)
	go func() { errc <- call(t, n["a"], "b", patience) }()
	waitForInflight := func() bool { return w.Inflight() == 1 }
	deadline := time.Now().Add(patience)
	for !waitForInflight() {
		if time.Now().After(deadline) {
			t.Fatal("the call never went in flight")
		}
		time.Sleep(time.Millisecond)
	}
	w.Isolate("b")
	if err := <-errc; !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("delayed call cut by Isolate: err = %v, want ErrUnreachable", err)
	}
}

func TestFilters(t *testing.T) {
	w := newNetwork(t, 7)
	var served atomic.Int64
	var seen sync.Map
	b := w.Node("b", func(_ context.Context, _ string, kind uint8, req []byte) ([]byte, error) {
		served.Add(1)
		return append([]byte("re:"), req...), nil
	})
	t.Cleanup(func() { b.Close() })
	a := nodes(t, w, "a")["a"]
	w.SetFilter(func(from, to string, kind uint8, payload []byte) bool {
		seen.Store(fmt.Sprintf("%s>%s:%d:%s", from, to, kind, payload), true)
		return kind != 7
	})
	ctx, cancel := context.WithTimeout(context.Background(), lost)
	_, err := a.Call(ctx, "b", 7, []byte("chosen"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call whose request the filter drops: err = %v, want context.DeadlineExceeded", err)
	}
	if served.Load() != 0 {
		t.Fatal("the handler saw a request the filter dropped")
	}
	if _, ok := seen.Load("a>b:7:chosen"); !ok {
		t.Fatal("the filter did not see the request's from, to, kind and payload")
	}
	if resp, err := a.Call(context.Background(), "b", 1, []byte("other")); err != nil || string(resp) != "re:other" {
		t.Fatalf("call the filter passes = %q, %v", resp, err)
	}

	// A dropped response: the request ran, the caller never hears.
	w.SetFilter(nil)
	var respSeen atomic.Value
	w.SetResponseFilter(func(from, to string, kind uint8, payload []byte) bool {
		respSeen.Store(fmt.Sprintf("%s>%s:%d:%s", from, to, kind, payload))
		return false
	})
	before := served.Load()
	ctx, cancel = context.WithTimeout(context.Background(), lost)
	_, err = a.Call(ctx, "b", 3, []byte("ack me"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call whose response is dropped: err = %v, want context.DeadlineExceeded", err)
	}
	if served.Load() != before+1 {
		t.Fatal("the request whose response was dropped did not run")
	}
	if got := respSeen.Load(); got != "b>a:3:re:ack me" {
		t.Fatalf("the response filter saw %v", got)
	}
}

func TestKillAndRestart(t *testing.T) {
	w := newNetwork(t, 8)
	started := make(chan struct{})
	b := w.Node("b", func(ctx context.Context, _ string, _ uint8, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return []byte("too late"), nil
	})
	n := nodes(t, w, "a")
	errc := make(chan error, 1)
	go func() { errc <- call(t, n["a"], "b", patience) }()
	<-started
	w.Kill("b")
	if err := <-errc; !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call waiting on a killed node: err = %v, want ErrUnreachable", err)
	}
	if err := call(t, n["a"], "b", patience); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call to a killed node: err = %v, want ErrUnreachable", err)
	}
	if err := call(t, b, "a", patience); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("call from a killed node: err = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after Kill: %v", err)
	}

	b2 := w.Restart("b", func(context.Context, string, uint8, []byte) ([]byte, error) { return []byte("ping"), nil })
	t.Cleanup(func() { b2.Close() })
	if err := call(t, n["a"], "b", patience); err != nil {
		t.Fatalf("call to the restarted node: %v", err)
	}
	if err := call(t, b, "a", patience); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("the old Transport came back to life: err = %v", err)
	}
	// Restart of a live node is a crash and a restart.
	b3 := w.Restart("b", echo)
	t.Cleanup(func() { b3.Close() })
	if err := call(t, b2, "a", patience); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("call from the replaced node: err = %v, want ErrClosed", err)
	}
}

func TestNodeAddressInUsePanics(t *testing.T) {
	w := newNetwork(t, 9)
	nodes(t, w, "a")
	defer func() {
		if recover() == nil {
			t.Fatal("attaching a second node at a live address did not panic")
		}
	}()
	w.Node("a", echo)
}

func TestBadSettingsPanic(t *testing.T) {
	w := newNetwork(t, 10)
	for name, f := range map[string]func(){
		"drop rate above 1": func() { w.SetDropRate(1.5) },
		"negative rate":     func() { w.SetDropRate(-0.1) },
		"NaN rate":          func() { w.SetDropRate(nanFloat()) },
		"max below min":     func() { w.SetDelay(2*time.Millisecond, time.Millisecond) },
		"zero max frame":    func() { w.SetMaxFrame(0) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

func nanFloat() float64 {
	zero := 0.0
	return zero / zero
}
