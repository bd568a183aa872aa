package httpapi

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/store"
)

func TestPutAllGetAllRemoveItems(t *testing.T) {
	e := newEnv(t, envOpts{})
	body := `{"items":[{"key":"a","value":"1"},{"key":"b/c","value":"ü"},{"key":"","value":"<&>"}]}`
	r := e.do("POST", "/v1/maps/m/put_all?ttl=60&seq=3", []byte(body)).want(t, 200).json(t)
	if r["written"] != 3.0 {
		t.Fatalf("put_all: %v", r)
	}
	if tt := e.do("GET", "/v1/maps/m/ttl/a", nil).want(t, 200).json(t); tt["ttl"] != 60.0 {
		t.Fatalf("ttl of a put_all item: %v", tt)
	}
	if seq, _ := e.st.Map("m").Sequence(); seq != 3 {
		t.Fatalf("sequence %d, want 3", seq)
	}

	g := e.do("POST", "/v1/maps/m/get_all", []byte(`{"keys":["a","zz","b/c","","nope"]}`)).want(t, 200)
	want := `{"encoding":"utf8","found":[{"key":"a","value":"1"},{"key":"b/c","value":"ü"},{"key":"","value":"<&>"}],"misses":["zz","nope"]}`
	if got := strings.TrimSpace(string(g.body)); got != want {
		t.Fatalf("get_all\n got %s\nwant %s", got, want)
	}
	// A map never written: everything misses, and no map is created.
	g = e.do("POST", "/v1/maps/ghost/get_all", []byte(`{"keys":["a"]}`)).want(t, 200)
	if got := strings.TrimSpace(string(g.body)); got != `{"encoding":"utf8","found":[],"misses":["a"]}` {
		t.Fatalf("get_all on a missing map: %s", got)
	}
	// (Through a cluster, reads run "in" their map, which the node opens:
	// docs/http.md, Clusters.)
	if _, ok := e.st.Lookup([]byte("ghost")); ok && !execMode {
		t.Fatal("a read created a map")
	}

	rm := e.do("POST", "/v1/maps/m/remove_items", []byte(`{"keys":["a","zz"]}`)).want(t, 200)
	if got := strings.TrimSpace(string(rm.body)); got != `{"encoding":"utf8","removed":[{"key":"a","value":"1"}]}` {
		t.Fatalf("remove_items: %s", got)
	}
	e.do("GET", keyPath("m", "a"), nil).wantError(t, 404, "not_found")
}

func TestBinaryBatches(t *testing.T) {
	e := newEnv(t, envOpts{})
	b64 := base64.StdEncoding.EncodeToString
	bin := "\x00\xff\xfe"
	body := fmt.Sprintf(`{"items":[{"key":%q,"value":%q},{"key":%q,"value":%q}],"encoding":"base64"}`,
		b64([]byte("k1")), b64([]byte(bin)), b64([]byte(bin)), b64([]byte("text")))
	e.do("POST", "/v1/maps/m/put_all", []byte(body)).want(t, 200)
	m := e.st.Map("m")
	if v, _ := m.Get(nil, []byte("k1")); string(v) != bin {
		t.Fatalf("k1 = %q", v)
	}
	if v, _ := m.Get(nil, []byte(bin)); string(v) != "text" {
		t.Fatalf("binary key = %q", v)
	}

	// Auto encoding switches the whole response to base64 when one string
	// is not UTF-8, and says so.
	r := e.do("POST", "/v1/maps/m/get_all", []byte(`{"keys":["k1"]}`)).want(t, 200).json(t)
	if r["encoding"] != "base64" {
		t.Fatalf("encoding %v, want base64: %v", r["encoding"], r)
	}
	found := r["found"].([]any)[0].(map[string]any)
	if decodeBin(t, "base64", found["key"]) != "k1" || decodeBin(t, "base64", found["value"]) != bin {
		t.Fatalf("found %v", found)
	}
	// Forced base64 for text.
	r = e.do("POST", "/v1/maps/m/get_all?encoding=base64", []byte(`{"keys":["nope"]}`)).want(t, 200).json(t)
	if r["encoding"] != "base64" || r["misses"].([]any)[0] != b64([]byte("nope")) {
		t.Fatalf("forced base64: %v", r)
	}
	// Binary keys in a base64 request.
	r = e.do("POST", "/v1/maps/m/remove_items", []byte(fmt.Sprintf(`{"encoding":"base64","keys":[%q]}`, b64([]byte(bin))))).want(t, 200).json(t)
	rem := r["removed"].([]any)[0].(map[string]any)
	if r["encoding"] != "base64" || decodeBin(t, "base64", rem["key"]) != bin || decodeBin(t, "base64", rem["value"]) != "text" {
		t.Fatalf("remove_items: %v", r)
	}
}

func TestTooManyItems(t *testing.T) {
	e := newEnv(t, envOpts{})
	keys := make([]string, MaxBatchItems+1)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	e.do("POST", "/v1/maps/m/get_all", mustJSON(t, map[string]any{"keys": keys})).wantError(t, 413, "too_many_items")
	r := e.do("POST", "/v1/maps/m/get_all", mustJSON(t, map[string]any{"keys": keys[:MaxBatchItems]})).want(t, 200).json(t)
	if n := len(r["misses"].([]any)); n != MaxBatchItems {
		t.Fatalf("%d misses, want %d", n, MaxBatchItems)
	}
}

// scanAll pages through a listing and returns what each page held, keyed
// by key, decoding each page in its own encoding.
func scanAll(t *testing.T, e *env, route, extra string, during func(page int)) map[string][]string {
	t.Helper()
	seen := map[string][]string{}
	cursor := "0"
	for page := 0; ; page++ {
		if page > 10_000 {
			t.Fatal("scan does not terminate")
		}
		r := e.do("GET", "/v1/maps/m/"+route+"?count=37&cursor="+cursor+extra, nil).want(t, 200).json(t)
		enc := r["encoding"].(string)
		switch route {
		case "keys":
			for _, k := range r["keys"].([]any) {
				seen[decodeBin(t, enc, k)] = append(seen[decodeBin(t, enc, k)], "")
			}
		case "items":
			for _, it := range r["items"].([]any) {
				it := it.(map[string]any)
				k := decodeBin(t, enc, it["key"])
				seen[k] = append(seen[k], decodeBin(t, enc, it["value"]))
			}
		case "values":
			for _, v := range r["values"].([]any) {
				s := decodeBin(t, enc, v)
				seen[s] = append(seen[s], s)
			}
		}
		cursor = fmt.Sprint(r["cursor"])
		if during != nil {
			during(page)
		}
		if cursor == "0" {
			return seen
		}
	}
}

func TestScanReturnsEveryKeyOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	m := e.st.Map("m")
	want := map[string]bool{}
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("stable/%d", i)
		if i%100 == 0 {
			k = fmt.Sprintf("stable\xff%d", i) // binary keys flip some pages to base64
		}
		want[k] = true
		if _, err := m.Set([]byte(k), []byte("v:"+k), store.SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 500; i++ {
		if _, err := m.Set(fmt.Appendf(nil, "tmp%d", i), []byte("t"), store.SetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Keys come and go during the scan; the stable ones must each appear
	// exactly once.
	churn := func(page int) {
		for i := 0; i < 10; i++ {
			m.Delete(fmt.Appendf(nil, "tmp%d", page*10+i))
			m.Set(fmt.Appendf(nil, "new%d-%d", page, i), []byte("n"), store.SetOptions{})
		}
	}
	for _, route := range []string{"keys", "items"} {
		seen := scanAll(t, e, route, "", churn)
		for k := range want {
			if len(seen[k]) != 1 {
				t.Fatalf("%s: key %q seen %d times", route, k, len(seen[k]))
			}
			if route == "items" && seen[k][0] != "v:"+k {
				t.Fatalf("items: %q has value %q", k, seen[k][0])
			}
		}
		for k, v := range seen {
			if len(v) != 1 {
				t.Fatalf("%s: key %q seen %d times", route, k, len(v))
			}
		}
	}
	// match filters with a glob; values lists values only.
	seen := scanAll(t, e, "values", "&match="+esc("stable/1*"), nil)
	n := 0
	for v := range seen {
		if !strings.HasPrefix(v, "v:stable/1") {
			t.Fatalf("value %q does not match", v)
		}
		n++
	}
	if n != 1111-11 { // stable/1, 1x, 1xx, 1xxx below 3000, less the binary 100s
		t.Fatalf("%d values match, want 1100", n)
	}
	// A missing map lists nothing and ends at once.
	r := e.do("GET", "/v1/maps/ghost/keys", nil).want(t, 200)
	if got := strings.TrimSpace(string(r.body)); got != `{"encoding":"utf8","cursor":0,"keys":[]}` {
		t.Fatalf("missing map: %s", got)
	}
}

func TestEvictSinceClearFlush(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("PUT", keyPath("m", "old"), []byte("1")).want(t, 200)
	e.clk.Add(int64(10 * time.Second / time.Millisecond))
	e.do("PUT", keyPath("m", "new"), []byte("2")).want(t, 200)
	r := e.do("POST", "/v1/maps/m/evict_since?age=5", nil).want(t, 200).json(t)
	if r["evicted"] != 1.0 {
		t.Fatalf("evict_since: %v", r)
	}
	e.do("GET", keyPath("m", "old"), nil).wantError(t, 404, "not_found")
	e.do("GET", keyPath("m", "new"), nil).want(t, 200)

	e.do("PUT", keyPath("n", "k"), []byte("3")).want(t, 200)
	e.do("DELETE", "/v1/maps/m?silent=true", nil).want(t, 200)
	e.do("GET", keyPath("m", "new"), nil).wantError(t, 404, "not_found")
	e.do("GET", keyPath("n", "k"), nil).want(t, 200)
	e.do("POST", "/v1/flush", nil).want(t, 200)
	e.do("GET", keyPath("n", "k"), nil).wantError(t, 404, "not_found")
	if names := e.st.MapNames(); len(names) != 0 {
		t.Fatalf("maps after flush: %v", names)
	}
}

func TestDecodeBatch(t *testing.T) {
	cases := []struct {
		body, list string
		keys       []string
		err        bool
	}{
		{`{"keys":["a","b"]}`, "keys", []string{"a", "b"}, false},
		{`{"keys":[],"encoding":"utf8"}`, "keys", nil, false},
		{`{"keys":["YQ=="],"encoding":"base64"}`, "keys", []string{"a"}, false},
		{` { "encoding" : "base64" , "keys" : [ "AP8=" ] } `, "keys", []string{"\x00\xff"}, false},
		{`{"keys":["a"],"keys":["b"]}`, "keys", nil, true},
		{`{"keys":["a"],"encoding":"base64"}`, "keys", nil, true},
		{`{"keys":"a"}`, "keys", nil, true},
		{`{"keys":[null]}`, "keys", nil, true},
		{`["a"]`, "keys", nil, true},
		{`{"items":[]}`, "keys", nil, true},
		{``, "keys", nil, true},
		{`{"keys":["a"]`, "keys", nil, true},
		{`{"keys":["a"]}x`, "keys", nil, true},
	}
	for _, tc := range cases {
		b, err := decodeBatch([]byte(tc.body), tc.list)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v, want error %v", tc.body, err, tc.err)
			continue
		}
		var got []string
		for _, k := range b.keys {
			got = append(got, string(k))
		}
		if !tc.err && !slices.Equal(got, tc.keys) {
			t.Errorf("%s: keys %q, want %q", tc.body, got, tc.keys)
		}
	}
}

// A put_all that fails part-way says how many items went in.
func TestPutAllPartialFailure(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.do("PUT", "/v1/maps/m/max_keys", []byte(`{"max_keys":2}`)).want(t, 200)
	e.do("PUT", keyPath("m", "a"), []byte("1")).want(t, 200)
	r := e.do("POST", "/v1/maps/m/put_all", []byte(`{"items":[{"key":"b","value":"2"},{"key":"c","value":"3"},{"key":"d","value":"4"}]}`))
	r.wantError(t, 422, "map_full")
	// Through a cluster the parts of a batch answer separately and the
	// count written before a failure is not known: "written" is absent.
	if v := r.json(t); (!execMode && v["written"] != 1.0) || (execMode && v["written"] != nil) {
		t.Fatalf("written %v, want 1 (none through a cluster): %s", v["written"], r.body)
	}
	e.do("GET", keyPath("m", "b"), nil).want(t, 200)
	e.do("GET", keyPath("m", "c"), nil).wantError(t, 404, "not_found")
}
