package e2e

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// linInput is one operation on a key: set(value) or get.
type linInput struct {
	key   string
	set   bool
	value string
}

// linOutput is what a get returned.
type linOutput struct {
	value string
	found bool
}

// linModel is a register per key (porcupine checks each key apart).
var linModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(linInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return linOutput{} }, // absent
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(linOutput), input.(linInput)
		if in.set {
			return true, linOutput{value: in.value, found: true}
		}
		return output.(linOutput) == s, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linInput)
		if in.set {
			return fmt.Sprintf("set(%s, %q)", in.key, in.value)
		}
		out := output.(linOutput)
		if !out.found {
			return fmt.Sprintf("get(%s) -> nil", in.key)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, out.value)
	},
	DescribeState: func(state any) string {
		s := state.(linOutput)
		if !s.found {
			return "nil"
		}
		return fmt.Sprintf("%q", s.value)
	},
}

// TestClusterLinearizable: clients SET and GET a few keys through every
// node while the control plane's leader is killed (-9); the history, in
// which a write that failed may or may not have taken effect, must be
// linearizable for every key.
func TestClusterLinearizable(t *testing.T) {
	c := startCluster(t, 3, "--partitions", "31")
	victim := c.leader()
	if victim == nil {
		t.Fatal("no control-plane leader")
	}
	checkLinearizable(t, c, victim, "kill", victim.kill)
}

// checkLinearizable runs clients doing SET and GET on keys chosen around
// victim (2 it leads, 2 it replicates, 1 elsewhere) through every node,
// calls event (the disruption) once 300 operations succeeded, keeps going
// for at least 5 s and 300 more successful operations, and checks that the
// history of every key is linearizable (a write that failed may or may
// not have taken effect).
func checkLinearizable(t *testing.T, c *tcluster, victim *cnode, what string, event func()) {
	nodes := c.live()
	// Keys led by the victim, keys it replicates, a key it does not hold.
	var keys []string
	role := map[string]string{} // key -> its owners, for failure reports
	var led, repl, none int
	for i := 0; len(keys) < 5 && i < 1000; i++ {
		k := fmt.Sprintf("lin:%d", i)
		own, err := nodes[0].owners(k)
		if err != nil {
			t.Fatal(err)
		}
		switch j := slices.Index(own, victim.id); {
		case j == 0 && led < 2:
			led++
		case j > 0 && repl < 2:
			repl++
		case j < 0 && none < 1:
			none++
		default:
			continue
		}
		keys = append(keys, k)
		role[k] = fmt.Sprint(own)
	}
	t.Logf("victim %s (%s); keys %q: %d led by it, %d replicated on it, %d elsewhere", victim.name, what, keys, led, repl, none)
	if len(keys) < 5 {
		t.Errorf("found only %d of the 5 keys wanted (2 led by the victim, 2 replicated on it, 1 elsewhere): is the table balanced?", len(keys))
		for i := 0; len(keys) < 5; i++ {
			if k := fmt.Sprintf("lin:%d", i); !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}

	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		mu       sync.Mutex
		ops      []porcupine.Operation
		okOps    atomic.Int64
		unknown  atomic.Int64
		errs     errCounts
		bad      errCounts
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		nextID   atomic.Int64
		killedAt atomic.Int64
	)
	const clients = 6
	nextID.Store(clients)
	for cl := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cl), 7))
			via := nodes[cl%len(nodes)]
			id := cl
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				in := linInput{key: keys[rng.IntN(len(keys))], set: rng.IntN(2) == 0}
				var out linOutput
				ctx, cancel := ctxTimeout(opTimeout)
				call := now()
				var err error
				if in.set {
					in.value = fmt.Sprintf("c%d-%d", cl, seq)
					err = via.rdb.Set(ctx, in.key, in.value, 0).Err()
				} else {
					var v string
					v, err = via.rdb.Get(ctx, in.key).Result()
					out = linOutput{value: v, found: err == nil}
				}
				ret := now()
				cancel()
				kind := classify(err)
				if kind == errNone {
					okOps.Add(1)
					mu.Lock()
					ops = append(ops, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
					mu.Unlock()
					continue
				}
				where := fmt.Sprintf("%s via %s", map[bool]string{true: "SET", false: "GET"}[in.set], via.name)
				errs.add(kind, where, err)
				if kind == errOther || kind == errTimeout || (kind == errConn && via != victim) {
					bad.add(kind, where, err)
				}
				if in.set {
					// Unknown outcome: it may take effect at any time
					// after the call, or never.
					unknown.Add(1)
					mu.Lock()
					ops = append(ops, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: linOutput{}, Return: math.MaxInt64})
					mu.Unlock()
					id = int(nextID.Add(1)) - 1 // this client's op is still open: continue as a new one
				}
				if kind == errConn {
					for i := slices.Index(nodes, via); ; i++ {
						if via = nodes[(i+1)%len(nodes)]; !via.gone.Load() {
							break
						}
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()

	waitFor(t, settleTimeout, "300 successful operations before the kill", func() bool { return okOps.Load() >= 300 })
	before := okOps.Load()
	killed := time.Now()
	killedAt.Store(now())
	event()
	deadline := killed.Add(settleTimeout)
	for (time.Since(killed) < 5*time.Second || okOps.Load()-before < 300) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	after := okOps.Load() - before
	halt()
	t.Logf("%d operations (%d after the kill), %d writes with unknown outcome; errors: %s", len(ops), after, unknown.Load(), &errs)
	if after < 300 {
		t.Errorf("only %d operations succeeded in the %v after the kill", after, settleTimeout)
	}
	if bad.count(errOther)+bad.count(errTimeout)+bad.count(errConn) > 0 {
		t.Errorf("unexpected errors (not TRYAGAIN/CLUSTERDOWN, or connection errors from a live node): %s", &bad)
	}

	// One check per key, so the count of violations is the count of keys.
	violations := 0
	for _, part := range linModel.Partition(ops) {
		key := part[0].Input.(linInput).key
		res, info := porcupine.CheckOperationsVerbose(linModel, part, time.Minute)
		switch res {
		case porcupine.Ok:
		case porcupine.Unknown:
			t.Logf("key %s: the check timed out (%d operations); no violation found", key, len(part))
		default:
			violations++
			dir, _ := os.MkdirTemp("", "engram-linearizability")
			path := filepath.Join(dir, key+".html")
			if err := porcupine.VisualizePath(linModel, info, path); err != nil {
				path = "(visualization failed: " + err.Error() + ")"
			}
			t.Errorf("key %s (owners %s; clients use nodes in turn: client i goes through node i mod %d): history of %d operations is not linearizable; visualization: %s", key, role[key], len(nodes), len(part), path)
		}
	}
	t.Logf("linearizability: %d violations over %d keys, %d operations (%s at %v)", violations, len(keys), len(ops), what, time.Duration(killedAt.Load()).Round(time.Millisecond))
}
