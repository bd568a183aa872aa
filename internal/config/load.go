package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxFileSize bounds the config file Load reads: a real one is a few
// hundred bytes, and a path pointing at a huge file by mistake should fail
// fast rather than fill memory.
const maxFileSize = 1 << 20

// rawValue is one setting as some source gave it, before parsing.
type rawValue struct {
	name  string
	value string
	from  string // "ENGRAM_X", "file.conf:3" or "command line"
}

// Load builds the configuration from, lowest precedence first: Default,
// the config file (named by --config or ENGRAM_CONFIG), the environment
// (ENGRAM_* variables read through getenv; an empty value counts as unset)
// and the command-line flags in args, which exclude the program and
// subcommand names. getenv may be nil for no environment.
//
// The result is validated. Errors name the setting, the bad value and where
// it came from, e.g.
//
//	invalid --max-memory "12zb" (from ENGRAM_MAX_MEMORY): unknown unit "zb"
//
// and all problems are reported at once. If args ask for help (-h,
// --help), the error wraps flag.ErrHelp and the caller should print Usage.
func Load(args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	all := settings()
	byName := settingsByName()

	flags, err := parseFlags(args, all)
	if err != nil {
		return Config{}, err
	}

	var env []rawValue
	for _, s := range all {
		if v := getenv(envName(s.name)); v != "" {
			env = append(env, rawValue{s.name, v, envName(s.name)})
		}
	}

	// The file is named by the highest-precedence source that names one.
	var file []rawValue
	path, pathFrom := "", ""
	for _, src := range [][]rawValue{env, flags} {
		for _, r := range src {
			if r.name == "config" {
				path, pathFrom = r.value, r.from
			}
		}
	}
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("cannot read config file %q (from %s): %w", path, pathFrom, err)
		}
		if file, err = parseFile(path, data); err != nil {
			return Config{}, err
		}
	}

	c := Default()
	source := map[string]string{}
	var errs []error
	for _, src := range [][]rawValue{file, env, flags} {
		for _, r := range src {
			s := byName[r.name]
			if err := s.set(&c, r.value); err != nil {
				errs = append(errs, invalid(s, r.value, r.from, err.Error()))
				continue
			}
			source[r.name] = r.from
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if err := joinProblems(c, c.problems(), func(name string) string { return source[name] }); err != nil {
		return Config{}, err
	}
	return c, nil
}

// readFile reads at most maxFileSize bytes and fails beyond that.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %s", formatSize(maxFileSize))
	}
	return data, nil
}

// recorder is the flag.Value behind every flag: it only records the raw
// text, so that all sources are parsed, and their errors worded, the same
// way after the command line has been read.
type recorder struct {
	name   string
	isBool bool
	out    *[]rawValue
}

func (r *recorder) String() string { return "" }

// Set records v. A repeated --join adds to the list, so both
// "--join a,b" and "--join a --join b" work; other flags keep the last.
func (r *recorder) Set(v string) error {
	for i, prev := range *r.out {
		if prev.name != r.name {
			continue
		}
		if r.name == "join" {
			(*r.out)[i].value = prev.value + "," + v
		} else {
			(*r.out)[i].value = v
		}
		return nil
	}
	*r.out = append(*r.out, rawValue{r.name, v, "command line"})
	return nil
}

// IsBoolFlag lets "--protected-mode" stand alone for true.
func (r *recorder) IsBoolFlag() bool { return r.isBool }

// parseFlags reads args with the standard flag package (which accepts -x
// and --x, "--x v" and "--x=v"), capturing its output instead of letting it
// print to stderr.
func parseFlags(args []string, all []setting) ([]rawValue, error) {
	var out []rawValue
	fs := flag.NewFlagSet("engram serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, s := range all {
		fs.Var(&recorder{name: s.name, isBool: s.isBool, out: &out}, s.name, s.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot parse command line: %w (see engram serve --help)", err)
	}
	if rest := fs.Args(); len(rest) > 0 {
		msg := fmt.Sprintf("unexpected argument %q", rest[0])
		if i := len(args) - len(rest) - 1; i >= 0 && isBoolFlagArg(args[i], all) {
			msg += fmt.Sprintf(" (a boolean flag takes its value after =, e.g. %s=%s)", args[i], rest[0])
		}
		return nil, errors.New(msg)
	}
	return out, nil
}

func isBoolFlagArg(arg string, all []setting) bool {
	name := strings.TrimLeft(arg, "-")
	for _, s := range all {
		if s.isBool && s.name == name {
			return true
		}
	}
	return false
}

// parseFile reads the config file format: one setting per line, either
// "name = value" or "name value", with flag names; blank lines and lines
// starting with # are ignored. A value may be double-quoted with Go escapes
// to keep leading or trailing spaces; there are no trailing comments,
// because "#" is a legitimate password character. An unknown name, a
// missing value, a repeated name or a malformed line is an error with
// file:line.
func parseFile(path string, data []byte) ([]rawValue, error) {
	byName := settingsByName()
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	var out []rawValue
	seen := map[string]int{}
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		lineNo := i + 1
		where := path + ":" + strconv.Itoa(lineNo)
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if !utf8.ValidString(line) {
			fail("line is not valid UTF-8")
			continue
		}
		end := strings.IndexAny(line, " \t=")
		if end < 0 {
			end = len(line)
		}
		name := strings.ToLower(line[:end])
		rest := strings.TrimSpace(line[end:])
		hasEq := strings.HasPrefix(rest, "=")
		if hasEq {
			rest = strings.TrimSpace(rest[1:])
		}
		_, ok := byName[name]
		switch {
		case name == "":
			fail("missing setting name before %q", rest)
			continue
		case !ok:
			fail("unknown setting %q", name)
			continue
		case name == "config":
			fail("config cannot be set inside a config file")
			continue
		case rest == "" && !hasEq:
			fail("missing value for %s (write `%s = value`)", name, name)
			continue
		}
		value := rest
		if strings.HasPrefix(rest, `"`) {
			v, err := strconv.Unquote(rest)
			if err != nil {
				fail("bad quoted value for %s: want one double-quoted string with Go escapes", name)
				continue
			}
			value = v
		}
		if first, dup := seen[name]; dup {
			fail("%s already set at line %d", name, first)
			continue
		}
		seen[name] = lineNo
		out = append(out, rawValue{name, value, where})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Usage returns the help text for `engram serve`: every flag with its
// environment variable and default.
func Usage() string {
	var b strings.Builder
	b.WriteString(`Usage: engram serve [flags]

Runs an Engram node. Every flag can also be set by an environment variable
or a line "name = value" in the config file; flags win over the
environment, which wins over the file, which wins over the defaults.

Flags:
`)
	def := Default()
	for _, s := range settings() {
		head := "  --" + s.name
		if s.arg != "" {
			head += " " + s.arg
		}
		b.WriteString(head)
		b.WriteString("\n      ")
		b.WriteString(s.usage)
		b.WriteString("\n      env ")
		b.WriteString(envName(s.name))
		if d := s.text(def); d != "" && !s.secret {
			b.WriteString(", default ")
			b.WriteString(d)
		}
		b.WriteString("\n")
	}
	b.WriteString(`
Sizes take Redis units: 1k = 1000, 1kb = 1024, 1m = 10^6, 1mb = 2^20,
1g = 10^9, 1gb = 2^30; KiB, MiB, GiB are also accepted.
`)
	return b.String()
}
