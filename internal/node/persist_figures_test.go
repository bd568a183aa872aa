package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/engramdb/engram/internal/backing/s3test"
	"github.com/engramdb/engram/internal/config"
)

// TestStoreFigures measures the backing store's figures against a real
// S3-compatible server (versitygw on loopback): the store writes a skewed
// workload saves, read-through hit and miss latency next to a direct S3
// GET, and write-back throughput. It only reports (no timing is
// asserted) and runs when ENGRAM_FIGURES=1 (scripts/bench-store.sh).
func TestStoreFigures(t *testing.T) {
	if os.Getenv("ENGRAM_FIGURES") != "1" {
		t.Skip("set ENGRAM_FIGURES=1 (scripts/bench-store.sh) to measure the backing-store figures")
	}
	srv := s3test.New(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	n := startNode(t, func(c *config.Config) {
		c.Store = srv.URL("fig")
		c.StoreDefaults = "mode=write-behind delay=1s batch=200"
	})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), Protocol: 2, PoolSize: 32})
	defer rdb.Close()

	// 1. Writes saved: 16 clients, Zipf(1.1) over 100,000 keys, 20 s.
	const keys = 100_000
	dur := 10 * time.Second
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	stop := time.Now().Add(dur)
	for c := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 7))
			z := rand.NewZipf(r, 1.1, 1, keys-1)
			local := 0
			for time.Now().Before(stop) {
				pipe := rdb.Pipeline()
				for range 50 {
					pipe.Set(ctx, fmt.Sprintf("z:%d", z.Uint64()), "v", 0)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					t.Error(err)
					return
				}
				local += 50
			}
			mu.Lock()
			sent += local
			mu.Unlock()
		})
	}
	wg.Wait()
	drainStart := time.Now()
	waitLong(t, "write-back of the skewed workload", func() bool { return n.Persist().Totals().Pending == 0 })
	tot := n.Persist().Totals()
	t.Logf("the write-back of the workload's last changes took %v after it stopped", time.Since(drainStart).Round(time.Millisecond))
	t.Logf("skewed writes (Zipf 1.1 over %d keys, 16 clients, %v, delay 1s): %d writes, %d store writes: %.1fx fewer (%d distinct keys written)",
		keys, dur, tot.Received, tot.Written, float64(tot.Received)/float64(max(tot.Written, 1)), tot.Written)

	// 2. Read-through: hit (cached) and miss (loaded) latency, and a
	// direct S3 GET of the same objects.
	s3 := srv.Open(t, "fig")
	var direct, hit, miss []time.Duration
	for i := range 500 {
		key := fmt.Sprintf("r:%d", i)
		if err := s3.Store(ctx, "0", []byte(key), []byte(strings.Repeat("x", 100))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		key := fmt.Sprintf("r:%d", i)
		t0 := time.Now()
		if _, _, err := s3.Load(ctx, "0", []byte(key)); err != nil {
			t.Fatal(err)
		}
		direct = append(direct, time.Since(t0))
		t0 = time.Now()
		if err := rdb.Get(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		miss = append(miss, time.Since(t0))
		t0 = time.Now()
		if err := rdb.Get(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		hit = append(hit, time.Since(t0))
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	p99 := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)*99/100] }
	t.Logf("100-byte values: direct S3 GET median %v (p99 %v); Engram read-through miss %v (p99 %v); Engram hit %v (p99 %v): a hit is %.0fx faster than S3",
		med(direct), p99(direct), med(miss), p99(miss), med(hit), p99(hit), float64(med(direct))/float64(med(hit)))

	// 3. Write-back throughput: 20,000 distinct keys written at once, then
	// written back by the background write-back (after the 1 s delay),
	// and 20,000 more by SAVEMAP.
	for round, how := range []string{"background write-back", "SAVEMAP"} {
		if how == "SAVEMAP" {
			rdb.Do(ctx, "STORECONFIG", "0", "delay", "1h")
		}
		pipe := rdb.Pipeline()
		for i := range 20_000 {
			pipe.Set(ctx, fmt.Sprintf("f%d:%d", round, i), strings.Repeat("y", 100), 0)
			if i%1000 == 999 {
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		before := n.Persist().Totals().Written
		t0 := time.Now()
		if how == "SAVEMAP" {
			slow := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), Protocol: 2, ReadTimeout: 5 * time.Minute})
			if err := slow.Do(ctx, "SAVEMAP").Err(); err != nil {
				t.Fatal(err)
			}
			slow.Close()
		}
		waitLong(t, "write-back of 20,000 keys", func() bool { return n.Persist().Totals().Pending == 0 })
		el := time.Since(t0)
		if how != "SAVEMAP" {
			el -= time.Second // the delay
		}
		w := n.Persist().Totals().Written - before
		t.Logf("%s: %d objects of 100 bytes in %v: %.0f objects/s", how, w, el.Round(time.Millisecond), float64(w)/el.Seconds())
	}
}

func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
