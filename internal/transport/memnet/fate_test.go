package memnet

import (
	"testing"
	"time"
)

func TestFateIsSeededPerLink(t *testing.T) {
	const seed = 77
	t.Logf("memnet seed %d", seed)
	decide := func(w *Network, from, to string, n int) (drops []bool, delays []time.Duration) {
		for range n {
			d, l := w.fate(from, to)
			drops, delays = append(drops, d), append(delays, l)
		}
		return drops, delays
	}
	mk := func() *Network {
		w := NewNetwork(seed)
		w.SetDropRate(0.5)
		w.SetDelay(time.Millisecond, 5*time.Millisecond)
		return w
	}
	w1, w2 := mk(), mk()
	// Traffic on another link in between must not shift a link's fates.
	decide(w2, "c", "d", 17)
	drops1, delays1 := decide(w1, "a", "b", 200)
	drops2, delays2 := decide(w2, "a", "b", 200)
	nDrops := 0
	for i := range drops1 {
		if drops1[i] != drops2[i] || delays1[i] != delays2[i] {
			t.Fatalf("message %d on a->b: fates differ between networks with one seed", i)
		}
		if delays1[i] < time.Millisecond || delays1[i] > 5*time.Millisecond {
			t.Fatalf("message %d delayed %v, outside [1ms, 5ms]", i, delays1[i])
		}
		if drops1[i] {
			nDrops++
		}
	}
	if nDrops == 0 || nDrops == len(drops1) {
		t.Fatalf("%d of %d dropped at rate 0.5", nDrops, len(drops1))
	}
	// The reverse link has fates of its own.
	dropsBack, _ := decide(w1, "b", "a", 200)
	same := true
	for i := range dropsBack {
		same = same && dropsBack[i] == drops1[i]
	}
	if same {
		t.Fatal("a->b and b->a have identical fates")
	}
}
