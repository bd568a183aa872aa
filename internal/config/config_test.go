package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// env returns a getenv backed by m, so tests never touch the process
// environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes a config file into a fresh temp dir and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "engram.conf")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		RESPAddr:        "127.0.0.1:7379",
		HTTPAddr:        "127.0.0.1:7380",
		ClusterAddr:     "127.0.0.1:7946",
		Replicas:        2,
		Role:            "data",
		Manager:         true,
		MaxMemoryPolicy: "noeviction",
		MaxClients:      10000,
		MaxKeyLen:       65536,
		MaxValueLen:     512 << 20,
		Partitions:      271,
		LogLevel:        "info",
		LogFormat:       "text",
		ProtectedMode:   true,

		MaxIndexesPerMap: 4,
		AutoIndex:        10,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() = %#v\nwant %#v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	got, err := Load(nil, nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Load(nil, nil) = %v, %v; want the defaults", got, err)
	}
}

func TestLoadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want func(c *Config)
	}{
		{[]string{"--resp", "127.0.0.1:1"}, func(c *Config) { c.RESPAddr = "127.0.0.1:1" }},
		{[]string{"-resp=127.0.0.1:1"}, func(c *Config) { c.RESPAddr = "127.0.0.1:1" }},
		{[]string{"--http", "off"}, func(c *Config) { c.HTTPAddr = "" }},
		{[]string{"--http=OFF"}, func(c *Config) { c.HTTPAddr = "" }},
		{[]string{"--http="}, func(c *Config) { c.HTTPAddr = "" }},
		{[]string{"--http", "localhost:8080"}, func(c *Config) { c.HTTPAddr = "localhost:8080" }},
		{[]string{"--cluster", "127.0.0.1:9000"}, func(c *Config) { c.ClusterAddr = "127.0.0.1:9000" }},
		{[]string{"--cluster-secret", "0123456789abcdef0123", "--join", "10.0.0.1:7946, 10.0.0.2:7946"}, func(c *Config) {
			c.ClusterSecret, c.Join = "0123456789abcdef0123", []string{"10.0.0.1:7946", "10.0.0.2:7946"}
		}},
		{[]string{"--cluster-secret", "0123456789abcdef0123", "--join", "a:1", "--join", "b:2,c:3"}, func(c *Config) {
			c.ClusterSecret, c.Join = "0123456789abcdef0123", []string{"a:1", "b:2", "c:3"}
		}},
		{[]string{"--cluster-secret", "0123456789abcdef0123", "--role", "Client", "--node-name", " n1 "}, func(c *Config) {
			c.ClusterSecret, c.Role, c.NodeName = "0123456789abcdef0123", "client", "n1"
		}},
		{[]string{"--data-dir", "/var/lib/engram"}, func(c *Config) { c.DataDir = "/var/lib/engram" }},
		{[]string{"--replicas", "3"}, func(c *Config) { c.Replicas = 3 }},
		{[]string{"--store", "file:///srv/data"}, func(c *Config) { c.Store = "file:///srv/data" }},
		{[]string{"--store", "s3://bucket/prefix?region=eu-west-1"}, func(c *Config) { c.Store = "s3://bucket/prefix?region=eu-west-1" }},
		{[]string{"--password", "s3cret"}, func(c *Config) { c.Password = "s3cret" }},
		{[]string{"--max-memory", "1gb"}, func(c *Config) { c.MaxMemory = 1 << 30 }},
		{[]string{"--max-memory-policy", "ALLKEYS-LRU"}, func(c *Config) { c.MaxMemoryPolicy = "allkeys-lru" }},
		{[]string{"--max-clients", "5"}, func(c *Config) { c.MaxClients = 5 }},
		{[]string{"--max-key-len", "1kb"}, func(c *Config) { c.MaxKeyLen = 1024 }},
		{[]string{"--max-key-len", "100"}, func(c *Config) { c.MaxKeyLen = 100 }},
		{[]string{"--max-value-len", "1m"}, func(c *Config) { c.MaxValueLen = 1_000_000 }},
		{[]string{"--max-keys-per-map", "1000"}, func(c *Config) { c.MaxKeysPerMap = 1000 }},
		{[]string{"--partitions", "7"}, func(c *Config) { c.Partitions = 7 }},
		{[]string{"--log-level", "DEBUG"}, func(c *Config) { c.LogLevel = "debug" }},
		{[]string{"--log-format", "json"}, func(c *Config) { c.LogFormat = "json" }},
		{[]string{"--protected-mode=false"}, func(c *Config) { c.ProtectedMode = false }},
		{[]string{"--protected-mode=no"}, func(c *Config) { c.ProtectedMode = false }},
		{[]string{"--protected-mode=false", "--protected-mode"}, func(c *Config) {}},
		{[]string{"--replicas", "3", "--replicas", "1"}, func(c *Config) { c.Replicas = 1 }},
		{[]string{"--", "--resp"}, nil}, // positional after --: error, checked below
	}
	for _, tt := range tests {
		got, err := Load(tt.args, nil)
		if tt.want == nil {
			if err == nil {
				t.Errorf("Load(%q) succeeded, want an error", tt.args)
			}
			continue
		}
		want := Default()
		tt.want(&want)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Load(%q) = %v, %v\nwant %v", tt.args, got, err, want)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want func(c *Config)
	}{
		{map[string]string{"ENGRAM_RESP": "127.0.0.1:1"}, func(c *Config) { c.RESPAddr = "127.0.0.1:1" }},
		{map[string]string{"ENGRAM_HTTP": "off"}, func(c *Config) { c.HTTPAddr = "" }},
		{map[string]string{"ENGRAM_CLUSTER": "127.0.0.1:2"}, func(c *Config) { c.ClusterAddr = "127.0.0.1:2" }},
		{map[string]string{"ENGRAM_JOIN": "a:1,b:2", "ENGRAM_CLUSTER_SECRET": "0123456789abcdef0123"}, func(c *Config) {
			c.Join, c.ClusterSecret = []string{"a:1", "b:2"}, "0123456789abcdef0123"
		}},
		{map[string]string{"ENGRAM_DATA_DIR": "/d"}, func(c *Config) { c.DataDir = "/d" }},
		{map[string]string{"ENGRAM_REPLICAS": "1"}, func(c *Config) { c.Replicas = 1 }},
		{map[string]string{"ENGRAM_STORE": "file:///x"}, func(c *Config) { c.Store = "file:///x" }},
		{map[string]string{"ENGRAM_PASSWORD": "pw"}, func(c *Config) { c.Password = "pw" }},
		{map[string]string{"ENGRAM_MAX_MEMORY": "512MiB"}, func(c *Config) { c.MaxMemory = 512 << 20 }},
		{map[string]string{"ENGRAM_MAX_MEMORY_POLICY": "volatile-ttl"}, func(c *Config) { c.MaxMemoryPolicy = "volatile-ttl" }},
		{map[string]string{"ENGRAM_MAX_CLIENTS": "9"}, func(c *Config) { c.MaxClients = 9 }},
		{map[string]string{"ENGRAM_MAX_KEY_LEN": "10"}, func(c *Config) { c.MaxKeyLen = 10 }},
		{map[string]string{"ENGRAM_MAX_VALUE_LEN": "2kb"}, func(c *Config) { c.MaxValueLen = 2048 }},
		{map[string]string{"ENGRAM_MAX_KEYS_PER_MAP": "3"}, func(c *Config) { c.MaxKeysPerMap = 3 }},
		{map[string]string{"ENGRAM_PARTITIONS": "13"}, func(c *Config) { c.Partitions = 13 }},
		{map[string]string{"ENGRAM_LOG_LEVEL": "warn"}, func(c *Config) { c.LogLevel = "warn" }},
		{map[string]string{"ENGRAM_LOG_FORMAT": "JSON"}, func(c *Config) { c.LogFormat = "json" }},
		{map[string]string{"ENGRAM_PROTECTED_MODE": "off"}, func(c *Config) { c.ProtectedMode = false }},
		// An empty variable is indistinguishable from an unset one.
		{map[string]string{"ENGRAM_RESP": ""}, func(c *Config) {}},
		// Names that merely look similar are not read.
		{map[string]string{"ENGRAM_MAX-MEMORY": "1gb", "MAX_MEMORY": "1gb", "engram_max_memory": "1gb"}, func(c *Config) {}},
	}
	for _, tt := range tests {
		got, err := Load(nil, env(tt.env))
		want := Default()
		tt.want(&want)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Load with env %v = %v, %v\nwant %v", tt.env, got, err, want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    func(c *Config)
	}{
		{"empty", "", func(c *Config) {}},
		{"comments and blanks", "# a comment\n\n   # indented comment\n\t\n", func(c *Config) {}},
		{"equals", "max-memory = 1gb\n", func(c *Config) { c.MaxMemory = 1 << 30 }},
		{"equals no spaces", "max-memory=1gb", func(c *Config) { c.MaxMemory = 1 << 30 }},
		{"space separated", "max-memory 1gb\n", func(c *Config) { c.MaxMemory = 1 << 30 }},
		{"tab separated", "max-memory\t1gb\n", func(c *Config) { c.MaxMemory = 1 << 30 }},
		{"crlf", "replicas = 3\r\npartitions = 11\r\n", func(c *Config) { c.Replicas = 3; c.Partitions = 11 }},
		{"bom", "\uFEFFreplicas = 3\n", func(c *Config) { c.Replicas = 3 }},
		{"join list", "cluster-secret = 0123456789abcdef0123\njoin = 10.0.0.1:7946,10.0.0.2:7946", func(c *Config) {
			c.ClusterSecret, c.Join = "0123456789abcdef0123", []string{"10.0.0.1:7946", "10.0.0.2:7946"}
		}},
		{"empty value with equals", "http =\n", func(c *Config) { c.HTTPAddr = "" }},
		{"hash inside value", "password = a#b c\n", func(c *Config) { c.Password = "a#b c" }},
		{"quoted value", `password = "  spaced\tout  "`, func(c *Config) { c.Password = "  spaced\tout  " }},
		{"redis style bool", "protected-mode no\n", func(c *Config) { c.ProtectedMode = false }},
		{"upper-case name", "REPLICAS = 1\n", func(c *Config) { c.Replicas = 1 }},
		{"every setting", strings.Join([]string{
			"resp = 127.0.0.1:1", "http = 127.0.0.1:2", "cluster = 127.0.0.1:3", "join = h:4", "cluster-secret = 0123456789abcdef0123",
			"data-dir = /data", "replicas = 3", "store = s3://b/p", "password = pw", "max-memory = 2g",
			"max-memory-policy = allkeys-lfu", "max-clients = 10", "max-key-len = 512", "max-value-len = 1mb",
			"max-keys-per-map = 99", "partitions = 31", "log-level = error", "log-format = json", "protected-mode = true",
			"max-indexes-per-map = 8", "auto-index = 0",
		}, "\n"), func(c *Config) {
			*c = Config{
				RESPAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2", ClusterAddr: "127.0.0.1:3", Join: []string{"h:4"}, ClusterSecret: "0123456789abcdef0123", Role: "data", Manager: true,
				DataDir: "/data", Replicas: 3, Store: "s3://b/p", Password: "pw", MaxMemory: 2e9,
				MaxMemoryPolicy: "allkeys-lfu", MaxClients: 10, MaxKeyLen: 512, MaxValueLen: 1 << 20,
				MaxKeysPerMap: 99, Partitions: 31, LogLevel: "error", LogFormat: "json", ProtectedMode: true,
				MaxIndexesPerMap: 8, AutoIndex: 0, ConfigFile: c.ConfigFile,
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			got, err := Load([]string{"--config", path}, nil)
			want := Default()
			want.ConfigFile = path
			tt.want(&want)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Load(file %q) = %v, %v\nwant %v", tt.content, got, err, want)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		content string
		wantErr string
	}{
		{"max-memroy = 1gb", `f.conf:1: unknown setting "max-memroy"`},
		{"\n\nbogus", `f.conf:3: unknown setting "bogus"`},
		{"replicas", "f.conf:1: missing value for replicas"},
		{"= 3", `f.conf:1: missing setting name before "3"`},
		{"config = other.conf", "f.conf:1: config cannot be set inside a config file"},
		{"replicas = 1\nreplicas = 2", "f.conf:2: replicas already set at line 1"},
		{`password = "unterminated`, "f.conf:1: bad quoted value for password"},
		{`password = "a" b`, "f.conf:1: bad quoted value for password"},
		{"password = \xff\xfe", "f.conf:1: line is not valid UTF-8"},
	}
	for _, tt := range tests {
		_, err := parseFile("f.conf", []byte(tt.content))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseFile(%q) error = %v, want %q", tt.content, err, tt.wantErr)
		}
	}
	// Every bad line is reported, not only the first.
	_, err := parseFile("f.conf", []byte("a = 1\nreplicas = 2\nb = 3\n"))
	if err == nil || !strings.Contains(err.Error(), "f.conf:1:") || !strings.Contains(err.Error(), "f.conf:3:") {
		t.Errorf("parseFile with two bad lines: error = %v, want both lines named", err)
	}
}

func TestPrecedence(t *testing.T) {
	// Replicas is set by every source in turn; the highest present wins.
	tests := []struct {
		file, env, flag string
		want            int
	}{
		{"", "", "", DefaultReplicas},
		{"3", "", "", 3},
		{"3", "4", "", 4},
		{"3", "4", "5", 5},
		{"", "4", "5", 5},
		{"3", "", "5", 5},
		{"", "4", "", 4},
		{"", "", "5", 5},
	}
	for _, tt := range tests {
		var args []string
		e := map[string]string{}
		if tt.file != "" {
			args = append(args, "--config", writeFile(t, "replicas = "+tt.file))
		}
		if tt.env != "" {
			e["ENGRAM_REPLICAS"] = tt.env
		}
		if tt.flag != "" {
			args = append(args, "--replicas", tt.flag)
		}
		got, err := Load(args, env(e))
		if err != nil || got.Replicas != tt.want {
			t.Errorf("file=%q env=%q flag=%q: Replicas = %d, %v; want %d", tt.file, tt.env, tt.flag, got.Replicas, err, tt.want)
		}
	}

	// A bad lower-precedence value is still an error even when overridden:
	// the operator should fix it rather than have it bite later.
	_, err := Load([]string{"--max-memory", "1gb"}, env(map[string]string{"ENGRAM_MAX_MEMORY": "12zb"}))
	if err == nil || !strings.Contains(err.Error(), "ENGRAM_MAX_MEMORY") {
		t.Errorf("overridden bad env value: error = %v, want it reported", err)
	}

	// The config file is named by the flag over the env var.
	fromEnv := writeFile(t, "replicas = 3")
	fromFlag := writeFile(t, "replicas = 4")
	got, err := Load([]string{"--config", fromFlag}, env(map[string]string{"ENGRAM_CONFIG": fromEnv}))
	if err != nil || got.Replicas != 4 || got.ConfigFile != fromFlag {
		t.Errorf("--config over ENGRAM_CONFIG: got replicas %d file %q, %v", got.Replicas, got.ConfigFile, err)
	}
	got, err = Load(nil, env(map[string]string{"ENGRAM_CONFIG": fromEnv}))
	if err != nil || got.Replicas != 3 || got.ConfigFile != fromEnv {
		t.Errorf("ENGRAM_CONFIG: got replicas %d file %q, %v", got.Replicas, got.ConfigFile, err)
	}
}

func TestLoadErrors(t *testing.T) {
	bad := writeFile(t, "# header\nmax-memory = 12zb\n")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"env size", nil, map[string]string{"ENGRAM_MAX_MEMORY": "12zb"},
			`invalid --max-memory "12zb" (from ENGRAM_MAX_MEMORY): unknown unit "zb"`},
		{"flag size", []string{"--max-memory", "-5"}, nil,
			`invalid --max-memory "-5" (from command line): size must not be negative`},
		{"file size", []string{"--config", bad}, nil,
			`invalid --max-memory "12zb" (from ` + bad + `:2): unknown unit "zb"`},
		{"int", []string{"--replicas", "two"}, nil, `invalid --replicas "two" (from command line): want a whole number`},
		{"int range", []string{"--max-clients", "99999999999999999999"}, nil, "number out of range"},
		{"int64", []string{"--max-keys-per-map", "1.5"}, nil, `invalid --max-keys-per-map "1.5" (from command line): want a whole number`},
		{"bool", nil, map[string]string{"ENGRAM_PROTECTED_MODE": "maybe"},
			`invalid --protected-mode "maybe" (from ENGRAM_PROTECTED_MODE): want true or false`},
		{"join list", []string{"--join", "a:1,,b:2"}, nil, `invalid --join "a:1,,b:2" (from command line): empty address in list`},
		{"key len", []string{"--max-key-len", "1gb"}, nil, `invalid --max-key-len "1gb" (from command line): larger than 16mb`},
		{"validation names source", nil, map[string]string{"ENGRAM_REPLICAS": "0"},
			`invalid --replicas "0" (from ENGRAM_REPLICAS): must be between 1 and 16`},
		{"missing file", []string{"--config", "/nonexistent/engram.conf"}, nil,
			`cannot read config file "/nonexistent/engram.conf" (from command line): open /nonexistent/engram.conf`},
		{"missing file from env", nil, map[string]string{"ENGRAM_CONFIG": "/nonexistent/e.conf"},
			`cannot read config file "/nonexistent/e.conf" (from ENGRAM_CONFIG)`},
		{"unknown flag", []string{"--max-memroy", "1gb"}, nil, "cannot parse command line: flag provided but not defined: -max-memroy"},
		{"missing flag value", []string{"--resp"}, nil, "flag needs an argument: -resp"},
		{"positional", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"bool with space", []string{"--protected-mode", "false"}, nil,
			`unexpected argument "false" (a boolean flag takes its value after =, e.g. --protected-mode=false)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.args, env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error = %v\nwant it to contain %q", err, tt.wantErr)
			}
		})
	}

	// All problems are reported together.
	_, err := Load([]string{"--replicas", "x", "--max-memory", "y"}, nil)
	if err == nil || !strings.Contains(err.Error(), "--replicas") || !strings.Contains(err.Error(), "--max-memory") {
		t.Errorf("two bad flags: error = %v, want both named", err)
	}
}

func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		_, err := Load([]string{arg}, nil)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("Load(%q) error = %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string // "" means valid
	}{
		{"default", func(c *Config) {}, ""},
		{"empty resp", func(c *Config) { c.RESPAddr = "" }, `invalid --resp "": must not be empty`},
		{"resp no port", func(c *Config) { c.RESPAddr = "127.0.0.1" }, `invalid --resp "127.0.0.1": want host:port, e.g. 127.0.0.1:7379 ([::1]:7379 for IPv6): missing port in address`},
		{"resp bare ipv6", func(c *Config) { c.RESPAddr = "::1:7379" }, "too many colons in address"},
		{"resp bad port", func(c *Config) { c.RESPAddr = "127.0.0.1:http" }, `invalid --resp "127.0.0.1:http": port "http" is not a number from 0 to 65535`},
		{"resp port range", func(c *Config) { c.RESPAddr = "127.0.0.1:65536" }, `port "65536" is not a number from 0 to 65535`},
		{"resp signed port", func(c *Config) { c.RESPAddr = "127.0.0.1:+5" }, `port "+5" is not a number`},
		{"resp bad host", func(c *Config) { c.RESPAddr = "bad host:1" }, `host "bad host" is neither an IP address nor a hostname`},
		{"resp port 0", func(c *Config) { c.RESPAddr = "127.0.0.1:0"; c.HTTPAddr = "127.0.0.1:0"; c.ClusterAddr = "127.0.0.1:0" }, ""},
		{"resp ipv6", func(c *Config) { c.RESPAddr = "[::1]:7379" }, ""},
		{"http off", func(c *Config) { c.HTTPAddr = "off" }, ""},
		{"http empty", func(c *Config) { c.HTTPAddr = "" }, ""},
		{"http bad", func(c *Config) { c.HTTPAddr = "nope" }, `invalid --http "nope": want host:port`},
		{"http same as resp", func(c *Config) { c.HTTPAddr = c.RESPAddr }, `invalid --http "127.0.0.1:7379": same address as --resp`},
		{"cluster same as resp", func(c *Config) { c.ClusterAddr = "127.0.0.1:7379" }, `invalid --cluster "127.0.0.1:7379": same address as --resp`},
		{"cluster same as http", func(c *Config) { c.ClusterAddr = "127.0.0.1:7380" }, `invalid --cluster "127.0.0.1:7380": same address as --http`},
		{"cluster same as disabled http", func(c *Config) { c.HTTPAddr = ""; c.ClusterAddr = "127.0.0.1:7380" }, ""},
		{"cluster empty", func(c *Config) { c.ClusterAddr = "" }, `invalid --cluster "": must not be empty`},
		{"join ok", func(c *Config) {
			c.ClusterSecret, c.Join = "0123456789abcdef0123", []string{"10.0.0.1:7946", "node-2.internal:7946", "[fe80::1]:7946"}
		}, ""},
		{"join without secret", func(c *Config) { c.Join = []string{"a:1"} }, `invalid --join "a:1": needs --cluster-secret`},
		{"short secret", func(c *Config) { c.ClusterSecret = "short" }, `invalid --cluster-secret: must be at least 16 bytes`},
		{"bad role", func(c *Config) { c.Role = "boss" }, `invalid --role "boss": want data or client`},
		{"wildcard cluster address", func(c *Config) {
			c.ClusterSecret, c.ClusterAddr, c.Password = "0123456789abcdef0123", "0.0.0.0:7946", "pw"
		}, `invalid --cluster "0.0.0.0:7946": a cluster member must name its own address`},
		{"client without cluster", func(c *Config) { c.Role = "client" }, `invalid --role "client": client needs a cluster`},
		{"join no host", func(c *Config) { c.Join = []string{":7946"} }, `invalid --join ":7946": ":7946": missing host`},
		{"join port 0", func(c *Config) { c.Join = []string{"a:0"} }, `invalid --join "a:0": "a:0": port must not be 0`},
		{"join no port", func(c *Config) { c.Join = []string{"a"} }, `"a": want host:port`},
		{"replicas 0", func(c *Config) { c.Replicas = 0 }, `invalid --replicas "0": must be between 1 and 16`},
		{"replicas 17", func(c *Config) { c.Replicas = 17 }, `invalid --replicas "17": must be between 1 and 16`},
		{"store file", func(c *Config) { c.Store = "file:///var/lib/engram" }, ""},
		{"store file localhost", func(c *Config) { c.Store = "file://localhost/var/lib/engram" }, ""},
		{"store s3", func(c *Config) { c.Store = "s3://bucket/prefix?region=us-east-1&endpoint=http://127.0.0.1:9000" }, ""},
		{"store relative file", func(c *Config) { c.Store = "file:data" }, "file URL needs an absolute path"},
		{"store file host", func(c *Config) { c.Store = "file://data/x" }, `file URL has host "data": want file:///absolute/path (three slashes)`},
		{"store s3 no bucket", func(c *Config) { c.Store = "s3:///prefix" }, "s3 URL needs a bucket"},
		{"store scheme", func(c *Config) { c.Store = "gs://bucket" }, `unsupported scheme "gs"`},
		{"store no scheme", func(c *Config) { c.Store = "/var/lib" }, `unsupported scheme ""`},
		{"store garbage", func(c *Config) { c.Store = "%zz" }, "not a URL"},
		{"max memory negative", func(c *Config) { c.MaxMemory = -1 }, `invalid --max-memory "-1": must not be negative`},
		{"policy", func(c *Config) { c.MaxMemoryPolicy = "lru" }, `invalid --max-memory-policy "lru": want one of noeviction, allkeys-lru, allkeys-lfu, volatile-lru, volatile-ttl, allkeys-random`},
		{"every policy", func(c *Config) { c.MaxMemoryPolicy = "allkeys-random" }, ""},
		{"max clients", func(c *Config) { c.MaxClients = 0 }, `invalid --max-clients "0": must be at least 1`},
		{"max key len 0", func(c *Config) { c.MaxKeyLen = 0 }, `invalid --max-key-len "0": must be between 1 and 16mb`},
		{"max key len big", func(c *Config) { c.MaxKeyLen = MaxKeyLenLimit + 1 }, "must be between 1 and 16mb"},
		{"max value len", func(c *Config) { c.MaxValueLen = 0 }, `invalid --max-value-len "0": must be at least 1`},
		{"max keys per map", func(c *Config) { c.MaxKeysPerMap = -1 }, `invalid --max-keys-per-map "-1": must not be negative (0 means unlimited)`},
		{"partitions 0", func(c *Config) { c.Partitions = 0 }, `invalid --partitions "0": must be between 1 and 65536`},
		{"partitions big", func(c *Config) { c.Partitions = MaxPartitions + 1 }, "must be between 1 and 65536"},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, `invalid --log-level "verbose": want one of debug, info, warn, error`},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, `invalid --log-format "xml": want one of text, json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v\nwant it to contain %q", err, tt.wantErr)
			}
		})
	}

	// Several problems come back together, one per line.
	c := Default()
	c.Replicas, c.Partitions = 0, 0
	err := c.Validate()
	if err == nil || len(strings.Split(err.Error(), "\n")) != 2 {
		t.Errorf("Validate with two problems = %v, want two lines", err)
	}
}

func TestProtectedMode(t *testing.T) {
	msg := func(addr string) string {
		return "refusing to listen on " + addr + " without a password: set --password (or ENGRAM_PASSWORD), " +
			"or bind to 127.0.0.1, or disable protected mode with --protected-mode=false"
	}
	tests := []struct {
		resp, http string
		loopback   bool
	}{
		{"127.0.0.1:7379", "127.0.0.1:7380", true},
		{"127.1.2.3:7379", "off", true},
		{"[::1]:7379", "[::1]:7380", true},
		{"[::ffff:127.0.0.1]:7379", "off", true},
		{"localhost:7379", "LOCALHOST:7380", true},
		{"localhost.:7379", "off", true},
		{"0.0.0.0:7379", "off", false},
		{"[::]:7379", "off", false},
		{":7379", "off", false},
		{"192.168.1.10:7379", "off", false},
		{"10.0.0.1:7379", "off", false},
		{"[fe80::1%eth0]:7379", "off", false},
		{"myhost:7379", "off", false},
		{"localhost.example.com:7379", "off", false},
		{"127.0.0.1:7379", "0.0.0.0:7380", false},
	}
	for _, tt := range tests {
		c := Default()
		c.RESPAddr, c.HTTPAddr = tt.resp, tt.http
		err := c.Validate()
		if tt.loopback {
			if err != nil {
				t.Errorf("resp=%s http=%s: Validate() = %v, want nil", tt.resp, tt.http, err)
			}
			continue
		}
		bad := tt.resp
		if isLoopbackAddr(bad) {
			bad = tt.http
		}
		if err == nil || err.Error() != msg(bad) {
			t.Errorf("resp=%s http=%s: Validate() = %v\nwant %q", tt.resp, tt.http, err, msg(bad))
		}
		// A password or turning protected mode off lifts the rule.
		withPw := c
		withPw.Password = "pw"
		if err := withPw.Validate(); err != nil {
			t.Errorf("resp=%s with a password: Validate() = %v", tt.resp, err)
		}
		off := c
		off.ProtectedMode = false
		if err := off.Validate(); err != nil {
			t.Errorf("resp=%s without protected mode: Validate() = %v", tt.resp, err)
		}
	}

	// Both listeners exposed: both named.
	c := Default()
	c.RESPAddr, c.HTTPAddr = "0.0.0.0:7379", "0.0.0.0:7380"
	if err := c.Validate(); err == nil || err.Error() != msg("0.0.0.0:7379")+"\n"+msg("0.0.0.0:7380") {
		t.Errorf("both exposed: Validate() = %v", err)
	}

	// Through Load, with the flags a user would type.
	if _, err := Load([]string{"--resp", "0.0.0.0:7379"}, nil); err == nil || err.Error() != msg("0.0.0.0:7379") {
		t.Errorf("Load --resp 0.0.0.0:7379: %v", err)
	}
	if _, err := Load([]string{"--resp", "0.0.0.0:7379"}, env(map[string]string{"ENGRAM_PASSWORD": "pw"})); err != nil {
		t.Errorf("Load --resp 0.0.0.0:7379 with ENGRAM_PASSWORD: %v", err)
	}
	if _, err := Load([]string{"--resp", "0.0.0.0:7379", "--protected-mode=false"}, nil); err != nil {
		t.Errorf("Load --resp 0.0.0.0:7379 --protected-mode=false: %v", err)
	}
}

func TestRedaction(t *testing.T) {
	const pw = "hunter2-SECRET"
	c := Default()
	c.Password = pw
	c.Store = "s3://AKIDEXAMPLE:" + pw + "@bucket/prefix?region=eu&secret_access_key=" + pw + "&session_token=" + pw

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "config", c)
	var textLogged bytes.Buffer
	slog.New(slog.NewTextHandler(&textLogged, nil)).Info("starting", "config", c)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String":      c.String(),
		"%v":          fmt.Sprintf("%v", c),
		"%+v":         fmt.Sprintf("%+v", c),
		"%#v":         fmt.Sprintf("%#v", c),
		"%v pointer":  fmt.Sprintf("%v", &c),
		"nested %+v":  fmt.Sprintf("%+v", struct{ C Config }{c}),
		"slog json":   logged.String(),
		"slog text":   textLogged.String(),
		"json":        string(js),
		"usage":       Usage(),
		"parse error": errString(Load([]string{"--password", pw, "--replicas", "x"}, nil)),
	}
	for name, out := range outputs {
		if strings.Contains(out, pw) {
			t.Errorf("%s leaks the password: %s", name, out)
		}
	}
	for _, name := range []string{"String", "%v", "%#v", "slog json", "slog text", "json"} {
		if !strings.Contains(outputs[name], redacted) {
			t.Errorf("%s does not show that a password is set: %s", name, outputs[name])
		}
	}
	// Non-secret parts stay readable.
	if !strings.Contains(c.String(), "region=eu") || !strings.Contains(c.String(), "bucket/prefix") {
		t.Errorf("String() hid too much: %s", c.String())
	}
	if !strings.Contains(logged.String(), `"max-value-len":536870912`) {
		t.Errorf("slog JSON should carry typed values: %s", logged.String())
	}
	// No password: nothing to redact, and it shows as empty.
	if s := Default().String(); !strings.Contains(s, `password=""`) {
		t.Errorf("Default().String() = %s, want an empty password", s)
	}
	// A password can never appear in a validation error either.
	bad := Default()
	bad.Password = pw
	bad.Replicas = 0
	if err := bad.Validate(); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("Validate() = %v", err)
	}
}

func errString(_ Config, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRoundTrip checks that every setting's printed form is accepted back:
// a non-default Config written out as a config file loads to itself.
func TestRoundTrip(t *testing.T) {
	c := Config{
		RESPAddr: "127.0.0.1:1", HTTPAddr: "", ClusterAddr: "[::1]:3", Join: []string{"a:1", "b:2"},
		ClusterSecret: "0123456789abcdef0123", Role: "client", NodeName: "n1",
		DataDir: "/data dir", Replicas: 5, Store: "file:///srv", Password: " p#w\"\\ ", MaxMemory: 3 << 30,
		MaxMemoryPolicy: "volatile-lru", MaxClients: 7, MaxKeyLen: 1000, MaxValueLen: 1500,
		MaxKeysPerMap: 42, Partitions: 101, LogLevel: "debug", LogFormat: "json", ProtectedMode: false,
		MaxIndexesPerMap: 7, AutoIndex: 3,
	}
	var file strings.Builder
	for _, s := range settings() {
		if s.name == "config" {
			continue
		}
		fmt.Fprintf(&file, "%s = %q\n", s.name, s.text(c))
	}
	path := writeFile(t, file.String())
	got, err := Load([]string{"--config", path}, nil)
	c.ConfigFile = path
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip through\n%s\ngot %#v, %v\nwant %#v (passwords equal: %v)", file.String(), got, err, c, got.Password == c.Password)
	}
}

func TestUsage(t *testing.T) {
	u := Usage()
	for _, s := range settings() {
		if !strings.Contains(u, "--"+s.name) {
			t.Errorf("Usage() lacks --%s", s.name)
		}
		if !strings.Contains(u, envName(s.name)) {
			t.Errorf("Usage() lacks %s", envName(s.name))
		}
	}
	for _, want := range []string{
		"ENGRAM_MAX_MEMORY", "ENGRAM_DATA_DIR", "ENGRAM_RESP, default 127.0.0.1:7379",
		"ENGRAM_HTTP, default 127.0.0.1:7380", "ENGRAM_CLUSTER, default 127.0.0.1:7946",
		"ENGRAM_REPLICAS, default 2", "ENGRAM_MAX_MEMORY, default 0", "ENGRAM_MAX_MEMORY_POLICY, default noeviction",
		"ENGRAM_MAX_CLIENTS, default 10000", "ENGRAM_MAX_KEY_LEN, default 64kb", "ENGRAM_MAX_VALUE_LEN, default 512mb",
		"ENGRAM_PARTITIONS, default 271", "ENGRAM_LOG_LEVEL, default info", "ENGRAM_LOG_FORMAT, default text",
		"ENGRAM_PROTECTED_MODE, default true", "ENGRAM_MAX_KEYS_PER_MAP, default 0",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("Usage() lacks %q", want)
		}
	}
	// The table and the Config struct must cover the same fields: a new
	// field without a setting would be unreachable from flags.
	if n, m := reflect.TypeOf(Config{}).NumField(), len(settings()); n != m {
		t.Errorf("Config has %d fields but there are %d settings", n, m)
	}
}

func TestHelpers(t *testing.T) {
	for level, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError, "bogus": slog.LevelInfo,
	} {
		if got := (Config{LogLevel: level}).SlogLevel(); got != want {
			t.Errorf("SlogLevel(%q) = %v, want %v", level, got, want)
		}
	}
	for addr, want := range map[string]bool{"": false, "off": false, "OFF": false, "127.0.0.1:1": true} {
		if got := (Config{HTTPAddr: addr}).HTTPEnabled(); got != want {
			t.Errorf("HTTPEnabled(%q) = %v, want %v", addr, got, want)
		}
	}
}

func FuzzParseFile(f *testing.F) {
	for _, s := range []string{
		"max-memory = 1gb\n",
		"# comment\n\njoin = 10.0.0.1:7946,10.0.0.2:7946\r\n",
		"replicas 3\npartitions=7",
		`password = "a\tb"`,
		"bogus = 1",
		"replicas = 1\nreplicas = 2",
		"\uFEFFhttp =\n",
		`password = "unterminated`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vals, err := parseFile("f.conf", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.conf:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		byName := settingsByName()
		seen := map[string]bool{}
		for _, v := range vals {
			if _, ok := byName[v.name]; !ok || v.name == "config" {
				t.Fatalf("parsed an unknown setting %q", v.name)
			}
			if seen[v.name] {
				t.Fatalf("setting %q returned twice", v.name)
			}
			seen[v.name] = true
		}
		// Writing the result back out, quoted, must parse to the same
		// names and values.
		var out strings.Builder
		for _, v := range vals {
			fmt.Fprintf(&out, "%s = %q\n", v.name, v.value)
		}
		again, err := parseFile("f.conf", []byte(out.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out.String(), err)
		}
		if len(again) != len(vals) {
			t.Fatalf("re-parse gave %d settings, want %d", len(again), len(vals))
		}
		for i := range vals {
			if again[i].name != vals[i].name || again[i].value != vals[i].value {
				t.Fatalf("re-parse: %q=%q, want %q=%q", again[i].name, again[i].value, vals[i].name, vals[i].value)
			}
		}
	})
}
