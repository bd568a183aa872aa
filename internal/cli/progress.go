package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// progress redraws one status line on stderr while a long command runs.
// On a terminal the line is rewritten in place with '\r'; elsewhere (when
// --progress forces it into a pipe or a log file) each update is its own
// line, because carriage returns turn a log into one unreadable line.
// Nothing here writes to stdout, which may be carrying data.
type progress struct {
	w     io.Writer
	tty   bool
	line  func(elapsed time.Duration) string
	start time.Time

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	width    int // length of the last line drawn, to blank it out
}

// progressEvery is how often the line is redrawn: often enough to look
// alive, rarely enough that drawing costs nothing next to the work.
const progressEvery = time.Second

// startProgress draws line every interval until Stop. A nil *progress is
// valid and draws nothing, so callers need no branches when progress is
// off.
func startProgress(w io.Writer, tty bool, every time.Duration, line func(elapsed time.Duration) string) *progress {
	p := &progress{w: w, tty: tty, line: line, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) draw() {
	s := p.line(time.Since(p.start))
	if !p.tty {
		fmt.Fprintln(p.w, s)
		return
	}
	pad := ""
	if n := p.width - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(s)
	fmt.Fprint(p.w, "\r"+s+pad)
}

// Stop ends the redraws. On a terminal it blanks the line so the
// command's summary starts on a clean line; elsewhere it writes a last
// line, so a log always ends with the final state however short the run.
// It is safe on a nil progress and safe to call twice.
func (p *progress) Stop() {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		switch {
		case !p.tty:
			p.draw()
		case p.width > 0:
			fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.width)+"\r")
		}
	})
}

// wantProgress decides whether to draw progress: on a terminal by
// default, anywhere when --progress asks for it.
func wantProgress(w io.Writer, forced bool) (draw, tty bool) {
	tty = isTerminal(w)
	return tty || forced, tty
}

// commas formats n with thousands separators, for counts read at a glance.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rate is done per second over elapsed, 0 before any time has passed.
func rate(done int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(done) / elapsed.Seconds()
}

// eta estimates the time left at the average rate so far. It reports
// false when there is no estimate: nothing done yet, or no known total.
func eta(done, total int64, elapsed time.Duration) (time.Duration, bool) {
	if done <= 0 || total <= 0 || elapsed <= 0 {
		return 0, false
	}
	if done >= total {
		return 0, true
	}
	left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
	return left.Round(time.Second), true
}

// etaString renders eta for a progress line.
func etaString(done, total int64, elapsed time.Duration) string {
	d, ok := eta(done, total, elapsed)
	if !ok {
		return "ETA --"
	}
	return "ETA " + d.String()
}

// percent is done/total as a percentage capped at 100 (a map can grow
// while it is exported), or "" when the total is unknown.
func percent(done, total int64) string {
	if total <= 0 {
		return ""
	}
	p := float64(done) * 100 / float64(total)
	return fmt.Sprintf(" (%.0f%%)", min(p, 100))
}

// nkeys renders a count of keys for a summary: "1 key", "12,345 keys".
func nkeys(n int64) string {
	if n == 1 {
		return "1 key"
	}
	return commas(n) + " keys"
}
