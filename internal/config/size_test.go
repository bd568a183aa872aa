package config

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1", 1},
		{"1048576", 1 << 20},
		{"1b", 1},
		{"1B", 1},
		{"1k", 1000},
		{"1K", 1000},
		{"1kb", 1024},
		{"1KB", 1024},
		{"1KiB", 1024},
		{"1kib", 1024},
		{"1m", 1_000_000},
		{"1mb", 1 << 20},
		{"100mb", 100 << 20},
		{"512MiB", 512 << 20},
		{"1g", 1_000_000_000},
		{"1gb", 1 << 30},
		{"1GB", 1 << 30},
		{"1GiB", 1 << 30},
		{"1.5g", 1_500_000_000},
		{"1.5gb", 3 << 29},
		{"0.3gb", 322122547}, // 0.3 * 2^30 = 322122547.2, rounded down
		{"0.5k", 500},
		{"1t", 1e12},
		{"2tb", 2 << 40},
		{"1TiB", 1 << 40},
		{" 64mb ", 64 << 20},
		{"64 mb", 64 << 20},
		{"007", 7},
		{"9223372036854775807", math.MaxInt64},
		{"8388607tb", 8388607 << 40},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"", "empty size"},
		{"   ", "empty size"},
		{"-1", "must not be negative"},
		{"-1gb", "must not be negative"},
		{"+1", "must start with a digit"},
		{"gb", "must start with a digit"},
		{".5g", "must start with a digit"},
		{"1.g", "missing digits after the decimal point"},
		{"12zb", `unknown unit "zb"`},
		{"1 2", `unknown unit "2"`},
		{"1gbb", `unknown unit "gbb"`},
		{"1e9", `unknown unit "e9"`},
		{"0x10", `unknown unit "x10"`},
		{"1.5", "whole number"},
		{"1.5b", "whole number"},
		{"1_000", `unknown unit "_000"`},
		{"9223372036854775808", "larger than"},
		{"8388608tb", "larger than"},
		{"99999999999999999999999999gb", "larger than"},
		{strings.Repeat("1", maxSizeText+1), "longer than"},
		{"1\x00", `unknown unit "\x00"`},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{1024, "1kb"},
		{1536, "1536"},
		{512 << 20, "512mb"},
		{3 << 30, "3gb"},
		{5 << 40, "5tb"},
		{math.MaxInt64, "9223372036854775807"},
	}
	for _, tt := range tests {
		if got := formatSize(tt.in); got != tt.want {
			t.Errorf("formatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1", "100mb", "1gb", "512MiB", "1.5g", "-1", "12zb", "9223372036854775807", "8388608tb", "0.0000001tb", " 7 KB "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseSize(%q) returned %d with error %v", s, n, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		// Plain digits must agree with strconv.
		if d := strings.TrimSpace(s); d != "" && strings.Trim(d, "0123456789") == "" {
			want, perr := strconv.ParseInt(d, 10, 64)
			if perr != nil || want != n {
				t.Fatalf("ParseSize(%q) = %d, strconv says %d, %v", s, n, want, perr)
			}
		}
		// The printed form must read back to the same number.
		back, err := ParseSize(formatSize(n))
		if err != nil || back != n {
			t.Fatalf("formatSize(%d) = %q reads back as %d, %v", n, formatSize(n), back, err)
		}
	})
}
