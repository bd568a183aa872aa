package engram

import (
	"context"
	"strings"
	"time"

	"github.com/engramdb/engram/internal/resp"
)

// Backing store (docs/backing.md). A map with a store reads through it on
// a miss and writes its changes back to it (write-behind: after a delay,
// coalesced; write-through: before the call returns). These methods run
// the same commands as Redis clients (SAVEKEY, SAVEMAP, STORECONFIG).

// Save writes keys to the map's store now (persist now) and returns how
// many it wrote or deleted there: a pending change is written (a pending
// delete deletes), and a key with no pending change that is in memory is
// written as it is. It returns once the store has them.
func (m *Map) Save(ctx context.Context, keys ...string) (int, error) {
	if err := m.n.check(ctx); err != nil {
		return 0, err
	}
	if len(keys) == 0 {
		return 0, nil
	}
	args := [][]byte{b("SAVEKEY")}
	for _, k := range keys {
		args = append(args, b(k))
	}
	n, err := m.integer(ctx, args...)
	return int(n), err
}

// SaveAll writes every pending change of the map to its store now and
// returns how many it wrote.
func (m *Map) SaveAll(ctx context.Context) (int, error) {
	if err := m.n.check(ctx); err != nil {
		return 0, err
	}
	n, err := m.integer(ctx, b("SAVEMAP"))
	return int(n), err
}

// ConfigureStore changes the map's backing-store settings (cluster-wide in
// a cluster), given as "field=value" pairs: mode=none|read-through|
// write-through|write-behind, store=URL, delay=1s, batch=100,
// max_dirty=1000000, max_dirty_bytes=268435456, negative_ttl=0. Fields not
// named keep their values.
func (m *Map) ConfigureStore(ctx context.Context, settings string) error {
	if err := m.n.check(ctx); err != nil {
		return err
	}
	args := [][]byte{b("STORECONFIG"), b(m.sm.Name())}
	for _, f := range strings.Fields(settings) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return errBadSetting(f)
		}
		args = append(args, b(k), b(v))
	}
	if len(args) == 2 {
		return nil
	}
	_, err := m.do(ctx, args...)
	return err
}

type errBadSetting string

func (e errBadSetting) Error() string {
	return "engram: store setting " + string(e) + " is not field=value"
}

// StoreSettings returns the map's backing-store settings as field/value
// pairs (mode, store, delay, batch, max_dirty, max_dirty_bytes, negative_ttl,
// explicit).
func (m *Map) StoreSettings(ctx context.Context) (map[string]string, error) {
	if err := m.n.check(ctx); err != nil {
		return nil, err
	}
	v, err := m.do(ctx, b("STORECONFIG"), b(m.sm.Name()))
	if err != nil {
		return nil, err
	}
	return pairsOf(v), nil
}

func pairsOf(v resp.Value) map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		out[string(v.Elems[i].Str)] = string(v.Elems[i+1].Str)
	}
	return out
}

// StoreStatus is this node's view of one map's backing store.
type StoreStatus struct {
	Map  string
	Mode string
	// Pending changes not yet in the store (of the partitions this node
	// leads) and the age of the oldest.
	Pending int64
	Oldest  time.Duration
	// Received changes, and the keys Written and Deleted in the store:
	// Received / (Written + Deleted) is how much write-behind saved.
	Received, Written, Deleted int64
	// Failures of store writes so far, the current run of them, and the
	// last error.
	Failures, ConsecutiveFailures int64
	LastError                     string
	// Read-through loads, those that found the key, and those that failed.
	Loads, LoadsFound, LoadErrors int64
}

// StoreStatus returns this node's view of every map's backing store.
func (n *Node) StoreStatus() []StoreStatus {
	p := n.node.Persist()
	if p == nil {
		return nil
	}
	var out []StoreStatus
	for _, s := range p.Stats() {
		out = append(out, StoreStatus{Map: s.Map, Mode: s.Settings.Mode.String(), Pending: s.Pending,
			Oldest: time.Duration(s.OldestMs) * time.Millisecond, Received: s.Received, Written: s.Written,
			Deleted: s.Deleted, Failures: s.Failures, ConsecutiveFailures: int64(s.Consecutive),
			LastError: s.LastError, Loads: s.Loads, LoadsFound: s.LoadsFound, LoadErrors: s.LoadErrors})
	}
	return out
}
