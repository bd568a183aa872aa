package resp

import (
	"bufio"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
)

// Bounds for ReadValue, which may be pointed at untrusted servers by tools.
const (
	// maxValueDepth bounds aggregate nesting, so a stream of "*1\r\n*1\r\n..."
	// cannot exhaust the stack.
	maxValueDepth = 64
	// maxPrealloc is how many elements an aggregate reserves before any has
	// arrived; the rest grow as elements are actually parsed.
	maxPrealloc = 16
	// bulkChunk is the first read size for a bulk string; later reads double,
	// so memory follows the bytes received, not the length declared.
	bulkChunk = 4 << 10
)

// Value is one decoded RESP2/RESP3 reply (for tests, the CLI and tools, not
// the hot path).
//
// Kind is the type byte from the wire:
//
//	'+' simple string   Str
//	'-' error           Str (the whole message, prefix word included)
//	':' integer         Int
//	'$' bulk string     Str, or Null for RESP2's $-1
//	'*' array           Elems, or Null for RESP2's *-1
//	'%' map             Elems: key, value, key, value...
//	'~' set             Elems
//	'>' push            Elems
//	'_' null            Null
//	',' double          Float
//	'#' boolean         Bool
//	'=' verbatim string Str, with its "fmt:" prefix (e.g. "txt:hello")
//	'(' big number      Str (the decimal digits)
//	'!' blob error      Str
//
// RESP3 attributes ('|') are read and dropped: they annotate the reply that
// follows, which is what ReadValue returns.
type Value struct {
	Kind  byte
	Str   []byte
	Int   int64
	Float float64
	Bool  bool
	Null  bool
	Elems []Value
}

// ReadValue reads one reply from br. Bulk strings and lines (simple strings,
// errors, numbers) longer than maxBulk are refused (maxBulk <= 0 means
// [DefaultMaxBulkLen]). Like [Reader], it never
// allocates for a declared length before the bytes arrive, and it caps
// nesting depth.
//
// It returns io.EOF if br is at end of input before the reply starts,
// io.ErrUnexpectedEOF if input ends inside it, and a *ProtocolError if the
// input is not RESP.
func ReadValue(br *bufio.Reader, maxBulk int) (Value, error) {
	if maxBulk <= 0 {
		maxBulk = DefaultMaxBulkLen
	}
	if _, err := br.Peek(1); err != nil {
		return Value{}, err
	}
	v, err := readValue(br, maxBulk, 0)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

func readValue(br *bufio.Reader, maxBulk, depth int) (Value, error) {
	if depth > maxValueDepth {
		return Value{}, protoErr("Protocol error: reply nested too deeply")
	}
	line, err := readLine(br, maxBulk)
	if err != nil {
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, protoErr("Protocol error: empty reply line")
	}
	v := Value{Kind: line[0]}
	body := line[1:]
	switch v.Kind {
	case '+', '-':
		if slices.Contains(body, '\r') {
			return Value{}, protoErr("Protocol error: CR in simple string")
		}
		v.Str = slices.Clone(body)
		if v.Str == nil {
			v.Str = []byte{}
		}
	case ':':
		n, err := strconv.ParseInt(string(body), 10, 64)
		if err != nil {
			return Value{}, protoErr("Protocol error: invalid integer")
		}
		v.Int = n
	case '(':
		digits := body
		if len(digits) > 0 && digits[0] == '-' {
			digits = digits[1:]
		}
		if len(digits) == 0 || slices.ContainsFunc(digits, func(c byte) bool { return c < '0' || c > '9' }) {
			return Value{}, protoErr("Protocol error: invalid big number")
		}
		v.Str = slices.Clone(body)
	case ',':
		f, err := strconv.ParseFloat(string(body), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return Value{}, protoErr("Protocol error: invalid double")
		}
		v.Float = f
	case '#':
		switch string(body) {
		case "t":
			v.Bool = true
		case "f":
		default:
			return Value{}, protoErr("Protocol error: invalid boolean")
		}
	case '_':
		if len(body) != 0 {
			return Value{}, protoErr("Protocol error: invalid null")
		}
		v.Null = true
	case '$', '!', '=':
		n, ok := parseInt(body)
		if ok && n == -1 && v.Kind == '$' {
			v.Null = true
			return v, nil
		}
		if !ok || n < 0 || n > int64(maxBulk) {
			return Value{}, protoErr(msgInvalidBulk)
		}
		if v.Str, err = readBulk(br, int(n)); err != nil {
			return Value{}, err
		}
		if v.Kind == '=' && (len(v.Str) < 4 || v.Str[3] != ':') {
			return Value{}, protoErr("Protocol error: invalid verbatim string")
		}
	case '*', '%', '~', '>', '|':
		n, ok := parseInt(body)
		if ok && n == -1 && v.Kind == '*' {
			v.Null = true
			return v, nil
		}
		if !ok || n < 0 || n > math.MaxInt32 {
			return Value{}, protoErr(msgInvalidMultibulk)
		}
		if v.Kind == '%' || v.Kind == '|' {
			n *= 2
		}
		v.Elems = make([]Value, 0, min(n, maxPrealloc))
		for range n {
			e, err := readValue(br, maxBulk, depth+1)
			if err != nil {
				return Value{}, err
			}
			v.Elems = append(v.Elems, e)
		}
		if v.Kind == '|' {
			return readValue(br, maxBulk, depth+1)
		}
	default:
		return Value{}, protoErr("Protocol error: unknown reply type '" + string(line[:1]) + "'")
	}
	return v, nil
}

// readLine reads one CRLF-terminated line of at most limit bytes and returns
// it without the CRLF. The slice is only valid until the next read from br.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Longer than br's buffer: collect it, but no further than the
		// limit.
		acc := slices.Clone(line)
		for err == bufio.ErrBufferFull && len(acc) <= limit+2 {
			line, err = br.ReadSlice('\n')
			acc = append(acc, line...)
		}
		line = acc
	}
	// Judged on the bytes seen, before any read error, so the verdict does
	// not depend on br's buffer size or on where the input happened to end.
	if len(line) > limit+2 {
		return nil, protoErr("Protocol error: reply line too long")
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, protoErr("Protocol error: line not terminated by CRLF")
	}
	return line[:len(line)-2], nil
}

// readBulk reads n bytes followed by CRLF. The destination grows by doubling
// as bytes arrive, so a peer that declares a huge length and sends nothing
// costs one small chunk.
func readBulk(br *bufio.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, bulkChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), len(buf)))
		}
		k, err := io.ReadFull(br, buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	var crlf [2]byte
	if _, err := io.ReadFull(br, crlf[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if crlf != [2]byte{'\r', '\n'} {
		return nil, protoErr(msgBulkNoCRLF)
	}
	return buf, nil
}
