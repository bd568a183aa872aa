package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster tests start several engram processes on distinct loopback
// addresses (127.0.0.2, 127.0.0.3, ...: Linux routes all of 127/8 to lo),
// drive them with go-redis and redis-cli, and look at them through CLUSTER
// INFO / NODES / OWNERS. Every wait is a polling loop with a generous
// deadline that only turns a hang into a failure; nothing asserts how fast
// anything happens. Node logs are printed (each line prefixed with the
// node's name) when a test fails, or always with ENGRAM_E2E_LOGS=1.
// ENGRAM_SOAK=1 adds the long soak test (cluster_soak_test.go).

const (
	// clusterSecret is the secret of the test clusters (16+ bytes).
	clusterSecret = "e2e-cluster-secret-0123456789"
	// settleTimeout bounds waitSettled: joins, leaves and failovers of a
	// few thousand keys on loopback take seconds; this is a safety net.
	settleTimeout = 90 * time.Second
	// stallTimeout ends waitSettled early when no node's state, epoch,
	// migration count or data node count changed for that long: the
	// cluster is stuck, not slow.
	stallTimeout = 20 * time.Second
	// opTimeout is the client-side bound of one command. The server
	// answers within its own request timeout (10 s, then -TRYAGAIN), so a
	// client timeout means the server hung.
	opTimeout = 25 * time.Second
)

// memberRE finds the gossip address in the "cluster member started" log
// line; it is what other nodes pass to --join.
var memberRE = regexp.MustCompile(`msg="cluster member started" .*\bnode=(\S+) .*\bgossip=(\S+) data=(\S+) raft=(\S+)`)

// tcluster is a cluster of engram processes started by a test.
type tcluster struct {
	t     *testing.T
	flags []string // flags every node gets (--partitions, --replicas, ...)
	env   []string // environment every node gets (store credentials, ...)

	mu    sync.Mutex
	nodes []*cnode // every process started, in start order (dead ones too)
	nextH int      // next loopback host number (127.0.0.nextH)
}

// cnode is one engram process of a test cluster.
type cnode struct {
	*node
	c      *tcluster
	name   string // n1, n2, ... (--node-name; the member ID adds a suffix)
	host   string // 127.0.0.x
	id     string // member ID (name-suffix)
	gossip string // cluster (gossip) address, for --join
	data   string // node-to-node data address
	rdb    *redis.Client
	member bool // part of the cluster as far as the test is concerned

	up   atomic.Bool // ready: addresses and client set
	gone atomic.Bool // killed or stopped by the test
}

// startCluster starts n data nodes (the first bootstraps, the others join
// it) with flags given to every node, and waits until the cluster has
// settled.
func startCluster(t *testing.T, n int, flags ...string) *tcluster {
	t.Helper()
	c := newCluster(t, flags...)
	for range n {
		c.add()
	}
	c.waitSettled(n)
	return c
}

// newCluster returns an empty cluster whose processes are killed at the
// end of the test, with their logs dumped if it failed.
func newCluster(t *testing.T, flags ...string) *tcluster {
	c := &tcluster{t: t, flags: flags, nextH: 2}
	t.Cleanup(func() {
		c.mu.Lock()
		nodes := slices.Clone(c.nodes)
		c.mu.Unlock()
		for _, n := range nodes {
			if n.rdb != nil {
				n.rdb.Close()
			}
			select {
			case <-n.exited:
			default:
				n.cmd.Process.Kill()
				<-n.exited
			}
		}
		if t.Failed() || os.Getenv("ENGRAM_E2E_LOGS") != "" {
			c.dumpLogs()
		}
	})
	return c
}

// dumpLogs prints every node's log, each line prefixed with its name.
func (c *tcluster) dumpLogs() {
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	for _, n := range nodes {
		var b strings.Builder
		for _, l := range lines(n.log()) {
			fmt.Fprintf(&b, "[%s] %s\n", n.name, l)
		}
		c.t.Logf("log of %s (%s, %s):\n%s", n.name, n.id, n.addr, b.String())
	}
}

// add starts a data node that joins the cluster (or bootstraps it if it
// is the first), with extra flags, and waits until it is ready to serve.
// It does not wait for the cluster to settle.
func (c *tcluster) add(extra ...string) *cnode {
	c.t.Helper()
	var args []string
	if seeds := c.seeds(); len(seeds) > 0 {
		args = append(args, "--join", strings.Join(seeds, ","))
	}
	return c.spawn(true, []string{"ENGRAM_CLUSTER_SECRET=" + clusterSecret}, append(args, extra...)...)
}

// seeds returns the gossip addresses of the live members.
func (c *tcluster) seeds() []string {
	var s []string
	for _, n := range c.live() {
		s = append(s, n.gossip)
	}
	return s
}

// spawn starts a process on the next loopback host with the cluster's
// flags plus args and env, and waits for its ready line. member says
// whether it counts as part of the cluster (live(), waitSettled).
func (c *tcluster) spawn(member bool, env []string, args ...string) *cnode {
	c.t.Helper()
	c.mu.Lock()
	h := c.nextH
	c.nextH++
	c.mu.Unlock()
	return c.spawnOn(fmt.Sprintf("127.0.0.%d", h), member, env, args...)
}

// spawnOn is spawn on a given loopback host (args may override --resp and
// --cluster, which default to free ports: the last value of a flag wins).
func (c *tcluster) spawnOn(host string, member bool, env []string, args ...string) *cnode {
	t := c.t
	t.Helper()
	c.mu.Lock()
	name := fmt.Sprintf("n%d", len(c.nodes)+1)
	c.mu.Unlock()
	all := []string{"serve", "--resp", host + ":0", "--http", "off", "--cluster", host + ":0", "--node-name", name}
	all = append(all, c.flags...)
	all = append(all, args...)
	cn := &cnode{c: c, name: name, host: host, member: member,
		node: &node{t: t, cmd: exec.Command(engramBin, all...), exited: make(chan struct{})}}
	cn.cmd.Env = append(append(cleanEnv(), c.env...), env...)
	stderr, err := cn.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.cmd.Start(); err != nil {
		t.Fatalf("start engram: %v", err)
	}
	ready := make(chan string, 1)
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			cn.mu.Lock()
			cn.stderr.WriteString(line + "\n")
			cn.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-scanDone
		cn.err = cn.cmd.Wait()
		close(cn.exited)
	}()
	c.mu.Lock()
	c.nodes = append(c.nodes, cn)
	c.mu.Unlock()
	select {
	case cn.addr = <-ready:
	case <-cn.exited:
		t.Fatalf("%s exited before it was ready: %v\n%s", name, cn.err, cn.log())
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not log that it was ready within %v\n%s", name, waitTimeout, cn.log())
	}
	cn.port = cn.addr[strings.LastIndexByte(cn.addr, ':')+1:]
	m := memberRE.FindStringSubmatch(cn.log())
	if m == nil {
		t.Fatalf("%s: no \"cluster member started\" line with its gossip address before the ready line:\n%s", name, cn.log())
	}
	cn.id, cn.gossip, cn.data = m[1], m[2], m[3]
	cn.rdb = newClient(cn.addr)
	cn.up.Store(true)
	return cn
}

// newClient returns a go-redis client that never retries by itself (the
// tests decide what a retry means) and honours context deadlines.
func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 32,
		DialTimeout: 5 * time.Second, ReadTimeout: opTimeout, WriteTimeout: opTimeout, ContextTimeoutEnabled: true})
}

// live returns the member nodes not killed or stopped by the test.
func (c *tcluster) live() []*cnode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var l []*cnode
	for _, n := range c.nodes {
		if n.member && n.up.Load() && !n.gone.Load() {
			l = append(l, n)
		}
	}
	return l
}

// byID returns the node with member ID id, or nil.
func (c *tcluster) byID(id string) *cnode {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// kill sends SIGKILL (kill -9) and waits for the process to die.
func (n *cnode) kill() {
	n.gone.Store(true)
	n.signalAndWait(syscall.SIGKILL)
}

// stop sends SIGTERM (graceful leave) and waits for a clean exit.
func (n *cnode) stop() {
	n.t.Helper()
	n.gone.Store(true)
	if err := n.signalAndWait(syscall.SIGTERM); err != nil {
		n.t.Errorf("%s exited with %v after SIGTERM, want 0", n.name, err)
	}
}

// ctx returns a context for one admin request.
func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// info returns n's CLUSTER INFO as a map.
func (n *cnode) info() (map[string]string, error) {
	ctx, cancel := ctxTimeout(5 * time.Second)
	defer cancel()
	s, err := n.rdb.ClusterInfo(ctx).Result()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// nodeLine is one line of CLUSTER NODES.
type nodeLine struct {
	id, resp, data, role string
	myself, leader       bool
	alive, manager       bool
	primaries, replicas  int
}

// nodes returns n's CLUSTER NODES, parsed.
func (n *cnode) nodes() ([]nodeLine, string, error) {
	ctx, cancel := ctxTimeout(5 * time.Second)
	defer cancel()
	s, err := n.rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, "", err
	}
	var out []nodeLine
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(l)
		if len(f) != 8 {
			return nil, s, fmt.Errorf("CLUSTER NODES line %q: want 8 fields", l)
		}
		roles := strings.Split(f[3], ",")
		nl := nodeLine{id: f[0], resp: f[1], data: f[2], role: roles[0], myself: slices.Contains(roles, "myself"),
			leader: slices.Contains(roles, "leader"), alive: f[4] == "alive", manager: f[5] == "manager"}
		p, err1 := strconv.Atoi(strings.TrimPrefix(f[6], "primaries="))
		r, err2 := strconv.Atoi(strings.TrimPrefix(f[7], "replicas="))
		if err1 != nil || err2 != nil {
			return nil, s, fmt.Errorf("CLUSTER NODES line %q: bad primaries/replicas", l)
		}
		nl.primaries, nl.replicas = p, r
		out = append(out, nl)
	}
	return out, s, nil
}

// owners returns CLUSTER OWNERS key through n: the member IDs owning
// key's partition, primary first.
func (n *cnode) owners(key string) ([]string, error) {
	ctx, cancel := ctxTimeout(5 * time.Second)
	defer cancel()
	return n.rdb.Do(ctx, "cluster", "owners", key).StringSlice()
}

// leader returns the live node that is the control plane's leader
// according to n, or nil.
func (c *tcluster) leader() *cnode {
	for _, n := range c.live() {
		if inf, err := n.info(); err == nil && inf["cluster_leader"] != "" {
			if l := c.byID(inf["cluster_leader"]); l != nil && !l.gone.Load() {
				return l
			}
		}
	}
	return nil
}

// settled reports whether every live node agrees the cluster is done
// changing: state ok, one epoch, no migrations, dataNodes alive data
// nodes, and a complete table (every partition has a primary and
// min(replicas, dataNodes) copies). why says what is missing.
func (c *tcluster) settled(dataNodes int) (ok bool, why string) {
	ok, why, _ = c.settledSig(dataNodes)
	return ok, why
}

// settledSig is settled that also returns a signature of the nodes'
// states, which changes as long as the cluster makes progress.
func (c *tcluster) settledSig(dataNodes int) (ok bool, why, sig string) {
	live := c.live()
	if len(live) == 0 {
		return false, "no live node", ""
	}
	epoch := ""
	var states []string
	for _, n := range live {
		inf, err := n.info()
		if err != nil {
			return false, fmt.Sprintf("%s: CLUSTER INFO: %v", n.name, err), sig
		}
		states = append(states, fmt.Sprintf("%s: state=%s epoch=%s migrations=%s data_nodes=%s reason=%q",
			n.name, inf["cluster_state"], inf["cluster_epoch"], inf["cluster_migrations"], inf["cluster_data_nodes"], inf["cluster_state_reason"]))
		sig += fmt.Sprintf("%s:%s/%s/%s/%s ", n.name, inf["cluster_state"], inf["cluster_epoch"], inf["cluster_migrations"], inf["cluster_data_nodes"])
		switch {
		case inf["cluster_state"] != "ok":
			why = "state not ok"
		case inf["cluster_migrations"] != "0":
			why = "migrations in progress"
		case inf["cluster_data_nodes"] != strconv.Itoa(dataNodes):
			why = fmt.Sprintf("want %d data nodes", dataNodes)
		case epoch != "" && inf["cluster_epoch"] != epoch:
			why = "epochs differ"
		}
		epoch = inf["cluster_epoch"]
	}
	all := strings.Join(states, "; ")
	if why != "" {
		return false, why + ": " + all, sig
	}
	c.mu.Lock()
	started := slices.Clone(c.nodes)
	c.mu.Unlock()
	for _, n := range live {
		lines, raw, err := n.nodes()
		if err != nil {
			return false, fmt.Sprintf("%s: CLUSTER NODES: %v", n.name, err), sig
		}
		// Every live member is listed alive, every one the test killed or
		// stopped is not.
		for _, m := range started {
			if !m.member || !m.up.Load() {
				continue
			}
			i := slices.IndexFunc(lines, func(l nodeLine) bool { return l.id == m.id })
			if live := !m.gone.Load(); live && (i < 0 || !lines[i].alive) {
				return false, fmt.Sprintf("%s does not list %s as alive: %s\n%s", n.name, m.name, all, raw), sig
			} else if !live && i >= 0 && lines[i].alive {
				return false, fmt.Sprintf("%s still lists %s as alive: %s\n%s", n.name, m.name, all, raw), sig
			}
		}
		inf, _ := n.info()
		parts, _ := strconv.Atoi(inf["cluster_partitions"])
		copies, _ := strconv.Atoi(inf["cluster_replicas"])
		prim, repl := 0, 0
		for _, l := range lines {
			prim += l.primaries
			repl += l.replicas
		}
		if want := parts * (min(copies, dataNodes) - 1); prim != parts || repl != want {
			return false, fmt.Sprintf("table incomplete on %s: primaries sum to %d (want %d), replicas to %d (want %d): %s\n%s", n.name, prim, parts, repl, want, all, raw), sig
		}
	}
	return true, all, sig
}

// waitSettled waits until settled(dataNodes) holds and returns how long
// that took. It fails the test if that does not happen within
// settleTimeout.
func (c *tcluster) waitSettled(dataNodes int) time.Duration {
	c.t.Helper()
	d, err := c.trySettle(dataNodes)
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

// trySettle is waitSettled that returns the failure instead, for tests
// that still have things to check when the cluster does not settle.
func (c *tcluster) trySettle(dataNodes int) (time.Duration, error) {
	start := time.Now()
	lastSig, lastChange := "", start
	for {
		ok, why, sig := c.settledSig(dataNodes)
		if ok {
			return time.Since(start), nil
		}
		if sig != lastSig {
			lastSig, lastChange = sig, time.Now()
		}
		if time.Since(lastChange) > stallTimeout {
			return 0, fmt.Errorf("cluster did not settle with %d data nodes: no progress for %v: %s", dataNodes, stallTimeout, why)
		}
		if time.Since(start) > settleTimeout {
			return 0, fmt.Errorf("cluster did not settle with %d data nodes within %v: %s", dataNodes, settleTimeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, failing the test after d with what.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// errKind classifies a command's error.
type errKind int

const (
	errNone     errKind = iota
	errTryAgain         // -TRYAGAIN: retryable; a write may have been applied
	errDown             // -CLUSTERDOWN: no quorum on this side
	errConn             // the connection failed (node dead or closing)
	errTimeout          // no reply within opTimeout: the server hung
	errOther            // any other error reply: a bug
	numErrKinds
)

var errKindNames = [numErrKinds]string{"ok", "TRYAGAIN", "CLUSTERDOWN", "connection", "timeout", "other"}

func (k errKind) String() string { return errKindNames[k] }

// classify returns err's kind (redis.Nil is not an error).
func classify(err error) errKind {
	if err == nil || errors.Is(err, redis.Nil) {
		return errNone
	}
	s := err.Error()
	switch {
	case strings.HasPrefix(s, "TRYAGAIN"):
		return errTryAgain
	case strings.HasPrefix(s, "CLUSTERDOWN"):
		return errDown
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return errTimeout
	}
	var re redis.Error
	if errors.As(err, &re) {
		return errOther
	}
	// EOF, connection refused or reset, pool closed: the node went away.
	return errConn
}

// errCounts counts errors by kind, keeping a few examples of each.
type errCounts struct {
	mu       sync.Mutex
	n        [numErrKinds]int
	examples [numErrKinds][]string
}

func (e *errCounts) add(k errKind, where string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[k]++
	if len(e.examples[k]) < 5 {
		e.examples[k] = append(e.examples[k], fmt.Sprintf("%s: %v", where, err))
	}
}

func (e *errCounts) count(k errKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[k]
}

func (e *errCounts) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for k := errTryAgain; k < numErrKinds; k++ {
		fmt.Fprintf(&b, "%s=%d ", k, e.n[k])
	}
	for k := errTryAgain; k < numErrKinds; k++ {
		for _, ex := range e.examples[k] {
			fmt.Fprintf(&b, "\n  %s e.g. %s", k, ex)
		}
	}
	return b.String()
}

// setAll writes key→value pairs through rdb in pipelines, failing the
// test on any error (for loading data into a settled cluster).
func setAll(t *testing.T, rdb *redis.Client, kv map[string]string) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(kv))
	ctx := context.Background()
	for i := 0; i < len(keys); i += 500 {
		chunk := keys[i:min(i+500, len(keys))]
		cmds, _ := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range chunk {
				p.Set(ctx, k, kv[k], 0)
			}
			return nil
		})
		for j, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				t.Fatalf("SET %s: %v", chunk[j], err)
			}
		}
	}
}

// getAll reads keys through rdb in pipelines: value and presence per key.
func getAll(rdb *redis.Client, keys []string) (map[string]string, error) {
	got := map[string]string{}
	ctx := context.Background()
	for i := 0; i < len(keys); i += 500 {
		chunk := keys[i:min(i+500, len(keys))]
		cmds, _ := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range chunk {
				p.Get(ctx, k)
			}
			return nil
		})
		for j, cmd := range cmds {
			v, err := cmd.(*redis.StringCmd).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("GET %s: %w", chunk[j], err)
			}
			got[chunk[j]] = v
		}
	}
	return got, nil
}
