package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/metrics"
	"github.com/engramdb/engram/internal/server"
	"github.com/engramdb/engram/internal/store"
)

// execMode makes newEnv serve the API's cluster path (Options.Exec)
// through a RESP server over the test's store (TestThroughExec).
var execMode bool

// t0 is the manual clock's start, in Unix ms.
const t0 = 1_700_000_000_000

// env is an API server over a real store driven by a manual clock.
type env struct {
	t   *testing.T
	srv *httptest.Server
	st  *store.Store
	clk *atomic.Int64
	met *metrics.Metrics
	// auth is sent as the Authorization header when set.
	auth string
}

type envOpts struct {
	store   store.Options
	api     Options
	metrics bool
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	clk := new(atomic.Int64)
	clk.Store(t0)
	o.store.Clock = clk.Load
	if o.store.SweepInterval == 0 {
		o.store.SweepInterval = time.Hour // expiry comes from the clock, not the sweeper
	}
	st, err := store.New(o.store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o.api.Store = st
	o.api.Clock = clk.Load
	if execMode && o.api.Exec == nil {
		// The cluster path, run by a standalone RESP server on the same
		// store: every route goes through its Redis-protocol command.
		srv, err := server.New(server.Options{Store: st, Clock: clk.Load})
		if err != nil {
			t.Fatal(err)
		}
		o.api.Exec = func(ctx context.Context, m string, args [][]byte, eo ExecOptions) []byte {
			return srv.Do(ctx, m, args, false, eo.Ack, eo.Eventual)
		}
	}
	e := &env{t: t, st: st, clk: clk}
	if o.metrics {
		e.met = metrics.New(metrics.Sources{Store: st})
		o.api.Metrics = e.met
	}
	h, err := New(o.api)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %q", r.status, err, r.body)
	}
	return v
}

// do sends a request; path is sent as is (already percent-encoded).
func (e *env) do(method, path string, body []byte, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.auth != "" {
		req.Header.Set("Authorization", e.auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// ok fails the test unless the response has the status.
func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// wantError checks an error response's status and code.
func (r response) wantError(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
	v := r.json(t)
	if v["code"] != code {
		t.Fatalf("error code %v, want %q: %s", v["code"], code, r.body)
	}
	if msg, _ := v["error"].(string); msg == "" {
		t.Fatalf("error without message: %s", r.body)
	}
}

// esc percent-encodes every byte but the unreserved ones (RFC 3986), as a
// careful client does for map names and keys.
func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func keyPath(m, k string) string { return "/v1/maps/" + esc(m) + "/keys/" + esc(k) }

// mustJSON encodes v.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeBin decodes a binary string of a response in its encoding.
func decodeBin(t *testing.T, enc string, v any) string {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("not a string: %#v", v)
	}
	if enc == "base64" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if enc != "utf8" {
		t.Fatalf("unknown response encoding %q", enc)
	}
	return s
}

// snapshot is everything a request could change in the store.
type snapshot struct {
	Maps      int
	MaxMemory int64
	Policy    store.Policy
	PerMap    map[string]mapSnap
}

type mapSnap struct {
	Items   []string // key=value, sorted
	TTLs    []int64
	Seq     uint64
	HasSeq  bool
	MaxTTL  int64
	MaxKeys int64
}

func takeSnapshot(st *store.Store) snapshot {
	s := snapshot{Maps: st.Stats().Maps, MaxMemory: st.MaxMemory(), Policy: st.Policy(), PerMap: map[string]mapSnap{}}
	for _, name := range st.MapNames() {
		m, _ := st.Lookup([]byte(name))
		var ms mapSnap
		items := m.Items(nil, 0)
		slices.SortFunc(items, func(a, b store.KV) int { return bytes.Compare(a.Key, b.Key) })
		for _, it := range items {
			ms.Items = append(ms.Items, string(it.Key)+"="+string(it.Value))
			ms.TTLs = append(ms.TTLs, m.TTL(it.Key))
		}
		ms.Seq, ms.HasSeq = m.Sequence()
		ms.MaxTTL, ms.MaxKeys = m.MaxTTL(), m.MaxKeys()
		s.PerMap[name] = ms
	}
	return s
}

// unchanged fails the test if the store differs from the snapshot.
func unchanged(t *testing.T, st *store.Store, before snapshot) {
	t.Helper()
	if after := takeSnapshot(st); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused request changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
}
