package httpapi

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/engramdb/engram/internal/store"
)

// query parses the query string and refuses parameters the route does not
// know and parameters given twice: a mistyped option ("tll=5") must be an
// error, not a write without the TTL the client meant.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("invalid query string: %v", err)
	}
	for name, vals := range q {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, badRequest("unknown query parameter %q: this route takes none", name)
			}
			return nil, badRequest("unknown query parameter %q (this route takes: %v)", name, allowed)
		}
		if len(vals) > 1 {
			return nil, badRequest("query parameter %q given %d times", name, len(vals))
		}
	}
	if _, err := execOptions(q); err != nil {
		return nil, err
	}
	return q, nil
}

// boolParam reads a flag: present with no value, "1" or "true" is true;
// "0" or "false" is false; absent is false.
func boolParam(q url.Values, name string) (bool, error) {
	if !q.Has(name) {
		return false, nil
	}
	switch q.Get(name) {
	case "", "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, badRequest("%s must be true or false, got %q", name, q.Get(name))
}

// intParam reads an optional int64 within [lo, hi].
func intParam(q url.Values, name string, def, lo, hi int64) (int64, error) {
	if !q.Has(name) {
		return def, nil
	}
	n, err := strconv.ParseInt(q.Get(name), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s must be an integer between %d and %d, got %q", name, lo, hi, q.Get(name))
	}
	return n, nil
}

// seqParam reads the optional jc_s sequence number.
func seqParam(q url.Values) (seq uint64, has bool, err error) {
	if !q.Has("seq") {
		return 0, false, nil
	}
	seq, err = strconv.ParseUint(q.Get("seq"), 10, 64)
	if err != nil {
		return 0, false, badRequest("seq must be an unsigned 64-bit integer, got %q", q.Get("seq"))
	}
	return seq, true, nil
}

// expiry reads ttl (seconds), ttl_ms (milliseconds) and, where allowed,
// at_ms (Unix milliseconds) and returns the absolute expiry in Unix ms, or
// 0 when none is given. At most one may be given; relative ones must be
// positive and must not overflow.
func expiry(q url.Values, now int64) (int64, error) {
	given := 0
	for _, n := range []string{"ttl", "ttl_ms", "at_ms"} {
		if q.Has(n) {
			given++
		}
	}
	if given > 1 {
		return 0, badRequest("give at most one of ttl, ttl_ms and at_ms")
	}
	room := math.MaxInt64 - now // the largest relative TTL in ms
	for _, p := range []struct {
		name, unit string
		scale      int64
	}{{"ttl", "seconds", 1000}, {"ttl_ms", "milliseconds", 1}, {"at_ms", "Unix milliseconds", 0}} {
		if !q.Has(p.name) {
			continue
		}
		n, err := strconv.ParseInt(q.Get(p.name), 10, 64)
		if err != nil || n < 1 || (p.scale > 0 && n > room/p.scale) {
			return 0, badRequest("%s must be a positive integer (%s) that does not overflow, got %q", p.name, p.unit, q.Get(p.name))
		}
		if p.scale == 0 {
			return n, nil
		}
		return now + n*p.scale, nil
	}
	return 0, nil
}

// writeParams are the query parameters of put and put_all.
var writeParams = []string{"ttl", "ttl_ms", "keepttl", "nx", "xx", "seq", paramAck}

// setOptions reads the write options of put and put_all.
func (a *api) setOptions(q url.Values) (store.SetOptions, error) {
	var o store.SetOptions
	var err error
	if o.ExpireAt, err = expiry(q, a.clock()); err != nil {
		return o, err
	}
	if o.KeepTTL, err = boolParam(q, "keepttl"); err != nil {
		return o, err
	}
	if o.KeepTTL && o.ExpireAt != 0 {
		return o, badRequest("keepttl cannot be combined with ttl or ttl_ms")
	}
	nx, err := boolParam(q, "nx")
	if err != nil {
		return o, err
	}
	xx, err := boolParam(q, "xx")
	if err != nil {
		return o, err
	}
	switch {
	case nx && xx:
		return o, badRequest("nx and xx exclude each other")
	case nx:
		o.Cond = store.IfAbsent
	case xx:
		o.Cond = store.IfPresent
	}
	o.Seq, o.HasSeq, err = seqParam(q)
	return o, err
}

// readBody reads a request body of at most limit bytes. A declared length
// over the limit is refused before anything is read; an undeclared one is
// cut off by http.MaxBytesReader. The buffer grows with what actually
// arrives, so a client cannot reserve memory it does not send.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
			msg: fmt.Sprintf("request body is %d bytes, the limit is %d", r.ContentLength, limit)}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	buf := make([]byte, 0, min(max(r.ContentLength, 512), 1<<20))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, err
			}
			return nil, badRequest("cannot read the request body: %v", err)
		}
	}
}
