package query

import (
	"errors"
	"strings"
	"testing"
)

func TestMatchSemantics(t *testing.T) {
	cases := []struct {
		crit string
		doc  string
		want bool
	}{
		// jc's example: numbers compare by JSON value.
		{`id.type=3`, `{"id":{"type":3}}`, true},
		{`id.type=3`, `{"id":{"type":"3"}}`, false},
		{`id.type="3"`, `{"id":{"type":"3"}}`, true},
		{`id.type="3"`, `{"id":{"type":3}}`, false},
		{`id.type=3`, `{"id":{"type":3.0}}`, true},
		{`id.type=3`, `{"id":{"type":3e0}}`, true},
		{`id.type=3.0`, `{"id":{"type":3}}`, true},
		{`id.type=3`, `{"id":{"type":3.5}}`, false},
		{`id.type==3`, `{"id":{"type":3}}`, true},
		{`x=-0`, `{"x":0}`, true},
		{`x=9007199254740993`, `{"x":9007199254740993}`, true},
		{`x=9007199254740993`, `{"x":9007199254740992}`, false},
		{`x=1.5`, `{"x":1.50}`, true},
		{`x=1e400`, `{"x":1e999}`, true},
		// Other scalars.
		{`a=true`, `{"a":true}`, true},
		{`a=true`, `{"a":"true"}`, false},
		{`a=false`, `{"a":false}`, true},
		{`a=null`, `{"a":null}`, true},
		{`a=null`, `{}`, false},
		{`a=null`, `{"a":false}`, false},
		{`name="bob"`, `{"name":"bob"}`, true},
		{`name="bob"`, `{"name":"Bob"}`, false},
		{`name="b\u00f6b"`, `{"name":"böb"}`, true},
		{`name="a\"b"`, `{"name":"a\"b"}`, true},
		{`name="x"`, `{"name":"\u0078"}`, true},
		// Nesting and missing paths.
		{`a.b.c.d=1`, `{"a":{"b":{"c":{"d":1}}}}`, true},
		{`a.b.c.d=1`, `{"a":{"b":{"c":1}}}`, false},
		{`a.b=1`, `{"a":1}`, false},
		{`missing=1`, `{"a":1}`, false},
		{`a=1`, `[1]`, false},
		// Arrays: numeric segments index them; an array is not a scalar.
		{`tags.0="red"`, `{"tags":["red","blue"]}`, true},
		{`tags.1="blue"`, `{"tags":["red","blue"]}`, true},
		{`tags.2="blue"`, `{"tags":["red","blue"]}`, false},
		{`tags="red"`, `{"tags":["red","blue"]}`, false},
		{`items.1.sku=7`, `{"items":[{"sku":5},{"sku":7}]}`, true},
		{`0.a=1`, `[{"a":1}]`, true},
		{`m.0=1`, `{"m":{"0":1}}`, true},
		// Escaped segments reach keys with reserved characters.
		{`first\ name="Jo"`, `{"first name":"Jo"}`, true},
		{`a\.b=1`, `{"a.b":1}`, true},
		{`a\.b=1`, `{"a":{"b":1}}`, false},
		{`a.b=1`, `{"a.b":1}`, false},
		{`\#=1`, `{"#":1}`, true},
		{`\*=1`, `{"a":1}`, false},
		{`\@this=1`, `{"@this":1}`, true},
		{`\@this=1`, `1`, false},
		{`k\|x=1`, `{"k|x":1}`, true},
		{`k\|x=1`, `{"k":{"x":1}}`, false},
		{`$id:x=1`, `{"$id:x":1}`, true},
		// Malformed documents never match.
		{`id.type=3`, `{"id":{"type":3}`, false},
		{`id.type=3`, `{"id":{"type":3}}}`, false},
		{`id.type=3`, `not json`, false},
		{`id.type=3`, ``, false},
		{`id.type=3`, `{"id":{"type":3,}}`, false},
		{`a!=1`, `{"a":2`, false},
		// != : path exists and holds another value, of any type.
		{`a!=1`, `{"a":2}`, true},
		{`a!=1`, `{"a":1}`, false},
		{`a!=1`, `{"a":"1"}`, true},
		{`a!=1`, `{"a":{"b":1}}`, true},
		{`a!=1`, `{"a":[1]}`, true},
		{`a!=1`, `{"b":1}`, false},
		// Order: numbers with numbers, strings with strings.
		{`a>1`, `{"a":2}`, true},
		{`a>1`, `{"a":1}`, false},
		{`a>=1`, `{"a":1}`, true},
		{`a<1`, `{"a":0.5}`, true},
		{`a<=1`, `{"a":1.0}`, true},
		{`a>1`, `{"a":"2"}`, false},
		{`a>1`, `{"a":true}`, false},
		{`a>1.5`, `{"a":2}`, true},
		{`a<-1e300`, `{"a":-1e999}`, true},
		{`a>"b"`, `{"a":"c"}`, true},
		{`a>"b"`, `{"a":"a"}`, false},
		{`a<"b"`, `{"a":3}`, false},
		// in
		{`a in [1,2,3]`, `{"a":2}`, true},
		{`a in [1,2,3]`, `{"a":4}`, false},
		{`a IN [1, "x", null]`, `{"a":"x"}`, true},
		{`a in [1, "x", null]`, `{"a":null}`, true},
		{`a in[1]`, `{"a":1}`, true},
		// AND
		{`a=1 && b=2`, `{"a":1,"b":2}`, true},
		{`a=1&&b=2`, `{"a":1,"b":3}`, false},
		{`a=1 && a!=1`, `{"a":1}`, false},
		{`a>1 && a<3`, `{"a":2}`, true},
		// Values are found even after other content; duplicates: the first.
		{`z=1`, `{"a":[1,2,{"z":2}],"z":1}`, true},
		{`z=1`, `{"z":1,"z":2}`, true},
	}
	for _, c := range cases {
		cr, err := Parse(c.crit)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.crit, err)
			continue
		}
		if got := cr.Match([]byte(c.doc)); got != c.want {
			t.Errorf("%q on %s = %v, want %v", c.crit, c.doc, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ crit, want string }{
		{``, "empty criteria"},
		{`   `, "empty criteria"},
		{`a`, "expected an operator"},
		{`a=`, "expected a value"},
		{`=3`, "expected a path segment"},
		{`a..b=3`, "expected a path segment"},
		{`.a=3`, "expected a path segment"},
		{`a.=3`, "expected a path segment"},
		{`a=bob`, "strings need double quotes"},
		{`a=3a`, "invalid value"},
		{`a='x'`, "strings need double quotes"},
		{`a="x`, "invalid JSON string"},
		{`a="\q"`, "invalid JSON string"},
		{`a={"b":1}`, "JSON scalars"},
		{`a=[1]`, "JSON scalars"},
		{`a>true`, "needs a number or a string"},
		{`a<null`, "needs a number or a string"},
		{`a=1 &&`, "expected a criterion after &&"},
		{`a=1 & b=2`, "expected && or the end"},
		{`a=1 b=2`, "expected && or the end"},
		{`a=1 || b=2`, "expected && or the end"},
		{`a in 1`, "expected '['"},
		{`a in [1`, "expected ',' or ']'"},
		{`a in [1 2]`, "expected ',' or ']'"},
		{`a in []`, "expected a value"},
		{`a in [[1]]`, "JSON scalars"},
		{`ain [1]`, "unexpected character"},
		{`a*=1`, "unexpected character"},
		{`a#=1`, "unexpected character"},
		{`a|b=1`, "unexpected character"},
		{`a\`, "'\\' must be followed"},
		{"a\\\x01=1", "'\\' must be followed"},
		{`a~1`, "unexpected character"},
		{`a=01`, "invalid value"},
		{`a=+1`, "invalid value"},
		{`a=NaN`, "invalid value"},
		{"a\xff=1", "not valid UTF-8"},
		{strings.Repeat("a.", MaxSegments) + "a=1", "segments"},
		{strings.Repeat("a=1&&", MaxTerms) + "a=1", "criteria combined"},
		{"a in [" + strings.Repeat("1,", MaxInValues) + "1]", "at most"},
		{strings.Repeat("a", MaxCriteriaLen+1), "limit"},
	}
	for _, c := range cases {
		_, err := Parse(c.crit)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error containing %q", c.crit, c.want)
			continue
		}
		if !errors.Is(err, ErrBadCriteria) {
			t.Errorf("Parse(%q) error %v does not wrap ErrBadCriteria", c.crit, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want it to contain %q", c.crit, err, c.want)
		}
	}
}

func TestCanonicalForm(t *testing.T) {
	cases := []struct{ in, want string }{
		{`id.type=3`, `id.type=3`},
		{` id.type == 3.0 `, `id.type=3`},
		{`a = "x" && b!=true`, `a="x" && b!=true`},
		{`a in [1, 2.50, "s", null]`, `a in [1,2.5,"s",null]`},
		{`first\ name>="J"`, `first\ name>="J"`},
		{`a<1e400`, `a<1e999`},
		{`a="<&>"`, `a="<&>"`},
		{`a="\u0000"`, `a="\u0000"`},
	}
	for _, c := range cases {
		cr, err := Parse(c.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.in, err)
		}
		if got := cr.String(); got != c.want {
			t.Errorf("Parse(%q).String() = %q, want %q", c.in, got, c.want)
		}
	}
	if p, err := ParsePath(" a\\.b.c "); err != nil || p != `a\.b.c` {
		t.Errorf("ParsePath = %q, %v", p, err)
	}
	for _, bad := range []string{"", "a=1", "a..b", "a b"} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) succeeded", bad)
		}
	}
}

// FuzzParseCriteria: Parse never panics; what it accepts has a canonical
// form that parses to the same criteria, and matching any document with
// them never panics.
func FuzzParseCriteria(f *testing.F) {
	for _, s := range []string{`id.type=3`, `a="x" && b!=true`, `a in [1,"2",null]`, `a\.b>=1.5e3`,
		`a<"z"`, `x.0.y=false`, `a=1 &&`, `a="\u00e9"`, `a in [`, `\@this=1`} {
		f.Add(s, []byte(`{"id":{"type":3},"a":"x","x":[{"y":false}]}`))
	}
	f.Fuzz(func(t *testing.T, text string, doc []byte) {
		c, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrBadCriteria) {
				t.Fatalf("error %v does not wrap ErrBadCriteria", err)
			}
			return
		}
		canon := c.String()
		c2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, text, err)
		}
		if c2.String() != canon {
			t.Fatalf("canonical form not stable: %q -> %q", canon, c2.String())
		}
		if c.Match(doc) != c2.Match(doc) {
			t.Fatalf("%q and its canonical form %q disagree on %q", text, canon, doc)
		}
	})
}
