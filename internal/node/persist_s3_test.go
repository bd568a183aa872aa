package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/engramdb/engram/internal/backing/s3test"
	"github.com/engramdb/engram/internal/config"
)

// TestStoreOutageUnderLoad stops the S3 server (versitygw, killed) for
// 30 seconds while writers run: writes keep being acknowledged from
// memory (until max_dirty refuses them with TRYAGAIN), reads of cached
// keys keep working, a read-through miss fails with a STORE error (not
// "not found"), and after the store returns every acknowledged write
// reaches it.
func TestStoreOutageUnderLoad(t *testing.T) {
	srv := s3test.New(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	outage := 30 * time.Second
	if testing.Short() {
		outage = 5 * time.Second
	}
	n := startNode(t, func(c *config.Config) {
		c.Store = srv.URL("outage")
		c.StoreDefaults = "mode=write-behind delay=100ms max_dirty=20000"
	})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), Protocol: 2, MaxRetries: -1, PoolSize: 16})
	defer rdb.Close()

	// Cached keys for the readers.
	for i := range 100 {
		if err := rdb.Set(ctx, fmt.Sprintf("cached:%d", i), "c", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu      sync.Mutex
		acked   = map[string]string{} // key -> last acknowledged value
		tried   = map[string][]string{}
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		nAcks   atomic.Int64
		nBusy   atomic.Int64
		readErr atomic.Pointer[string]
		reads   atomic.Int64
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d:%d", w, i%500)
				val := fmt.Sprintf("%d-%d", w, i)
				mu.Lock()
				tried[key] = append(tried[key], val)
				mu.Unlock()
				err := rdb.Set(ctx, key, val, 0).Err()
				switch {
				case err == nil:
					mu.Lock()
					acked[key] = val
					tried[key] = nil
					mu.Unlock()
					nAcks.Add(1)
				case strings.HasPrefix(err.Error(), "TRYAGAIN"):
					nBusy.Add(1)
					time.Sleep(5 * time.Millisecond)
				default:
					s := "SET: " + err.Error()
					readErr.Store(&s)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v, err := rdb.Get(ctx, fmt.Sprintf("cached:%d", i%100)).Result()
			if err != nil || v != "c" {
				s := fmt.Sprintf("GET of a cached key during the outage: %q %v", v, err)
				readErr.Store(&s)
				return
			}
			reads.Add(1)
			time.Sleep(time.Millisecond)
		}
	})

	time.Sleep(2 * time.Second)
	before := nAcks.Load()
	srv.Stop()
	stopped := time.Now()
	time.Sleep(2 * time.Second)
	// A miss cannot be answered during the outage: STORE, not nil.
	if err := rdb.Get(ctx, "never-written").Err(); err == nil || errors.Is(err, redis.Nil) || !strings.HasPrefix(err.Error(), "STORE") {
		t.Errorf("GET of an uncached key during the outage: %v, want a STORE error", err)
	}
	time.Sleep(outage - time.Since(stopped))
	during := nAcks.Load() - before
	st, _ := rdb.Do(ctx, "STORESTATUS", "0").Slice()
	srv.Start()
	restarted := time.Now()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if p := readErr.Load(); p != nil {
		t.Fatal(*p)
	}
	t.Logf("outage %v: %d writes acknowledged during it, %d refused with TRYAGAIN (max_dirty), %d cached reads served; status at its end: %v",
		outage, during, nBusy.Load(), reads.Load(), st)
	if during == 0 {
		t.Error("no write was acknowledged during the outage")
	}

	// Everything reaches the store once it is back.
	eventually(t, "nothing pending", func() bool {
		s := n.Persist().Totals()
		return s.Pending == 0
	})
	t.Logf("all pending changes written %v after the store came back", time.Since(restarted).Round(time.Millisecond))
	s3 := srv.Open(t, "outage")
	lost := 0
	for key, want := range acked {
		v, ok, err := s3.Load(ctx, "0", []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		got := string(v)
		if !ok || (got != want && !contains(tried[key], got)) {
			lost++
			if lost <= 5 {
				t.Errorf("%s: acknowledged %q, store has %q (%v)", key, want, got, ok)
			}
		}
	}
	t.Logf("checked %d keys in the store: %d lost", len(acked), lost)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
