package server

import (
	"context"
	"strings"
	"sync"

	"github.com/engramdb/engram/internal/pubsub"
	"github.com/engramdb/engram/internal/resp"
)

// Pub/sub over the Redis protocol (docs/pubsub.md). SUBSCRIBE, PSUBSCRIBE,
// UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH and PUBSUB keep Redis's semantics for
// topics; map and node events arrive on the channels internal/pubsub
// names (__engram@<map>__:write:<key>, __engram@<map>__:delete:<key>,
// __engram__:nodes).
//
// A connection that subscribes gets a subscriber in the node's hub and a
// pusher goroutine that writes its messages. The command goroutine and the
// pusher share the socket under connPubSub.wmu; a (un)subscribe reply is
// written before the lock is released, so no message of a new
// subscription can overtake its confirmation. In RESP2 a connection with
// subscriptions accepts only the pub/sub commands, PING, QUIT and RESET,
// as in Redis; in RESP3 (HELLO 3) messages are push frames and every
// command works.

// connPubSub is a connection's pub/sub state, created on its first
// subscription.
type connPubSub struct {
	sub   *pubsub.Subscriber
	wmu   sync.Mutex // held while writing to the socket
	count int        // channels + patterns (the command goroutine's copy)
	done  chan struct{}
}

func pubsubCommands() []*command {
	return []*command{
		{name: "subscribe", arity: -2, fn: cmdSubscribe},
		{name: "psubscribe", arity: -2, fn: cmdPSubscribe},
		{name: "unsubscribe", arity: -1, fn: cmdUnsubscribe},
		{name: "punsubscribe", arity: -1, fn: cmdPUnsubscribe},
		{name: "publish", arity: 3, fn: cmdPublish},
		{name: "pubsub", arity: -2, fn: cmdPubSub},
	}
}

// Hub returns the node's pub/sub hub.
func (s *Server) Hub() *pubsub.Hub { return s.hub }

// subscribedGate enforces RESP2's subscribed mode, where only pub/sub
// commands, PING, QUIT and RESET run. It reports whether it replied.
func (c *conn) subscribedGate(cmd *command, args [][]byte) bool {
	if c.proto != 2 || c.ps.count == 0 {
		return false
	}
	switch cmd.name {
	case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "quit", "reset":
		return false
	case "ping":
		// Redis answers PING in subscribed mode as a message-like array.
		c.array(2)
		c.bulkString("pong")
		if len(args) > 1 {
			c.bulk(args[1])
		} else {
			c.bulkString("")
		}
		return true
	}
	c.errorf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", cmd.name)
	return true
}

// pubsubState returns the connection's pub/sub state, creating it (and
// its pusher) on first use; nil for a connection that is not a network
// client (API calls, commands forwarded by other nodes).
func (c *conn) pubsubState() *connPubSub {
	if c.ps != nil {
		return c.ps
	}
	if _, ok := c.nc.(nopConn); ok {
		return nil
	}
	ps := &connPubSub{done: make(chan struct{})}
	nc := c.nc
	log := c.s.log
	ps.sub = c.s.hub.NewSubscriber(func() {
		log.Warn("closing a pub/sub client that reads too slowly (output buffer limit reached)",
			"client", nc.RemoteAddr().String())
		nc.Close()
	})
	c.ps = ps
	go c.pusher(ps)
	return ps
}

// closePubSub ends the connection's subscriptions and its pusher (the
// socket is closed already).
func (c *conn) closePubSub() {
	if c.ps == nil {
		return
	}
	c.ps.sub.Close()
	<-c.ps.done
}

// resetPubSub drops every subscription (RESET).
func (c *conn) resetPubSub() {
	if c.ps == nil {
		return
	}
	c.ps.sub.Unsubscribe(context.Background())
	c.ps.sub.PUnsubscribe(context.Background())
	c.ps.count = 0
}

// pusher writes the subscriber's messages to the socket until the
// subscriber closes.
func (c *conn) pusher(ps *connPubSub) {
	defer close(ps.done)
	var msgs []pubsub.Message
	var buf []byte
	for {
		select {
		case <-ps.sub.Ready():
		case <-ps.sub.Done():
			return
		}
		msgs = ps.sub.Take(msgs[:0])
		if len(msgs) == 0 {
			continue
		}
		c.info.Lock()
		proto := c.proto
		c.info.Unlock()
		ps.wmu.Lock()
		for i := range msgs {
			buf = appendMessage(buf, &msgs[i], proto)
			if len(buf) >= 64<<10 || i == len(msgs)-1 {
				n, err := c.nc.Write(buf)
				c.s.netOut.Add(int64(n))
				buf = buf[:0]
				if err != nil {
					ps.wmu.Unlock()
					c.nc.Close() // the command goroutine sees it and ends
					return
				}
			}
		}
		ps.wmu.Unlock()
		clear(msgs)
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

// appendMessage encodes a delivery as Redis does: message or pmessage,
// an array in RESP2 and a push frame in RESP3.
func appendMessage(b []byte, m *pubsub.Message, proto int) []byte {
	if m.Pattern != "" {
		b = resp.AppendPushHeader(b, 4, proto)
		b = resp.AppendBulkString(b, "pmessage")
		b = resp.AppendBulkString(b, m.Pattern)
	} else {
		b = resp.AppendPushHeader(b, 3, proto)
		b = resp.AppendBulkString(b, "message")
	}
	b = resp.AppendBulkString(b, m.Channel)
	return resp.AppendBulk(b, m.Payload)
}

// subscribeReply appends one (un)subscribe confirmation.
func (c *conn) subscribeReply(kind string, name *string, count int) {
	c.out = resp.AppendPushHeader(c.out, 3, c.proto)
	c.bulkString(kind)
	if name == nil {
		c.null()
	} else {
		c.bulkString(*name)
	}
	c.int(int64(count))
}

// subscribeCmd runs one of the four (un)subscribe commands: under the
// write lock, so the confirmation is written before any message of the
// new subscription.
func subscribeCmd(c *conn, kind string, run func(*pubsub.Subscriber) ([]string, []int)) {
	ps := c.pubsubState()
	if ps == nil {
		c.errorf("ERR %s is only available to Redis protocol clients", strings.ToUpper(kind))
		return
	}
	ps.wmu.Lock()
	defer ps.wmu.Unlock()
	names, counts := run(ps.sub)
	if len(names) == 0 {
		// UNSUBSCRIBE with nothing subscribed: one reply with a null name.
		c.subscribeReply(kind, nil, ps.sub.Count())
	}
	for i := range names {
		c.subscribeReply(kind, &names[i], counts[i])
	}
	if len(counts) > 0 {
		ps.count = counts[len(counts)-1]
	} else {
		ps.count = ps.sub.Count()
	}
	c.writeOut()
}

func strArgs(a [][]byte) []string {
	out := make([]string, len(a))
	for i, b := range a {
		out[i] = string(b)
	}
	return out
}

func cmdSubscribe(c *conn, a [][]byte) {
	names := strArgs(a[1:])
	subscribeCmd(c, "subscribe", func(s *pubsub.Subscriber) ([]string, []int) {
		return names, s.Subscribe(c.ctx(), names...)
	})
}

func cmdPSubscribe(c *conn, a [][]byte) {
	names := strArgs(a[1:])
	subscribeCmd(c, "psubscribe", func(s *pubsub.Subscriber) ([]string, []int) {
		return names, s.PSubscribe(c.ctx(), names...)
	})
}

func cmdUnsubscribe(c *conn, a [][]byte) {
	names := strArgs(a[1:])
	subscribeCmd(c, "unsubscribe", func(s *pubsub.Subscriber) ([]string, []int) {
		return s.Unsubscribe(c.ctx(), names...)
	})
}

func cmdPUnsubscribe(c *conn, a [][]byte) {
	names := strArgs(a[1:])
	subscribeCmd(c, "punsubscribe", func(s *pubsub.Subscriber) ([]string, []int) {
		return s.PUnsubscribe(c.ctx(), names...)
	})
}

func cmdPublish(c *conn, a [][]byte) {
	n, err := c.s.hub.Publish(c.ctx(), string(a[1]), a[2])
	if err != nil && n == 0 {
		c.err("ERR " + oneLine(err.Error()))
		return
	}
	if err != nil {
		c.s.log.Debug("PUBLISH did not reach every node", "channel", trunc(a[1]), "err", err)
	}
	c.int(int64(n))
}

// cmdPubSub: PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT |
// HELP, for this node's subscribers (as Redis Cluster answers for one
// node).
func cmdPubSub(c *conn, a [][]byte) {
	sub := strings.ToLower(string(a[1]))
	switch {
	case sub == "channels" && len(a) <= 3:
		pat := ""
		if len(a) == 3 {
			pat = string(a[2])
		}
		chs := c.s.hub.ActiveChannels(pat)
		c.array(len(chs))
		for _, ch := range chs {
			c.bulkString(ch)
		}
	case sub == "numsub":
		c.array(2 * (len(a) - 2))
		for _, ch := range a[2:] {
			c.bulk(ch)
			c.int(int64(c.s.hub.NumSub(string(ch))))
		}
	case sub == "numpat" && len(a) == 2:
		c.int(int64(c.s.hub.NumPat()))
	case sub == "help" && len(a) == 2:
		lines := []string{
			"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"CHANNELS [<pattern>]",
			"    Return the currently active channels matching a <pattern> (default: '*').",
			"NUMPAT",
			"    Return number of subscriptions to patterns.",
			"NUMSUB [<channel> ...]",
			"    Return the number of subscribers for the specified channels, excluding",
			"    pattern subscriptions(default: no channels).",
			"HELP",
			"    Print this help.",
		}
		c.array(len(lines))
		for _, l := range lines {
			c.simple(l)
		}
	default:
		c.errorf("ERR unknown subcommand '%s'. Try PUBSUB HELP.", trunc(a[1]))
	}
}
