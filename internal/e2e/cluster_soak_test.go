package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestClusterSoak (ENGRAM_SOAK=1; ENGRAM_SOAK_ROUNDS, default 10): under
// writers, round after round a random data node dies (kill -9) or leaves
// (SIGTERM) and a new one joins; the cluster must settle each time and no
// acknowledged write may be lost. Too long for CI.
func TestClusterSoak(t *testing.T) {
	if os.Getenv("ENGRAM_SOAK") == "" {
		t.Skip("set ENGRAM_SOAK=1 to run the cluster soak test (minutes)")
	}
	rounds := 10
	if s := os.Getenv("ENGRAM_SOAK_ROUNDS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil {
			t.Fatalf("ENGRAM_SOAK_ROUNDS=%q: %v", s, err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	c := startCluster(t, 4, "--partitions", "64", "--replicas", "2")
	load := newLoad(c, func(n *cnode, k errKind) bool {
		return k == errTryAgain || k == errDown || (k == errConn && n.gone.Load())
	})
	nodes := c.live()
	const writers = 8
	for w := range writers {
		load.startWriter(w, fmt.Sprintf("soak:%d", w), 100, nodes[w%len(nodes)])
	}
	defer func() {
		select {
		case <-load.stop:
		default:
			load.halt()
		}
	}()
	if !load.waitAcks(make([]int64, writers), 50) {
		t.Fatalf("writers did not start: %v; errors: %s", load.ackCounts(), &load.errs)
	}
	for r := range rounds {
		live := c.live()
		victim := live[rng.IntN(len(live))]
		how := "kill -9"
		start := time.Now()
		if rng.IntN(2) == 0 {
			victim.kill()
		} else {
			how = "SIGTERM"
			victim.stop()
		}
		if _, err := c.trySettle(len(live) - 1); err != nil {
			t.Errorf("round %d, after %s of %s: %v", r, how, victim.name, err)
			break
		}
		down := time.Since(start)
		joined := time.Now()
		n := c.add()
		if _, err := c.trySettle(len(live)); err != nil {
			t.Errorf("round %d, after %s joined: %v", r, n.name, err)
			break
		}
		load.addTarget(n)
		base := load.ackCounts()
		if !load.waitAcks(base, 20) {
			t.Errorf("round %d: writes did not continue: %v (before %v)", r, load.ackCounts(), base)
			break
		}
		t.Logf("round %d: %s of %s settled after %v; %s joined and settled after %v; acks %v",
			r, how, victim.name, down.Round(time.Millisecond), n.name, time.Since(joined).Round(time.Millisecond), load.ackCounts())
	}
	load.halt()
	t.Logf("longest wait of a writer for an ack %v; errors: %s", load.maxGap().Round(time.Millisecond), &load.errs)
	if n := load.stale.Load(); n > 0 {
		t.Errorf("%s", load.staleReads())
	}
	for k := errTryAgain; k < numErrKinds; k++ {
		if load.bad.count(k) > 0 {
			t.Errorf("unexpected errors: %s", &load.bad)
			break
		}
	}
	t.Logf("lost acknowledged writes: %d", load.verify(t, nil))
}
