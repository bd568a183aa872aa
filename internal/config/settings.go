package config

import (
	"errors"
	"strconv"
	"strings"
)

// setting describes one configuration knob once, so that flags, environment
// variables, the config file, help text and printing cannot drift apart.
type setting struct {
	name   string // flag name; the env var and file key derive from it
	arg    string // placeholder shown in help, "" for booleans
	usage  string
	isBool bool
	secret bool // never echoed in errors, help or printed configs
	// set parses a raw value into c; its error text must not repeat the
	// value, because the caller quotes it with its source.
	set func(c *Config, v string) error
	// text renders the setting in a form set accepts back.
	text func(c Config) string
	// value is the typed value for logs and JSON; nil means text.
	value func(c Config) any
}

// envName is the environment variable for a flag: ENGRAM_ + upper snake.
func envName(flagName string) string {
	return "ENGRAM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// shown is text with secrets replaced.
func (s setting) shown(c Config) string {
	switch {
	case s.secret:
		if s.text(c) == "" {
			return ""
		}
		return redacted
	case s.name == "store":
		return redactStore(c.Store)
	}
	return s.text(c)
}

// shownValue is value with secrets replaced.
func (s setting) shownValue(c Config) any {
	if s.secret || s.name == "store" || s.value == nil {
		return s.shown(c)
	}
	return s.value(c)
}

// settings returns the table of every setting, in help order. It is a
// function rather than a package variable so that nothing at package level
// can be mutated.
func settings() []setting {
	return []setting{
		{
			name: "config", arg: "FILE",
			usage: "read settings from FILE (lines of `name = value`, # comments)",
			set:   func(c *Config, v string) error { c.ConfigFile = v; return nil },
			text:  func(c Config) string { return c.ConfigFile },
		},
		{
			name: "resp", arg: "ADDR",
			usage: "listen address for the Redis protocol (RESP2/RESP3)",
			set:   func(c *Config, v string) error { c.RESPAddr = strings.TrimSpace(v); return nil },
			text:  func(c Config) string { return c.RESPAddr },
		},
		{
			name: "http", arg: "ADDR",
			usage: `listen address for the HTTP API, dashboard and metrics; "off" disables`,
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if strings.EqualFold(v, "off") {
					v = ""
				}
				c.HTTPAddr = v
				return nil
			},
			text: func(c Config) string {
				if !c.HTTPEnabled() {
					return "off"
				}
				return c.HTTPAddr
			},
		},
		{
			name: "cluster", arg: "ADDR",
			usage: "listen address for gossip and node-to-node traffic",
			set:   func(c *Config, v string) error { c.ClusterAddr = strings.TrimSpace(v); return nil },
			text:  func(c Config) string { return c.ClusterAddr },
		},
		{
			name: "join", arg: "ADDR[,ADDR...]",
			usage: "cluster addresses of existing members to join; none starts a new cluster",
			set: func(c *Config, v string) error {
				list, err := parseList(v)
				c.Join = list
				return err
			},
			text:  func(c Config) string { return strings.Join(c.Join, ",") },
			value: func(c Config) any { return append([]string{}, c.Join...) },
		},
		{
			name: "cluster-secret", arg: "SECRET", secret: true,
			usage: "shared secret of the cluster (16+ bytes); setting it turns clustering on (prefer ENGRAM_CLUSTER_SECRET)",
			set:   func(c *Config, v string) error { c.ClusterSecret = v; return nil },
			text:  func(c Config) string { return c.ClusterSecret },
		},
		{
			name: "role", arg: "ROLE",
			usage: "data (holds partitions) or client (routes requests, holds no data)",
			set:   func(c *Config, v string) error { c.Role = strings.ToLower(strings.TrimSpace(v)); return nil },
			text:  func(c Config) string { return c.Role },
		},
		{
			name: "cluster-tls-cert", arg: "FILE",
			usage: "PEM certificate this node presents on node-to-node data connections (with --cluster-tls-key and --cluster-tls-ca: mutual TLS)",
			set:   func(c *Config, v string) error { c.ClusterTLSCert = strings.TrimSpace(v); return nil },
			text:  func(c Config) string { return c.ClusterTLSCert },
		},
		{
			name: "cluster-tls-key", arg: "FILE",
			usage: "PEM private key of --cluster-tls-cert",
			set:   func(c *Config, v string) error { c.ClusterTLSKey = strings.TrimSpace(v); return nil },
			text:  func(c Config) string { return c.ClusterTLSKey },
		},
		{
			name: "cluster-tls-ca", arg: "FILE",
			usage: "PEM CA certificates that sign the cluster's node certificates",
			set:   func(c *Config, v string) error { c.ClusterTLSCA = strings.TrimSpace(v); return nil },
			text:  func(c Config) string { return c.ClusterTLSCA },
		},
		{
			name: "manager", isBool: true,
			usage: "may vote in the control plane (the first three eligible data nodes do); --manager=false to keep it out",
			set:   func(c *Config, v string) error { return parseBool(v, &c.Manager) },
			text:  func(c Config) string { return strconv.FormatBool(c.Manager) },
			value: func(c Config) any { return c.Manager },
		},
		{
			name: "node-name", arg: "NAME",
			usage: "this node's name in cluster views (default: its cluster address)",
			set:   func(c *Config, v string) error { c.NodeName = strings.TrimSpace(v); return nil },
			text:  func(c Config) string { return c.NodeName },
		},
		{
			name: "near-cache", arg: "N",
			usage: "entries of the near cache for eventual reads of keys other nodes own (0 = off)",
			set:   func(c *Config, v string) error { return parseInt(v, &c.NearCache) },
			text:  func(c Config) string { return strconv.Itoa(c.NearCache) },
			value: func(c Config) any { return c.NearCache },
		},
		{
			name: "max-indexes-per-map", arg: "N",
			usage: "most JSON query indexes one map may have",
			set:   func(c *Config, v string) error { return parseInt(v, &c.MaxIndexesPerMap) },
			text:  func(c Config) string { return strconv.Itoa(c.MaxIndexesPerMap) },
			value: func(c Config) any { return c.MaxIndexesPerMap },
		},
		{
			name: "auto-index", arg: "N",
			usage: "index a JSON path automatically once queried N times in a minute without an index (0 = off)",
			set:   func(c *Config, v string) error { return parseInt(v, &c.AutoIndex) },
			text:  func(c Config) string { return strconv.Itoa(c.AutoIndex) },
			value: func(c Config) any { return c.AutoIndex },
		},
		{
			name: "data-dir", arg: "DIR",
			usage: "directory for local state; not needed by a single node",
			set:   func(c *Config, v string) error { c.DataDir = v; return nil },
			text:  func(c Config) string { return c.DataDir },
		},
		{
			name: "replicas", arg: "N",
			usage: "copies of each partition, the primary included (1 = no backups)",
			set:   func(c *Config, v string) error { return parseInt(v, &c.Replicas) },
			text:  func(c Config) string { return strconv.Itoa(c.Replicas) },
			value: func(c Config) any { return c.Replicas },
		},
		{
			name: "store", arg: "URL",
			usage: "backing store: file:///path or s3://bucket/prefix?options; empty for none",
			set:   func(c *Config, v string) error { c.Store = strings.TrimSpace(v); return nil },
			text:  func(c Config) string { return c.Store },
		},
		{
			name: "store-defaults", arg: "SETTINGS",
			usage: "backing-store settings of maps without their own (STORECONFIG): \"mode=write-behind|write-through|read-through|none delay=1s batch=100 max_dirty=1000000 max_dirty_bytes=268435456 negative_ttl=0\"",
			set:   func(c *Config, v string) error { c.StoreDefaults = strings.TrimSpace(v); return nil },
			text:  func(c Config) string { return c.StoreDefaults },
		},
		{
			name: "password", arg: "SECRET", secret: true,
			usage: "password clients must AUTH with (prefer ENGRAM_PASSWORD or the config file: flags show in ps)",
			set:   func(c *Config, v string) error { c.Password = v; return nil },
			text:  func(c Config) string { return c.Password },
		},
		{
			name: "max-memory", arg: "SIZE",
			usage: "memory limit for data, e.g. 100mb, 1gb, 512MiB; 0 = unlimited",
			set:   func(c *Config, v string) error { return parseSizeInto(v, &c.MaxMemory) },
			text:  func(c Config) string { return formatSize(c.MaxMemory) },
			value: func(c Config) any { return c.MaxMemory },
		},
		{
			name: "max-memory-policy", arg: "POLICY",
			usage: "what to do at the memory limit: " + strings.Join(MemoryPolicies(), ", "),
			set: func(c *Config, v string) error {
				c.MaxMemoryPolicy = strings.ToLower(strings.TrimSpace(v))
				return nil
			},
			text: func(c Config) string { return c.MaxMemoryPolicy },
		},
		{
			name: "max-clients", arg: "N",
			usage: "maximum concurrent client connections",
			set:   func(c *Config, v string) error { return parseInt(v, &c.MaxClients) },
			text:  func(c Config) string { return strconv.Itoa(c.MaxClients) },
			value: func(c Config) any { return c.MaxClients },
		},
		{
			name: "max-key-len", arg: "SIZE",
			usage: "maximum key length in bytes",
			set: func(c *Config, v string) error {
				var n int64
				if err := parseSizeInto(v, &n); err != nil {
					return err
				}
				if n > MaxKeyLenLimit {
					return errors.New("larger than " + formatSize(MaxKeyLenLimit))
				}
				c.MaxKeyLen = int(n)
				return nil
			},
			text:  func(c Config) string { return formatSize(int64(c.MaxKeyLen)) },
			value: func(c Config) any { return c.MaxKeyLen },
		},
		{
			name: "max-value-len", arg: "SIZE",
			usage: "maximum value length, e.g. 512mb",
			set:   func(c *Config, v string) error { return parseSizeInto(v, &c.MaxValueLen) },
			text:  func(c Config) string { return formatSize(c.MaxValueLen) },
			value: func(c Config) any { return c.MaxValueLen },
		},
		{
			name: "max-keys-per-map", arg: "N",
			usage: "maximum keys in one map; 0 = unlimited",
			set: func(c *Config, v string) error {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return intError(err)
				}
				c.MaxKeysPerMap = n
				return nil
			},
			text:  func(c Config) string { return strconv.FormatInt(c.MaxKeysPerMap, 10) },
			value: func(c Config) any { return c.MaxKeysPerMap },
		},
		{
			name: "partitions", arg: "N",
			usage: "number of partitions; every member of a cluster must agree",
			set:   func(c *Config, v string) error { return parseInt(v, &c.Partitions) },
			text:  func(c Config) string { return strconv.Itoa(c.Partitions) },
			value: func(c Config) any { return c.Partitions },
		},
		{
			name: "log-level", arg: "LEVEL",
			usage: "log level: " + strings.Join(LogLevels(), ", "),
			set: func(c *Config, v string) error {
				c.LogLevel = strings.ToLower(strings.TrimSpace(v))
				return nil
			},
			text: func(c Config) string { return c.LogLevel },
		},
		{
			name: "log-format", arg: "FORMAT",
			usage: "log format: " + strings.Join(LogFormats(), ", "),
			set: func(c *Config, v string) error {
				c.LogFormat = strings.ToLower(strings.TrimSpace(v))
				return nil
			},
			text: func(c Config) string { return c.LogFormat },
		},
		{
			name: "protected-mode", isBool: true,
			usage: "refuse non-loopback listen addresses without a password; turn off with --protected-mode=false",
			set:   func(c *Config, v string) error { return parseBool(v, &c.ProtectedMode) },
			text:  func(c Config) string { return strconv.FormatBool(c.ProtectedMode) },
			value: func(c Config) any { return c.ProtectedMode },
		},
	}
}

// settingsByName indexes settings by flag name.
func settingsByName() map[string]setting {
	all := settings()
	m := make(map[string]setting, len(all))
	for _, s := range all {
		m[s.name] = s
	}
	return m
}

// parseList splits a comma-separated address list. An empty string is an
// empty list; an empty element ("a,,b" or a trailing comma) is an error,
// because it is usually a typo that would silently drop a member.
func parseList(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, errors.New("empty address in list")
		}
		out = append(out, p)
	}
	return out, nil
}

func parseInt(v string, dst *int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return intError(err)
	}
	*dst = n
	return nil
}

// intError hides strconv's message, which repeats the input.
func intError(err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return errors.New("number out of range")
	}
	return errors.New("want a whole number")
}

func parseSizeInto(v string, dst *int64) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}

// parseBool also takes yes/no and on/off, because Redis config files say
// "protected-mode yes".
func parseBool(v string, dst *bool) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "yes", "on":
		*dst = true
	case "0", "f", "false", "no", "off":
		*dst = false
	default:
		return errors.New("want true or false")
	}
	return nil
}
