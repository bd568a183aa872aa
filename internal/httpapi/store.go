package httpapi

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/engramdb/engram/internal/resp"
)

// The backing store (docs/backing.md): settings per map, persist now, and
// this node's view of the changes waiting for the store. Every route runs
// the Redis-protocol command (STORECONFIG, SAVEKEY, SAVEMAP, STORESTATUS)
// through Options.Commands, as a client of the node would.

func (a *api) storeRoutes() {
	a.handle("GET /v1/store", a.storeStatus)
	a.handle("GET /v1/maps/{map}/store", a.getStoreConfig)
	a.handle("PUT /v1/maps/{map}/store", a.putStoreConfig)
	a.handle("POST /v1/maps/{map}/save", a.saveMap)
	a.handle("POST /v1/maps/{map}/save/{key...}", a.saveKey)
}

// storeError maps the store commands' refusals: a bad setting is the
// client's error, a failing store a bad gateway.
func storeError(err error) error {
	ae, ok := err.(*apiError)
	if !ok {
		return err
	}
	if ae.code == "internal" && (strings.HasPrefix(ae.msg, "store setting") || strings.HasPrefix(ae.msg, "unknown store") ||
		strings.HasPrefix(ae.msg, "store settings") || strings.HasPrefix(ae.msg, "this node has no default store") ||
		strings.HasPrefix(ae.msg, "map '") || strings.Contains(ae.msg, "out of range")) {
		return badRequest("%s", ae.msg)
	}
	return err
}

func pairsToJSON(v resp.Value) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		k, s := string(v.Elems[i].Str), string(v.Elems[i+1].Str)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && k != "map" && k != "store" {
			out[k] = n
		} else if b, err := strconv.ParseBool(s); err == nil && (k == "active" || k == "explicit") {
			out[k] = b
		} else {
			out[k] = s
		}
	}
	return out
}

// storeStatus: GET /v1/store[?map=NAME] -> this node's view of each map's
// backing store (pending changes, oldest age, writes, failures, loads).
func (a *api) storeStatus(w http.ResponseWriter, r *http.Request) error {
	args := [][]byte{[]byte("STORESTATUS")}
	if m := r.URL.Query().Get("map"); m != "" {
		args = append(args, []byte(m))
	}
	v, err := a.qcall(r, "0", ExecOptions{}, args...)
	if err != nil {
		return storeError(err)
	}
	list := []map[string]any{}
	for _, e := range v.Elems {
		list = append(list, pairsToJSON(e))
	}
	return writeJSON(w, map[string]any{"maps": list})
}

// getStoreConfig: GET /v1/maps/{map}/store -> the map's settings.
func (a *api) getStoreConfig(w http.ResponseWriter, r *http.Request) error {
	name, err := clusterMap(r)
	if err != nil {
		return err
	}
	v, err := a.qcall(r, name, ExecOptions{}, []byte("STORECONFIG"), []byte(name))
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, pairsToJSON(v))
}

// putStoreConfig: PUT /v1/maps/{map}/store with a JSON object of the
// fields to change: {"mode": "write-behind", "delay": "500ms", "batch":
// 100, "max_dirty": 100000, "negative_ttl": "5s", "store": "s3://..."}.
func (a *api) putStoreConfig(w http.ResponseWriter, r *http.Request) error {
	name, err := clusterMap(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, a.maxBody)
	if err != nil {
		return err
	}
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		return badRequest("body must be a JSON object of store settings, e.g. {\"mode\": \"write-behind\", \"delay\": \"1s\"}")
	}
	if len(fields) == 0 {
		return badRequest("no store setting given")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := [][]byte{[]byte("STORECONFIG"), []byte(name)}
	for _, k := range keys {
		var s string
		switch v := fields[k].(type) {
		case string:
			s = v
		case float64:
			s = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return badRequest("store setting %s must be a string or a number", k)
		}
		args = append(args, []byte(k), []byte(s))
	}
	if _, err := a.qcall(r, name, ExecOptions{}, args...); err != nil {
		return storeError(err)
	}
	v, err := a.qcall(r, name, ExecOptions{}, []byte("STORECONFIG"), []byte(name))
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, pairsToJSON(v))
}

// saveKey: POST /v1/maps/{map}/save/{key} -> persist now; {"saved": n}.
func (a *api) saveKey(w http.ResponseWriter, r *http.Request) error {
	name, err := clusterMap(r)
	if err != nil {
		return err
	}
	v, err := a.qcall(r, name, ExecOptions{}, []byte("SAVEKEY"), []byte(r.PathValue("key")))
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, map[string]any{"saved": v.Int})
}

// saveMap: POST /v1/maps/{map}/save -> write every pending change now.
func (a *api) saveMap(w http.ResponseWriter, r *http.Request) error {
	name, err := clusterMap(r)
	if err != nil {
		return err
	}
	v, err := a.qcall(r, name, ExecOptions{}, []byte("SAVEMAP"))
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, map[string]any{"saved": v.Int})
}
