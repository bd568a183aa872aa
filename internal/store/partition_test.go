package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestExportImportDropPartition(t *testing.T) {
	src, c := newTestStore(t, Options{Partitions: 7})
	dst, _ := newTestStore(t, Options{Partitions: 7, Clock: c.now})
	for _, mp := range []string{"a", "b"} {
		m := src.Map(mp)
		for i := 0; i < 2000; i++ {
			o := SetOptions{}
			if i%3 == 0 {
				o.ExpireAt = c.now() + 60_000
			}
			mustSet(t, m, fmt.Sprint(mp, i), fmt.Sprint("v", i), o)
		}
	}
	c.advance(2 * time.Second)
	total := int64(0)
	for p := 0; p < 7; p++ {
		want := src.PartitionLen(p)
		total += want
		got := int64(0)
		err := src.ExportPartition(p, func(r Record) error {
			if src.PartitionOf(r.Key) != p {
				t.Fatalf("key %q exported from partition %d but belongs to %d", r.Key, p, src.PartitionOf(r.Key))
			}
			got++
			_, err := dst.Import(r, true)
			return err
		})
		if err != nil || got != want {
			t.Fatalf("partition %d: exported %d of %d: %v", p, got, want, err)
		}
	}
	if total != 4000 {
		t.Fatalf("partitions hold %d keys, want 4000", total)
	}
	for _, mp := range []string{"a", "b"} {
		sm, dm := src.Map(mp), dst.Map(mp)
		for i := 0; i < 2000; i++ {
			k := []byte(fmt.Sprint(mp, i))
			se, _ := sm.GetEntry(nil, k)
			de, ok := dm.GetEntry(nil, k)
			if !ok || !bytes.Equal(se.Value, de.Value) || se.ExpireAt != de.ExpireAt || se.Created != de.Created {
				t.Fatalf("%s/%s: imported %+v, source %+v", mp, k, de, se)
			}
		}
	}
	// ifAbsent keeps a newer live write; an upsert replaces it.
	dm := dst.Map("a")
	mustSet(t, dm, "a1", "newer", SetOptions{})
	if w, _ := dst.Import(Record{Map: "a", Key: []byte("a1"), Value: []byte("old")}, true); w {
		t.Fatal("snapshot import overwrote a live write")
	}
	if w, _ := dst.Import(Record{Map: "a", Key: []byte("a1"), Value: []byte("repl")}, false); !w {
		t.Fatal("upsert import did not write")
	}
	if v, _ := get(dm, "a1"); v != "repl" {
		t.Fatalf("a1 = %q", v)
	}
	// An already expired record is not imported.
	if w, _ := dst.Import(Record{Map: "a", Key: []byte("x"), Value: []byte("v"), ExpireAt: c.now() - 1}, false); w {
		t.Fatal("expired record imported")
	}
	p := dst.PartitionOf([]byte("a5"))
	before := dst.Map("a").Len() + dst.Map("b").Len()
	n := dst.PartitionLen(p)
	if err := dst.DropPartition(p); err != nil {
		t.Fatal(err)
	}
	if after := dst.Map("a").Len() + dst.Map("b").Len(); after != before-n || dst.PartitionLen(p) != 0 {
		t.Fatalf("drop: before %d, partition %d, after %d", before, n, after)
	}
	if _, ok := get(dst.Map("a"), "a5"); ok {
		t.Fatal("dropped key still readable")
	}
	if err := dst.ExportPartition(99, func(Record) error { return nil }); err == nil {
		t.Fatal("bad partition accepted")
	}
}
