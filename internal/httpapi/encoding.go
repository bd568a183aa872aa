package httpapi

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/engramdb/engram/internal/store"
)

// How keys, values and map names travel inside JSON. JSON strings are
// Unicode text, so bytes that are not valid UTF-8 cannot be sent as they
// are: such data goes base64-encoded (RFC 4648 standard alphabet, padded).
//
// Requests: a batch body's "encoding" field says how every key and value
// string in it is encoded: "utf8" (default, the string's UTF-8 bytes) or
// "base64".
//
// Responses: the "encoding" query parameter is "auto" (default) or
// "base64". Auto sends the strings as text when every one of them in the
// response is valid UTF-8, and base64 otherwise; either way the response's
// own "encoding" field ("utf8" or "base64") says which was used, so a
// client never guesses.
type encoding bool

const (
	encUTF8   encoding = false
	encBase64 encoding = true
)

func (e encoding) String() string {
	if e == encBase64 {
		return "base64"
	}
	return "utf8"
}

// str renders b as a JSON string's content in this encoding.
func (e encoding) str(b []byte) string {
	if e == encBase64 {
		return base64.StdEncoding.EncodeToString(b)
	}
	return string(b)
}

// decode turns a request string into bytes.
func (e encoding) decode(s string, what string) ([]byte, error) {
	if e == encBase64 {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, badRequest("%s is not valid base64 (standard alphabet, padded): %v", what, err)
		}
		return b, nil
	}
	return []byte(s), nil
}

// responseEncoding reads the "encoding" query parameter and picks the
// encoding for a response whose binary strings are given by each: auto
// falls back to base64 as soon as one of them is not valid UTF-8.
func responseEncoding(q url.Values, each func(yield func([]byte) bool)) (encoding, error) {
	switch q.Get("encoding") {
	case "", "auto":
	case "base64":
		return encBase64, nil
	default:
		return encUTF8, badRequest("encoding must be auto or base64, got %q", q.Get("encoding"))
	}
	enc := encUTF8
	each(func(b []byte) bool {
		if !utf8.Valid(b) {
			enc = encBase64
			return false
		}
		return true
	})
	return enc, nil
}

// jsonStream writes a JSON response piece by piece, so that a large list
// of values is not built as a second full copy in memory before sending.
type jsonStream struct {
	bw  *bufio.Writer
	buf bytes.Buffer
	enc *json.Encoder // encodes single values into buf
	bin encoding
}

func newJSONStream(w http.ResponseWriter, bin encoding) *jsonStream {
	w.Header().Set("Content-Type", "application/json")
	j := &jsonStream{bw: bufio.NewWriterSize(w, 32<<10), bin: bin}
	j.enc = json.NewEncoder(&j.buf)
	j.enc.SetEscapeHTML(false)
	return j
}

// raw writes JSON syntax as is.
func (j *jsonStream) raw(s string) { j.bw.WriteString(s) }

// value writes v as JSON.
func (j *jsonStream) value(v any) {
	j.buf.Reset()
	if err := j.enc.Encode(v); err != nil {
		// Only the API's own plain types reach here; they always encode.
		panic("BUG: httpapi: cannot encode " + err.Error())
	}
	j.bw.Write(bytes.TrimSuffix(j.buf.Bytes(), []byte("\n")))
}

// binary writes b as a JSON string in the response's encoding.
func (j *jsonStream) binary(b []byte) {
	if j.bin == encBase64 {
		j.bw.WriteByte('"')
		j.bw.WriteString(base64.StdEncoding.EncodeToString(b))
		j.bw.WriteByte('"')
		return
	}
	j.value(string(b))
}

// header writes the opening of a listing: {"encoding":"...",
func (j *jsonStream) header() {
	j.raw(`{"encoding":"`)
	j.raw(j.bin.String())
	j.raw(`"`)
}

// binaryList writes a JSON array of binary strings.
func (j *jsonStream) binaryList(list [][]byte) {
	j.raw("[")
	for i, b := range list {
		if i > 0 {
			j.raw(",")
		}
		j.binary(b)
	}
	j.raw("]")
}

// pairList writes a JSON array of {"key":...,"value":...} objects.
func (j *jsonStream) pairList(list []store.KV) {
	j.raw("[")
	for i, it := range list {
		if i > 0 {
			j.raw(",")
		}
		j.raw(`{"key":`)
		j.binary(it.Key)
		j.raw(`,"value":`)
		j.binary(it.Value)
		j.raw("}")
	}
	j.raw("]")
}

// close ends the response. Write errors mean the client went away; the
// status is sent by then, so there is nothing to answer.
func (j *jsonStream) close() error {
	j.raw("}\n")
	_ = j.bw.Flush()
	return nil
}

// batchBody is a decoded batch request.
type batchBody struct {
	keys  [][]byte
	items []store.KV
}

// decodeBatch decodes a batch request body: a JSON object with an optional
// "encoding" and one list field, "keys" (an array of strings) or "items"
// (an array of {"key":...,"value":...}). It streams through the array so
// that a body with more than MaxBatchItems entries is refused before they
// are all decoded, and refuses unknown or repeated fields and trailing data.
func decodeBatch(body []byte, list string) (batchBody, error) {
	var out batchBody
	if !utf8.Valid(body) {
		return out, badRequest("request body is not valid UTF-8 JSON: send binary keys and values base64-encoded with \"encoding\":\"base64\"")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return out, err
	}
	var strs []string
	var pairs []struct{ k, v string }
	enc, seenEnc, seenList := encUTF8, false, false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, jsonError(err)
		}
		field, _ := tok.(string)
		switch {
		case field == "encoding" && !seenEnc:
			seenEnc = true
			var s string
			if err := dec.Decode(&s); err != nil {
				return out, jsonError(err)
			}
			switch s {
			case "utf8":
			case "base64":
				enc = encBase64
			default:
				return out, badRequest("encoding must be utf8 or base64, got %q", s)
			}
		case field == list && !seenList:
			seenList = true
			if err := expectDelim(dec, '['); err != nil {
				return out, err
			}
			for n := 0; dec.More(); n++ {
				if n == MaxBatchItems {
					return out, &apiError{status: http.StatusRequestEntityTooLarge, code: "too_many_items",
						msg: fmt.Sprintf("a batch may carry at most %d entries: split it", MaxBatchItems)}
				}
				if list == "keys" {
					var s *string
					if err := dec.Decode(&s); err != nil {
						return out, jsonError(err)
					}
					if s == nil {
						return out, badRequest("keys must be strings, got null")
					}
					strs = append(strs, *s)
					continue
				}
				var it struct {
					Key   *string `json:"key"`
					Value *string `json:"value"`
				}
				if err := dec.Decode(&it); err != nil {
					return out, jsonError(err)
				}
				if it.Key == nil || it.Value == nil {
					return out, badRequest("every item needs a string key and a string value")
				}
				pairs = append(pairs, struct{ k, v string }{*it.Key, *it.Value})
			}
			if err := expectDelim(dec, ']'); err != nil {
				return out, err
			}
		default:
			return out, badRequest("unexpected field %q in request body (want %q and optionally \"encoding\", once each)", field, list)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return out, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return out, badRequest("request body has data after the JSON object")
	}
	if !seenList {
		return out, badRequest("request body lacks the %q field", list)
	}
	// Convert only now: "encoding" may come after the list.
	for i, s := range strs {
		b, err := enc.decode(s, "key")
		if err != nil {
			return out, withIndex(err, i)
		}
		out.keys = append(out.keys, b)
	}
	for i, p := range pairs {
		k, err := enc.decode(p.k, "key")
		if err != nil {
			return out, withIndex(err, i)
		}
		v, err := enc.decode(p.v, "value")
		if err != nil {
			return out, withIndex(err, i)
		}
		out.items = append(out.items, store.KV{Key: k, Value: v})
	}
	return out, nil
}

func withIndex(err error, i int) error {
	ae := toAPIError(err)
	return badRequest("entry %d: %s", i, ae.msg)
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return badRequest("invalid JSON body: expected %q, got %v", want, tok)
	}
	return nil
}

// jsonError words a decoding failure as a 400.
func jsonError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("invalid JSON body: unexpected end")
	}
	return badRequest("invalid JSON body: %v", err)
}

// decodeSettings strictly decodes a small JSON object body into v.
func decodeSettings(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body has data after the JSON object")
	}
	return nil
}
