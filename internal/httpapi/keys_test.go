package httpapi

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

// Keys and map names that must survive the URL unchanged.
var awkwardNames = []struct{ name, m, k string }{
	{"plain", "m", "k"},
	{"slash", "m", "a/b"},
	{"double slash", "m", "a//b/"},
	{"dot segments", "m", "../x/./y/.."},
	{"space", "my map", "hello world"},
	{"unicode", "カード", "ünïcødé ✓ 🎉"},
	{"arbitrary bytes", "m\x00\xff", "\x00\x01\xfe\xff\r\n"},
	{"url syntax", "m?x=1#f", "%2F?a=b&c#d+e"},
	{"empty key", "m", ""},
}

func TestKeyRoundTrip(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range awkwardNames {
		t.Run(tc.name, func(t *testing.T) {
			val := []byte("value of " + tc.k + "\x00\xff")
			p := keyPath(tc.m, tc.k)
			r := e.do("PUT", p, val).want(t, 200).json(t)
			if r["written"] != true || r["existed"] != false {
				t.Fatalf("put: %v", r)
			}
			// The store holds exactly these bytes under exactly this key.
			m, ok := e.st.Lookup([]byte(tc.m))
			if !ok {
				t.Fatalf("map %q not created", tc.m)
			}
			if got, ok := m.Get(nil, []byte(tc.k)); !ok || !bytes.Equal(got, val) {
				t.Fatalf("store has %q, %v", got, ok)
			}
			g := e.do("GET", p, nil).want(t, 200)
			if !bytes.Equal(g.body, val) {
				t.Fatalf("GET body %q, want %q", g.body, val)
			}
			if ct := g.header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Fatalf("content type %q", ct)
			}
			if g.header.Get("Engram-Ttl-Ms") != "-1" {
				t.Fatalf("ttl header %q, want -1", g.header.Get("Engram-Ttl-Ms"))
			}
			if h := e.do("HEAD", p, nil); h.status != 200 || len(h.body) != 0 {
				t.Fatalf("HEAD: %d %q", h.status, h.body)
			}
			ex := e.do("GET", "/v1/maps/"+esc(tc.m)+"/exists/"+esc(tc.k), nil).want(t, 200).json(t)
			if ex["exists"] != true {
				t.Fatalf("exists: %v", ex)
			}
			if d := e.do("DELETE", p, nil).want(t, 200).json(t); d["deleted"] != true {
				t.Fatalf("delete: %v", d)
			}
			e.do("GET", p, nil).wantError(t, 404, "not_found")
			if h := e.do("HEAD", p, nil); h.status != 404 || len(h.body) != 0 {
				t.Fatalf("HEAD after delete: %d %q", h.status, h.body)
			}
			if d := e.do("DELETE", p, nil).want(t, 200).json(t); d["deleted"] != false {
				t.Fatalf("second delete: %v", d)
			}
		})
	}
}

// Go's url.PathEscape (and encodeURIComponent, quote(safe="")) encode
// enough: what a client library does must work, not only esc.
func TestPathEscapeClients(t *testing.T) {
	e := newEnv(t, envOpts{})
	k := "dir/sub dir/ü?#%"
	e.do("PUT", "/v1/maps/m/keys/"+url.PathEscape(k), []byte("v")).want(t, 200)
	if _, ok := e.st.Map("m").Get(nil, []byte(k)); !ok {
		t.Fatal("key not stored under its decoded name")
	}
	// An unencoded '/' inside a key is fine as long as no segment is
	// empty or a dot segment.
	e.do("PUT", "/v1/maps/m/keys/a/b/c", []byte("v")).want(t, 200)
	if _, ok := e.st.Map("m").Get(nil, []byte("a/b/c")); !ok {
		t.Fatal("key a/b/c not stored")
	}
}

func TestBadPathsAreRefusedNotRedirected(t *testing.T) {
	e := newEnv(t, envOpts{})
	before := takeSnapshot(e.st)
	for _, p := range []string{"/v1/maps/m/keys/a//b", "/v1/maps/m/keys/../x", "/v1/maps/m/keys/./x", "/v1/maps//keys/x", "/v1/maps/m/keys/x/.."} {
		// A client following a redirect would write another key.
		e.do("PUT", p, []byte("v")).wantError(t, 400, "bad_path")
	}
	unchanged(t, e.st, before)
}

func TestLargeValue(t *testing.T) {
	e := newEnv(t, envOpts{})
	val := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 300_000) // ~5.4 MB
	e.do("PUT", keyPath("m", "big"), val).want(t, 200)
	g := e.do("GET", keyPath("m", "big"), nil).want(t, 200)
	if !bytes.Equal(g.body, val) {
		t.Fatalf("got %d bytes back, want %d", len(g.body), len(val))
	}
	if g.header.Get("Content-Length") != "5400000" {
		t.Fatalf("content length %q", g.header.Get("Content-Length"))
	}
}

func TestConditionalWrites(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := keyPath("m", "k")
	r := e.do("PUT", p+"?xx", []byte("1")).want(t, 200).json(t)
	if r["written"] != false {
		t.Fatalf("xx on missing key wrote: %v", r)
	}
	e.do("GET", p, nil).wantError(t, 404, "not_found")
	r = e.do("PUT", p+"?nx=true", []byte("1")).want(t, 200).json(t)
	if r["written"] != true {
		t.Fatalf("nx on missing key: %v", r)
	}
	r = e.do("PUT", p+"?nx", []byte("2")).want(t, 200).json(t)
	if r["written"] != false || r["existed"] != true {
		t.Fatalf("nx on present key: %v", r)
	}
	r = e.do("PUT", p+"?xx=1", []byte("3")).want(t, 200).json(t)
	if r["written"] != true || r["existed"] != true {
		t.Fatalf("xx on present key: %v", r)
	}
	if g := e.do("GET", p, nil).want(t, 200); string(g.body) != "3" {
		t.Fatalf("value %q, want 3", g.body)
	}
}

func TestTTLWithManualClock(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := keyPath("m", "k")
	e.do("PUT", p+"?ttl=10", []byte("v")).want(t, 200)
	g := e.do("GET", p, nil).want(t, 200)
	if g.header.Get("Engram-Ttl-Ms") != "10000" || g.header.Get("Engram-Expire-At") != "1700000010000" {
		t.Fatalf("ttl headers %q %q", g.header.Get("Engram-Ttl-Ms"), g.header.Get("Engram-Expire-At"))
	}
	tt := e.do("GET", "/v1/maps/m/ttl/k", nil).want(t, 200).json(t)
	if tt["ttl_ms"] != 10000.0 || tt["ttl"] != 10.0 {
		t.Fatalf("ttl: %v", tt)
	}
	e.clk.Add(9999)
	if h := e.do("HEAD", p, nil); h.status != 200 || h.header.Get("Engram-Ttl-Ms") != "1" {
		t.Fatalf("HEAD 1ms before expiry: %d %q", h.status, h.header.Get("Engram-Ttl-Ms"))
	}
	e.clk.Add(1)
	e.do("GET", p, nil).wantError(t, 404, "not_found")
	e.do("GET", "/v1/maps/m/ttl/k", nil).wantError(t, 404, "not_found")

	// Millisecond precision.
	e.do("PUT", p+"?ttl_ms=1500", []byte("v")).want(t, 200)
	tt = e.do("GET", "/v1/maps/m/ttl/k", nil).want(t, 200).json(t)
	if tt["ttl_ms"] != 1500.0 || tt["ttl"] != 2.0 {
		t.Fatalf("ttl_ms: %v", tt)
	}
	// keepttl keeps it; a plain overwrite drops it.
	e.clk.Add(500)
	e.do("PUT", p+"?keepttl", []byte("w")).want(t, 200)
	if tt = e.do("GET", "/v1/maps/m/ttl/k", nil).want(t, 200).json(t); tt["ttl_ms"] != 1000.0 {
		t.Fatalf("after keepttl: %v", tt)
	}
	e.do("PUT", p, []byte("x")).want(t, 200)
	if tt = e.do("GET", "/v1/maps/m/ttl/k", nil).want(t, 200).json(t); tt["ttl_ms"] != -1.0 || tt["ttl"] != -1.0 {
		t.Fatalf("after plain put: %v", tt)
	}
}

func TestExpireAndPersist(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("POST", "/v1/maps/m/expire/k?ttl=5", nil).wantError(t, 404, "not_found")
	e.do("PUT", keyPath("m", "k"), []byte("v")).want(t, 200)
	r := e.do("POST", "/v1/maps/m/expire/k?ttl=5", nil).want(t, 200).json(t)
	if r["updated"] != true || r["ttl_ms"] != 5000.0 {
		t.Fatalf("expire: %v", r)
	}
	if p := e.do("POST", "/v1/maps/m/persist/k", nil).want(t, 200).json(t); p["updated"] != true {
		t.Fatalf("persist: %v", p)
	}
	if p := e.do("POST", "/v1/maps/m/persist/k", nil).want(t, 200).json(t); p["updated"] != false {
		t.Fatalf("second persist: %v", p)
	}
	e.clk.Add(10_000)
	e.do("GET", keyPath("m", "k"), nil).want(t, 200) // persisted: still there
	e.do("POST", "/v1/maps/m/expire/k?ttl_ms=250", nil).want(t, 200)
	e.clk.Add(250)
	e.do("GET", keyPath("m", "k"), nil).wantError(t, 404, "not_found")

	// An absolute time in the past deletes the key, as PEXPIREAT does.
	e.do("PUT", keyPath("m", "k"), []byte("v")).want(t, 200)
	r = e.do("POST", "/v1/maps/m/expire/k?at_ms=1000", nil).want(t, 200).json(t)
	if r["ttl_ms"] != -2.0 {
		t.Fatalf("expire in the past: %v", r)
	}
	e.do("GET", keyPath("m", "k"), nil).wantError(t, 404, "not_found")
	e.do("POST", "/v1/maps/m/persist/k", nil).wantError(t, 404, "not_found")
	e.do("POST", "/v1/maps/m/expire/k", nil).wantError(t, 400, "bad_request")
}

func TestMapMaxTTL(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("PUT", "/v1/maps/m/max_ttl", []byte(`{"max_ttl": 10}`)).want(t, 200)
	e.do("PUT", keyPath("m", "k"), []byte("v")).want(t, 200)
	if g := e.do("GET", "/v1/maps/m/max_ttl", nil).want(t, 200).json(t); g["max_ttl"] != 10.0 {
		t.Fatalf("max_ttl: %v", g)
	}
	l := e.do("GET", "/v1/max_ttls", nil).want(t, 200).json(t)
	if got := l["max_ttls"].([]any); len(got) != 1 || got[0].(map[string]any)["map"] != "m" || got[0].(map[string]any)["max_ttl"] != 10.0 {
		t.Fatalf("max_ttls: %v", l)
	}
	e.clk.Add(11_000)
	e.do("GET", keyPath("m", "k"), nil).wantError(t, 404, "not_found")
	e.do("PUT", "/v1/maps/m/max_ttl", []byte(`{"max_ttl": 0}`)).want(t, 200)
	if l = e.do("GET", "/v1/max_ttls", nil).want(t, 200).json(t); len(l["max_ttls"].([]any)) != 0 {
		t.Fatalf("max_ttls after removal: %v", l)
	}
}

func TestIncr(t *testing.T) {
	e := newEnv(t, envOpts{})
	steps := []struct {
		q    string
		want float64
	}{{"", 1}, {"?by=5", 6}, {"?by=-10", -4}}
	for _, s := range steps {
		r := e.do("POST", "/v1/maps/m/incr/n"+s.q, nil).want(t, 200).json(t)
		if r["value"] != s.want {
			t.Fatalf("incr%s = %v, want %v", s.q, r["value"], s.want)
		}
	}
	if g := e.do("GET", keyPath("m", "n"), nil).want(t, 200); string(g.body) != "-4" {
		t.Fatalf("stored %q", g.body)
	}
	// The TTL is kept.
	e.do("POST", "/v1/maps/m/expire/n?ttl=100", nil).want(t, 200)
	e.do("POST", "/v1/maps/m/incr/n", nil).want(t, 200)
	if tt := e.do("GET", "/v1/maps/m/ttl/n", nil).want(t, 200).json(t); tt["ttl"] != 100.0 {
		t.Fatalf("ttl after incr: %v", tt)
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.do("GET", "/healthz", nil).want(t, 200)
	if strings.TrimSpace(string(r.body)) != "ok" {
		t.Fatalf("healthz body %q", r.body)
	}
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("GET", "/v1/nope", nil).wantError(t, 404, "not_found")
	r := e.do("POST", keyPath("m", "k"), nil)
	r.wantError(t, 405, "method_not_allowed")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "PUT") || !strings.Contains(allow, "GET") {
		t.Fatalf("Allow %q", allow)
	}
	e.do("GET", "/metrics", nil).wantError(t, 404, "not_found") // no Metrics configured
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
	e := newEnv(t, envOpts{})
	if _, err := New(Options{Store: e.st, MaxBodyBytes: -1}); err == nil {
		t.Fatal("New with a negative body limit succeeded")
	}
}
