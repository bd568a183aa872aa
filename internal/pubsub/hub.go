package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/engramdb/engram/internal/glob"
	"github.com/engramdb/engram/internal/store"
)

// ErrOverflow is the reason a subscriber was disconnected: its queue
// passed Options.MaxQueueBytes because it did not read fast enough.
var ErrOverflow = errors.New("pub/sub subscriber disconnected: output buffer limit reached (it reads slower than messages arrive)")

// ErrClosed is the reason of a subscriber closed by its owner.
var ErrClosed = errors.New("pub/sub subscriber closed")

// ErrReserved refuses a publication on an event channel.
var ErrReserved = errors.New("channels starting with " + ReservedPrefix + " are reserved for Engram's events")

// Message is one delivery to a subscriber.
type Message struct {
	// Channel is the channel it was published on.
	Channel string
	// Pattern is the subscribed pattern that matched, or "" for a channel
	// subscription.
	Pattern string
	// Payload is the message (a topic's value, a written value, a delete
	// reason, a node event's JSON). Shared between receivers: read only.
	Payload []byte
}

// size is what a queued message counts against the queue bound.
func (m *Message) size() int64 { return int64(len(m.Channel)+len(m.Pattern)+len(m.Payload)) + 64 }

// Options tune a Hub.
type Options struct {
	// MaxQueueBytes bounds each subscriber's queue (default 32 MiB); a
	// subscriber that would pass it is disconnected (ErrOverflow).
	MaxQueueBytes int64
}

// Interest is what a node's subscribers want from the other nodes.
type Interest struct {
	// Topics: some subscriber may receive topic messages.
	Topics bool
	// AllMaps: some pattern may match the events of any map.
	AllMaps bool
	// Maps names the maps some subscriber wants events of, sorted.
	Maps []string
}

// Equal reports whether two interests are the same.
func (in Interest) Equal(o Interest) bool {
	return in.Topics == o.Topics && in.AllMaps == o.AllMaps && slices.Equal(in.Maps, o.Maps)
}

// Remote carries pub/sub between nodes (the cluster's data plane).
type Remote interface {
	// Publish delivers a topic message to the other nodes' subscribers
	// and returns how many received it there.
	Publish(ctx context.Context, channel string, payload []byte) (int, error)
	// InterestChanged tells the other nodes what this node's subscribers
	// now want; it returns once they know (or ctx ends).
	InterestChanged(ctx context.Context, in Interest)
}

// Stats count a hub's work.
type Stats struct {
	// Subscribers is the number of open subscribers; Channels and
	// Patterns the distinct channels and patterns subscribed.
	Subscribers, Channels, Patterns int
	// Published counts messages published on this node (PUBLISH), and
	// Delivered the messages queued to subscribers here (every kind).
	Published, Delivered int64
	// MapEvents and NodeEvents count the events that reached at least
	// the matching step (someone could want them).
	MapEvents, NodeEvents int64
	// Overflows counts subscribers disconnected for a full queue, and
	// Dropped the messages their queues held (or could not take).
	Overflows, Dropped int64
}

// Hub is one node's pub/sub hub. Safe for concurrent use.
type Hub struct {
	max int64

	mu       sync.RWMutex
	subs     map[*Subscriber]struct{}
	channels map[string]map[*Subscriber]struct{}
	patterns map[string]*pattern // every subscribed pattern
	topicPat []*pattern          // patterns matching topics
	eventPat []*pattern          // patterns matching any event channel
	mapPat   map[string][]*pattern
	mapSubs  map[string]int // map -> exact channels and map patterns naming it
	topics   int            // exact topic channels subscribed
	// watch is nonzero when some subscriber wants some map's events: the
	// store's hot path checks it and returns at once otherwise.
	watch atomic.Int32

	remote atomic.Pointer[remoteBox]

	announceMu sync.Mutex
	announced  Interest

	published, delivered, mapEvents, nodeEvents, overflows, dropped atomic.Int64
}

type remoteBox struct{ r Remote }

type pattern struct {
	p     string
	scope patternScope
	subs  map[*Subscriber]struct{}
}

// New returns an empty hub.
func New(o Options) *Hub {
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 32 << 20
	}
	return &Hub{max: o.MaxQueueBytes, subs: map[*Subscriber]struct{}{}, channels: map[string]map[*Subscriber]struct{}{},
		patterns: map[string]*pattern{}, mapPat: map[string][]*pattern{}, mapSubs: map[string]int{}}
}

// SetRemote plugs in the carrier to other nodes (nil: this node alone).
// It announces the current interest.
func (h *Hub) SetRemote(r Remote) {
	if r == nil {
		h.remote.Store(nil)
		return
	}
	h.remote.Store(&remoteBox{r})
	h.announceMu.Lock()
	h.announced = Interest{}
	h.announceMu.Unlock()
	h.announce(context.Background())
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	st := Stats{Subscribers: len(h.subs), Channels: len(h.channels), Patterns: len(h.patterns)}
	h.mu.RUnlock()
	st.Published, st.Delivered = h.published.Load(), h.delivered.Load()
	st.MapEvents, st.NodeEvents = h.mapEvents.Load(), h.nodeEvents.Load()
	st.Overflows, st.Dropped = h.overflows.Load(), h.dropped.Load()
	return st
}

// Interest returns what this node's subscribers want.
func (h *Hub) Interest() Interest {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.interestLocked()
}

func (h *Hub) interestLocked() Interest {
	in := Interest{Topics: h.topics > 0 || len(h.topicPat) > 0, AllMaps: len(h.eventPat) > 0}
	for m := range h.mapSubs {
		in.Maps = append(in.Maps, m)
	}
	slices.Sort(in.Maps)
	return in
}

// announce tells the remote about a changed interest, in order.
func (h *Hub) announce(ctx context.Context) {
	rb := h.remote.Load()
	if rb == nil {
		return
	}
	h.announceMu.Lock()
	defer h.announceMu.Unlock()
	in := h.Interest()
	if in.Equal(h.announced) {
		return
	}
	h.announced = in
	rb.r.InterestChanged(ctx, in)
}

// WantsMap reports whether some subscriber here may want events of map m.
func (h *Hub) WantsMap(m string) bool {
	if h.watch.Load() == 0 {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.mapSubs[m] > 0 || len(h.eventPat) > 0
}

// Subscriber is one subscription holder (a connection, an HTTP stream, a
// Go subscription): its channels, patterns and bounded queue.
type Subscriber struct {
	h *Hub
	// Guarded by h.mu.
	channels map[string]struct{}
	patterns map[string]struct{}

	mu     sync.Mutex
	queue  []Message
	head   int
	bytes  int64
	closed bool
	err    error
	ready  chan struct{}
	done   chan struct{}

	onOverflow func()
}

// NewSubscriber registers a subscriber with no subscriptions.
// onOverflow, if set, runs (in its own goroutine) when the subscriber is
// disconnected for a full queue.
func (h *Hub) NewSubscriber(onOverflow func()) *Subscriber {
	s := &Subscriber{h: h, channels: map[string]struct{}{}, patterns: map[string]struct{}{},
		ready: make(chan struct{}, 1), done: make(chan struct{}), onOverflow: onOverflow}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Ready is signalled when messages are queued.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Done is closed when the subscriber is closed (Close or overflow).
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// Err returns why the subscriber was closed (nil while open).
func (s *Subscriber) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Take moves the queued messages to dst and returns it.
func (s *Subscriber) Take(dst []Message) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, s.queue[s.head:]...)
	clear(s.queue)
	s.queue, s.head, s.bytes = s.queue[:0], 0, 0
	if cap(s.queue) > 4096 {
		s.queue = nil // do not pin a burst's buffer
	}
	return dst
}

// Queued returns the number and bytes of messages waiting.
func (s *Subscriber) Queued() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) - s.head, s.bytes
}

// Count returns the channels and patterns subscribed (Redis's count in
// subscribe replies).
func (s *Subscriber) Count() int {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	return len(s.channels) + len(s.patterns)
}

// Channels returns the subscribed channels and patterns, sorted.
func (s *Subscriber) Channels() (channels, patterns []string) {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	for c := range s.channels {
		channels = append(channels, c)
	}
	for p := range s.patterns {
		patterns = append(patterns, p)
	}
	slices.Sort(channels)
	slices.Sort(patterns)
	return channels, patterns
}

// push queues m; under h.mu (read or write) so subscriptions are stable.
func (s *Subscriber) push(m Message) bool {
	sz := m.size()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if s.bytes+sz > s.h.max {
		n := len(s.queue) - s.head
		s.closed, s.err = true, ErrOverflow
		clear(s.queue)
		s.queue, s.head, s.bytes = nil, 0, 0
		close(s.done)
		s.mu.Unlock()
		s.h.overflows.Add(1)
		s.h.dropped.Add(int64(n) + 1)
		if s.onOverflow != nil {
			go s.onOverflow()
		}
		// Its subscriptions are removed by Close (the owner sees Done).
		return false
	}
	s.queue = append(s.queue, m)
	s.bytes += sz
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
	s.h.delivered.Add(1)
	return true
}

// Close removes every subscription and closes the subscriber (a closed
// subscriber's queued messages are dropped).
func (s *Subscriber) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed, s.err = true, ErrClosed
		close(s.done)
	}
	s.queue, s.head, s.bytes = nil, 0, 0
	s.mu.Unlock()
	h := s.h
	h.mu.Lock()
	for c := range s.channels {
		h.removeChannel(s, c)
	}
	for p := range s.patterns {
		h.removePattern(s, p)
	}
	delete(h.subs, s)
	h.mu.Unlock()
	h.announce(context.Background())
}

// Subscribe subscribes to channels and returns, for each, the
// subscriber's count after it (Redis's reply). It returns once the other
// nodes know of a new interest (or ctx ends).
func (s *Subscriber) Subscribe(ctx context.Context, channels ...string) []int {
	return s.change(ctx, channels, func(h *Hub, c string) { h.addChannel(s, c) })
}

// PSubscribe subscribes to glob patterns; see Subscribe.
func (s *Subscriber) PSubscribe(ctx context.Context, patterns ...string) []int {
	return s.change(ctx, patterns, func(h *Hub, p string) { h.addPattern(s, p) })
}

// Unsubscribe unsubscribes from channels (every channel if none is
// given) and returns the channels named, with the count after each.
func (s *Subscriber) Unsubscribe(ctx context.Context, channels ...string) ([]string, []int) {
	if len(channels) == 0 {
		channels, _ = s.Channels()
	}
	return channels, s.change(ctx, channels, func(h *Hub, c string) { h.removeChannel(s, c) })
}

// PUnsubscribe unsubscribes from patterns (every pattern if none is
// given); see Unsubscribe.
func (s *Subscriber) PUnsubscribe(ctx context.Context, patterns ...string) ([]string, []int) {
	if len(patterns) == 0 {
		_, patterns = s.Channels()
	}
	return patterns, s.change(ctx, patterns, func(h *Hub, p string) { h.removePattern(s, p) })
}

func (s *Subscriber) change(ctx context.Context, names []string, fn func(*Hub, string)) []int {
	h := s.h
	counts := make([]int, len(names))
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	h.mu.Lock()
	for i, n := range names {
		if !closed {
			fn(h, n)
		}
		counts[i] = len(s.channels) + len(s.patterns)
	}
	h.mu.Unlock()
	h.announce(ctx)
	return counts
}

// The following run under h.mu.

func (h *Hub) addChannel(s *Subscriber, c string) {
	if _, ok := s.channels[c]; ok {
		return
	}
	s.channels[c] = struct{}{}
	set := h.channels[c]
	if set == nil {
		set = map[*Subscriber]struct{}{}
		h.channels[c] = set
	}
	set[s] = struct{}{}
	if m, _, _, ok := ParseMapChannel(c); ok {
		h.mapSubs[m]++
		h.watch.Add(1)
	} else if !IsReserved(c) {
		h.topics++
	}
}

func (h *Hub) removeChannel(s *Subscriber, c string) {
	if _, ok := s.channels[c]; !ok {
		return
	}
	delete(s.channels, c)
	set := h.channels[c]
	delete(set, s)
	if len(set) == 0 {
		delete(h.channels, c)
	}
	if m, _, _, ok := ParseMapChannel(c); ok {
		h.dropMap(m)
	} else if !IsReserved(c) {
		h.topics--
	}
}

func (h *Hub) dropMap(m string) {
	if h.mapSubs[m]--; h.mapSubs[m] <= 0 {
		delete(h.mapSubs, m)
	}
	h.watch.Add(-1)
}

func (h *Hub) addPattern(s *Subscriber, p string) {
	if _, ok := s.patterns[p]; ok {
		return
	}
	s.patterns[p] = struct{}{}
	pt := h.patterns[p]
	if pt == nil {
		pt = &pattern{p: p, scope: scopeOf(p), subs: map[*Subscriber]struct{}{}}
		h.patterns[p] = pt
		switch {
		case !pt.scope.event:
			h.topicPat = append(h.topicPat, pt)
		case pt.scope.mOK:
			h.mapPat[pt.scope.m] = append(h.mapPat[pt.scope.m], pt)
		default:
			h.eventPat = append(h.eventPat, pt)
		}
	}
	pt.subs[s] = struct{}{}
	if pt.scope.event {
		if pt.scope.mOK {
			h.mapSubs[pt.scope.m]++
		}
		h.watch.Add(1)
	}
}

func (h *Hub) removePattern(s *Subscriber, p string) {
	if _, ok := s.patterns[p]; !ok {
		return
	}
	delete(s.patterns, p)
	pt := h.patterns[p]
	delete(pt.subs, s)
	if pt.scope.event {
		if pt.scope.mOK {
			h.dropMap(pt.scope.m)
		} else {
			h.watch.Add(-1)
		}
	}
	if len(pt.subs) > 0 {
		return
	}
	delete(h.patterns, p)
	drop := func(list []*pattern) []*pattern {
		return slices.DeleteFunc(list, func(x *pattern) bool { return x == pt })
	}
	switch {
	case !pt.scope.event:
		h.topicPat = drop(h.topicPat)
	case pt.scope.mOK:
		if h.mapPat[pt.scope.m] = drop(h.mapPat[pt.scope.m]); len(h.mapPat[pt.scope.m]) == 0 {
			delete(h.mapPat, pt.scope.m)
		}
	default:
		h.eventPat = drop(h.eventPat)
	}
}

// deliver queues payload on channel ch to its channel subscribers and to
// the patterns in lists that match; it returns the receivers. Under h.mu.
func (h *Hub) deliver(ch string, payload []byte, lists ...[]*pattern) int {
	n := 0
	for s := range h.channels[ch] {
		if s.push(Message{Channel: ch, Payload: payload}) {
			n++
		}
	}
	for _, list := range lists {
		for _, pt := range list {
			if !glob.Match([]byte(pt.p), []byte(ch), false) {
				continue
			}
			for s := range pt.subs {
				if s.push(Message{Channel: ch, Pattern: pt.p, Payload: payload}) {
					n++
				}
			}
		}
	}
	return n
}

// Publish delivers a topic message to the subscribers of every node and
// returns how many received it (Redis's PUBLISH reply). Remote failures
// are returned with the count of those that did receive it.
func (h *Hub) Publish(ctx context.Context, channel string, payload []byte) (int, error) {
	if IsReserved(channel) {
		return 0, ErrReserved
	}
	h.published.Add(1)
	payload = append([]byte(nil), payload...)
	n := h.PublishLocal(channel, payload)
	if rb := h.remote.Load(); rb != nil {
		m, err := rb.r.Publish(ctx, channel, payload)
		n += m
		if err != nil {
			return n, fmt.Errorf("published to %d subscribers, but not every node could be reached: %w", n, err)
		}
	}
	return n, nil
}

// PublishLocal delivers a topic message to this node's subscribers only
// (a message another node published). payload is kept: do not modify it.
func (h *Hub) PublishLocal(channel string, payload []byte) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.deliver(channel, payload, h.topicPat)
}

// OnEvent implements store.Observer: it delivers a map event to the
// subscribers of this node. It only queues (it runs under the key's
// shard lock). A standalone node passes the hub as the store's observer;
// a cluster member calls it for the partitions it leads and for events
// shipped from other nodes.
func (h *Hub) OnEvent(ev *store.Event) {
	if h.watch.Load() == 0 || ev.Loaded || store.IsInternal(ev.Map) {
		// A read-through load changes nothing; internal maps (sequences,
		// change records) are the node's own.
		return
	}
	var kind Kind
	var payload []byte
	switch {
	case ev.Kind == store.EventWrite:
		kind = Write
	case ev.Reason == store.ReasonClearedSilent:
		return
	default:
		kind = Delete
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.mapSubs[ev.Map] == 0 && len(h.eventPat) == 0 {
		return
	}
	h.mapEvents.Add(1)
	if kind == Write {
		payload = append(make([]byte, 0, len(ev.Value)), ev.Value...)
	} else {
		payload = []byte(ev.Reason.String())
	}
	h.deliver(MapChannel(ev.Map, kind, string(ev.Key)), payload, h.mapPat[ev.Map], h.eventPat)
}

// NodeEvent delivers a node event to this node's subscribers (each node
// learns membership changes from its own gossip).
func (h *Hub) NodeEvent(e NodeEvent) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.channels[NodeChannel]) == 0 && len(h.eventPat) == 0 {
		return 0
	}
	h.nodeEvents.Add(1)
	return h.deliver(NodeChannel, e.Encode(), h.eventPat)
}

// ActiveChannels returns the channels with at least one subscriber that
// match pattern ("" for all), sorted (PUBSUB CHANNELS).
func (h *Hub) ActiveChannels(pattern string) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []string
	for c := range h.channels {
		if pattern == "" || glob.Match([]byte(pattern), []byte(c), false) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// NumSub returns the number of subscribers of channel (PUBSUB NUMSUB).
func (h *Hub) NumSub(channel string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.channels[channel])
}

// NumPat returns the number of distinct patterns subscribed (PUBSUB
// NUMPAT).
func (h *Hub) NumPat() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.patterns)
}

// CloseAll closes every subscriber (the node is stopping): their owners
// see Done and end (HTTP event streams, which would otherwise keep the
// HTTP server's shutdown waiting).
func (h *Hub) CloseAll() {
	h.mu.RLock()
	subs := make([]*Subscriber, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.RUnlock()
	for _, s := range subs {
		s.Close()
	}
}
