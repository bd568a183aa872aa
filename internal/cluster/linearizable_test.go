package cluster

import (
	"context"
	"fmt"
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

	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/store"
)

// regInput is one operation on the register (one key).
type regInput struct {
	op    string // "set", "get", "del"
	value string
}

// regOutput is what the operation observed.
type regOutput struct {
	value string
	found bool // get: key present; del: key was present
}

// regState is the register's value; present=false is the absent key.
type regState struct {
	value   string
	present bool
}

var registerModel = porcupine.Model{
	Init: func() interface{} { return regState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(regState), input.(regInput), output.(regOutput)
		switch in.op {
		case "set":
			return true, regState{value: in.value, present: true}
		case "del":
			return out.found == s.present, regState{}
		default:
			return out.found == s.present && (!s.present || out.value == s.value), s
		}
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(regInput), output.(regOutput)
		switch in.op {
		case "set":
			return fmt.Sprintf("set(%q)", in.value)
		case "del":
			return fmt.Sprintf("del() -> %v", out.found)
		}
		return fmt.Sprintf("get() -> %q %v", out.value, out.found)
	},
}

// TestLinearizableRegister drives one key from several clients through
// every node (AckAll writes, consistent reads, no faults) and checks the
// history with porcupine.
func TestLinearizableRegister(t *testing.T) {
	seed := testSeed(t)
	c := newTestCluster(t, seed, Options{})
	ctx := ctxFor(t, 60*time.Second)
	key := []byte("register")
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	const clients, opsPerClient = 6, 120
	var (
		mu  sync.Mutex
		ops []porcupine.Operation
		wg  sync.WaitGroup
	)
	for cl := range clients {
		rng := rand.New(rand.NewPCG(seed, uint64(cl)))
		via := c.nodes[c.ids[cl%len(c.ids)]]
		wg.Go(func() {
			for i := range opsPerClient {
				var in regInput
				var out regOutput
				var err error
				call := now()
				switch x := rng.IntN(10); {
				case x < 4:
					in = regInput{op: "set", value: fmt.Sprintf("c%d-%d", cl, i)}
					err = via.Set(ctx, testMap, key, []byte(in.value), store.SetOptions{}, AckAll)
				case x < 5:
					in = regInput{op: "del"}
					out.found, err = via.Delete(ctx, testMap, key, AckAll)
				default:
					in = regInput{op: "get"}
					var v []byte
					v, out.found, err = via.Get(ctx, testMap, key, true)
					out.value = string(v)
				}
				ret := now()
				if err != nil {
					t.Errorf("client %d via %s: %s: %v", cl, via.ID(), in.op, err)
					return
				}
				mu.Lock()
				ops = append(ops, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	res := porcupine.CheckOperationsTimeout(registerModel, ops, 60*time.Second)
	if res != porcupine.Ok {
		t.Fatalf("history of %d operations is not linearizable (%s); seed %d", len(ops), res, seed)
	}
	t.Logf("%d operations linearizable", len(ops))
}

// TestRegisterModelRejects makes sure the model can fail: a read of a
// value overwritten before the read began is not linearizable.
func TestRegisterModelRejects(t *testing.T) {
	ops := []porcupine.Operation{
		{ClientId: 0, Input: regInput{op: "set", value: "a"}, Call: 0, Output: regOutput{}, Return: 1},
		{ClientId: 0, Input: regInput{op: "set", value: "b"}, Call: 2, Output: regOutput{}, Return: 3},
		{ClientId: 1, Input: regInput{op: "get"}, Call: 4, Output: regOutput{value: "a", found: true}, Return: 5},
	}
	if porcupine.CheckOperations(registerModel, ops) {
		t.Fatal("a stale read was accepted")
	}
	if !porcupine.CheckOperations(registerModel, ops[:2]) {
		t.Fatal("two sequential writes were refused")
	}
}

// TestLinearizableAcrossFailover: clients SET and GET one key through
// every node while its primary is cut off (its lease still valid for a
// moment, then refused), the others fail it over (a table without it),
// and the network heals and the cut-off node learns the new table. Writes
// that failed may or may not have taken effect. The history must be
// linearizable: the cut-off primary applied writes it could not
// replicate, and reads of them must neither return at once (a dirty read:
// the new primary never had them) nor once the node stops leading and its
// followers are gone.
// Each round is a fresh cluster (a round takes a fraction of a second).
func TestLinearizableAcrossFailover(t *testing.T) {
	seed := testSeed(t)
	for round := range uint64(8) {
		t.Run(fmt.Sprint(round), func(t *testing.T) { failoverRound(t, seed+round) })
	}
}

func failoverRound(t *testing.T, seed uint64) {
	c := newTestCluster(t, seed, Options{AckTimeout: 300 * time.Millisecond, RequestTimeout: time.Second})
	key := []byte("failover")
	p, r, o := c.roles(key)
	// The failover table: p owns nothing; its partitions keep their other
	// owner first and gain a copy on the node that had none.
	t1 := c.table
	t2 := &ring.Table{Epoch: t1.Epoch + 1, Owners: make([][]ring.NodeID, len(t1.Owners))}
	for i, own := range t1.Owners {
		var keep []ring.NodeID
		for _, id := range own {
			if id != p {
				keep = append(keep, id)
			}
		}
		for _, id := range c.ids {
			if len(keep) < 2 && id != p && !slices.Contains(keep, id) {
				keep = append(keep, id)
			}
		}
		t2.Owners[i] = keep
	}
	if got := t2.Owners[t2.PartitionOf(key)]; !slices.Equal(got, []ring.NodeID{r, o}) {
		t.Fatalf("failover owners %v, want [%s %s]", got, r, o)
	}

	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		mu      sync.Mutex
		ops     []porcupine.Operation
		okOps   atomic.Int64
		unknown atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		nextID  atomic.Int64
	)
	const clients = 6
	nextID.Store(clients)
	for cl := range clients {
		rng := rand.New(rand.NewPCG(seed, uint64(cl)))
		via := c.nodes[c.ids[cl%len(c.ids)]]
		wg.Go(func() {
			id := cl
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				in := regInput{op: "get"}
				var out regOutput
				call := now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				var err error
				if rng.IntN(2) == 0 {
					in = regInput{op: "set", value: fmt.Sprintf("c%d-%d", cl, i)}
					err = via.Set(ctx, testMap, key, []byte(in.value), store.SetOptions{}, AckAll)
				} else {
					var v []byte
					v, out.found, err = via.Get(ctx, testMap, key, true)
					out.value = string(v)
				}
				cancel()
				ret := now()
				switch {
				case err == nil:
					okOps.Add(1)
					mu.Lock()
					ops = append(ops, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
					mu.Unlock()
				case in.op == "set":
					// Unknown outcome: it may take effect at any time
					// after the call, or never.
					unknown.Add(1)
					mu.Lock()
					ops = append(ops, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: regOutput{}, Return: math.MaxInt64})
					mu.Unlock()
					id = int(nextID.Add(1)) - 1
					fallthrough
				default:
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	eventually(t, "100 operations before the cut", func() bool { return okOps.Load() >= 100 })
	cutAt := now()
	c.net.Isolate(c.addrs[p])
	time.Sleep(150 * time.Millisecond) // p still serves: its lease has not run out
	c.leaseDown[p].Store(true)
	c.setTable(t2, r, o)
	before := okOps.Load()
	eventually(t, "100 operations on the majority", func() bool { return okOps.Load() >= before+100 })
	c.net.Heal()
	c.setTable(t2, p) // the cut-off node learns it was failed over
	c.leaseDown[p].Store(false)
	before = okOps.Load()
	eventually(t, "100 operations after the heal", func() bool { return okOps.Load() >= before+100 })
	halt()
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, time.Minute)
	if res == porcupine.Illegal {
		dir, _ := os.MkdirTemp("", "engram-failover")
		path := filepath.Join(dir, "history.html")
		if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
			path = err.Error()
		}
		t.Fatalf("history of %d operations (%d writes with unknown outcome; %s cut off at %v; primary %s, replica %s, other %s; client i goes through %v[i%%3]) is not linearizable (seed %d); visualization: %s",
			len(ops), unknown.Load(), p, time.Duration(cutAt), p, r, o, c.ids, seed, path)
	}
	t.Logf("%d operations (%d writes with unknown outcome): %s", len(ops), unknown.Load(), res)
}
