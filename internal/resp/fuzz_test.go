package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// fuzzSeeds are real client traffic, plus the awkward corners, for the
// fuzzer to mutate.
func fuzzSeeds() []string {
	return []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000001\r\n$5\r\nvalue\r\n",
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"*0\r\n*-1\r\n*1\r\n$0\r\n\r\n",
		"PING\r\n",
		"SET k \"a b\\x41\\n\" 'it\\'s'\n",
		"\r\n\n  \r\nECHO x\r\n",
		"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n",
		"*1\r\n$-1\r\n",
		"*1\r\n$64\r\n",
		"*9\r\n",
		"SET \"a\"b\r\n",
		"a\x00b c\r\n",
		"*1\r\n$3\r\nfooXY",
	}
}

// FuzzReadCommand checks the Reader's invariants on arbitrary input: it
// never panics, it fails only with io.EOF, io.ErrUnexpectedEOF or a
// *ProtocolError, the result does not depend on how the input is split into
// reads, commands respect the limits, and a returned command re-encoded as
// multibulk parses back to the same arguments.
func FuzzReadCommand(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Small limits so the fuzzer reaches them; then the defaults, with
		// random read sizes.
		small := Limits{MaxBulkLen: 64, MaxArgs: 8, MaxInlineLen: 64, MaxQueryBuf: 256}
		checkReaders(t, small,
			NewReader(bytes.NewReader(data), small),
			NewReader(iotest.OneByteReader(bytes.NewReader(data)), small))
		def := Limits{}.WithDefaults()
		checkReaders(t, def,
			NewReader(bytes.NewReader(data), def),
			NewReader(&chunkReader{data: data, rng: rand.New(rand.NewPCG(uint64(len(data)), 7))}, def))
	})
}

func checkReaders(t *testing.T, lim Limits, a, b *Reader) {
	t.Helper()
	for n := 0; ; n++ {
		argsA, errA := a.ReadCommand()
		argsB, errB := b.ReadCommand()
		if errText(errA) != errText(errB) {
			t.Fatalf("command %d: error depends on read sizes: %s vs %s", n, errText(errA), errText(errB))
		}
		if !equalArgs(argsA, argsB) {
			t.Fatalf("command %d: args depend on read sizes: %q vs %q", n, argsA, argsB)
		}
		if errA != nil {
			var pe *ProtocolError
			if errA != io.EOF && errA != io.ErrUnexpectedEOF && !errors.As(errA, &pe) {
				t.Fatalf("unexpected error type %T: %v", errA, errA)
			}
			return
		}
		if len(argsA) == 0 || len(argsA) > lim.MaxArgs {
			t.Fatalf("command %d has %d args", n, len(argsA))
		}
		enc := AppendArrayHeader(nil, len(argsA))
		for _, arg := range argsA {
			if len(arg) > lim.MaxBulkLen {
				t.Fatalf("arg of %d bytes over MaxBulkLen %d", len(arg), lim.MaxBulkLen)
			}
			enc = AppendBulk(enc, arg)
		}
		// Inline commands grow when re-encoded, so lift the buffer limit.
		relim := lim
		relim.MaxQueryBuf = DefaultMaxQueryBuf
		r := NewReader(bytes.NewReader(enc), relim)
		again, err := r.ReadCommand()
		if err != nil || !equalArgs(again, argsA) {
			t.Fatalf("re-encoded %q parsed as %q, %v; want %q", enc, again, err, argsA)
		}
		if _, err := r.ReadCommand(); err != io.EOF {
			t.Fatalf("re-encoded %q: trailing err = %v", enc, err)
		}
	}
}

func equalArgs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// FuzzReadValue checks that ReadValue never panics, fails only with the
// documented errors, does not depend on read sizes, and that what it decodes
// re-encodes (through the Append functions) to something that decodes to the
// same value.
func FuzzReadValue(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":12\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n",
		"*2\r\n:1\r\n$1\r\nx\r\n", "%1\r\n+k\r\n:2\r\n", "~1\r\n_\r\n", ">2\r\n+message\r\n+x\r\n",
		",1.5\r\n", ",-inf\r\n", ",nan\r\n", "#t\r\n", "=9\r\ntxt:hello\r\n", "(123\r\n", "!3\r\nERR\r\n",
		"|1\r\n+a\r\n+b\r\n:1\r\n", "*1\r\n*1\r\n*1\r\n:1\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxBulk = 1 << 10
		whole := bufio.NewReader(bytes.NewReader(data))
		one := bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16)
		for {
			v, err := ReadValue(whole, maxBulk)
			v1, err1 := ReadValue(one, maxBulk)
			if errText(err) != errText(err1) || (err == nil && !valueEqual(v, v1)) {
				t.Fatalf("result depends on read sizes: %+v, %v vs %+v, %v", v, err, v1, err1)
			}
			if err != nil {
				var pe *ProtocolError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &pe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			enc := encodeValue(nil, v)
			again, err := ReadValue(bufio.NewReader(bytes.NewReader(enc)), maxBulk)
			if err != nil || !valueEqual(again, v) {
				t.Fatalf("%+v encoded as %q decoded as %+v, %v", v, enc, again, err)
			}
		}
	})
}

// encodeValue writes v back out with the Append functions, choosing RESP3
// where the kind only exists there.
func encodeValue(b []byte, v Value) []byte {
	switch v.Kind {
	case '+':
		return AppendSimple(b, string(v.Str))
	case '-':
		return AppendError(b, string(v.Str))
	case ':':
		return AppendInt(b, v.Int)
	case '$':
		if v.Null {
			return AppendNull(b, 2)
		}
		return AppendBulk(b, v.Str)
	case '_':
		return AppendNull(b, 3)
	case ',':
		return AppendDouble(b, v.Float, 3)
	case '#':
		return AppendBool(b, v.Bool, 3)
	case '=':
		return AppendVerbatim(b, string(v.Str[:3]), string(v.Str[4:]), 3)
	case '(':
		b = append(b, '(')
		b = append(b, v.Str...)
		return append(b, '\r', '\n')
	case '!':
		b = appendHeader(b, '!', len(v.Str))
		b = append(b, v.Str...)
		return append(b, '\r', '\n')
	case '*':
		if v.Null {
			return AppendNullArray(b, 2)
		}
		b = AppendArrayHeader(b, len(v.Elems))
	case '%':
		b = AppendMapHeader(b, len(v.Elems)/2, 3)
	case '~':
		b = AppendSetHeader(b, len(v.Elems), 3)
	case '>':
		b = AppendPushHeader(b, len(v.Elems), 3)
	}
	for _, e := range v.Elems {
		b = encodeValue(b, e)
	}
	return b
}
