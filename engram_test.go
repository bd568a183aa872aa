package engram_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram"
)

// open starts an in-process node (no listeners unless cfg sets them) and
// closes it when the test ends.
func open(t testing.TB, cfg engram.Config) *engram.Node {
	t.Helper()
	n, err := engram.Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name    string
		cfg     engram.Config
		wantErr string // "" = must open
		resp    bool   // must listen for RESP
	}{
		{name: "zero config is in-process only", cfg: engram.Config{}},
		{name: "RESP on a free port", cfg: engram.Config{RESPAddr: "127.0.0.1:0"}, resp: true},
		{name: "limits", cfg: engram.Config{MaxMemory: 1 << 20, EvictionPolicy: "allkeys-lru", MaxKeyLen: 10, MaxValueLen: 100, MaxKeysPerMap: 5}},
		{name: "unknown policy", cfg: engram.Config{EvictionPolicy: "lru"}, wantErr: "max-memory-policy"},
		{name: "negative memory", cfg: engram.Config{MaxMemory: -1}, wantErr: "max-memory"},
		{name: "bad address", cfg: engram.Config{RESPAddr: "nowhere"}, wantErr: "resp"},
		{name: "all interfaces without a password", cfg: engram.Config{RESPAddr: "0.0.0.0:0"}, wantErr: "without a password"},
		{name: "HTTP beside RESP", cfg: engram.Config{RESPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, resp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := engram.Open(tt.cfg)
			if tt.wantErr != "" {
				if err == nil {
					n.Close()
					t.Fatalf("Open succeeded, want an error mentioning %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open error %q does not mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer n.Close()
			if got := n.RESPAddr() != ""; got != tt.resp {
				t.Fatalf("RESPAddr() = %q, want listening=%v", n.RESPAddr(), tt.resp)
			}
			if got, want := n.HTTPAddr() != "", tt.cfg.HTTPAddr != ""; got != want {
				t.Fatalf("HTTPAddr() = %q, want listening=%v", n.HTTPAddr(), want)
			}
			if tt.resp {
				c, err := net.Dial("tcp", n.RESPAddr())
				if err != nil {
					t.Fatalf("cannot connect to RESPAddr %s: %v", n.RESPAddr(), err)
				}
				c.Close()
			}
		})
	}
}

func TestOpenAppliesLimits(t *testing.T) {
	n := open(t, engram.Config{MaxKeyLen: 4, MaxValueLen: 8, MaxKeysPerMap: 1})
	m := n.Map("m")
	ctx := context.Background()
	if err := m.Set(ctx, "12345", nil); !errors.Is(err, engram.ErrKeyTooLong) {
		t.Fatalf("Set of a 5-byte key with MaxKeyLen 4: %v, want ErrKeyTooLong", err)
	}
	if err := m.Set(ctx, "k", make([]byte, 9)); !errors.Is(err, engram.ErrValueTooLarge) {
		t.Fatalf("Set of a 9-byte value with MaxValueLen 8: %v, want ErrValueTooLarge", err)
	}
	if err := m.Set(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, "k2", nil); !errors.Is(err, engram.ErrMapFull) {
		t.Fatalf("second key with MaxKeysPerMap 1: %v, want ErrMapFull", err)
	}
	// The detail survives the mapping to the public sentinel.
	if err := m.Set(ctx, "12345", nil); !strings.Contains(err.Error(), "limit is 4") {
		t.Fatalf("error %q does not say the limit", err)
	}
}

func TestOutOfMemory(t *testing.T) {
	n := open(t, engram.Config{MaxMemory: 64 << 10})
	m := n.Map("m")
	ctx := context.Background()
	val := make([]byte, 100)
	for i := range 10000 {
		err := m.Set(ctx, "key"+strconv.Itoa(i), val)
		if err == nil {
			continue
		}
		if !errors.Is(err, engram.ErrOutOfMemory) {
			t.Fatalf("write %d: %v, want ErrOutOfMemory", i, err)
		}
		if st := n.Stats(); st.MaxMemory != 64<<10 || st.EvictionPolicy != "noeviction" {
			t.Fatalf("Stats() = %+v, want MaxMemory 64 KiB and noeviction", st)
		}
		return
	}
	t.Fatal("10000 writes of 100 bytes fit in 64 KiB: the memory bound is not applied")
}

func TestNodeMethods(t *testing.T) {
	n := open(t, engram.Config{})
	ctx := context.Background()
	if got := n.Maps(); len(got) != 0 {
		t.Fatalf("Maps() of a new node = %q, want none", got)
	}
	a, b := n.Map("a"), n.Map("b")
	n.Map("unused") // a handle alone does not list a map
	if err := a.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "k", []byte("v"), engram.WithSeq(7)); err != nil {
		t.Fatal(err)
	}
	if got, want := n.Maps(), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("Maps() = %q, want %q", got, want)
	}
	if got := n.Sequences(); len(got) != 1 || got["b"] != 7 {
		t.Fatalf("Sequences() = %v, want map[b:7]", got)
	}
	if _, err := a.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "missing"); !errors.Is(err, engram.ErrNotFound) {
		t.Fatal(err)
	}
	st := n.Stats()
	if st.Keys != 2 || st.Hits < 1 || st.Misses < 1 || st.Maps < 2 || st.UsedMemory <= 0 {
		t.Fatalf("Stats() = %+v, want 2 keys, a hit, a miss, 2+ maps, used memory", st)
	}
	if err := n.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if la, _ := a.Len(ctx); la != 0 {
		t.Fatalf("map a has %d keys after Flush", la)
	}
	if lb, _ := b.Len(ctx); lb != 0 {
		t.Fatalf("map b has %d keys after Flush", lb)
	}
}

// calls lists one call of every error-returning method, for the checks
// that apply to all of them (closed node, cancelled context).
func calls(n *engram.Node, m *engram.Map) map[string]func(ctx context.Context) error {
	e := func(_ any, err error) error { return err }
	return map[string]func(ctx context.Context) error{
		"Get":            func(ctx context.Context) error { return e(m.Get(ctx, "k")) },
		"GetTo":          func(ctx context.Context) error { return e(m.GetTo(ctx, nil, "k")) },
		"Set":            func(ctx context.Context) error { return m.Set(ctx, "k", nil) },
		"SetIf":          func(ctx context.Context) error { return e(m.SetIf(ctx, "k", nil, engram.IfAbsent())) },
		"UnsafeSet":      func(ctx context.Context) error { return m.UnsafeSet(ctx, "k", nil) },
		"Delete":         func(ctx context.Context) error { return e(m.Delete(ctx, "k")) },
		"DeleteSeq":      func(ctx context.Context) error { return e(m.DeleteSeq(ctx, "k", 1)) },
		"Contains":       func(ctx context.Context) error { return e(m.Contains(ctx, "k")) },
		"TTL":            func(ctx context.Context) error { return e(m.TTL(ctx, "k")) },
		"Expire":         func(ctx context.Context) error { return e(m.Expire(ctx, "k", time.Second)) },
		"Persist":        func(ctx context.Context) error { return e(m.Persist(ctx, "k")) },
		"Incr":           func(ctx context.Context) error { return e(m.Incr(ctx, "n")) },
		"IncrBy":         func(ctx context.Context) error { return e(m.IncrBy(ctx, "n", 2)) },
		"PutAll":         func(ctx context.Context) error { return e(m.PutAll(ctx, []engram.KV{{Key: "k"}})) },
		"GetAll":         func(ctx context.Context) error { _, _, err := m.GetAll(ctx, []string{"k"}); return err },
		"RemoveItems":    func(ctx context.Context) error { return e(m.RemoveItems(ctx, []string{"k"})) },
		"RemoveItemsSeq": func(ctx context.Context) error { return e(m.RemoveItemsSeq(ctx, []string{"k"}, 1)) },
		"Keys":           func(ctx context.Context) error { return e(m.Keys(ctx, "")) },
		"Values":         func(ctx context.Context) error { return e(m.Values(ctx)) },
		"Scan":           func(ctx context.Context) error { _, _, err := m.Scan(ctx, 0, "", 10); return err },
		"EvictSince":     func(ctx context.Context) error { return e(m.EvictSince(ctx, time.Hour)) },
		"Clear":          func(ctx context.Context) error { return m.Clear(ctx) },
		"SetMaxTTL":      func(ctx context.Context) error { return m.SetMaxTTL(ctx, time.Hour) },
		"MaxTTL":         func(ctx context.Context) error { return e(m.MaxTTL(ctx)) },
		"SetMaxKeys":     func(ctx context.Context) error { return m.SetMaxKeys(ctx, 10) },
		"Sequence":       func(ctx context.Context) error { _, _, err := m.Sequence(ctx); return err },
		"Len":            func(ctx context.Context) error { return e(m.Len(ctx)) },
		"Node.Flush":     func(ctx context.Context) error { return n.Flush(ctx, false) },
	}
}

func TestClosed(t *testing.T) {
	n, err := engram.Open(engram.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := n.Map("m")
	ctx := context.Background()
	if err := m.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, call := range calls(n, m) {
		if err := call(ctx); !errors.Is(err, engram.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	// A handle made after Close is closed too.
	if _, err := n.Map("other").Get(ctx, "k"); !errors.Is(err, engram.ErrClosed) {
		t.Errorf("Get on a map opened after Close: %v, want ErrClosed", err)
	}
	for range m.All(ctx) {
		t.Fatal("All yielded an item after Close")
	}
}

func TestContextDone(t *testing.T) {
	n := open(t, engram.Config{})
	m := n.Map("m")
	if err := m.Set(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel2()
	for name, call := range calls(n, m) {
		if err := call(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
		if err := call(expired); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s past its deadline: %v, want context.DeadlineExceeded", name, err)
		}
	}
	// The write attempts above changed nothing.
	if v, err := m.Get(context.Background(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get after cancelled calls = %q, %v; want \"v\"", v, err)
	}
	for range m.All(cancelled) {
		t.Fatal("All yielded an item with a cancelled context")
	}
}
