package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Entry is one change, as the store's observer reports it.
type Entry struct {
	LSN      uint64
	Map      string
	Key      []byte
	Value    []byte // nil for a delete
	Delete   bool
	ExpireAt int64 // Unix ms; 0 = none
	Created  int64 // Unix ms
}

func (e *Entry) size() int { return len(e.Map) + len(e.Key) + len(e.Value) + 64 }

// ErrBacklog means a follower is too far behind: the write is refused (and
// may be retried) rather than buffered without bound.
var ErrBacklog = errors.New("replication backlog full")

// ErrNoLongerFollower means the follower was removed while waited on.
var ErrNoLongerFollower = errors.New("not a follower of this partition")

// ErrTrimmed means a follower asked for entries the log no longer keeps:
// it must resynchronise by snapshot (see Restart).
var ErrTrimmed = errors.New("replication log entries already dropped")

// follower is one follower's position in the log.
type follower struct {
	// acked is the highest LSN the follower acknowledged as applied: what
	// Wait counts.
	acked uint64
	// keep is the LSN the follower's current snapshot covers (Restart):
	// the log keeps the entries after max(acked, keep) for it.
	keep uint64
	// filling: the follower has no complete copy yet (it was added and
	// its snapshot has not been acknowledged). It cannot become primary,
	// so reads do not wait for it (WaitReadable).
	filling bool
}

// from returns the LSN after which the follower still needs entries.
func (f *follower) from() uint64 { return max(f.acked, f.keep) }

// Log is one partition's replication log. Safe for concurrent use.
type Log struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every append or ack
	base     uint64        // LSN of entries[0]
	entries  []Entry
	bytes    int
	maxBytes int
	ends     []int64 // ends[i]: bytes appended (kept) up to entries[i] included
	total    int64   // bytes appended (kept) since the log was created
	next     uint64  // LSN the next append gets
	fol      map[string]*follower
	// lost lists LSN ranges (from, to] that a follower removed by Retire
	// before acknowledging them may lack: a write in such a range cannot be
	// acknowledged as on every replica (Wait fails), because the removed
	// follower may be the partition's next primary. Bounded (oldest
	// dropped): a write waits for seconds at most.
	lost []lsnRange
	// era counts Retire calls: a read that began in one era must not
	// succeed in another (WaitReadable).
	era uint64
}

// lsnRange is the LSNs after from, up to to included.
type lsnRange struct{ from, to uint64 }

// maxLost bounds Log.lost.
const maxLost = 64

// ErrFollowerRemoved means a follower was removed (the partition's owners
// changed, or this node stopped leading it) before it acknowledged the
// write waited on: the write may be missing from a copy, so it is not
// acknowledged; its outcome is unknown.
var ErrFollowerRemoved = errors.New("a replica was removed before acknowledging the write")

// New returns an empty log whose first entry will get LSN 1. maxBytes
// bounds the entries kept for lagging followers.
func New(maxBytes int) *Log {
	return &Log{changed: make(chan struct{}), base: 1, next: 1, maxBytes: maxBytes, fol: map[string]*follower{}}
}

func (l *Log) broadcast() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Admit reports whether a write may proceed now: ErrBacklog if the
// entries kept for lagging followers passed the bound. Callers check it
// before writing, because Append runs inside the store and cannot refuse.
func (l *Log) Admit() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bytes > l.maxBytes {
		return fmt.Errorf("%w: %d bytes wait for %s", ErrBacklog, l.bytes, l.laggard())
	}
	return nil
}

func (l *Log) laggard() string {
	who, low := "", ^uint64(0)
	for name, f := range l.fol {
		if a := f.from(); a < low || a == low && name < who {
			who, low = name, a
		}
	}
	return who
}

// Append adds a change and returns its LSN. Keys and values are copied.
// With no followers the entry is not kept (nobody will read it).
func (l *Log) Append(e Entry) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.LSN = l.next
	l.next++
	if len(l.fol) == 0 {
		l.base = l.next
		return e.LSN
	}
	e.Key = slices.Clone(e.Key)
	e.Value = slices.Clone(e.Value)
	l.entries = append(l.entries, e)
	l.bytes += e.size()
	l.total += int64(e.size())
	l.ends = append(l.ends, l.total)
	l.broadcast()
	return e.LSN
}

// Last returns the LSN of the latest append (0 before any).
func (l *Log) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// SetFollowers replaces the set of followers. A new follower starts as
// having applied everything up to from (the LSN its snapshot covers);
// followers no longer listed are dropped, releasing their backlog.
func (l *Log) SetFollowers(followers []string, from uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := map[string]*follower{}
	for _, name := range followers {
		if f, ok := l.fol[name]; ok {
			keep[name] = f
		} else {
			a := min(from, l.next-1)
			keep[name] = &follower{acked: a, keep: a, filling: true}
		}
	}
	l.fol = keep
	l.trim()
	l.broadcast()
}

// Retire removes every follower because this node no longer leads the
// partition. Unlike followers dropped by SetFollowers (which are no longer
// owners at all), a follower here may be the partition's next primary: a
// write it had not acknowledged may be missing from the copy that now
// counts, so its waiters fail with ErrFollowerRemoved rather than count
// it as replicated.
func (l *Log) Retire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.fol {
		if f.acked < l.next-1 {
			l.lost = append(l.lost, lsnRange{f.acked, l.next - 1})
			if len(l.lost) > maxLost {
				l.lost = slices.Delete(l.lost, 0, len(l.lost)-maxLost)
			}
		}
	}
	l.fol = map[string]*follower{}
	l.era++
	l.trim()
	l.broadcast()
}

// Era returns the number of Retire calls so far: a consistent read takes
// it before reading (after checking it leads) and passes it to
// WaitReadable.
func (l *Log) Era() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.era
}

// ErrRetired means the log was retired (this node stopped leading the
// partition) while a read waited for its replicas: what it read may be
// missing from the copy that now counts.
var ErrRetired = errors.New("this node stopped leading the partition while the read waited for its replicas")

// Restart records that follower starts a new snapshot now: the log keeps
// (only) the entries after the returned LSN for it, which the follower
// must apply, in order, after the snapshot. Every change with a lower or
// equal LSN is already in the store when Restart returns, so a snapshot
// taken afterwards contains it. The follower's acknowledged LSN (what
// Wait counts) is unchanged: writes waiting on it keep waiting until it
// has finished the snapshot and acknowledged them.
func (l *Log) Restart(name string) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fol[name]
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNoLongerFollower, name)
	}
	f.keep = l.next - 1
	f.filling = true
	l.trim()
	l.broadcast()
	return f.keep, nil
}

// Pending returns the bytes of the entries the log keeps for follower
// (those it has not acknowledged, after its snapshot): with
// Admit's bound, whether this follower alone holds the backlog past it.
func (l *Log) Pending(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fol[name]
	if !ok {
		return 0
	}
	from := f.from()
	if from+1 >= l.next || from+1 < l.base {
		return 0
	}
	i := int(from + 1 - l.base)
	return int(l.total - l.ends[i] + int64(l.entries[i].size()))
}

// Read returns up to max entries after LSN after for a follower, waiting
// until there is at least one or ctx ends. If the follower needs entries
// already dropped it gets ErrTrimmed: it must resynchronise by snapshot.
func (l *Log) Read(ctx context.Context, after uint64, max int) ([]Entry, error) {
	for {
		l.mu.Lock()
		if base := l.base; after+1 < base {
			l.mu.Unlock()
			return nil, fmt.Errorf("%w: entries after %d were dropped (the log starts at %d): resynchronise", ErrTrimmed, after, base)
		}
		if after+1 < l.next {
			i := int(after + 1 - l.base)
			n := min(max, len(l.entries)-i)
			out := slices.Clone(l.entries[i : i+n])
			l.mu.Unlock()
			return out, nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ack records that follower applied every entry up to lsn.
func (l *Log) Ack(name string, lsn uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fol[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoLongerFollower, name)
	}
	if lsn > f.acked || f.filling && lsn >= f.keep {
		f.acked = max(f.acked, min(lsn, l.next-1))
		if f.filling && f.acked >= f.keep {
			f.filling = false // the snapshot (and what came before it) is applied
		}
		l.trim()
		l.broadcast()
	}
	return nil
}

// trim drops the entries no follower needs any more.
func (l *Log) trim() {
	low := l.next - 1
	for _, f := range l.fol {
		low = min(low, f.from())
	}
	n := 0
	for n < len(l.entries) && l.entries[n].LSN <= low {
		l.bytes -= l.entries[n].size()
		n++
	}
	if n > 0 {
		l.entries = slices.Delete(l.entries, 0, n)
		l.ends = slices.Delete(l.ends, 0, n)
		l.base += uint64(n)
	}
	if len(l.fol) == 0 {
		l.entries, l.ends, l.bytes, l.base = nil, nil, 0, l.next
	}
}

// Wait blocks until every current follower has acknowledged lsn (ack=all
// writes), or ctx ends. Followers dropped by SetFollowers no longer count
// (they are no longer owners); if the log was retired (Retire) before a
// follower acknowledged lsn, it fails with ErrFollowerRemoved: the write
// may be missing from a copy that still counts elsewhere.
func (l *Log) Wait(ctx context.Context, lsn uint64) error {
	return l.await(ctx, lsn, false, 0)
}

// await waits until every follower that counts has acknowledged lsn, or
// ctx ends. For a write (read false) every follower counts, and lsn in a
// range a retired follower may lack fails with ErrFollowerRemoved; for a
// read, followers being filled do not count, and a Retire since era fails
// with ErrRetired. (Plain arguments, not closures: reads call it on their
// hot path.)
func (l *Log) await(ctx context.Context, lsn uint64, read bool, era uint64) error {
	for {
		l.mu.Lock()
		if read && l.era != era {
			l.mu.Unlock()
			return ErrRetired
		}
		if !read {
			for _, r := range l.lost {
				if r.from < lsn && lsn <= r.to {
					l.mu.Unlock()
					return fmt.Errorf("%w (lsn %d)", ErrFollowerRemoved, lsn)
				}
			}
		}
		done := true
		for _, f := range l.fol {
			if (!read || !f.filling) && f.acked < lsn {
				done = false
				break
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("replicas did not acknowledge lsn %d in time: %w", lsn, ctx.Err())
		}
	}
}

// WaitReadable blocks until every follower holding a complete copy has
// acknowledged the latest append, or ctx ends. A consistent read on the
// primary calls it after reading: what it read is then on every copy that
// could become primary, so no later failover can take back a value a
// client has seen (a write applied here whose replication is cut off
// would otherwise be read, then lost: a dirty read). Followers still
// being filled are not waited for (they cannot be promoted), so reads do
// not stall behind a snapshot.
//
// era is Era's value from before the read: if the log was retired since,
// the read fails with ErrRetired (its followers are gone, but not because
// they have the data).
func (l *Log) WaitReadable(ctx context.Context, era uint64) error {
	l.mu.Lock()
	lsn := l.next - 1
	l.mu.Unlock()
	return l.await(ctx, lsn, true, era)
}

// Acked returns each follower's acknowledged LSN (for admin views).
func (l *Log) Acked() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.fol))
	for name, f := range l.fol {
		out[name] = f.acked
	}
	return out
}

// Backlog returns the bytes kept for lagging followers.
func (l *Log) Backlog() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}
