package engram_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/engramdb/engram"
)

func nextEvent(t *testing.T, ch <-chan engram.Event) engram.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("subscription ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return engram.Event{}
}

func TestGoPubSub(t *testing.T) {
	ctx := context.Background()
	n := open(t, engram.Config{})
	s := n.NewSubscription(nil)
	defer s.Close()
	if err := s.SubscribeMap(ctx, "users", engram.MapAny, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.SubscribeMap(ctx, "users", engram.MapDeletes); err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	m := n.Map("users")
	m.Set(ctx, "alice", []byte("a1"))
	m.Set(ctx, "bob", []byte("b1")) // bob's writes are not subscribed
	m.Delete(ctx, "bob")
	if got, err := n.Publish(ctx, "news", []byte("hi")); err != nil || got != 1 {
		t.Fatalf("Publish: %d, %v", got, err)
	}
	if _, err := n.Publish(ctx, "__engram__:nodes", nil); err == nil {
		t.Fatal("publishing on an event channel must fail")
	}
	want := []string{"write users/alice a1", "delete users/bob delete", "topic news hi"}
	for _, w := range want {
		ev := nextEvent(t, s.Events())
		var got string
		switch ev.Type {
		case engram.EventWrite:
			got = fmt.Sprintf("write %s/%s %s", ev.Map, ev.Key, ev.Value)
		case engram.EventDelete:
			got = fmt.Sprintf("delete %s/%s %s", ev.Map, ev.Key, ev.Reason)
		default:
			got = fmt.Sprintf("%s %s %s", ev.Type, ev.Channel, ev.Value)
		}
		if got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
	s.Close()
	if _, ok := <-s.Events(); ok {
		t.Fatal("events after Close")
	}
	if !errors.Is(s.Err(), engram.ErrClosed) {
		t.Fatalf("Err after Close: %v", s.Err())
	}
}

func TestGoPubSubCallback(t *testing.T) {
	ctx := context.Background()
	n := open(t, engram.Config{})
	var mu sync.Mutex
	var got []string
	s := n.NewSubscription(func(ev engram.Event) {
		mu.Lock()
		got = append(got, string(ev.Value))
		mu.Unlock()
	})
	defer s.Close()
	s.SubscribeMap(ctx, "m", engram.MapWrites)
	for i := range 100 {
		n.Map("m").Set(ctx, "k", fmt.Appendf(nil, "%d", i))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		l := len(got)
		mu.Unlock()
		if l == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callback saw %d of 100 events", l)
		}
		time.Sleep(time.Millisecond)
	}
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("event %d is %s: out of order", i, v)
		}
	}
}

// TestGoPubSubSlowSubscriber: a subscription nobody reads ends with
// ErrSlowSubscriber once its queue passes the bound; writes never wait.
func TestGoPubSubSlowSubscriber(t *testing.T) {
	ctx := context.Background()
	n := open(t, engram.Config{})
	s := n.NewSubscription(nil)
	defer s.Close()
	s.SubscribeMap(ctx, "m", engram.MapWrites)
	val := make([]byte, 64<<10)
	for i := 0; s.Err() == nil; i++ {
		if i > 10000 { // 640 MiB of events
			t.Fatal("the unread subscription never overflowed")
		}
		if err := n.Map("m").Set(ctx, "k", val); err != nil {
			t.Fatal(err)
		}
	}
	if !errors.Is(s.Err(), engram.ErrSlowSubscriber) {
		t.Fatalf("Err: %v", s.Err())
	}
	// The channel ends after at most what it buffered.
	for range s.Events() {
	}
}

func TestSubscriptionEndsWithNode(t *testing.T) {
	n, err := engram.Open(engram.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := n.NewSubscription(nil)
	if err := s.Subscribe(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	n.Close()
	select {
	case _, ok := <-s.Events():
		if ok {
			t.Fatal("an event after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription did not end when its node closed")
	}
	if !errors.Is(s.Err(), engram.ErrClosed) {
		t.Fatalf("Err after the node closed: %v, want ErrClosed", s.Err())
	}
}
