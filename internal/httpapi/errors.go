package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

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
	if ae.status >= 500 {
		a.log.Error("http request failed", "method", r.Method, "route", r.Pattern, "status", ae.status, "err", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Error responses are never cached, and drop headers a handler may
	// have set for a success it did not reach.
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
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
