package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/engramdb/engram/internal/persist"
)

// storeCollector exports the backing store's view per map (the maps that
// use a store on this node; the label's values are bounded by the number
// of maps a node allows).
type storeCollector struct {
	stats func() []persist.MapStats

	pending, pendingBytes, oldest, received, written, deleted, failures, consecutive, loads, negHits *prometheus.Desc
}

// NewStoreCollector returns the collector of the backing-store metrics,
// read from stats at scrape time.
func NewStoreCollector(stats func() []persist.MapStats) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("engram_store_"+name, help, append([]string{"map"}, labels...), nil)
	}
	return &storeCollector{stats: stats,
		pending:      d("pending_changes", "Changes waiting to be written back to the backing store (partitions this node leads)."),
		pendingBytes: d("pending_bytes", "Bytes (keys and values) of the changes waiting on this node (all partitions it holds)."),
		oldest:       d("oldest_pending_seconds", "Age of the oldest change waiting to be written back."),
		received:     d("changes_total", "Changes recorded for write-back (client writes and deletes, as primary)."),
		written:      d("written_total", "Keys written to the backing store (write-back and persist-now)."),
		deleted:      d("deleted_total", "Keys deleted from the backing store."),
		failures:     d("write_failures_total", "Failed write-back attempts (retried with backoff; no change is dropped)."),
		consecutive:  d("consecutive_write_failures", "Current run of failed write-back attempts (0 once one succeeds)."),
		loads:        d("loads_total", "Read-through loads by result.", "result"),
		negHits:      d("negative_hits_total", "Read-through misses answered from the remembered \"not in the store\"."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.pendingBytes, c.oldest, c.received, c.written, c.deleted, c.failures, c.consecutive, c.loads, c.negHits} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{s.Map}, labels...)...)
		}
		n := func(d *prometheus.Desc, v int64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{s.Map}, labels...)...)
		}
		g(c.pending, float64(s.Pending))
		g(c.pendingBytes, float64(s.PendingBytes))
		g(c.oldest, float64(s.OldestMs)/1000)
		n(c.received, s.Received)
		n(c.written, s.Written)
		n(c.deleted, s.Deleted)
		n(c.failures, s.Failures)
		g(c.consecutive, float64(s.Consecutive))
		n(c.loads, s.LoadsFound, "found")
		n(c.loads, s.Loads-s.LoadsFound-s.LoadErrors, "missing")
		n(c.loads, s.LoadErrors, "error")
		n(c.negHits, s.NegativeHits)
	}
}
