package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
)

// A reference implementation of the semantics, on encoding/json, to check
// the gjson-based one against: FuzzMatchReference.

// refValue is a decoded JSON value keeping object members in order (the
// first of duplicate names wins, as in gjson).
type refValue struct {
	kind  byte // 'o' object, 'a' array, 's', 'n' number, 't', 'f', 'z' null
	str   string
	names []string
	elems []*refValue
}

func refDecode(dec *json.Decoder) (*refValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		v := &refValue{kind: 'a'}
		if t == '{' {
			v.kind = 'o'
		}
		for dec.More() {
			if v.kind == 'o' {
				nt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v.names = append(v.names, nt.(string))
			}
			e, err := refDecode(dec)
			if err != nil {
				return nil, err
			}
			v.elems = append(v.elems, e)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return v, nil
	case string:
		return &refValue{kind: 's', str: t}, nil
	case json.Number:
		return &refValue{kind: 'n', str: string(t)}, nil
	case bool:
		if t {
			return &refValue{kind: 't'}, nil
		}
		return &refValue{kind: 'f'}, nil
	case nil:
		return &refValue{kind: 'z'}, nil
	}
	return nil, errors.New("unexpected token")
}

// refParse decodes doc, or reports false if it is not exactly one JSON value.
func refParse(doc []byte) (*refValue, bool) {
	if !json.Valid(doc) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := refDecode(dec)
	if err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

// refKey walks segs and returns the canonical key of the value there.
func refKey(v *refValue, segs []string) (string, bool) {
	for _, s := range segs {
		switch v.kind {
		case 'o':
			found := false
			for i, n := range v.names {
				if n == s {
					v, found = v.elems[i], true
					break
				}
			}
			if !found {
				return "", false
			}
		case 'a':
			// A segment of decimal digits indexes an array (leading zeros
			// allowed, as gjson reads them).
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(v.elems) || s[0] < '0' || s[0] > '9' {
				return "", false
			}
			v = v.elems[i]
		default:
			return "", false
		}
	}
	switch v.kind {
	case 's':
		return "s" + v.str, true
	case 'n':
		return numberKey(v.str), true
	case 't':
		return "t", true
	case 'f':
		return "f", true
	case 'z':
		return "n", true
	}
	return "o", true
}

func refMatch(c *Criteria, doc []byte) bool {
	v, ok := refParse(doc)
	if !ok {
		return false
	}
	for i := range c.Terms {
		k, ok := refKey(v, c.Terms[i].Segments)
		if !ok || !c.Terms[i].MatchKey(k) {
			return false
		}
	}
	return true
}

// FuzzMatchReference: for documents encoding/json reads (valid UTF-8, no
// disagreement on validity), the gjson-based Match agrees with a walk of
// the decoded document.
func FuzzMatchReference(f *testing.F) {
	for _, c := range [][2]string{
		{`id.type=3`, `{"id":{"type":3}}`},
		{`a.0.b!="x"`, `{"a":[{"b":"y"},{"b":"x"}]}`},
		{`a\.b>=1.5`, `{"a.b":2,"a":{"b":1}}`},
		{`x in [1,"1",null]`, `{"x":null,"x":1}`},
		{`\#=1 && \@this<"z"`, `{"#":1,"@this":"a"}`},
		{`a.01=1`, `{"a":[0,1]}`},
		{`a.1=1`, `{"a":{"1":1}}`},
		{`k=1`, `[{"k":1}]`},
		{`a\*=1`, `{"a*":1,"ab":1}`},
		{`a=1e400`, `{"a":1e999}`},
	} {
		f.Add(c[0], []byte(c[1]))
	}
	f.Fuzz(func(t *testing.T, text string, doc []byte) {
		c, err := Parse(text)
		if err != nil {
			return
		}
		if !json.Valid(doc) {
			if c.Match(doc) {
				t.Fatalf("%q matched %q, which encoding/json says is not JSON", text, doc)
			}
			return
		}
		if got, want := c.Match(doc), refMatch(c, doc); got != want {
			t.Fatalf("%q on %q: Match = %v, reference = %v", text, doc, got, want)
		}
	})
}
