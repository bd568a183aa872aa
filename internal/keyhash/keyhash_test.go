package keyhash

import (
	"fmt"
	"testing"
)

func TestSumStable(t *testing.T) {
	// The placement of keys must never change between releases: pin a value.
	if got, want := Sum([]byte("engram")), SumString("engram"); got != want {
		t.Fatalf("Sum and SumString disagree: %x vs %x", got, want)
	}
	if got := Sum([]byte("")); got != 0xef46db3751d8e999 {
		t.Fatalf("xxhash64 of empty input changed: %x", got)
	}
}

func TestPartitionSpread(t *testing.T) {
	const n, keys = 271, 271000
	counts := make([]int, n)
	for i := 0; i < keys; i++ {
		counts[Partition(SumString(fmt.Sprintf("key:%d", i)), n)]++
	}
	for p, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("partition %d got %d keys of %d, expected about 1000", p, c, keys)
		}
	}
}
