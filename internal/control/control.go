package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/engramdb/engram/internal/netutil"
	"github.com/engramdb/engram/internal/transport"
)

// Member is a node as the control plane records it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft"`
	DataAddr string `json:"data"`
	RESPAddr string `json:"resp,omitempty"`
	HTTPAddr string `json:"http,omitempty"`
	Client   bool   `json:"client,omitempty"` // routes only, holds no partitions
	// NoManager keeps the member out of the control plane's voters
	// (--manager=false): it follows as a non-voter.
	NoManager bool `json:"no_manager,omitempty"`
	Alive     bool `json:"alive"`
}

// MapConfig is the cluster-wide configuration of one map.
type MapConfig struct {
	MaxTTL  int64 `json:"max_ttl,omitempty"` // seconds; 0 = none
	MaxKeys int64 `json:"max_keys,omitempty"`
	// Store is the map's backing-store settings (persist.Settings in
	// String form); "" = the nodes' defaults.
	Store string `json:"store,omitempty"`
	// Indexes are the map's JSON query indexes (internal/query), in
	// creation order.
	Indexes []IndexDef `json:"indexes,omitempty"`
	// Version is the Raft log index that set this configuration: nodes
	// that also receive settings directly (for immediate effect) apply a
	// configuration only if it is newer than what they have.
	Version uint64 `json:"version,omitempty"`
}

// IndexDef is one JSON query index of a map: a canonical dot path, and
// whether automatic indexing created it.
type IndexDef struct {
	Path string `json:"path"`
	Auto bool   `json:"auto,omitempty"`
}

// Options configure a Control.
type Options struct {
	ID string
	// RaftAddr is host:port for Raft traffic (bind and advertise).
	RaftAddr string
	// Transport replaces the TCP transport (tests use raft's in-memory one).
	Transport raft.Transport
	// Bootstrap makes this node start a new cluster with itself as the
	// only voter. Exactly one node of a new cluster bootstraps.
	Bootstrap  bool
	Partitions int // default 271
	Copies     int // replication factor, default 2
	Managers   int // voters, default 3
	// Secret, when set, is required from every Raft peer (the cluster
	// secret's handshake on each connection).
	Secret []byte
	// Fast uses short timeouts (tests, loopback clusters).
	Fast bool
	// Cluster, when set, returns the identity of the cluster this node
	// belongs to ("" while a joining node has not learnt it). With a
	// secret, every Raft connection carries the dialer's, and the
	// acceptor refuses one from another cluster: Raft does not check
	// that a message is meant for the server that receives it, so a node
	// that started a new cluster at a failed member's address would
	// otherwise take the old leader's log.
	Cluster func() string
	// OnChange is called, in log order, with a copy of the state after
	// every applied change. It must not block for long.
	OnChange func(State)
	Logger   *slog.Logger
}

// ErrNotLeader is returned by operations only the leader can perform; the
// error text names the leader when one is known.
var ErrNotLeader = errors.New("not the control-plane leader")

// Control is one node's member of the control plane.
type Control struct {
	opts  Options
	raft  *raft.Raft
	fsm   *fsm
	trans raft.Transport
	logs  raft.LogStore
	log   *slog.Logger
	mu    sync.Mutex // serialises membership changes made by this leader

	// barrierTerm is the last term in which this node, as leader, saw
	// every entry of earlier terms applied (ReadIndex).
	barrierTerm atomic.Uint64
	rmu         sync.Mutex
	nextRound   *readRound // the ReadIndex round requests join; nil: none waiting
	reading     bool       // a goroutine is running rounds
}

// readRound is one ReadIndex confirmation shared by the requests that
// joined it before it started.
type readRound struct {
	done chan struct{}
	idx  uint64
	err  error
}

// New starts the node's Raft member.
func New(o Options) (*Control, error) {
	if o.ID == "" {
		return nil, errors.New("control: a node id is required")
	}
	if o.Partitions == 0 {
		o.Partitions = 271
	}
	if o.Copies == 0 {
		o.Copies = 2
	}
	if o.Managers == 0 {
		o.Managers = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(o.ID)
	cfg.LogOutput = io.Discard
	cfg.Logger = nil
	if o.Fast {
		cfg.HeartbeatTimeout = 100 * time.Millisecond
		cfg.ElectionTimeout = 100 * time.Millisecond
		cfg.LeaderLeaseTimeout = 100 * time.Millisecond
		cfg.CommitTimeout = 5 * time.Millisecond
	}
	trans := o.Transport
	if trans == nil {
		ln, err := net.Listen("tcp", o.RaftAddr)
		if err != nil {
			return nil, fmt.Errorf("cannot listen for raft on %s: %w", o.RaftAddr, err)
		}
		cluster := o.Cluster
		if cluster == nil {
			cluster = func() string { return "" }
		}
		trans = raft.NewNetworkTransport(&streamLayer{Listener: ln, secret: o.Secret, cluster: cluster, log: o.Logger}, 3, 5*time.Second, io.Discard)
	}
	f := newFSM(o.Partitions, o.Copies, o.OnChange)
	// The cache's configuration is rebuilt from live members after a full
	// restart, so Raft's log and snapshots live in memory.
	logs := raft.NewInmemStore()
	r, err := raft.NewRaft(cfg, f, logs, raft.NewInmemStore(), raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		return nil, fmt.Errorf("cannot start raft: %w", err)
	}
	c := &Control{opts: o, raft: r, fsm: f, trans: trans, logs: logs, log: o.Logger}
	if o.Bootstrap {
		err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: cfg.LocalID, Address: trans.LocalAddr()}}}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			r.Shutdown()
			return nil, fmt.Errorf("cannot bootstrap the control plane: %w", err)
		}
	}
	return c, nil
}

// streamLayer is Raft's TCP stream layer: peers dial from the address
// they listen on (netutil.LocalAddr), and, with a secret, every connection
// first runs the cluster-secret handshake (transport.Authenticate), so a
// process without the secret cannot speak Raft to the control plane.
type streamLayer struct {
	net.Listener
	secret  []byte
	cluster func() string
	log     *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time // of a refused connection (logged once per 10 s)
}

// writeCluster and readCluster carry the dialer's cluster identity
// after the handshake: one length byte, then the identity.
func writeCluster(nc net.Conn, id string, timeout time.Duration) error {
	if len(id) > 255 {
		id = id[:255]
	}
	nc.SetWriteDeadline(time.Now().Add(timeout))
	defer nc.SetWriteDeadline(time.Time{})
	_, err := nc.Write(append([]byte{byte(len(id))}, id...))
	return err
}

func readCluster(nc net.Conn, timeout time.Duration) (string, error) {
	nc.SetReadDeadline(time.Now().Add(timeout))
	defer nc.SetReadDeadline(time.Time{})
	var n [1]byte
	if _, err := io.ReadFull(nc, n[:]); err != nil {
		return "", err
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(nc, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	nc, err := netutil.Dialer(s.Addr().String(), string(addr), timeout).Dial("tcp", string(addr))
	if err != nil || s.secret == nil {
		return nc, err
	}
	if _, err := transport.Authenticate(nc, s.secret, s.Addr().String(), true, timeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("control plane peer %s: %w", addr, err)
	}
	if err := writeCluster(nc, s.cluster(), timeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("control plane peer %s: %w", addr, err)
	}
	return nc, nil
}

// Accept implements net.Listener: connections that fail the handshake
// are closed and skipped.
func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		nc, err := s.Listener.Accept()
		if err != nil || s.secret == nil {
			return nc, err
		}
		if _, err := transport.Authenticate(nc, s.secret, s.Addr().String(), false, 2*time.Second); err != nil {
			s.log.Warn("refused a control-plane connection", "from", nc.RemoteAddr().String(), "err", err)
			nc.Close()
			continue
		}
		theirs, err := readCluster(nc, 2*time.Second)
		if err != nil {
			s.log.Warn("refused a control-plane connection", "from", nc.RemoteAddr().String(), "err", err)
			nc.Close()
			continue
		}
		if mine := s.cluster(); mine != "" && theirs != "" && mine != theirs {
			s.mu.Lock()
			warn := time.Since(s.lastWarn) > 10*time.Second
			if warn {
				s.lastWarn = time.Now()
			}
			s.mu.Unlock()
			if warn {
				s.log.Warn("refused a control-plane connection from another cluster (a node restarted without --join?)",
					"from", nc.RemoteAddr().String(), "cluster", theirs, "this_cluster", mine)
			}
			nc.Close()
			continue
		}
		return nc, nil
	}
}

// Addr returns the address Raft peers use for this node.
func (c *Control) Addr() string { return string(c.trans.LocalAddr()) }

// IsLeader reports whether this node leads the control plane.
func (c *Control) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the current leader's id and Raft address, if known.
func (c *Control) Leader() (id, addr string) {
	a, i := c.raft.LeaderWithID()
	return string(i), string(a)
}

// ReadIndex confirms, on the leader, that it still leads (a quorum
// answers after the call began) and returns the log index of the last
// command committed by then, once this node has applied it. A node that
// has applied that index holds every partition table the cluster may
// have acted on when the call began: that is what the data plane's lease
// rests on (a heartbeat alone proves contact, not that the node's table
// is current: a node rejoining after a split hears the leader before it
// has caught up). Concurrent calls share one confirmation that starts
// after they arrived. Leader only.
func (c *Control) ReadIndex(timeout time.Duration) (uint64, error) {
	c.rmu.Lock()
	r := c.nextRound
	if r == nil {
		r = &readRound{done: make(chan struct{})}
		c.nextRound = r
	}
	if !c.reading {
		c.reading = true
		go c.readRounds(timeout)
	}
	c.rmu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.idx, r.err
	case <-t.C:
		return 0, fmt.Errorf("control plane: no read index within %v", timeout)
	}
}

// readRounds runs ReadIndex rounds while requests wait for one.
func (c *Control) readRounds(timeout time.Duration) {
	for {
		c.rmu.Lock()
		r := c.nextRound
		c.nextRound = nil
		if r == nil {
			c.reading = false
			c.rmu.Unlock()
			return
		}
		c.rmu.Unlock()
		r.idx, r.err = c.readIndex(timeout)
		close(r.done)
	}
}

func (c *Control) readIndex(timeout time.Duration) (uint64, error) {
	if !c.IsLeader() {
		return 0, c.notLeader()
	}
	// A new leader may not know yet that entries of earlier terms are
	// committed (its commit index moves once an entry of its own term
	// is): a barrier in this term settles it, and applies them here.
	if term := c.raft.CurrentTerm(); c.barrierTerm.Load() != term {
		if err := c.raft.Barrier(timeout).Error(); err != nil {
			return 0, fmt.Errorf("control plane: cannot confirm the leader's state: %w", err)
		}
		c.barrierTerm.Store(term)
	}
	if err := c.raft.VerifyLeader().Error(); err != nil {
		return 0, fmt.Errorf("control plane: cannot confirm leadership: %w", err)
	}
	idx := c.lastCommand(c.raft.CommitIndex())
	if err := c.fsm.waitApplied(idx, timeout); err != nil {
		return 0, err
	}
	return idx, nil
}

// lastCommand returns the index of the last command entry at or before
// commit (no-op, barrier and configuration entries never reach the state
// machine, so a node could not reach their indexes).
func (c *Control) lastCommand(commit uint64) uint64 {
	var l raft.Log
	for i := commit; i > 0 && commit-i < 4096; i-- {
		if err := c.logs.GetLog(i, &l); err != nil {
			break // compacted into a snapshot: this node applied all of it
		}
		if l.Type == raft.LogCommand {
			return i
		}
	}
	return min(c.fsm.appliedIndex(), commit)
}

// Applied returns the index of the last command this node's state
// machine applied (see ReadIndex).
func (c *Control) Applied() uint64 { return c.fsm.appliedIndex() }

// WaitApplied waits until this node's state machine has applied the
// command at index idx (see ReadIndex), or timeout passes.
func (c *Control) WaitApplied(idx uint64, timeout time.Duration) error {
	return c.fsm.waitApplied(idx, timeout)
}

// State returns a copy of the current state.
func (c *Control) State() State {
	c.fsm.mu.Lock()
	defer c.fsm.mu.Unlock()
	return c.fsm.state.Clone()
}

func (c *Control) notLeader() error {
	if id, addr := c.Leader(); id != "" {
		return fmt.Errorf("%w (leader is %s at %s)", ErrNotLeader, id, addr)
	}
	return fmt.Errorf("%w (no leader elected yet)", ErrNotLeader)
}

// MemberUp records a live member (joined or back) and gives it a vote if
// there are fewer managers than configured. A data member's arrival
// changes the target placement at once, but the effective table makes it
// primary of a partition only once MarkSynced reports its copy complete;
// a member coming back after being down holds no complete copy. Leader
// only.
func (c *Control) MemberUp(m Member, timeout time.Duration) error {
	if !c.IsLeader() {
		return c.notLeader()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureServer(m, timeout); err != nil {
		return err
	}
	m.Alive = true
	return c.apply(command{Op: opMemberUp, Member: &m}, timeout)
}

// ensureServer adds m to the Raft configuration as a voter while there are
// fewer than Managers live voters, else as a non-voter.
func (c *Control) ensureServer(m Member, timeout time.Duration) error {
	fut := c.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return fmt.Errorf("cannot read the raft configuration: %w", err)
	}
	st := c.State()
	voters := 0
	for _, s := range fut.Configuration().Servers {
		if s.ID == raft.ServerID(m.ID) {
			if s.Address == raft.ServerAddress(m.RaftAddr) {
				return nil
			}
		}
		if s.Suffrage == raft.Voter && (s.ID == raft.ServerID(c.opts.ID) || st.Members[string(s.ID)].Alive) {
			voters++
		}
	}
	var f raft.IndexFuture
	if voters < c.opts.Managers && !m.Client && !m.NoManager {
		f = c.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, timeout)
	} else {
		f = c.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, timeout)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("cannot add %s to the control plane: %w", m.ID, err)
	}
	return nil
}

// MemberDown records that a member failed (it stays configured, out of the
// table) or left (it is forgotten). Its copies stop counting at once: each
// partition it led is taken over by a node holding a complete copy, in a
// table with a new epoch. A failed voter is replaced by promoting
// a live non-voter, so the managers keep their majority. Leader only.
func (c *Control) MemberDown(id string, left bool, timeout time.Duration) error {
	if !c.IsLeader() {
		return c.notLeader()
	}
	if id == c.opts.ID {
		return errors.New("control: the leader cannot mark itself down")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.apply(command{Op: opMemberDown, ID: id, Left: left}, timeout); err != nil {
		return err
	}
	fut := c.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return err
	}
	wasVoter := false
	for _, s := range fut.Configuration().Servers {
		if s.ID == raft.ServerID(id) && s.Suffrage == raft.Voter {
			wasVoter = true
		}
	}
	st := c.State()
	if wasVoter {
		// Promote first, then remove: the quorum never shrinks below
		// what the live managers can provide.
		for _, s := range fut.Configuration().Servers {
			if mm, ok := st.Members[string(s.ID)]; s.Suffrage == raft.Nonvoter && ok && mm.Alive && !mm.Client && !mm.NoManager {
				if err := c.raft.AddVoter(s.ID, s.Address, 0, timeout).Error(); err != nil {
					return fmt.Errorf("cannot promote %s to manager: %w", s.ID, err)
				}
				break
			}
		}
	}
	if err := c.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error(); err != nil {
		return fmt.Errorf("cannot remove %s from the control plane: %w", id, err)
	}
	return nil
}

// SetMapConfig records a map's cluster-wide settings. Leader only.
func (c *Control) SetMapConfig(name string, mc MapConfig, timeout time.Duration) error {
	if !c.IsLeader() {
		return c.notLeader()
	}
	return c.apply(command{Op: opMapConfig, Map: name, MapConfig: &mc}, timeout)
}

// MarkSynced records that copies are complete: each report says a node has
// finished receiving a partition from its primary (see SyncReport). The
// reports are applied as one log entry, and the effective table is derived
// again once for the whole batch: a partition whose target copies are now
// all complete moves to its target owners, and one whose target primary is
// now complete is led by it. Reports that no longer hold (the node is not
// an owner of the partition any more, or has not been one without
// interruption since the report's epoch, or is not a live data member)
// are ignored. It returns how many reports changed the state (a repeated
// report does not). Leader only.
func (c *Control) MarkSynced(reports []SyncReport, timeout time.Duration) (int, error) {
	if !c.IsLeader() {
		return 0, c.notLeader()
	}
	if len(reports) == 0 {
		return 0, nil
	}
	res, err := c.applyResult(command{Op: opMarkSynced, Reports: reports}, timeout)
	if err != nil {
		return 0, err
	}
	n, _ := res.(int)
	return n, nil
}

func (c *Control) apply(cmd command, timeout time.Duration) error {
	_, err := c.applyResult(cmd, timeout)
	return err
}

// applyResult commits cmd and returns what the state machine answered.
func (c *Control) applyResult(cmd command, timeout time.Duration) (any, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	f := c.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, c.notLeader()
		}
		return nil, fmt.Errorf("cannot commit %s to the control plane: %w", cmd.Op, err)
	}
	if err, _ := f.Response().(error); err != nil {
		return nil, err
	}
	return f.Response(), nil
}

// TransferLeadership hands leadership to another voter (before this node
// leaves), so the cluster does not wait for an election timeout.
func (c *Control) TransferLeadership() error {
	if !c.IsLeader() {
		return nil
	}
	return c.raft.LeadershipTransfer().Error()
}

// Voters returns the IDs of the current voting managers, sorted.
func (c *Control) Voters() ([]string, error) {
	fut := c.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return nil, err
	}
	var out []string
	for _, s := range fut.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, string(s.ID))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Close stops this node's Raft member.
func (c *Control) Close() error {
	err := c.raft.Shutdown().Error()
	if cl, ok := c.trans.(io.Closer); ok {
		cl.Close()
	}
	return err
}

// Operations in the log. ONLY APPEND TO THIS LIST: logs are replayed.
const (
	opMemberUp   = "member_up"
	opMemberDown = "member_down"
	opMapConfig  = "map_config"
	opMarkSynced = "mark_synced"
)

type command struct {
	Op        string       `json:"op"`
	Member    *Member      `json:"member,omitempty"`
	ID        string       `json:"id,omitempty"`
	Left      bool         `json:"left,omitempty"`
	Map       string       `json:"map,omitempty"`
	MapConfig *MapConfig   `json:"map_config,omitempty"`
	Reports   []SyncReport `json:"reports,omitempty"`
}

// fsm applies commands to the state; deterministic given the log.
type fsm struct {
	partitions, copies int
	onChange           func(State)
	mu                 sync.Mutex
	state              State
	// applied is the index of the last command applied (or restored
	// from a snapshot) and changes only under mu, after onChange
	// returned; applyCh is closed and replaced whenever it moves.
	applied uint64
	applyCh chan struct{}
}

func newFSM(partitions, copies int, onChange func(State)) *fsm {
	return &fsm{partitions: partitions, copies: copies, onChange: onChange, applyCh: make(chan struct{}),
		state: State{Members: map[string]Member{}, Maps: map[string]MapConfig{}}}
}

// setApplied records that the command at idx (and all before it) took
// effect, the data plane's callback included.
func (f *fsm) setApplied(idx uint64) {
	f.mu.Lock()
	if idx > f.applied {
		f.applied = idx
		close(f.applyCh)
		f.applyCh = make(chan struct{})
	}
	f.mu.Unlock()
}

func (f *fsm) appliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// waitApplied waits until the command at idx has been applied.
func (f *fsm) waitApplied(idx uint64, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		f.mu.Lock()
		applied, ch := f.applied, f.applyCh
		f.mu.Unlock()
		if applied >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return fmt.Errorf("control plane: log entry %d not applied within %v (applied %d)", idx, timeout, applied)
		}
	}
}

// fsmSnapshot is the state with the index of the last command in it.
type fsmSnapshot struct {
	State
	Applied uint64 `json:"applied_index,omitempty"`
}

func (f *fsm) Apply(l *raft.Log) any {
	res := f.apply(l)
	f.setApplied(l.Index)
	return res
}

func (f *fsm) apply(l *raft.Log) any {
	var cmd command
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		return fmt.Errorf("control: undecodable log entry %d: %w", l.Index, err)
	}
	f.mu.Lock()
	changed := true
	var result any
	switch cmd.Op {
	case opMemberUp:
		// A member that was down comes back without its memory: it
		// holds no complete copy (MemberDown already dropped it from
		// Synced, and derive only counts copies of previous owners).
		f.state.Members[cmd.Member.ID] = *cmd.Member
	case opMemberDown:
		m, ok := f.state.Members[cmd.ID]
		switch {
		case !ok:
			changed = false
		case cmd.Left:
			delete(f.state.Members, cmd.ID)
		default:
			m.Alive = false
			f.state.Members[cmd.ID] = m
		}
	case opMapConfig:
		mc := *cmd.MapConfig
		mc.Version = l.Index
		f.state.Maps[cmd.Map] = mc
	case opMarkSynced:
		n := f.state.markSynced(cmd.Reports)
		changed = n > 0
		result = n
	default:
		f.mu.Unlock()
		return fmt.Errorf("control: unknown operation %q in log entry %d", cmd.Op, l.Index)
	}
	var err error
	if changed && cmd.Op != opMapConfig {
		err = f.state.retable(f.partitions, f.copies)
	}
	var snap State
	if f.onChange != nil && changed {
		snap = f.state.Clone()
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if f.onChange != nil && changed {
		f.onChange(snap)
	}
	return result
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(fsmSnapshot{State: f.state, Applied: f.applied})
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var fs fsmSnapshot
	if err := json.NewDecoder(rc).Decode(&fs); err != nil {
		return fmt.Errorf("control: cannot restore snapshot: %w", err)
	}
	st := fs.State
	st.normalize()
	f.mu.Lock()
	f.state = st
	snap := st.Clone()
	f.mu.Unlock()
	if f.onChange != nil {
		f.onChange(snap)
	}
	f.setApplied(fs.Applied)
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}
