package store

import (
	"fmt"
	"slices"
	"testing"
)

// The partition-restricted forms answer for exactly the partitions asked,
// and the union over a split of the partitions equals the whole.
func TestPartitionRestrictedForms(t *testing.T) {
	s, _ := newTestStore(t, Options{Partitions: 16})
	m := s.Map("m")
	for i := range 300 {
		mustSet(t, m, fmt.Sprintf("k%d", i), "v", SetOptions{})
	}
	even, odd := []int{}, []int{}
	for p := range 16 {
		if p%2 == 0 {
			even = append(even, p)
		} else {
			odd = append(odd, p)
		}
	}
	inParts := func(keys [][]byte, parts []int) bool {
		for _, k := range keys {
			if !slices.Contains(parts, s.PartitionOf(k)) {
				return false
			}
		}
		return true
	}
	ke, ko := m.KeysIn(even, nil), m.KeysIn(odd, nil)
	if len(ke)+len(ko) != 300 || !inParts(ke, even) || !inParts(ko, odd) {
		t.Fatalf("KeysIn: %d + %d keys, or keys outside their partitions", len(ke), len(ko))
	}
	if m.LenIn(even) != int64(len(ke)) || m.LenIn(odd) != int64(len(ko)) || m.LenIn(nil) != 300 {
		t.Fatalf("LenIn: %d %d %d", m.LenIn(even), m.LenIn(odd), m.LenIn(nil))
	}
	if it := m.ItemsIn(odd, nil, 0); len(it) != len(ko) {
		t.Fatalf("ItemsIn: %d items, want %d", len(it), len(ko))
	}
	if m.BytesIn(even)+m.BytesIn(odd) != m.Bytes() {
		t.Fatal("BytesIn does not add up")
	}
	if m.LenIn([]int{-1, 99}) != 0 {
		t.Fatal("out-of-range partitions must select nothing")
	}
	m.ClearIn(even, false)
	if m.Len() != int64(len(ko)) || len(m.KeysIn(even, nil)) != 0 {
		t.Fatalf("ClearIn(even): %d keys left, want %d", m.Len(), len(ko))
	}
	s.FlushIn(odd, true)
	if m.Len() != 0 {
		t.Fatalf("FlushIn(odd): %d keys left", m.Len())
	}
}

// A replica must take what its primary accepted: Import ignores the
// map's key limit (the primary enforced it).
func TestImportIgnoresKeyLimit(t *testing.T) {
	s, c := newTestStore(t, Options{Partitions: 4})
	m := s.Map("m")
	if err := m.SetMaxKeys(1); err != nil {
		t.Fatal(err)
	}
	mustSet(t, m, "a", "1", SetOptions{})
	if _, err := m.Set([]byte("b"), []byte("2"), SetOptions{}); err == nil {
		t.Fatal("Set past the key limit succeeded")
	}
	if ok, err := s.Import(Record{Map: "m", Key: []byte("b"), Value: []byte("2"), Created: c.now()}, false); err != nil || !ok {
		t.Fatalf("Import past the key limit: %v %v", ok, err)
	}
	if m.Len() != 2 {
		t.Fatalf("len %d, want 2", m.Len())
	}
}
