package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func newGoRedis(t *testing.T, ts *testServer, configure func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: ts.addr, DialTimeout: ioTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout}
	if configure != nil {
		configure(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestGoRedis drives the server with go-redis, the common Go client, over
// RESP2 and RESP3.
func TestGoRedis(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			ts := startServer(t, func(c *serverConfig) { c.realClock = true })
			rdb := newGoRedis(t, ts, func(o *redis.Options) { o.Protocol = proto })
			ctx := context.Background()
			check := func(what string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}

			check("Ping", rdb.Ping(ctx).Err())
			if _, err := rdb.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("Get missing: err = %v, want redis.Nil", err)
			}
			check("Set", rdb.Set(ctx, "k", "v", 0).Err())
			if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
				t.Fatalf("Get = %q, %v", v, err)
			}
			if ok, err := rdb.SetNX(ctx, "k", "w", 0).Result(); err != nil || ok {
				t.Fatalf("SetNX on an existing key = %v, %v", ok, err)
			}
			check("Set with TTL", rdb.Set(ctx, "t", "v", time.Hour).Err())
			if d, err := rdb.TTL(ctx, "t").Result(); err != nil || d <= 0 || d > time.Hour {
				t.Fatalf("TTL = %v, %v", d, err)
			}
			if d, err := rdb.PTTL(ctx, "k").Result(); err != nil || d != -1 {
				t.Fatalf("PTTL of a persistent key = %v, %v", d, err)
			}
			if ok, err := rdb.Expire(ctx, "k", time.Minute).Result(); err != nil || !ok {
				t.Fatalf("Expire = %v, %v", ok, err)
			}
			if n, err := rdb.Incr(ctx, "n").Result(); err != nil || n != 1 {
				t.Fatalf("Incr = %d, %v", n, err)
			}
			if n, err := rdb.IncrBy(ctx, "n", 41).Result(); err != nil || n != 42 {
				t.Fatalf("IncrBy = %d, %v", n, err)
			}
			if f, err := rdb.IncrByFloat(ctx, "f", 2.5).Result(); err != nil || f != 2.5 {
				t.Fatalf("IncrByFloat = %v, %v", f, err)
			}
			if err := rdb.Incr(ctx, "k").Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR value is not an integer") {
				t.Fatalf("Incr of a string: err = %v", err)
			}
			check("MSet", rdb.MSet(ctx, "a", "1", "b", "2").Err())
			vals, err := rdb.MGet(ctx, "a", "b", "missing").Result()
			check("MGet", err)
			if !slices.Equal(vals, []any{"1", "2", nil}) {
				t.Fatalf("MGet = %#v", vals)
			}
			if v, err := rdb.GetEx(ctx, "a", time.Hour).Result(); err != nil || v != "1" {
				t.Fatalf("GetEx = %q, %v", v, err)
			}
			if v, err := rdb.GetDel(ctx, "b").Result(); err != nil || v != "2" {
				t.Fatalf("GetDel = %q, %v", v, err)
			}
			if n, err := rdb.Append(ctx, "a", "23").Result(); err != nil || n != 3 {
				t.Fatalf("Append = %d, %v", n, err)
			}
			if v, err := rdb.GetRange(ctx, "a", 1, -1).Result(); err != nil || v != "23" {
				t.Fatalf("GetRange = %q, %v", v, err)
			}
			if n, err := rdb.Exists(ctx, "a", "b", "k").Result(); err != nil || n != 2 {
				t.Fatalf("Exists = %d, %v", n, err)
			}
			if typ, err := rdb.Type(ctx, "a").Result(); err != nil || typ != "string" {
				t.Fatalf("Type = %q, %v", typ, err)
			}
			keys, err := rdb.Keys(ctx, "*").Result()
			check("Keys", err)
			slices.Sort(keys)
			if want := []string{"a", "f", "k", "n", "t"}; !slices.Equal(keys, want) {
				t.Fatalf("Keys = %v, want %v", keys, want)
			}
			var scanned []string
			iter := rdb.Scan(ctx, 0, "*", 2).Iterator()
			for iter.Next(ctx) {
				scanned = append(scanned, iter.Val())
			}
			check("Scan", iter.Err())
			slices.Sort(scanned)
			if !slices.Equal(scanned, keys) {
				t.Fatalf("Scan = %v, want %v", scanned, keys)
			}
			if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 5 {
				t.Fatalf("DBSize = %d, %v", n, err)
			}
			info, err := rdb.Info(ctx, "server").Result()
			check("Info", err)
			if !strings.Contains(info, "redis_version:") {
				t.Fatalf("Info lacks redis_version:\n%s", info)
			}
			check("ClientSetName", rdb.Do(ctx, "CLIENT", "SETNAME", "tester").Err())
			if name, err := rdb.ClientGetName(ctx).Result(); err != nil || name != "tester" {
				t.Fatalf("ClientGetName = %q, %v", name, err)
			}
			check("ConfigGet", rdb.ConfigGet(ctx, "maxmemory").Err())

			// Engram's own commands through Do.
			check("SETSEQ", rdb.Do(ctx, "SETSEQ", 10, "s", "v").Err())
			err = rdb.Do(ctx, "SETSEQ", 9, "s", "w").Err()
			if err == nil || !strings.HasPrefix(err.Error(), "OUTOFSEQ ") {
				t.Fatalf("SETSEQ out of sequence: err = %v, want an OUTOFSEQ error", err)
			}
			if seq, err := rdb.Do(ctx, "SEQUENCE").Int64(); err != nil || seq != 10 {
				t.Fatalf("SEQUENCE = %d, %v", seq, err)
			}
			all, err := rdb.Do(ctx, "GETALL", "a", "zz").Slice()
			check("GETALL", err)
			if len(all) != 2 || fmt.Sprint(all[1]) != "[zz]" {
				t.Fatalf("GETALL = %#v", all)
			}

			check("FlushDB", rdb.FlushDB(ctx).Err())
			if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("DBSize after FlushDB = %d, %v", n, err)
			}
		})
	}
}

func TestGoRedisPipeline(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.realClock = true })
	rdb := newGoRedis(t, ts, nil)
	ctx := context.Background()
	const n = 1000
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			p.Set(ctx, fmt.Sprint("p", i), i, 0)
			p.Incr(ctx, fmt.Sprint("p", i))
			p.Get(ctx, fmt.Sprint("p", i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got := cmds[3*i+2].(*redis.StringCmd).Val(); got != fmt.Sprint(i+1) {
			t.Fatalf("pipelined GET p%d = %q, want %d", i, got, i+1)
		}
	}
}

func TestGoRedisConcurrentClients(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.realClock = true })
	rdb := newGoRedis(t, ts, func(o *redis.Options) { o.PoolSize = 16 })
	ctx := context.Background()
	const workers, ops = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				key := fmt.Sprintf("w%d:%d", w, i)
				if err := rdb.Set(ctx, key, key, 0).Err(); err != nil {
					errs <- err
					return
				}
				if v, err := rdb.Get(ctx, key).Result(); err != nil || v != key {
					errs <- fmt.Errorf("GET %s = %q, %v", key, v, err)
					return
				}
				if err := rdb.Incr(ctx, "shared").Err(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, err := rdb.Get(ctx, "shared").Int(); err != nil || n != workers*ops {
		t.Fatalf("shared counter = %d, %v; want %d", n, err, workers*ops)
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != workers*ops+1 {
		t.Fatalf("DBSize = %d, %v; want %d", n, err, workers*ops+1)
	}
}

// TestGoRedisAuthAndSelect covers the connection setup options: a
// password (sent in HELLO, or with AUTH for RESP2), DB (SELECT n) and a
// client name.
func TestGoRedisAuthAndSelect(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.realClock = true; c.opts.Password = "pw" })
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		rdb := newGoRedis(t, ts, func(o *redis.Options) {
			o.Protocol, o.Password, o.DB, o.ClientName = proto, "pw", 3, "app"
		})
		if err := rdb.Set(ctx, "k", fmt.Sprint("resp", proto), 0).Err(); err != nil {
			t.Fatalf("RESP%d with the password: %v", proto, err)
		}
		if name, err := rdb.ClientGetName(ctx).Result(); err != nil || name != "app" {
			t.Fatalf("ClientGetName = %q, %v", name, err)
		}
	}
	raw := ts.dial(t)
	raw.must("+OK", "AUTH", "pw")
	raw.must("+OK", "SELECT", "3")
	raw.must(`"resp3"`, "GET", "k")

	noPw := newGoRedis(t, ts, nil)
	if err := noPw.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("Ping without the password: err = %v, want NOAUTH", err)
	}
	wrong := newGoRedis(t, ts, func(o *redis.Options) { o.Password = "nope" })
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("Ping with a wrong password: err = %v, want WRONGPASS", err)
	}
}

// TestGoRedisPasswordWithoutServerPassword: like Redis, a server with no
// password accepts a client configured with one (the default user is
// "nopass"), so an application's config can be moved between them.
func TestGoRedisPasswordWithoutServerPassword(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.realClock = true })
	for _, proto := range []int{2, 3} {
		rdb := newGoRedis(t, ts, func(o *redis.Options) { o.Protocol, o.Password = proto, "anything" })
		if err := rdb.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("RESP%d: %v", proto, err)
		}
	}
}
