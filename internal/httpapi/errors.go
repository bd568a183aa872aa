package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/engramdb/engram/internal/store"
)

// apiError is an error with its HTTP status and machine-readable code.
type apiError struct {
	status int
	code   string
	msg    string
	// written is reported with a put_all that failed part-way, so the
	// client knows how many items went in before the error.
	written *int
	// retryAfter is the Retry-After header in seconds (0: none), for
	// failures that pass by themselves (the cluster is moving partitions
	// or electing a leader).
	retryAfter int
}

func (e *apiError) Error() string { return e.msg }

// badRequest is the error for input the API refuses before touching data.
func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "bad_request", msg: fmt.Sprintf(format, args...)}
}

func notFound(msg string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "not_found", msg: msg}
}

// storeErrors maps the store's sentinel errors to statuses and codes. The
// message sent is the store's own text, which names the limit to change.
var storeErrors = []struct {
	err    error
	status int
	code   string
}{
	{store.ErrOutOfSequence, http.StatusConflict, "out_of_sequence"},
	{store.ErrKeyTooLong, http.StatusRequestEntityTooLarge, "key_too_long"},
	{store.ErrValueTooLarge, http.StatusRequestEntityTooLarge, "value_too_large"},
	{store.ErrMapFull, http.StatusUnprocessableEntity, "map_full"},
	{store.ErrTooManyMaps, http.StatusUnprocessableEntity, "too_many_maps"},
	{store.ErrOOM, http.StatusInsufficientStorage, "oom"},
	{store.ErrShardFull, http.StatusInsufficientStorage, "storage_exhausted"},
	{store.ErrNotInteger, http.StatusConflict, "not_integer"},
	{store.ErrOverflow, http.StatusConflict, "overflow"},
}

// toAPIError classifies err.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
			msg: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	}
	for _, e := range storeErrors {
		if errors.Is(err, e.err) {
			return &apiError{status: e.status, code: e.code, msg: err.Error()}
		}
	}
	return &apiError{status: http.StatusInternalServerError, code: "internal", msg: err.Error()}
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error   string `json:"error"`
	Code    string `json:"code"`
	Written *int   `json:"written,omitempty"`
}

// writeError sends err as {"error":..., "code":...} with its status.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	switch {
	case ae.status == http.StatusServiceUnavailable:
		// The cluster is changing: expected now and then, and retried.
		a.log.Warn("http request failed", "method", r.Method, "route", r.Pattern, "status", ae.status, "err", err)
	case ae.status >= 500:
		a.log.Error("http request failed", "method", r.Method, "route", r.Pattern, "status", ae.status, "err", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Error responses are never cached, and drop headers a handler may
	// have set for a success it did not reach.
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	if ae.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	w.WriteHeader(ae.status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: ae.msg, Code: ae.code, Written: ae.written})
}

// writeJSON sends v as JSON with status 200.
func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// The status is already sent when Encode fails (a client that went
	// away): nothing useful can be answered then.
	_ = enc.Encode(v)
	return nil
}

// replyErrors maps the error prefix of a Redis-protocol reply (see
// internal/server/errors.go) to a status and code, for the cluster path.
var replyErrors = map[string]struct {
	status     int
	code       string
	retryAfter int
}{
	"OOM":         {http.StatusInsufficientStorage, "oom", 0},
	"OUTOFSEQ":    {http.StatusConflict, "out_of_sequence", 0},
	"MAPFULL":     {http.StatusUnprocessableEntity, "map_full", 0},
	"TRYAGAIN":    {http.StatusServiceUnavailable, "try_again", 1},
	"CLUSTERDOWN": {http.StatusServiceUnavailable, "cluster_down", 1},
	"CROSSSLOT":   {http.StatusBadRequest, "cross_slot", 0},
	// The map's backing store failed (a read-through miss, a write-through
	// write, persist-now): the upstream of this gateway.
	"STORE": {http.StatusBadGateway, "store_error", 0},
}

// replyError classifies the error reply msg of a command run through the
// cluster (msg without the leading '-'). The prefixes of engine errors
// become the statuses the standalone path gives for the same errors;
// "ERR" replies are told apart by the store error's text that follows;
// anything else is an internal error.
func replyError(msg string) *apiError {
	prefix, rest, _ := strings.Cut(msg, " ")
	if e, ok := replyErrors[prefix]; ok {
		text := rest
		if e.retryAfter > 0 {
			// TRYAGAIN and CLUSTERDOWN: the word says what happened.
			text = msg
		}
		return &apiError{status: e.status, code: e.code, msg: text, retryAfter: e.retryAfter}
	}
	if prefix == "ERR" {
		for _, e := range storeErrors {
			if strings.HasPrefix(rest, e.err.Error()) {
				return &apiError{status: e.status, code: e.code, msg: rest}
			}
		}
		return &apiError{status: http.StatusInternalServerError, code: "internal", msg: rest}
	}
	return &apiError{status: http.StatusInternalServerError, code: "internal", msg: msg}
}
