package cluster

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

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
