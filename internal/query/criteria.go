package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Limits of the criteria grammar. They bound what one query can make a
// node parse and evaluate, whatever a client sends.
const (
	// MaxCriteriaLen is the longest criteria text accepted, in bytes.
	MaxCriteriaLen = 64 << 10
	// MaxTerms is the most criteria one query may combine with "&&".
	MaxTerms = 16
	// MaxSegments is the most segments a path may have.
	MaxSegments = 32
	// MaxPathLen is the longest path accepted, in bytes.
	MaxPathLen = 1024
	// MaxInValues is the most values an "in" list may hold.
	MaxInValues = 1024
)

// ErrBadCriteria is wrapped by every error Parse and ParsePath return, so
// front ends can tell malformed input from other failures.
var ErrBadCriteria = errors.New("invalid criteria")

// Op is a comparison operator.
type Op uint8

// Operators. Equality (and "in") compare JSON values exactly; the order
// operators compare two numbers numerically or two strings byte-wise and
// are false for any other pair of types.
const (
	OpEq Op = iota // =  (also ==)
	OpNe           // !=: the path exists and holds another value (of any type)
	OpLt           // <
	OpLe           // <=
	OpGt           // >
	OpGe           // >=
	OpIn           // in [v1, v2, ...]: equal to one of the values
)

var opNames = [...]string{"=", "!=", "<", "<=", ">", ">=", "in"}

// String returns the operator as the grammar writes it.
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", o)
}

// Value is a JSON scalar in canonical form.
//
// Canonical keys: "n" null, "f" false, "t" true, "i<decimal>" a number
// whose value is an integer in the int64 range (so 3, 3.0 and 3e0 are one
// value), "d<shortest float64 text>" any other number, "s<string>" a
// string (unescaped), and "o" an object or array found at a path (never a
// criteria value; only != matches it).
type Value struct {
	key string
}

// Key returns the value's canonical key (see Value).
func (v Value) Key() string { return v.key }

// String returns the value as JSON text.
func (v Value) String() string { return keyJSON(v.key) }

// keyJSON renders a canonical key as JSON text.
func keyJSON(k string) string {
	if k == "" {
		return ""
	}
	switch k[0] {
	case 'n':
		return "null"
	case 'f':
		return "false"
	case 't':
		return "true"
	case 'i':
		return k[1:]
	case 'd':
		switch k[1:] {
		case "+Inf":
			return "1e999"
		case "-Inf":
			return "-1e999"
		}
		return k[1:]
	case 's':
		return jsonString(k[1:])
	}
	return "{...}"
}

// jsonString quotes s as a JSON string (no HTML escaping).
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return `""`
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Criterion is one comparison: the value at Path compared with Values.
type Criterion struct {
	// Path is the dot path in canonical form (segments joined by '.',
	// reserved characters escaped with '\').
	Path string
	// Segments are the path's segments, unescaped.
	Segments []string
	// Op is the comparison.
	Op Op
	// Values holds the operand (several for OpIn).
	Values []Value

	gpath string // the path in gjson syntax
}

// Criteria are one or more criteria that must all hold (AND).
type Criteria struct {
	Terms []Criterion
}

// String returns the criteria in canonical form: parsing it gives the
// same criteria.
func (c *Criteria) String() string {
	var b strings.Builder
	for i, t := range c.Terms {
		if i > 0 {
			b.WriteString(" && ")
		}
		b.WriteString(t.String())
	}
	return b.String()
}

// String returns the criterion in canonical form.
func (t *Criterion) String() string {
	if t.Op == OpIn {
		vals := make([]string, len(t.Values))
		for i, v := range t.Values {
			vals[i] = v.String()
		}
		return t.Path + " in [" + strings.Join(vals, ",") + "]"
	}
	return t.Path + t.Op.String() + t.Values[0].String()
}

// Paths returns the distinct paths the criteria use, in order.
func (c *Criteria) Paths() []string {
	var out []string
	for _, t := range c.Terms {
		dup := false
		for _, p := range out {
			dup = dup || p == t.Path
		}
		if !dup {
			out = append(out, t.Path)
		}
	}
	return out
}

// Match reports whether doc, a JSON document, satisfies every criterion.
// A document that is not valid JSON matches nothing; so does one where a
// criterion's path does not exist.
func (c *Criteria) Match(doc []byte) bool {
	if !gjson.ValidBytes(doc) {
		return false
	}
	for i := range c.Terms {
		t := &c.Terms[i]
		k, ok := valueKeyAt(doc, t.gpath)
		if !ok || !t.MatchKey(k) {
			return false
		}
	}
	return true
}

// MatchKey reports whether a value with canonical key k (the value found
// at the criterion's path) satisfies the criterion. Indexes hold such keys.
func (t *Criterion) MatchKey(k string) bool {
	switch t.Op {
	case OpEq:
		return k == t.Values[0].key
	case OpNe:
		return k != t.Values[0].key
	case OpIn:
		for _, v := range t.Values {
			if k == v.key {
				return true
			}
		}
		return false
	}
	c, ok := compareKeys(k, t.Values[0].key)
	if !ok {
		return false
	}
	switch t.Op {
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	}
	return false
}

// compareKeys orders two canonical keys: numbers numerically (integers
// exactly, otherwise as float64), strings byte-wise. ok is false for any
// other pair.
func compareKeys(a, b string) (int, bool) {
	if a == "" || b == "" {
		return 0, false
	}
	switch {
	case a[0] == 's' && b[0] == 's':
		return strings.Compare(a[1:], b[1:]), true
	case a[0] == 'i' && b[0] == 'i':
		x, err1 := strconv.ParseInt(a[1:], 10, 64)
		y, err2 := strconv.ParseInt(b[1:], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		return cmp3(x, y), true
	case (a[0] == 'i' || a[0] == 'd') && (b[0] == 'i' || b[0] == 'd'):
		x, err1 := strconv.ParseFloat(a[1:], 64)
		y, err2 := strconv.ParseFloat(b[1:], 64)
		if err1 != nil && !isRange(err1) || err2 != nil && !isRange(err2) {
			return 0, false
		}
		return cmp3(x, y), true
	}
	return 0, false
}

func isRange(err error) bool { return errors.Is(err, strconv.ErrRange) }

func cmp3[T int64 | float64](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// ValueKeyAt returns the canonical key of the value at gjson path gpath in
// doc, which must be valid JSON (check with gjson.ValidBytes first). ok is
// false if the path does not exist.
func valueKeyAt(doc []byte, gpath string) (string, bool) {
	r := gjson.GetBytes(doc, gpath)
	if !r.Exists() {
		return "", false
	}
	return resultKey(r), true
}

// resultKey returns the canonical key of a gjson result that exists.
func resultKey(r gjson.Result) string {
	switch r.Type {
	case gjson.Null:
		return "n"
	case gjson.False:
		return "f"
	case gjson.True:
		return "t"
	case gjson.Number:
		return numberKey(r.Raw)
	case gjson.String:
		// Invalid UTF-8 reads as U+FFFD, as encoding/json decodes it: the
		// canonical form must survive printing as JSON and parsing again.
		return "s" + strings.ToValidUTF8(r.Str, "\uFFFD")
	}
	return "o"
}

// numberKey canonicalises a JSON number literal.
func numberKey(raw string) string {
	if !strings.ContainsAny(raw, ".eE") {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return "i" + strconv.FormatInt(n, 10)
		}
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil && !isRange(err) {
		return "d" + raw // unreachable for valid JSON
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return "i" + strconv.FormatInt(int64(f), 10)
	}
	return "d" + strconv.FormatFloat(f, 'g', -1, 64)
}

// Parse parses criteria text. The grammar (docs/queries.md):
//
//	criteria  = criterion *( "&&" criterion )
//	criterion = path op value | path "in" list
//	path      = segment *( "." segment )
//	segment   = 1*( ALPHA / DIGIT / "_" / "-" / "$" / ":" / non-ASCII / "\" any-printable-ASCII )
//	op        = "=" / "==" / "!=" / "<" / "<=" / ">" / ">="
//	value     = a JSON scalar: number, "string", true, false or null
//	list      = "[" value *( "," value ) "]"
//
// Spaces and tabs may surround every token; "in" must be separated from
// the path by at least one. Strings are JSON strings (double quotes,
// JSON escapes); a bare word such as bob is an error, not a string, so
// that id.type=3 (the number) and id.type="3" (the string) are never
// confused. The order operators need a number or a string.
func Parse(text string) (*Criteria, error) {
	if len(text) > MaxCriteriaLen {
		return nil, bad("criteria are %d bytes, the limit is %d", len(text), MaxCriteriaLen)
	}
	p := &parser{s: text}
	c := &Criteria{}
	for {
		p.space()
		if p.eof() {
			if len(c.Terms) == 0 {
				return nil, bad("empty criteria: want path=value, e.g. id.type=3")
			}
			return nil, p.errf("expected a criterion after &&")
		}
		if len(c.Terms) == MaxTerms {
			return nil, bad("more than %d criteria combined with &&", MaxTerms)
		}
		t, err := p.criterion()
		if err != nil {
			return nil, err
		}
		c.Terms = append(c.Terms, t)
		p.space()
		if p.eof() {
			return c, nil
		}
		if !strings.HasPrefix(p.s[p.i:], "&&") {
			return nil, p.errf("expected && or the end of the criteria")
		}
		p.i += 2
	}
}

// ParsePath parses a dot path (the path part of a criterion) and returns
// it in canonical form, as index definitions and Criterion.Path use it.
func ParsePath(text string) (string, error) {
	p := &parser{s: text}
	p.space()
	segs, err := p.path()
	if err != nil {
		return "", err
	}
	p.space()
	if !p.eof() {
		return "", p.errf("unexpected character %q after the path (escape spaces and other reserved characters with '\\')", p.peekRune())
	}
	return joinPath(segs), nil
}

// pathOf returns the unescaped segments and gjson path of a canonical path.
func pathOf(canonical string) ([]string, string, error) {
	p := &parser{s: canonical}
	segs, err := p.path()
	if err != nil {
		return nil, "", err
	}
	if !p.eof() {
		return nil, "", p.errf("unexpected character %q in path", p.peekRune())
	}
	return segs, gjsonPath(segs), nil
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadCriteria, fmt.Sprintf(format, args...))
}

type parser struct {
	s string
	i int
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) peekRune() rune {
	r, _ := utf8.DecodeRuneInString(p.s[p.i:])
	return r
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d of %q: %s", ErrBadCriteria, p.i, clip(p.s), fmt.Sprintf(format, args...))
}

// clip shortens text quoted in an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func plainSegmentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '$' || c == ':' || c >= 0x80
}

// path reads segments separated by '.'.
func (p *parser) path() ([]string, error) {
	start := p.i
	var segs []string
	for {
		var seg []byte
		for p.i < len(p.s) {
			c := p.s[p.i]
			if plainSegmentByte(c) {
				seg = append(seg, c)
				p.i++
				continue
			}
			if c == '\\' {
				if p.i+1 >= len(p.s) || p.s[p.i+1] < 0x20 || p.s[p.i+1] > 0x7e {
					return nil, p.errf("'\\' must be followed by a printable ASCII character")
				}
				seg = append(seg, p.s[p.i+1])
				p.i += 2
				continue
			}
			break
		}
		if len(seg) == 0 {
			if p.eof() {
				return nil, p.errf("expected a path segment (letters, digits, _ - $ : or '\\'-escaped characters)")
			}
			return nil, p.errf("unexpected character %q: expected a path segment (letters, digits, _ - $ : or '\\'-escaped characters)", p.peekRune())
		}
		if !utf8.Valid(seg) {
			return nil, p.errf("path segment is not valid UTF-8")
		}
		segs = append(segs, string(seg))
		if len(segs) > MaxSegments {
			return nil, p.errf("path has more than %d segments", MaxSegments)
		}
		if p.i-start > MaxPathLen {
			return nil, p.errf("path is longer than %d bytes", MaxPathLen)
		}
		if p.eof() || p.s[p.i] != '.' {
			return segs, nil
		}
		p.i++
	}
}

// joinPath writes segments in canonical form.
func joinPath(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(s); j++ {
			if !plainSegmentByte(s[j]) {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
	}
	return b.String()
}

// gjsonPath writes segments in gjson's path syntax, every character that
// syntax reserves escaped, so no segment can invoke a wildcard, modifier,
// query or pipe.
func gjsonPath(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(s); j++ {
			c := s[j]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':' || c >= 0x80) {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

// criterion reads path op value.
func (p *parser) criterion() (Criterion, error) {
	segs, err := p.path()
	if err != nil {
		return Criterion{}, err
	}
	t := Criterion{Segments: segs, Path: joinPath(segs), gpath: gjsonPath(segs)}
	hadSpace := p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t')
	p.space()
	rest := p.s[p.i:]
	switch {
	case strings.HasPrefix(rest, "=="):
		t.Op, p.i = OpEq, p.i+2
	case strings.HasPrefix(rest, "!="):
		t.Op, p.i = OpNe, p.i+2
	case strings.HasPrefix(rest, "<="):
		t.Op, p.i = OpLe, p.i+2
	case strings.HasPrefix(rest, ">="):
		t.Op, p.i = OpGe, p.i+2
	case strings.HasPrefix(rest, "="):
		t.Op, p.i = OpEq, p.i+1
	case strings.HasPrefix(rest, "<"):
		t.Op, p.i = OpLt, p.i+1
	case strings.HasPrefix(rest, ">"):
		t.Op, p.i = OpGt, p.i+1
	case hadSpace && len(rest) >= 2 && strings.EqualFold(rest[:2], "in") && (len(rest) == 2 || rest[2] == ' ' || rest[2] == '\t' || rest[2] == '['):
		t.Op, p.i = OpIn, p.i+2
	case rest == "":
		return t, p.errf("expected an operator (= != < <= > >= in) after path %q", t.Path)
	default:
		return t, p.errf("unexpected character %q after path %q: expected an operator (= != < <= > >= in)", p.peekRune(), t.Path)
	}
	p.space()
	if t.Op == OpIn {
		t.Values, err = p.list()
		return t, err
	}
	v, err := p.value()
	if err != nil {
		return t, err
	}
	if t.Op >= OpLt && t.Op <= OpGe && v.key[0] != 'i' && v.key[0] != 'd' && v.key[0] != 's' {
		return t, bad("operator %s needs a number or a string, got %s", t.Op, v)
	}
	t.Values = []Value{v}
	return t, nil
}

// token returns the extent of the JSON token at p.i: a string (with its
// escapes) or a run of characters up to a space, ',', ']' or '&'.
func (p *parser) token() string {
	start := p.i
	if p.i < len(p.s) && p.s[p.i] == '"' {
		p.i++
		for p.i < len(p.s) {
			switch p.s[p.i] {
			case '\\':
				p.i += 2
				continue
			case '"':
				p.i++
				return p.s[start:p.i]
			}
			p.i++
		}
		p.i = len(p.s)
		return p.s[start:]
	}
	for p.i < len(p.s) && !strings.ContainsRune(" \t,]&", rune(p.s[p.i])) {
		p.i++
	}
	return p.s[start:p.i]
}

// value reads one JSON scalar.
func (p *parser) value() (Value, error) {
	at := p.i
	tok := p.token()
	if tok == "" {
		if p.eof() {
			return Value{}, p.errf("expected a value (a JSON number, \"string\", true, false or null)")
		}
		return Value{}, p.errf("unexpected character %q: expected a value (a JSON number, \"string\", true, false or null)", p.peekRune())
	}
	if !gjson.Valid(tok) {
		p.i = at
		if tok[0] == '"' {
			return Value{}, p.errf("invalid JSON string %s", clip(tok))
		}
		if tok[0] == '[' || tok[0] == '{' {
			return Value{}, p.errf("values must be JSON scalars (number, \"string\", true, false, null), not objects or arrays")
		}
		return Value{}, p.errf("invalid value %q: want a JSON number, \"string\", true, false or null (strings need double quotes)", clip(tok))
	}
	r := gjson.Parse(tok)
	if r.Type == gjson.JSON {
		p.i = at
		return Value{}, p.errf("values must be JSON scalars (number, \"string\", true, false, null), not objects or arrays")
	}
	return Value{key: resultKey(r)}, nil
}

// list reads "[" value *( "," value ) "]".
func (p *parser) list() ([]Value, error) {
	if p.eof() || p.s[p.i] != '[' {
		return nil, p.errf("expected '[' after in: in [v1, v2, ...]")
	}
	p.i++
	var vals []Value
	for {
		p.space()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if len(vals) == MaxInValues {
			return nil, bad("an in list holds at most %d values", MaxInValues)
		}
		vals = append(vals, v)
		p.space()
		if p.eof() {
			return nil, p.errf("expected ',' or ']' to close the in list")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return vals, nil
		default:
			return nil, p.errf("unexpected character %q in the in list: expected ',' or ']'", p.peekRune())
		}
	}
}
