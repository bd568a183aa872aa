package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/engramdb/engram/internal/backing"
)

// Clustered reports whether the node runs as a member of a cluster
// (a cluster secret is set).
func (c Config) Clustered() bool { return c.ClusterSecret != "" }

// Config is one node's configuration. Build it with Default or Load; a
// Config assembled by hand should be checked with Validate before use.
//
// Config implements fmt.Stringer, fmt.GoStringer, slog.LogValuer and
// json.Marshaler so that printing, logging or serialising it never reveals
// Password or credentials embedded in Store.
type Config struct {
	// RESPAddr is the Redis-protocol listen address (--resp).
	RESPAddr string
	// HTTPAddr is the HTTP API and dashboard listen address (--http); ""
	// or "off" disables HTTP. Use HTTPEnabled rather than comparing.
	HTTPAddr string
	// ClusterAddr is the address for gossip and node-to-node traffic
	// (--cluster). It is separate from RESPAddr so client and internal
	// traffic can be firewalled and secured independently.
	ClusterAddr string
	// Join lists cluster addresses of existing members to contact at
	// start (--join a:p,b:p). Empty starts a new cluster.
	Join []string
	// ClusterSecret is the shared secret of a cluster (--cluster-secret,
	// at least 16 bytes). Setting it turns clustering on: the node gossips
	// on ClusterAddr, serves node-to-node data on the next port and the
	// control plane (Raft) on the one after. Nodes authenticate each
	// other with it; gossip is encrypted with a key derived from it. Never
	// printed or logged.
	ClusterSecret string
	// Role is "data" (holds partitions) or "client" (routes requests,
	// holds nothing) in a cluster (--role).
	Role string
	// ClusterTLSCert, ClusterTLSKey and ClusterTLSCA (PEM files, all three
	// or none) wrap node-to-node data connections in mutual TLS: each node
	// presents its certificate and trusts peers signed by the CA.
	ClusterTLSCert, ClusterTLSKey, ClusterTLSCA string
	// Manager lets this node vote in the control plane (--manager,
	// default true): the first three eligible data nodes are its voters.
	// A node that starts a cluster is its first manager regardless.
	Manager bool
	// NodeName names this node in cluster views (--node-name); default
	// the cluster address. A random suffix makes every start a new member.
	NodeName string
	// NearCache is the number of entries of the node's near cache
	// (--near-cache; 0 = off): in a cluster, eventual reads (READONLY,
	// the Go API's eventual reads) of keys other nodes own are kept here
	// and invalidated by the owners.
	NearCache int
	// MaxIndexesPerMap bounds the JSON query indexes of one map
	// (--max-indexes-per-map; jc: four; 0 means the default, 4).
	MaxIndexesPerMap int
	// AutoIndex is the automatic indexing threshold (--auto-index): a
	// path queried on a map without an index more than this many times
	// within a minute is indexed; 0 = off.
	AutoIndex int
	// DataDir is where the node keeps local state (--data-dir). Empty is
	// fine for a single node that needs no persistence directory.
	DataDir string
	// Replicas is the number of copies of each partition, the primary
	// included (--replicas); 1 means no backups.
	Replicas int
	// Store is the backing store URL (--store): "" for none,
	// file:///path or s3://bucket/prefix?options.
	Store string
	// StoreDefaults are the backing-store settings of maps that have no
	// STORECONFIG of their own (--store-defaults), as field=value pairs
	// ("mode=write-behind delay=1s batch=100 max_dirty=1000000
	// negative_ttl=0"); empty means write-behind with those defaults.
	// Only used with Store.
	StoreDefaults string
	// Password is required from clients when set (--password). It is
	// never printed or logged.
	Password string
	// MaxMemory caps memory used for data in bytes (--max-memory); 0 is
	// unlimited.
	MaxMemory int64
	// MaxMemoryPolicy is what happens when MaxMemory is reached
	// (--max-memory-policy); see MemoryPolicies.
	MaxMemoryPolicy string
	// MaxClients caps concurrent client connections (--max-clients).
	MaxClients int
	// MaxKeyLen caps the length of a key in bytes (--max-key-len).
	MaxKeyLen int
	// MaxValueLen caps the length of a value in bytes (--max-value-len).
	MaxValueLen int64
	// MaxKeysPerMap caps the number of keys in one map
	// (--max-keys-per-map); 0 is unlimited.
	MaxKeysPerMap int64
	// Partitions is the number of partitions the key space is split into
	// (--partitions). Every member of a cluster must use the same number.
	Partitions int
	// LogLevel is debug, info, warn or error (--log-level).
	LogLevel string
	// LogFormat is text or json (--log-format).
	LogFormat string
	// ConfigFile is the config file that was read, if any (--config or
	// ENGRAM_CONFIG).
	ConfigFile string
	// ProtectedMode refuses to listen on non-loopback addresses without a
	// password (--protected-mode), like Redis's protected mode.
	ProtectedMode bool
}

// Defaults, each with the reason it was chosen.
const (
	// DefaultRESPAddr is loopback so a fresh node is never reachable from
	// the network by accident; 7379 sits next to Redis's 6379 without
	// clashing with a Redis on the same machine.
	DefaultRESPAddr = "127.0.0.1:7379"
	// DefaultHTTPAddr is loopback for the same reason as DefaultRESPAddr.
	DefaultHTTPAddr = "127.0.0.1:7380"
	// DefaultClusterAddr uses memberlist's customary port 7946, on
	// loopback so a single node does not expose its internal port.
	DefaultClusterAddr = "127.0.0.1:7946"
	// DefaultReplicas keeps one backup of every partition: the smallest
	// number that survives losing a node without losing acknowledged data.
	DefaultReplicas = 2
	// DefaultMaxClients matches Redis's maxclients.
	DefaultMaxClients = 10000
	// DefaultMaxKeyLen is far above any sensible key yet small enough
	// that a runaway client cannot make keys the bulk of memory.
	DefaultMaxKeyLen = 64 << 10
	// DefaultMaxValueLen matches Redis's proto-max-bulk-len, so any value
	// Redis accepts is accepted here.
	DefaultMaxValueLen = 512 << 20
	// DefaultPartitions is the prime used by Hazelcast and Olric: enough
	// partitions to spread load over dozens of nodes, few enough that the
	// partition table stays small. A prime spreads keys evenly with a
	// modulo even when hash values share factors.
	DefaultPartitions = 271
	// DefaultMemoryPolicy refuses writes when full rather than silently
	// dropping data, because Engram is also used as a store, not only a
	// cache.
	DefaultMemoryPolicy = "noeviction"
)

// Limits that Validate enforces, each with its reason.
const (
	// MinClusterSecretLen is the shortest cluster secret accepted: enough
	// entropy that it cannot be guessed from outside.
	MinClusterSecretLen = 16
	// MaxReplicas bounds --replicas: every write goes to every copy, and
	// beyond this many the write cost buys no useful extra safety.
	MaxReplicas = 16
	// MaxPartitions bounds --partitions: the partition table is gossiped
	// to every member, and more partitions than this only make it larger
	// without spreading load better.
	MaxPartitions = 1 << 16
	// MaxKeyLenLimit bounds --max-key-len at what the storage engine's record
	// header can hold (24 bits of key length).
	MaxKeyLenLimit = 16 << 20
)

// MemoryPolicies lists the accepted values of MaxMemoryPolicy, with the
// same meanings as in Redis.
func MemoryPolicies() []string {
	return []string{"noeviction", "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-ttl", "allkeys-random"}
}

// LogLevels lists the accepted values of LogLevel.
func LogLevels() []string { return []string{"debug", "info", "warn", "error"} }

// LogFormats lists the accepted values of LogFormat.
func LogFormats() []string { return []string{"text", "json"} }

// Default returns the configuration of a node started with no flags,
// environment or config file: a single, protected, loopback-only node.
func Default() Config {
	return Config{
		RESPAddr:        DefaultRESPAddr,
		HTTPAddr:        DefaultHTTPAddr,
		ClusterAddr:     DefaultClusterAddr,
		Replicas:        DefaultReplicas,
		Role:            "data",
		Manager:         true,
		MaxMemoryPolicy: DefaultMemoryPolicy,
		MaxClients:      DefaultMaxClients,
		MaxKeyLen:       DefaultMaxKeyLen,
		MaxValueLen:     DefaultMaxValueLen,
		Partitions:      DefaultPartitions,
		LogLevel:        "info",
		LogFormat:       "text",
		ProtectedMode:   true,

		MaxIndexesPerMap: DefaultMaxIndexesPerMap,
		AutoIndex:        DefaultAutoIndex,
	}
}

// Defaults of the JSON query settings.
const (
	DefaultMaxIndexesPerMap = 4
	DefaultAutoIndex        = 10
)

// HTTPEnabled reports whether the HTTP API should listen at all.
func (c Config) HTTPEnabled() bool {
	return c.HTTPAddr != "" && !strings.EqualFold(c.HTTPAddr, "off")
}

// SlogLevel returns LogLevel as a slog.Level; an unknown level (which
// Validate rejects) maps to info so a logger can still be built.
func (c Config) SlogLevel() slog.Level {
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// problem is one validation failure. setting is the flag name it concerns,
// or "" when the message already says everything (protected mode).
type problem struct {
	setting string
	msg     string
}

// Validate reports every problem with c, one line each, naming the flag
// concerned. It includes the protected-mode rule: with ProtectedMode on and
// no Password, RESPAddr and HTTPAddr must be loopback addresses.
func (c Config) Validate() error {
	return joinProblems(c, c.problems(), nil)
}

// joinProblems turns problems into one error; source, when non-nil, names
// where the offending value came from.
func joinProblems(c Config, ps []problem, source func(setting string) string) error {
	if len(ps) == 0 {
		return nil
	}
	byName := settingsByName()
	errs := make([]error, 0, len(ps))
	for _, p := range ps {
		if p.setting == "" {
			errs = append(errs, errors.New(p.msg))
			continue
		}
		s := byName[p.setting]
		from := ""
		if source != nil {
			from = source(p.setting)
		}
		errs = append(errs, invalid(s, s.text(c), from, p.msg))
	}
	return errors.Join(errs...)
}

// invalid formats a bad setting the same way whether it failed to parse or
// failed validation: `invalid --max-memory "12zb" (from ENGRAM_MAX_MEMORY):
// unknown unit "zb"`. Secret values are never echoed.
func invalid(s setting, value, from, msg string) error {
	var b strings.Builder
	b.WriteString("invalid --")
	b.WriteString(s.name)
	if !s.secret {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(value))
	}
	if from != "" {
		b.WriteString(" (from ")
		b.WriteString(from)
		b.WriteByte(')')
	}
	b.WriteString(": ")
	b.WriteString(msg)
	return errors.New(b.String())
}

func (c Config) problems() []problem {
	var ps []problem
	add := func(setting, format string, args ...any) {
		ps = append(ps, problem{setting, fmt.Sprintf(format, args...)})
	}
	if err := checkListenAddr(c.RESPAddr); err != nil {
		add("resp", "%v", err)
	}
	if c.HTTPEnabled() {
		if err := checkListenAddr(c.HTTPAddr); err != nil {
			add("http", "%v", err)
		} else if sameListenAddr(c.HTTPAddr, c.RESPAddr) {
			add("http", "same address as --resp")
		}
	}
	if err := checkListenAddr(c.ClusterAddr); err != nil {
		add("cluster", "%v", err)
	} else if sameListenAddr(c.ClusterAddr, c.RESPAddr) {
		add("cluster", "same address as --resp")
	} else if c.HTTPEnabled() && sameListenAddr(c.ClusterAddr, c.HTTPAddr) {
		add("cluster", "same address as --http")
	}
	for _, a := range c.Join {
		if err := checkPeerAddr(a); err != nil {
			add("join", "%q: %v", a, err)
		}
	}
	if c.ClusterSecret != "" {
		if h, _, err := net.SplitHostPort(c.ClusterAddr); err == nil {
			if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
				add("cluster", "a cluster member must name its own address (peers dial it and it is gossiped), not %q", h)
			}
		}
	}
	if c.ClusterSecret != "" && len(c.ClusterSecret) < MinClusterSecretLen {
		add("cluster-secret", "must be at least %d bytes", MinClusterSecretLen)
	}
	if len(c.Join) > 0 && c.ClusterSecret == "" {
		add("join", "needs --cluster-secret (ENGRAM_CLUSTER_SECRET): nodes prove to each other they belong to the cluster")
	}
	if c.Role != "data" && c.Role != "client" {
		add("role", "want data or client")
	}
	if c.Role == "client" && c.ClusterSecret == "" {
		add("role", "client needs a cluster (--cluster-secret and --join)")
	}
	if n := btoi(c.ClusterTLSCert != "") + btoi(c.ClusterTLSKey != "") + btoi(c.ClusterTLSCA != ""); n != 0 && n != 3 {
		add("cluster-tls-cert", "--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together")
	}
	if c.NearCache < 0 || c.NearCache > 1<<26 {
		add("near-cache", "must be between 0 and %d entries", 1<<26)
	}
	if c.MaxIndexesPerMap < 0 || c.MaxIndexesPerMap > 64 {
		add("max-indexes-per-map", "must be between 1 and 64 (0: the default, 4)")
	}
	if c.AutoIndex < 0 || c.AutoIndex > 1<<30 {
		add("auto-index", "must be between 0 (off) and %d queries", 1<<30)
	}
	if len(c.NodeName) > 128 {
		add("node-name", "longer than 128 bytes")
	}
	if c.Replicas < 1 || c.Replicas > MaxReplicas {
		add("replicas", "must be between 1 and %d", MaxReplicas)
	}
	if err := checkStoreURL(c.Store); err != nil {
		add("store", "%v", err)
	}
	if c.MaxMemory < 0 {
		add("max-memory", "must not be negative")
	}
	if !oneOf(c.MaxMemoryPolicy, MemoryPolicies()) {
		add("max-memory-policy", "want one of %s", strings.Join(MemoryPolicies(), ", "))
	}
	if c.MaxClients < 1 {
		add("max-clients", "must be at least 1")
	}
	if c.MaxKeyLen < 1 || c.MaxKeyLen > MaxKeyLenLimit {
		add("max-key-len", "must be between 1 and %s", formatSize(MaxKeyLenLimit))
	}
	if c.MaxValueLen < 1 {
		add("max-value-len", "must be at least 1")
	}
	if c.MaxKeysPerMap < 0 {
		add("max-keys-per-map", "must not be negative (0 means unlimited)")
	}
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		add("partitions", "must be between 1 and %d", MaxPartitions)
	}
	if !oneOf(c.LogLevel, LogLevels()) {
		add("log-level", "want one of %s", strings.Join(LogLevels(), ", "))
	}
	if !oneOf(c.LogFormat, LogFormats()) {
		add("log-format", "want one of %s", strings.Join(LogFormats(), ", "))
	}
	if c.ProtectedMode && c.Password == "" {
		addrs := []string{c.RESPAddr}
		if c.HTTPEnabled() {
			addrs = append(addrs, c.HTTPAddr)
		}
		for _, a := range addrs {
			if checkListenAddr(a) == nil && !isLoopbackAddr(a) {
				add("", "refusing to listen on %s without a password: set --password (or ENGRAM_PASSWORD), "+
					"or bind to 127.0.0.1, or disable protected mode with --protected-mode=false", a)
			}
		}
	}
	return ps
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// splitAddr checks the host:port shape shared by listen and peer addresses.
func splitAddr(a string) (host string, port int, err error) {
	if a == "" {
		return "", 0, errors.New("must not be empty")
	}
	host, p, err := net.SplitHostPort(a)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", 0, fmt.Errorf("want host:port, e.g. 127.0.0.1:7379 ([::1]:7379 for IPv6): %s", ae.Err)
		}
		return "", 0, fmt.Errorf("want host:port: %v", err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 || p[0] == '+' || p[0] == '-' {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			return "", 0, fmt.Errorf("host %q is neither an IP address nor a hostname", host)
		}
	}
	return host, port, nil
}

// checkListenAddr accepts an empty host (all interfaces) and port 0 (any
// free port, which tests and embedders use and then read back the bound
// address).
func checkListenAddr(a string) error {
	_, _, err := splitAddr(a)
	return err
}

// checkPeerAddr needs a host and a real port: a member cannot be reached at
// ":7946" or on port 0.
func checkPeerAddr(a string) error {
	host, port, err := splitAddr(a)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	if port == 0 {
		return errors.New("port must not be 0")
	}
	return nil
}

// sameListenAddr reports whether two listeners would fight over one port.
// Port 0 asks the OS for distinct ports, so it never clashes.
func sameListenAddr(a, b string) bool {
	ha, pa, errA := splitAddr(a)
	hb, pb, errB := splitAddr(b)
	return errA == nil && errB == nil && pa != 0 && pa == pb && strings.EqualFold(ha, hb)
}

// validHostname accepts RFC 1123 style names; underscores are tolerated
// because some container networks use them.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(isDigit(ch) || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

// isLoopbackAddr reports whether a listen address only accepts
// connections from this machine: 127.0.0.0/8, ::1 or "localhost". An empty
// host means every interface, so it is not loopback.
func isLoopbackAddr(a string) bool {
	host, _, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}

// checkStoreURL accepts the backing stores the node knows how to open,
// with the same rules as backing.Open (which is what opens them).
func checkStoreURL(s string) error {
	if s == "" {
		return nil
	}
	return backing.CheckURL(s)
}

// redactStore hides credentials someone may have put in the store URL:
// a userinfo password and query parameters that look like secrets.
func redactStore(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	if q := u.Query(); len(q) > 0 {
		changed := false
		for k := range q {
			lk := strings.ToLower(k)
			for _, w := range []string{"secret", "password", "token", "credential", "signature"} {
				if strings.Contains(lk, w) {
					q.Set(k, redacted)
					changed = true
					break
				}
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// redacted replaces secrets in every printed form of a Config.
const redacted = "[redacted]"

// String renders c as space-separated name=value pairs using flag names,
// with the password and store credentials redacted.
func (c Config) String() string {
	var b strings.Builder
	for i, s := range settings() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.name)
		b.WriteByte('=')
		v := s.shown(c)
		if v == "" || strings.ContainsAny(v, " \t\"=\\") || !strconv.CanBackquote(v) {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	}
	return b.String()
}

// GoString makes %#v print the redacted form too, since the default %#v
// would print every field, the password included.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }

// LogValue makes slog log c as a group of settings, redacted.
func (c Config) LogValue() slog.Value {
	all := settings()
	attrs := make([]slog.Attr, 0, len(all))
	for _, s := range all {
		attrs = append(attrs, slog.Any(s.name, s.shownValue(c)))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON renders c as an object keyed by flag names, redacted, so a
// /config endpoint or a debug dump cannot leak the password. It is
// deliberately one-way: there is no matching UnmarshalJSON.
func (c Config) MarshalJSON() ([]byte, error) {
	all := settings()
	m := make(map[string]any, len(all))
	for _, s := range all {
		m[s.name] = s.shownValue(c)
	}
	return json.Marshal(m)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
