package resp

import "bytes"

// splitInline splits an inline command line into arguments with the rules of
// Redis's sdssplitargs, appending each argument's start/end offsets (relative
// to line) to offs:
//
//   - arguments are separated by blanks;
//   - "double quotes" allow \n \r \t \b \a \\ \" and \xHH escapes (any other
//     escaped byte stands for itself);
//   - 'single quotes' allow only \' ;
//   - a closing quote must be followed by a blank or the end of the line;
//   - quotes may start in the middle of an argument: a"b c"d is one
//     argument, "ab cd";
//   - an unterminated quote is an error.
//
// Arguments are decoded in place: every escape or quote is at least as long
// as what it decodes to, so the write cursor never overtakes the read cursor
// and no allocation is needed.
func splitInline(line []byte, offs []int, maxArgs int) ([]int, error) {
	// sdssplitargs works on a C string, so Redis ignores everything from the
	// first NUL on. Do the same, so both servers see the same command.
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	n := len(line)
	p, w := 0, 0
	for {
		for p < n && isSpace(line[p]) {
			p++
		}
		if p == n {
			return offs, nil
		}
		if len(offs)/2 >= maxArgs {
			return offs, protoErr(msgTooManyArgs)
		}
		tok := w
		inDouble, inSingle := false, false
	token:
		for {
			switch {
			case inDouble:
				if p == n {
					return offs, protoErr(msgUnbalanced)
				}
				c := line[p]
				switch {
				case c == '\\' && p+3 < n && line[p+1] == 'x' && isHex(line[p+2]) && isHex(line[p+3]):
					line[w] = unhex(line[p+2])<<4 | unhex(line[p+3])
					w++
					p += 4
				case c == '\\' && p+1 < n:
					line[w] = unescape(line[p+1])
					w++
					p += 2
				case c == '"':
					if p+1 < n && !isSpace(line[p+1]) {
						return offs, protoErr(msgUnbalanced)
					}
					p++
					break token
				default:
					line[w] = c
					w++
					p++
				}
			case inSingle:
				if p == n {
					return offs, protoErr(msgUnbalanced)
				}
				c := line[p]
				switch {
				case c == '\\' && p+1 < n && line[p+1] == '\'':
					line[w] = '\''
					w++
					p += 2
				case c == '\'':
					if p+1 < n && !isSpace(line[p+1]) {
						return offs, protoErr(msgUnbalanced)
					}
					p++
					break token
				default:
					line[w] = c
					w++
					p++
				}
			default:
				if p == n {
					break token
				}
				switch c := line[p]; c {
				case ' ', '\n', '\r', '\t':
					p++
					break token
				case '"':
					inDouble = true
					p++
				case '\'':
					inSingle = true
					p++
				default:
					line[w] = c
					w++
					p++
				}
			}
		}
		offs = append(offs, tok, w)
	}
}

// isSpace is C's isspace in the C locale, which sdssplitargs uses to skip
// blanks between arguments and to check what follows a closing quote. (Inside
// an unquoted argument only space, tab, CR and LF end it, so \v and \f are
// part of the argument there; that asymmetry is Redis's too.)
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// unescape maps the byte after a backslash inside double quotes.
func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}
