package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/engramdb/engram/internal/store"
)

// TestRefusedInputChangesNothing sends each kind of bad or refused request
// against a store with data, sequences and settings in it, and checks the
// status and error code and that the store is exactly as before.
func TestRefusedInputChangesNothing(t *testing.T) {
	e := newEnv(t, envOpts{
		store: store.Options{MaxKeyLen: 32, MaxValueLen: 1024, MaxMaps: 2},
		api:   Options{MaxBodyBytes: 4096},
	})
	e.do("PUT", keyPath("m", "k")+"?seq=10&ttl=100", []byte("v")).want(t, 200)
	e.do("PUT", keyPath("m", "n"), []byte("not a number")).want(t, 200)
	e.do("PUT", keyPath("m", "big"), []byte("9223372036854775807")).want(t, 200)
	e.do("PUT", keyPath("full", "a"), []byte("1")).want(t, 200)
	e.do("PUT", keyPath("full", "b"), []byte("2")).want(t, 200)
	e.do("PUT", "/v1/maps/full/max_keys", []byte(`{"max_keys":2}`)).want(t, 200)
	e.do("PUT", "/v1/maps/m/max_ttl", []byte(`{"max_ttl":3600}`)).want(t, 200)

	longKey := strings.Repeat("k", 33)
	items := func(kvs ...string) []byte {
		var list []map[string]string
		for i := 0; i+1 < len(kvs); i += 2 {
			list = append(list, map[string]string{"key": kvs[i], "value": kvs[i+1]})
		}
		return mustJSON(t, map[string]any{"items": list})
	}
	k := keyPath("m", "k")
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		code               string
	}{
		{"ttl not a number", "PUT", k + "?ttl=abc", []byte("x"), 400, "bad_request"},
		{"ttl zero", "PUT", k + "?ttl=0", []byte("x"), 400, "bad_request"},
		{"ttl negative", "PUT", k + "?ttl=-5", []byte("x"), 400, "bad_request"},
		{"ttl overflows", "PUT", k + "?ttl=9223372036854775", []byte("x"), 400, "bad_request"},
		{"ttl_ms not a number", "PUT", k + "?ttl_ms=1.5", []byte("x"), 400, "bad_request"},
		{"ttl and ttl_ms", "PUT", k + "?ttl=1&ttl_ms=1000", []byte("x"), 400, "bad_request"},
		{"at_ms on put", "PUT", k + "?at_ms=1", []byte("x"), 400, "bad_request"},
		{"keepttl and ttl", "PUT", k + "?keepttl&ttl=5", []byte("x"), 400, "bad_request"},
		{"nx and xx", "PUT", k + "?nx&xx", []byte("x"), 400, "bad_request"},
		{"bad flag", "PUT", k + "?nx=maybe", []byte("x"), 400, "bad_request"},
		{"seq negative", "PUT", k + "?seq=-1", []byte("x"), 400, "bad_request"},
		{"seq not a number", "PUT", k + "?seq=ten&ttl=5", []byte("x"), 400, "bad_request"},
		{"unknown parameter", "PUT", k + "?tll=5", []byte("x"), 400, "bad_request"},
		{"repeated parameter", "PUT", k + "?ttl=5&ttl=6", []byte("x"), 400, "bad_request"},
		{"bad query escape", "PUT", k + "?ttl=%zz", []byte("x"), 400, "bad_request"},
		{"bad ttl with good seq", "PUT", k + "?seq=99&ttl=x", []byte("x"), 400, "bad_request"},
		{"out of sequence put", "PUT", k + "?seq=9", []byte("x"), 409, "out_of_sequence"},
		{"out of sequence delete", "DELETE", k + "?seq=9", nil, 409, "out_of_sequence"},
		{"out of sequence put_all", "POST", "/v1/maps/m/put_all?seq=3", items("k", "x"), 409, "out_of_sequence"},
		{"out of sequence remove_items", "POST", "/v1/maps/m/remove_items?seq=3", []byte(`{"keys":["k"]}`), 409, "out_of_sequence"},
		{"key too long", "PUT", keyPath("m", longKey), []byte("x"), 413, "key_too_long"},
		{"key too long with seq", "PUT", keyPath("m", longKey) + "?seq=50", []byte("x"), 413, "key_too_long"},
		{"key too long in a new map", "PUT", keyPath("newmap", longKey), []byte("x"), 413, "key_too_long"},
		{"value too large", "PUT", k, bytes.Repeat([]byte("v"), 1025), 413, "value_too_large"},
		{"body too large", "PUT", k, bytes.Repeat([]byte("v"), 4097), 413, "body_too_large"},
		{"put_all key too long", "POST", "/v1/maps/m/put_all", items("ok", "1", longKey, "2"), 413, "key_too_long"},
		{"put_all value too large", "POST", "/v1/maps/m/put_all", items("ok", "1", "k2", strings.Repeat("v", 1025)), 413, "value_too_large"},
		{"put_all value too large with seq", "POST", "/v1/maps/m/put_all?seq=50", items("ok", "1", "k2", strings.Repeat("v", 1025)), 413, "value_too_large"},
		{"too many maps", "PUT", keyPath("third", "k"), []byte("x"), 422, "too_many_maps"},
		{"too many maps with seq", "DELETE", keyPath("third", "k") + "?seq=1", nil, 422, "too_many_maps"},
		{"too many maps put_all", "POST", "/v1/maps/third/put_all", items("a", "b"), 422, "too_many_maps"},
		{"too many maps setting", "PUT", "/v1/maps/third/max_ttl", []byte(`{"max_ttl":5}`), 422, "too_many_maps"},
		{"map full", "PUT", keyPath("full", "c"), []byte("3"), 422, "map_full"},
		{"put_all map full", "POST", "/v1/maps/full/put_all", items("c", "3"), 422, "map_full"},
		{"incr not an integer", "POST", "/v1/maps/m/incr/n", nil, 409, "not_integer"},
		{"incr overflow", "POST", "/v1/maps/m/incr/big", nil, 409, "overflow"},
		{"incr bad by", "POST", "/v1/maps/m/incr/big?by=x", nil, 400, "bad_request"},
		{"incr key too long", "POST", "/v1/maps/m/incr/" + longKey, nil, 413, "key_too_long"},
		{"put_all bad json", "POST", "/v1/maps/m/put_all", []byte(`{"items":[{"key":"a","value":"b"}`), 400, "bad_request"},
		{"put_all not json", "POST", "/v1/maps/m/put_all", []byte(`hello`), 400, "bad_request"},
		{"put_all unknown field", "POST", "/v1/maps/m/put_all", []byte(`{"items":[],"ttl":5}`), 400, "bad_request"},
		{"put_all unknown item field", "POST", "/v1/maps/m/put_all", []byte(`{"items":[{"key":"a","value":"b","ttl":1}]}`), 400, "bad_request"},
		{"put_all value not a string", "POST", "/v1/maps/m/put_all", []byte(`{"items":[{"key":"a","value":1}]}`), 400, "bad_request"},
		{"put_all missing value", "POST", "/v1/maps/m/put_all", []byte(`{"items":[{"key":"a"}]}`), 400, "bad_request"},
		{"put_all bad base64", "POST", "/v1/maps/m/put_all", []byte(`{"encoding":"base64","items":[{"key":"YQ==","value":"!!"}]}`), 400, "bad_request"},
		{"put_all bad encoding", "POST", "/v1/maps/m/put_all", []byte(`{"encoding":"hex","items":[]}`), 400, "bad_request"},
		{"put_all trailing data", "POST", "/v1/maps/m/put_all", []byte(`{"items":[]} {}`), 400, "bad_request"},
		{"put_all invalid utf-8", "POST", "/v1/maps/m/put_all", []byte("{\"items\":[{\"key\":\"a\xff\",\"value\":\"b\"}]}"), 400, "bad_request"},
		{"put_all bad ttl", "POST", "/v1/maps/m/put_all?ttl=-1", items("z", "1"), 400, "bad_request"},
		{"put_all body too large", "POST", "/v1/maps/m/put_all", items("z", strings.Repeat("v", 5000)), 413, "body_too_large"},
		{"remove_items keys not strings", "POST", "/v1/maps/m/remove_items", []byte(`{"keys":[1]}`), 400, "bad_request"},
		{"remove_items no keys field", "POST", "/v1/maps/m/remove_items", []byte(`{}`), 400, "bad_request"},
		{"get_all bad encoding param", "POST", "/v1/maps/m/get_all?encoding=hex", []byte(`{"keys":["k"]}`), 400, "bad_request"},
		{"expire bad ttl", "POST", "/v1/maps/m/expire/k?ttl=0", nil, 400, "bad_request"},
		{"expire two times", "POST", "/v1/maps/m/expire/k?ttl=1&at_ms=5", nil, 400, "bad_request"},
		{"evict_since without age", "POST", "/v1/maps/m/evict_since", nil, 400, "bad_request"},
		{"evict_since negative age", "POST", "/v1/maps/m/evict_since?age=-1", nil, 400, "bad_request"},
		{"clear bad flag", "DELETE", "/v1/maps/m?silent=perhaps", nil, 400, "bad_request"},
		{"flush bad flag", "POST", "/v1/flush?silent=2", nil, 400, "bad_request"},
		{"max_ttl negative", "PUT", "/v1/maps/m/max_ttl", []byte(`{"max_ttl":-1}`), 400, "bad_request"},
		{"max_ttl not a number", "PUT", "/v1/maps/m/max_ttl", []byte(`{"max_ttl":"x"}`), 400, "bad_request"},
		{"max_ttl wrong field", "PUT", "/v1/maps/m/max_ttl", []byte(`{"max_keys":5}`), 400, "bad_request"},
		{"max_keys fraction", "PUT", "/v1/maps/m/max_keys", []byte(`{"max_keys":1.5}`), 400, "bad_request"},
		{"max_ttl on a new map", "PUT", "/v1/maps/other/max_ttl", []byte(`{"max_ttl":-3}`), 400, "bad_request"},
		{"config bad policy", "PATCH", "/v1/config", []byte(`{"max_memory":"100mb","policy":"lru-please"}`), 400, "bad_request"},
		{"config bad size", "PATCH", "/v1/config", []byte(`{"max_memory":"lots","policy":"allkeys-lru"}`), 400, "bad_request"},
		{"config negative size", "PATCH", "/v1/config", []byte(`{"max_memory":-1}`), 400, "bad_request"},
		{"config empty", "PATCH", "/v1/config", []byte(`{}`), 400, "bad_request"},
		{"config unknown field", "PATCH", "/v1/config", []byte(`{"maxmemory":5}`), 400, "bad_request"},
		{"scan bad cursor", "GET", "/v1/maps/m/keys?cursor=100000", nil, 400, "bad_request"},
		{"scan bad count", "GET", "/v1/maps/m/keys?count=0", nil, 400, "bad_request"},
		{"get with parameters", "GET", k + "?x=1", nil, 400, "bad_request"},
		{"bad path", "PUT", "/v1/maps/m/keys/a//b", []byte("x"), 400, "bad_path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := takeSnapshot(e.st)
			e.do(tc.method, tc.path, tc.body).wantError(t, tc.status, tc.code)
			unchanged(t, e.st, before)
		})
	}
}

func TestOOM(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("PUT", keyPath("m", "k"), []byte("v")).want(t, 200)
	e.do("PATCH", "/v1/config", []byte(`{"max_memory":60,"policy":"noeviction"}`)).want(t, 200)
	before := takeSnapshot(e.st)
	e.do("PUT", keyPath("m", "k2"), bytes.Repeat([]byte("v"), 200)).wantError(t, 507, "oom")
	e.do("POST", "/v1/maps/m/put_all", []byte(`{"items":[{"key":"a","value":"b"}]}`)).wantError(t, 507, "oom")
	unchanged(t, e.st, before)
	// Reads and deletes still work.
	e.do("GET", keyPath("m", "k"), nil).want(t, 200)
	e.do("DELETE", keyPath("m", "k"), nil).want(t, 200)
}

func TestSequences(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.do("GET", "/v1/maps/m/sequence", nil).want(t, 200).json(t)
	if s["sequence"] != 0.0 || s["has_sequence"] != false {
		t.Fatalf("fresh sequence: %v", s)
	}
	e.do("PUT", keyPath("m", "k")+"?seq=5", []byte("a")).want(t, 200)
	e.do("PUT", keyPath("m", "k")+"?seq=5", []byte("b")).want(t, 200) // equal is not lower
	e.do("PUT", keyPath("m", "k")+"?seq=4", []byte("c")).wantError(t, 409, "out_of_sequence")
	if g := e.do("GET", keyPath("m", "k"), nil).want(t, 200); string(g.body) != "b" {
		t.Fatalf("value %q after refused write", g.body)
	}
	e.do("DELETE", keyPath("m", "k")+"?seq=4", nil).wantError(t, 409, "out_of_sequence")
	e.do("GET", keyPath("m", "k"), nil).want(t, 200)
	// A sequence-checked delete of a key in a map never written records
	// the sequence.
	e.do("DELETE", keyPath("other", "x")+"?seq=7", nil).want(t, 200)
	e.do("POST", "/v1/maps/m/put_all?seq=8", []byte(`{"items":[{"key":"a","value":"1"}]}`)).want(t, 200)
	e.do("POST", "/v1/maps/m/remove_items?seq=9", []byte(`{"keys":["a"]}`)).want(t, 200)
	s = e.do("GET", "/v1/maps/m/sequence", nil).want(t, 200).json(t)
	if s["sequence"] != 9.0 || s["has_sequence"] != true {
		t.Fatalf("sequence(m): %v", s)
	}
	all := e.do("GET", "/v1/sequences", nil).want(t, 200).json(t)
	want := `[map[map:m sequence:9] map[map:other sequence:7]]`
	if got := fmt.Sprint(all["sequences"]); got != want {
		t.Fatalf("sequences %s, want %s", got, want)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, envOpts{api: Options{Password: "s3cret"}, metrics: true})
	p := keyPath("m", "k")
	for _, hdr := range []string{"", "Bearer wrong", "Bearer s3cre", "Basic " + basic("u", "wrong"), "Token s3cret", "s3cret"} {
		before := takeSnapshot(e.st)
		e.auth = hdr
		r := e.do("PUT", p, []byte("v"))
		r.wantError(t, 401, "unauthorized")
		if !strings.Contains(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("401 without WWW-Authenticate: %v", r.header)
		}
		e.do("GET", "/v1/stats", nil).wantError(t, 401, "unauthorized")
		e.do("GET", "/metrics", nil).wantError(t, 401, "unauthorized")
		unchanged(t, e.st, before)
	}
	e.auth = ""
	e.do("GET", "/healthz", nil).want(t, 200) // probes need no password
	for _, hdr := range []string{"Bearer s3cret", "bearer s3cret", "Basic " + basic("anyone", "s3cret"), "Basic " + basic("", "s3cret")} {
		e.auth = hdr
		e.do("PUT", p, []byte("v")).want(t, 200)
		e.do("GET", p, nil).want(t, 200)
	}
	e.do("GET", "/metrics", nil).want(t, 200)
}

func basic(user, pw string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pw)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// A value over the store's limit is refused as value_too_large without
// being read, whether its length is declared or not.
func TestValueLimitBeforeReading(t *testing.T) {
	e := newEnv(t, envOpts{store: store.Options{MaxValueLen: 1000}})
	for _, chunked := range []bool{false, true} {
		req, err := http.NewRequest("PUT", e.srv.URL+keyPath("m", "k"), bytes.NewReader(bytes.Repeat([]byte("v"), 5000)))
		if err != nil {
			t.Fatal(err)
		}
		if chunked {
			req.ContentLength = -1
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(b), `"code":"value_too_large"`) {
			t.Fatalf("chunked=%v: %d %s", chunked, resp.StatusCode, b)
		}
	}
	e.do("PUT", keyPath("m", "k"), bytes.Repeat([]byte("v"), 1000)).want(t, 200)
}

// A body larger than the limit sent without a length (chunked) is cut off
// at the limit, never read to its end.
func TestChunkedBodyLimit(t *testing.T) {
	e := newEnv(t, envOpts{api: Options{MaxBodyBytes: 1024}})
	// The client's transport may still be sending the body after Do
	// returns, so the count is atomic.
	var sent atomic.Int64
	body := &countingReader{r: io.LimitReader(neverEnding('x'), 64<<20), n: &sent}
	req, err := http.NewRequest("PUT", e.srv.URL+keyPath("m", "k"), body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	resp, err := e.srv.Client().Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	}
	// Either way (a 413, or the connection closed under the client's
	// feet), the server stopped reading long before the end.
	if n := sent.Load(); n >= 64<<20 {
		t.Fatalf("the whole %d-byte body was read", n)
	}
	if _, ok := e.st.Lookup([]byte("m")); ok {
		if m, _ := e.st.Lookup([]byte("m")); m.Len() != 0 {
			t.Fatal("a cut-off body was stored")
		}
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
