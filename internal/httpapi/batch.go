package httpapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/engramdb/engram/internal/store"
)

// Batch and whole-map routes: get_all, put_all, remove_items, the paged
// key_set / values / items listings, evict_map_since, clear and flush.

// batch reads and decodes a batch request body.
func (a *api) batch(w http.ResponseWriter, r *http.Request, list string) (batchBody, error) {
	body, err := readBody(w, r, a.maxBody)
	if err != nil {
		return batchBody{}, err
	}
	return decodeBatch(body, list)
}

// getAll is jc get_all: the found items and the keys that missed.
func (a *api) getAll(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "encoding", paramConsistent)
	if err != nil {
		return err
	}
	if _, err := responseEncoding(q, func(func([]byte) bool) {}); err != nil {
		return err
	}
	b, err := a.batch(w, r, "keys")
	if err != nil {
		return err
	}
	var found []store.KV
	misses := b.keys
	if m, ok := a.lookup(r); ok {
		found, misses = m.GetAll(b.keys)
	}
	enc, _ := responseEncoding(q, func(yield func([]byte) bool) {
		for _, it := range found {
			if !yield(it.Key) || !yield(it.Value) {
				return
			}
		}
		for _, k := range misses {
			if !yield(k) {
				return
			}
		}
	})
	j := newJSONStream(w, enc)
	j.header()
	j.raw(`,"found":`)
	j.pairList(found)
	j.raw(`,"misses":`)
	j.binaryList(misses)
	return j.close()
}

// putAll is jc put_all (and jc_s put_all with seq): every item with the
// same write options. Items are applied one by one; if one fails, the
// error says how many were written before it.
func (a *api) putAll(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, writeParams...)
	if err != nil {
		return err
	}
	o, err := a.setOptions(q)
	if err != nil {
		return err
	}
	b, err := a.batch(w, r, "items")
	if err != nil {
		return err
	}
	// Check every item first: a batch with one bad item changes nothing
	// (the sequence number included).
	for _, it := range b.items {
		if err := a.checkKey(it.Key); err != nil {
			return err
		}
		if err := a.checkValue(len(it.Value)); err != nil {
			return err
		}
	}
	m, err := a.open(r)
	if err != nil {
		return err
	}
	n, err := m.PutAll(b.items, o)
	if err != nil {
		ae := toAPIError(err)
		return &apiError{status: ae.status, code: ae.code, msg: ae.msg, written: &n}
	}
	return writeJSON(w, map[string]int{"written": n})
}

// removeItems is jc remove_items (and jc_s remove_items with seq): it
// deletes the keys and returns the items it removed.
func (a *api) removeItems(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "seq", "encoding", paramAck)
	if err != nil {
		return err
	}
	if _, err := responseEncoding(q, func(func([]byte) bool) {}); err != nil {
		return err
	}
	seq, hasSeq, err := seqParam(q)
	if err != nil {
		return err
	}
	b, err := a.batch(w, r, "keys")
	if err != nil {
		return err
	}
	var removed []store.KV
	if hasSeq {
		m, err := a.open(r)
		if err != nil {
			return err
		}
		if removed, err = m.RemoveItemsSeq(b.keys, seq); err != nil {
			return err
		}
	} else if m, ok := a.lookup(r); ok {
		removed = m.RemoveItems(b.keys)
	}
	enc, _ := responseEncoding(q, pairs(removed))
	j := newJSONStream(w, enc)
	j.header()
	j.raw(`,"removed":`)
	j.pairList(removed)
	return j.close()
}

// pairs yields every key and value of list.
func pairs(list []store.KV) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for _, it := range list {
			if !yield(it.Key) || !yield(it.Value) {
				return
			}
		}
	}
}

// page is one page of a listing: the keys of whole partitions from the
// cursor on (see store.Map.Scan), and the cursor to continue from, 0 at
// the end. Every key present for the whole listing appears exactly once.
func (a *api) page(r *http.Request) (q url.Values, keys [][]byte, m *store.Map, next uint64, err error) {
	if q, err = query(r, "cursor", "match", "count", "encoding", paramConsistent); err != nil {
		return
	}
	if _, err = responseEncoding(q, func(func([]byte) bool) {}); err != nil {
		return
	}
	cursor, err := intParam(q, "cursor", 0, 0, int64(a.st.Partitions()-1))
	if err != nil {
		return
	}
	count, err := intParam(q, "count", DefaultScanCount, 1, MaxScanCount)
	if err != nil {
		return
	}
	var pattern []byte
	if q.Has("match") {
		pattern = []byte(q.Get("match"))
	}
	m, ok := a.lookup(r)
	if !ok {
		return q, nil, nil, 0, nil
	}
	keys, next = m.Scan(uint64(cursor), pattern, int(count))
	return q, keys, m, next, nil
}

// listKeys is jc key_set, paged (Redis SCAN).
func (a *api) listKeys(w http.ResponseWriter, r *http.Request) error {
	q, keys, _, next, err := a.page(r)
	if err != nil {
		return err
	}
	enc, _ := responseEncoding(q, func(yield func([]byte) bool) {
		for _, k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	j := newJSONStream(w, enc)
	j.header()
	j.raw(`,"cursor":` + strconv.FormatUint(next, 10) + `,"keys":`)
	j.binaryList(keys)
	return j.close()
}

// listValues is jc values, paged; withKeys makes it the items listing.
// Keys that vanish between the page's scan and the read are skipped.
func (a *api) listValues(withKeys bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q, keys, m, next, err := a.page(r)
		if err != nil {
			return err
		}
		var found []store.KV
		if m != nil {
			found, _ = m.GetAll(keys)
		}
		enc, _ := responseEncoding(q, func(yield func([]byte) bool) {
			for _, it := range found {
				if (withKeys && !yield(it.Key)) || !yield(it.Value) {
					return
				}
			}
		})
		j := newJSONStream(w, enc)
		j.header()
		j.raw(`,"cursor":` + strconv.FormatUint(next, 10))
		if withKeys {
			j.raw(`,"items":`)
			j.pairList(found)
			return j.close()
		}
		j.raw(`,"values":[`)
		for i, it := range found {
			if i > 0 {
				j.raw(",")
			}
			j.binary(it.Value)
		}
		j.raw("]")
		return j.close()
	}
}

// evictSince is jc evict_map_since: it removes the items created more than
// age seconds ago.
func (a *api) evictSince(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "age", paramAck)
	if err != nil {
		return err
	}
	if !q.Has("age") {
		return badRequest("age (seconds) is required")
	}
	age, err := intParam(q, "age", 0, 0, 1<<40)
	if err != nil {
		return err
	}
	n := 0
	if m, ok := a.lookup(r); ok {
		n = m.EvictSince(age)
	}
	return writeJSON(w, map[string]int{"evicted": n})
}

// clearMap is jc clear: it empties one map; silent sends no delete events.
func (a *api) clearMap(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "silent", paramAck)
	if err != nil {
		return err
	}
	silent, err := boolParam(q, "silent")
	if err != nil {
		return err
	}
	if m, ok := a.lookup(r); ok {
		m.Clear(silent)
	}
	return writeJSON(w, map[string]bool{"ok": true})
}

// flush is jc flush and flush(silent): it empties every map.
func (a *api) flush(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "silent", paramAck)
	if err != nil {
		return err
	}
	silent, err := boolParam(q, "silent")
	if err != nil {
		return err
	}
	a.st.Flush(silent)
	return writeJSON(w, map[string]bool{"ok": true})
}
