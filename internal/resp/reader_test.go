package resp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns its data in pseudo-random chunks of 1 to 17 bytes, to
// exercise every way a command can be split across reads.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	max  int // largest chunk; 17 if zero
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	most := c.max
	if most == 0 {
		most = 17
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(most))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// splitters are the ways the table tests feed a stream to the Reader. Every
// case must give the same result under each: parsing may not depend on how
// the network happened to split the bytes.
type splitter struct {
	name string
	wrap func([]byte) io.Reader
}

func splitters() []splitter {
	return []splitter{
		{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"onebyte", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
		{"chunks", func(b []byte) io.Reader { return &chunkReader{data: b, rng: rand.New(rand.NewPCG(1, uint64(len(b))))} }},
		{"dataerr", func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
	}
}

// readAll reads commands until an error and returns them as strings with the
// error that ended the stream.
func readAll(r *Reader) ([][]string, error) {
	var cmds [][]string
	for {
		args, err := r.ReadCommand()
		if err != nil {
			return cmds, err
		}
		cmd := make([]string, len(args))
		for i, a := range args {
			cmd[i] = string(a)
		}
		cmds = append(cmds, cmd)
	}
}

// errText describes an error for comparison: protocol errors by message,
// others by identity.
func errText(err error) string {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return "proto: " + pe.Msg
	}
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

type readCase struct {
	name string
	in   string
	want [][]string
	err  string // "" means io.EOF
}

func runReadCases(t *testing.T, lim Limits, cases []readCase) {
	t.Helper()
	for _, tc := range cases {
		for _, sp := range splitters() {
			t.Run(tc.name+"/"+sp.name, func(t *testing.T) {
				r := NewReader(sp.wrap([]byte(tc.in)), lim)
				got, err := readAll(r)
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("commands = %q, want %q", got, tc.want)
				}
				wantErr := tc.err
				if wantErr == "" {
					wantErr = io.EOF.Error()
				}
				if errText(err) != wantErr {
					t.Errorf("err = %s, want %s", errText(err), wantErr)
				}
			})
		}
	}
}

func cmds(c ...[]string) [][]string { return c }
func cmd(args ...string) []string   { return args }

func proto(msg string) string { return "proto: " + msg }

func TestReadCommandValid(t *testing.T) {
	runReadCases(t, Limits{}, []readCase{
		{"empty stream", "", nil, ""},
		{"ping", "*1\r\n$4\r\nPING\r\n", cmds(cmd("PING")), ""},
		{"set with empty value", "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\n", cmds(cmd("SET", "a", "")), ""},
		{"binary arg", "*2\r\n$3\r\nGET\r\n$6\r\na\r\nb\x00\xff\r\n", cmds(cmd("GET", "a\r\nb\x00\xff")), ""},
		{"pipeline", "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nQUIT\r\n",
			cmds(cmd("PING"), cmd("GET", "k"), cmd("QUIT")), ""},
		{"empty multibulk skipped", "*0\r\n*-1\r\n*-5\r\n*1\r\n$1\r\nx\r\n*0\r\n", cmds(cmd("x")), ""},
		{"inline crlf", "PING\r\n", cmds(cmd("PING")), ""},
		{"inline lf", "PING\n", cmds(cmd("PING")), ""},
		{"inline args", "SET a b\n", cmds(cmd("SET", "a", "b")), ""},
		{"inline blanks", "\v\f SET \t a  b  \r\n", cmds(cmd("SET", "a", "b")), ""},
		{"inline vt inside arg", "a\vb c\n", cmds(cmd("a\vb", "c")), ""},
		{"inline cr splits", "a\rb\r\n", cmds(cmd("a", "b")), ""},
		{"empty lines skipped", "\r\n\n   \r\n\t\nPING\r\n\r\n", cmds(cmd("PING")), ""},
		{"inline double quotes", `SET "a b" "" c` + "\r\n", cmds(cmd("SET", "a b", "", "c")), ""},
		{"inline single quotes", `SET 'a b' '' 'it\'s' 'x\ny'` + "\n", cmds(cmd("SET", "a b", "", "it's", `x\ny`)), ""},
		{"inline escapes", `"\n\r\t\b\a\\\"\x41\x4a\x4A\xzz\q\x4"` + "\n", cmds(cmd("\n\r\t\b\a\\\"AJJxzzqx4")), ""},
		{"inline quote mid arg", `a"b c" x'e'` + "\n", cmds(cmd("ab c", "xe")), ""},
		{"inline quote then vt", "\"a\"\vb\n", cmds(cmd("a", "b")), ""},
		{"inline quoted crlf", `"a` + "\r" + `b"` + "\n", cmds(cmd("a\rb")), ""},
		{"inline nul ends line", "GET a\x00b c\r\nPING\n", cmds(cmd("GET", "a"), cmd("PING")), ""},
		{"inline star not first", " *1\r\n", cmds(cmd("*1")), ""},
		{"mixed", "PING\r\n*1\r\n$4\r\nECHO\r\nSET k v\n", cmds(cmd("PING"), cmd("ECHO"), cmd("SET", "k", "v")), ""},
		{"then clean eof after blank", "PING\n\r\n", cmds(cmd("PING")), ""},
	})
}

func TestReadCommandInvalid(t *testing.T) {
	runReadCases(t, Limits{}, []readCase{
		{"count not a number", "*x\r\n", nil, proto(msgInvalidMultibulk)},
		{"count leading zero", "*01\r\n", nil, proto(msgInvalidMultibulk)},
		{"count plus sign", "*+1\r\n", nil, proto(msgInvalidMultibulk)},
		{"count minus zero", "*-0\r\n", nil, proto(msgInvalidMultibulk)},
		{"count empty", "*\r\n", nil, proto(msgInvalidMultibulk)},
		{"count space", "*1 \r\n", nil, proto(msgInvalidMultibulk)},
		{"count cr without lf", "*1\rx$1\r\na\r\n", nil, proto(msgInvalidMultibulk)},
		{"count lf only", "*1\n$1\r\na\r\n", nil, proto(msgInvalidMultibulk)},
		{"count over int32", "*2147483648\r\n", nil, proto(msgInvalidMultibulk)},
		{"count overflow", "*99999999999999999999\r\n", nil, proto(msgInvalidMultibulk)},
		{"expected dollar", "*1\r\nx\r\n", nil, proto("Protocol error: expected '$', got 'x'")},
		{"expected dollar got colon", "*2\r\n$1\r\na\r\n:1\r\n", nil, proto("Protocol error: expected '$', got ':'")},
		{"bulk negative", "*1\r\n$-1\r\n", nil, proto(msgInvalidBulk)},
		{"bulk not a number", "*1\r\n$x\r\n", nil, proto(msgInvalidBulk)},
		{"bulk empty", "*1\r\n$\r\n", nil, proto(msgInvalidBulk)},
		{"bulk leading zero", "*1\r\n$01\r\na\r\n", nil, proto(msgInvalidBulk)},
		{"bulk cr without lf", "*1\r\n$1\rxa\r\n", nil, proto(msgInvalidBulk)},
		{"bulk over default max", "*1\r\n$536870913\r\n", nil, proto(msgInvalidBulk)},
		{"bulk missing crlf", "*1\r\n$3\r\nfooXY", nil, proto(msgBulkNoCRLF)},
		{"bulk too long for length", "*1\r\n$2\r\nfoo\r\n", nil, proto(msgBulkNoCRLF)},
		{"too many args", "*1048577\r\n", nil, proto(msgTooManyArgs)},
		{"unbalanced double", "SET \"a\r\n", nil, proto(msgUnbalanced)},
		{"unbalanced single", "SET 'a\r\n", nil, proto(msgUnbalanced)},
		{"double close not followed by blank", "SET \"a\"b\r\n", nil, proto(msgUnbalanced)},
		{"single close not followed by blank", "SET 'a'b\r\n", nil, proto(msgUnbalanced)},
		{"quote mid arg not closed by blank", `a"b c"d` + "\n", nil, proto(msgUnbalanced)},
		{"backslash at end in quotes", "\"abc\\\n", nil, proto(msgUnbalanced)},
		{"quote cut by nul", "\"ab\x00c\"\n", nil, proto(msgUnbalanced)},
		{"commands before error", "PING\r\n*1\r\n$1\r\nx\r\n*z\r\n", cmds(cmd("PING"), cmd("x")), proto(msgInvalidMultibulk)},
		{"eof in header", "*1\r\n$4", nil, io.ErrUnexpectedEOF.Error()},
		{"eof in count", "*1", nil, io.ErrUnexpectedEOF.Error()},
		{"eof in bulk", "*1\r\n$4\r\nPI", nil, io.ErrUnexpectedEOF.Error()},
		{"eof before trailing crlf", "*1\r\n$4\r\nPING\r", nil, io.ErrUnexpectedEOF.Error()},
		{"eof between args", "*2\r\n$4\r\nPING\r\n", nil, io.ErrUnexpectedEOF.Error()},
		{"eof in inline", "PING", nil, io.ErrUnexpectedEOF.Error()},
		{"eof after command in inline", "PING\r\nPI", cmds(cmd("PING")), io.ErrUnexpectedEOF.Error()},
	})
}

func TestReadCommandLimits(t *testing.T) {
	t.Run("bulk", func(t *testing.T) {
		runReadCases(t, Limits{MaxBulkLen: 10}, []readCase{
			{"at limit", "*1\r\n$10\r\n0123456789\r\n", cmds(cmd("0123456789")), ""},
			{"over limit", "*1\r\n$11\r\n01234567890\r\n", nil, proto(msgInvalidBulk)},
		})
	})
	t.Run("args", func(t *testing.T) {
		runReadCases(t, Limits{MaxArgs: 2}, []readCase{
			{"multibulk at limit", "*2\r\n$1\r\na\r\n$1\r\nb\r\n", cmds(cmd("a", "b")), ""},
			{"multibulk over limit", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", nil, proto(msgTooManyArgs)},
			{"inline at limit", "a b\n", cmds(cmd("a", "b")), ""},
			{"inline over limit", "a b c\n", nil, proto(msgTooManyArgs)},
			{"inline trailing blanks ok", "a b    \n", cmds(cmd("a", "b")), ""},
		})
	})
	t.Run("inline", func(t *testing.T) {
		// The limit covers the line up to its LF, CR included, as Redis's
		// check of the buffered bytes does when the LF has not arrived.
		runReadCases(t, Limits{MaxInlineLen: 10}, []readCase{
			{"at limit", "0123456789\n", cmds(cmd("0123456789")), ""},
			{"at limit with cr", "012345678\r\n", cmds(cmd("012345678")), ""},
			{"over limit", "01234567890\n", nil, proto(msgBigInline)},
			{"over limit, lf never comes", "01234567890", nil, proto(msgBigInline)},
			{"mbulk count string", "*1234567890", nil, proto(msgBigMultibulk)},
			{"mbulk count string at limit", "*000000000\r\n", nil, proto(msgInvalidMultibulk)},
			{"bulk count string", "*1\r\n$1234567890", nil, proto(msgBigBulkCount)},
			{"bulk count string found late", "*1\r\n$1234567890\r\n", nil, proto(msgBigBulkCount)},
		})
	})
	t.Run("querybuf", func(t *testing.T) {
		a20 := strings.Repeat("a", 20)
		runReadCases(t, Limits{MaxQueryBuf: 64}, []readCase{
			// 4 + 5+22 + 5+22 = 58 bytes: fits.
			{"fits", "*2\r\n$20\r\n" + a20 + "\r\n$20\r\n" + a20 + "\r\n", cmds(cmd(a20, a20)), ""},
			// The second argument cannot fit; refused at its header,
			// before any of it is buffered.
			{"declared over", "*2\r\n$20\r\n" + a20 + "\r\n$40\r\n", nil, proto(msgQueryBuf)},
			{"single arg over", "*1\r\n$60\r\n", nil, proto(msgQueryBuf)},
			// Many small arguments add up.
			{"many args", "*20\r\n" + strings.Repeat("$1\r\nx\r\n", 20), nil, proto(msgQueryBuf)},
			// Inline lines longer than the query buffer limit.
			{"inline", strings.Repeat("x", 100) + "\n", nil, proto(msgQueryBuf)},
			// The limit is per command: a long pipeline of small
			// commands is fine.
			{"pipeline", strings.Repeat("*1\r\n$4\r\nPING\r\n", 50), repeatCmd(cmd("PING"), 50), ""},
		})
	})
}

func repeatCmd(c []string, n int) [][]string {
	out := make([][]string, n)
	for i := range out {
		out[i] = c
	}
	return out
}

func TestReadCommandProtocolErrorIsSticky(t *testing.T) {
	r := NewReader(strings.NewReader("*x\r\nPING\r\n"), Limits{})
	for range 3 {
		_, err := r.ReadCommand()
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Msg != msgInvalidMultibulk {
			t.Fatalf("err = %v, want %q", err, msgInvalidMultibulk)
		}
	}
}

// A read error that is not EOF, such as a deadline, leaves the partial
// command buffered, and reading resumes where it stopped.
func TestReadCommandResumesAfterTimeout(t *testing.T) {
	in := "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
	r := NewReader(iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader(in))), Limits{})
	if _, err := r.ReadCommand(); err != iotest.ErrTimeout {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	args, err := r.ReadCommand()
	if err != nil || len(args) != 2 || string(args[0]) != "GET" || string(args[1]) != "key" {
		t.Fatalf("got %q, %v", args, err)
	}
	if _, err := r.ReadCommand(); err != io.EOF {
		t.Fatalf("err = %v, want EOF", err)
	}
}

func TestReadCommandPassesReadErrors(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("PING\r\nPI"), iotest.ErrReader(boom)), Limits{})
	if args, err := r.ReadCommand(); err != nil || string(args[0]) != "PING" {
		t.Fatalf("got %q, %v", args, err)
	}
	if _, err := r.ReadCommand(); err != boom {
		t.Fatalf("err = %v, want boom", err)
	}
}

// zeroReader returns (0, nil) forever, which io.Reader discourages but does
// not forbid; the reader must not spin.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReadCommandNoProgress(t *testing.T) {
	r := NewReader(zeroReader{}, Limits{})
	if _, err := r.ReadCommand(); err != io.ErrNoProgress {
		t.Fatalf("err = %v, want ErrNoProgress", err)
	}
}

func TestBuffered(t *testing.T) {
	r := NewReader(strings.NewReader("PING\r\n*1\r\n$4\r\nPING\r\nPI"), Limits{})
	if n := r.Buffered(); n != 0 {
		t.Fatalf("Buffered before any read = %d", n)
	}
	wants := []int{len("*1\r\n$4\r\nPING\r\nPI"), len("PI")}
	for _, want := range wants {
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		if n := r.Buffered(); n != want {
			t.Fatalf("Buffered = %d, want %d", n, want)
		}
	}
}

func TestArgsAreClipped(t *testing.T) {
	r := NewReader(strings.NewReader("*2\r\n$1\r\na\r\n$1\r\nb\r\n"), Limits{})
	args, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	_ = append(args[0], 'X', 'Y', 'Z', 'W', 'V', 'U')
	if string(args[1]) != "b" {
		t.Fatalf("appending to args[0] changed args[1] to %q", args[1])
	}
}

// A command much bigger than the initial buffer, arriving in small reads,
// then normal traffic: the big buffer must be given back.
func TestBufferShrinksAfterHugeCommand(t *testing.T) {
	val := bytes.Repeat([]byte("v"), 10<<20)
	var in bytes.Buffer
	in.WriteString("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n")
	in.Write(AppendBulk(nil, val))
	in.WriteString("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
	r := NewReader(&chunkReader{data: in.Bytes(), rng: rand.New(rand.NewPCG(1, 2)), max: 4096}, Limits{})
	big, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(big[2], val) {
		t.Fatal("big value corrupted")
	}
	if len(r.buf) > 2*len(val) {
		t.Fatalf("buffer grew to %d for a %d byte value", len(r.buf), len(val))
	}
	small, err := r.ReadCommand()
	if err != nil || string(small[0]) != "GET" {
		t.Fatalf("got %q, %v", small, err)
	}
	if len(r.buf) > maxRetainedBuf {
		t.Fatalf("buffer still %d bytes after a small command", len(r.buf))
	}
}

func TestArgsShrinkAfterManyArgCommand(t *testing.T) {
	const n = 100000
	var in bytes.Buffer
	in.Write(AppendArrayHeader(nil, n))
	for range n {
		in.WriteString("$1\r\nx\r\n")
	}
	in.WriteString("PING\r\n")
	r := NewReader(&in, Limits{})
	args, err := r.ReadCommand()
	if err != nil || len(args) != n {
		t.Fatalf("got %d args, %v", len(args), err)
	}
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if cap(r.args) > maxRetainedArgs || cap(r.offs) > 2*maxRetainedArgs {
		t.Fatalf("arg slices kept: cap(args)=%d cap(offs)=%d", cap(r.args), cap(r.offs))
	}
}

// allocatedBy reports the bytes f allocates on the heap.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A client that declares a 512 MiB argument and then sends little must not
// make the server allocate 512 MiB.
func TestHugeDeclaredBulkDoesNotAllocateUpFront(t *testing.T) {
	for _, sent := range []int{0, 1000, 1 << 20} {
		in := "*1\r\n$536870912\r\n" + strings.Repeat("z", sent)
		var err error
		alloc := allocatedBy(func() {
			_, err = NewReader(strings.NewReader(in), Limits{}).ReadCommand()
		})
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("sent %d: err = %v, want ErrUnexpectedEOF", sent, err)
		}
		// Doubling from 16 KiB: at most about 4x what arrived, plus slack.
		if limit := uint64(4*sent + 256<<10); alloc > limit {
			t.Errorf("sent %d bytes of a 512 MiB bulk: allocated %d bytes, limit %d", sent, alloc, limit)
		}
	}
}

func TestHugeDeclaredCountDoesNotAllocateUpFront(t *testing.T) {
	in := "*1000000\r\n" + strings.Repeat("$1\r\na\r\n", 10)
	var err error
	alloc := allocatedBy(func() {
		_, err = NewReader(strings.NewReader(in), Limits{}).ReadCommand()
	})
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want ErrUnexpectedEOF", err)
	}
	// A million-entry [][]byte would be 24 MB.
	if alloc > 256<<10 {
		t.Errorf("allocated %d bytes for 10 of a declared million args", alloc)
	}
}

// loopReader serves its data over and over, filling every read completely,
// so a benchmark can read forever without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.data[l.off:])
		n += k
		l.off = (l.off + k) % len(l.data)
	}
	return n, nil
}

func setCommand() []byte {
	b := AppendArrayHeader(nil, 3)
	b = AppendBulkString(b, "SET")
	b = AppendBulkString(b, "key:000000000001")
	return AppendBulk(b, bytes.Repeat([]byte("v"), 100))
}

func TestReadCommandSteadyStateAllocs(t *testing.T) {
	for _, in := range [][]byte{setCommand(), []byte("SET key:000000000001 \"some value\"\r\n")} {
		r := NewReader(&loopReader{data: in}, Limits{})
		for range 1000 { // warm up: buffer and arg slices reach their size
			if _, err := r.ReadCommand(); err != nil {
				t.Fatal(err)
			}
		}
		allocs := testing.AllocsPerRun(10000, func() {
			if _, err := r.ReadCommand(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%q: %v allocs per command, want 0", in[:10], allocs)
		}
	}
}

func TestParseInt(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"-1", -1, true}, {"123", 123, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"18446744073709551616", 0, false},
		{"99999999999999999999", 0, false},
		{"", 0, false}, {"-", 0, false}, {"-0", 0, false}, {"00", 0, false},
		{"01", 0, false}, {"+1", 0, false}, {" 1", 0, false}, {"1 ", 0, false},
		{"1a", 0, false}, {"0x1", 0, false}, {"000000000000000000001", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseInt([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTryReadCommand(t *testing.T) {
	// Two whole commands and half of a third are buffered after the first
	// read; TryReadCommand returns the second without reading more and
	// keeps the first's arguments intact.
	in := "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$3\r\nGE"
	r := NewReader(strings.NewReader(in), Limits{})
	first, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	second, ok, err := r.TryReadCommand()
	if err != nil || !ok || string(second[1]) != "b" {
		t.Fatalf("second: %q %v %v", second, ok, err)
	}
	if _, ok, err := r.TryReadCommand(); ok || err != nil {
		t.Fatalf("a partial command was returned: %v %v", ok, err)
	}
	if string(first[0]) != "GET" || string(first[1]) != "a" {
		t.Fatalf("the first command's arguments changed: %q", first)
	}
	// ReadCommand then waits for the rest (here: the stream ends inside it).
	if _, err := r.ReadCommand(); err != io.ErrUnexpectedEOF {
		t.Fatalf("rest: %v", err)
	}
}
