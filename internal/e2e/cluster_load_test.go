package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Load for the failure tests: writers that own their keys (one writer
// per key, so each key's history is sequential) and record every
// attempt in a ledger: acknowledged (+OK) or unknown (an error: the write
// may or may not have been applied).

// logTime formats times as the nodes' logs do (UTC), to match them.
const logTime = "15:04:05.000000"

// keyHist is what one key's writer knows about its writes.
type keyHist struct {
	acked   string   // the last acknowledged value
	hasAck  bool     // some write was acknowledged
	pending []string // values attempted since, with unknown outcome
	all     []string // every value ever attempted (to recognise a stale one)
}

// ledger records the writes of every key.
type ledger struct {
	mu   sync.Mutex
	keys map[string]*keyHist
}

func newLedger() *ledger { return &ledger{keys: map[string]*keyHist{}} }

func (l *ledger) hist(key string) *keyHist {
	h := l.keys[key]
	if h == nil {
		h = &keyHist{}
		l.keys[key] = h
	}
	return h
}

// record notes an attempt to set key to value: acknowledged or not.
func (l *ledger) record(key, value string, acked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hist(key)
	h.all = append(h.all, value)
	if acked {
		h.acked, h.hasAck, h.pending = value, true, nil
	} else {
		h.pending = append(h.pending, value)
	}
}

// acked returns the number of keys with an acknowledged write.
func (l *ledger) ackedKeys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, h := range l.keys {
		if h.hasAck {
			n++
		}
	}
	return n
}

// check compares what a node returns (got: key→value of present keys)
// with the ledger. lost lists keys whose last acknowledged write is gone
// (absent, or replaced by an older value); odd lists keys holding a
// value never written to them, or present though no write was attempted.
func (l *ledger) check(got map[string]string) (lost, odd []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(l.keys)) {
		h := l.keys[k]
		v, present := got[k]
		switch {
		case present && (v == h.acked && h.hasAck || slices.Contains(h.pending, v)):
			// the last acknowledged value, or one attempted after it
		case !present && !h.hasAck:
			// nothing acknowledged, nothing there: fine
		case h.hasAck:
			what := "absent"
			if present {
				what = fmt.Sprintf("%q", v)
				if !slices.Contains(h.all, v) {
					odd = append(odd, fmt.Sprintf("%s=%q (never written)", k, v))
				}
			}
			lost = append(lost, fmt.Sprintf("%s: acknowledged %q (then %d unknown), read %s", k, h.acked, len(h.pending), what))
		default:
			odd = append(odd, fmt.Sprintf("%s=%q (no write acknowledged; attempted %q)", k, v, h.pending))
		}
	}
	return lost, odd
}

// loadRun is a set of writers (and optional readers) against a cluster.
type loadRun struct {
	c    *tcluster
	led  *ledger
	errs errCounts // every failed operation, by kind
	bad  errCounts // the ones the test does not allow
	// allowed says whether an error of kind k from node n is acceptable
	// (retryable in this test); others count in bad.
	allowed func(n *cnode, k errKind) bool

	stale   atomic.Int64 // reads after an ack that did not return it
	staleEx sync.Map     // a few examples
	stop    chan struct{}
	wg      sync.WaitGroup

	mu        sync.Mutex
	targets   []*cnode  // the nodes clients may use (gone ones are skipped)
	lastFail  time.Time // end of the last failed write
	firstFail time.Time // end of the first failed write
	writers   []*writer
}

type writer struct {
	id      int
	keys    []string
	acks    atomic.Int64
	maxGap  atomic.Int64 // longest time between two acks, ns
	lastAck time.Time
}

// newLoad returns a load whose clients use the cluster's live nodes (and
// those added later with addTarget).
func newLoad(c *tcluster, allowed func(n *cnode, k errKind) bool) *loadRun {
	return &loadRun{c: c, led: newLedger(), allowed: allowed, stop: make(chan struct{}), targets: c.live()}
}

// addTarget lets clients use n (once it has joined: a node without the
// partition table answers -CLUSTERDOWN, as its CLUSTER INFO says fail).
func (l *loadRun) addTarget(n *cnode) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.targets = append(l.targets, n)
}

// next returns the target after n that is not gone (n if none is left).
func (l *loadRun) next(n *cnode) *cnode {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.targets, n)
	for j := 1; j <= len(l.targets); j++ {
		if m := l.targets[(i+j)%len(l.targets)]; !m.gone.Load() {
			return m
		}
	}
	return n
}

func (l *loadRun) failed(n *cnode, k errKind, what string, err error) {
	where := fmt.Sprintf("%s via %s", what, n.name)
	l.errs.add(k, where, err)
	if !l.allowed(n, k) {
		l.bad.add(k, where, err)
	}
}

// startWriter runs a writer of keys prefix:0..nkeys-1 through via (and
// the next live node whenever a connection fails), setting unique values
// in a loop; every acknowledged write is read back at once through
// another node (a consistent read must return it: nobody else writes the
// key; this is what catches a write acknowledged by a primary that is
// being replaced).
// A failed write is retried on the same key with a new value.
func (l *loadRun) startWriter(id int, prefix string, nkeys int, via *cnode) *writer {
	w := &writer{id: id, lastAck: time.Now()}
	for i := range nkeys {
		w.keys = append(w.keys, fmt.Sprintf("%s:%d", prefix, i))
	}
	l.mu.Lock()
	l.writers = append(l.writers, w)
	l.mu.Unlock()
	l.wg.Go(func() {
		seq, i := 0, 0
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			key := w.keys[i%len(w.keys)]
			val := fmt.Sprintf("w%d-%d", id, seq)
			seq++
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			err := via.rdb.Set(ctx, key, val, 0).Err()
			cancel()
			k := classify(err)
			l.led.record(key, val, k == errNone)
			if k != errNone {
				now := time.Now()
				l.mu.Lock()
				if l.firstFail.IsZero() {
					l.firstFail = now
				}
				l.lastFail = now
				l.mu.Unlock()
				l.failed(via, k, "SET "+key, err)
				if k == errConn || via.gone.Load() {
					via = l.next(via)
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			now := time.Now()
			if gap := now.Sub(w.lastAck); gap > time.Duration(w.maxGap.Load()) {
				w.maxGap.Store(int64(gap))
			}
			w.lastAck = now
			w.acks.Add(1)
			i++
			other := l.next(via)
			rctx, rcancel := context.WithTimeout(context.Background(), opTimeout)
			call := time.Now()
			got, err := other.rdb.Get(rctx, key).Result()
			rcancel()
			if k := classify(err); k != errNone {
				l.failed(other, k, "GET "+key, err)
			} else if got != val {
				if l.stale.Add(1) <= 5 {
					l.staleEx.Store(key, fmt.Sprintf("%s: wrote %q (acknowledged via %s at %s), then read %q via %s (%s to %s)",
						key, val, via.name, now.UTC().Format(logTime), got, other.name, call.UTC().Format(logTime), time.Now().UTC().Format(logTime)))
				}
			}
		}
	})
	return w
}

// ackCounts returns each writer's acknowledged-write count.
func (l *loadRun) ackCounts() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var a []int64
	for _, w := range l.writers {
		a = append(a, w.acks.Load())
	}
	return a
}

// waitAcks waits until every writer has n more acknowledged writes than
// in base (ackCounts earlier).
func (l *loadRun) waitAcks(base []int64, n int64) bool {
	deadline := time.Now().Add(settleTimeout)
	for time.Now().Before(deadline) {
		now := l.ackCounts()
		ok := true
		for i := range base {
			if now[i]-base[i] < n {
				ok = false
			}
		}
		if ok {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// maxGap returns the longest time a writer went without an ack.
func (l *loadRun) maxGap() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var g time.Duration
	for _, w := range l.writers {
		g = max(g, time.Duration(w.maxGap.Load()))
	}
	return g
}

func (l *loadRun) halt() {
	close(l.stop)
	l.wg.Wait()
}

// staleReads describes the reads that missed an acknowledged write.
func (l *loadRun) staleReads() string {
	var ex []string
	l.staleEx.Range(func(_, v any) bool {
		ex = append(ex, v.(string))
		return true
	})
	return fmt.Sprintf("%d reads did not return the write acknowledged just before, e.g.:\n  %s", l.stale.Load(), strings.Join(ex, "\n  "))
}

// verify reads every ledger key through every live node and reports lost
// acknowledged writes. It returns the number of lost keys (worst node).
func (l *loadRun) verify(t interface {
	Errorf(string, ...any)
	Logf(string, ...any)
}, extra map[string]string) int {
	l.led.mu.Lock()
	keys := slices.Sorted(maps.Keys(l.led.keys))
	l.led.mu.Unlock()
	for k := range extra {
		keys = append(keys, k)
	}
	worst := 0
	for _, n := range l.c.live() {
		var got map[string]string
		var err error
		for range 50 { // TRYAGAIN while the cluster still changes: retry
			if got, err = getAll(n.rdb, keys); err == nil || classify(err) != errTryAgain {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("reading back %d keys through %s: %v", len(keys), n.name, err)
			continue
		}
		lost, odd := l.led.check(got)
		var missing []string
		for k, v := range extra {
			if got[k] != v {
				missing = append(missing, fmt.Sprintf("%s: want %q, read %q", k, v, got[k]))
			}
		}
		slices.Sort(missing)
		if len(lost)+len(missing) > 0 || len(odd) > 0 {
			var ex []string
			for _, list := range [][]string{lost, missing, odd} {
				ex = append(ex, list[:min(10, len(list))]...)
			}
			t.Errorf("through %s: %d of %d acknowledged writes lost, %d of %d preloaded keys wrong, %d odd values; e.g.\n  %s",
				n.name, len(lost), l.led.ackedKeys(), len(missing), len(extra), len(odd), strings.Join(ex, "\n  "))
		}
		worst = max(worst, len(lost)+len(missing))
	}
	return worst
}
