// Package clock provides a coarse wall clock: the current Unix time in
// milliseconds, refreshed by one goroutine every millisecond and read with
// a single atomic load. Redis caches the time per event-loop turn for the
// same reason: reading the system clock costs tens of nanoseconds (more in
// some VMs), which is a large share of a cache hit; millisecond precision
// is all expiry needs.
package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Coarse is a millisecond clock. Create it with NewCoarse and Stop it when
// done; the zero value is not usable.
type Coarse struct {
	now  atomic.Int64
	stop chan struct{}
	once sync.Once
}

// NewCoarse starts a coarse clock.
func NewCoarse() *Coarse {
	c := &Coarse{stop: make(chan struct{})}
	c.now.Store(time.Now().UnixMilli())
	go c.run()
	return c
}

func (c *Coarse) run() {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.now.Store(now.UnixMilli())
		}
	}
}

// Now returns the Unix time in milliseconds, at most about a millisecond
// old (more if the process is starved of CPU).
func (c *Coarse) Now() int64 { return c.now.Load() }

// Stop ends the refreshing goroutine.
func (c *Coarse) Stop() { c.once.Do(func() { close(c.stop) }) }
