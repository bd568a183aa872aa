package cli

import (
	"bytes"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Small values have a bucket each; buckets tile the int64 range with
	// no gap or overlap, and every value lands in a bucket holding it.
	for v := int64(0); v < 4*subCount; v++ {
		if v < subCount && bucketOf(v) != int(v) {
			t.Fatalf("bucketOf(%d) = %d", v, bucketOf(v))
		}
	}
	for i := 1; i < histBuckets; i++ {
		if bucketHigh(i-1)+1 != bucketLow(i) {
			t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i-1, bucketHigh(i-1), i, bucketLow(i))
		}
	}
	if bucketHigh(histBuckets-1) != math.MaxInt64 {
		t.Fatalf("last bucket ends at %d", bucketHigh(histBuckets-1))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := r.Int64N(1 << r.IntN(63))
		i := bucketOf(v)
		if v < bucketLow(i) || v > bucketHigh(i) {
			t.Fatalf("%d in bucket %d [%d, %d]", v, i, bucketLow(i), bucketHigh(i))
		}
		// The promise: a bucket is narrower than 1/subCount of its values.
		if w := bucketHigh(i) - bucketLow(i) + 1; v >= subCount && float64(w) > float64(v)/subCount {
			t.Fatalf("bucket of %d is %d wide", v, w)
		}
	}
}

// bucketLow is the smallest value in bucket i (the test's own derivation
// from bucketHigh, so the two are checked against each other).
func bucketLow(i int) int64 {
	if i == 0 {
		return 0
	}
	return bucketHigh(i-1) + 1
}

func TestHistogramQuantiles(t *testing.T) {
	h := newHistogram()
	if h.quantile(0.5) != 0 || h.mean() != 0 {
		t.Fatal("empty histogram must report 0")
	}
	// 1..100000 once each: quantile q is q*100000 within the 1% promise.
	for v := int64(1); v <= 100000; v++ {
		h.record(v, 1)
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := q * 100000
		got := float64(h.quantile(q))
		if got < want || got > want*(1+1.0/subCount) {
			t.Errorf("quantile(%v) = %v, want %v (+1%%)", q, got, want)
		}
	}
	if h.quantile(1) != 100000 || h.min != 1 || h.max != 100000 || h.mean() != 50000.5 {
		t.Errorf("max %d min %d mean %v", h.max, h.min, h.mean())
	}

	// Merging and weighted records give the same answers as one stream.
	a, b := newHistogram(), newHistogram()
	a.record(10, 90)
	b.record(5000, 9)
	b.record(-3, 0) // a zero count changes nothing
	b.record(1_000_000, 1)
	a.merge(b)
	if a.total != 100 || a.quantile(0.9) != 10 || a.quantile(0.95) < 5000 || a.quantile(0.95) > 5000+5000/subCount || a.quantile(1) != 1_000_000 {
		t.Errorf("merged: total %d p90 %d p95 %d max %d", a.total, a.quantile(0.9), a.quantile(0.95), a.quantile(1))
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, c := range []struct{ key, value string }{
		{"k", "v"},
		{"", ""},
		{"\xff\x00", "\x80"},
		{"ключ ✓", "<json>&\"quoted\"\n"},
	} {
		var b bytes.Buffer
		if err := newRecordEncoder(&b).Encode(newRecord(c.key, c.value, 1500)); err != nil {
			t.Fatal(err)
		}
		k, v, ttl, err := parseRecord(b.Bytes())
		if err != nil || k != c.key || v != c.value || ttl != 1500 {
			t.Errorf("%q=%q: line %s parsed as %q=%q ttl %d, %v", c.key, c.value, b.String(), k, v, ttl, err)
		}
		if bin := strings.Contains(b.String(), "_b64"); bin == (c.key != "\xff\x00") {
			t.Errorf("line %s: base64 used = %v", b.String(), bin)
		}
	}
	if _, _, ttl, err := parseRecord([]byte(`{"key":"k","value":"v"}`)); err != nil || ttl != 0 {
		t.Errorf("no ttl_ms: ttl %d, %v", ttl, err)
	}
}

func TestParseRecordRejects(t *testing.T) {
	for line, want := range map[string]string{
		`not json`:                   "invalid JSON",
		`{"key":"k","value":"v"} {}`: "text after the object",
		`{"key":"k"}`:                `missing "value"`,
		`{"value":"v"}`:              `missing "key"`,
		`{"key":"k","key_b64":"aw==","value":"v"}`:              "both",
		`{"key_b64":"!!","value":"v"}`:                          "not valid base64",
		`{"key":"k","value":"v","ttl_ms":-5}`:                   "negative",
		`{"key":"k","value":"v","ttl_ms":1.5}`:                  "invalid JSON",
		`{"key":"k","value":"v","tll_ms":5}`:                    `unknown field "tll_ms"`,
		`["k","v"]`:                                             "invalid JSON",
		`{"key":1,"value":"v"}`:                                 "invalid JSON",
		`{"key":"k","value_b64":"AAE=","value":"v"}`:            "both",
		`{"key":"k","value":"v","ttl_ms":"5"}`:                  "invalid JSON",
		`{"key":"k","value":"v","ttl_ms":99999999999999999999}`: "invalid JSON",
	} {
		if _, _, _, err := parseRecord([]byte(line)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want it to mention %q", line, err, want)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"user:1":     "user:1",
		"with space": "with space",
		"ключ":       "ключ",
		"":           `""`,
		" lead":      `" lead"`,
		"a\nb":       `"a\nb"`,
		"\xff":       `"\xff"`,
		`"quoted`:    `"\"quoted"`,
		"tab\there":  `"tab\there"`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		pos  []string
		ttl  time.Duration
		json bool
	}{
		{[]string{"k", "v", "--ttl", "10s"}, []string{"k", "v"}, 10 * time.Second, false},
		{[]string{"--ttl=1m", "k", "--json", "v"}, []string{"k", "v"}, time.Minute, true},
		{[]string{"counter", "-5"}, []string{"counter", "-5"}, 0, false},
		{[]string{"k", "--", "--json", "-x"}, []string{"k", "--json", "-x"}, 0, false},
		{[]string{}, nil, 0, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		ttl := fs.Duration("ttl", 0, "")
		js := fs.Bool("json", false, "")
		pos, err := parseArgs(fs, c.args)
		if err != nil || !slices.Equal(pos, c.pos) || *ttl != c.ttl || *js != c.json {
			t.Errorf("%q: pos %q ttl %v json %v err %v", c.args, pos, *ttl, *js, err)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseArgs(fs, []string{"k", "--unknown"}); err == nil {
		t.Error("an unknown flag after an argument was accepted")
	}
}

func TestParseRatio(t *testing.T) {
	for in, want := range map[string][2]int{"1:1": {1, 1}, "1:10": {1, 10}, "0:1": {0, 1}, "3:0": {3, 0}} {
		s, g, err := parseRatio(in)
		if err != nil || s != want[0] || g != want[1] {
			t.Errorf("parseRatio(%q) = %d, %d, %v", in, s, g, err)
		}
	}
	for _, in := range []string{"", "1", "1:", ":1", "0:0", "-1:2", "a:b", "1:1:1", "1001:1"} {
		if _, _, err := parseRatio(in); err == nil {
			t.Errorf("parseRatio(%q) accepted", in)
		}
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -12345: "-12,345"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %s", n, got)
		}
	}
	if got := nkeys(1) + ", " + nkeys(2000); got != "1 key, 2,000 keys" {
		t.Errorf("nkeys: %s", got)
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %s", n, got)
		}
	}
	if d, ok := eta(250, 1000, 10*time.Second); !ok || d != 30*time.Second {
		t.Errorf("eta a quarter done after 10s = %v, %v", d, ok)
	}
	if _, ok := eta(0, 1000, time.Second); ok {
		t.Error("eta with nothing done")
	}
	if _, ok := eta(10, 0, time.Second); ok {
		t.Error("eta with no total")
	}
	if d, ok := eta(1200, 1000, time.Second); !ok || d != 0 {
		t.Errorf("eta past the total = %v", d)
	}
	if percent(1200, 1000) != " (100%)" || percent(5, 0) != "" {
		t.Errorf("percent: %q %q", percent(1200, 1000), percent(5, 0))
	}
}

func TestParseInfo(t *testing.T) {
	text := "# Server\r\nengram_version:1.2.3\r\nuptime_in_seconds:3725\r\n\r\n" +
		"# Memory\r\nused_memory:2048\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n\r\n" +
		"# Stats\r\nkeyspace_hits:3\r\nkeyspace_misses:1\r\n\r\n" +
		"# Keyspace\r\nmap_0:keys=10,bytes=100,max_ttl=0\r\nmap_a_b:keys=5,bytes=50,max_ttl=60\r\n"
	in := parseInfo(text)
	if in.Version != "1.2.3" || in.UptimeSeconds != 3725 || in.UsedMemory != 2048 || in.Policy != "allkeys-lru" ||
		in.Keys != 15 || in.Maps != 2 || in.HitRatio == nil || *in.HitRatio != 0.75 {
		t.Errorf("parseInfo = %+v", in)
	}
	if parseInfo("").HitRatio != nil {
		t.Error("hit ratio with no reads must be unknown, not 0")
	}
}

// syncBuffer is a bytes.Buffer the progress goroutine and the test can
// share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressTerminal(t *testing.T) {
	var buf syncBuffer
	var mu sync.Mutex
	n := 0
	p := startProgress(&buf, true, time.Millisecond, func(time.Duration) string {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 1 {
			return "first longer line"
		}
		return "second"
	})
	for !strings.Contains(buf.String(), "second") {
		time.Sleep(time.Millisecond)
	}
	p.Stop()
	p.Stop()
	out := buf.String()
	// Redrawn in place, shorter lines padded over longer ones, and the
	// line blanked at the end; never a newline.
	if !strings.HasPrefix(out, "\rfirst longer line\rsecond           ") || !strings.HasSuffix(out, "\r") || strings.Contains(out, "\n") {
		t.Errorf("terminal progress wrote %q", out)
	}
	var nilP *progress
	nilP.Stop()
}

func TestProgressNotTerminal(t *testing.T) {
	var buf syncBuffer
	// An interval no test outlives: the only line is the final one.
	p := startProgress(&buf, false, time.Hour, func(time.Duration) string { return "done 5/5" })
	p.Stop()
	if got := buf.String(); got != "done 5/5\n" {
		t.Errorf("non-terminal progress wrote %q", got)
	}
}
