package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var importCmd = &command{
	name: "import", synopsis: "[--in FILE|-] [--batch N] [--skip-bad]",
	summary: "write the keys of an 'engram export' file into a map",
	minArgs: 0, maxArgs: 0,
	details: `Reads the JSON Lines that 'engram export' writes and sets every key, with
PX when ttl_ms > 0 (ttl_ms is relative: the time between export and import
is not subtracted). Existing keys are overwritten. Writes are pipelined,
--batch lines per round trip. Blank lines are ignored.

A malformed line stops the import with its line number and the number of
keys written (every valid line before it); exit status 1. --skip-bad skips
such lines instead, and the summary reports how many there were and the
first one. A write the node refuses (a limit, out of memory) always stops
the import.

A progress line is drawn on stderr when stderr is a terminal, or always
with --progress. --json prints the final counts as JSON on stdout.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		in := fs.String("in", "-", "read from `FILE`; - for stdin")
		batch := fs.Int("batch", 1000, "lines per pipelined round trip")
		skipBad := fs.Bool("skip-bad", false, "skip malformed lines instead of stopping at the first")
		forced := fs.Bool("progress", false, "draw the progress line even when stderr is not a terminal")
		return func(ctx context.Context, s *session, _ []string) error {
			if *batch < 1 || *batch > 1_000_000 {
				return usagef("--batch %d: want 1 to 1000000", *batch)
			}
			return runImport(ctx, s, importOptions{in: *in, batch: *batch, skipBad: *skipBad, progress: *forced})
		}
	},
}

type importOptions struct {
	in       string
	batch    int
	skipBad  bool
	progress bool
}

// importResult is what an import did, printed as the summary.
type importResult struct {
	Written      int64  `json:"written"`
	Lines        int64  `json:"lines"`
	BadLines     int64  `json:"bad_lines"`
	FirstBadLine int64  `json:"first_bad_line,omitempty"`
	FirstBad     string `json:"first_bad_error,omitempty"`
	Error        string `json:"error,omitempty"`
}

// pendingSet is one parsed line waiting for its batch to be sent.
type pendingSet struct {
	line       int64
	key, value string
	ttlMS      int64
}

// countingReader counts the bytes read, for the progress line.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func runImport(ctx context.Context, s *session, o importOptions) error {
	src, size, closeIn, err := openInput(o.in, s.io.Stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	c, err := s.connect(ctx, 1)
	if err != nil {
		return err
	}
	cr := &countingReader{r: src}
	var res importResult
	var written atomic.Int64 // read by the progress line while writing
	var p *progress
	if draw, tty := wantProgress(s.io.Stderr, o.progress); draw {
		p = startProgress(s.io.Stderr, tty, progressEvery, func(el time.Duration) string {
			n, read := written.Load(), cr.n.Load()
			if size <= 0 {
				return fmt.Sprintf("imported %s keys  %s keys/s", commas(n), commas(int64(rate(n, el))))
			}
			return fmt.Sprintf("imported %s keys  %s/%s%s  %s keys/s  %s",
				commas(n), humanBytes(read), humanBytes(size), percent(read, size), commas(int64(rate(n, el))), etaString(read, size, el))
		})
	}
	start := time.Now()
	err = importLines(ctx, c, bufio.NewReaderSize(cr, 1<<20), o, &res, &written)
	p.Stop()
	res.Written = written.Load()
	if err != nil {
		res.Error = err.Error()
	}
	if s.json {
		if jerr := s.printJSON(res); err == nil {
			err = jerr
		}
	}
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(s.io.Stderr, "imported %s into map %s in %s (%s keys/s)\n",
		nkeys(res.Written), printable(s.mapName), el.Round(time.Millisecond), commas(int64(rate(res.Written, el))))
	if res.BadLines > 0 {
		fmt.Fprintf(s.io.Stderr, "skipped %s malformed lines; the first was line %d: %s\n", commas(res.BadLines), res.FirstBadLine, res.FirstBad)
	}
	return nil
}

// importLines reads records from r and writes them in pipelined batches.
// On a malformed line without skipBad it first writes the batch before
// it, so the error can say exactly what was written: every line before.
func importLines(ctx context.Context, c *redis.Client, r *bufio.Reader, o importOptions, res *importResult, written *atomic.Int64) error {
	batch := make([]pendingSet, 0, o.batch)
	flush := func() error {
		err := writeBatch(ctx, c, batch, written)
		batch = batch[:0]
		return err
	}
	for {
		line, readErr := r.ReadBytes('\n')
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return errors.Join(fmt.Errorf("cannot read line %d: %w", res.Lines+1, readErr), flush())
		}
		if len(line) > 0 {
			res.Lines++
			if t := bytes.TrimSpace(line); len(t) > 0 {
				key, value, ttl, err := parseRecord(t)
				switch {
				case err != nil:
					res.BadLines++
					if res.FirstBadLine == 0 {
						res.FirstBadLine, res.FirstBad = res.Lines, err.Error()
					}
					if !o.skipBad {
						if ferr := flush(); ferr != nil {
							return ferr
						}
						return fmt.Errorf("line %d: %v; stopped there with %s written (every line before it), nothing after it; fix the line or pass --skip-bad",
							res.Lines, err, nkeys(written.Load()))
					}
				default:
					batch = append(batch, pendingSet{line: res.Lines, key: key, value: value, ttlMS: ttl})
				}
			}
		}
		if len(batch) >= o.batch || errors.Is(readErr, io.EOF) {
			if err := flush(); err != nil {
				return err
			}
		}
		if errors.Is(readErr, io.EOF) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			// The batch in hand is dropped, not sent: the count below
			// is then exactly what reached the node.
			return fmt.Errorf("%w after line %d (%s written)", err, res.Lines, nkeys(written.Load()))
		}
	}
}

// writeBatch sends one pipelined round of SETs and counts the ones the
// node accepted. Every command of a pipeline runs even when one fails, so
// the count is exact; the first refusal is returned with its line number.
func writeBatch(ctx context.Context, c *redis.Client, batch []pendingSet, written *atomic.Int64) error {
	if len(batch) == 0 {
		return nil
	}
	cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, b := range batch {
			if b.ttlMS > 0 {
				p.Do(ctx, "set", b.key, b.value, "px", b.ttlMS)
			} else {
				p.Do(ctx, "set", b.key, b.value)
			}
		}
		return nil
	})
	var first error
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			if first == nil {
				var refused redis.Error
				if errors.As(err, &refused) {
					first = fmt.Errorf("line %d: the node refused the write: %w", batch[i].line, err)
				} else {
					first = fmt.Errorf("line %d: %w", batch[i].line, err)
				}
			}
			continue
		}
		written.Add(1)
	}
	if first != nil {
		return fmt.Errorf("%w; stopped with %s written", first, nkeys(written.Load()))
	}
	return nil
}

// openInput opens the import source and reports its size when known (a
// regular file, including one redirected to stdin), for the ETA.
func openInput(in string, stdin io.Reader) (io.Reader, int64, func(), error) {
	if in == "-" {
		return stdin, fileSize(stdin), func() {}, nil
	}
	f, err := os.Open(in)
	if err != nil {
		// The path error would repeat the name: keep only its reason.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, 0, nil, fmt.Errorf("cannot open %s: %w", in, err)
	}
	return f, fileSize(f), func() { f.Close() }, nil
}

func fileSize(r io.Reader) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return 0
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	return st.Size()
}
