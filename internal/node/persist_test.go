package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/config"
)

// fileOf reads key of map m from a directory store, as the store itself
// does (escaped names).
func storedValue(t *testing.T, dir, m, key string) (string, bool) {
	t.Helper()
	s, err := backing.OpenDir(dir, backing.DirOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, ok, err := s.Load(context.Background(), m, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNodeBackingStoreOverRESP(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, func(c *config.Config) {
		c.Store = "file://" + dir + "?fsync=false"
		c.StoreDefaults = "mode=write-behind delay=200ms"
	})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), Protocol: 2})
	defer rdb.Close()

	// Write-behind: acknowledged from memory, in the store after the delay.
	if err := rdb.Set(ctx, "k1", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "k1 in the store", func() bool { v, ok := storedValue(t, dir, "0", "k1"); return ok && v == "v1" })

	// Delete reaches the store too.
	rdb.Del(ctx, "k1")
	eventually(t, "k1 deleted from the store", func() bool { _, ok := storedValue(t, dir, "0", "k1"); return !ok })

	// Read-through: a key only the store has is read on a miss, and a
	// key deleted from memory without a delete (FLUSHDB empties the cache,
	// not the store) is read back.
	s, _ := backing.OpenDir(dir, backing.DirOptions{NoSync: true})
	s.Store(ctx, "0", []byte("only-in-store"), []byte("hello"))
	s.Close()
	if v, err := rdb.Get(ctx, "only-in-store").Result(); err != nil || v != "hello" {
		t.Fatalf("read-through GET: %q %v", v, err)
	}
	rdb.Set(ctx, "k2", "v2", 0)
	if n, err := rdb.Do(ctx, "SAVEKEY", "k2").Int(); err != nil || n != 1 {
		t.Fatalf("SAVEKEY: %d %v", n, err)
	}
	if v, ok := storedValue(t, dir, "0", "k2"); !ok || v != "v2" {
		t.Fatalf("after SAVEKEY the store has %q %v", v, ok)
	}
	rdb.FlushDB(ctx)
	if v, err := rdb.Get(ctx, "k2").Result(); err != nil || v != "v2" {
		t.Fatalf("GET after FLUSHDB: %q %v", v, err)
	}
	// INCR on a key that is only in the store starts from its value.
	s, _ = backing.OpenDir(dir, backing.DirOptions{NoSync: true})
	s.Store(ctx, "0", []byte("counter"), []byte("41"))
	s.Close()
	if v, err := rdb.Incr(ctx, "counter").Result(); err != nil || v != 42 {
		t.Fatalf("INCR of a stored counter: %d %v", v, err)
	}

	// STORECONFIG: a write-through map answers once the store has the write.
	if err := rdb.Do(ctx, "STORECONFIG", "wt", "mode", "write-through").Err(); err != nil {
		t.Fatal(err)
	}
	cfg, err := rdb.Do(ctx, "STORECONFIG", "wt").StringSlice()
	if err != nil || !strings.Contains(strings.Join(cfg, " "), "mode write-through") {
		t.Fatalf("STORECONFIG wt: %q %v", cfg, err)
	}
	wt := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), Protocol: 2, DB: 0,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error { return selectMap(ctx, cn, "wt") }})
	defer wt.Close()
	if err := wt.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, ok := storedValue(t, dir, "wt", "a"); !ok || v != "1" {
		t.Fatalf("write-through SET returned before the store had it: %q %v", v, ok)
	}
	if err := wt.MSet(ctx, "b", "2", "c", "3").Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := storedValue(t, dir, "wt", "c"); !ok {
		t.Fatal("write-through MSET returned before the store had it")
	}

	// Bad settings are refused and change nothing.
	for _, bad := range [][]any{
		{"STORECONFIG", "wt", "mode", "sometimes"},
		{"STORECONFIG", "wt", "delay", "-5"},
		{"STORECONFIG", "wt", "batch"},
		{"STORECONFIG", "wt", "colour", "blue"},
	} {
		if err := rdb.Do(ctx, bad...).Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR") {
			t.Fatalf("%v: %v, want an ERR", bad, err)
		}
	}
	cfg2, _ := rdb.Do(ctx, "STORECONFIG", "wt").StringSlice()
	if strings.Join(cfg, " ") != strings.Join(cfg2, " ") {
		t.Fatalf("a refused STORECONFIG changed the settings: %q -> %q", cfg, cfg2)
	}

	// INFO has a store section with the totals.
	if info, err := rdb.Info(ctx, "store").Result(); err != nil || !strings.Contains(info, "store_default:write-behind") ||
		!strings.Contains(info, "store_keys_written:") {
		t.Fatalf("INFO store: %q %v", info, err)
	}

	// Prometheus metrics of the store, per map.
	code, body := httpGet(t, "http://"+n.HTTPAddr()+"/metrics", "")
	for _, want := range []string{`engram_store_written_total{map="0"}`, `engram_store_pending_changes{map="wt"} 0`,
		`engram_store_loads_total{map="0",result="found"}`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}

	// The HTTP API: settings, writes through the store, persist now, status.
	base := "http://" + n.HTTPAddr()
	if code, body := httpDo(t, "PUT", base+"/v1/maps/h/store", `{"mode": "write-through"}`); code != 200 || !strings.Contains(body, `"mode":"write-through"`) {
		t.Fatalf("PUT store settings: %d %s", code, body)
	}
	if code, body := httpDo(t, "PUT", base+"/v1/maps/h/store", `{"mode": "sometimes"}`); code != 400 {
		t.Fatalf("PUT a bad mode: %d %s, want 400", code, body)
	}
	if code, body := httpDo(t, "PUT", base+"/v1/maps/h/keys/x", "hv"); code/100 != 2 {
		t.Fatalf("PUT key: %d %s", code, body)
	}
	if v, ok := storedValue(t, dir, "h", "x"); !ok || v != "hv" {
		t.Fatalf("write-through over HTTP: store has %q %v", v, ok)
	}
	s, _ = backing.OpenDir(dir, backing.DirOptions{NoSync: true})
	s.Store(ctx, "h", []byte("y"), []byte("from-store"))
	s.Close()
	if code, body := httpDo(t, "GET", base+"/v1/maps/h/keys/y", ""); code != 200 || body != "from-store" {
		t.Fatalf("read-through over HTTP: %d %q", code, body)
	}
	if code, body := httpDo(t, "POST", base+"/v1/maps/0/save/k2", ""); code != 200 || !strings.Contains(body, `"saved":1`) {
		t.Fatalf("POST save: %d %s", code, body)
	}
	if code, body := httpDo(t, "GET", base+"/v1/store", ""); code != 200 || !strings.Contains(body, `"map":"h"`) || !strings.Contains(body, `"pending":0`) {
		t.Fatalf("GET /v1/store: %d %s", code, body)
	}

	// STORESTATUS shows the pending-change view.
	st, err := rdb.Do(ctx, "STORESTATUS", "0").Slice()
	if err != nil || len(st) != 1 {
		t.Fatalf("STORESTATUS: %v %v", st, err)
	}

	// A store that cannot be opened is refused when it is named, and
	// changes nothing.
	bad := filepath.Join(t.TempDir(), "file")
	os.WriteFile(bad, []byte("x"), 0o644)
	if err := rdb.Do(ctx, "STORECONFIG", "broken", "mode", "read-through", "store", "file://"+bad).Err(); err == nil || !strings.HasPrefix(err.Error(), "STORE") {
		t.Fatalf("STORECONFIG naming a file as a directory store: %v, want a STORE error", err)
	}
	if cfg, _ := rdb.Do(ctx, "STORECONFIG", "broken").StringSlice(); !strings.Contains(strings.Join(cfg, " "), "explicit false") {
		t.Fatalf("a refused STORECONFIG changed the settings: %q", cfg)
	}
}

func TestNodeGracefulStopWritesBack(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.RESPAddr, cfg.HTTPAddr = "127.0.0.1:0", ""
	cfg.Store = "file://" + dir + "?fsync=false"
	cfg.StoreDefaults = "mode=write-behind delay=1h"
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), Protocol: 2})
	ctx := context.Background()
	for i := range 500 {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rdb.Close()
	if _, ok := storedValue(t, dir, "0", "k78"); ok {
		t.Fatal("written back before the delay")
	}
	n.Close(ctx)
	count := 0
	s, _ := backing.OpenDir(dir, backing.DirOptions{NoSync: true})
	defer s.Close()
	cur := ""
	for {
		page, err := s.List(ctx, "0", backing.ListOptions{Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		count += len(page.Keys)
		if cur = page.Next; cur == "" {
			break
		}
	}
	if count != 500 {
		t.Fatalf("after a graceful stop the store has %d of 500 keys", count)
	}
}

// selectMap selects a map by name on a go-redis connection (go-redis's
// Select takes numbers only).
func selectMap(ctx context.Context, cn *redis.Conn, name string) error {
	cmd := redis.NewStatusCmd(ctx, "select", name)
	cn.Process(ctx, cmd)
	return cmd.Err()
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
