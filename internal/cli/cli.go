package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of the common flags.
const (
	// DefaultAddr is where 'engram serve' listens for RESP by default.
	DefaultAddr = "127.0.0.1:7379"
	// DefaultMap is the map a connection starts on, like Redis's db 0.
	DefaultMap = "0"
	// DefaultTimeout bounds dialling and each reply; it is generous
	// because a pipelined batch of large values can take a while.
	DefaultTimeout = 10 * time.Second
)

// IO is what a subcommand reads and writes: its streams and environment.
// Passing them in, rather than using os.*, lets tests run every subcommand
// in-process against a node they started.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment (ENGRAM_ADDR, ENGRAM_PASSWORD); nil
	// means an empty environment.
	Getenv func(string) string
}

func (o IO) getenv(k string) string {
	if o.Getenv == nil {
		return ""
	}
	return o.Getenv(k)
}

// command is one client subcommand.
type command struct {
	name     string
	synopsis string // arguments after the name, for the usage line
	summary  string // one line for 'engram help'
	details  string // extra paragraphs for 'engram CMD --help'
	minArgs  int
	maxArgs  int // -1: unlimited
	// setup defines the command's own flags and returns the function that
	// runs it once flags and arguments are parsed.
	setup func(fs *flag.FlagSet) func(ctx context.Context, s *session, args []string) error
}

// commands lists the subcommands in the order 'engram help' shows them.
var commands = []*command{
	getCmd, setCmd, delCmd, keysCmd, ttlCmd, incrCmd, mapsCmd, infoCmd, pingCmd, clusterCmd, storeCmd,
	exportCmd, importCmd, benchCmd,
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// IsCommand reports whether name is a client subcommand this package runs.
func IsCommand(name string) bool { return lookup(name) != nil }

// Summary returns one usage line per client subcommand, for the binary's
// top-level help.
func Summary() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		// Only the arguments: the flags would make the list too wide to
		// read, and 'engram CMD --help' lists them.
		var words []string
		for w := range strings.FieldsSeq(c.synopsis) {
			if strings.HasPrefix(w, "[-") {
				break
			}
			words = append(words, w)
		}
		fmt.Fprintf(tw, "  engram %s\t%s\n", strings.Join(append([]string{c.name}, words...), " "), c.summary)
	}
	tw.Flush()
	return b.String()
}

// Help writes the full usage of the named subcommand to w; it reports
// false if there is no such subcommand.
func Help(name string, w io.Writer) bool {
	c := lookup(name)
	if c == nil {
		return false
	}
	fs, _ := newFlagSet(c, IO{})
	c.setup(fs)
	writeUsage(c, fs, w)
	return true
}

// Exit codes, shared by every subcommand so scripts can tell them apart.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed, or the key was missing
	exitUsage   = 2 // bad flags or arguments: nothing was sent
)

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// Run runs the client subcommand name with its arguments and returns the
// process exit code: 0 on success, 1 on failure (including a missing key
// for get and ttl), 2 on a usage error. Cancelling ctx (Ctrl-C) stops long
// commands cleanly: export and import report what they did, bench reports
// the load it generated.
func Run(ctx context.Context, name string, args []string, o IO) int {
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(o.Stderr, "engram: unknown command %q\n", name)
		return exitUsage
	}
	fs, s := newFlagSet(c, o)
	run := c.setup(fs)
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		writeUsage(c, fs, o.Stdout)
		return exitOK
	}
	if err == nil {
		err = checkArgCount(c, pos)
	}
	if err == nil {
		err = s.validate()
	}
	if err != nil {
		fmt.Fprintf(o.Stderr, "engram %s: %v\nrun 'engram %s --help' for usage\n", c.name, err, c.name)
		return exitUsage
	}
	defer s.close()
	err = run(ctx, s, pos)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(o.Stderr, "engram %s: %v\nrun 'engram %s --help' for usage\n", c.name, err, c.name)
		return exitUsage
	}
	fmt.Fprintf(o.Stderr, "engram %s: %v\n", c.name, s.explain(err))
	return exitFailure
}

func checkArgCount(c *command, pos []string) error {
	switch {
	case len(pos) < c.minArgs:
		return usagef("missing arguments: usage: engram %s %s", c.name, c.synopsis)
	case c.maxArgs >= 0 && len(pos) > c.maxArgs:
		return usagef("too many arguments (%d): usage: engram %s %s", len(pos), c.name, c.synopsis)
	}
	return nil
}

// newFlagSet builds the flag set of c with the common flags, whose
// defaults come from the environment.
func newFlagSet(c *command, o IO) (*flag.FlagSet, *session) {
	fs := flag.NewFlagSet("engram "+c.name, flag.ContinueOnError)
	// Errors are printed by Run, once, with a pointer to --help; the
	// flag package's own printing would repeat the whole usage.
	fs.SetOutput(io.Discard)
	s := &session{io: o}
	addr := o.getenv("ENGRAM_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	fs.StringVar(&s.addr, "addr", addr, "node address `host:port` (env ENGRAM_ADDR)")
	fs.StringVar(&s.password, "password", o.getenv("ENGRAM_PASSWORD"), "password, if the node requires one (env ENGRAM_PASSWORD)")
	fs.StringVar(&s.mapName, "map", DefaultMap, "the map (namespace) to use")
	fs.BoolVar(&s.json, "json", false, "print JSON instead of plain text")
	fs.DurationVar(&s.timeout, "timeout", DefaultTimeout, "timeout for connecting and for each reply")
	return fs, s
}

func writeUsage(c *command, fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "Usage: engram %s %s\n\n%s%s.\n", c.name, c.synopsis, strings.ToUpper(c.summary[:1]), c.summary[1:])
	if c.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.details))
	}
	var own, common []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if commonFlags[f.Name] {
			common = append(common, f)
		} else {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		writeFlags(w, own)
	}
	fmt.Fprintf(w, "\nCommon flags:\n")
	writeFlags(w, common)
}

// commonFlags are the flags newFlagSet gives every subcommand.
var commonFlags = map[string]bool{"addr": true, "password": true, "map": true, "json": true, "timeout": true}

// writeFlags lists flags GNU-style (--name), the way the help texts and
// docs spell them; the flag package accepts both one and two dashes.
func writeFlags(w io.Writer, flags []*flag.Flag) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range flags {
		arg, usage := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if arg != "" {
			name += " " + arg
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", name, usage, def)
	}
	tw.Flush()
}

// parseArgs parses flags anywhere among the arguments ('engram set k v
// --ttl 10s'), which the flag package alone does not: it stops at the
// first argument that is not a flag. "--" ends the flags. An argument that
// looks like a negative number is an argument, not a flag, so that
// 'engram incr counter -5' works.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if isNegativeNumber(args[0]) {
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, nil
}

func isNegativeNumber(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// session is one run of a subcommand: its common options and its client.
type session struct {
	io       IO
	addr     string
	password string
	mapName  string
	json     bool
	timeout  time.Duration
	clients  []*redis.Client
}

func (s *session) validate() error {
	if _, port, err := net.SplitHostPort(s.addr); err != nil || port == "" {
		return usagef("--addr %q: want host:port, like %s", s.addr, DefaultAddr)
	}
	if s.mapName == "" || strings.ContainsAny(s.mapName, "\r\n") {
		return usagef("--map %q: a map name is a non-empty string without line breaks", s.mapName)
	}
	if s.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	return nil
}

// newClient returns a client whose every connection selects the map. Map
// names are arbitrary strings, which go-redis's numeric DB option cannot
// express, so SELECT runs in the OnConnect hook instead.
func (s *session) newClient(poolSize int) *redis.Client {
	username := ""
	if s.password != "" {
		// HELLO's AUTH needs a user name; Engram's single user is
		// "default", as in Redis. Without it go-redis sends an empty
		// name, fails, and falls back to a second round trip.
		username = "default"
	}
	mapName := s.mapName
	c := redis.NewClient(&redis.Options{
		Addr:         s.addr,
		Username:     username,
		Password:     s.password,
		DialTimeout:  s.timeout,
		ReadTimeout:  s.timeout,
		WriteTimeout: s.timeout,
		PoolSize:     poolSize,
		// No silent retries: a retried INCR or a retried pipeline of
		// writes could apply twice. The CLI reports the error instead.
		MaxRetries: -1,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			return cn.Process(ctx, redis.NewStatusCmd(ctx, "select", mapName))
		},
	})
	s.clients = append(s.clients, c)
	return c
}

// connect returns a client after a PING, so that a node that is not
// running, a wrong password or a bad map name is reported before the
// command starts rather than in the middle of it.
func (s *session) connect(ctx context.Context, poolSize int) (*redis.Client, error) {
	c := s.newClient(poolSize)
	if err := c.Ping(ctx).Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *session) close() {
	for _, c := range s.clients {
		c.Close()
	}
}

// explain rewrites the errors users hit most into what to do about them.
func (s *session) explain(err error) error {
	var op *net.OpError
	msg := err.Error()
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		reason := op.Err.Error()
		if errors.Is(err, syscall.ECONNREFUSED) {
			reason = "connection refused"
		}
		return fmt.Errorf("cannot connect to %s: %s; is a node running? start one with 'engram serve'", s.addr, reason)
	case strings.HasPrefix(msg, "NOAUTH"):
		return fmt.Errorf("the node at %s requires a password: pass --password or set ENGRAM_PASSWORD", s.addr)
	case strings.HasPrefix(msg, "WRONGPASS"):
		return fmt.Errorf("the node at %s refused the password (from --password or ENGRAM_PASSWORD)", s.addr)
	case strings.HasPrefix(msg, "ERR AUTH") && s.password != "":
		return fmt.Errorf("the node at %s has no password set; drop --password and ENGRAM_PASSWORD", s.addr)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	}
	return err
}

// isTerminal reports whether w is a character device (a terminal), which
// decides whether progress lines are drawn by default. It needs no
// dependency: a pipe or a file is not a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
