package resp

import (
	"math"
	"testing"
)

type encodeCase struct {
	name string
	enc  func([]byte) []byte
	want string
}

func encodeCases() []encodeCase {
	return []encodeCase{
		{"simple", func(b []byte) []byte { return AppendSimple(b, "OK") }, "+OK\r\n"},
		{"simple empty", func(b []byte) []byte { return AppendSimple(b, "") }, "+\r\n"},
		{"simple crlf", func(b []byte) []byte { return AppendSimple(b, "a\r\nb\nc\r") }, "+a  b c \r\n"},
		{"error", func(b []byte) []byte { return AppendError(b, "ERR unknown command") }, "-ERR unknown command\r\n"},
		{"error wrongtype", func(b []byte) []byte {
			return AppendError(b, "WRONGTYPE Operation against a key holding the wrong kind of value")
		}, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
		{"error crlf", func(b []byte) []byte { return AppendError(b, "ERR bad\r\narg") }, "-ERR bad  arg\r\n"},
		{"int", func(b []byte) []byte { return AppendInt(b, 42) }, ":42\r\n"},
		{"int zero", func(b []byte) []byte { return AppendInt(b, 0) }, ":0\r\n"},
		{"int min", func(b []byte) []byte { return AppendInt(b, math.MinInt64) }, ":-9223372036854775808\r\n"},
		{"int max", func(b []byte) []byte { return AppendInt(b, math.MaxInt64) }, ":9223372036854775807\r\n"},
		{"bulk", func(b []byte) []byte { return AppendBulk(b, []byte("hello")) }, "$5\r\nhello\r\n"},
		{"bulk binary", func(b []byte) []byte { return AppendBulk(b, []byte("a\r\n\x00")) }, "$4\r\na\r\n\x00\r\n"},
		{"bulk nil is empty", func(b []byte) []byte { return AppendBulk(b, nil) }, "$0\r\n\r\n"},
		{"bulk string", func(b []byte) []byte { return AppendBulkString(b, "héllo") }, "$6\r\nhéllo\r\n"},
		{"null resp2", func(b []byte) []byte { return AppendNull(b, 2) }, "$-1\r\n"},
		{"null resp3", func(b []byte) []byte { return AppendNull(b, 3) }, "_\r\n"},
		{"null array resp2", func(b []byte) []byte { return AppendNullArray(b, 2) }, "*-1\r\n"},
		{"null array resp3", func(b []byte) []byte { return AppendNullArray(b, 3) }, "_\r\n"},
		{"array", func(b []byte) []byte { return AppendArrayHeader(b, 3) }, "*3\r\n"},
		{"array empty", func(b []byte) []byte { return AppendArrayHeader(b, 0) }, "*0\r\n"},
		{"map resp2", func(b []byte) []byte { return AppendMapHeader(b, 2, 2) }, "*4\r\n"},
		{"map resp3", func(b []byte) []byte { return AppendMapHeader(b, 2, 3) }, "%2\r\n"},
		{"set resp2", func(b []byte) []byte { return AppendSetHeader(b, 5, 2) }, "*5\r\n"},
		{"set resp3", func(b []byte) []byte { return AppendSetHeader(b, 5, 3) }, "~5\r\n"},
		{"push resp2", func(b []byte) []byte { return AppendPushHeader(b, 3, 2) }, "*3\r\n"},
		{"push resp3", func(b []byte) []byte { return AppendPushHeader(b, 3, 3) }, ">3\r\n"},
		{"double resp3", func(b []byte) []byte { return AppendDouble(b, 1.5, 3) }, ",1.5\r\n"},
		{"double resp3 integral", func(b []byte) []byte { return AppendDouble(b, 3, 3) }, ",3\r\n"},
		{"double resp3 inf", func(b []byte) []byte { return AppendDouble(b, math.Inf(1), 3) }, ",inf\r\n"},
		{"double resp3 -inf", func(b []byte) []byte { return AppendDouble(b, math.Inf(-1), 3) }, ",-inf\r\n"},
		{"double resp3 nan", func(b []byte) []byte { return AppendDouble(b, math.NaN(), 3) }, ",nan\r\n"},
		{"double resp3 -0", func(b []byte) []byte { return AppendDouble(b, math.Copysign(0, -1), 3) }, ",-0\r\n"},
		{"double resp2", func(b []byte) []byte { return AppendDouble(b, 1.5, 2) }, "$3\r\n1.5\r\n"},
		{"double resp2 integral", func(b []byte) []byte { return AppendDouble(b, 1000000, 2) }, "$7\r\n1000000\r\n"},
		{"double resp2 tenth", func(b []byte) []byte { return AppendDouble(b, 0.1, 2) }, "$3\r\n0.1\r\n"},
		{"double resp2 third", func(b []byte) []byte { return AppendDouble(b, 1.0/3, 2) }, "$18\r\n0.3333333333333333\r\n"},
		{"double resp2 negative", func(b []byte) []byte { return AppendDouble(b, -2.25, 2) }, "$5\r\n-2.25\r\n"},
		{"double resp2 small", func(b []byte) []byte { return AppendDouble(b, 1.5e-5, 2) }, "$7\r\n1.5e-05\r\n"},
		{"double resp2 1e-4", func(b []byte) []byte { return AppendDouble(b, 1e-4, 2) }, "$6\r\n0.0001\r\n"},
		{"double resp2 1e16", func(b []byte) []byte { return AppendDouble(b, 1e16, 2) }, "$17\r\n10000000000000000\r\n"},
		{"double resp2 1e17", func(b []byte) []byte { return AppendDouble(b, 1e17, 2) }, "$5\r\n1e+17\r\n"},
		{"double resp2 max", func(b []byte) []byte { return AppendDouble(b, math.MaxFloat64, 2) }, "$23\r\n1.7976931348623157e+308\r\n"},
		{"double resp2 inf", func(b []byte) []byte { return AppendDouble(b, math.Inf(1), 2) }, "$3\r\ninf\r\n"},
		{"bool resp3 true", func(b []byte) []byte { return AppendBool(b, true, 3) }, "#t\r\n"},
		{"bool resp3 false", func(b []byte) []byte { return AppendBool(b, false, 3) }, "#f\r\n"},
		{"bool resp2 true", func(b []byte) []byte { return AppendBool(b, true, 2) }, ":1\r\n"},
		{"bool resp2 false", func(b []byte) []byte { return AppendBool(b, false, 2) }, ":0\r\n"},
		{"verbatim resp3", func(b []byte) []byte { return AppendVerbatim(b, "txt", "hi\r\nthere", 3) }, "=13\r\ntxt:hi\r\nthere\r\n"},
		{"verbatim resp3 mkd", func(b []byte) []byte { return AppendVerbatim(b, "mkd", "# x", 3) }, "=7\r\nmkd:# x\r\n"},
		{"verbatim resp3 bad format", func(b []byte) []byte { return AppendVerbatim(b, "text", "x", 3) }, "=5\r\ntxt:x\r\n"},
		{"verbatim resp2", func(b []byte) []byte { return AppendVerbatim(b, "txt", "hi\r\nthere", 2) }, "$9\r\nhi\r\nthere\r\n"},
	}
}

func TestAppend(t *testing.T) {
	for _, tc := range encodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.enc(nil)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			// Appending keeps what was there.
			if got := string(tc.enc([]byte("prefix"))); got != "prefix"+tc.want {
				t.Errorf("with prefix: got %q", got)
			}
		})
	}
}

// Encoding into a buffer with room must not allocate: replies are built on
// the hot path.
func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	for _, tc := range encodeCases() {
		allocs := testing.AllocsPerRun(100, func() { buf = tc.enc(buf[:0]) })
		if allocs != 0 {
			t.Errorf("%s: %v allocs", tc.name, allocs)
		}
	}
}

// AppendDouble's RESP2 text must parse back to the same float64 (scores are
// compared after a round trip through clients).
func TestAppendDoubleRoundTrips(t *testing.T) {
	vals := []float64{0.1, 0.2, 0.30000000000000004, 1e-300, 5e-324, 123456789.123456789,
		1e17 - 16, 1e22, -1e-5, 9007199254740993, math.SmallestNonzeroFloat64, math.MaxFloat64}
	for _, f := range vals {
		got := string(appendFloat(nil, f))
		v, err := ReadValue(bufioReader(string(AppendDouble(nil, f, 3))), 0)
		if err != nil || v.Float != f {
			t.Errorf("%v formatted as %q read back as %v, %v", f, got, v.Float, err)
		}
	}
}
