package resp

import (
	"bufio"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func str(kind byte, s string) Value { return Value{Kind: kind, Str: []byte(s)} }

func agg(kind byte, elems ...Value) Value {
	if elems == nil {
		elems = []Value{}
	}
	return Value{Kind: kind, Elems: elems}
}

// valueEqual is reflect.DeepEqual, except that NaN equals NaN.
func valueEqual(a, b Value) bool {
	if math.IsNaN(a.Float) && math.IsNaN(b.Float) {
		a.Float, b.Float = 0, 0
	}
	if len(a.Elems) != len(b.Elems) {
		return false
	}
	for i := range a.Elems {
		if !valueEqual(a.Elems[i], b.Elems[i]) {
			return false
		}
	}
	a.Elems, b.Elems = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestReadValue(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Value
	}{
		{"simple", "+OK\r\n", str('+', "OK")},
		{"simple empty", "+\r\n", str('+', "")},
		{"error", "-ERR no\r\n", str('-', "ERR no")},
		{"int", ":-12\r\n", Value{Kind: ':', Int: -12}},
		{"bulk", "$3\r\na\nb\r\n", str('$', "a\nb")},
		{"bulk empty", "$0\r\n\r\n", str('$', "")},
		{"bulk null", "$-1\r\n", Value{Kind: '$', Null: true}},
		{"array", "*2\r\n:1\r\n$1\r\nx\r\n", agg('*', Value{Kind: ':', Int: 1}, str('$', "x"))},
		{"array empty", "*0\r\n", agg('*')},
		{"array null", "*-1\r\n", Value{Kind: '*', Null: true}},
		{"nested", "*1\r\n*1\r\n+a\r\n", agg('*', agg('*', str('+', "a")))},
		{"map", "%1\r\n+k\r\n:2\r\n", agg('%', str('+', "k"), Value{Kind: ':', Int: 2})},
		{"set", "~1\r\n+k\r\n", agg('~', str('+', "k"))},
		{"push", ">2\r\n+message\r\n+x\r\n", agg('>', str('+', "message"), str('+', "x"))},
		{"null", "_\r\n", Value{Kind: '_', Null: true}},
		{"double", ",1.5\r\n", Value{Kind: ',', Float: 1.5}},
		{"double exp", ",1e+300\r\n", Value{Kind: ',', Float: 1e300}},
		{"double inf", ",inf\r\n", Value{Kind: ',', Float: math.Inf(1)}},
		{"double -inf", ",-inf\r\n", Value{Kind: ',', Float: math.Inf(-1)}},
		{"double nan", ",nan\r\n", Value{Kind: ',', Float: math.NaN()}},
		{"bool true", "#t\r\n", Value{Kind: '#', Bool: true}},
		{"bool false", "#f\r\n", Value{Kind: '#'}},
		{"verbatim", "=9\r\ntxt:hello\r\n", str('=', "txt:hello")},
		{"big number", "(-123456789012345678901234567890\r\n", str('(', "-123456789012345678901234567890")},
		{"blob error", "!5\r\nERR x\r\n", str('!', "ERR x")},
		{"attribute dropped", "|1\r\n+ttl\r\n:3\r\n+value\r\n", str('+', "value")},
	}
	for _, tc := range cases {
		for _, sp := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{{"whole", func(r io.Reader) io.Reader { return r }}, {"onebyte", iotest.OneByteReader}} {
			t.Run(tc.name+"/"+sp.name, func(t *testing.T) {
				br := bufio.NewReader(sp.wrap(strings.NewReader(tc.in)))
				got, err := ReadValue(br, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !valueEqual(got, tc.want) {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
				if _, err := ReadValue(br, 0); err != io.EOF {
					t.Errorf("trailing read: err = %v, want EOF", err)
				}
			})
		}
	}
}

func TestReadValueInvalid(t *testing.T) {
	cases := []struct {
		name string
		in   string
		err  string
	}{
		{"unknown type", "?x\r\n", "proto: Protocol error: unknown reply type '?'"},
		{"empty line", "\r\n", "proto: Protocol error: empty reply line"},
		{"lf only", "+OK\n", "proto: Protocol error: line not terminated by CRLF"},
		{"cr in simple", "+a\rb\r\n", "proto: Protocol error: CR in simple string"},
		{"bad int", ":1x\r\n", "proto: Protocol error: invalid integer"},
		{"bad double", ",x\r\n", "proto: Protocol error: invalid double"},
		{"bad bool", "#x\r\n", "proto: Protocol error: invalid boolean"},
		{"bad null", "_x\r\n", "proto: Protocol error: invalid null"},
		{"bad big number", "(12a\r\n", "proto: Protocol error: invalid big number"},
		{"empty big number", "(-\r\n", "proto: Protocol error: invalid big number"},
		{"bulk negative", "$-2\r\n", "proto: " + msgInvalidBulk},
		{"bulk bad", "$x\r\n", "proto: " + msgInvalidBulk},
		{"blob error null", "!-1\r\n", "proto: " + msgInvalidBulk},
		{"bulk over max", "$1001\r\n", "proto: " + msgInvalidBulk},
		{"bulk no crlf", "$1\r\nabc", "proto: " + msgBulkNoCRLF},
		{"verbatim no format", "=2\r\nab\r\n", "proto: Protocol error: invalid verbatim string"},
		{"array negative", "*-2\r\n", "proto: " + msgInvalidMultibulk},
		{"map null", "%-1\r\n", "proto: " + msgInvalidMultibulk},
		{"array bad", "*x\r\n", "proto: " + msgInvalidMultibulk},
		{"too deep", strings.Repeat("*1\r\n", 100) + ":1\r\n", "proto: Protocol error: reply nested too deeply"},
		{"line too long", "+" + strings.Repeat("x", 5000) + "\r\n", "proto: Protocol error: reply line too long"},
		{"eof in line", "+OK", io.ErrUnexpectedEOF.Error()},
		{"eof in bulk", "$5\r\nab", io.ErrUnexpectedEOF.Error()},
		{"eof before bulk crlf", "$2\r\nab", io.ErrUnexpectedEOF.Error()},
		{"eof in array", "*2\r\n:1\r\n", io.ErrUnexpectedEOF.Error()},
		{"empty", "", io.EOF.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadValue(bufioReader(tc.in), 1000)
			if errText(err) != tc.err {
				t.Errorf("err = %s, want %s", errText(err), tc.err)
			}
		})
	}
}

// A long line is fine when it is within the limit, even if it is longer
// than the bufio.Reader's buffer.
func TestReadValueLongLine(t *testing.T) {
	long := strings.Repeat("x", 10000)
	v, err := ReadValue(bufio.NewReaderSize(strings.NewReader("-"+long+"\r\n"), 16), 0)
	if err != nil || string(v.Str) != long {
		t.Fatalf("got %d bytes, %v", len(v.Str), err)
	}
}

func TestReadValueHugeDeclaredLengths(t *testing.T) {
	for _, in := range []string{
		"$536870912\r\n" + strings.Repeat("z", 1000),
		"*2147483647\r\n" + strings.Repeat(":1\r\n", 100),
		"%1073741823\r\n" + strings.Repeat(":1\r\n", 100),
	} {
		var err error
		alloc := allocatedBy(func() { _, err = ReadValue(bufioReader(in), 0) })
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%q: err = %v", in[:12], err)
		}
		if alloc > 256<<10 {
			t.Errorf("%q: allocated %d bytes", in[:12], alloc)
		}
	}
}

// Whatever the writer encodes, ReadValue decodes to the value meant.
func TestRoundTrip(t *testing.T) {
	type tc struct {
		name string
		enc  []byte
		want Value
	}
	var cases []tc
	for _, p := range []int{2, 3} {
		null := Value{Kind: '$', Null: true}
		nullArr := Value{Kind: '*', Null: true}
		mapKind, setKind, pushKind := byte('*'), byte('*'), byte('*')
		verb := str('$', "a\r\nb")
		dbl := str('$', "2.5")
		boolT, boolF := Value{Kind: ':', Int: 1}, Value{Kind: ':', Int: 0}
		if p == 3 {
			null, nullArr = Value{Kind: '_', Null: true}, Value{Kind: '_', Null: true}
			mapKind, setKind, pushKind = '%', '~', '>'
			verb = str('=', "txt:a\r\nb")
			dbl = Value{Kind: ',', Float: 2.5}
			boolT, boolF = Value{Kind: '#', Bool: true}, Value{Kind: '#'}
		}
		var b []byte
		b = AppendMapHeader(b, 2, p)
		b = AppendBulkString(b, "k1")
		b = AppendInt(b, 7)
		b = AppendBulkString(b, "k2")
		b = AppendSetHeader(b, 2, p)
		b = AppendSimple(b, "m")
		b = AppendNull(b, p)
		cases = append(cases,
			tc{"simple", AppendSimple(nil, "OK"), str('+', "OK")},
			tc{"error", AppendError(nil, "ERR x"), str('-', "ERR x")},
			tc{"int", AppendInt(nil, math.MinInt64), Value{Kind: ':', Int: math.MinInt64}},
			tc{"bulk", AppendBulk(nil, []byte("\x00\r\n")), str('$', "\x00\r\n")},
			tc{"null", AppendNull(nil, p), null},
			tc{"null array", AppendNullArray(nil, p), nullArr},
			tc{"double", AppendDouble(nil, 2.5, p), dbl},
			tc{"bool true", AppendBool(nil, true, p), boolT},
			tc{"bool false", AppendBool(nil, false, p), boolF},
			tc{"verbatim", AppendVerbatim(nil, "txt", "a\r\nb", p), verb},
			tc{"push", AppendBulkString(AppendBulkString(AppendPushHeader(nil, 2, p), "message"), "hi"),
				agg(pushKind, str('$', "message"), str('$', "hi"))},
			tc{"nested", b, agg(mapKind, str('$', "k1"), Value{Kind: ':', Int: 7}, str('$', "k2"),
				agg(setKind, str('+', "m"), null))},
		)
	}
	for _, c := range cases {
		got, err := ReadValue(bufioReader(string(c.enc)), 0)
		if err != nil {
			t.Errorf("%s %q: %v", c.name, c.enc, err)
			continue
		}
		if !valueEqual(got, c.want) {
			t.Errorf("%s %q: got %+v, want %+v", c.name, c.enc, got, c.want)
		}
	}
}
