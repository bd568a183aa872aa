package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// maxSizeText bounds the input ParseSize will look at, so that a hostile or
// garbled value cannot make it do big-number arithmetic on megabytes of
// digits. No sensible size needs more than a few dozen characters.
const maxSizeText = 64

// sizeUnit returns the multiplier for a lower-cased unit suffix. The
// single-letter and two-letter forms follow Redis's memtoull so a Redis
// config line means the same here: "k" is decimal (1000) and "kb" is binary
// (1024). The IEC forms (KiB, MiB, ...) are accepted for people who write
// them, and "t"/"tb" extend the Redis scheme for large machines.
func sizeUnit(u string) (int64, bool) {
	switch u {
	case "", "b":
		return 1, true
	case "k":
		return 1e3, true
	case "kb", "kib":
		return 1 << 10, true
	case "m":
		return 1e6, true
	case "mb", "mib":
		return 1 << 20, true
	case "g":
		return 1e9, true
	case "gb", "gib":
		return 1 << 30, true
	case "t":
		return 1e12, true
	case "tb", "tib":
		return 1 << 40, true
	}
	return 0, false
}

// ParseSize parses a byte count such as "0", "1048576", "100mb", "1gb",
// "512MiB" or "1.5g". Units are case-insensitive and follow Redis: "1k" is
// 1000 and "1kb" is 1024 (likewise m/mb, g/gb, t/tb); "KiB", "MiB", "GiB" and
// "TiB" are binary. A fractional number is allowed with a unit and is
// rounded down to whole bytes. Negative sizes, sizes that do not fit in an
// int64 and anything else are errors; the error text does not repeat the
// input, because callers name the setting and value themselves.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty size")
	}
	if len(s) > maxSizeText {
		return 0, fmt.Errorf("size is longer than %d characters", maxSizeText)
	}
	if s[0] == '-' {
		return 0, errors.New("size must not be negative")
	}
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[:i]
	if intPart == "" {
		return 0, errors.New("size must start with a digit")
	}
	fracPart := ""
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		fracPart = s[i+1 : j]
		if fracPart == "" {
			return 0, errors.New("missing digits after the decimal point")
		}
		i = j
	}
	unit := strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnit(unit)
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", strings.TrimSpace(s[i:]))
	}
	if fracPart != "" && mult == 1 {
		return 0, errors.New("a size in bytes must be a whole number")
	}
	// Exact arithmetic: digits * mult / 10^len(frac), rounded down. Floats
	// would turn "0.3gb" into 322122547.19999998 and similar surprises.
	n, ok := new(big.Int).SetString(intPart+fracPart, 10)
	if !ok {
		return 0, errors.New("BUG: digits did not parse as an integer")
	}
	n.Mul(n, big.NewInt(mult))
	if fracPart != "" {
		n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(fracPart))), nil))
	}
	if !n.IsInt64() {
		return 0, fmt.Errorf("size is larger than %d bytes", int64(math.MaxInt64))
	}
	return n.Int64(), nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// formatSize renders n in the shortest form ParseSize reads back to exactly
// n, preferring the binary units people use for memory limits ("512mb").
func formatSize(n int64) string {
	if n <= 0 {
		return strconv.FormatInt(n, 10)
	}
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"tb", 1 << 40}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
