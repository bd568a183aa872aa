package glob

import (
	"bytes"
	"strings"
	"testing"
)

// refMatch is a line-by-line port of Redis's stringmatchlen_impl
// (skipLongerMatches and the nesting limit included), kept deliberately
// close to the C so that it can serve as the oracle for Match. at emulates
// reading a NUL-terminated C string: past the end there is a 0 byte.
func refMatch(pattern, s []byte, nocase bool) bool {
	skip := false
	return refImpl(pattern, s, nocase, &skip, 0)
}

func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

func refImpl(p, s []byte, nocase bool, skipLonger *bool, nesting int) bool {
	if nesting > 1000 {
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && at(p, 1) == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if refImpl(p[1:], s, nocase, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			// Work with an index so that "pattern--" can be expressed.
			i := 1
			not := at(p, i) == '^'
			if not {
				i++
			}
			match := false
			for {
				if at(p, i) == '\\' && len(p)-i >= 2 {
					i++
					if p[i] == s[0] {
						match = true
					}
				} else if at(p, i) == ']' {
					break
				} else if len(p)-i == 0 {
					i--
					break
				} else if len(p)-i >= 3 && p[i+1] == '-' {
					start, end, c := int(p[i]), int(p[i+2]), int(s[0])
					if start > end {
						start, end = end, start
					}
					if nocase {
						start, end, c = int(lower(byte(start))), int(lower(byte(end))), int(lower(byte(c)))
					}
					i += 2
					if c >= start && c <= end {
						match = true
					}
				} else if !nocase {
					if p[i] == s[0] {
						match = true
					}
				} else if lower(p[i]) == lower(s[0]) {
					match = true
				}
				i++
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			p = p[i:] // the loop's pattern++ below steps over the ']'
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if !nocase {
				if p[0] != s[0] {
					return false
				}
			} else if lower(p[0]) != lower(s[0]) {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

type matchCase struct {
	pattern, s string
	nocase     bool
	want       bool
}

func matchCases() []matchCase {
	return []matchCase{
		// Literals.
		{"", "", false, true},
		{"", "a", false, false},
		{"a", "", false, false},
		{"abc", "abc", false, true},
		{"abc", "abd", false, false},
		{"abc", "ab", false, false},
		{"ab", "abc", false, false},
		{"ABC", "abc", false, false},
		{"ABC", "abc", true, true},
		{"\xff\x00", "\xff\x00", false, true},
		// Stars.
		{"*", "", false, false}, // Redis: a pattern never matches the empty subject
		{"**", "", false, false},
		{"*", "anything", false, true},
		{"a*", "a", false, true},
		{"a**", "a", false, true},
		{"a*b", "a", false, false},
		{"a*b", "ab", false, true},
		{"a*b", "axxxb", false, true},
		{"a*b", "axxxbc", false, false},
		{"*b", "abab", false, true},
		{"*ab", "aab", false, true},
		{"foo*", "foo_a", false, true},
		{"*foo*", "xfooy", false, true},
		{"*foo*", "xfoy", false, false},
		{"user:*:session", "user:42:session", false, true},
		{"user:*:session", "user:42:sessions", false, false},
		{"a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 60), false, false},
		// Question marks.
		{"?", "a", false, true},
		{"?", "", false, false},
		{"?", "ab", false, false},
		{"h?llo", "hello", false, true},
		{"h?llo", "hllo", false, false},
		{"*?", "a", false, true},
		{"?*", "a", false, true},
		// Classes.
		{"h[ae]llo", "hello", false, true},
		{"h[ae]llo", "hallo", false, true},
		{"h[ae]llo", "hillo", false, false},
		{"h[^e]llo", "hallo", false, true},
		{"h[^e]llo", "hello", false, false},
		{"h[a-b]llo", "hbllo", false, true},
		{"h[a-b]llo", "hcllo", false, false},
		{"h[b-a]llo", "hallo", false, true}, // reversed range
		{"[a-c]", "B", true, true},
		{"[A-C]", "b", true, true},
		{"[Z-a]", "_", false, true},
		{"[Z-a]", "_", true, false}, // bounds fold after swapping: [z-a] is empty
		{"[abc]", "B", true, true},
		{"[\\]]", "]", false, true},
		{"[\\-]", "-", false, true},
		{"[\\A]", "a", true, false}, // escaped bytes in a class compare exactly
		{"[a-]", "]", false, true},  // "a-]" is a range from ']' to 'a'
		{"[a-]", "^", false, true},
		{"[a-]", "-", false, false},
		{"[a-]x", "bx", false, false},
		{"[ab", "a", false, true}, // unterminated: the class runs to the end
		{"[ab", "c", false, false},
		{"[ab", "ab", false, false},
		{"[", "[", false, false},
		{"[", "", false, false},
		{"[^", "x", false, true},
		{"[^", "", false, false},
		{"[]", "]", false, false},
		{"[]]", "]", false, false},
		{"[^]", "a", false, true},
		{"x[ab]*", "xb", false, true},
		{"[*]", "*", false, true},
		{"[?]", "a", false, false},
		{"[a\\", "\\", false, true},
		{"[\\", "\\", false, true},
		// Escapes.
		{"\\*", "*", false, true},
		{"\\*", "a", false, false},
		{"\\?", "?", false, true},
		{"\\[a]", "[a]", false, true},
		{"\\\\", "\\", false, true},
		{"\\", "\\", false, true}, // trailing backslash matches itself
		{"a\\", "a\\", false, true},
		{"\\a", "A", true, true}, // outside a class, escapes honour nocase
		{"*\\*", "abc*", false, true},
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range matchCases() {
		got := Match([]byte(tc.pattern), []byte(tc.s), tc.nocase)
		if got != tc.want {
			t.Errorf("Match(%q, %q, %v) = %v, want %v", tc.pattern, tc.s, tc.nocase, got, tc.want)
		}
		// The table's expectations are Redis's: the oracle must agree,
		// or the table is wrong.
		if ref := refMatch([]byte(tc.pattern), []byte(tc.s), tc.nocase); ref != tc.want {
			t.Errorf("refMatch(%q, %q, %v) = %v, want %v", tc.pattern, tc.s, tc.nocase, ref, tc.want)
		}
	}
}

// Redis's regression test: 50000 nested stars give up rather than match,
// and so must Match. Just under the limit, both match.
func TestMatchNestingLimit(t *testing.T) {
	for _, n := range []int{999, 1000, 1001, 50000} {
		pattern := []byte(strings.Repeat("*?", n))
		s := bytes.Repeat([]byte("A"), n)
		want := n <= 1000
		if n <= 1001 {
			if ref := refMatch(pattern, s, false); ref != want {
				t.Fatalf("n=%d: reference says %v, test expects %v", n, ref, want)
			}
		}
		if got := Match(pattern, s, false); got != want {
			t.Errorf("n=%d: Match = %v, want %v", n, got, want)
		}
		// A final run of stars costs Redis no recursion, so it does not
		// count against the limit.
		if n == 1000 {
			withTail := append(bytes.Repeat([]byte("?*"), n), '*')
			if !Match(withTail, s, false) || !refMatch(withTail, s, false) {
				t.Errorf("pattern ending in a star run should still match")
			}
		}
	}
}

// Hostile patterns must stay within the O(len(p)·len(s)) bound.
func TestMatchWorstCase(t *testing.T) {
	cases := []struct{ pattern, s string }{
		{strings.Repeat("*a", 20) + "*b", strings.Repeat("a", 20000)},
		{"*" + strings.Repeat("a", 100) + "b", strings.Repeat("a", 20000)},
		{strings.Repeat("*?", 500) + "b", strings.Repeat("a", 5000)},
		{"*[a-z][a-z][a-z][a-z]b", strings.Repeat("a", 20000)},
	}
	for _, tc := range cases {
		ok, steps := match([]byte(tc.pattern), []byte(tc.s), false)
		if ok {
			t.Errorf("%.20q matched", tc.pattern)
		}
		if bound := (len(tc.pattern) + 1) * (len(tc.s) + 1); steps > bound {
			t.Errorf("%.20q: %d steps, bound %d", tc.pattern, steps, bound)
		}
	}
	// The common case is linear: a prefix pattern does not backtrack.
	_, steps := match([]byte("user:*"), []byte("user:"+strings.Repeat("x", 10000)), false)
	if steps > 10 {
		t.Errorf("prefix pattern took %d steps", steps)
	}
}

func TestLiteral(t *testing.T) {
	cases := []struct {
		pattern string
		want    bool
	}{
		{"", true}, {"user:1", true}, {"a]b^c-d", true}, {"\xff\x00", true},
		{"*", false}, {"a?", false}, {"[a]", false}, {"a\\b", false},
	}
	for _, tc := range cases {
		if got := Literal([]byte(tc.pattern)); got != tc.want {
			t.Errorf("Literal(%q) = %v, want %v", tc.pattern, got, tc.want)
		}
	}
}

func TestMatchAll(t *testing.T) {
	for p, want := range map[string]bool{"*": true, "": false, "**": false, "a*": false, "\\*": false} {
		if got := MatchAll([]byte(p)); got != want {
			t.Errorf("MatchAll(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	p, s := []byte("*[a-z]:?*x"), []byte("abc:defghx")
	if n := testing.AllocsPerRun(100, func() { Match(p, s, true) }); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

// FuzzMatch checks Match against the literal port of Redis's matcher on
// short inputs (where the port's exponential worst case is affordable), and
// Literal's promise.
func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases() {
		f.Add([]byte(tc.pattern), []byte(tc.s), tc.nocase)
	}
	f.Fuzz(func(t *testing.T, pattern, s []byte, nocase bool) {
		if len(pattern) > 24 || len(s) > 32 {
			return
		}
		got, want := Match(pattern, s, nocase), refMatch(pattern, s, nocase)
		if got != want {
			t.Fatalf("Match(%q, %q, %v) = %v, Redis says %v", pattern, s, nocase, got, want)
		}
		if Literal(pattern) && !nocase && got != bytes.Equal(pattern, s) {
			t.Fatalf("Literal(%q) but Match(%q) = %v", pattern, s, got)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	cases := []struct{ name, pattern, s string }{
		{"literal", "user:1234:session", "user:1234:session"},
		{"prefix", "user:*", "user:1234:session"},
		{"suffix", "*:session", "user:1234:session"},
		{"class", "user:[0-9][0-9]*:sess?on", "user:1234:session"},
		{"nocase", "USER:*:SESSION", "user:1234:session"},
		{"hostile", "*a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 1000)},
	}
	for _, c := range cases {
		p, s := []byte(c.pattern), []byte(c.s)
		nocase := c.name == "nocase"
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Match(p, s, nocase)
			}
		})
	}
}
