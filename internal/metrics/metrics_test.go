package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/engramdb/engram/internal/store"
)

// newStore returns a store whose clock the test moves by hand.
func newStore(t *testing.T) (*store.Store, *atomic.Int64) {
	t.Helper()
	clk := new(atomic.Int64)
	clk.Store(1_700_000_000_000)
	st, err := store.New(store.Options{Partitions: 8, Clock: clk.Load, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, clk
}

func scrape(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

func mustSet(t *testing.T, m *store.Map, k, v string, o store.SetOptions) {
	t.Helper()
	if _, err := m.Set([]byte(k), []byte(v), o); err != nil {
		t.Fatal(err)
	}
}

func TestScrapeFollowsStore(t *testing.T) {
	st, clk := newStore(t)
	m := New(Sources{Store: st})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	a, b := st.Map("a"), st.Map("b")
	mustSet(t, a, "k1", "v1", store.SetOptions{})
	mustSet(t, a, "k2", "v2", store.SetOptions{ExpireAt: clk.Load() + 1000})
	mustSet(t, b, "k1", "vvvv", store.SetOptions{})
	if err := st.SetMaxMemory(1 << 30); err != nil {
		t.Fatal(err)
	}

	want := `
# HELP engram_keys Keys in a map, expired keys not yet swept included.
# TYPE engram_keys gauge
engram_keys{map="a"} 2
engram_keys{map="b"} 1
# HELP engram_memory_max_bytes The memory bound in bytes; 0 means none.
# TYPE engram_memory_max_bytes gauge
engram_memory_max_bytes 1.073741824e+09
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "engram_keys", "engram_memory_max_bytes"); err != nil {
		t.Fatal(err)
	}

	// Reads move the hit and miss counters; expiry and a sweep move the
	// expired counter and the key gauge.
	a.Get(nil, []byte("k1"))
	a.Get(nil, []byte("k1"))
	a.Get(nil, []byte("nope"))
	clk.Add(2000)
	st.Sweep(context.Background())
	a.Delete([]byte("k1"))

	want = `
# HELP engram_keys Keys in a map, expired keys not yet swept included.
# TYPE engram_keys gauge
engram_keys{map="b"} 1
# HELP engram_hits_total Reads that found their key.
# TYPE engram_hits_total counter
engram_hits_total 2
# HELP engram_misses_total Reads that did not find their key.
# TYPE engram_misses_total counter
engram_misses_total 1
# HELP engram_expired_total Items removed because their TTL or their map's max TTL passed.
# TYPE engram_expired_total counter
engram_expired_total 1
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want),
		"engram_keys", "engram_hits_total", "engram_misses_total", "engram_expired_total"); err != nil {
		t.Fatal(err)
	}

	// Memory gauges follow the data.
	before := gatherValue(t, m, "engram_memory_used_bytes")
	mustSet(t, b, "big", strings.Repeat("x", 10000), store.SetOptions{})
	after := gatherValue(t, m, "engram_memory_used_bytes")
	if after < before+10000 {
		t.Fatalf("used memory went from %v to %v after a 10000-byte write", before, after)
	}
	if v := gatherValue(t, m, "engram_map_bytes"); v < 10000 {
		t.Fatalf("engram_map_bytes = %v, want at least the 10000-byte value", v)
	}
}

// gatherValue returns the sum of the samples of one metric family.
func gatherValue(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, mt := range mf.GetMetric() {
			switch {
			case mt.Gauge != nil:
				sum += mt.Gauge.GetValue()
			case mt.Counter != nil:
				sum += mt.Counter.GetValue()
			}
		}
		return sum
	}
	t.Fatalf("metric %s not gathered", name)
	return 0
}

func TestServerStats(t *testing.T) {
	var calls atomic.Int64
	srvStats := func() ServerStats {
		return ServerStats{
			ConnectedClients: 3, TotalConnections: 10 + calls.Load(), RejectedConnections: 1,
			NetInputBytes: 100, NetOutputBytes: 200,
			Commands: map[string]CommandStats{
				"get": {Calls: 5 + calls.Load(), Errors: 0, Usec: 1_500_000},
				"set": {Calls: 2, Errors: 1, Usec: 250},
			},
		}
	}
	m := New(Sources{Server: srvStats})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	want := `
# HELP engram_commands_total RESP commands executed.
# TYPE engram_commands_total counter
engram_commands_total{command="get"} 5
engram_commands_total{command="set"} 2
# HELP engram_command_errors_total RESP commands that replied with an error.
# TYPE engram_command_errors_total counter
engram_command_errors_total{command="get"} 0
engram_command_errors_total{command="set"} 1
# HELP engram_command_seconds_total Seconds spent executing RESP commands.
# TYPE engram_command_seconds_total counter
engram_command_seconds_total{command="get"} 1.5
engram_command_seconds_total{command="set"} 0.00025
# HELP engram_connected_clients Open RESP client connections.
# TYPE engram_connected_clients gauge
engram_connected_clients 3
# HELP engram_connections_total RESP connections accepted.
# TYPE engram_connections_total counter
engram_connections_total 10
# HELP engram_rejected_connections_total RESP connections refused because the client limit was reached.
# TYPE engram_rejected_connections_total counter
engram_rejected_connections_total 1
# HELP engram_net_input_bytes_total Bytes read from RESP clients.
# TYPE engram_net_input_bytes_total counter
engram_net_input_bytes_total 100
# HELP engram_net_output_bytes_total Bytes written to RESP clients.
# TYPE engram_net_output_bytes_total counter
engram_net_output_bytes_total 200
`
	names := []string{"engram_commands_total", "engram_command_errors_total", "engram_command_seconds_total",
		"engram_connected_clients", "engram_connections_total", "engram_rejected_connections_total",
		"engram_net_input_bytes_total", "engram_net_output_bytes_total"}
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Values are read at scrape time, not at registration.
	calls.Store(7)
	if got := gatherValue(t, m, "engram_connections_total"); got != 17 {
		t.Fatalf("connections after change = %v, want 17", got)
	}
	if got := gatherValue(t, m, "engram_commands_total"); got != 14 {
		t.Fatalf("commands after change = %v, want 14 (12 get + 2 set)", got)
	}
}

func TestTwoNodesInOneProcess(t *testing.T) {
	st1, _ := newStore(t)
	st2, _ := newStore(t)
	m1, m2 := New(Sources{Store: st1}), New(Sources{Store: st2})
	mustSet(t, st1.Map("x"), "k", "v", store.SetOptions{})
	if got := gatherValue(t, m1, "engram_keys"); got != 1 {
		t.Fatalf("node 1 keys = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(m2.Registry(), "engram_keys"); err != nil || n != 0 {
		t.Fatalf("node 2 has %d engram_keys series (err %v), want 0: registries must not be shared", n, err)
	}
	m1.ObserveHTTP("GET /x", 200, time.Millisecond)
	if n, _ := testutil.GatherAndCount(m2.Registry(), "engram_http_requests_total"); n != 0 {
		t.Fatalf("node 2 sees node 1's HTTP requests")
	}
}

func TestRuntimeCollectorsPresent(t *testing.T) {
	m := New(Sources{})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := scrape(t, srv)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, "\n"+name+" ") {
			t.Errorf("scrape lacks %s", name)
		}
	}
	if strings.Contains(body, "engram_keys") || strings.Contains(body, "engram_commands_total") {
		t.Errorf("metrics of absent sources were reported")
	}
}

func TestObserveHTTP(t *testing.T) {
	m := New(Sources{})
	m.ObserveHTTP("GET /v1/maps/{map}/keys/{key...}", 200, 2*time.Millisecond)
	m.ObserveHTTP("GET /v1/maps/{map}/keys/{key...}", 404, 3*time.Millisecond)
	m.ObserveHTTP("GET /v1/maps/{map}/keys/{key...}", 200, time.Millisecond)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET /v1/maps/{map}/keys/{key...}", "200")); got != 2 {
		t.Fatalf("200 count = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET /v1/maps/{map}/keys/{key...}", "404")); got != 1 {
		t.Fatalf("404 count = %v, want 1", got)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "engram_http_request_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 3 || h.GetSampleSum() < 0.0059 || h.GetSampleSum() > 0.0061 {
				t.Fatalf("histogram count %d sum %v, want 3 and 0.006", h.GetSampleCount(), h.GetSampleSum())
			}
			return
		}
	}
	t.Fatal("engram_http_request_seconds not gathered")
}

func TestBinaryMapNames(t *testing.T) {
	st, _ := newStore(t)
	mustSet(t, st.Map("a\xff"), "k", "v", store.SetOptions{})
	mustSet(t, st.Map("a\xfe"), "k", "v", store.SetOptions{})
	mustSet(t, st.Map("é"), "k", "v", store.SetOptions{})
	m := New(Sources{Store: st})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := scrape(t, srv)
	for _, want := range []string{`engram_keys{map="\"a\\xff\""} 1`, `engram_keys{map="\"a\\xfe\""} 1`, `engram_keys{map="é"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if _, err := m.Registry().Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{"plain": "plain", "ü/x y": "ü/x y", "a\xff": `"a\xff"`, "": ""} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
	}
}
