package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func put(k string) Entry { return Entry{Map: "m", Key: []byte(k), Value: []byte("v-" + k)} }

func TestNoFollowersKeepsNothing(t *testing.T) {
	l := New(1 << 20)
	for i := 0; i < 100; i++ {
		l.Append(put(fmt.Sprint(i)))
	}
	if l.Last() != 100 || l.Backlog() != 0 {
		t.Fatalf("last %d backlog %d", l.Last(), l.Backlog())
	}
	if err := l.Wait(context.Background(), 100); err != nil {
		t.Fatalf("wait with no followers: %v", err)
	}
}

// TestFollowersReadInOrderAndAck runs two followers applying the log into
// their own maps while a writer appends; after the writer's Wait, both
// followers hold every write, in order (last value wins per key).
func TestFollowersReadInOrderAndAck(t *testing.T) {
	l := New(1 << 30)
	l.SetFollowers([]string{"a", "b"}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := map[string]map[string]string{"a": {}, "b": {}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, f := range []string{"a", "b"} {
		wg.Add(1)
		go func(f string) {
			defer wg.Done()
			var last uint64
			for {
				es, err := l.Read(ctx, last, 7)
				if err != nil {
					return
				}
				for _, e := range es {
					if e.LSN != last+1 {
						t.Errorf("%s: got lsn %d after %d", f, e.LSN, last)
						return
					}
					mu.Lock()
					if e.Delete {
						delete(applied[f], string(e.Key))
					} else {
						applied[f][string(e.Key)] = string(e.Value)
					}
					mu.Unlock()
					last = e.LSN
				}
				l.Ack(f, last)
			}
		}(f)
	}
	want := map[string]string{}
	for i := 0; i < 2000; i++ {
		k := fmt.Sprint(i % 50)
		if i%7 == 0 {
			l.Append(Entry{Map: "m", Key: []byte(k), Delete: true})
			delete(want, k)
		} else {
			e := put(fmt.Sprint(i))
			e.Key = []byte(k)
			l.Append(e)
			want[k] = string(e.Value)
		}
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := l.Wait(wctx, l.Last()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, f := range []string{"a", "b"} {
		if fmt.Sprint(applied[f]) != fmt.Sprint(want) {
			t.Fatalf("follower %s diverged", f)
		}
	}
	mu.Unlock()
	if l.Backlog() != 0 {
		t.Fatalf("backlog %d after everyone acked", l.Backlog())
	}
	cancel()
	wg.Wait()
}

func TestBacklogBoundAndFollowerRemoval(t *testing.T) {
	l := New(10_000)
	l.SetFollowers([]string{"slow"}, 0)
	for i := 0; l.Admit() == nil; i++ {
		if i > 10_000 {
			t.Fatal("backlog never reported full")
		}
		l.Append(put(fmt.Sprint(i)))
	}
	if err := l.Admit(); !errors.Is(err, ErrBacklog) {
		t.Fatalf("admit: %v", err)
	}
	// A writer waiting on the slow follower returns at its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, l.Last()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a dead follower: %v", err)
	}
	// This node stops leading the partition: waiters are released, but
	// not as acknowledged (the follower may lack the write and may be the
	// partition's next primary), and the bound is freed.
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), l.Last()) }()
	l.Retire()
	if err := <-done; !errors.Is(err, ErrFollowerRemoved) {
		t.Fatalf("wait when its follower was removed: %v", err)
	}
	// A write made after the removal waits for the current followers only.
	if err := l.Wait(context.Background(), l.Append(put("after"))); err != nil {
		t.Fatalf("wait after the removal, no followers: %v", err)
	}
	if l.Admit() != nil || l.Backlog() != 0 {
		t.Fatalf("backlog %d after removing the follower", l.Backlog())
	}
	if err := l.Ack("slow", 5); !errors.Is(err, ErrNoLongerFollower) {
		t.Fatalf("ack from a removed follower: %v", err)
	}
}

func TestNewFollowerStartsAtSnapshotAndLaggardMustResync(t *testing.T) {
	l := New(1 << 20)
	l.SetFollowers([]string{"a"}, 0)
	for i := 0; i < 10; i++ {
		l.Append(put(fmt.Sprint(i)))
	}
	l.Ack("a", 10)
	// b joins with a snapshot covering LSN 10: it reads from 11.
	l.SetFollowers([]string{"a", "b"}, 10)
	l.Append(put("x"))
	es, err := l.Read(context.Background(), 10, 100)
	if err != nil || len(es) != 1 || es[0].LSN != 11 {
		t.Fatalf("read after snapshot: %v %v", es, err)
	}
	l.Ack("a", 11)
	l.Ack("b", 11)
	if _, err := l.Read(context.Background(), 3, 100); err == nil {
		t.Fatal("reading dropped entries should ask for a resync")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Read(ctx, 11, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read with nothing new: %v", err)
	}
}

// TestRestartForSnapshot checks the snapshot bookkeeping: Restart keeps
// only the entries after the snapshot's LSN for the follower, a reader
// positioned before it gets ErrTrimmed, Pending counts that follower's
// backlog, and acknowledgements (what Wait counts) are not advanced.
func TestRestartForSnapshot(t *testing.T) {
	l := New(1 << 20)
	l.SetFollowers([]string{"a", "b"}, 0)
	for i := range 10 {
		l.Append(put(fmt.Sprint(i)))
	}
	size := l.Backlog() / 10
	if got := l.Pending("a"); got != 10*size {
		t.Fatalf("pending of a: %d, want %d", got, 10*size)
	}
	l.Ack("b", 10)
	lsn0, err := l.Restart("a")
	if err != nil || lsn0 != 10 {
		t.Fatalf("restart: %d %v, want 10", lsn0, err)
	}
	if l.Backlog() != 0 || l.Pending("a") != 0 {
		t.Fatalf("backlog %d pending %d after the restart", l.Backlog(), l.Pending("a"))
	}
	if _, err := l.Read(context.Background(), 3, 100); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("read before the snapshot: %v, want ErrTrimmed", err)
	}
	// Wait still counts a's acknowledgement, not its snapshot.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for lsn 5 before a acknowledged it: %v", err)
	}
	for i := range 3 {
		l.Append(put(fmt.Sprint(i)))
	}
	if got := l.Pending("a"); got != 3*size {
		t.Fatalf("pending of a after 3 appends: %d, want %d", got, 3*size)
	}
	es, err := l.Read(context.Background(), lsn0, 100)
	if err != nil || len(es) != 3 || es[0].LSN != 11 {
		t.Fatalf("read after the snapshot: %v %v", es, err)
	}
	l.Ack("a", 12)
	if got := l.Pending("a"); got != size {
		t.Fatalf("pending of a after acking 12: %d, want %d", got, size)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := l.Wait(ctx2, 12); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for 12 with b at 10: %v", err) // b acknowledged 10 only
	}
}

// A follower removed after acknowledging a write does not fail its waiter.
func TestRemovalAfterAckIsHarmless(t *testing.T) {
	l := New(1 << 20)
	l.SetFollowers([]string{"a", "b"}, 0)
	lsn := l.Append(put("x"))
	if err := l.Ack("a", lsn); err != nil {
		t.Fatal(err)
	}
	if err := l.Ack("b", lsn); err != nil {
		t.Fatal(err)
	}
	l.SetFollowers([]string{"a"}, 0)
	if err := l.Wait(context.Background(), lsn); err != nil {
		t.Fatalf("wait after removing a follower that had acknowledged: %v", err)
	}
	// A follower dropped while this node still leads is no longer an
	// owner: writes stop waiting for it.
	next := l.Append(put("y"))
	l.SetFollowers(nil, 0)
	if err := l.Wait(context.Background(), next); err != nil {
		t.Fatalf("wait after dropping a non-owner: %v", err)
	}
	// Retiring (no longer the primary) fails a write a follower lacked.
	l.SetFollowers([]string{"a"}, next)
	last := l.Append(put("z"))
	l.Retire()
	if err := l.Wait(context.Background(), last); !errors.Is(err, ErrFollowerRemoved) {
		t.Fatalf("wait for a write the retired follower lacked: %v", err)
	}
}

// TestWaitReadable: a read waits for complete followers to acknowledge
// the latest append, not for followers still being filled.
func TestWaitReadable(t *testing.T) {
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 30*time.Millisecond)
	}
	l := New(1 << 20)
	if err := l.WaitReadable(context.Background(), 0); err != nil {
		t.Fatalf("no followers: %v", err)
	}
	l.SetFollowers([]string{"a"}, l.Last())
	l.Append(put("k"))
	// a is new: being filled, it cannot be promoted, reads do not wait.
	if err := l.WaitReadable(context.Background(), 0); err != nil {
		t.Fatalf("filling follower waited for: %v", err)
	}
	lsn0, err := l.Restart("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ack("a", lsn0); err != nil {
		t.Fatal(err)
	}
	// a's copy is complete now: a read after an unacknowledged write waits.
	l.Append(put("k"))
	ctx, cancel := short()
	err = l.WaitReadable(ctx, 0)
	cancel()
	if err == nil {
		t.Fatal("read returned a value no complete follower acknowledged")
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitReadable(context.Background(), 0) }()
	select {
	case err := <-done:
		t.Fatalf("returned before the ack: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := l.Ack("a", l.Last()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A read waits for the latest append when it began.
	l.Append(put("x"))
	lsn := l.Last()
	l.Append(put("y"))
	if err := l.Ack("a", lsn); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = short()
	defer cancel()
	if err := l.WaitReadable(ctx, 0); err == nil {
		t.Fatal("read returned with the latest append unacknowledged")
	}
	// A snapshot restart (resync) makes the follower filling again.
	if _, err := l.Restart("a"); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitReadable(context.Background(), 0); err != nil {
		t.Fatalf("resyncing follower waited for: %v", err)
	}
	// New follower with nothing written since: its snapshot ack (at the
	// LSN it already has) completes it.
	l2 := New(1 << 20)
	l2.Append(put("a"))
	l2.SetFollowers([]string{"b"}, l2.Last())
	lsn0, _ = l2.Restart("b")
	if err := l2.Ack("b", lsn0); err != nil {
		t.Fatal(err)
	}
	l2.Append(put("c"))
	ctx2, cancel2 := short()
	defer cancel2()
	if err := l2.WaitReadable(ctx2, 0); err == nil {
		t.Fatal("a follower whose snapshot was acknowledged is still treated as filling")
	}

	// Retired while a read waits (this node stopped leading): the
	// followers are gone, but not because they have the data.
	era := l2.Era()
	done = make(chan error, 1)
	go func() { done <- l2.WaitReadable(context.Background(), era) }()
	time.Sleep(10 * time.Millisecond)
	l2.Retire()
	if err := <-done; !errors.Is(err, ErrRetired) {
		t.Fatalf("read waiting across a Retire: %v, want ErrRetired", err)
	}
	if err := l2.WaitReadable(context.Background(), era); !errors.Is(err, ErrRetired) {
		t.Fatalf("read begun before a Retire: %v, want ErrRetired", err)
	}
}

// TestWaitReadableAllocatesNothing: reads call it on their hot path.
func TestWaitReadableAllocatesNothing(t *testing.T) {
	l := New(1 << 20)
	l.SetFollowers([]string{"a"}, l.Last())
	lsn0, _ := l.Restart("a")
	if err := l.Ack("a", lsn0); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		if err := l.WaitReadable(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("WaitReadable allocates %v times with nothing pending", n)
	}
}
