package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/store"
)

var bg = context.Background()

func take(s *Subscriber) []Message { return s.Take(nil) }

func render(ms []Message) []string {
	var out []string
	for _, m := range ms {
		if m.Pattern != "" {
			out = append(out, fmt.Sprintf("%s|%s=%s", m.Pattern, m.Channel, m.Payload))
		} else {
			out = append(out, fmt.Sprintf("%s=%s", m.Channel, m.Payload))
		}
	}
	return out
}

func TestTopicsAndPatterns(t *testing.T) {
	h := New(Options{})
	a, b := h.NewSubscriber(nil), h.NewSubscriber(nil)
	if got := a.Subscribe(bg, "news", "sport", "news"); !slices.Equal(got, []int{1, 2, 2}) {
		t.Fatalf("subscribe counts %v", got)
	}
	if got := b.PSubscribe(bg, "n*", "*"); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("psubscribe counts %v", got)
	}
	n, err := h.Publish(bg, "news", []byte("hi"))
	if err != nil || n != 3 {
		t.Fatalf("publish news = %d, %v; want 3 receivers (a, and b twice)", n, err)
	}
	if n, _ := h.Publish(bg, "weather", []byte("rain")); n != 1 {
		t.Fatalf("publish weather = %d, want 1", n)
	}
	if got := render(take(a)); !slices.Equal(got, []string{"news=hi"}) {
		t.Fatalf("a got %v", got)
	}
	got := render(take(b))
	want := []string{"n*|news=hi", "*|news=hi", "*|weather=rain"}
	if !slices.Equal(got, want) {
		t.Fatalf("b got %v, want %v", got, want)
	}
	if _, err := h.Publish(bg, "__engram@m__:write:k", []byte("x")); !errors.Is(err, ErrReserved) {
		t.Fatalf("publish on an event channel: %v", err)
	}
	if got := h.ActiveChannels(""); !slices.Equal(got, []string{"news", "sport"}) {
		t.Fatalf("channels %v", got)
	}
	if got := h.ActiveChannels("s*"); !slices.Equal(got, []string{"sport"}) {
		t.Fatalf("channels s* %v", got)
	}
	if h.NumSub("news") != 1 || h.NumSub("nope") != 0 || h.NumPat() != 2 {
		t.Fatalf("numsub %d numpat %d", h.NumSub("news"), h.NumPat())
	}
	names, counts := a.Unsubscribe(bg)
	if !slices.Equal(names, []string{"news", "sport"}) || !slices.Equal(counts, []int{1, 0}) {
		t.Fatalf("unsubscribe all: %v %v", names, counts)
	}
	if n, _ := h.Publish(bg, "news", []byte("again")); n != 2 {
		t.Fatalf("after unsubscribe: %d receivers, want 2", n)
	}
	names, counts = b.PUnsubscribe(bg, "*", "nothing")
	if !slices.Equal(names, []string{"*", "nothing"}) || !slices.Equal(counts, []int{1, 1}) {
		t.Fatalf("punsubscribe: %v %v", names, counts)
	}
	b.Close()
	if st := h.Stats(); st.Subscribers != 1 || st.Patterns != 0 || st.Channels != 0 {
		t.Fatalf("stats after close: %+v", st)
	}
}

// mapEvents drives a real store with the hub as its observer.
func newStore(t *testing.T, h *Hub, o store.Options) (*store.Store, *int64) {
	t.Helper()
	now := int64(1_700_000_000_000)
	o.Observer = h
	o.Partitions = 7
	o.Clock = func() int64 { return now }
	st, err := store.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, &now
}

func TestMapEventsEveryReason(t *testing.T) {
	h := New(Options{})
	var mu sync.Mutex
	now := int64(1_700_000_000_000)
	clock := func() int64 { mu.Lock(); defer mu.Unlock(); return now }
	st, err := store.New(store.Options{Observer: h, Partitions: 7, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, _ := st.OpenMap("users")
	other, _ := st.OpenMap("other")

	one := h.NewSubscriber(nil)
	one.Subscribe(bg, MapChannel("users", Write, "k1"), MapChannel("users", Delete, "k1"))
	all := h.NewSubscriber(nil)
	all.PSubscribe(bg, MapPattern("users", ""))
	dels := h.NewSubscriber(nil)
	dels.PSubscribe(bg, MapPattern("users", Delete))
	topicsOnly := h.NewSubscriber(nil)
	topicsOnly.PSubscribe(bg, "*")

	m.Set([]byte("k1"), []byte("v1"), store.SetOptions{})
	m.Set([]byte("k2"), []byte("v2"), store.SetOptions{})
	other.Set([]byte("k1"), []byte("x"), store.SetOptions{})
	m.Delete([]byte("k1"))
	// Expiry: k3 expires by its TTL; the sweeper removes it once the
	// clock passed.
	m.Set([]byte("k3"), []byte("v3"), store.SetOptions{ExpireAt: now + 1000})
	mu.Lock()
	now += 2000
	mu.Unlock()
	if n := st.Sweep(bg); n != 1 {
		t.Fatalf("sweep removed %d keys, want k3", n)
	}
	// Clear (reported) and silent clear (not reported).
	m.Set([]byte("k4"), []byte("v4"), store.SetOptions{})
	m.Clear(false)
	m.Set([]byte("k5"), []byte("v5"), store.SetOptions{})
	m.Clear(true)

	if got, want := render(take(one)), []string{
		"__engram@users__:write:k1=v1", "__engram@users__:delete:k1=delete"}; !slices.Equal(got, want) {
		t.Fatalf("one key: %v, want %v", got, want)
	}
	p := `__engram@users__:*`
	wantAll := []string{
		p + "|__engram@users__:write:k1=v1",
		p + "|__engram@users__:write:k2=v2",
		p + "|__engram@users__:delete:k1=delete",
		p + "|__engram@users__:write:k3=v3",
		p + "|__engram@users__:delete:k3=expired",
		p + "|__engram@users__:write:k4=v4",
	}
	gotAll := render(take(all))
	// The clear's deletes (k2 and k4) come in partition order.
	// The silent clear of k5 sends nothing after k5's write.
	if len(gotAll) != len(wantAll)+3 || !slices.Equal(gotAll[:len(wantAll)], wantAll) ||
		gotAll[len(gotAll)-1] != p+"|__engram@users__:write:k5=v5" {
		t.Fatalf("any key: %v", gotAll)
	}
	cleared := gotAll[len(wantAll) : len(wantAll)+2]
	slices.Sort(cleared)
	if !slices.Equal(cleared, []string{p + "|__engram@users__:delete:k2=cleared", p + "|__engram@users__:delete:k4=cleared"}) {
		t.Fatalf("clear events %v", cleared)
	}
	for _, msg := range take(dels) {
		if _, kind, _, _ := ParseMapChannel(msg.Channel); kind != Delete ||
			!slices.Contains([]string{"delete", "expired", "cleared"}, string(msg.Payload)) {
			t.Fatalf("delete subscriber got %s=%s", msg.Channel, msg.Payload)
		}
	}
	if got := take(topicsOnly); len(got) != 0 {
		t.Fatalf("PSUBSCRIBE * must not see map events, got %v", render(got))
	}
}

func TestMapEventEviction(t *testing.T) {
	h := New(Options{})
	st, _ := newStore(t, h, store.Options{MaxMemory: 64 << 10, Policy: store.AllKeysLRU})
	m, _ := st.OpenMap("m")
	s := h.NewSubscriber(nil)
	s.PSubscribe(bg, MapPattern("m", Delete))
	val := make([]byte, 1000)
	for i := range 200 {
		if _, err := m.Set(fmt.Appendf(nil, "k%d", i), val, store.SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got := take(s)
	if len(got) == 0 {
		t.Fatal("writing 200 KB into a 64 KB map evicted nothing?")
	}
	for _, msg := range got {
		if string(msg.Payload) != "evicted" {
			t.Fatalf("delete for eviction says %q", msg.Payload)
		}
	}
}

func TestNodeEvents(t *testing.T) {
	h := New(Options{})
	s := h.NewSubscriber(nil)
	s.Subscribe(bg, NodeChannel)
	p := h.NewSubscriber(nil)
	p.PSubscribe(bg, "__engram*")
	topics := h.NewSubscriber(nil)
	topics.PSubscribe(bg, "*")
	h.NodeEvent(NodeEvent{Event: "nodedown", Node: "b", Active: []string{"a"}, Configured: []string{"a", "b"}})
	got := take(s)
	if len(got) != 1 {
		t.Fatalf("got %d node events", len(got))
	}
	e, err := DecodeNodeEvent(got[0].Payload)
	if err != nil || e.Event != "nodedown" || e.Node != "b" || !slices.Equal(e.Configured, []string{"a", "b"}) {
		t.Fatalf("event %+v, %v", e, err)
	}
	if n := len(take(p)); n != 1 {
		t.Fatalf("pattern __engram* got %d node events", n)
	}
	if n := len(take(topics)); n != 0 {
		t.Fatalf("pattern * got %d node events", n)
	}
}

// TestSlowSubscriberOverflow: a subscriber that never reads does not
// stall writers, its queue stays within the bound, and it is
// disconnected with ErrOverflow, counted.
func TestSlowSubscriberOverflow(t *testing.T) {
	const bound = 256 << 10
	h := New(Options{MaxQueueBytes: bound})
	st, _ := newStore(t, h, store.Options{})
	m, _ := st.OpenMap("m")
	overflowed := make(chan struct{})
	slow := h.NewSubscriber(func() { close(overflowed) })
	slow.PSubscribe(bg, MapPattern("m", Write))
	fast := h.NewSubscriber(nil)
	fast.PSubscribe(bg, MapPattern("m", Write))
	var fastGot int
	val := make([]byte, 100)
	const writes = 20000
	var maxQueued int64
	for i := range writes {
		if _, err := m.Set(fmt.Appendf(nil, "k%d", i%100), val, store.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, b := slow.Queued(); b > maxQueued {
			maxQueued = b
		}
		if i%100 == 0 {
			fastGot += len(fast.Take(nil))
		}
	}
	fastGot += len(fast.Take(nil))
	<-overflowed // the callback ran (the writers did not wait for it)
	if !errors.Is(slow.Err(), ErrOverflow) {
		t.Fatalf("slow subscriber's error: %v", slow.Err())
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("Done not closed after overflow")
	}
	if maxQueued > bound {
		t.Fatalf("queue reached %d bytes, bound %d", maxQueued, bound)
	}
	if fastGot != writes {
		t.Fatalf("the reading subscriber got %d of %d events", fastGot, writes)
	}
	st2 := h.Stats()
	if st2.Overflows != 1 || st2.Dropped == 0 {
		t.Fatalf("stats %+v: want one overflow and dropped messages", st2)
	}
	slow.Close()
	if h.Stats().Subscribers != 1 {
		t.Fatal("closed subscriber still registered")
	}
}

// TestConcurrentOrder: concurrent writers of different keys, one
// reader: every key's events arrive in the order written.
func TestConcurrentOrder(t *testing.T) {
	h := New(Options{})
	st, _ := newStore(t, h, store.Options{})
	m, _ := st.OpenMap("m")
	s := h.NewSubscriber(nil)
	s.PSubscribe(bg, MapPattern("m", Write))
	const writers, per = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				m.Set(fmt.Appendf(nil, "w%d", w), fmt.Appendf(nil, "%d", i), store.SetOptions{})
			}
		}()
	}
	next := map[string]int{}
	got := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for got < writers*per {
		select {
		case <-s.Ready():
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("stuck after %d events", got)
		}
		for _, msg := range s.Take(nil) {
			_, _, key, ok := ParseMapChannel(msg.Channel)
			if !ok {
				t.Fatalf("bad channel %q", msg.Channel)
			}
			if want := fmt.Sprint(next[key]); string(msg.Payload) != want {
				t.Fatalf("key %s: got value %s, want %s", key, msg.Payload, want)
			}
			next[key]++
			got++
		}
	}
}

func TestChannelNames(t *testing.T) {
	for _, tc := range []struct {
		ch      string
		m, key  string
		kind    Kind
		wantOK  bool
		pattern string
	}{
		{ch: "__engram@users__:write:a:b", m: "users", kind: Write, key: "a:b", wantOK: true},
		{ch: "__engram@u__:delete:", m: "u", kind: Delete, key: "", wantOK: true},
		{ch: "__engram@u__:other:k"},
		{ch: "__engram@u:write:k"},
		{ch: "news"},
	} {
		m, kind, key, ok := ParseMapChannel(tc.ch)
		if ok != tc.wantOK || m != tc.m || kind != tc.kind || key != tc.key {
			t.Errorf("ParseMapChannel(%q) = %q %q %q %v", tc.ch, m, kind, key, ok)
		}
	}
	for _, tc := range []struct {
		p     string
		event bool
		m     string
		mOK   bool
	}{
		{p: "*"},
		{p: "news.*"},
		{p: "__eng*"},
		{p: "__engram*", event: true},
		{p: "__engram@*", event: true},
		{p: "__engram@users__:*", event: true, m: "users", mOK: true},
		{p: `__engram@a\*b__:write:*`, event: true, m: "a*b", mOK: true},
		{p: "__engram@us?rs__:*", event: true},
		{p: "__engram__:nodes", event: true},
	} {
		sc := scopeOf(tc.p)
		if sc.event != tc.event || sc.m != tc.m || sc.mOK != tc.mOK {
			t.Errorf("scopeOf(%q) = %+v", tc.p, sc)
		}
	}
	if p := MapPattern("a*b", Write); p != `__engram@a\*b__:write:*` {
		t.Errorf("MapPattern escapes to %q", p)
	}
}

// fakeRemote records interest announcements.
type fakeRemote struct {
	mu  sync.Mutex
	ins []Interest
	n   int
}

func (f *fakeRemote) Publish(context.Context, string, []byte) (int, error) { return f.n, nil }
func (f *fakeRemote) InterestChanged(_ context.Context, in Interest) {
	f.mu.Lock()
	f.ins = append(f.ins, in)
	f.mu.Unlock()
}

func TestInterestAnnounced(t *testing.T) {
	h := New(Options{})
	r := &fakeRemote{n: 5}
	h.SetRemote(r)
	s := h.NewSubscriber(nil)
	s.Subscribe(bg, "news")
	s.Subscribe(bg, "sport") // no change: not announced
	s.Subscribe(bg, MapChannel("b", Write, "k"))
	s.PSubscribe(bg, MapPattern("a", ""))
	s.PSubscribe(bg, "__engram@*")
	s.Close()
	want := []Interest{
		{Topics: true},
		{Topics: true, Maps: []string{"b"}},
		{Topics: true, Maps: []string{"a", "b"}},
		{Topics: true, AllMaps: true, Maps: []string{"a", "b"}},
		{},
	}
	if len(r.ins) != len(want) {
		t.Fatalf("announced %+v", r.ins)
	}
	for i := range want {
		if !r.ins[i].Equal(want[i]) {
			t.Fatalf("announcement %d: %+v, want %+v", i, r.ins[i], want[i])
		}
	}
	if n, err := h.Publish(bg, "x", nil); n != 5 || err != nil {
		t.Fatalf("publish counts remote receivers: %d %v", n, err)
	}
}
