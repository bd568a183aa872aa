package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
)

var benchCmd = &command{
	name: "bench", synopsis: "[--clients 50] [--requests 100000] [--duration D] [--ratio 1:1] [--keys 100000] [--value-size 100] [--pipeline 1]",
	summary: "generate SET/GET load against a node and report ops/s and latency",
	minArgs: 0, maxArgs: 0,
	details: `Each client is one connection sending SETs and GETs of random keys
bench:000000000000 ... in the selected map (use --map to keep them apart from
real data), in the proportion --ratio SETS:GETS, --pipeline commands per
round trip. The run ends after --requests commands, or after --duration; with
--duration alone it runs for that long. Ctrl-C ends it early and still
reports.

Reported: commands done, errors, ops/s, and p50/p90/p99/p99.9/max latency of
a command (for a pipeline, the round trip of its batch), measured with a
log-bucket histogram accurate to 1%. --json prints the same as one JSON
object. Exit status 1 if any command failed (the first error is shown).

A progress line (ops so far, ops/s over the last second, errors) is drawn
every second on stderr when it is a terminal, or always with --progress.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		o := benchOptions{}
		fs.IntVar(&o.clients, "clients", 50, "concurrent connections")
		fs.Int64Var(&o.requests, "requests", 100000, "total commands to send (0: no limit, needs --duration)")
		fs.DurationVar(&o.duration, "duration", 0, "stop after this long (e.g. 30s)")
		ratio := fs.String("ratio", "1:1", "SETS:GETS proportion, e.g. 1:10 for read-heavy, 1:0 for writes only")
		fs.Int64Var(&o.keys, "keys", 100000, "size of the key space the random keys are drawn from")
		fs.IntVar(&o.valueSize, "value-size", 100, "bytes per value")
		fs.IntVar(&o.pipeline, "pipeline", 1, "commands per round trip")
		fs.BoolVar(&o.progress, "progress", false, "draw the progress line even when stderr is not a terminal")
		return func(ctx context.Context, s *session, _ []string) error {
			requestsSet := false
			fs.Visit(func(f *flag.Flag) { requestsSet = requestsSet || f.Name == "requests" })
			if o.duration > 0 && !requestsSet {
				o.requests = 0
			}
			var err error
			if o.sets, o.gets, err = parseRatio(*ratio); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return runBench(ctx, s, o)
		}
	},
}

type benchOptions struct {
	clients    int
	requests   int64
	duration   time.Duration
	sets, gets int
	keys       int64
	valueSize  int
	pipeline   int
	progress   bool
}

func (o benchOptions) validate() error {
	switch {
	case o.clients < 1 || o.clients > 10000:
		return usagef("--clients %d: want 1 to 10000", o.clients)
	case o.requests < 0:
		return usagef("--requests must not be negative")
	case o.requests == 0 && o.duration <= 0:
		return usagef("--requests 0 means no limit: give --duration too")
	case o.duration < 0:
		return usagef("--duration must not be negative")
	case o.keys < 1:
		return usagef("--keys must be at least 1")
	case o.valueSize < 0 || o.valueSize > 512<<20:
		return usagef("--value-size %d: want 0 to 512 MiB", o.valueSize)
	case o.pipeline < 1 || o.pipeline > 100000:
		return usagef("--pipeline %d: want 1 to 100000", o.pipeline)
	}
	return nil
}

// parseRatio reads SETS:GETS, e.g. "1:1" or "1:10".
func parseRatio(s string) (sets, gets int, err error) {
	a, b, ok := strings.Cut(s, ":")
	sets, err1 := strconv.Atoi(a)
	gets, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || sets < 0 || gets < 0 || sets+gets == 0 || sets > 1000 || gets > 1000 {
		return 0, 0, usagef("--ratio %q: want SETS:GETS with whole numbers up to 1000, e.g. 1:1 or 1:10", s)
	}
	return sets, gets, nil
}

// benchResult is the report of a bench run.
type benchResult struct {
	Addr       string         `json:"addr"`
	Map        string         `json:"map"`
	Clients    int            `json:"clients"`
	Pipeline   int            `json:"pipeline"`
	Ratio      string         `json:"ratio"`
	Keys       int64          `json:"keys"`
	ValueSize  int            `json:"value_size"`
	Ops        int64          `json:"ops"`
	Sets       int64          `json:"sets"`
	Gets       int64          `json:"gets"`
	Misses     int64          `json:"get_misses"`
	Errors     int64          `json:"errors"`
	FirstError string         `json:"first_error,omitempty"`
	Seconds    float64        `json:"seconds"`
	OpsPerSec  float64        `json:"ops_per_sec"`
	LatencyMS  benchLatencies `json:"latency_ms"`
}

type benchLatencies struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
}

// benchCounters are shared by the clients and read by the progress line.
type benchCounters struct {
	ops, sets, gets, misses, errors atomic.Int64
	firstErr                        atomic.Pointer[string]
}

func (c *benchCounters) fail(err error) {
	c.errors.Add(1)
	msg := err.Error()
	c.firstErr.CompareAndSwap(nil, &msg)
}

func runBench(ctx context.Context, s *session, o benchOptions) error {
	c, err := s.connect(ctx, o.clients)
	if err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var cnt benchCounters
	var issued atomic.Int64 // commands handed out to clients so far
	value := strings.Repeat("x", o.valueSize)

	var p *progress
	if draw, tty := wantProgress(s.io.Stderr, o.progress); draw {
		var lastOps int64
		var lastAt time.Duration
		p = startProgress(s.io.Stderr, tty, progressEvery, func(el time.Duration) string {
			n := cnt.ops.Load()
			cur := rate(n-lastOps, el-lastAt)
			lastOps, lastAt = n, el
			return fmt.Sprintf("bench %s  %s ops  %s ops/s  %s errors", el.Round(time.Second), commas(n), commas(int64(cur)), commas(cnt.errors.Load()))
		})
	}

	hists := make([]*histogram, o.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.clients {
		hists[i] = newHistogram()
		wg.Add(1)
		go func() {
			defer wg.Done()
			benchClient(ctx, c, o, uint64(i), value, &issued, &cnt, hists[i])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	p.Stop()

	h := newHistogram()
	for _, x := range hists {
		h.merge(x)
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	res := benchResult{
		Addr: s.addr, Map: s.mapName, Clients: o.clients, Pipeline: o.pipeline,
		Ratio: fmt.Sprintf("%d:%d", o.sets, o.gets), Keys: o.keys, ValueSize: o.valueSize,
		Ops: cnt.ops.Load(), Sets: cnt.sets.Load(), Gets: cnt.gets.Load(), Misses: cnt.misses.Load(), Errors: cnt.errors.Load(),
		Seconds: elapsed.Seconds(), OpsPerSec: rate(cnt.ops.Load(), elapsed),
		LatencyMS: benchLatencies{
			Mean: h.mean() / 1e6, P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)),
			P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(h.max),
		},
	}
	if h.total == 0 {
		res.LatencyMS.Max = 0
	}
	if e := cnt.firstErr.Load(); e != nil {
		res.FirstError = *e
	}
	if s.json {
		err = s.printJSON(res)
	} else {
		err = writeBench(s.io.Stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Errors > 0 {
		return fmt.Errorf("%s of %s commands failed; the first: %s", commas(res.Errors), commas(res.Ops), res.FirstError)
	}
	return nil
}

// benchClient is one connection's loop: claim up to a pipeline's worth of
// commands, send them, record the round trip. Commands are numbered across
// all clients, and the number decides set or get (sets first in each
// SETS+GETS period), so the ratio is exact over the whole run however
// the commands fall to the clients.
func benchClient(ctx context.Context, c *redis.Client, o benchOptions, id uint64, value string,
	issued *atomic.Int64, cnt *benchCounters, h *histogram) {
	cn := c.Conn()
	defer cn.Close()
	rng := rand.New(rand.NewPCG(id, uint64(time.Now().UnixNano())))
	period := int64(o.sets + o.gets)
	keyBuf := make([]byte, 0, 32)
	cmds := make([]redis.Cmder, 0, o.pipeline)
	for ctx.Err() == nil {
		n := int64(o.pipeline)
		first := issued.Add(n) - n
		if o.requests > 0 {
			if first >= o.requests {
				return
			}
			n = min(n, o.requests-first)
		}
		cmds = cmds[:0]
		build := func(p redis.Cmdable) {
			for seq := first; seq < first+n; seq++ {
				keyBuf = fmt.Appendf(keyBuf[:0], "bench:%012d", rng.Int64N(o.keys))
				if seq%period < int64(o.sets) {
					cmds = append(cmds, p.Set(ctx, string(keyBuf), value, 0))
				} else {
					cmds = append(cmds, p.Get(ctx, string(keyBuf)))
				}
			}
		}
		t0 := time.Now()
		if n == 1 {
			// No pipeline for one command: the plain call is what an
			// application does, and what should be measured.
			build(cn)
		} else {
			_, _ = cn.Pipelined(ctx, func(p redis.Pipeliner) error { build(p); return nil })
		}
		rtt := time.Since(t0)
		if ctx.Err() != nil {
			// Commands cut short by the end of the run are not errors
			// of the node; they are dropped from the counts.
			return
		}
		h.record(rtt.Nanoseconds(), uint64(n))
		for _, cmd := range cmds {
			cnt.ops.Add(1)
			_, isGet := cmd.(*redis.StringCmd)
			if isGet {
				cnt.gets.Add(1)
			} else {
				cnt.sets.Add(1)
			}
			switch err := cmd.Err(); {
			case err == nil:
			case isGet && errors.Is(err, redis.Nil):
				cnt.misses.Add(1)
			default:
				cnt.fail(err)
			}
		}
	}
}

func writeBench(w io.Writer, r benchResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "target\t%s map %s, %d clients, pipeline %d, set:get %s, %d keys, %d-byte values\n",
		r.Addr, printable(r.Map), r.Clients, r.Pipeline, r.Ratio, r.Keys, r.ValueSize)
	fmt.Fprintf(tw, "ops\t%d (%d sets, %d gets, %d get misses)\n", r.Ops, r.Sets, r.Gets, r.Misses)
	fmt.Fprintf(tw, "errors\t%d\n", r.Errors)
	fmt.Fprintf(tw, "duration\t%.3f s\n", r.Seconds)
	fmt.Fprintf(tw, "ops/s\t%.0f\n", r.OpsPerSec)
	for _, l := range []struct {
		name string
		v    float64
	}{{"mean", r.LatencyMS.Mean}, {"p50", r.LatencyMS.P50}, {"p90", r.LatencyMS.P90}, {"p99", r.LatencyMS.P99}, {"p99.9", r.LatencyMS.P999}, {"max", r.LatencyMS.Max}} {
		fmt.Fprintf(tw, "%s\t%.3f ms\n", l.name, l.v)
	}
	return tw.Flush()
}
