package resp

import (
	"bytes"
	"io"
	"math"
)

// Default limits. They are Redis's defaults, so that a client that works
// against Redis is not refused by Engram.
const (
	// DefaultMaxBulkLen is Redis's proto-max-bulk-len (512 MiB).
	DefaultMaxBulkLen = 512 << 20
	// DefaultMaxArgs bounds the arguments of one command (1 Mi).
	DefaultMaxArgs = 1 << 20
	// DefaultMaxInlineLen is Redis's PROTO_INLINE_MAX_SIZE (64 KiB).
	DefaultMaxInlineLen = 64 << 10
	// DefaultMaxQueryBuf is Redis's client-query-buffer-limit (1 GiB).
	DefaultMaxQueryBuf = 1 << 30
)

// Buffer management. The numbers trade memory pinned per idle connection
// against allocations per command.
const (
	// initBufSize is Redis's PROTO_IOBUF_LEN: one read of this size holds a
	// typical pipeline burst.
	initBufSize = 16 << 10
	// minRead is the least free space worth issuing a read for; below it the
	// buffer is compacted or grown first, so reads do not degrade into
	// trickles of a few bytes.
	minRead = 512
	// maxRetainedBuf is the largest buffer kept between commands. A command
	// that needed more gets its buffer swapped back to initBufSize once it
	// has been consumed, so one huge SET does not pin memory for the life of
	// the connection. Commands that fit stay allocation-free.
	maxRetainedBuf = 64 << 10
	// maxRetainedArgs is the same idea for the argument slices.
	maxRetainedArgs = 1024
	// maxEmptyReads guards against an io.Reader that keeps returning (0, nil).
	maxEmptyReads = 100
)

// Protocol error messages. They are Redis's, word for word where Redis has
// one, because client libraries and people grep for them.
const (
	msgInvalidMultibulk = "Protocol error: invalid multibulk length"
	msgInvalidBulk      = "Protocol error: invalid bulk length"
	msgBigInline        = "Protocol error: too big inline request"
	msgBigMultibulk     = "Protocol error: too big mbulk count string"
	msgBigBulkCount     = "Protocol error: too big bulk count string"
	msgUnbalanced       = "Protocol error: unbalanced quotes in request"
	msgTooManyArgs      = "Protocol error: too many arguments"
	msgQueryBuf         = "Protocol error: query buffer limit exceeded"
	msgBulkNoCRLF       = "Protocol error: expected CRLF after bulk argument"
	msgExpectedDollar   = "Protocol error: expected '$', got '"
)

// ProtocolError reports input that is not valid RESP. The stream cannot be
// resynchronised after one (the reader no longer knows where the next command
// starts), so the server should reply "-ERR " + Msg and close the connection.
// A Reader that returned a ProtocolError keeps returning it.
type ProtocolError struct {
	// Msg is the Redis-style message, e.g. "Protocol error: invalid bulk length".
	Msg string
}

// Error returns the message, ready to be sent after "-ERR ".
func (e *ProtocolError) Error() string { return e.Msg }

func protoErr(msg string) error { return &ProtocolError{Msg: msg} }

// Limits bounds what one client may make the Reader buffer. The zero value
// means "Redis defaults"; see [Limits.WithDefaults].
type Limits struct {
	MaxBulkLen   int // largest bulk string argument; default 512 MiB (Redis proto-max-bulk-len)
	MaxArgs      int // most arguments in one command; default 1<<20
	MaxInlineLen int // longest inline command line; default 64 KiB (Redis PROTO_INLINE_MAX_SIZE)
	MaxQueryBuf  int // most bytes buffered for one not-yet-complete command; default 1 GiB (Redis client-query-buffer-limit)
}

// WithDefaults returns l with every zero field set to its default. Negative
// fields are treated as zero: a negative limit has no meaning, and refusing
// every command because of a configuration typo would be worse.
func (l Limits) WithDefaults() Limits {
	if l.MaxBulkLen <= 0 {
		l.MaxBulkLen = DefaultMaxBulkLen
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = DefaultMaxArgs
	}
	if l.MaxInlineLen <= 0 {
		l.MaxInlineLen = DefaultMaxInlineLen
	}
	if l.MaxQueryBuf <= 0 {
		l.MaxQueryBuf = DefaultMaxQueryBuf
	}
	return l
}

// Reader parses client commands from a byte stream. It is not safe for
// concurrent use; each connection owns one.
//
// The reader keeps one buffer that holds the bytes of the command being
// parsed (plus whatever pipelined bytes arrived with it). Parsing is
// incremental: when a read leaves a command incomplete, the reader remembers
// how far it got, so a command trickling in byte by byte is scanned once.
type Reader struct {
	rd  io.Reader
	lim Limits

	buf []byte
	// buf[start:end] holds unconsumed bytes; start is where the command being
	// parsed begins and pos is how far parsing has got. scan is where the
	// search for the end of the current line resumes.
	start, pos, end, scan int

	// Multibulk state, valid while multi is set: want arguments are still
	// to come, and bulk is the declared length of the one being read, or -1
	// before its "$len" line has been parsed.
	multi bool
	want  int
	bulk  int

	// offs holds start/end offsets, relative to start, of the arguments
	// parsed so far. Offsets rather than slices, because the buffer may be
	// moved or reallocated while a command is still incomplete.
	offs []int
	args [][]byte

	rerr error // error that came with the last read's data, returned once that data is parsed
	perr error // sticky protocol error
}

// NewReader returns a Reader reading commands from r under the given limits
// (zero fields take their defaults). The reader does its own buffering, so r
// should be the raw connection, not a bufio.Reader.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{rd: r, lim: lim.WithDefaults(), bulk: -1}
}

// SetLimits replaces the limits from the next command on. A server uses it
// to hold unauthenticated clients to tighter limits, as Redis does.
func (r *Reader) SetLimits(lim Limits) { r.lim = lim.WithDefaults() }

// Buffered reports how many bytes are buffered but not yet consumed by
// ReadCommand. A server uses it after executing a command: if it is nonzero,
// another pipelined command may already be here, so replies can be batched
// rather than flushed one at a time.
func (r *Reader) Buffered() int { return r.end - r.start }

// ReadCommand reads the next command: either multibulk
// (*N\r\n$len\r\narg\r\n...) or an inline line (PING\r\n, SET a "b c"\n)
// split with Redis's quoting rules. Empty inline lines and multibulk headers
// with a count of zero or less are skipped, as Redis does.
//
// The returned slices point into the reader's buffer and are valid only until
// the next call to ReadCommand. Each has its capacity clipped to its length,
// so appending to one cannot overwrite its neighbour.
//
// It returns io.EOF if the stream ends between commands, io.ErrUnexpectedEOF
// if it ends inside one, a *ProtocolError for malformed input or a command
// over the limits, and otherwise whatever error the underlying reader
// returned.
func (r *Reader) ReadCommand() ([][]byte, error) {
	if r.perr != nil {
		return nil, r.perr
	}
	r.recycle()
	for {
		done, err := r.parse()
		if err != nil {
			r.perr = err
			return nil, err
		}
		if done {
			r.args = r.args[:0]
			base := r.buf[r.start:]
			for i := 0; i < len(r.offs); i += 2 {
				a, b := r.offs[i], r.offs[i+1]
				r.args = append(r.args, base[a:b:b])
			}
			r.start = r.pos
			r.scan = r.pos
			if len(r.args) == 0 {
				continue
			}
			return r.args, nil
		}
		// parse needs bytes beyond what is buffered. Everything buffered
		// belongs to the incomplete command, so this is where the query
		// buffer limit bites.
		if r.end-r.start >= r.lim.MaxQueryBuf {
			r.perr = protoErr(msgQueryBuf)
			return nil, r.perr
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && r.end > r.start {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// TryReadCommand returns the next command if it is entirely in the
// buffer, without reading from the underlying reader: ok is false when
// more bytes are needed (or nothing is buffered). Unlike ReadCommand it
// leaves the arguments of the previous command valid (the buffer is not
// refilled), so a caller can gather a pipeline of commands already
// received. The same errors as ReadCommand apply.
func (r *Reader) TryReadCommand() (args [][]byte, ok bool, err error) {
	if r.perr != nil {
		return nil, false, r.perr
	}
	for {
		if r.start == r.end {
			return nil, false, nil
		}
		done, err := r.parse()
		if err != nil {
			r.perr = err
			return nil, false, err
		}
		if !done {
			if r.end-r.start >= r.lim.MaxQueryBuf {
				r.perr = protoErr(msgQueryBuf)
				return nil, false, r.perr
			}
			return nil, false, nil
		}
		args := make([][]byte, 0, len(r.offs)/2)
		base := r.buf[r.start:]
		for i := 0; i < len(r.offs); i += 2 {
			a, b := r.offs[i], r.offs[i+1]
			args = append(args, base[a:b:b])
		}
		r.start = r.pos
		r.scan = r.pos
		if len(args) == 0 {
			continue
		}
		return args, true, nil
	}
}

// recycle runs between commands, when the previous command's arguments have
// just become invalid: it is the one moment the buffer may be reset or
// replaced without fixing up anything that points into it.
func (r *Reader) recycle() {
	if r.start == r.end && !r.multi {
		r.start, r.pos, r.end, r.scan = 0, 0, 0, 0
	}
	if len(r.buf) > maxRetainedBuf && r.end-r.start <= initBufSize/2 {
		nb := make([]byte, initBufSize)
		copy(nb, r.buf[r.start:r.end])
		r.rebase(nb)
	}
	if cap(r.args) > maxRetainedArgs {
		r.args = nil
	}
	if cap(r.offs) > 2*maxRetainedArgs && !r.multi {
		r.offs = nil
	}
}

// rebase installs nb, which holds the bytes that were at buf[start:end] at
// its beginning, and shifts the cursors to match.
func (r *Reader) rebase(nb []byte) {
	shift := r.start
	r.buf = nb
	r.start -= shift
	r.pos -= shift
	r.end -= shift
	r.scan -= shift
}

// fill reads once from the underlying reader into the free tail of the
// buffer, making room first if the tail is too small.
func (r *Reader) fill() error {
	if err := r.rerr; err != nil {
		// Returned once, like io.Reader itself would: after a timeout the
		// caller may extend the deadline and carry on with the partial
		// command still buffered.
		r.rerr = nil
		return err
	}
	r.makeRoom()
	for range maxEmptyReads {
		n, err := r.rd.Read(r.buf[r.end:])
		if n < 0 || n > len(r.buf)-r.end {
			n = 0 // a broken io.Reader; treat as no progress rather than corrupt the buffer
		}
		r.end += n
		if err != nil {
			if n > 0 {
				// io.Reader may return data and an error together: serve
				// the commands in the data first.
				r.rerr = err
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	r.rerr = io.ErrNoProgress
	return r.rerr
}

// makeRoom ensures there is free space after end. It grows the buffer only
// when the incomplete command already fills more than half of it, and then by
// doubling, so memory tracks bytes that actually arrived, never a length the
// client merely declared.
func (r *Reader) makeRoom() {
	if r.buf == nil {
		r.buf = make([]byte, initBufSize)
	}
	if len(r.buf)-r.end >= minRead {
		return
	}
	used := r.end - r.start
	newLen := 2 * len(r.buf)
	if r.multi && r.bulk >= 0 {
		// The rest of this argument is all we know we need; stopping there
		// avoids a final doubling to nearly twice a huge value's size.
		newLen = min(newLen, max(r.pos-r.start+r.bulk+2, used+minRead))
	}
	// parse never needs more than MaxQueryBuf bytes of one command.
	newLen = min(newLen, max(r.lim.MaxQueryBuf, used+minRead))
	if r.start > 0 && (used <= len(r.buf)/2 || newLen <= len(r.buf)) {
		// Sliding the partial command down frees enough; copying it costs
		// no more than growing would.
		copy(r.buf, r.buf[r.start:r.end])
		r.rebase(r.buf)
		return
	}
	nb := make([]byte, newLen)
	copy(nb, r.buf[r.start:r.end])
	r.rebase(nb)
}

// parse advances through the buffered bytes of the current command. It
// reports done once the whole command has been consumed (offs then holds its
// arguments, possibly none, and pos is just past it); otherwise it needs more
// bytes.
//
// It never looks past start+MaxQueryBuf. That makes the outcome for any input
// independent of how the input was split into reads: a command that would
// need more bytes than the limit fails the same way whether its bytes came
// one at a time or all at once.
func (r *Reader) parse() (done bool, err error) {
	end := r.end
	if w := r.start + r.lim.MaxQueryBuf; w < end {
		end = w
	}
	if !r.multi {
		if r.pos == end {
			return false, nil
		}
		if r.buf[r.start] != '*' {
			return r.parseInline(end)
		}
		n, ok, err := r.header(end, msgBigMultibulk, msgInvalidMultibulk)
		if !ok {
			return false, err
		}
		if n > math.MaxInt32 {
			return false, protoErr(msgInvalidMultibulk)
		}
		if n > int64(r.lim.MaxArgs) {
			return false, protoErr(msgTooManyArgs)
		}
		r.offs = r.offs[:0]
		if n <= 0 {
			return true, nil
		}
		r.multi, r.want, r.bulk = true, int(n), -1
	}
	for r.want > 0 {
		if r.bulk < 0 {
			if r.pos == end {
				return false, nil
			}
			// Checked before the line is complete: the answer cannot change,
			// and a desynchronised client learns of it at once.
			if c := r.buf[r.pos]; c != '$' {
				return false, protoErr(msgExpectedDollar + string([]byte{c}) + "'")
			}
			n, ok, err := r.header(end, msgBigBulkCount, msgInvalidBulk)
			if !ok {
				return false, err
			}
			if n < 0 || n > int64(r.lim.MaxBulkLen) {
				return false, protoErr(msgInvalidBulk)
			}
			// Refuse now an argument that can never fit, rather than buffer
			// up to the limit first.
			if int64(r.pos-r.start)+n+2 > int64(r.lim.MaxQueryBuf) {
				return false, protoErr(msgQueryBuf)
			}
			r.bulk = int(n)
		}
		if end-r.pos < r.bulk+2 {
			return false, nil
		}
		e := r.pos + r.bulk
		// Redis skips these two bytes unchecked. Checking them catches a
		// client that miscounted (bytes vs characters, say) at the faulty
		// argument, instead of misparsing whatever follows.
		if r.buf[e] != '\r' || r.buf[e+1] != '\n' {
			return false, protoErr(msgBulkNoCRLF)
		}
		r.offs = append(r.offs, r.pos-r.start, e-r.start)
		r.pos = e + 2
		r.scan = r.pos
		r.bulk = -1
		r.want--
	}
	r.multi = false
	return true, nil
}

// header parses the "*N" or "$N" line at pos, Redis-style: the number ends at
// the first CR, which must be followed by LF, and the line may be at most
// MaxInlineLen bytes (tooBig otherwise). On success it moves pos past the
// line; ok is false with a nil error when the line is not complete yet.
func (r *Reader) header(end int, tooBig, invalid string) (n int64, ok bool, err error) {
	// Fast path for the shape nearly every header has: a few digits, no
	// sign or leading zero, CRLF already buffered. It saves the IndexByte
	// call and the general parser on the two or more headers per command;
	// anything else takes the general path, which also words the errors.
	i := r.pos + 1
	for stop := min(end, i+18); i < stop && r.buf[i]-'0' <= 9; i++ {
		n = n*10 + int64(r.buf[i]-'0')
	}
	if digits := i - r.pos - 1; digits > 0 && i+1 < end && r.buf[i] == '\r' && r.buf[i+1] == '\n' &&
		(digits == 1 || r.buf[r.pos+1] != '0') && i-r.pos <= r.lim.MaxInlineLen {
		r.pos = i + 2
		r.scan = r.pos
		return n, true, nil
	}

	i = r.findLine('\r', end)
	if i < 0 || i-r.pos > r.lim.MaxInlineLen {
		if i < 0 && end-r.pos <= r.lim.MaxInlineLen {
			return 0, false, nil
		}
		return 0, false, protoErr(tooBig)
	}
	if i+1 >= end {
		return 0, false, nil
	}
	n, ok = parseInt(r.buf[r.pos+1 : i])
	if !ok || r.buf[i+1] != '\n' {
		return 0, false, protoErr(invalid)
	}
	r.pos = i + 2
	r.scan = r.pos
	return n, true, nil
}

// findLine returns the index in buf of the first c at or after pos and
// before end, or -1. A failed search remembers where it stopped, so bytes
// are scanned once however many reads the line takes to arrive.
func (r *Reader) findLine(c byte, end int) int {
	from := max(r.scan, r.pos)
	if from >= end {
		return -1
	}
	i := bytes.IndexByte(r.buf[from:end], c)
	if i < 0 {
		r.scan = end
		return -1
	}
	// A CR found but not yet followed by its LF is found again next time;
	// remember it rather than rescan.
	r.scan = from + i
	return from + i
}

// parseInline handles a command not starting with '*': one line, ended by
// LF with an optional CR before it, split into arguments in place.
func (r *Reader) parseInline(end int) (bool, error) {
	i := r.findLine('\n', end)
	if i < 0 || i-r.start > r.lim.MaxInlineLen {
		if i < 0 && end-r.start <= r.lim.MaxInlineLen {
			return false, nil
		}
		return false, protoErr(msgBigInline)
	}
	lineEnd := i
	if lineEnd > r.start && r.buf[lineEnd-1] == '\r' {
		lineEnd--
	}
	offs, err := splitInline(r.buf[r.start:lineEnd], r.offs[:0], r.lim.MaxArgs)
	r.offs = offs
	if err != nil {
		return false, err
	}
	r.pos = i + 1
	return true, nil
}

// parseInt parses a decimal integer exactly as Redis's string2ll does: an
// optional '-', no '+', no leading zeros, no spaces, at most 20 characters.
// Being as strict as Redis matters: a lenient parser would accept streams
// Redis rejects, and the two would then disagree on where commands begin.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return int64(-v), true
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}
