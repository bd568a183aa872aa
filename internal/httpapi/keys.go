package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/engramdb/engram/internal/store"
)

// Single-key routes. The key is the rest of the path after the route's
// prefix ({key...}), percent-decoded, so it may hold any bytes, '/'
// included (sent as %2F).

// lookup returns the map of the request for a read: a read never creates a
// map, so probing made-up names costs the node nothing.
func (a *api) lookup(r *http.Request) (*store.Map, bool) {
	return a.st.Lookup([]byte(r.PathValue("map")))
}

// open returns the map of the request for a write, creating it within
// the store's bound on the number of maps.
func (a *api) open(r *http.Request) (*store.Map, error) {
	return a.st.OpenMap(r.PathValue("map"))
}

func key(r *http.Request) []byte { return []byte(r.PathValue("key")) }

var errKeyNotFound = notFound("key not found")

// ttlHeaders describes an item's expiry from its remaining time to live
// (store.Map.TTL: ms, -1 for none): Engram-Ttl-Ms is the remaining time in
// milliseconds or -1, Engram-Expire-At the absolute expiry in Unix
// milliseconds (absent when none).
func (a *api) ttlHeaders(w http.ResponseWriter, ttl int64) {
	h := w.Header()
	if ttl == -1 {
		h.Set("Engram-Ttl-Ms", "-1")
		return
	}
	ttl = max(ttl, 0) // -2: gone since the read, which was current then
	h.Set("Engram-Ttl-Ms", strconv.FormatInt(ttl, 10))
	h.Set("Engram-Expire-At", strconv.FormatInt(a.clock()+ttl, 10))
}

// getValue is jc get: the raw value as the body.
func (a *api) getValue(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r, paramConsistent); err != nil {
		return err
	}
	m, ok := a.lookup(r)
	if !ok {
		return errKeyNotFound
	}
	// Get, not GetEntry: only Get counts hits and misses for the stats.
	k := key(r)
	val, ok := m.Get(nil, k)
	if !ok {
		return errKeyNotFound
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(val)))
	h.Set("Cache-Control", "no-store")
	a.ttlHeaders(w, m.TTL(k))
	_, _ = w.Write(val)
	return nil
}

// headValue is jc contains_key as HEAD: 200 or 404 and the TTL headers,
// without copying the value or counting a hit.
func (a *api) headValue(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r, paramConsistent); err != nil {
		return err
	}
	m, ok := a.lookup(r)
	if !ok {
		return errKeyNotFound
	}
	ttl := m.TTL(key(r))
	if ttl == -2 {
		return errKeyNotFound
	}
	a.ttlHeaders(w, ttl)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// exists is jc contains_key as JSON.
func (a *api) exists(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r, paramConsistent); err != nil {
		return err
	}
	m, ok := a.lookup(r)
	return writeJSON(w, map[string]bool{"exists": ok && m.Contains(key(r))})
}

// putValue is jc put (and jc_s put with seq): the raw body is the value.
func (a *api) putValue(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, writeParams...)
	if err != nil {
		return err
	}
	o, err := a.setOptions(q)
	if err != nil {
		return err
	}
	k := key(r)
	if err := a.checkKey(k); err != nil {
		// Refuse before reading a body that cannot be stored.
		return err
	}
	val, err := a.readValue(w, r)
	if err != nil {
		return err
	}
	m, err := a.open(r)
	if err != nil {
		return err
	}
	res, err := m.Set(k, val, o)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]bool{"written": res.Written, "existed": res.Existed})
}

// deleteValue is jc evict (and jc_s evict with seq).
func (a *api) deleteValue(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "seq", paramAck)
	if err != nil {
		return err
	}
	seq, hasSeq, err := seqParam(q)
	if err != nil {
		return err
	}
	var deleted bool
	if hasSeq {
		// The sequence is recorded even if the map has no keys yet.
		if err := a.checkKey(key(r)); err != nil {
			return err
		}
		m, err := a.open(r)
		if err != nil {
			return err
		}
		if deleted, err = m.DeleteSeq(key(r), seq); err != nil {
			return err
		}
	} else if m, ok := a.lookup(r); ok {
		deleted = m.Delete(key(r))
	}
	return writeJSON(w, map[string]bool{"deleted": deleted})
}

// getTTL reports a key's remaining time to live as Redis's PTTL and TTL
// do: -1 when it has none; 404 when the key is missing.
func (a *api) getTTL(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r, paramConsistent); err != nil {
		return err
	}
	m, ok := a.lookup(r)
	if !ok {
		return errKeyNotFound
	}
	ms := m.TTL(key(r))
	switch ms {
	case -2:
		return errKeyNotFound
	case -1:
		return writeJSON(w, map[string]int64{"ttl_ms": -1, "ttl": -1})
	}
	// Rounded to the nearest second, as Redis's TTL does.
	return writeJSON(w, map[string]int64{"ttl_ms": ms, "ttl": (ms + 500) / 1000})
}

// expire sets a key's expiry (Redis EXPIRE, PEXPIRE and PEXPIREAT). An
// absolute time already past deletes the key, as in Redis.
func (a *api) expire(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "ttl", "ttl_ms", "at_ms", paramAck)
	if err != nil {
		return err
	}
	now := a.clock()
	at, err := expiry(q, now)
	if err != nil {
		return err
	}
	if at == 0 {
		return badRequest("give one of ttl, ttl_ms or at_ms")
	}
	m, ok := a.lookup(r)
	if !ok {
		return errKeyNotFound
	}
	found := false
	err = m.Mutate(key(r), func(_ store.Entry, exists bool) (store.Mutation, error) {
		found = exists
		switch {
		case !exists:
			return store.Mutation{Action: store.Keep}, nil
		case at <= now:
			return store.Mutation{Action: store.Remove}, nil
		}
		return store.Mutation{Action: store.SetExpiry, ExpireAt: at}, nil
	})
	if err != nil {
		return err
	}
	if !found {
		return errKeyNotFound
	}
	if at <= now {
		return writeJSON(w, map[string]any{"updated": true, "ttl_ms": -2})
	}
	return writeJSON(w, map[string]any{"updated": true, "ttl_ms": at - now})
}

// persist removes a key's own expiry (Redis PERSIST); the map's max TTL
// still applies.
func (a *api) persist(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r, paramAck); err != nil {
		return err
	}
	m, ok := a.lookup(r)
	if !ok {
		return errKeyNotFound
	}
	found, updated := false, false
	err := m.Mutate(key(r), func(cur store.Entry, exists bool) (store.Mutation, error) {
		found, updated = exists, exists && cur.ExpireAt != 0
		if !updated {
			return store.Mutation{Action: store.Keep}, nil
		}
		return store.Mutation{Action: store.SetExpiry}, nil
	})
	if err != nil {
		return err
	}
	if !found {
		return errKeyNotFound
	}
	return writeJSON(w, map[string]bool{"updated": updated})
}

// incr adds by (default 1, may be negative) to the integer stored at key
// (Redis INCRBY): a missing key counts as 0, the key's TTL is kept, and a
// value that is not a canonical 64-bit integer, or a sum that overflows,
// is refused with 409.
func (a *api) incr(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "by", paramAck)
	if err != nil {
		return err
	}
	by, err := intParam(q, "by", 1, -1<<63, 1<<63-1)
	if err != nil {
		return err
	}
	k := key(r)
	if err := a.checkKey(k); err != nil {
		return err
	}
	m, err := a.open(r)
	if err != nil {
		return err
	}
	var result int64
	err = m.Mutate(k, func(cur store.Entry, exists bool) (store.Mutation, error) {
		var n int64
		if exists {
			var ok bool
			if n, ok = parseRedisInt(cur.Value); !ok {
				return store.Mutation{}, store.ErrNotInteger
			}
		}
		if (by > 0 && n > 1<<63-1-by) || (by < 0 && n < -1<<63-by) {
			return store.Mutation{}, store.ErrOverflow
		}
		result = n + by
		return store.Mutation{Action: store.Put, Value: strconv.AppendInt(nil, result, 10), ExpireAt: cur.ExpireAt}, nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]int64{"value": result})
}

// parseRedisInt accepts what Redis's string2ll does: a canonical decimal
// int64, no sign but '-', no leading zeros or spaces.
func parseRedisInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != string(b) {
		return 0, false
	}
	return n, true
}

// readValue reads the body of a single-value write. A value over the
// store's limit is refused as value_too_large without being read whole.
func (a *api) readValue(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := a.st.MaxValueLen()
	if limit >= a.maxBody || r.ContentLength > a.maxBody {
		return readBody(w, r, a.maxBody)
	}
	if r.ContentLength > limit {
		return nil, a.checkValue(int(r.ContentLength))
	}
	val, err := readBody(w, r, limit)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, a.checkValue(int(limit + 1))
	}
	return val, err
}

// checkValue refuses a value over the store's limit.
func (a *api) checkValue(n int) error {
	if limit := a.st.MaxValueLen(); int64(n) > limit {
		return fmt.Errorf("%w: %d bytes, the limit is %d", store.ErrValueTooLarge, n, limit)
	}
	return nil
}

// checkKey refuses a key over the store's limit before a write opens (and
// so creates) its map: refused input must leave no trace.
func (a *api) checkKey(k []byte) error {
	if limit := a.st.MaxKeyLen(); len(k) > limit {
		return fmt.Errorf("%w: %d bytes, the limit is %d", store.ErrKeyTooLong, len(k), limit)
	}
	return nil
}
