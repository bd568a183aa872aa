package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// isolate cuts every packet between host and the other hosts with
// iptables (loopback traffic crosses the INPUT chain), leaving the test's
// own clients (on 127.0.0.1) connected to every node. It returns the
// function that heals the split; the test's cleanup heals it too.
func isolate(t *testing.T, host string, others []string) (heal func()) {
	t.Helper()
	var rules [][]string
	for _, o := range others {
		rules = append(rules, []string{"INPUT", "-s", host, "-d", o, "-j", "DROP"}, []string{"INPUT", "-s", o, "-d", host, "-j", "DROP"})
	}
	var added [][]string
	healed := false
	heal = func() {
		if healed {
			return
		}
		healed = true
		for _, r := range added {
			if out, err := exec.Command("iptables", append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
				t.Errorf("cannot remove iptables rule %v: %v %s", r, err, out)
			}
		}
	}
	t.Cleanup(heal)
	for _, r := range rules {
		out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput()
		if err != nil {
			heal()
			if len(added) == 0 {
				t.Skipf("cannot cut the network with iptables (needs root and iptables): %v %s", err, strings.TrimSpace(string(out)))
			}
			t.Fatalf("iptables -I %v: %v %s", r, err, out)
		}
		added = append(added, r)
	}
	return heal
}

// TestClusterSplitLinearizable: one data node (not the control plane's
// leader) is cut off from the other two for longer than failure
// detection, then the network heals. Clients keep using every node,
// including the cut-off one. The cut-off node must refuse consistent
// operations once its lease ends (CLUSTERDOWN), the majority must carry
// on, the cluster must converge after the heal with no manual step, and
// every key's history must be linearizable.
func TestClusterSplitLinearizable(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables not installed: cannot cut the network")
	}
	c := startCluster(t, 3, "--partitions", "31")
	leader := c.leader()
	if leader == nil {
		t.Fatal("no control-plane leader")
	}
	var victim *cnode
	var others []string
	for _, n := range c.live() {
		if n != leader && victim == nil {
			victim = n
		} else {
			others = append(others, n.host)
		}
	}
	var sawDown bool
	checkLinearizable(t, c, victim, "network split", func() {
		heal := isolate(t, victim.host, others)
		cut := time.Now()
		// Within a few leases the cut-off side says it has no quorum.
		deadline := cut.Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			info, err := victim.rdb.Do(ctx, "CLUSTER", "INFO").Text()
			cancel()
			if err == nil && strings.Contains(info, "cluster_state:fail") {
				sawDown = true
				t.Logf("cut-off node reports cluster_state:fail %v after the cut", time.Since(cut).Round(10*time.Millisecond))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Let the majority detect the failure and take over.
		waitFor(t, settleTimeout, "the majority to record the cut-off node as failed", func() bool {
			ok, _ := c.settledAmong(2, victim)
			return ok
		})
		t.Logf("majority settled without the cut-off node %v after the cut", time.Since(cut).Round(10*time.Millisecond))
		heal()
		healed := time.Now()
		waitFor(t, settleTimeout, "the cluster to converge after the heal", func() bool {
			ok, _ := c.settled(3)
			return ok
		})
		t.Logf("converged %v after the heal", time.Since(healed).Round(10*time.Millisecond))
	})
	if !sawDown {
		t.Error("the cut-off node never reported cluster_state:fail (its lease did not end)")
	}
}

// settledAmong reports whether the live nodes other than except agree on
// one epoch with state ok, no migration and dataNodes data nodes (the
// majority side of a split; the cut-off node cannot be asked for it).
func (c *tcluster) settledAmong(dataNodes int, except *cnode) (bool, string) {
	epoch := ""
	for _, n := range c.live() {
		if n == except {
			continue
		}
		inf, err := n.info()
		switch {
		case err != nil:
			return false, n.name + ": " + err.Error()
		case inf["cluster_state"] != "ok" || inf["cluster_migrations"] != "0" || inf["cluster_data_nodes"] != strconv.Itoa(dataNodes):
			return false, fmt.Sprintf("%s: %v", n.name, inf)
		case epoch != "" && inf["cluster_epoch"] != epoch:
			return false, "epochs differ"
		}
		epoch = inf["cluster_epoch"]
	}
	return true, ""
}
