package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	q "github.com/engramdb/engram/internal/query"
	"github.com/engramdb/engram/internal/server"
	"github.com/engramdb/engram/internal/store"
)

// newQueryEnv is an API whose query routes run through a RESP server with
// an index manager on the test's store.
func newQueryEnv(t *testing.T) (*env, *q.Manager) {
	t.Helper()
	qm := q.New(q.Options{Partitions: 31, AutoThreshold: -1})
	t.Cleanup(qm.Close)
	var srv *server.Server
	e := newEnv(t, envOpts{store: store.Options{Partitions: 31, Observer: qm}, api: Options{
		Commands: func(ctx context.Context, m string, args [][]byte, eo ExecOptions) []byte {
			return srv.Do(ctx, m, args, false, eo.Ack, eo.Eventual)
		}}})
	if err := qm.Attach(e.st); err != nil {
		t.Fatal(err)
	}
	var err error
	if srv, err = server.New(server.Options{Store: e.st, Clock: e.clk.Load, Queries: qm}); err != nil {
		t.Fatal(err)
	}
	return e, qm
}

func matchKeys(t *testing.T, r response) ([]string, float64) {
	t.Helper()
	v := r.want(t, http.StatusOK).json(t)
	var keys []string
	items, _ := v["items"].([]any)
	for _, it := range items {
		keys = append(keys, it.(map[string]any)["key"].(string))
	}
	slices.Sort(keys)
	cursor, _ := v["cursor"].(float64)
	return keys, cursor
}

func TestQueryRoutes(t *testing.T) {
	e, qm := newQueryEnv(t)
	m := e.st.Map("bed")
	for k, v := range map[string]string{"a": `{"id":{"type":3}}`, "b": `{"id":{"type":"3"}}`, "c": `{"id":{"type":3},"x":1}`, "d": `{"id":`} {
		m.Set([]byte(k), []byte(v), store.SetOptions{})
	}
	crit := "?criteria=" + url.QueryEscape("id.type=3")
	if keys, _ := matchKeys(t, e.do("GET", "/v1/maps/bed/values_match"+crit, nil)); !slices.Equal(keys, []string{"a", "c"}) {
		t.Fatalf("values_match = %v", keys)
	}
	// Paged: every match once, cursor back to 0.
	var paged []string
	cursor := 0.0
	for i := 0; ; i++ {
		keys, next := matchKeys(t, e.do("GET", "/v1/maps/bed/values_match"+crit+"&count=1&cursor="+strconv.FormatFloat(cursor, 'f', 0, 64), nil))
		paged = append(paged, keys...)
		if cursor = next; cursor == 0 || i > 40 {
			break
		}
	}
	slices.Sort(paged)
	if !slices.Equal(paged, []string{"a", "c"}) {
		t.Fatalf("paged values_match = %v", paged)
	}
	// Bad input: clear errors, nothing changes.
	e.do("GET", "/v1/maps/bed/values_match", nil).wantError(t, http.StatusBadRequest, "bad_request")
	e.do("GET", "/v1/maps/bed/values_match?criteria=id.type%3Dbob", nil).wantError(t, http.StatusBadRequest, "bad_request")
	e.do("GET", "/v1/maps/bed/values_match"+crit+"&count=5", nil).wantError(t, http.StatusBadRequest, "bad_request")
	e.do("GET", "/v1/maps/bed/values_match"+crit+"&cursor=-1", nil).wantError(t, http.StatusBadRequest, "bad_request")
	e.do("POST", "/v1/maps/bed/evict_match?criteria=a..b%3D1", nil).wantError(t, http.StatusBadRequest, "bad_request")

	// Indexes.
	e.do("PUT", "/v1/maps/bed/indexes/id.type", nil).want(t, http.StatusOK)
	for _, p := range []string{"b", "c", "d"} {
		e.do("PUT", "/v1/maps/bed/indexes/"+p, nil).want(t, http.StatusOK)
	}
	e.do("PUT", "/v1/maps/bed/indexes/e", nil).wantError(t, http.StatusConflict, "no_indexes_available")
	e.do("PUT", "/v1/maps/bed/indexes/a%20b", nil).wantError(t, http.StatusBadRequest, "bad_request")
	e.do("DELETE", "/v1/maps/bed/indexes/d", nil).want(t, http.StatusOK)
	deadline := time.Now().Add(10 * time.Second)
	for qm.List("bed", false)[0].State != q.StateReady && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	v := e.do("GET", "/v1/maps/bed/indexes", nil).want(t, http.StatusOK).json(t)
	list := v["indexes"].([]any)
	first := list[0].(map[string]any)
	if len(list) != 3 || first["path"] != "id.type" || first["state"] != "ready" || first["keys"].(float64) != 3 || first["position"].(float64) != 1 {
		t.Fatalf("indexes = %v", v)
	}
	if all := e.do("GET", "/v1/indexes", nil).want(t, http.StatusOK).json(t)["indexes"].([]any); len(all) != 3 {
		t.Fatalf("all indexes = %v", all)
	}
	if keys, _ := matchKeys(t, e.do("GET", "/v1/maps/bed/values_match"+crit, nil)); !slices.Equal(keys, []string{"a", "c"}) {
		t.Fatalf("indexed values_match = %v", keys)
	}

	// Automatic indexing threshold (per node).
	if got := e.do("GET", "/v1/index_auto", nil).want(t, http.StatusOK).json(t); got["threshold"] != -1.0 || got["enabled"] != false {
		t.Fatalf("index_auto = %v", got)
	}
	if got := e.do("PUT", "/v1/index_auto?threshold=7", nil).want(t, http.StatusOK).json(t); got["threshold"] != 7.0 || got["enabled"] != true {
		t.Fatalf("index_auto after PUT 7 = %v", got)
	}
	e.do("PUT", "/v1/index_auto?threshold=0", nil).wantError(t, http.StatusBadRequest, "bad_request")
	e.do("PUT", "/v1/index_auto", nil).wantError(t, http.StatusBadRequest, "bad_request")
	if got := e.do("PUT", "/v1/index_auto?threshold=off", nil).want(t, http.StatusOK).json(t); got["threshold"] != -1.0 {
		t.Fatalf("index_auto after PUT off = %v", got)
	}

	// Evictions.
	if got := e.do("POST", "/v1/maps/bed/evict_match"+crit+"&seq=7", nil).want(t, http.StatusOK).json(t); got["evicted"] != 2.0 {
		t.Fatalf("evict_match = %v", got)
	}
	e.do("POST", "/v1/maps/bed/evict_match"+crit+"&seq=6", nil).wantError(t, http.StatusConflict, "out_of_sequence")
	e.st.Map("other").Set([]byte("o"), []byte(`{"id":{"type":"3"}}`), store.SetOptions{})
	if got := e.do("POST", "/v1/evict_all_match?criteria="+url.QueryEscape(`id.type="3"`), nil).want(t, http.StatusOK).json(t); got["evicted"] != 2.0 {
		t.Fatalf("evict_all_match = %v", got)
	}
	if n := e.st.Map("bed").Len() + e.st.Map("other").Len(); n != 1 {
		t.Fatalf("%d items left, want 1 (the malformed one)", n)
	}
}
