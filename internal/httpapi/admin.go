package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/engramdb/engram/internal/config"
	"github.com/engramdb/engram/internal/store"
)

// Meta and settings routes: maps, map info and sizes, sequences, max TTLs,
// key bounds, memory settings, stats, uptime and nodes.

// named is one map in a listing; Map is in the response's encoding.
type named struct {
	Map string `json:"map"`
	v   *store.Map
}

// mapList returns the maps holding keys or settings (jc maps()) and the
// response encoding for their names.
func (a *api) mapList(r *http.Request, keep func(*store.Map) bool) ([]named, encoding, error) {
	q, err := query(r, "encoding", paramConsistent)
	if err != nil {
		return nil, encUTF8, err
	}
	var list []*store.Map
	for _, name := range a.st.MapNames() {
		if m, ok := a.st.Lookup([]byte(name)); ok && (keep == nil || keep(m)) {
			list = append(list, m)
		}
	}
	enc, err := responseEncoding(q, func(yield func([]byte) bool) {
		for _, m := range list {
			if !yield([]byte(m.Name())) {
				return
			}
		}
	})
	if err != nil {
		return nil, enc, err
	}
	out := make([]named, len(list))
	for i, m := range list {
		out[i] = named{Map: enc.str([]byte(m.Name())), v: m}
	}
	return out, enc, nil
}

// maps is jc maps().
func (a *api) maps(w http.ResponseWriter, r *http.Request) error {
	list, enc, err := a.mapList(r, nil)
	if err != nil {
		return err
	}
	names := make([]string, len(list))
	for i, n := range list {
		names[i] = n.Map
	}
	return writeJSON(w, struct {
		Encoding string   `json:"encoding"`
		Maps     []string `json:"maps"`
	}{enc.String(), names})
}

// mapInfo is one map's size (jc map_size), bytes and settings.
type mapInfo struct {
	Exists      bool   `json:"exists"`
	Records     int64  `json:"records"`
	Bytes       int64  `json:"bytes"`
	MaxTTL      int64  `json:"max_ttl"`
	MaxKeys     int64  `json:"max_keys"`
	Sequence    uint64 `json:"sequence"`
	HasSequence bool   `json:"has_sequence"`
}

func (a *api) mapInfo(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r, paramConsistent); err != nil {
		return err
	}
	var info mapInfo
	if m, ok := a.lookup(r); ok {
		info = mapInfo{Exists: true, Records: m.Len(), Bytes: m.Bytes(), MaxTTL: m.MaxTTL(), MaxKeys: m.MaxKeys()}
		info.Sequence, info.HasSequence = m.Sequence()
	}
	return writeJSON(w, info)
}

// cacheSize is jc cache_size: records and bytes per map and in total.
func (a *api) cacheSize(w http.ResponseWriter, r *http.Request) error {
	list, enc, err := a.mapList(r, nil)
	if err != nil {
		return err
	}
	type entry struct {
		Map     string `json:"map"`
		Records int64  `json:"records"`
		Bytes   int64  `json:"bytes"`
	}
	resp := struct {
		Encoding   string  `json:"encoding"`
		Maps       []entry `json:"maps"`
		Records    int64   `json:"records"`
		Bytes      int64   `json:"bytes"`
		UsedMemory int64   `json:"used_memory"`
	}{Encoding: enc.String(), Maps: []entry{}, UsedMemory: a.st.Stats().UsedMemory}
	for _, n := range list {
		e := entry{Map: n.Map, Records: n.v.Len(), Bytes: n.v.Bytes()}
		resp.Maps = append(resp.Maps, e)
		resp.Records += e.Records
		resp.Bytes += e.Bytes
	}
	return writeJSON(w, resp)
}

// sequences is jc_s sequence(): the highest sequence number of every map
// that has one.
func (a *api) sequences(w http.ResponseWriter, r *http.Request) error {
	list, enc, err := a.mapList(r, func(m *store.Map) bool { _, ok := m.Sequence(); return ok })
	if err != nil {
		return err
	}
	type entry struct {
		Map      string `json:"map"`
		Sequence uint64 `json:"sequence"`
	}
	out := []entry{}
	for _, n := range list {
		seq, _ := n.v.Sequence()
		out = append(out, entry{n.Map, seq})
	}
	return writeJSON(w, struct {
		Encoding  string  `json:"encoding"`
		Sequences []entry `json:"sequences"`
	}{enc.String(), out})
}

// sequence is jc_s sequence(Map): 0 with "has_sequence": false when the
// map has seen no sequence-checked operation.
func (a *api) sequence(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r, paramConsistent); err != nil {
		return err
	}
	var seq uint64
	var has bool
	if m, ok := a.lookup(r); ok {
		seq, has = m.Sequence()
	}
	return writeJSON(w, struct {
		Sequence    uint64 `json:"sequence"`
		HasSequence bool   `json:"has_sequence"`
	}{seq, has})
}

// maxTTLs is jc get_max_ttls(): every map with a max TTL.
func (a *api) maxTTLs(w http.ResponseWriter, r *http.Request) error {
	list, enc, err := a.mapList(r, func(m *store.Map) bool { return m.MaxTTL() > 0 })
	if err != nil {
		return err
	}
	type entry struct {
		Map    string `json:"map"`
		MaxTTL int64  `json:"max_ttl"`
	}
	out := []entry{}
	for _, n := range list {
		out = append(out, entry{n.Map, n.v.MaxTTL()})
	}
	return writeJSON(w, struct {
		Encoding string  `json:"encoding"`
		MaxTTLs  []entry `json:"max_ttls"`
	}{enc.String(), out})
}

// mapSetting serves GET and PUT of one per-map integer setting, in a body
// {"<name>": N}. PUT creates the map, as jc set_max_ttl does.
func (a *api) mapSetting(name string, get func(*store.Map) int64, set func(*store.Map, int64) error) (handlerFunc, handlerFunc) {
	getH := func(w http.ResponseWriter, r *http.Request) error {
		if _, err := query(r); err != nil {
			return err
		}
		var v int64
		if m, ok := a.lookup(r); ok {
			v = get(m)
		}
		return writeJSON(w, map[string]int64{name: v})
	}
	putH := func(w http.ResponseWriter, r *http.Request) error {
		if _, err := query(r); err != nil {
			return err
		}
		body, err := readBody(w, r, maxSettingsBody)
		if err != nil {
			return err
		}
		n, err := settingValue(body, name)
		if err != nil {
			return err
		}
		m, err := a.open(r)
		if err != nil {
			return err
		}
		if err := set(m, n); err != nil {
			return badRequest("%v", err)
		}
		return writeJSON(w, map[string]int64{name: get(m)})
	}
	return getH, putH
}

// settingValue reads the body {"<name>": N} of a per-map setting: N is a
// non-negative integer.
func settingValue(body []byte, name string) (int64, error) {
	var in map[string]json.Number
	if err := decodeSettings(body, &in); err != nil {
		return 0, err
	}
	raw, ok := in[name]
	if !ok || len(in) != 1 {
		return 0, badRequest("body must be {%q: N}", name)
	}
	n, err := strconv.ParseInt(raw.String(), 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("%s must be a non-negative integer, got %s", name, raw)
	}
	return n, nil
}

// settings is the run-time memory configuration.
type settings struct {
	MaxMemory int64  `json:"max_memory"`
	Policy    string `json:"policy"`
	MaxKeyLen int    `json:"max_key_len"`
}

func (a *api) currentSettings() settings {
	return settings{MaxMemory: a.st.MaxMemory(), Policy: a.st.Policy().String(), MaxKeyLen: a.st.MaxKeyLen()}
}

func (a *api) getConfig(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	return writeJSON(w, a.currentSettings())
}

// patchConfig changes max_memory (bytes, or a size such as "100mb") and
// the eviction policy. Both are checked before either is applied.
func (a *api) patchConfig(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	body, err := readBody(w, r, maxSettingsBody)
	if err != nil {
		return err
	}
	var in struct {
		MaxMemory json.RawMessage `json:"max_memory"`
		Policy    *string         `json:"policy"`
	}
	if err := decodeSettings(body, &in); err != nil {
		return err
	}
	maxMem, setMem := int64(0), in.MaxMemory != nil
	if setMem {
		if maxMem, err = parseSize(in.MaxMemory); err != nil {
			return err
		}
	}
	var policy store.Policy
	if in.Policy != nil {
		if policy, err = store.ParsePolicy(*in.Policy); err != nil {
			return badRequest("%v", err)
		}
	}
	if !setMem && in.Policy == nil {
		return badRequest(`body must set "max_memory", "policy" or both`)
	}
	if setMem {
		if err := a.st.SetMaxMemory(maxMem); err != nil {
			return badRequest("%v", err)
		}
	}
	if in.Policy != nil {
		if err := a.st.SetPolicy(policy); err != nil {
			return badRequest("%v", err)
		}
	}
	return writeJSON(w, a.currentSettings())
}

// parseSize accepts a JSON integer of bytes or a size string.
func parseSize(raw json.RawMessage) (int64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		s = string(raw) // a JSON number is its own text
	}
	n, err := config.ParseSize(s)
	if err != nil {
		return 0, badRequest("max_memory must be a byte count or a size such as \"100mb\": %v", err)
	}
	return n, nil
}

// stats reports the store's counters.
func (a *api) stats(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	s := a.st.Stats()
	ratio := 0.0
	if s.Hits+s.Misses > 0 {
		ratio = float64(s.Hits) / float64(s.Hits+s.Misses)
	}
	return writeJSON(w, struct {
		Maps          int     `json:"maps"`
		Keys          int64   `json:"keys"`
		UsedMemory    int64   `json:"used_memory"`
		ArenaMemory   int64   `json:"arena_memory"`
		MaxMemory     int64   `json:"max_memory"`
		Policy        string  `json:"policy"`
		Hits          int64   `json:"hits"`
		Misses        int64   `json:"misses"`
		HitRatio      float64 `json:"hit_ratio"`
		Expired       int64   `json:"expired"`
		Evicted       int64   `json:"evicted"`
		UptimeSeconds int64   `json:"uptime_seconds"`
		StartedAt     string  `json:"started_at"`
	}{s.Maps, s.Keys, s.UsedMemory, s.ArenaMemory, s.MaxMemory, s.Policy.String(), s.Hits, s.Misses,
		ratio, s.Expired, s.Evicted, int64(s.Uptime.Seconds()), s.Started.UTC().Format(time.RFC3339)})
}

// uptime is jc up(): start time, now, and the uptime in seconds and as
// days, hours, minutes and seconds.
type uptime struct {
	ID            string `json:"id"`
	Version       string `json:"version"`
	UpAt          string `json:"up_at"`
	Now           string `json:"now"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	Uptime        struct {
		Days    int64 `json:"days"`
		Hours   int64 `json:"hours"`
		Minutes int64 `json:"minutes"`
		Seconds int64 `json:"seconds"`
	} `json:"uptime"`
}

func makeUptime(info NodeInfo, now time.Time) uptime {
	u := uptime{ID: info.ID, Version: info.Version,
		UpAt: info.StartedAt.UTC().Format(time.RFC3339), Now: now.UTC().Format(time.RFC3339)}
	secs := max(int64(now.Sub(info.StartedAt)/time.Second), 0)
	u.UptimeSeconds = secs
	u.Uptime.Days, secs = secs/86400, secs%86400
	u.Uptime.Hours, secs = secs/3600, secs%3600
	u.Uptime.Minutes, u.Uptime.Seconds = secs/60, secs%60
	return u
}

func (a *api) up(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	return writeJSON(w, makeUptime(a.node(), time.UnixMilli(a.clock())))
}

// nodes is jc cache_nodes(): the active and configured nodes.
func (a *api) nodes(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	info := a.node()
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return writeJSON(w, struct {
		ID         string   `json:"id"`
		Active     []string `json:"active"`
		Configured []string `json:"configured"`
	}{info.ID, nonNil(info.Active), nonNil(info.Configured)})
}

// routes registers every route. Map names are one path segment ({map});
// the key is the rest of the path ({key...}).
func (a *api) routes() {
	a.mux.HandleFunc("GET /healthz", a.healthz)
	if a.met != nil {
		a.mux.Handle("GET /metrics", a.authenticated(a.met.Handler()))
	}

	// Data routes have a standalone handler (the store, directly) and a
	// cluster one (the same command through the cluster, cluster.go).
	c := a.clustered
	const key = "/v1/maps/{map}/keys/{key...}"
	a.handle("GET "+key, c(a.getValue, a.cGetValue))
	a.handle("HEAD "+key, c(a.headValue, a.cHeadValue))
	a.handle("PUT "+key, c(a.putValue, a.cPutValue))
	a.handle("DELETE "+key, c(a.deleteValue, a.cDeleteValue))
	a.handle("GET /v1/maps/{map}/exists/{key...}", c(a.exists, a.cExists))
	a.handle("GET /v1/maps/{map}/ttl/{key...}", c(a.getTTL, a.cGetTTL))
	a.handle("POST /v1/maps/{map}/expire/{key...}", c(a.expire, a.cExpire))
	a.handle("POST /v1/maps/{map}/persist/{key...}", c(a.persist, a.cPersist))
	a.handle("POST /v1/maps/{map}/incr/{key...}", c(a.incr, a.cIncr))

	a.handle("POST /v1/maps/{map}/get_all", c(a.getAll, a.cGetAll))
	a.handle("POST /v1/maps/{map}/put_all", c(a.putAll, a.cPutAll))
	a.handle("POST /v1/maps/{map}/remove_items", c(a.removeItems, a.cRemoveItems))
	a.handle("GET /v1/maps/{map}/keys", c(a.listKeys, a.cListKeys))
	a.handle("GET /v1/maps/{map}/values", c(a.listValues(false), a.cListValues(false)))
	a.handle("GET /v1/maps/{map}/items", c(a.listValues(true), a.cListValues(true)))
	a.handle("POST /v1/maps/{map}/evict_since", c(a.evictSince, a.cEvictSince))
	a.handle("DELETE /v1/maps/{map}", c(a.clearMap, a.cClearMap))
	a.handle("POST /v1/flush", c(a.flush, a.cFlush))

	a.handle("GET /v1/maps", c(a.maps, a.cMaps))
	a.handle("GET /v1/maps/{map}", c(a.mapInfo, a.cMapInfo))
	a.handle("GET /v1/cache_size", c(a.cacheSize, a.cCacheSize))
	a.handle("GET /v1/sequences", c(a.sequences, a.cSequences))
	a.handle("GET /v1/maps/{map}/sequence", c(a.sequence, a.cSequence))
	a.handle("GET /v1/max_ttls", a.maxTTLs)
	getTTL, putTTL := a.mapSetting("max_ttl", (*store.Map).MaxTTL, (*store.Map).SetMaxTTL)
	a.handle("GET /v1/maps/{map}/max_ttl", getTTL)
	a.handle("PUT /v1/maps/{map}/max_ttl", c(putTTL, a.cPutSetting("max_ttl", "SETMAXTTL", (*store.Map).SetMaxTTL)))
	getKeys, putKeys := a.mapSetting("max_keys", (*store.Map).MaxKeys, (*store.Map).SetMaxKeys)
	a.handle("GET /v1/maps/{map}/max_keys", getKeys)
	a.handle("PUT /v1/maps/{map}/max_keys", c(putKeys, a.cPutSetting("max_keys", "SETMAXKEYS", (*store.Map).SetMaxKeys)))
	a.handle("GET /v1/config", a.getConfig)
	a.handle("PATCH /v1/config", a.patchConfig)
	a.handle("GET /v1/stats", a.stats)
	a.handle("GET /v1/up", a.up)
	a.handle("GET /v1/nodes", a.nodes)
	a.handle("GET /v1/cluster", a.clusterView)
	a.eventRoutes()
	a.queryRoutes()
	a.storeRoutes()
}
