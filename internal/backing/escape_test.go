package backing

import (
	"bytes"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "%"},
		{"abc-_.9", "abc-_.9"},
		{".", "%2e"},
		{"..", "%2e."},
		{".hidden", "%2ehidden"},
		{"a/b", "a%2fb"},
		{"\x00", "%00"},
		{"A", "%41"},
		{"%", "%25"},
		{"é", "%c3%a9"},
		{"\xff", "%ff"},
	} {
		if got := escape(c.in); got != c.want {
			t.Errorf("escape(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := escapedLen(c.in); got != len(c.want) {
			t.Errorf("escapedLen(%q) = %d, want %d", c.in, got, len(c.want))
		}
		if got, ok := unescape(c.want); !ok || string(got) != c.in {
			t.Errorf("unescape(%q) = %q, %v", c.want, got, ok)
		}
	}
	// Names escape would not produce are refused, so foreign files and
	// other spellings are never taken for keys.
	for _, name := range []string{"", ".", "..", ".x", "A", "%41%", "%4", "%zz", "%4A", "%61", "a%2e", "%2e%2e", "a/b", "%%"} {
		if k, ok := unescape(name); ok {
			t.Errorf("unescape(%q) = %q, want refusal", name, k)
		}
	}
}

func checkEscape(t *testing.T, key []byte) {
	name := escape(key)
	if len(name) != escapedLen(key) {
		t.Fatalf("escapedLen(%q) = %d, len(escape) = %d", key, escapedLen(key), len(name))
	}
	if name == "" || name == "." || name == ".." || name[0] == '.' || strings.ContainsAny(name, "/\\\x00") {
		t.Fatalf("escape(%q) = %q: not a safe file name", key, name)
	}
	if strings.ToLower(name) != name {
		t.Fatalf("escape(%q) = %q has upper case", key, name)
	}
	back, ok := unescape(name)
	if !ok || !bytes.Equal(back, key) {
		t.Fatalf("unescape(escape(%q)) = %q, %v", key, back, ok)
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a/b", "\x00", "%", "%2e", "Ab.c", "é", strings.Repeat("x", 300)} {
		f.Add([]byte(s), s)
	}
	f.Fuzz(func(t *testing.T, key []byte, name string) {
		checkEscape(t, key)
		// Any name unescape accepts is the one escape gives its key.
		if k, ok := unescape(name); ok && escape(k) != name {
			t.Fatalf("unescape(%q) = %q, but escape gives %q", name, k, escape(k))
		}
	})
}
