package resp

import (
	"math"
	"strconv"
	"strings"
)

// The Append functions encode one reply (or one aggregate header) and append
// it to b, returning the extended slice, in the style of strconv.AppendInt.
// The server keeps one reply buffer per connection and appends a pipeline's
// replies to it, so encoding never allocates once the buffer has grown to its
// working size.
//
// proto is the connection's protocol version as negotiated by HELLO: 3 for
// RESP3, anything else for RESP2.

// AppendSimple appends a simple string reply, "+s\r\n". A simple string
// cannot carry CR or LF, so any in s are replaced by spaces rather than let
// them corrupt the stream.
func AppendSimple(b []byte, s string) []byte {
	b = append(b, '+')
	b = appendLine(b, s)
	return append(b, '\r', '\n')
}

// AppendError appends an error reply, "-msg\r\n". msg carries its own prefix
// word ("ERR ...", "WRONGTYPE ..."), which clients use as the error code. CR
// and LF in msg are replaced by spaces, as Redis does, because some error
// messages quote user input.
func AppendError(b []byte, msg string) []byte {
	b = append(b, '-')
	b = appendLine(b, msg)
	return append(b, '\r', '\n')
}

// AppendInt appends an integer reply, ":n\r\n".
func AppendInt(b []byte, n int64) []byte {
	b = append(b, ':')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

// AppendBulk appends a bulk string reply, "$len\r\nv\r\n". A nil v is
// encoded as the empty string, not as null: use [AppendNull] for that.
func AppendBulk(b []byte, v []byte) []byte {
	b = appendHeader(b, '$', len(v))
	b = append(b, v...)
	return append(b, '\r', '\n')
}

// AppendBulkString is [AppendBulk] for a string.
func AppendBulkString(b []byte, s string) []byte {
	b = appendHeader(b, '$', len(s))
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendNull appends the null reply that stands for a missing value (GET of
// an absent key): "$-1\r\n" in RESP2, "_\r\n" in RESP3.
func AppendNull(b []byte, proto int) []byte {
	if proto >= 3 {
		return append(b, '_', '\r', '\n')
	}
	return append(b, "$-1\r\n"...)
}

// AppendNullArray appends the null reply that stands for a missing aggregate
// (BLPOP timing out, EXEC of an aborted transaction): "*-1\r\n" in RESP2,
// "_\r\n" in RESP3.
func AppendNullArray(b []byte, proto int) []byte {
	if proto >= 3 {
		return append(b, '_', '\r', '\n')
	}
	return append(b, "*-1\r\n"...)
}

// AppendArrayHeader appends "*n\r\n"; the n elements must follow.
func AppendArrayHeader(b []byte, n int) []byte {
	return appendHeader(b, '*', n)
}

// AppendMapHeader appends the header of a map of n key/value pairs; the 2n
// keys and values must follow, alternating. RESP2 has no map type, so there
// it is a flat array of 2n elements, as Redis sends for HGETALL.
func AppendMapHeader(b []byte, n int, proto int) []byte {
	if proto >= 3 {
		return appendHeader(b, '%', n)
	}
	return appendHeader(b, '*', 2*n)
}

// AppendSetHeader appends the header of a set of n elements: "~n\r\n" in
// RESP3, an array header in RESP2.
func AppendSetHeader(b []byte, n int, proto int) []byte {
	if proto >= 3 {
		return appendHeader(b, '~', n)
	}
	return appendHeader(b, '*', n)
}

// AppendPushHeader appends the header of an out-of-band push message (pub/sub
// messages, invalidations) of n elements: ">n\r\n" in RESP3, an array header
// in RESP2, where pub/sub messages are plain arrays.
func AppendPushHeader(b []byte, n int, proto int) []byte {
	if proto >= 3 {
		return appendHeader(b, '>', n)
	}
	return appendHeader(b, '*', n)
}

// AppendDouble appends a floating point reply (ZSCORE, INCRBYFLOAT). RESP3
// has a double type: ",1.5\r\n", with "inf", "-inf" and "nan" spelled as
// Redis 7 spells them. RESP2 does not, so the number goes in a bulk string,
// formatted as Redis formats it (see [appendFloat]).
func AppendDouble(b []byte, f float64, proto int) []byte {
	if proto >= 3 {
		b = append(b, ',')
		b = appendFloat(b, f)
		return append(b, '\r', '\n')
	}
	// The length prefix comes before the digits, so format into a scratch
	// array first. 32 bytes hold any float64 in either notation.
	var tmp [32]byte
	num := appendFloat(tmp[:0], f)
	b = appendHeader(b, '$', len(num))
	b = append(b, num...)
	return append(b, '\r', '\n')
}

// appendFloat formats f the way Redis's %.17g did, but with the shortest
// digits that round-trip (which is also what Redis 7.2's fpconv_dtoa
// produces for ordinary values): plain notation for magnitudes in [1e-4,
// 1e17), so integral scores print as integers ("3", not "3e+00"), and
// exponent notation outside it. Infinities and NaN use Redis's spellings.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "nan"...)
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	case f == 0:
		if math.Signbit(f) {
			return append(b, '-', '0')
		}
		return append(b, '0')
	}
	if a := math.Abs(f); a >= 1e-4 && a < 1e17 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'e', -1, 64)
}

// AppendBool appends a boolean reply: "#t\r\n"/"#f\r\n" in RESP3, the
// integers 1 and 0 in RESP2, which is what Redis sends there.
func AppendBool(b []byte, v bool, proto int) []byte {
	if proto >= 3 {
		if v {
			return append(b, '#', 't', '\r', '\n')
		}
		return append(b, '#', 'f', '\r', '\n')
	}
	if v {
		return append(b, ':', '1', '\r', '\n')
	}
	return append(b, ':', '0', '\r', '\n')
}

// AppendVerbatim appends a verbatim string (INFO, LATENCY DOCTOR): in RESP3
// "=len\r\nfmt:s\r\n", where format is the three-byte type hint "txt" or
// "mkd" that tells a client how to render s; in RESP2 a plain bulk string.
// A format that is not three bytes long is replaced by "txt", since the
// protocol reserves exactly three bytes for it and anything else would make
// the reply unparseable.
func AppendVerbatim(b []byte, format string, s string, proto int) []byte {
	if proto < 3 {
		return AppendBulkString(b, s)
	}
	if len(format) != 3 {
		format = "txt"
	}
	b = appendHeader(b, '=', len(s)+4)
	b = append(b, format...)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// appendHeader appends a type byte, a decimal count and CRLF.
func appendHeader(b []byte, kind byte, n int) []byte {
	b = append(b, kind)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// appendLine appends s with every CR and LF replaced by a space, for the
// line-delimited reply types that cannot escape them.
func appendLine(b []byte, s string) []byte {
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			return append(b, s...)
		}
		b = append(b, s[:i]...)
		b = append(b, ' ')
		s = s[i+1:]
	}
}
