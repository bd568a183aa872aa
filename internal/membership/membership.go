package membership

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/engramdb/engram/internal/netutil"
)

// Role says what a node does in the cluster.
type Role string

// Roles (seed 004's data and client processes).
const (
	RoleData   Role = "data"   // holds partitions
	RoleClient Role = "client" // routes requests, holds no data
)

// Meta is what a node tells the others about itself.
type Meta struct {
	ID       string `json:"id"`
	DataAddr string `json:"data,omitempty"` // node-to-node data transport
	RaftAddr string `json:"raft,omitempty"` // control plane (Raft)
	// NoManager: the node must not vote in the control plane.
	NoManager bool   `json:"no_manager,omitempty"`
	RESPAddr  string `json:"resp,omitempty"`
	HTTPAddr  string `json:"http,omitempty"`
	Role      Role   `json:"role"`
	// Leaving is set just before a graceful leave, so that the others
	// can tell a departure from a failure (memberlist's own state for
	// this does not reach the event callback).
	Leaving bool `json:"leaving,omitempty"`
	// Cluster identifies the cluster the node belongs to: made up by the
	// node that bootstrapped it, adopted by the nodes that join. Gossip
	// refuses members of another cluster (see checkPeer).
	Cluster string `json:"cluster,omitempty"`
	// GossipAddr is filled in from memberlist, not gossiped.
	GossipAddr string `json:"-"`
}

// EventKind says what happened to a member.
type EventKind uint8

// Event kinds. ONLY APPEND TO THIS LIST.
const (
	Joined  EventKind = iota // a node joined (or came back)
	Left                     // a node left gracefully
	Failed                   // a node stopped answering probes
	Updated                  // a node changed its Meta
)

func (k EventKind) String() string {
	return [...]string{"joined", "left", "failed", "updated"}[k]
}

// Event is a change in membership with the lists after it.
type Event struct {
	Kind       EventKind
	Node       Meta
	Active     []string // IDs of live members, sorted
	Configured []string // IDs of every member seen and not gracefully left, sorted
}

// Options configure a Membership.
type Options struct {
	Meta Meta
	// BindAddr is host:port for gossip (TCP and UDP on the same port).
	BindAddr string
	// AdvertiseAddr is what others dial; default BindAddr.
	AdvertiseAddr string
	// Secret is the cluster's shared secret; gossip is encrypted with a key
	// derived from it. Required: an open cluster is a misconfiguration.
	Secret []byte
	// Local selects memberlist's loopback timings (fast failure detection
	// for tests and single-host clusters) instead of LAN timings.
	Local bool
	// Transport replaces memberlist's network transport (tests use
	// memberlist.MockNetwork); nil means real UDP/TCP.
	Transport memberlist.Transport
	// OnEvent receives events in order, one at a time; it must not block
	// for long (gossip waits for it).
	OnEvent func(Event)
	Logger  *slog.Logger
}

// Membership is this node's view of the cluster.
type Membership struct {
	opts Options
	ml   *memberlist.Memberlist
	log  *slog.Logger

	mu         sync.Mutex
	meta       Meta
	members    map[string]Meta // live
	configured map[string]bool
	// failed holds the members declared failed (not left), by id, with
	// when: reconnectLoop contacts them again (see there).
	failed map[string]failedMember

	addr     string // gossip address (Addr)
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	evMu sync.Mutex // serialises OnEvent calls
}

// maxMeta is memberlist's limit on node metadata.
const maxMeta = memberlist.MetaMaxSize

// New starts gossip on BindAddr. Call Join to contact existing members.
func New(o Options) (*Membership, error) {
	if o.Meta.ID == "" {
		return nil, errors.New("membership: a node id is required")
	}
	if len(o.Secret) < 16 {
		return nil, errors.New("membership: the cluster secret must be at least 16 bytes")
	}
	if o.Meta.Role == "" {
		o.Meta.Role = RoleData
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if b, _ := json.Marshal(o.Meta); len(b) > maxMeta {
		return nil, fmt.Errorf("membership: node metadata is %d bytes, the limit is %d", len(b), maxMeta)
	}
	var cfg *memberlist.Config
	if o.Local {
		cfg = memberlist.DefaultLocalConfig()
		// Lifeguard stretches a suspicion up to SuspicionMaxTimeoutMult
		// times its minimum while few members confirm it: with the
		// default 6 a failure in a small, busy cluster took up to 20 s to
		// be declared (seen in the soak test). 2 keeps the refutation
		// window while bounding failover.
		cfg.SuspicionMaxTimeoutMult = 2
	} else {
		cfg = memberlist.DefaultLANConfig()
		cfg.SuspicionMaxTimeoutMult = 3
	}
	cfg.Name = o.Meta.ID
	key := sha256.Sum256(append([]byte("engram gossip key\x00"), o.Secret...))
	cfg.SecretKey = key[:]
	// Require encryption both ways: a node without the key is refused.
	cfg.GossipVerifyIncoming, cfg.GossipVerifyOutgoing = true, true
	m := &Membership{opts: o, log: o.Logger, meta: o.Meta, members: map[string]Meta{}, configured: map[string]bool{},
		failed: map[string]failedMember{}, stop: make(chan struct{}), done: make(chan struct{})}
	cfg.Delegate = delegate{m}
	cfg.Events = events{m}
	cfg.Merge = mergeDelegate{m}
	cfg.Alive = aliveDelegate{m}
	cfg.LogOutput = nil
	cfg.Logger = log.New(slogWriter{o.Logger}, "", 0)
	if o.Transport != nil {
		cfg.Transport = o.Transport
	} else {
		host, port, err := splitHostPort(o.BindAddr)
		if err != nil {
			return nil, fmt.Errorf("membership: bad gossip address %q: %w", o.BindAddr, err)
		}
		cfg.BindAddr, cfg.BindPort = host, port
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port,
			Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("cannot start gossip on %s: %w", o.BindAddr, err)
		}
		if port == 0 {
			cfg.BindPort = nt.GetAutoBindPort()
		}
		cfg.Transport = &boundTransport{NetTransport: nt, listen: net.JoinHostPort(host, strconv.Itoa(cfg.BindPort))}
		if adv := o.AdvertiseAddr; adv != "" {
			ah, ap, err := splitHostPort(adv)
			if err != nil {
				return nil, fmt.Errorf("membership: bad advertise address %q: %w", adv, err)
			}
			cfg.AdvertiseAddr, cfg.AdvertisePort = ah, ap
		}
	}
	ml, err := memberlist.Create(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot start gossip on %s: %w", o.BindAddr, err)
	}
	// Read once: memberlist's LocalNode is its live record, which
	// UpdateNode rewrites without a lock we could take.
	n := ml.LocalNode()
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	m.mu.Lock()
	m.ml, m.addr = ml, addr
	m.mu.Unlock()
	every := 5 * time.Second
	if o.Local {
		every = time.Second
	}
	go m.reconnectLoop(every)
	return m, nil
}

// failedMember is a member declared failed: where it gossiped, and since
// when.
type failedMember struct {
	addr  string
	since time.Time
}

// Reconnection bounds: a failed member is tried for an hour (a node that
// crashed comes back under a new id, so its old id never answers again),
// and at most maxFailed are remembered.
const (
	reconnectFor = time.Hour
	maxFailed    = 64
)

// reconnectLoop tries, every interval, to join one member declared
// failed, chosen at random (as serf's reconnect does). A node that was
// cut off by a network split declares the others failed and they declare
// it failed; after the heal, gossip alone only finds it again by chance
// (it gossips to dead members for a limited time, and pushes state only to
// live ones), which took 20 s and more in the split test. Joining it
// again merges the two views at once.
func (m *Membership) reconnectLoop(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		var addrs []string
		for id, f := range m.failed {
			if time.Since(f.since) > reconnectFor {
				delete(m.failed, id)
				continue
			}
			addrs = append(addrs, f.addr)
		}
		m.mu.Unlock()
		if len(addrs) == 0 {
			continue
		}
		addr := addrs[rand.IntN(len(addrs))]
		if n, err := m.ml.Join([]string{addr}); err == nil && n > 0 {
			m.log.Debug("reconnected to a member declared failed", "gossip", addr)
		}
	}
}

func splitHostPort(a string) (string, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return h, n, nil
}

// Addr returns the gossip address others join (host:port).
func (m *Membership) Addr() string { return m.addr }

// Join contacts existing members (host:port, DNS names allowed) and
// returns how many answered. One is enough: gossip spreads the rest.
func (m *Membership) Join(addrs []string) (int, error) {
	n, err := m.ml.Join(addrs)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("cannot join the cluster through %s: %w", strings.Join(addrs, ","), err)
	}
	return n, nil
}

// Members returns the live members (this node included), sorted by ID.
func (m *Membership) Members() []Meta {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Meta, 0, len(m.members))
	for _, mt := range m.members {
		out = append(out, mt)
	}
	slices.SortFunc(out, func(a, b Meta) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Lists returns the active and configured member IDs (jc cache_nodes).
func (m *Membership) Lists() (active, configured []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.listsLocked()
}

func (m *Membership) listsLocked() (active, configured []string) {
	for id := range m.members {
		active = append(active, id)
	}
	for id := range m.configured {
		configured = append(configured, id)
	}
	slices.Sort(active)
	slices.Sort(configured)
	return active, configured
}

// Forget removes a failed node from the configured list (an operator
// decided it will not come back).
func (m *Membership) Forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, live := m.members[id]; !live {
		delete(m.configured, id)
		delete(m.failed, id)
	}
}

// UpdateMeta changes this node's Meta and gossips it.
func (m *Membership) UpdateMeta(meta Meta, timeout time.Duration) error {
	meta.ID = m.opts.Meta.ID
	if b, _ := json.Marshal(meta); len(b) > maxMeta {
		return fmt.Errorf("membership: node metadata is %d bytes, the limit is %d", len(b), maxMeta)
	}
	m.mu.Lock()
	m.meta = meta
	m.mu.Unlock()
	return m.ml.UpdateNode(timeout)
}

// Leave tells the others this node is leaving (so they do not treat it as
// failed) and stops gossip.
func (m *Membership) Leave(timeout time.Duration) error {
	m.mu.Lock()
	m.meta.Leaving = true
	m.mu.Unlock()
	m.stopReconnect()
	err := m.ml.UpdateNode(timeout)
	if lerr := m.ml.Leave(timeout); err == nil {
		err = lerr
	}
	if serr := m.ml.Shutdown(); err == nil {
		err = serr
	}
	return err
}

// Close stops gossip without announcing (others will detect a failure).
func (m *Membership) Close() error {
	m.stopReconnect()
	return m.ml.Shutdown()
}

func (m *Membership) stopReconnect() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
}

func (m *Membership) emit(kind EventKind, n *memberlist.Node) {
	meta := decodeMeta(n)
	m.mu.Lock()
	switch kind {
	case Joined, Updated:
		m.members[meta.ID] = meta
		m.configured[meta.ID] = true
		for id, f := range m.failed {
			// The member itself, or one restarted in place under a
			// new id: its old id will never answer there again.
			if id == meta.ID || f.addr == meta.GossipAddr {
				delete(m.failed, id)
			}
		}
	case Left:
		delete(m.members, meta.ID)
		delete(m.configured, meta.ID)
		delete(m.failed, meta.ID)
	case Failed:
		delete(m.members, meta.ID)
		if len(m.failed) >= maxFailed {
			oldest := ""
			for id, f := range m.failed {
				if oldest == "" || f.since.Before(m.failed[oldest].since) {
					oldest = id
				}
			}
			delete(m.failed, oldest)
		}
		m.failed[meta.ID] = failedMember{addr: meta.GossipAddr, since: time.Now()}
	}
	active, configured := m.listsLocked()
	m.mu.Unlock()
	m.log.Info("membership change", "event", kind.String(), "node", meta.ID, "gossip", meta.GossipAddr, "active", len(active))
	if m.opts.OnEvent != nil {
		m.evMu.Lock()
		defer m.evMu.Unlock()
		m.opts.OnEvent(Event{Kind: kind, Node: meta, Active: active, Configured: configured})
	}
}

func decodeMeta(n *memberlist.Node) Meta {
	var meta Meta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.ID == "" {
		meta = Meta{ID: n.Name, Role: RoleData}
	}
	meta.GossipAddr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	return meta
}

type delegate struct{ m *Membership }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	b, _ := json.Marshal(d.m.meta)
	if len(b) > limit {
		return nil
	}
	return b
}
func (delegate) NotifyMsg([]byte)                {}
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (delegate) LocalState(bool) []byte          { return nil }
func (delegate) MergeRemoteState([]byte, bool)   {}

// checkPeer refuses a member of another cluster. A node that starts a
// new cluster (no --join) at the address of a member that failed (its
// seed restarted without --join, say) must not be merged into the old
// cluster by gossip: its control plane is a different one. A node with no
// cluster yet (joining) adopts the first one it meets.
func (m *Membership) checkPeer(peer *memberlist.Node) error {
	meta := decodeMeta(peer)
	if meta.ID == m.opts.Meta.ID || meta.Cluster == "" {
		return nil
	}
	m.mu.Lock()
	mine := m.meta.Cluster
	if mine == "" {
		m.meta.Cluster = meta.Cluster
	}
	m.mu.Unlock()
	switch {
	case mine == "":
		m.log.Info("joined cluster", "cluster", meta.Cluster, "through", meta.ID)
		go func() {
			if ml := m.list(); ml != nil {
				ml.UpdateNode(5 * time.Second) // gossip the adopted cluster
			}
		}()
	case mine != meta.Cluster:
		m.mu.Lock()
		for id, f := range m.failed {
			// A node of another cluster took that address: the member
			// that failed there will not come back at it.
			if f.addr == meta.GossipAddr {
				delete(m.failed, id)
			}
		}
		m.mu.Unlock()
		return fmt.Errorf("member %s (%s) belongs to cluster %s, this node to %s: not merged", meta.ID, meta.GossipAddr, meta.Cluster, mine)
	}
	return nil
}

// Cluster returns the cluster this node belongs to ("" until a joining
// node has met a member).
func (m *Membership) Cluster() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meta.Cluster
}

func (m *Membership) list() *memberlist.Memberlist {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ml
}

type mergeDelegate struct{ m *Membership }

func (d mergeDelegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.m.checkPeer(p); err != nil {
			d.m.log.Warn("refused to merge with another cluster", "err", err)
			return err
		}
	}
	return nil
}

type aliveDelegate struct{ m *Membership }

func (d aliveDelegate) NotifyAlive(peer *memberlist.Node) error { return d.m.checkPeer(peer) }

type events struct{ m *Membership }

func (e events) NotifyJoin(n *memberlist.Node)   { e.m.emit(Joined, n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.emit(Updated, n) }
func (e events) NotifyLeave(n *memberlist.Node) {
	if decodeMeta(n).Leaving {
		e.m.emit(Left, n)
	} else {
		e.m.emit(Failed, n)
	}
}

// slogWriter adapts memberlist's log.Logger output to slog at debug level
// (memberlist is chatty; its warnings about peers are still useful there).
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	if strings.Contains(msg, "[ERR]") || strings.Contains(msg, "[WARN]") {
		level = slog.LevelWarn
	}
	w.l.Log(context.Background(), level, "memberlist", "msg", msg)
	return len(p), nil
}

var _ io.Writer = slogWriter{}

// boundTransport is memberlist's network transport, dialling its TCP
// streams from the gossip address (netutil.LocalAddr) as its UDP packets
// already come from it.
type boundTransport struct {
	*memberlist.NetTransport
	listen string
}

// DialTimeout implements memberlist.Transport.
func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return netutil.Dialer(t.listen, addr, timeout).Dial("tcp", addr)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}
