package metrics

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the store and server counters when Prometheus scrapes.
// It holds only immutable descriptors and the sources, so one collector
// serves concurrent scrapes.
type collector struct {
	src Sources

	keys, mapBytes                          *prometheus.Desc
	memUsed, memArena, memMax               *prometheus.Desc
	hits, misses, expired, evicted, uptime  *prometheus.Desc
	clients, conns, rejected, netIn, netOut *prometheus.Desc
	cmdCalls, cmdErrors, cmdSeconds         *prometheus.Desc
}

func newCollector(src Sources) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		src:        src,
		keys:       d("engram_keys", "Keys in a map, expired keys not yet swept included.", "map"),
		mapBytes:   d("engram_map_bytes", "Bytes of the live records of a map.", "map"),
		memUsed:    d("engram_memory_used_bytes", "Bytes of live records plus the index estimate; what max memory bounds."),
		memArena:   d("engram_memory_arena_bytes", "Bytes of slab memory allocated, fragmentation included."),
		memMax:     d("engram_memory_max_bytes", "The memory bound in bytes; 0 means none."),
		hits:       d("engram_hits_total", "Reads that found their key."),
		misses:     d("engram_misses_total", "Reads that did not find their key."),
		expired:    d("engram_expired_total", "Items removed because their TTL or their map's max TTL passed."),
		evicted:    d("engram_evicted_total", "Items removed for the memory bound or by evict-since."),
		uptime:     d("engram_uptime_seconds", "Seconds since the store started."),
		clients:    d("engram_connected_clients", "Open RESP client connections."),
		conns:      d("engram_connections_total", "RESP connections accepted."),
		rejected:   d("engram_rejected_connections_total", "RESP connections refused because the client limit was reached."),
		netIn:      d("engram_net_input_bytes_total", "Bytes read from RESP clients."),
		netOut:     d("engram_net_output_bytes_total", "Bytes written to RESP clients."),
		cmdCalls:   d("engram_commands_total", "RESP commands executed.", "command"),
		cmdErrors:  d("engram_command_errors_total", "RESP commands that replied with an error.", "command"),
		cmdSeconds: d("engram_command_seconds_total", "Seconds spent executing RESP commands.", "command"),
	}
}

// Describe sends every descriptor, so the registry can check for clashes
// at registration rather than at the first scrape.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.keys, c.mapBytes, c.memUsed, c.memArena, c.memMax,
		c.hits, c.misses, c.expired, c.evicted, c.uptime,
		c.clients, c.conns, c.rejected, c.netIn, c.netOut,
		c.cmdCalls, c.cmdErrors, c.cmdSeconds,
	} {
		ch <- d
	}
}

// Collect copies the current counters into const metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if st := c.src.Store; st != nil {
		s := st.Stats()
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
		}
		gauge(c.memUsed, float64(s.UsedMemory))
		gauge(c.memArena, float64(s.ArenaMemory))
		gauge(c.memMax, float64(s.MaxMemory))
		counter(c.hits, float64(s.Hits))
		counter(c.misses, float64(s.Misses))
		counter(c.expired, float64(s.Expired))
		counter(c.evicted, float64(s.Evicted))
		gauge(c.uptime, s.Uptime.Seconds())

		seen := make(map[string]bool)
		for _, name := range st.MapNames() {
			m, ok := st.Lookup([]byte(name))
			if !ok {
				continue
			}
			label := labelValue(name)
			if seen[label] {
				// Two binary names escaped to the same text: a
				// duplicate series would fail the whole scrape.
				continue
			}
			seen[label] = true
			gauge(c.keys, float64(m.Len()), label)
			gauge(c.mapBytes, float64(m.Bytes()), label)
		}
	}
	if c.src.Server == nil {
		return
	}
	s := c.src.Server()
	ch <- prometheus.MustNewConstMetric(c.clients, prometheus.GaugeValue, float64(s.ConnectedClients))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.CounterValue, float64(s.TotalConnections))
	ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(s.RejectedConnections))
	ch <- prometheus.MustNewConstMetric(c.netIn, prometheus.CounterValue, float64(s.NetInputBytes))
	ch <- prometheus.MustNewConstMetric(c.netOut, prometheus.CounterValue, float64(s.NetOutputBytes))
	names := make([]string, 0, len(s.Commands))
	for name := range s.Commands {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic output, and stable dedup below
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		cs := s.Commands[name]
		label := labelValue(name)
		if seen[label] {
			continue
		}
		seen[label] = true
		ch <- prometheus.MustNewConstMetric(c.cmdCalls, prometheus.CounterValue, float64(cs.Calls), label)
		ch <- prometheus.MustNewConstMetric(c.cmdErrors, prometheus.CounterValue, float64(cs.Errors), label)
		ch <- prometheus.MustNewConstMetric(c.cmdSeconds, prometheus.CounterValue, float64(cs.Usec)/1e6, label)
	}
}

// labelValue makes a binary-safe name usable as a label value, which
// Prometheus requires to be UTF-8: valid names pass unchanged, others are
// shown Go-quoted (with the quotes) so that distinct names stay distinct.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}
