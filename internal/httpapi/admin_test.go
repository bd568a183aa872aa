package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMapsAndSizes(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("PUT", keyPath("b", "k1"), []byte("12345")).want(t, 200)
	e.do("PUT", keyPath("b", "k2"), []byte("1")).want(t, 200)
	e.do("PUT", keyPath("a", "k"), []byte("1")).want(t, 200)
	r := e.do("GET", "/v1/maps", nil).want(t, 200)
	if got := strings.TrimSpace(string(r.body)); got != `{"encoding":"utf8","maps":["a","b"]}` {
		t.Fatalf("maps: %s", got)
	}
	info := e.do("GET", "/v1/maps/b", nil).want(t, 200).json(t)
	if info["exists"] != true || info["records"] != 2.0 || info["bytes"].(float64) < 6 {
		t.Fatalf("map info: %v", info)
	}
	if ghost := e.do("GET", "/v1/maps/ghost", nil).want(t, 200).json(t); ghost["exists"] != false || ghost["records"] != 0.0 {
		t.Fatalf("missing map info: %v", ghost)
	}
	cs := e.do("GET", "/v1/cache_size", nil).want(t, 200).json(t)
	if cs["records"] != 3.0 || len(cs["maps"].([]any)) != 2 {
		t.Fatalf("cache_size: %v", cs)
	}
	first := cs["maps"].([]any)[0].(map[string]any)
	if first["map"] != "a" || first["records"] != 1.0 {
		t.Fatalf("cache_size first map: %v", first)
	}
	// Binary map names come back base64 unless all are text.
	e.do("PUT", keyPath("\xff", "k"), []byte("1")).want(t, 200)
	m := e.do("GET", "/v1/maps", nil).want(t, 200).json(t)
	if m["encoding"] != "base64" || fmt.Sprint(m["maps"]) != "[YQ== Yg== /w==]" {
		t.Fatalf("binary map names: %v", m)
	}
}

func TestMaxKeys(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("PUT", "/v1/maps/m/max_keys", []byte(`{"max_keys": 1}`)).want(t, 200)
	if g := e.do("GET", "/v1/maps/m/max_keys", nil).want(t, 200).json(t); g["max_keys"] != 1.0 {
		t.Fatalf("max_keys: %v", g)
	}
	e.do("PUT", keyPath("m", "a"), []byte("1")).want(t, 200)
	e.do("PUT", keyPath("m", "a"), []byte("2")).want(t, 200) // overwrite is fine
	e.do("PUT", keyPath("m", "b"), []byte("1")).wantError(t, 422, "map_full")
	e.do("PUT", "/v1/maps/m/max_keys", []byte(`{"max_keys": 0}`)).want(t, 200)
	e.do("PUT", keyPath("m", "b"), []byte("1")).want(t, 200)
}

func TestConfig(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.do("GET", "/v1/config", nil).want(t, 200).json(t)
	if c["max_memory"] != 0.0 || c["policy"] != "noeviction" || c["max_key_len"] != 65536.0 {
		t.Fatalf("config: %v", c)
	}
	c = e.do("PATCH", "/v1/config", []byte(`{"max_memory":"100mb","policy":"allkeys-lru"}`)).want(t, 200).json(t)
	if c["max_memory"] != float64(100<<20) || c["policy"] != "allkeys-lru" {
		t.Fatalf("patched config: %v", c)
	}
	if e.st.MaxMemory() != 100<<20 || e.st.Policy().String() != "allkeys-lru" {
		t.Fatal("store settings not changed")
	}
	c = e.do("PATCH", "/v1/config", []byte(`{"max_memory":12345}`)).want(t, 200).json(t)
	if c["max_memory"] != 12345.0 || c["policy"] != "allkeys-lru" {
		t.Fatalf("config after size-only patch: %v", c)
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("PUT", keyPath("m", "k"), []byte("v")).want(t, 200)
	e.do("GET", keyPath("m", "k"), nil).want(t, 200)
	e.do("GET", keyPath("m", "nope"), nil).wantError(t, 404, "not_found")
	s := e.do("GET", "/v1/stats", nil).want(t, 200).json(t)
	if s["keys"] != 1.0 || s["hits"] != 1.0 || s["misses"] != 1.0 || s["hit_ratio"] != 0.5 || s["policy"] != "noeviction" {
		t.Fatalf("stats: %v", s)
	}
}

func TestUpAndNodes(t *testing.T) {
	started := time.UnixMilli(t0).Add(-(26*time.Hour + 3*time.Minute + 4*time.Second))
	e := newEnv(t, envOpts{api: Options{NodeInfo: func() NodeInfo {
		return NodeInfo{ID: "n1", Version: "1.2.3", Active: []string{"n1", "n2"}, Configured: []string{"n1", "n2", "n3"}, StartedAt: started}
	}}})
	u := e.do("GET", "/v1/up", nil).want(t, 200).json(t)
	want := map[string]any{"days": 1.0, "hours": 2.0, "minutes": 3.0, "seconds": 4.0}
	if fmt.Sprint(u["uptime"]) != fmt.Sprint(want) || u["uptime_seconds"] != 93784.0 || u["id"] != "n1" || u["version"] != "1.2.3" {
		t.Fatalf("up: %v", u)
	}
	if u["up_at"] != started.UTC().Format(time.RFC3339) || u["now"] != time.UnixMilli(t0).UTC().Format(time.RFC3339) {
		t.Fatalf("up times: %v", u)
	}
	n := e.do("GET", "/v1/nodes", nil).want(t, 200).json(t)
	if fmt.Sprint(n["active"]) != "[n1 n2]" || fmt.Sprint(n["configured"]) != "[n1 n2 n3]" {
		t.Fatalf("nodes: %v", n)
	}

	// Without NodeInfo the node reports itself alone.
	e2 := newEnv(t, envOpts{})
	n = e2.do("GET", "/v1/nodes", nil).want(t, 200).json(t)
	if fmt.Sprint(n["active"]) != "[local]" || fmt.Sprint(n["configured"]) != "[local]" {
		t.Fatalf("standalone nodes: %v", n)
	}
}

func TestMetricsRoute(t *testing.T) {
	e := newEnv(t, envOpts{metrics: true})
	e.do("PUT", keyPath("m", "k"), []byte("v")).want(t, 200)
	e.do("GET", keyPath("m", "k"), nil).want(t, 200)
	e.do("GET", keyPath("m", "x"), nil).wantError(t, 404, "not_found")
	e.do("GET", "/v1/nope", nil).wantError(t, 404, "not_found")
	r := e.do("GET", "/metrics", nil).want(t, 200)
	body := string(r.body)
	for _, want := range []string{
		`engram_http_requests_total{code="200",route="GET /v1/maps/{map}/keys/{key...}"} 1`,
		`engram_http_requests_total{code="404",route="GET /v1/maps/{map}/keys/{key...}"} 1`,
		`engram_http_requests_total{code="200",route="PUT /v1/maps/{map}/keys/{key...}"} 1`,
		`engram_http_requests_total{code="404",route="unmatched"} 1`,
		`engram_http_request_seconds_count{route="PUT /v1/maps/{map}/keys/{key...}"} 1`,
		`engram_keys{map="m"} 1`,
		`engram_hits_total 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The scrape itself is counted on the next one.
	n, err := testutil.GatherAndCount(e.met.Registry(), "engram_http_requests_total")
	if err != nil || n != 5 {
		t.Fatalf("%d request series (err %v), want 5", n, err)
	}
}

// A handler panic becomes a 500 JSON error and the server keeps serving.
func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, envOpts{})
	a := &api{st: e.st, log: slog.New(slog.DiscardHandler), mux: http.NewServeMux(), clock: e.clk.Load}
	a.handle("GET /boom", func(http.ResponseWriter, *http.Request) error { panic("boom") })
	for i := 0; i < 2; i++ {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
		if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
			t.Fatalf("panic answered %d %s", rec.Code, rec.Body.String())
		}
	}
}
