package server

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/pubsub"
	"github.com/engramdb/engram/internal/resp"
	"github.com/redis/go-redis/v9"
)

// psStep sends cmd on connection conn (none if cmd is "") and reads one
// reply per want; a want that starts with "sorted:" is the set of the next
// replies' renderings, in any order, and one that starts with "elems:" a
// reply whose elements may come in any order (Redis walks hash tables).
type psStep struct {
	conn int
	cmd  string
	want []string
}

// pubsubScript is played on Engram and on a real redis-server: both must
// give exactly these replies.
var pubsubScript = []psStep{
	{0, "SUBSCRIBE", []string{"-ERR wrong number of arguments for 'subscribe' command"}},
	{0, "SUBSCRIBE news sport news", []string{`["subscribe" "news" :1]`, `["subscribe" "sport" :2]`, `["subscribe" "news" :2]`}},
	{0, "PSUBSCRIBE n* *s*", []string{`["psubscribe" "n*" :3]`, `["psubscribe" "*s*" :4]`}},
	{0, "GET x", []string{"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"}},
	{0, "PING", []string{`["pong" ""]`}},
	{0, "PING hi", []string{`["pong" "hi"]`}},
	{1, "PUBLISH news hello", []string{":3"}},
	{0, "", []string{`["message" "news" "hello"]`}},
	// Redis walks its pattern table in hash order.
	{0, "", []string{`sorted:["pmessage" "n*" "news" "hello"]|["pmessage" "*s*" "news" "hello"]`}},
	{1, "PUBLISH xyz x", []string{":0"}},
	{1, "PUBLISH \"a\\x00b\" \"bin\\xff\\r\\n\"", []string{":0"}},
	{1, "PUBLISH", []string{"-ERR wrong number of arguments for 'publish' command"}},
	{1, "PUBSUB CHANNELS", []string{`elems:["news" "sport"]`}},
	{1, "PUBSUB CHANNELS s*", []string{`["sport"]`}},
	{1, "PUBSUB NUMSUB news sport none", []string{`["news" :1 "sport" :1 "none" :0]`}},
	{1, "PUBSUB NUMSUB", []string{`[]`}},
	{1, "PUBSUB NUMPAT", []string{":2"}},
	{1, "PUBSUB NOPE", []string{"-ERR unknown subcommand 'NOPE'. Try PUBSUB HELP."}},
	{0, "UNSUBSCRIBE news nothere", []string{`["unsubscribe" "news" :3]`, `["unsubscribe" "nothere" :3]`}},
	{1, "PUBLISH sport s", []string{":2"}},
	{0, "", []string{`["message" "sport" "s"]`, `["pmessage" "*s*" "sport" "s"]`}},
	{0, "PUNSUBSCRIBE *s*", []string{`["punsubscribe" "*s*" :2]`}},
	{0, "PUNSUBSCRIBE", []string{`["punsubscribe" "n*" :1]`}},
	{0, "UNSUBSCRIBE", []string{`["unsubscribe" "sport" :0]`}},
	{0, "GET x", []string{"(nil)"}},
	{0, "UNSUBSCRIBE", []string{`["unsubscribe" (nil) :0]`}},
	{0, "PUNSUBSCRIBE", []string{`["punsubscribe" (nil) :0]`}},
	// RESET leaves subscribed mode.
	{0, "SUBSCRIBE a", []string{`["subscribe" "a" :1]`}},
	{0, "RESET", []string{"+RESET"}},
	{0, "GET x", []string{"(nil)"}},
	{1, "PUBLISH a x", []string{":0"}},
	// RESP3: push frames, and every command works while subscribed.
	{2, "SUBSCRIBE r3", []string{`>["subscribe" "r3" :1]`}},
	{2, "GET x", []string{"_"}},
	{2, "PING", []string{"+PONG"}},
	{1, "PUBLISH r3 v", []string{":1"}},
	{2, "", []string{`>["message" "r3" "v"]`}},
	{2, "UNSUBSCRIBE", []string{`>["unsubscribe" "r3" :0]`}},
	{2, "UNSUBSCRIBE", []string{`>["unsubscribe" _ :0]`}},
}

func playPubSub(t *testing.T, conns []*client) {
	t.Helper()
	for i, s := range pubsubScript {
		c := conns[s.conn]
		if s.cmd != "" {
			c.write(encode(splitArgs(t, s.cmd)...))
		}
		if len(s.want) == 1 && strings.HasPrefix(s.want[0], "sorted:") {
			want := strings.Split(strings.TrimPrefix(s.want[0], "sorted:"), "|")
			var got []string
			for range want {
				got = append(got, render(c.read()))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("step %d (%s on %d): got %v, want %v", i, s.cmd, s.conn, got, want)
			}
			continue
		}
		if len(s.want) == 1 && strings.HasPrefix(s.want[0], "elems:") {
			v := c.read()
			slices.SortFunc(v.Elems, func(a, b resp.Value) int { return strings.Compare(render(a), render(b)) })
			if got := render(v); got != strings.TrimPrefix(s.want[0], "elems:") {
				t.Errorf("step %d (%s on %d): got %s, want %s", i, s.cmd, s.conn, got, s.want[0])
			}
			continue
		}
		for _, w := range s.want {
			if got := render(c.read()); got != w {
				t.Fatalf("step %d (%s on %d):\n got  %s\n want %s", i, s.cmd, s.conn, got, w)
			}
		}
	}
}

func TestPubSubScriptEngram(t *testing.T) {
	ts := startServer(t)
	conns := []*client{ts.dial(t), ts.dial(t), ts.dial(t)}
	conns[2].do("HELLO", "3")
	playPubSub(t, conns)
}

func TestPubSubScriptRedis(t *testing.T) {
	r := startRedis(t)
	conns := []*client{r.dial(t), r.dial(t), r.dial(t)}
	conns[2].do("HELLO", "3")
	playPubSub(t, conns)
}

// startHubServer starts a server whose store reports to a hub, as a
// standalone node is wired.
func startHubServer(t *testing.T, hubOpts pubsub.Options, configure ...func(*serverConfig)) (*testServer, *pubsub.Hub) {
	h := pubsub.New(hubOpts)
	ts := startServer(t, append([]func(*serverConfig){func(c *serverConfig) {
		c.storeOpts.Observer = h
		c.opts.PubSub = h
	}}, configure...)...)
	return ts, h
}

func TestPubSubMapEventsRESP(t *testing.T) {
	ts, _ := startHubServer(t, pubsub.Options{})
	sub, w := ts.dial(t), ts.dial(t)
	sub.must(`["subscribe" "__engram@0__:write:k" :1]`, "SUBSCRIBE", "__engram@0__:write:k")
	sub.must(`["psubscribe" "__engram@0__:delete:*" :2]`, "PSUBSCRIBE", "__engram@0__:delete:*")
	sub.must(`["subscribe" "__engram__:nodes" :3]`, "SUBSCRIBE", "__engram__:nodes")
	w.must("+OK", "SET", "k", "v1")
	w.must("+OK", "SET", "other", "x") // nobody listens to writes of other
	w.must(":1", "DEL", "other")
	w.must("+OK", "SET", "t", "x", "PX", "1000")
	ts.clock.advance(2000)
	w.must("(nil)", "GET", "t") // expired: removed on access or by the sweeper
	ts.st.Sweep(context.Background())
	w.must("+OK", "FLUSHDB")
	want := []string{
		`["message" "__engram@0__:write:k" "v1"]`,
		`["pmessage" "__engram@0__:delete:*" "__engram@0__:delete:other" "delete"]`,
		`["pmessage" "__engram@0__:delete:*" "__engram@0__:delete:t" "expired"]`,
		`["pmessage" "__engram@0__:delete:*" "__engram@0__:delete:k" "cleared"]`,
	}
	for _, w := range want {
		if got := render(sub.read()); got != w {
			t.Fatalf("got %s, want %s", got, w)
		}
	}
	w.must("-ERR channels starting with __engram are reserved for Engram's events", "PUBLISH", "__engram@0__:write:k", "forged")
}

// TestPubSubSlowClientDisconnected: a RESP subscriber that never reads is
// disconnected when its queue passes the bound; the writer never waits.
func TestPubSubSlowClientDisconnected(t *testing.T) {
	ts, h := startHubServer(t, pubsub.Options{MaxQueueBytes: 1 << 20})
	sub := ts.dial(t)
	sub.must(`["psubscribe" "__engram@0__:*" :1]`, "PSUBSCRIBE", "__engram@0__:*")
	// The subscriber reads nothing from now on. Its socket buffers fill,
	// the pusher blocks, the queue grows to the bound.
	w := ts.dial(t)
	val := strings.Repeat("v", 4096)
	var cmds []byte
	for i := range 100 {
		cmds = append(cmds, encode("SET", fmt.Sprint("k", i), val)...)
	}
	for round := 0; h.Stats().Overflows == 0; round++ {
		if round > 10000 {
			t.Fatal("no overflow after a GB of events")
		}
		w.write(cmds)
		for range 100 {
			if v := w.read(); v.Kind != '+' {
				t.Fatalf("write failed: %s", render(v))
			}
		}
	}
	st := h.Stats()
	if st.Overflows != 1 || st.Dropped == 0 {
		t.Fatalf("stats %+v", st)
	}
	// The subscriber's connection is closed: reading drains what was
	// sent before, then EOF.
	sub.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 1<<20)
	for {
		_, err := sub.nc.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("slow subscriber not disconnected")
			}
			break
		}
	}
	waitFor(t, "the subscriber to be removed", func() bool { return h.Stats().Subscribers == 0 })
}

func TestPubSubGoRedis(t *testing.T) {
	ts, _ := startHubServer(t, pubsub.Options{})
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprint("resp", proto), func(t *testing.T) {
			ctx := context.Background()
			rdb := newGoRedis(t, ts, func(o *redis.Options) { o.Protocol = proto })
			ps := rdb.PSubscribe(ctx, "__engram@0__:write:*", "chat.*")
			defer ps.Close()
			if _, err := ps.Receive(ctx); err != nil { // the first confirmation
				t.Fatal(err)
			}
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			if err := ps.Subscribe(ctx, "news"); err != nil {
				t.Fatal(err)
			}
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := rdb.Publish(ctx, "news", "n1").Result(); err != nil || n != 1 {
				t.Fatalf("publish news: %d %v", n, err)
			}
			if n, err := rdb.Publish(ctx, "chat.room", "c1").Result(); err != nil || n != 1 {
				t.Fatalf("publish chat: %d %v", n, err)
			}
			if err := rdb.Set(ctx, "key", "value", 0).Err(); err != nil {
				t.Fatal(err)
			}
			ch := ps.Channel()
			var got []string
			for len(got) < 3 {
				select {
				case m := <-ch:
					got = append(got, m.Pattern+"|"+m.Channel+"="+m.Payload)
				case <-time.After(ioTimeout):
					t.Fatalf("got only %v", got)
				}
			}
			want := []string{"|news=n1", "chat.*|chat.room=c1", "__engram@0__:write:*|__engram@0__:write:key=value"}
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			chans, err := rdb.PubSubChannels(ctx, "*").Result()
			if err != nil || !slices.Equal(chans, []string{"news"}) {
				t.Fatalf("PUBSUB CHANNELS: %v %v", chans, err)
			}
		})
	}
}

// TestPubSubNotForAPI: the API path (Server.Do) cannot subscribe.
func TestPubSubNotForAPI(t *testing.T) {
	ts, h := startHubServer(t, pubsub.Options{})
	out := ts.srv.Do(context.Background(), "0", [][]byte{[]byte("SUBSCRIBE"), []byte("x")}, false, 0, false)
	if !strings.HasPrefix(string(out), "-ERR SUBSCRIBE is only available") {
		t.Fatalf("Do SUBSCRIBE: %q", out)
	}
	s := h.NewSubscriber(nil)
	s.Subscribe(context.Background(), "x")
	out = ts.srv.Do(context.Background(), "0", [][]byte{[]byte("PUBLISH"), []byte("x"), []byte("y")}, false, 0, false)
	if string(out) != ":1\r\n" {
		t.Fatalf("Do PUBLISH: %q", out)
	}
}
