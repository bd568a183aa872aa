package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engramdb/engram"
	"github.com/engramdb/engram/client"
)

func TestDial(t *testing.T) {
	open := startNode(t, engram.Config{})
	locked := startNode(t, engram.Config{Password: "s3cret"})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		opts    client.Options
		wantErr string // "" = must connect
	}{
		{name: "RESP3 by default", opts: client.Options{Addr: open.RESPAddr()}},
		{name: "RESP2", opts: client.Options{Addr: open.RESPAddr(), Protocol: 2}},
		{name: "password", opts: client.Options{Addr: locked.RESPAddr(), Password: "s3cret"}},
		{name: "password over RESP2", opts: client.Options{Addr: locked.RESPAddr(), Password: "s3cret", Protocol: 2}},
		{name: "missing password", opts: client.Options{Addr: locked.RESPAddr()}, wantErr: "NOAUTH"},
		{name: "wrong password", opts: client.Options{Addr: locked.RESPAddr(), Password: "guess"}, wantErr: "WRONGPASS"},
		{name: "no address", opts: client.Options{}, wantErr: "Addr is required"},
		{name: "bad protocol", opts: client.Options{Addr: open.RESPAddr(), Protocol: 4}, wantErr: "2 or 3"},
		{name: "cancelled context", ctx: cancelled, opts: client.Options{Addr: open.RESPAddr()}, wantErr: "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			c, err := client.Dial(ctx, tt.opts)
			if tt.wantErr != "" {
				if err == nil {
					c.Close()
					t.Fatalf("Dial succeeded, want an error mentioning %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Dial: %q does not mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			m := c.Map("m")
			if err := m.Set(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			if v, err := m.Get(ctx, "k"); err != nil || string(v) != "v" {
				t.Fatalf("Get = %q, %v", v, err)
			}
		})
	}
}

func TestMapSelection(t *testing.T) {
	n := startNode(t, engram.Config{})
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		t.Run("RESP"+strconv.Itoa(proto), func(t *testing.T) {
			c := dial(t, n, proto)
			prefix := "p" + strconv.Itoa(proto) + ":"
			a, b := c.Map(prefix+"a"), c.Map(prefix+"b")
			if c.Map(prefix+"a") != a {
				t.Fatal("Map returned a new handle for a name already used")
			}
			set(t, ctx, a, "k", "in a")
			wantMissing(t, ctx, b, "k")
			set(t, ctx, b, "k", "in b")
			wantValue(t, ctx, a, "k", "in a")
			// The node's own view agrees: the client wrote to the named maps.
			wantValue(t, ctx, n.Map(prefix+"a"), "k", "in a")
			wantValue(t, ctx, n.Map(prefix+"b"), "k", "in b")
			// Every pooled connection of a map is on that map, however many
			// are opened at once.
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for range 50 {
				wg.Go(func() {
					v, err := a.Get(ctx, "k")
					if err == nil && string(v) != "in a" {
						err = fmt.Errorf("map a read %q", v)
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// Map "0" is the connection default, which Redis() also uses.
	c := dial(t, n, 3)
	set(t, ctx, c.Map("0"), "zero", "v")
	if v, err := c.Redis().Get(ctx, "zero").Result(); err != nil || v != "v" {
		t.Fatalf("Redis().Get on map 0 = %q, %v", v, err)
	}
	wantValue(t, ctx, n.Map("0"), "zero", "v")
	// A name the server refuses fails every call, without a panic.
	if _, err := c.Map("").Get(ctx, "k"); err == nil || !strings.Contains(err.Error(), "invalid map name") {
		t.Fatalf("Get on map \"\": %v, want the server's invalid map name error", err)
	}
}

func TestClientNodeMethods(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run("RESP"+strconv.Itoa(proto), func(t *testing.T) {
			// A node per protocol: Flush clears every map of the node.
			n := startNode(t, engram.Config{})
			c := dial(t, n, proto)
			ctx := context.Background()
			if got, err := c.Maps(ctx); err != nil || len(got) != 0 {
				t.Fatalf("Maps of a new node = %q, %v", got, err)
			}
			if got, err := c.Sequences(ctx); err != nil || len(got) != 0 {
				t.Fatalf("Sequences of a new node = %v, %v", got, err)
			}
			set(t, ctx, c.Map("a"), "k", "v", engram.WithSeq(3))
			set(t, ctx, c.Map("b"), "k", "v", engram.WithSeq(1<<40))
			if got, err := c.Maps(ctx); err != nil || !slices.Equal(got, []string{"a", "b"}) {
				t.Fatalf("Maps = %q, %v", got, err)
			}
			seqs, err := c.Sequences(ctx)
			if err != nil || len(seqs) != 2 || seqs["a"] != 3 || seqs["b"] != 1<<40 {
				t.Fatalf("Sequences = %v, %v", seqs, err)
			}
			for _, silent := range []bool{false, true} {
				set(t, ctx, c.Map("a"), "k", "v")
				if err := c.Flush(ctx, silent); err != nil {
					t.Fatalf("Flush(silent=%v): %v", silent, err)
				}
				if l, _ := n.Map("a").Len(ctx); l != 0 {
					t.Fatalf("map a has %d keys after Flush(silent=%v)", l, silent)
				}
			}
		})
	}
}

func TestPutAllTTLPrecision(t *testing.T) {
	n := startNode(t, engram.Config{})
	m := dial(t, n, 3).Map("m")
	ctx := context.Background()
	_, err := m.PutAll(ctx, []engram.KV{{Key: "k"}}, engram.TTL(1500*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "whole seconds") {
		t.Fatalf("PutAll with a 1.5s TTL over RESP: %v, want a whole-seconds error", err)
	}
	wantMissing(t, ctx, m, "k")
}

// clientCalls lists one call of every error-returning method.
func clientCalls(c *client.Client, m *client.Map) map[string]func(ctx context.Context) error {
	e := func(_ any, err error) error { return err }
	return map[string]func(ctx context.Context) error{
		"Get":               func(ctx context.Context) error { return e(m.Get(ctx, "k")) },
		"GetTo":             func(ctx context.Context) error { return e(m.GetTo(ctx, nil, "k")) },
		"Set":               func(ctx context.Context) error { return m.Set(ctx, "k", nil) },
		"SetIf":             func(ctx context.Context) error { return e(m.SetIf(ctx, "k", nil, engram.IfAbsent())) },
		"UnsafeSet":         func(ctx context.Context) error { return m.UnsafeSet(ctx, "k", nil) },
		"Delete":            func(ctx context.Context) error { return e(m.Delete(ctx, "k")) },
		"DeleteSeq":         func(ctx context.Context) error { return e(m.DeleteSeq(ctx, "k", 1)) },
		"Contains":          func(ctx context.Context) error { return e(m.Contains(ctx, "k")) },
		"TTL":               func(ctx context.Context) error { return e(m.TTL(ctx, "k")) },
		"Expire":            func(ctx context.Context) error { return e(m.Expire(ctx, "k", time.Second)) },
		"Persist":           func(ctx context.Context) error { return e(m.Persist(ctx, "k")) },
		"Incr":              func(ctx context.Context) error { return e(m.Incr(ctx, "n")) },
		"IncrBy":            func(ctx context.Context) error { return e(m.IncrBy(ctx, "n", 2)) },
		"PutAll":            func(ctx context.Context) error { return e(m.PutAll(ctx, []engram.KV{{Key: "k"}})) },
		"GetAll":            func(ctx context.Context) error { _, _, err := m.GetAll(ctx, []string{"k"}); return err },
		"RemoveItems":       func(ctx context.Context) error { return e(m.RemoveItems(ctx, []string{"k"})) },
		"RemoveItemsSeq":    func(ctx context.Context) error { return e(m.RemoveItemsSeq(ctx, []string{"k"}, 1)) },
		"Keys":              func(ctx context.Context) error { return e(m.Keys(ctx, "")) },
		"Values":            func(ctx context.Context) error { return e(m.Values(ctx)) },
		"Scan":              func(ctx context.Context) error { _, _, err := m.Scan(ctx, 0, "", 10); return err },
		"EvictSince":        func(ctx context.Context) error { return e(m.EvictSince(ctx, time.Hour)) },
		"Clear":             func(ctx context.Context) error { return m.Clear(ctx) },
		"SetMaxTTL":         func(ctx context.Context) error { return m.SetMaxTTL(ctx, time.Hour) },
		"MaxTTL":            func(ctx context.Context) error { return e(m.MaxTTL(ctx)) },
		"SetMaxKeys":        func(ctx context.Context) error { return m.SetMaxKeys(ctx, 10) },
		"Sequence":          func(ctx context.Context) error { _, _, err := m.Sequence(ctx); return err },
		"Len":               func(ctx context.Context) error { return e(m.Len(ctx)) },
		"Client.Maps":       func(ctx context.Context) error { return e(c.Maps(ctx)) },
		"Client.Sequences":  func(ctx context.Context) error { return e(c.Sequences(ctx)) },
		"Client.Flush":      func(ctx context.Context) error { return c.Flush(ctx, false) },
		"map 0 (base pool)": func(ctx context.Context) error { return e(c.Map("0").Get(ctx, "k")) },
	}
}

func TestClientClosed(t *testing.T) {
	n := startNode(t, engram.Config{})
	c, err := client.Dial(context.Background(), client.Options{Addr: n.RESPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	m := c.Map("m")
	ctx := context.Background()
	set(t, ctx, m, "k", "v") // the map's pool is open before Close
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, call := range clientCalls(c, m) {
		if err := call(ctx); !errors.Is(err, engram.ErrClosed) {
			t.Errorf("%s after Close: %v, want engram.ErrClosed", name, err)
		}
	}
	if _, err := c.Map("new").Get(ctx, "k"); !errors.Is(err, engram.ErrClosed) {
		t.Errorf("Get on a map first used after Close: %v, want engram.ErrClosed", err)
	}
	// Closing the client leaves the node's data alone.
	wantValue(t, ctx, n.Map("m"), "k", "v")
}

func TestClientContextDone(t *testing.T) {
	n := startNode(t, engram.Config{})
	c := dial(t, n, 3)
	m := c.Map("m")
	set(t, context.Background(), m, "k", "v")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for name, call := range clientCalls(c, m) {
		if err := call(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
	}
	wantValue(t, context.Background(), m, "k", "v")
}

func TestClientOutOfMemory(t *testing.T) {
	n := startNode(t, engram.Config{MaxMemory: 64 << 10})
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		m := dial(t, n, proto).Map("m")
		val := make([]byte, 100)
		for i := 0; ; i++ {
			err := m.Set(ctx, "key"+strconv.Itoa(i), val)
			if err == nil {
				if i > 10000 {
					t.Fatal("10000 writes of 100 bytes fit in 64 KiB: the memory bound is not applied")
				}
				continue
			}
			if !errors.Is(err, engram.ErrOutOfMemory) || !strings.HasPrefix(err.Error(), "OOM ") {
				t.Fatalf("RESP%d write %d: %v, want ErrOutOfMemory with the server's OOM message", proto, i, err)
			}
			break
		}
		// Reads and deletes still work at the bound.
		if _, err := m.Get(ctx, "key0"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Delete(ctx, "key0"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrency mixes embedded and remote access to the same keys from
// many goroutines; run it with -race. The counter must see every
// increment exactly once.
func TestConcurrency(t *testing.T) {
	n := startNode(t, engram.Config{})
	ctx := context.Background()
	views := []api{n.Map("shared"), dial(t, n, 2).Map("shared"), dial(t, n, 3).Map("shared")}
	const workers, ops = 12, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		m := views[w%len(views)]
		wg.Go(func() {
			own := "w" + strconv.Itoa(w)
			for i := range ops {
				val := []byte(strconv.Itoa(i))
				if err := m.Set(ctx, own, val, engram.TTL(time.Hour)); err != nil {
					errs <- err
					return
				}
				if v, err := m.Get(ctx, own); err != nil || string(v) != string(val) {
					errs <- fmt.Errorf("%s read %q, %v after writing %q", own, v, err, val)
					return
				}
				if _, err := m.Incr(ctx, "counter"); err != nil {
					errs <- err
					return
				}
				if _, _, err := m.GetAll(ctx, []string{"counter", own}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantValue(t, ctx, views[0], "counter", strconv.Itoa(workers*ops))
}
