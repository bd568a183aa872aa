package backing

// MaxNameLen is the longest escaped name the directory store uses as a file
// or directory name; longer ones are replaced by a hash (see the package
// documentation).
const MaxNameLen = 200

const hexDigits = "0123456789abcdef"

// plain reports whether byte c stays itself in an escaped name at position i.
func plain(c byte, i int) bool {
	switch {
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		return true
	case c == '.':
		return i > 0
	}
	return false
}

// escapedLen is len(escape(s)) without building it.
func escapedLen[T ~string | ~[]byte](s T) int {
	if len(s) == 0 {
		return 1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if plain(s[i], i) {
			n++
		} else {
			n += 3
		}
	}
	return n
}

// escape returns a file name for the bytes s: a-z, 0-9, '-', '_' and a
// non-leading '.' are kept, every other byte is %xx (lower-case hex), and
// the empty string is "%". The result never contains '/', is never "." or
// "..", never starts with '.', and has no upper-case letters.
func escape[T ~string | ~[]byte](s T) string {
	if len(s) == 0 {
		return "%"
	}
	b := make([]byte, 0, escapedLen(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c, i) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}

// unescape inverts escape. It accepts only names escape produces (one
// spelling per byte string), so foreign files are not taken for keys.
func unescape(name string) ([]byte, bool) {
	if name == "%" {
		return []byte{}, true
	}
	if name == "" {
		return nil, false
	}
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' {
			if !plain(c, len(b)) {
				return nil, false
			}
			b = append(b, c)
			continue
		}
		if i+2 >= len(name) {
			return nil, false
		}
		hi, lo := unhex(name[i+1]), unhex(name[i+2])
		if hi < 0 || lo < 0 {
			return nil, false
		}
		c = byte(hi<<4 | lo)
		if plain(c, len(b)) {
			return nil, false
		}
		b = append(b, c)
		i += 2
	}
	return b, true
}

// unhex decodes a lower-case hex digit, or returns -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	}
	return -1
}
