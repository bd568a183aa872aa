package cli

import (
	"math"
	"math/bits"
)

// histogram counts non-negative values (latencies in nanoseconds) in
// log-linear buckets, the HdrHistogram layout: every power of two is split
// into subCount equal buckets, so any recorded value is known to within
// 1/subCount (under 1%) of itself, from nanoseconds to hours, in a fixed
// 57 KiB. Recording is a few instructions and never allocates, so the
// load generator measures the node rather than itself.
//
// A histogram is not safe for concurrent use: each bench client records
// into its own and they are merged at the end.
type histogram struct {
	counts   [histBuckets]uint64
	total    uint64
	sum      float64
	min, max int64
}

const (
	subBits  = 7
	subCount = 1 << subBits
	// histBuckets covers every int64: values below subCount get a bucket
	// each, and each further power of two (up to 2^63) gets subCount.
	histBuckets = (64 - subBits) * subCount
)

func newHistogram() *histogram { return &histogram{min: math.MaxInt64} }

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := i/subCount - 1
	low := int64(i%subCount+subCount) << shift
	return low + (int64(1) << shift) - 1
}

// record counts value v n times; a negative v counts as 0.
func (h *histogram) record(v int64, n uint64) {
	if n == 0 {
		return
	}
	v = max(v, 0)
	h.counts[bucketOf(v)] += n
	h.total += n
	h.sum += float64(v) * float64(n)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// quantile returns the value below or at which a fraction q (0..1] of the
// recorded values fall, as the top of its bucket (never above the largest
// value recorded), the convention HdrHistogram uses. It is 0 when empty.
func (h *histogram) quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}

// mean is the average recorded value, 0 when empty.
func (h *histogram) mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}
