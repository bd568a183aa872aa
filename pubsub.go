package engram

import (
	"context"
	"errors"

	"github.com/engramdb/engram/internal/pubsub"
)

// Pub/sub in the Go API (docs/pubsub.md): the same hub, channels and
// guarantees as SUBSCRIBE over the Redis protocol and GET /v1/events, for
// subscribers in this process. Events produced anywhere in the cluster
// reach them. Node events are also available as callbacks through
// OnNodeEvent.

// Channel names of events, for Subscription.Subscribe and PSubscribe.
const (
	// NodeEventsChannel carries node events (jc_node_events).
	NodeEventsChannel = pubsub.NodeChannel
)

// EventType says what an Event is.
type EventType string

// Event types.
const (
	EventTopic  EventType = pubsub.TypeTopic  // a message published on a topic
	EventWrite  EventType = pubsub.TypeWrite  // a key was written (Value is the new value)
	EventDelete EventType = pubsub.TypeDelete // a key was deleted (Reason says why)
	EventNode   EventType = pubsub.TypeNode   // a node came up or went down (Node)
)

// MapEventKind selects the map events a subscription receives.
type MapEventKind uint8

// Map event kinds (jc's write, delete, any).
const (
	MapWrites MapEventKind = 1 << iota
	MapDeletes
	MapAny = MapWrites | MapDeletes
)

// ErrSlowSubscriber ends a subscription whose events were not consumed
// fast enough: its queue passed its bound (32 MiB), and the subscription
// was closed rather than let it grow or hold up writers.
var ErrSlowSubscriber = pubsub.ErrOverflow

// Event is one delivery to a subscription.
type Event struct {
	Type EventType
	// Channel is the channel the event came on; Pattern the subscribed
	// pattern that matched it ("" for a channel subscription).
	Channel, Pattern string
	// Map and Key name the key of a write or delete.
	Map, Key string
	// Value is a topic message, or the new value of a write. It is the
	// subscription's own copy but shared with other subscribers of this
	// node: do not modify it.
	Value []byte
	// Reason says why a key was deleted: "delete", "expired", "evicted"
	// or "cleared" (a silent flush sends no events).
	Reason string
	// Node is set for a node event.
	Node *NodeEvent
}

// Subscription receives topic messages, map events and node events until
// it is closed. Create it with Node.NewSubscription, then add channels,
// patterns and map events to it. Safe for concurrent use.
type Subscription struct {
	sub  *pubsub.Subscriber
	ch   chan Event
	fn   func(Event)
	done chan struct{}
}

// NewSubscription returns an empty subscription. With fn nil, events
// arrive on Events (read it: an unread subscription is closed when its
// queue passes its bound, see ErrSlowSubscriber); otherwise fn is called
// with each event, in order, on a goroutine of the subscription's own
// (later events wait for it; writers never do).
func (n *Node) NewSubscription(fn func(Event)) *Subscription {
	s := &Subscription{sub: n.node.PubSub().NewSubscriber(nil), fn: fn, done: make(chan struct{})}
	if fn == nil {
		s.ch = make(chan Event, 64)
	}
	go s.run()
	return s
}

// Publish sends msg to the subscribers of topic on every node of the
// cluster and returns how many received it. Topics starting with
// "__engram" are Engram's own and refused.
func (n *Node) Publish(ctx context.Context, topic string, msg []byte) (int, error) {
	if err := n.check(ctx); err != nil {
		return 0, err
	}
	return n.node.PubSub().Publish(ctx, topic, msg)
}

// Subscribe adds topics (or event channels, such as NodeEventsChannel).
// Events published after it returns are delivered.
func (s *Subscription) Subscribe(ctx context.Context, channels ...string) error {
	if err := s.open(); err != nil {
		return err
	}
	s.sub.Subscribe(ctx, channels...)
	return nil
}

// PSubscribe adds Redis glob patterns of topics. Event channels match
// only patterns that begin with "__engram" (docs/pubsub.md).
func (s *Subscription) PSubscribe(ctx context.Context, patterns ...string) error {
	if err := s.open(); err != nil {
		return err
	}
	s.sub.PSubscribe(ctx, patterns...)
	return nil
}

// SubscribeMap adds the events of kind on keys of map mapName: the keys
// given, or every key of the map if none is given (jc map_subscribe).
func (s *Subscription) SubscribeMap(ctx context.Context, mapName string, kind MapEventKind, keys ...string) error {
	if err := s.open(); err != nil {
		return err
	}
	if kind&MapAny == 0 {
		return errors.New("engram: SubscribeMap needs MapWrites, MapDeletes or MapAny")
	}
	var channels, patterns []string
	for _, k := range []struct {
		bit  MapEventKind
		kind pubsub.Kind
	}{{MapWrites, pubsub.Write}, {MapDeletes, pubsub.Delete}} {
		if kind&k.bit == 0 {
			continue
		}
		if len(keys) == 0 {
			patterns = append(patterns, pubsub.MapPattern(mapName, k.kind))
		}
		for _, key := range keys {
			channels = append(channels, pubsub.MapChannel(mapName, k.kind, key))
		}
	}
	if len(channels) > 0 {
		s.sub.Subscribe(ctx, channels...)
	}
	if len(patterns) > 0 {
		s.sub.PSubscribe(ctx, patterns...)
	}
	return nil
}

// Unsubscribe removes channels (every channel if none is given).
func (s *Subscription) Unsubscribe(ctx context.Context, channels ...string) {
	s.sub.Unsubscribe(ctx, channels...)
}

// PUnsubscribe removes patterns (every pattern if none is given).
func (s *Subscription) PUnsubscribe(ctx context.Context, patterns ...string) {
	s.sub.PUnsubscribe(ctx, patterns...)
}

// Events returns the channel events arrive on (nil for a subscription
// with a callback). It is closed when the subscription ends.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Err returns why the subscription ended: nil while it runs, ErrClosed
// after Close, ErrSlowSubscriber if it fell too far behind.
func (s *Subscription) Err() error {
	switch err := s.sub.Err(); {
	case err == nil:
		return nil
	case errors.Is(err, pubsub.ErrClosed):
		return ErrClosed
	default:
		return err
	}
}

// Close ends the subscription. Events not yet delivered are dropped.
func (s *Subscription) Close() {
	s.sub.Close()
	<-s.done
}

func (s *Subscription) open() error {
	if err := s.Err(); err != nil {
		return err
	}
	return nil
}

// run delivers queued events until the subscriber closes.
func (s *Subscription) run() {
	defer func() {
		if s.ch != nil {
			close(s.ch)
		}
		close(s.done)
	}()
	var msgs []pubsub.Message
	for {
		select {
		case <-s.sub.Ready():
		case <-s.sub.Done():
			return
		}
		msgs = s.sub.Take(msgs[:0])
		for i := range msgs {
			ev := toEvent(pubsub.Decode(msgs[i]))
			if s.fn != nil {
				s.fn(ev)
				continue
			}
			select {
			case s.ch <- ev:
			case <-s.sub.Done():
				return
			}
		}
		clear(msgs)
	}
}

func toEvent(e pubsub.Event) Event {
	ev := Event{Type: EventType(e.Type), Channel: e.Channel, Pattern: e.Pattern, Map: e.Map, Key: e.Key,
		Value: e.Value, Reason: e.Reason}
	if e.Node != nil {
		ev.Node = &NodeEvent{Up: e.Node.Event == "nodeup", Node: e.Node.Node, Left: e.Node.Left,
			Active: e.Node.Active, Configured: e.Node.Configured}
	}
	return ev
}
