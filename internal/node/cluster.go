package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/control"
	"github.com/engramdb/engram/internal/membership"
	"github.com/engramdb/engram/internal/persist"
	"github.com/engramdb/engram/internal/ring"
	"github.com/engramdb/engram/internal/transport"
)

// controlRequest is a KindControl message: finished copies, or a map
// setting, for the control plane's leader.
type controlRequest struct {
	Synced []control.SyncReport `json:"synced,omitempty"`
	Map    *mapSetting          `json:"map,omitempty"`
	// Apply (leader to every member) is a committed map configuration to
	// apply at once, before Raft's own delivery reaches the node.
	Apply map[string]control.MapConfig `json:"apply,omitempty"`
	// ReadIndex asks the leader for the log index to apply before the
	// asking node's lease may start (control.ReadIndex).
	ReadIndex bool `json:"read_index,omitempty"`
}

// mapSetting changes one setting of a map's cluster configuration.
type mapSetting struct {
	Name    string `json:"name"`
	Setting string `json:"setting"` // max_ttl, max_keys or store
	Value   int64  `json:"value"`
	Text    string `json:"text,omitempty"` // store: the settings
}

// KindControl is the transport message kind of control-plane requests
// between nodes (a primary reporting finished copies to the leader).
const KindControl uint8 = 2

// NodeEvent is a change in the cluster's membership as the Go API shows
// it (jc_node_events): a node came up or went down, with the active and
// configured node lists after the change.
type NodeEvent struct {
	// Up is true for a node that joined (or came back), false for one that
	// failed or left.
	Up bool
	// Node is the ID of the node that changed.
	Node string
	// Left is true when a node that went down left gracefully (it is no
	// longer configured).
	Left bool
	// Active and Configured are the node IDs after the change, sorted.
	Active, Configured []string
}

// clusterNode is the cluster half of a Node: gossip, control plane, data
// plane and the loops that tie them together.
type clusterNode struct {
	n      *Node
	id     string
	log    *slog.Logger
	secret []byte

	obs     *cluster.Observer
	handler *cluster.Handler
	tr      lateTransport
	data    *cluster.Node

	ctl  *control.Control
	mem  *membership.Membership
	memP atomic.Pointer[membership.Membership] // mem, for the control plane's goroutines
	meta membership.Meta

	lease time.Duration
	fast  bool
	// leaseBase and leaseUntil (nanoseconds since leaseBase, on the
	// monotonic clock) hold the lease renewLease last confirmed.
	leaseBase  time.Time
	leaseUntil atomic.Int64
	leaseErr   atomic.Pointer[string] // why the last renewal failed
	leaseKick  chan struct{}          // renew now (a table was installed)

	mu        sync.Mutex
	left      map[string]bool   // members that announced a graceful leave
	mapVer    map[string]uint64 // version of each map configuration applied
	listeners map[int]func(NodeEvent)
	nextL     int
	reports   []control.SyncReport
	kick      chan struct{}

	applied atomic.Uint64 // epoch of the last table installed
	stop    chan struct{}
	wg      sync.WaitGroup
}

// lateTransport lets the data plane be composed before its TCP listener
// is opened (in Start).
type lateTransport struct{ t atomic.Pointer[transport.TCP] }

func (l *lateTransport) get() (*transport.TCP, error) {
	t := l.t.Load()
	if t == nil {
		return nil, fmt.Errorf("%w: node-to-node transport not started", transport.ErrUnreachable)
	}
	return t, nil
}

func (l *lateTransport) Call(ctx context.Context, addr string, kind uint8, req []byte) ([]byte, error) {
	t, err := l.get()
	if err != nil {
		return nil, err
	}
	return t.Call(ctx, addr, kind, req)
}

func (l *lateTransport) Send(ctx context.Context, addr string, kind uint8, req []byte) error {
	t, err := l.get()
	if err != nil {
		return err
	}
	return t.Send(ctx, addr, kind, req)
}

func (l *lateTransport) Addr() string {
	if t := l.t.Load(); t != nil {
		return t.Addr()
	}
	return ""
}

func (l *lateTransport) Close() error {
	if t := l.t.Load(); t != nil {
		return t.Close()
	}
	return nil
}

// newMemberID returns this start's member ID: the node name and a random
// suffix, so a restarted process (which lost its memory) is a new member
// and never mistaken for the one that held data.
func newMemberID(name string) string {
	var b [3]byte
	rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// newClusterID names a new cluster (membership.Meta.Cluster).
func newClusterID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isLoopback reports whether host:port names a loopback address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// offsetAddr returns addr with its port moved by d (port 0 stays 0: each
// listener then picks its own port, and peers learn it by gossip).
func offsetAddr(addr string, d int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", err
	}
	if p == 0 {
		return net.JoinHostPort(host, "0"), nil
	}
	if p+d > 65535 {
		return "", fmt.Errorf("port %d+%d is out of range", p, d)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+d)), nil
}

func newClusterNode(n *Node) *clusterNode {
	name := n.cfg.NodeName
	if name == "" {
		name = n.cfg.ClusterAddr
	}
	fast := isLoopback(n.cfg.ClusterAddr)
	c := &clusterNode{n: n, id: newMemberID(name), secret: []byte(n.cfg.ClusterSecret),
		obs: cluster.NewObserver(), handler: cluster.NewHandler(), fast: fast,
		left: map[string]bool{}, mapVer: map[string]uint64{}, listeners: map[int]func(NodeEvent){}, kick: make(chan struct{}, 1),
		stop: make(chan struct{})}
	c.log = n.log.With("component", "cluster", "node", c.id)
	// The lease: how long after a confirmation by the control plane's
	// leader (renewLease) a node keeps serving consistent operations.
	// Failure detection takes longer, and a planned move waits longer
	// (HandoffWait), so the majority never acts on a table this node may
	// still be serving from.
	c.lease = 3 * time.Second
	if fast {
		c.lease = time.Second
	}
	c.leaseBase = time.Now()
	c.leaseKick = make(chan struct{}, 1)
	return c
}

// leaseLoop renews the lease several times per lease period, at once
// when a table is installed (which may make this node primary of
// partitions), and every 25 ms while it holds none (joining, or after a
// split heals).
func (c *clusterNode) leaseLoop() {
	defer c.wg.Done()
	every := c.lease / 5
	for {
		start := time.Now()
		wait := every
		if err := c.renewLease(); err != nil {
			msg := err.Error()
			if old := c.leaseErr.Swap(&msg); old == nil || *old != msg {
				c.log.Debug("cannot renew the lease", "err", err)
			}
			if c.checkLease() != nil {
				wait = 25 * time.Millisecond
			}
		} else {
			c.leaseErr.Store(nil)
		}
		t := time.NewTimer(wait - time.Since(start))
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-c.leaseKick:
		case <-t.C:
		}
		t.Stop()
	}
}

// renewLease extends the lease to a lease period after the moment it
// started asking, once the control plane's leader has confirmed it still
// leads and this node has applied every partition table committed by
// then (control.ReadIndex). Hearing from the leader is not enough: a node
// back from the minority side of a split hears the leader's heartbeats
// before it has applied the tables that moved its partitions away, and
// would serve stale reads in between.
func (c *clusterNode) renewLease() error {
	start := time.Since(c.leaseBase)
	var idx uint64
	if c.ctl.IsLeader() {
		var err error
		if idx, err = c.ctl.ReadIndex(c.lease); err != nil {
			return err
		}
	} else {
		b, err := c.callLeader(controlRequest{ReadIndex: true}, c.lease)
		if err != nil {
			return err
		}
		if idx, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			return fmt.Errorf("bad read index from the leader: %q", b)
		}
	}
	if err := c.ctl.WaitApplied(idx, c.lease); err != nil {
		return err
	}
	until := int64(start) + int64(c.lease)
	for {
		old := c.leaseUntil.Load()
		if until <= old || c.leaseUntil.CompareAndSwap(old, until) {
			return nil
		}
	}
}

// checkLease is the data plane's lease (cluster.Config.Lease).
func (c *clusterNode) checkLease() error {
	if c.ctl == nil {
		return errors.New("control plane not started")
	}
	until := c.leaseUntil.Load()
	now := int64(time.Since(c.leaseBase))
	if until == 0 {
		return errors.New("this node has not been confirmed by the control plane's leader yet")
	}
	if now < until {
		return nil
	}
	d := time.Duration(now - until + int64(c.lease))
	why := ""
	if e := c.leaseErr.Load(); e != nil {
		why = ": " + *e
	}
	return fmt.Errorf("no confirmation by the control plane's leader for %v (lease %v)%s", d.Round(time.Millisecond), c.lease, why)
}

// compose builds the data plane (called by node.New, before the store's
// observer and the server need it).
func (c *clusterNode) compose() error {
	var err error
	c.data, err = cluster.New(cluster.Config{ID: ring.NodeID(c.id), Store: c.n.store, Transport: &c.tr,
		Observer: c.obs, Handler: c.handler, Lease: c.checkLease, OnSynced: c.onSynced,
		Options: cluster.Options{NearCacheEntries: c.n.cfg.NearCache, HandoffWait: c.lease + 500*time.Millisecond}})
	return err
}

// handle serves node-to-node messages: data plane and control requests.
func (c *clusterNode) handle(ctx context.Context, from string, kind uint8, req []byte) ([]byte, error) {
	switch kind {
	case cluster.KindData:
		return c.handler.Handle(ctx, from, kind, req)
	case KindControl:
		var cr controlRequest
		if err := json.Unmarshal(req, &cr); err != nil {
			return nil, fmt.Errorf("bad control request: %w", err)
		}
		if len(cr.Synced) > 100000 {
			return nil, errors.New("too many sync reports in one request")
		}
		if cr.Map != nil {
			return nil, c.applyMapConfig(cr.Map)
		}
		if cr.Apply != nil {
			c.applyMaps(cr.Apply)
			return nil, nil
		}
		if cr.ReadIndex {
			idx, err := c.ctl.ReadIndex(c.lease)
			if err != nil {
				return nil, err
			}
			return strconv.AppendUint(nil, idx, 10), nil
		}
		n, err := c.ctl.MarkSynced(cr.Synced, 5*time.Second)
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(nil, int64(n), 10), nil
	}
	return nil, fmt.Errorf("unknown message kind %d", kind)
}

// start opens the cluster listeners, starts the control plane and gossip,
// and joins the cluster.
func (c *clusterNode) start() error {
	cfg := c.n.cfg
	dataAddr, err := offsetAddr(cfg.ClusterAddr, 1)
	if err != nil {
		return fmt.Errorf("bad --cluster address %q: %w", cfg.ClusterAddr, err)
	}
	raftAddr, err := offsetAddr(cfg.ClusterAddr, 2)
	if err != nil {
		return fmt.Errorf("bad --cluster address %q: %w", cfg.ClusterAddr, err)
	}
	tlsConf, err := clusterTLS(cfg.ClusterTLSCert, cfg.ClusterTLSKey, cfg.ClusterTLSCA)
	if err != nil {
		return err
	}
	tr, err := transport.NewTCP(transport.TCPOptions{ListenAddr: dataAddr, Handler: c.handle, Secret: c.secret,
		TLS: tlsConf, Logger: c.log.With("component", "transport")})
	if err != nil {
		return fmt.Errorf("cannot listen for node-to-node data on %s: %w", dataAddr, err)
	}
	c.tr.t.Store(tr)
	if _, port, _ := net.SplitHostPort(raftAddr); port == "0" {
		// Raft advertises the address it binds: pick a concrete port.
		ln, err := net.Listen("tcp", raftAddr)
		if err != nil {
			return fmt.Errorf("cannot listen for the control plane on %s: %w", raftAddr, err)
		}
		raftAddr = ln.Addr().String()
		ln.Close()
	}
	cluster := ""
	if len(cfg.Join) == 0 {
		// This node starts a new cluster: name it, so that neither gossip
		// nor Raft ever merges it with another one (a node that joins
		// adopts the name).
		cluster = newClusterID()
	}
	c.ctl, err = control.New(control.Options{
		Cluster: func() string {
			if m := c.memP.Load(); m != nil {
				return m.Cluster()
			}
			return cluster
		},
		ID:         c.id,
		RaftAddr:   raftAddr,
		Secret:     c.secret,
		Bootstrap:  len(cfg.Join) == 0,
		Partitions: cfg.Partitions,
		Copies:     cfg.Replicas,
		Fast:       c.fast,
		OnChange:   c.onChange,
		Logger:     c.log.With("component", "control"),
	})
	if err != nil {
		return err
	}
	role := membership.RoleData
	if cfg.Role == "client" {
		role = membership.RoleClient
	}
	meta := membership.Meta{ID: c.id, DataAddr: tr.Addr(), RaftAddr: c.ctl.Addr(), RESPAddr: c.n.RESPAddr(),
		HTTPAddr: c.n.HTTPAddr(), Role: role, NoManager: !cfg.Manager}
	meta.Cluster = cluster
	c.meta = meta
	c.mem, err = membership.New(membership.Options{Meta: meta, BindAddr: cfg.ClusterAddr, Secret: c.secret,
		Local: c.fast, OnEvent: c.onMember, Logger: c.log.With("component", "gossip")})
	if err != nil {
		return err
	}
	c.memP.Store(c.mem)
	c.log.Info("cluster member started", "gossip", c.mem.Addr(), "data", tr.Addr(), "raft", c.ctl.Addr(), "cluster", meta.Cluster,
		"role", cfg.Role, "bootstrap", len(cfg.Join) == 0, "replicas", cfg.Replicas, "partitions", cfg.Partitions)
	c.wg.Add(3)
	go c.reconcileLoop()
	go c.reportLoop()
	go c.leaseLoop()
	if len(cfg.Join) > 0 {
		c.wg.Add(1)
		go c.joinLoop(cfg.Join)
	}
	return nil
}

// joinLoop contacts the seeds until one answers (they may start after
// this node), then keeps quiet.
func (c *clusterNode) joinLoop(seeds []string) {
	defer c.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		n, err := c.mem.Join(seeds)
		if err == nil && n > 0 {
			c.log.Info("joined the cluster", "through", seeds, "answered", n)
			return
		}
		hint := ""
		if err != nil && strings.Contains(err.Error(), "decrypt") {
			hint = "the members refuse this node's gossip: is its cluster secret the cluster's?"
		}
		c.log.Warn("cannot join the cluster yet; retrying", "seeds", seeds, "err", err, "hint", hint, "retry_in", backoff)
		select {
		case <-c.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// onMember receives gossip events: remember graceful leaves, tell
// listeners, and wake the reconciler.
func (c *clusterNode) onMember(ev membership.Event) {
	c.mu.Lock()
	switch ev.Kind {
	case membership.Left:
		c.left[ev.Node.ID] = true
	case membership.Joined:
		delete(c.left, ev.Node.ID)
	}
	ls := slices.Collect(maps.Values(c.listeners))
	c.mu.Unlock()
	if ev.Kind != membership.Updated {
		ne := NodeEvent{Up: ev.Kind == membership.Joined, Node: ev.Node.ID, Left: ev.Kind == membership.Left,
			Active: ev.Active, Configured: ev.Configured}
		for _, f := range ls {
			f(ne)
		}
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// reconcileLoop makes the control plane's member list follow gossip, on
// the leader: members seen alive are recorded up, members gone are
// recorded down (failed, or left if they said so).
func (c *clusterNode) reconcileLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		case <-c.kick:
		}
		if c.ctl.IsLeader() {
			c.reconcile()
		}
	}
}

func (c *clusterNode) reconcile() {
	const timeout = 5 * time.Second
	st := c.ctl.State()
	active := map[string]membership.Meta{}
	for _, m := range c.mem.Members() {
		active[m.ID] = m
	}
	for _, id := range slices.Sorted(maps.Keys(active)) {
		m := active[id]
		cur, ok := st.Members[id]
		want := control.Member{ID: id, RaftAddr: m.RaftAddr, DataAddr: m.DataAddr, RESPAddr: m.RESPAddr,
			HTTPAddr: m.HTTPAddr, Client: m.Role == membership.RoleClient, NoManager: m.NoManager, Alive: true}
		if m.RaftAddr == "" || m.DataAddr == "" || m.Leaving {
			continue
		}
		if ok && cur == want {
			continue
		}
		if err := c.ctl.MemberUp(want, timeout); err != nil {
			c.log.Warn("cannot record member up", "member", id, "err", err)
			return
		}
		c.log.Info("member up", "member", id, "data", m.DataAddr, "client", want.Client)
	}
	c.mu.Lock()
	left := maps.Clone(c.left)
	c.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(st.Members)) {
		m := st.Members[id]
		if _, live := active[id]; (live && !active[id].Leaving) || id == c.id {
			continue
		}
		if !m.Alive && !left[id] {
			continue
		}
		gone := left[id] || (active[id].Leaving)
		if err := c.ctl.MemberDown(id, gone, timeout); err != nil {
			c.log.Warn("cannot record member down", "member", id, "err", err)
			return
		}
		c.log.Info("member down", "member", id, "left", gone)
	}
}

// onChange installs each new partition table in the data plane.
func (c *clusterNode) onChange(st control.State) {
	c.applyMaps(st.Maps)
	if st.Table == nil || c.data == nil {
		return
	}
	addrs := map[ring.NodeID]string{}
	live := map[string]bool{} // data addresses of live members
	for _, m := range st.Members {
		if m.Alive {
			live[m.DataAddr] = true
		}
	}
	for id, m := range st.Members {
		// A failed member whose address a live one now uses (a node
		// restarted in place, under a new id) is not reachable there.
		if m.DataAddr != "" && (m.Alive || !live[m.DataAddr]) {
			addrs[ring.NodeID(id)] = m.DataAddr
		}
	}
	if st.Table.Epoch <= c.applied.Load() {
		return
	}
	if err := c.data.SetTable(st.Table, addrs); err != nil {
		c.log.Error("cannot install partition table", "epoch", st.Table.Epoch, "err", err)
		return
	}
	c.applied.Store(st.Table.Epoch)
	select {
	case c.leaseKick <- struct{}{}:
	default:
	}
	prim, repl := st.Table.Load()
	c.log.Info("partition table installed", "epoch", st.Table.Epoch, "primaries", prim[ring.NodeID(c.id)],
		"replicas", repl[ring.NodeID(c.id)], "members", len(st.DataMembers()), "migrations", st.Migrations())
}

// onSynced queues a finished copy for the leader (cluster.Config.OnSynced).
func (c *clusterNode) onSynced(p int, follower ring.NodeID, epoch uint64) {
	c.mu.Lock()
	c.reports = append(c.reports, control.SyncReport{Partition: p, Node: string(follower), Epoch: epoch})
	c.mu.Unlock()
}

// reportLoop sends finished copies to the control plane's leader in
// batches, retrying until it takes them.
func (c *clusterNode) reportLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		batch := c.reports
		c.reports = nil
		c.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if err := c.sendReports(batch); err != nil {
			c.log.Debug("cannot report finished copies yet; will retry", "count", len(batch), "err", err)
			c.mu.Lock()
			c.reports = append(batch, c.reports...)
			c.mu.Unlock()
		}
	}
}

func (c *clusterNode) sendReports(batch []control.SyncReport) error {
	if c.ctl.IsLeader() {
		_, err := c.ctl.MarkSynced(batch, 5*time.Second)
		return err
	}
	return c.toLeader(controlRequest{Synced: batch})
}

// toLeader sends a control request to the control plane's leader.
func (c *clusterNode) toLeader(cr controlRequest) error {
	_, err := c.callLeader(cr, 5*time.Second)
	return err
}

// callLeader sends a control request to the control plane's leader and
// returns its answer.
func (c *clusterNode) callLeader(cr controlRequest, timeout time.Duration) ([]byte, error) {
	leader, _ := c.ctl.Leader()
	if leader == "" {
		return nil, errors.New("no control-plane leader known")
	}
	m, ok := c.ctl.State().Members[leader]
	if !ok || m.DataAddr == "" {
		return nil, fmt.Errorf("no data address for leader %s", leader)
	}
	b, _ := json.Marshal(cr)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.tr.Call(ctx, m.DataAddr, KindControl, b)
}

// setMapConfig records a map setting cluster-wide (server MapConfig).
func (c *clusterNode) setMapConfig(name, setting string, value int64) error {
	ms := &mapSetting{Name: name, Setting: setting, Value: value}
	if c.ctl.IsLeader() {
		return c.applyMapConfig(ms)
	}
	if err := c.toLeader(controlRequest{Map: ms}); err != nil {
		return fmt.Errorf("%w: cannot record the map setting in the control plane: %v", cluster.ErrUnreachable, err)
	}
	return nil
}

// setMapStore records a map's backing-store settings cluster-wide
// (server MapStore).
func (c *clusterNode) setMapStore(name, spec string) error {
	ms := &mapSetting{Name: name, Setting: "store", Text: spec}
	if c.ctl.IsLeader() {
		return c.applyMapConfig(ms)
	}
	if err := c.toLeader(controlRequest{Map: ms}); err != nil {
		return fmt.Errorf("%w: cannot record the map's store settings in the control plane: %v", cluster.ErrUnreachable, err)
	}
	return nil
}

// applyMapConfig merges one setting into the map's configuration, as
// the control plane's leader.
func (c *clusterNode) applyMapConfig(ms *mapSetting) error {
	if ms.Value < 0 || ms.Name == "" {
		return fmt.Errorf("bad map setting %+v", *ms)
	}
	mc := c.ctl.State().Maps[ms.Name]
	switch ms.Setting {
	case "max_ttl":
		mc.MaxTTL = ms.Value
	case "max_keys":
		mc.MaxKeys = ms.Value
	case "store":
		mc.Store = ms.Text
	case "index_add", "index_del":
		mc.Indexes = mergeIndex(mc.Indexes, ms) // query.go
	default:
		return fmt.Errorf("unknown map setting %q", ms.Setting)
	}
	if err := c.ctl.SetMapConfig(ms.Name, mc, 5*time.Second); err != nil {
		return err
	}
	// Committed: the leader's state has it with its version. Push it to
	// every member now, so the setting holds everywhere when the command
	// returns (Raft delivers it too, but followers apply a little later).
	st := c.ctl.State()
	cfg := map[string]control.MapConfig{ms.Name: st.Maps[ms.Name]}
	c.applyMaps(cfg)
	b, _ := json.Marshal(controlRequest{Apply: cfg})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for id, m := range st.Members {
		if id == c.id || !m.Alive || m.DataAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.tr.Call(ctx, m.DataAddr, KindControl, b); err != nil {
				c.log.Debug("map setting not pushed; the member gets it from the control plane", "member", id, "err", err)
			}
		}()
	}
	wg.Wait()
	return nil
}

// subscribe registers fn for node events and returns its cancel func.
func (c *clusterNode) subscribe(fn func(NodeEvent)) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextL
	c.nextL++
	c.listeners[id] = fn
	return func() {
		c.mu.Lock()
		delete(c.listeners, id)
		c.mu.Unlock()
	}
}

// drain announces that this node is leaving and waits (up to timeout)
// until the partition table no longer lists it, so its partitions are led
// by other nodes before it stops answering.
func (c *clusterNode) drain(timeout time.Duration) {
	if c.mem == nil || c.ctl == nil {
		return
	}
	others := 0
	for id, m := range c.ctl.State().Members {
		if id != c.id && m.Alive && !m.Client {
			others++
		}
	}
	if others == 0 || c.n.cfg.Role == "client" {
		return // nobody to hand partitions to (or none held)
	}
	meta := c.meta
	meta.Leaving = true
	if err := c.mem.UpdateMeta(meta, time.Second); err != nil {
		c.log.Warn("cannot announce leaving", "err", err)
		return
	}
	if c.ctl.IsLeader() {
		if err := c.ctl.TransferLeadership(); err != nil {
			c.log.Warn("cannot hand over control-plane leadership", "err", err)
		}
	}
	c.log.Info("leaving the cluster: handing partitions over")
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		owns := false
		if t := c.data.Table(); t != nil {
			for _, own := range t.Owners {
				if slices.Contains(own, ring.NodeID(c.id)) {
					owns = true
					break
				}
			}
		}
		if !owns {
			c.log.Info("partitions handed over")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.log.Warn("leaving before every partition was handed over", "waited", timeout)
}

// close leaves the cluster (call drain first for a graceful stop): gossip
// first (so others see a graceful leave), then the control plane and the
// data plane.
func (c *clusterNode) close(graceful bool) {
	close(c.stop)
	if c.mem != nil {
		if graceful {
			if err := c.mem.Leave(2 * time.Second); err != nil {
				c.log.Warn("leaving the cluster", "err", err)
			}
		} else {
			c.mem.Close()
		}
	}
	c.wg.Wait()
	if c.data != nil {
		c.data.Close()
	}
	if c.ctl != nil {
		c.ctl.Close()
	}
	c.tr.Close()
}

// lists returns the active and configured data nodes (jc cache_nodes).
func (c *clusterNode) lists() (active, configured []string) {
	if c.ctl == nil {
		return []string{c.id}, []string{c.id}
	}
	st := c.ctl.State()
	for id, m := range st.Members {
		if m.Client {
			continue
		}
		configured = append(configured, id)
		if m.Alive {
			active = append(active, id)
		}
	}
	slices.Sort(active)
	slices.Sort(configured)
	return active, configured
}

// view describes the cluster for CLUSTER INFO/NODES and GET /v1/cluster.
func (c *clusterNode) view(owners bool) cluster.View {
	v := cluster.View{State: "ok", MyID: c.id, Partitions: c.n.cfg.Partitions, Replicas: c.n.cfg.Replicas}
	if m := c.memP.Load(); m != nil {
		v.Cluster = m.Cluster()
	}
	if c.ctl == nil {
		v.State, v.Reason = "fail", "cluster not started"
		return v
	}
	st := c.ctl.State()
	v.Leader, _ = c.ctl.Leader()
	v.Migrations = st.Migrations()
	voters, _ := c.ctl.Voters()
	var prim, repl map[ring.NodeID]int
	if t := c.data.Table(); t != nil {
		v.Epoch = t.Epoch
		prim, repl = t.Load()
		if owners {
			v.Owners = make([][]string, len(t.Owners))
			for p, own := range t.Owners {
				for _, o := range own {
					v.Owners[p] = append(v.Owners[p], string(o))
				}
			}
		}
	} else {
		v.State, v.Reason = "fail", "no partition table yet (joining)"
	}
	if err := c.checkLease(); err != nil && v.State == "ok" && c.n.cfg.Role != "client" {
		v.State, v.Reason = "fail", err.Error()
	}
	for _, id := range slices.Sorted(maps.Keys(st.Members)) {
		m := st.Members[id]
		role := "data"
		if m.Client {
			role = "client"
		}
		v.Members = append(v.Members, cluster.MemberView{ID: id, RESPAddr: m.RESPAddr, HTTPAddr: m.HTTPAddr,
			DataAddr: m.DataAddr, Role: role, Alive: m.Alive, Manager: slices.Contains(voters, id),
			Primaries: prim[ring.NodeID(id)], Replicas: repl[ring.NodeID(id)]})
	}
	for _, s := range c.data.Syncing() {
		if !s.Done {
			v.Syncing = append(v.Syncing, cluster.SyncView{Partition: s.Partition, To: string(s.Follower), Sent: s.SentRecords, Total: s.TotalRecords})
		}
	}
	return v
}

// applyMaps brings this node's maps to the cluster's map settings.
func (c *clusterNode) applyMaps(cfgs map[string]control.MapConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, mc := range cfgs {
		if mc.Version != 0 && mc.Version <= c.mapVer[name] {
			continue // already applied this one or a newer one
		}
		c.mapVer[name] = mc.Version
		m, err := c.n.store.OpenMap(name)
		if err != nil {
			c.log.Warn("cannot apply map settings", "map", name, "err", err)
			continue
		}
		if m.MaxTTL() != mc.MaxTTL {
			if err := m.SetMaxTTL(mc.MaxTTL); err != nil {
				c.log.Warn("cannot apply max ttl", "map", name, "err", err)
			}
		}
		if m.MaxKeys() != mc.MaxKeys {
			if err := m.SetMaxKeys(mc.MaxKeys); err != nil {
				c.log.Warn("cannot apply max keys", "map", name, "err", err)
			}
		}
		c.applyIndexes(name, mc.Indexes) // query.go
		if p := c.n.persist; p != nil {
			cur, explicit := p.Settings(name)
			if mc.Store != "" && (!explicit || cur.String() != mc.Store) {
				s, err := persist.ParseSettings(persist.Settings{}, mc.Store)
				if err == nil {
					err = p.Configure(name, s)
				}
				if err != nil {
					c.log.Warn("cannot apply the map's store settings", "map", name, "err", err)
				}
			}
		}
	}
}

// clusterTLS builds the mutual TLS configuration of node-to-node data
// connections from PEM files (nil without them).
func clusterTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot load the cluster TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the cluster TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", caFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}, nil
}
