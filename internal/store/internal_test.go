package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// Internal maps (a name starting with a zero byte) hold Engram's own
// records: they are not listed, not flushed and never evicted, but they
// are exported with their partition like any map.
func TestInternalMaps(t *testing.T) {
	if !IsInternal("\x00seq") || IsInternal("seq") || IsInternal("") || IsInternal("a\x00") {
		t.Fatal("IsInternal: only names starting with a zero byte are internal")
	}
	s, _ := newTestStore(t, Options{Partitions: 7, MaxMemory: 256 << 10, Policy: AllKeysRandom})
	in := s.Map("\x00seq")
	mustSet(t, in, "users", "7", SetOptions{})
	m := s.Map("users")
	mustSet(t, m, "a", "1", SetOptions{})
	if got := s.MapNames(); !slices.Equal(got, []string{"users"}) {
		t.Fatalf("MapNames = %q, want only the client map", got)
	}
	s.Flush(false)
	s.FlushIn([]int{0, 1, 2, 3, 4, 5, 6}, true)
	if m.Len() != 0 {
		t.Fatalf("flush left %d keys in a client map", m.Len())
	}
	if v, ok := get(in, "users"); !ok || v != "7" {
		t.Fatalf("flush removed an internal record: %q %v", v, ok)
	}
	// Fill the memory bound many times over: eviction takes client keys only.
	val := make([]byte, 1000)
	for i := range 2000 {
		if _, err := m.Set([]byte(fmt.Sprint("k", i)), val, SetOptions{}); err != nil {
			t.Fatalf("write %d under allkeys-random: %v", i, err)
		}
	}
	if s.Stats().Evicted == 0 {
		t.Fatal("nothing evicted")
	}
	if _, ok := get(in, "users"); !ok {
		t.Fatal("eviction removed an internal record")
	}
	// The partition export carries internal records, so the cluster moves
	// them with the data.
	p := s.PartitionOf([]byte("users"))
	found := false
	if err := s.ExportPartition(p, func(r Record) error {
		found = found || (r.Map == "\x00seq" && string(r.Key) == "users")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("ExportPartition left out the internal record")
	}
}

// OutOfSequence is the text a map's own sequence check uses.
func TestOutOfSequenceText(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	m := s.Map("0")
	if err := m.CheckSequence(5); err != nil {
		t.Fatal(err)
	}
	err := m.CheckSequence(4)
	want := OutOfSequence("0", 4, 5)
	if err == nil || err.Error() != want.Error() || !errors.Is(want, ErrOutOfSequence) {
		t.Fatalf("got %v, want %v (wrapping ErrOutOfSequence)", err, want)
	}
}
