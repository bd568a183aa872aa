package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var exportCmd = &command{
	name: "export", synopsis: "[--out FILE|-] [--match PATTERN]",
	summary: "write every key of a map, with its value and TTL, as JSON Lines",
	minArgs: 0, maxArgs: 0,
	details: `One line per key:
  {"key":"user:1","value":"{\"name\":\"ada\"}","ttl_ms":0}
  {"key_b64":"/wA=","value_b64":"AAEC","ttl_ms":59000}
A key or value that is valid UTF-8 is a JSON string; any other is base64 in
"key_b64"/"value_b64". ttl_ms is the time to live left at export (0: none).
'engram import' reads the format back.

Keys are walked with SCAN (COUNT 1000) and each batch is read with one
pipelined MGET and PTTL, so the node is never blocked for long; keys written
during the export may or may not be included. With --out FILE the file
appears (mode 0600: dumps hold data) only once the export is complete.

A progress line (keys done out of MAPSIZE, keys/s, ETA) is drawn on stderr
when stderr is a terminal, or always with --progress; never on stdout.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		out := fs.String("out", "-", "write to `FILE`; - for stdout")
		match := fs.String("match", "*", "export only keys matching this glob `PATTERN`")
		forced := fs.Bool("progress", false, "draw the progress line even when stderr is not a terminal")
		return func(ctx context.Context, s *session, _ []string) error {
			return runExport(ctx, s, *out, *match, *forced)
		}
	},
}

func runExport(ctx context.Context, s *session, out, match string, forced bool) (err error) {
	c, err := s.connect(ctx, 1)
	if err != nil {
		return err
	}
	total, err := c.Do(ctx, "mapsize").Int64()
	if err != nil {
		return err
	}
	w, commit, err := createOutput(out, s.io.Stdout)
	if err != nil {
		return err
	}
	// commit(false) removes a partial file; after a successful commit it
	// does nothing, so it is safe to defer.
	defer func() {
		if cerr := commit(err == nil); err == nil {
			err = cerr
		}
	}()
	var done atomic.Int64
	var p *progress
	if draw, tty := wantProgress(s.io.Stderr, forced); draw {
		p = startProgress(s.io.Stderr, tty, progressEvery, func(el time.Duration) string {
			n := done.Load()
			return fmt.Sprintf("exported %s/%s keys%s  %s keys/s  %s",
				commas(n), commas(total), percent(n, total), commas(int64(rate(n, el))), etaString(n, total, el))
		})
	}
	start := time.Now()
	err = exportKeys(ctx, c, w, match, &done)
	p.Stop()
	if err != nil {
		return fmt.Errorf("%w (after %s)", err, nkeys(done.Load()))
	}
	el := time.Since(start)
	dest := out
	if out == "-" {
		dest = "stdout"
	}
	fmt.Fprintf(s.io.Stderr, "exported %s from map %s to %s in %s (%s keys/s)\n",
		nkeys(done.Load()), printable(s.mapName), dest, el.Round(time.Millisecond), commas(int64(rate(done.Load(), el))))
	return nil
}

// exportKeys writes the records of every key matching match to w.
func exportKeys(ctx context.Context, c *redis.Client, w *bufio.Writer, match string, done *atomic.Int64) error {
	enc := newRecordEncoder(w)
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, match, scanCount).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			var mget *redis.SliceCmd
			pttls := make([]*redis.Cmd, len(keys))
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				mget = p.MGet(ctx, keys...)
				for i, k := range keys {
					pttls[i] = p.Do(ctx, "pttl", k)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for i, v := range mget.Val() {
				val, ok := v.(string)
				ms, err := pttls[i].Int64()
				if err != nil {
					return err
				}
				// A nil value or a PTTL of -2: the key expired or was
				// deleted since SCAN listed it, so it is not exported.
				if !ok || ms == -2 {
					continue
				}
				ttl := int64(0)
				if ms >= 0 {
					// 0 ms left still means "expires": exporting it
					// as 0 would make the key immortal on import.
					ttl = max(ms, 1)
				}
				if err := enc.Encode(newRecord(keys[i], val, ttl)); err != nil {
					return fmt.Errorf("cannot write: %w", err)
				}
				done.Add(1)
			}
		}
		if next == 0 {
			return w.Flush()
		}
		cursor = next
	}
}

// createOutput opens the export destination. For a file it writes to a
// temporary file in the same directory and renames it into place on
// commit(true), so that an interrupted export never leaves a truncated
// file that looks complete; commit(false) removes the temporary file.
func createOutput(out string, stdout io.Writer) (*bufio.Writer, func(ok bool) error, error) {
	const bufSize = 1 << 20
	if out == "-" {
		w := bufio.NewWriterSize(stdout, bufSize)
		return w, func(bool) error { return nil }, nil
	}
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, nil, fmt.Errorf("cannot create %s: %w", out, err)
	}
	w := bufio.NewWriterSize(f, bufSize)
	finished := false
	commit := func(ok bool) error {
		if finished {
			return nil
		}
		finished = true
		if !ok {
			f.Close()
			os.Remove(f.Name())
			return nil
		}
		err := errors.Join(w.Flush(), f.Sync(), f.Close())
		if err == nil {
			err = os.Rename(f.Name(), out)
		}
		if err != nil {
			os.Remove(f.Name())
			return fmt.Errorf("cannot write %s: %w", out, err)
		}
		return nil
	}
	return w, commit, nil
}
