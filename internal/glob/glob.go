package glob

import "bytes"

// Match reports whether s matches the glob pattern, with exactly the
// semantics of Redis's stringmatchlen:
//
//	?        any one byte
//	*        any run of bytes, including none
//	[abc]    one byte from the set; [^abc] one byte not in it
//	[a-z]    a byte range, inclusive; a reversed range [z-a] means the same
//	\x       the byte x itself, outside or inside brackets
//
// Matching is bytewise. With nocase, ASCII letters compare without regard to
// case (a backslash-escaped byte inside brackets still compares exactly, as
// in Redis).
//
// Redis's quirks are kept on purpose, so that KEYS and PSUBSCRIBE select
// what they select on Redis:
//
//   - A non-empty pattern never matches the empty subject, not even "*":
//     Redis's matcher stops as soon as the subject is exhausted. KEYS and
//     SCAN special-case the bare "*" pattern (see [MatchAll]) before calling
//     the matcher, and that is why they still return an empty key name.
//   - An unterminated bracket runs to the end of the pattern: "[ab" matches
//     "a". "[" alone matches nothing, and "[^" any single byte.
//   - In a bracket, "x-" followed by any byte is a range, so "[a-]" is the
//     range from ']' to 'a'. A lone trailing backslash matches itself.
//   - Past 1000 stars Redis gives up: its recursive matcher answers "no
//     match" rather than nest deeper. Match keeps that limit (it costs
//     nothing here, as the matcher does not recurse), so KEYS answers the
//     same on both servers.
//
// One difference, where Redis's behaviour is an accident of C rather than a
// rule: byte ranges compare bytes as unsigned. Redis compares C chars, whose
// signedness depends on the platform, so its x86 and ARM builds disagree
// about a range such as "[a-\xff]"; Match agrees with the ARM build.
func Match(pattern, s []byte, nocase bool) bool {
	ok, _ := match(pattern, s, nocase)
	return ok
}

// MatchAll reports whether pattern is the bare "*" that KEYS and SCAN treat
// as "every key" without consulting [Match]. Callers that want Redis's answer
// for an empty key name must check it first, as Redis does.
func MatchAll(pattern []byte) bool {
	return len(pattern) == 1 && pattern[0] == '*'
}

// Literal reports whether pattern contains no special characters, so that
// Match(pattern, s, false) is true exactly when s equals pattern. Callers use
// it to turn KEYS/SCAN MATCH with a plain key name into one lookup instead of
// a scan of the keyspace. (A pattern with a backslash is reported as not
// literal even if it only escapes ordinary bytes; that costs a scan, never a
// wrong answer.)
func Literal(pattern []byte) bool {
	return !bytes.ContainsAny(pattern, `*?[\`)
}

// maxStars is Redis's nesting limit: a match that has to get past more
// stars than this fails.
const maxStars = 1000

// match is Match, also returning the number of steps taken, which tests use
// to check the worst-case bound.
//
// Every token but '*' consumes exactly one byte of s, so the classic greedy
// algorithm applies: advance through pattern and subject together; at a '*',
// remember where it is and first let it match nothing; on a mismatch, go back
// to the most recent '*' and let it swallow one more byte. Returning only to
// the most recent star is enough, because anything an earlier star could
// swallow, the later one can swallow instead. Each retry rescans at most the
// pattern, so the worst case is O(len(pattern)·len(s)) with no recursion,
// where a naive recursive matcher goes exponential on patterns like
// "*a*a*a*a*a*a*b" (Redis needs its skipLongerMatches flag and a nesting
// limit to avoid that).
//
// This coincides with Redis's recursion on non-empty subjects: Redis tries a
// star's continuations only at non-empty suffixes, but a continuation that
// starts with a non-star token can never match an empty suffix anyway.
//
// Redis's nesting limit translates simply: every match must pass each run of
// stars in the pattern in order, and Redis recurses once per run except for
// a run that ends the pattern. So reaching the 1001st such run means Redis
// would answer "no match", whatever follows. Each run is reached once, since
// backtracking returns only to just after the latest run.
func match(p, s []byte, nocase bool) (matched bool, steps int) {
	if len(s) == 0 {
		return len(p) == 0, 0
	}
	pi, si := 0, 0
	starP, starS := -1, 0
	stars := 0
	for si < len(s) {
		steps++
		if pi < len(p) {
			if p[pi] == '*' {
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true, steps
				}
				if stars++; stars > maxStars {
					return false, steps
				}
				starP, starS = pi, si
				continue
			}
			if ok, next := matchOne(p, pi, s[si], nocase); ok {
				pi = next
				si++
				continue
			}
		}
		if starP < 0 {
			return false, steps
		}
		starS++
		pi, si = starP, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p), steps
}

// matchOne matches the single-byte token at p[i] (anything but '*') against
// c, and returns whether it matched and where the next token starts.
func matchOne(p []byte, i int, c byte, nocase bool) (bool, int) {
	switch p[i] {
	case '?':
		return true, i + 1
	case '[':
		return matchClass(p, i+1, c, nocase)
	case '\\':
		if i+1 < len(p) {
			i++
		}
	}
	return equal(p[i], c, nocase), i + 1
}

// matchClass matches the bracket expression whose body starts at p[i]. It
// follows stringmatchlen's loop step by step, since the quirks (unterminated
// brackets, "x-" ranges, escapes compared exactly) live in its order of
// tests.
func matchClass(p []byte, i int, c byte, nocase bool) (bool, int) {
	not := i < len(p) && p[i] == '^'
	if not {
		i++
	}
	matched := false
	for {
		if i < len(p) && p[i] == '\\' && len(p)-i >= 2 {
			i++
			if p[i] == c {
				matched = true
			}
		} else if i < len(p) && p[i] == ']' {
			break
		} else if i >= len(p) {
			// Unterminated: the class ends with the pattern.
			return matched != not, len(p)
		} else if len(p)-i >= 3 && p[i+1] == '-' {
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			cc := c
			if nocase {
				lo, hi, cc = lower(lo), lower(hi), lower(c)
			}
			if lo <= cc && cc <= hi {
				matched = true
			}
			i += 2
		} else if equal(p[i], c, nocase) {
			matched = true
		}
		i++
	}
	return matched != not, i + 1
}

func equal(a, b byte, nocase bool) bool {
	if nocase {
		return lower(a) == lower(b)
	}
	return a == b
}

// lower is C's tolower in the C locale, which is what Redis uses: only
// ASCII letters fold.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
