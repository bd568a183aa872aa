package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// record is one line of the export format (JSON Lines):
//
//	{"key":"user:1","value":"{\"name\":\"ada\"}","ttl_ms":0}
//	{"key_b64":"/wA=","value_b64":"AAEC","ttl_ms":59000}
//
// Keys and values are binary-safe, JSON strings are not: a key or value
// that is valid UTF-8 is written as a string (readable, greppable), any
// other as base64 in the _b64 field. ttl_ms is the time to live left at
// export, 0 for none. Pointers tell an absent field from an empty one,
// since "" is a valid value.
type record struct {
	Key      *string `json:"key,omitempty"`
	KeyB64   *string `json:"key_b64,omitempty"`
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
	TTLms    *int64  `json:"ttl_ms,omitempty"`
}

// newRecord builds the record of a key and value; ttlMS < 0 leaves
// ttl_ms out (for get --json, where no TTL was asked for).
func newRecord(key, value string, ttlMS int64) record {
	var r record
	r.Key, r.KeyB64 = textOrBase64(key)
	r.Value, r.ValueB64 = textOrBase64(value)
	if ttlMS >= 0 {
		r.TTLms = &ttlMS
	}
	return r
}

// newRecordEncoder returns the encoder of export lines. HTML escaping is
// off so values holding <, > or & stay readable and byte-identical.
func newRecordEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

func textOrBase64(s string) (text, b64 *string) {
	if utf8.ValidString(s) {
		return &s, nil
	}
	e := base64.StdEncoding.EncodeToString([]byte(s))
	return nil, &e
}

// parseRecord decodes one line of the export format. It is strict: an
// unknown field, a missing or doubled key or value, bad base64 or a
// negative TTL is an error, because importing a half-understood line
// would write the wrong data without a word.
func parseRecord(line []byte) (key, value string, ttlMS int64, err error) {
	var r record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return "", "", 0, fmt.Errorf("invalid JSON: %w", err)
	}
	if rest := bytes.TrimSpace(line[dec.InputOffset():]); len(rest) > 0 {
		return "", "", 0, errors.New("invalid JSON: text after the object")
	}
	if key, err = pick("key", r.Key, r.KeyB64); err != nil {
		return "", "", 0, err
	}
	if value, err = pick("value", r.Value, r.ValueB64); err != nil {
		return "", "", 0, err
	}
	if r.TTLms != nil {
		if *r.TTLms < 0 {
			return "", "", 0, fmt.Errorf("ttl_ms %d is negative (0 means no expiry)", *r.TTLms)
		}
		ttlMS = *r.TTLms
	}
	return key, value, ttlMS, nil
}

func pick(name string, text, b64 *string) (string, error) {
	switch {
	case text != nil && b64 != nil:
		return "", fmt.Errorf("both %q and %q are set; use one", name, name+"_b64")
	case text != nil:
		return *text, nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return "", fmt.Errorf("%q is not valid base64: %w", name+"_b64", err)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("missing %q (or %q)", name, name+"_b64")
}

// printable returns s as is when it prints cleanly on one line, and as a
// Go-quoted string otherwise, so that a binary key or one with a newline
// cannot break line-oriented output (keys, maps). Quoting only when needed
// keeps ordinary names copy-pasteable, as redis-cli does. Leading or
// trailing spaces are quoted too: they would be invisible.
func printable(s string) string {
	if !utf8.ValidString(s) || s == "" || s[0] == '"' || s[0] == ' ' || s[len(s)-1] == ' ' {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
