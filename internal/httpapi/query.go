package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/engramdb/engram/internal/resp"
	"github.com/engramdb/engram/internal/store"
)

// JSON queries and indexes (docs/queries.md): jc values_match,
// evict_match, evict_all_match (with their jc_s seq forms),
// start_indexing, stop_indexing and indexes. Every route runs the
// equivalent Redis-protocol command (VALUESMATCH, EVICTMATCH[SEQ],
// EVICTALLMATCH[SEQ], INDEX) through Options.Commands, on a standalone
// node as on a cluster member: one implementation of the queries, in
// internal/server.

// queryRoutes registers the query routes.
func (a *api) queryRoutes() {
	a.handle("GET /v1/maps/{map}/values_match", a.valuesMatch)
	a.handle("POST /v1/maps/{map}/evict_match", a.evictMatch)
	a.handle("POST /v1/evict_all_match", a.evictAllMatch)
	a.handle("GET /v1/indexes", a.listIndexes)
	a.handle("GET /v1/maps/{map}/indexes", a.listIndexes)
	a.handle("PUT /v1/maps/{map}/indexes/{path}", a.startIndexing)
	a.handle("DELETE /v1/maps/{map}/indexes/{path}", a.stopIndexing)
	a.handle("GET /v1/index_auto", a.indexAuto)
	a.handle("PUT /v1/index_auto", a.indexAuto)
}

// indexAuto reads (GET) or sets (PUT ?threshold=N|off) this node's
// automatic indexing threshold (INDEX AUTO).
func (a *api) indexAuto(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "threshold")
	if err != nil {
		return err
	}
	if r.Method == http.MethodPut {
		if !q.Has("threshold") {
			return badRequest("threshold is required: a positive number of queries, or off")
		}
		t := q.Get("threshold")
		if t != "off" {
			n, err := intParam(q, "threshold", 0, 1, 1<<30)
			if err != nil {
				return err
			}
			t = strconv.FormatInt(n, 10)
		}
		if _, err := a.qcall(r, "0", ExecOptions{}, []byte("INDEX"), []byte("AUTO"), []byte(t)); err != nil {
			return err
		}
	} else if q.Has("threshold") {
		return badRequest("threshold is set with PUT")
	}
	v, err := a.qcall(r, "0", ExecOptions{}, []byte("INDEX"), []byte("AUTO"))
	if err != nil {
		return err
	}
	if v.Kind != ':' {
		return unexpected([]byte("INDEX"), v)
	}
	return writeJSON(w, map[string]any{"threshold": v.Int, "enabled": v.Int > 0})
}

// qcall runs one query command on the request's map (or on none) and
// reads its reply; error replies become API errors.
func (a *api) qcall(r *http.Request, mapName string, o ExecOptions, args ...[]byte) (resp.Value, error) {
	run := a.commands
	if run == nil {
		run = a.exec
	}
	if run == nil {
		return resp.Value{}, &apiError{status: http.StatusNotImplemented, code: "not_implemented",
			msg: "JSON queries are not enabled on this node"}
	}
	reply := run(r.Context(), mapName, args, o)
	v, err := resp.ReadValue(bufio.NewReader(bytes.NewReader(reply)), len(reply)+1)
	if err != nil {
		return v, fmt.Errorf("BUG: unreadable reply to %s: %v", args[0], err)
	}
	if v.Kind == '-' || v.Kind == '!' {
		return v, queryError(string(v.Str))
	}
	return v, nil
}

// queryError maps the query commands' own refusals; others as usual.
func queryError(msg string) error {
	switch {
	case strings.HasPrefix(msg, "ERR invalid criteria"):
		return badRequest("%s", strings.TrimPrefix(msg, "ERR "))
	case strings.HasPrefix(msg, "NOINDEX "):
		return &apiError{status: http.StatusConflict, code: "no_indexes_available", msg: strings.TrimPrefix(msg, "NOINDEX ")}
	case strings.HasPrefix(msg, "ERR JSON queries are not enabled"):
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", msg: strings.TrimPrefix(msg, "ERR ")}
	}
	return replyError(msg)
}

// criteriaParam returns the required criteria parameter.
func criteriaParam(q url.Values) ([]byte, error) {
	if !q.Has("criteria") {
		return nil, badRequest("criteria is required, e.g. criteria=id.type%%3D3 (see docs/queries.md)")
	}
	return []byte(q.Get("criteria")), nil
}

// valuesMatch is jc values_match: the map's items whose JSON value
// matches the criteria. Without cursor, every match; with cursor, one page
// of whole partitions (count is the page size) and the next cursor (0 at
// the end), as the keys and items listings.
func (a *api) valuesMatch(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "criteria", "cursor", "count", "encoding", paramConsistent)
	if err != nil {
		return err
	}
	crit, err := criteriaParam(q)
	if err != nil {
		return err
	}
	if _, err := responseEncoding(q, func(func([]byte) bool) {}); err != nil {
		return err
	}
	m, err := clusterMap(r)
	if err != nil {
		return err
	}
	o, err := execOptions(q)
	if err != nil {
		return err
	}
	args := [][]byte{[]byte("VALUESMATCH"), crit}
	paged := q.Has("cursor")
	if paged {
		cursor, err := intParam(q, "cursor", 0, 0, int64(a.st.Partitions()-1))
		if err != nil {
			return err
		}
		count, err := intParam(q, "count", DefaultScanCount, 1, MaxScanCount)
		if err != nil {
			return err
		}
		args = append(args, []byte("CURSOR"), itoa(cursor), []byte("COUNT"), itoa(count))
	} else if q.Has("count") {
		return badRequest("count applies to pages: give a cursor (0 for the first page)")
	}
	v, err := a.qcall(r, m, o, args...)
	if err != nil {
		return err
	}
	var next uint64
	if paged {
		if len(v.Elems) != 2 {
			return unexpected(args[0], v)
		}
		if next, err = strconv.ParseUint(string(v.Elems[0].Str), 10, 64); err != nil {
			return unexpected(args[0], v)
		}
		v = v.Elems[1]
	}
	if len(v.Elems)%2 != 0 {
		return unexpected(args[0], v)
	}
	items := make([]store.KV, 0, len(v.Elems)/2)
	for i := 0; i < len(v.Elems); i += 2 {
		items = append(items, store.KV{Key: v.Elems[i].Str, Value: v.Elems[i+1].Str})
	}
	enc, _ := responseEncoding(q, pairs(items))
	j := newJSONStream(w, enc)
	j.header()
	if paged {
		j.raw(`,"cursor":` + strconv.FormatUint(next, 10))
	}
	j.raw(`,"items":`)
	j.pairList(items)
	return j.close()
}

// evictions runs EVICTMATCH or EVICTALLMATCH (their SEQ forms with seq).
func (a *api) evictions(w http.ResponseWriter, r *http.Request, mapName, cmd string) error {
	q, err := query(r, "criteria", "seq", paramAck)
	if err != nil {
		return err
	}
	crit, err := criteriaParam(q)
	if err != nil {
		return err
	}
	seq, hasSeq, err := clusterSeq(q)
	if err != nil {
		return err
	}
	o, err := execOptions(q)
	if err != nil {
		return err
	}
	args := [][]byte{[]byte(cmd), crit}
	if hasSeq {
		args = [][]byte{[]byte(cmd + "SEQ"), utoa(seq), crit}
	}
	v, err := a.qcall(r, mapName, o, args...)
	if err != nil {
		return err
	}
	if v.Kind != ':' {
		return unexpected(args[0], v)
	}
	return writeJSON(w, map[string]int64{"evicted": v.Int})
}

// evictMatch is jc evict_match (jc_s evict_match with seq).
func (a *api) evictMatch(w http.ResponseWriter, r *http.Request) error {
	m, err := clusterMap(r)
	if err != nil {
		return err
	}
	return a.evictions(w, r, m, "EVICTMATCH")
}

// evictAllMatch is jc evict_all_match over every map (jc_s with seq).
func (a *api) evictAllMatch(w http.ResponseWriter, r *http.Request) error {
	return a.evictions(w, r, "0", "EVICTALLMATCH")
}

// indexInfo is one index in a listing (jc indexes: {{Map, Path},
// Position}, with Engram's state, build progress and size).
type indexInfo struct {
	Map        string `json:"map"`
	Path       string `json:"path"`
	Position   int64  `json:"position"`
	State      string `json:"state"`
	Auto       bool   `json:"auto"`
	BuildDone  int64  `json:"build_done"`
	BuildTotal int64  `json:"build_total"`
	Keys       int64  `json:"keys"`
	Values     int64  `json:"values"`
	Bytes      int64  `json:"bytes"`
	Created    string `json:"created"`
}

// listIndexes is jc indexes() (GET /v1/indexes) and indexes(Map).
func (a *api) listIndexes(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	args := [][]byte{[]byte("INDEX"), []byte("LIST")}
	if r.PathValue("map") != "" || strings.HasPrefix(r.Pattern, "GET /v1/maps/") {
		m, err := clusterMap(r)
		if err != nil {
			return err
		}
		args = append(args, []byte(m))
	}
	v, err := a.qcall(r, "0", ExecOptions{}, args...)
	if err != nil {
		return err
	}
	out := struct {
		Indexes []indexInfo `json:"indexes"`
	}{Indexes: []indexInfo{}}
	for _, e := range v.Elems {
		var in indexInfo
		for i := 0; i+1 < len(e.Elems); i += 2 {
			f := e.Elems[i+1]
			switch string(e.Elems[i].Str) {
			case "map":
				in.Map = string(f.Str)
			case "path":
				in.Path = string(f.Str)
			case "position":
				in.Position = f.Int
			case "state":
				in.State = string(f.Str)
			case "auto":
				in.Auto = f.Int != 0
			case "build_done":
				in.BuildDone = f.Int
			case "build_total":
				in.BuildTotal = f.Int
			case "keys":
				in.Keys = f.Int
			case "values":
				in.Values = f.Int
			case "bytes":
				in.Bytes = f.Int
			case "created":
				in.Created = string(f.Str)
			}
		}
		out.Indexes = append(out.Indexes, in)
	}
	return writeJSON(w, out)
}

// startIndexing is jc start_indexing(Map, Path).
func (a *api) startIndexing(w http.ResponseWriter, r *http.Request) error {
	return a.indexDef(w, r, "ADD")
}

// stopIndexing is jc stop_indexing(Map, Path).
func (a *api) stopIndexing(w http.ResponseWriter, r *http.Request) error {
	return a.indexDef(w, r, "DEL")
}

func (a *api) indexDef(w http.ResponseWriter, r *http.Request, sub string) error {
	if _, err := query(r); err != nil {
		return err
	}
	m, err := clusterMap(r)
	if err != nil {
		return err
	}
	path := r.PathValue("path")
	if _, err := a.qcall(r, "0", ExecOptions{}, []byte("INDEX"), []byte(sub), []byte(m), []byte(path)); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"map": m, "path": path, "ok": true})
}
