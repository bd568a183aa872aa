package httpapi

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/engramdb/engram/internal/cluster"
)

// TestThroughExec runs the API's tests against its cluster path: every
// data route runs its Redis-protocol command through Options.Exec, here a
// RESP server over the same store (the node wires its cluster-routing
// server in the same way), so the cluster path must give the standalone
// path's answers.
func TestThroughExec(t *testing.T) {
	tests := map[string]func(*testing.T){
		"KeyRoundTrip": TestKeyRoundTrip, "PathEscapeClients": TestPathEscapeClients,
		"BadPaths": TestBadPathsAreRefusedNotRedirected, "LargeValue": TestLargeValue,
		"ConditionalWrites": TestConditionalWrites, "TTLWithManualClock": TestTTLWithManualClock,
		"ExpireAndPersist": TestExpireAndPersist, "MapMaxTTL": TestMapMaxTTL, "Incr": TestIncr,
		"UnknownRoutes": TestUnknownRoutes, "PutAllGetAllRemoveItems": TestPutAllGetAllRemoveItems,
		"BinaryBatches": TestBinaryBatches, "TooManyItems": TestTooManyItems,
		"ScanReturnsEveryKeyOnce": TestScanReturnsEveryKeyOnce, "EvictSinceClearFlush": TestEvictSinceClearFlush,
		"PutAllPartialFailure": TestPutAllPartialFailure, "RefusedInputChangesNothing": TestRefusedInputChangesNothing,
		"OOM": TestOOM, "Sequences": TestSequences, "Auth": TestAuth,
		"ValueLimitBeforeReading": TestValueLimitBeforeReading, "ChunkedBodyLimit": TestChunkedBodyLimit,
		"MapsAndSizes": TestMapsAndSizes, "MaxKeys": TestMaxKeys, "Config": TestConfig, "Stats": TestStats,
		"UpAndNodes": TestUpAndNodes, "Healthz": TestHealthz,
	}
	execMode = true
	defer func() { execMode = false }()
	for name, f := range tests {
		t.Run(name, f)
	}
}

// fakeCluster records the commands the API runs and answers them with a
// fixed reply.
type fakeCluster struct {
	reply string
	calls []fakeCall
}

type fakeCall struct {
	m    string
	args string
	o    ExecOptions
}

func (f *fakeCluster) exec(_ context.Context, m string, args [][]byte, o ExecOptions) []byte {
	f.calls = append(f.calls, fakeCall{m, string(bytes.Join(args, []byte(" "))), o})
	return []byte(f.reply)
}

func newFakeEnv(t *testing.T, reply string, view *cluster.View) (*env, *fakeCluster) {
	f := &fakeCluster{reply: reply}
	o := envOpts{api: Options{Exec: f.exec}}
	if view != nil {
		o.api.Cluster = func(owners bool) cluster.View {
			v := *view
			if !owners {
				v.Owners = nil
			}
			return v
		}
	}
	return newEnv(t, o), f
}

// Error replies become the statuses and codes of the same failures on
// one node; a cluster that cannot answer yet is 503 with Retry-After.
func TestClusterErrorReplies(t *testing.T) {
	for _, tc := range []struct {
		reply, code string
		status      int
		retry       bool
	}{
		{"-OOM command not allowed when used memory > 'maxmemory'\r\n", "oom", 507, false},
		{"-OUTOFSEQ out of sequence: sequence 4 is lower than map \"m\"'s current 5\r\n", "out_of_sequence", 409, false},
		{"-MAPFULL map is full: map \"m\" holds 2 keys, the limit is 2\r\n", "map_full", 422, false},
		{"-TRYAGAIN partition 7 is moving\r\n", "try_again", 503, true},
		{"-CLUSTERDOWN no contact with the cluster majority\r\n", "cluster_down", 503, true},
		{"-CROSSSLOT Keys in request don't hash to the same slot\r\n", "cross_slot", 400, false},
		{"-ERR key too long: 5 bytes, the limit is 4\r\n", "key_too_long", 413, false},
		{"-ERR value too large: 5 bytes, the limit is 4\r\n", "value_too_large", 413, false},
		{"-ERR too many maps: 10 maps exist, the limit is 10\r\n", "too_many_maps", 422, false},
		{"-ERR value is not an integer or out of range\r\n", "not_integer", 409, false},
		{"-ERR increment or decrement would overflow\r\n", "overflow", 409, false},
		{"-ERR something unexpected\r\n", "internal", 500, false},
		{"-WEIRD reply\r\n", "internal", 500, false},
		{"not RESP", "internal", 500, false},
	} {
		t.Run(tc.code+" "+tc.reply[:min(len(tc.reply), 12)], func(t *testing.T) {
			e, _ := newFakeEnv(t, tc.reply, nil)
			r := e.do("POST", "/v1/maps/m/incr/k", nil)
			r.wantError(t, tc.status, tc.code)
			if got := r.header.Get("Retry-After"); (got != "") != tc.retry {
				t.Fatalf("Retry-After %q, want one: %v", got, tc.retry)
			}
		})
	}
}

// Each route runs the command that does the same thing, with the
// request's ack and consistency.
func TestClusterCommands(t *testing.T) {
	ok, one, null := "+OK\r\n", ":1\r\n", "$-1\r\n"
	for _, tc := range []struct {
		method, path, body, reply string
		want                      []string // the commands run
		opt                       ExecOptions
	}{
		{"PUT", "/v1/maps/m/keys/a%2Fb?ttl=5&nx&ack=primary", "v", ok, []string{"SET a/b v PX 5000 NX"}, ExecOptions{Ack: cluster.AckPrimary}},
		{"PUT", "/v1/maps/m/keys/k?ttl_ms=1500&keepttl=0&xx", "v", ok, []string{"SET k v PX 1500 XX"}, ExecOptions{}},
		{"PUT", "/v1/maps/m/keys/k?ack=none", "v", null, []string{"SET k v GET"}, ExecOptions{Ack: cluster.AckNone}},
		{"PUT", "/v1/maps/m/keys/k?seq=7&ttl=1", "v", ":0\r\n", []string{"EXISTS k", "SETSEQ 7 k v PX 1000"}, ExecOptions{}},
		{"GET", "/v1/maps/m/keys/k?consistent=false", "", null, []string{"GET k"}, ExecOptions{Eventual: true}},
		{"GET", "/v1/maps/m/keys/k?consistent=true", "", null, []string{"GET k"}, ExecOptions{}},
		{"HEAD", "/v1/maps/m/keys/k", "", ":-2\r\n", []string{"PTTL k"}, ExecOptions{}},
		{"GET", "/v1/maps/m/exists/k", "", one, []string{"EXISTS k"}, ExecOptions{}},
		{"DELETE", "/v1/maps/m/keys/k?seq=3", "", one, []string{"DELSEQ 3 k"}, ExecOptions{}},
		{"DELETE", "/v1/maps/m/keys/k", "", one, []string{"DEL k"}, ExecOptions{}},
		{"POST", "/v1/maps/m/expire/k?ttl=2", "", one, []string{"PEXPIRE k 2000"}, ExecOptions{}},
		{"POST", "/v1/maps/m/expire/k?at_ms=1700000009000", "", one, []string{"PEXPIREAT k 1700000009000"}, ExecOptions{}},
		{"POST", "/v1/maps/m/persist/k", "", ":0\r\n", []string{"PERSIST k", "EXISTS k"}, ExecOptions{}},
		{"POST", "/v1/maps/m/incr/k?by=-3", "", one, []string{"INCRBY k -3"}, ExecOptions{}},
		{"POST", "/v1/maps/m/put_all?ttl=60", `{"items":[{"key":"a","value":"1"},{"key":"b","value":"2"}]}`, ":2\r\n",
			[]string{"PUTALL 60 a 1 b 2"}, ExecOptions{}},
		{"POST", "/v1/maps/m/put_all?seq=4", `{"items":[{"key":"a","value":"1"}]}`, one, []string{"PUTALLSEQ 4 0 a 1"}, ExecOptions{}},
		{"POST", "/v1/maps/m/put_all?ttl_ms=1500&nx", `{"items":[{"key":"a","value":"1"},{"key":"b","value":"2"}]}`, ok,
			[]string{"SET a 1 PX 1500 NX", "SET b 2 PX 1500 NX"}, ExecOptions{}},
		{"POST", "/v1/maps/m/put_all", `{"items":[]}`, ok, nil, ExecOptions{}},
		{"POST", "/v1/maps/m/get_all?consistent=false", `{"keys":["a","b"]}`, "*2\r\n*0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n", []string{"GETALL a b"}, ExecOptions{Eventual: true}},
		{"POST", "/v1/maps/m/remove_items?seq=9", `{"keys":["a"]}`, "*0\r\n", []string{"REMOVEITEMSSEQ 9 a"}, ExecOptions{}},
		{"GET", "/v1/maps/m/keys?cursor=5&count=7&match=a*", "", "*2\r\n$1\r\n0\r\n*0\r\n", []string{"SCAN 5 MATCH a* COUNT 7"}, ExecOptions{}},
		{"POST", "/v1/maps/m/evict_since?age=60", "", ":0\r\n", []string{"EVICTSINCE 60"}, ExecOptions{}},
		{"DELETE", "/v1/maps/m?ack=primary", "", ok, []string{"CLEAR"}, ExecOptions{Ack: cluster.AckPrimary}},
		{"POST", "/v1/flush?silent", "", ok, []string{"FLUSH SILENT"}, ExecOptions{}},
		{"GET", "/v1/maps", "", "*0\r\n", []string{"MAPS"}, ExecOptions{}},
		{"GET", "/v1/cache_size", "", "*0\r\n", []string{"CACHESIZE"}, ExecOptions{}},
		{"GET", "/v1/sequences", "", "*0\r\n", []string{"SEQUENCES"}, ExecOptions{}},
		{"GET", "/v1/maps/m/sequence", "", null, []string{"SEQUENCE"}, ExecOptions{}},
		{"PUT", "/v1/maps/m/max_ttl", `{"max_ttl":30}`, ok, []string{"SETMAXTTL 30"}, ExecOptions{}},
		{"PUT", "/v1/maps/m/max_keys", `{"max_keys":3}`, ok, []string{"SETMAXKEYS 3"}, ExecOptions{}},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e, f := newFakeEnv(t, tc.reply, nil)
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := e.do(tc.method, tc.path, body)
			if r.status >= 400 && r.status != 404 { // 404: the fake's null or 0
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var got []string
			for _, c := range f.calls {
				got = append(got, c.args)
				if c.o != tc.opt {
					t.Errorf("%s ran with %+v, want %+v", c.args, c.o, tc.opt)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ran %q, want %q", got, tc.want)
			}
		})
	}
}

// Requests the cluster's commands cannot express are refused before any
// command runs, as is bad input.
func TestClusterRefusals(t *testing.T) {
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/maps/m/keys/k?seq=1&nx", "v"},
		{"PUT", "/v1/maps/m/keys/k?seq=1&keepttl", "v"},
		{"PUT", "/v1/maps/m/keys/k?seq=9223372036854775808", "v"},
		{"POST", "/v1/maps/m/put_all?seq=1&ttl_ms=1500", `{"items":[{"key":"a","value":"1"}]}`},
		{"POST", "/v1/maps/m/put_all?seq=1&xx", `{"items":[{"key":"a","value":"1"}]}`},
		{"PUT", "/v1/maps/m/keys/k?ack=some", "v"},
		{"GET", "/v1/maps/m/keys/k?consistent=maybe", ""},
		{"GET", "/v1/maps/m/keys/k?ack=all", ""}, // ack is for writes
		{"PUT", "/v1/maps/m/keys/k?consistent=false", "v"},
		{"GET", "/v1/maps/%00seq/keys/m", ""}, // the cluster's internal maps
		{"PUT", "/v1/maps/%00seq/max_ttl", `{"max_ttl":1}`},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e, f := newFakeEnv(t, "+OK\r\n", nil)
			e.do(tc.method, tc.path, []byte(tc.body)).wantError(t, 400, "bad_request")
			if len(f.calls) != 0 {
				t.Fatalf("refused request ran %+v", f.calls)
			}
		})
	}
	// A standalone node checks ack and consistent too.
	e := newEnv(t, envOpts{})
	e.do("PUT", "/v1/maps/m/keys/k?ack=some", []byte("v")).wantError(t, 400, "bad_request")
	e.do("PUT", "/v1/maps/m/keys/k?ack=none", []byte("v")).want(t, 200)
	e.do("GET", "/v1/maps/m/keys/k?consistent=false", nil).want(t, 200)
}

// Replies are read back into the standalone path's JSON.
func TestClusterReplies(t *testing.T) {
	e, _ := newFakeEnv(t, "*2\r\n*4\r\n$1\r\nb\r\n$2\r\nvb\r\n$1\r\na\r\n$2\r\nva\r\n*1\r\n$1\r\nc\r\n", nil)
	r := e.do("POST", "/v1/maps/m/get_all", []byte(`{"keys":["a","c","b","a"]}`)).want(t, 200)
	want := `{"encoding":"utf8","found":[{"key":"a","value":"va"},{"key":"b","value":"vb"},{"key":"a","value":"va"}],"misses":["c"]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Fatalf("get_all:\n got %s\nwant %s", got, want)
	}
	e, _ = newFakeEnv(t, "*2\r\n*3\r\n$1\r\nm\r\n:3\r\n:30\r\n*3\r\n$1\r\nn\r\n:1\r\n:10\r\n", nil)
	r = e.do("GET", "/v1/cache_size", nil).want(t, 200)
	if v := r.json(t); v["records"] != 4.0 || v["bytes"] != 40.0 || len(v["maps"].([]any)) != 2 {
		t.Fatalf("cache_size: %s", r.body)
	}
	e, _ = newFakeEnv(t, "*4\r\n$1\r\nz\r\n:2\r\n$1\r\na\r\n:9\r\n", nil)
	r = e.do("GET", "/v1/sequences", nil).want(t, 200)
	if got := strings.TrimSpace(string(r.body)); got != `{"encoding":"utf8","sequences":[{"map":"a","sequence":9},{"map":"z","sequence":2}]}` {
		t.Fatalf("sequences: %s", got)
	}
	e, _ = newFakeEnv(t, "$5\r\nhello\r\n", nil)
	r = e.do("PUT", "/v1/maps/m/keys/k", []byte("v")).want(t, 200)
	if v := r.json(t); v["existed"] != true || v["written"] != true {
		t.Fatalf("put over a value: %s", r.body)
	}
}

func TestClusterViewAndHealth(t *testing.T) {
	view := cluster.View{State: "ok", Epoch: 3, MyID: "n0-abc", Partitions: 2, Replicas: 2,
		Members: []cluster.MemberView{{ID: "n0-abc", Role: "data", Alive: true}}, Owners: [][]string{{"n0-abc"}, {"n0-abc"}}}
	e, _ := newFakeEnv(t, "", &view)
	v := e.do("GET", "/v1/cluster", nil).want(t, 200).json(t)
	if v["my_id"] != "n0-abc" || v["epoch"] != 3.0 || len(v["owners"].([]any)) != 2 {
		t.Fatalf("/v1/cluster: %v", v)
	}
	if v := e.do("GET", "/v1/cluster?owners=false", nil).want(t, 200).json(t); v["owners"] != nil {
		t.Fatalf("/v1/cluster?owners=false: %v", v)
	}
	if r := e.do("GET", "/healthz", nil).want(t, 200); string(r.body) != "ok\n" {
		t.Fatalf("healthz: %q", r.body)
	}
	view.State, view.Reason = "fail", "no contact with the control plane's leader for 2s"
	r := e.do("GET", "/healthz", nil)
	if r.status != 503 || string(r.body) != "fail: no contact with the control plane's leader for 2s\n" || r.header.Get("Retry-After") == "" {
		t.Fatalf("healthz when failing: %d %q %v", r.status, r.body, r.header)
	}
	// A standalone node has no cluster to show.
	s := newEnv(t, envOpts{})
	s.do("GET", "/v1/cluster", nil).wantError(t, 404, "not_found")
}
