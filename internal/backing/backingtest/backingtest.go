// Package backingtest is the conformance suite every backing.Store
// implementation passes (the directory store, the in-memory store, and the
// S3 store when it is built).
package backingtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/engramdb/engram/internal/backing"
)

// Run runs the suite; open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) backing.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, open(t)) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, open(t)) })
	t.Run("Batch", func(t *testing.T) { testBatch(t, open(t)) })
	t.Run("ListPaging", func(t *testing.T) { testListPaging(t, open(t)) })
	t.Run("ListDuringChanges", func(t *testing.T) { testListDuringChanges(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("Aliasing", func(t *testing.T) { testAliasing(t, open(t)) })
	t.Run("Context", func(t *testing.T) { testContext(t, open(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
}

// Awkward names: path syntax, escapes, case, reserved-looking names,
// unicode, invalid UTF-8, and lengths around the directory store's bound.
func awkward() []string {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return []string{
		"", "k", "K", "\x00", "\x00\x00", "/", "//", ".", "..", "...", "../..", "../../etc/passwd",
		"a/b/c", "a\\b", "%", "%2e", "%25", "%zz", ".tmp-0123-x", ".long", "-", "_", "a.b",
		"ユニコード", "\xff\xfe", "con", "trailing.", " space ", "Mixed.Case",
		strings.Repeat("a", backing.MaxNameLen), strings.Repeat("a", backing.MaxNameLen+1),
		strings.Repeat("A", backing.MaxNameLen/3), strings.Repeat("A", backing.MaxNameLen/3+1),
		strings.Repeat("key/", 2500), string(all),
	}
}

var ctx = context.Background()

func mustStore(t *testing.T, s backing.Store, m string, k, v []byte) {
	t.Helper()
	if err := s.Store(ctx, m, k, v); err != nil {
		t.Fatalf("Store(%q, %q): %v", short(m), short(string(k)), err)
	}
}

func expect(t *testing.T, s backing.Store, m string, k, want []byte, wantFound bool) {
	t.Helper()
	v, found, err := s.Load(ctx, m, k)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", short(m), short(string(k)), err)
	}
	if found != wantFound || !bytes.Equal(v, want) {
		t.Fatalf("Load(%q, %q) = %d bytes, found %v; want %d bytes, found %v",
			short(m), short(string(k)), len(v), found, len(want), wantFound)
	}
}

func short(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", s[:40], len(s))
	}
	return s
}

// listAll pages through m with limit and returns the keys.
func listAll(t *testing.T, s backing.Store, m string, prefix []byte, limit int) [][]byte {
	t.Helper()
	var all [][]byte
	opts := backing.ListOptions{Prefix: prefix, Limit: limit}
	for i := 0; ; i++ {
		p, err := s.List(ctx, m, opts)
		if err != nil {
			t.Fatalf("List(%q): %v", short(m), err)
		}
		if limit > 0 && len(p.Keys) > limit {
			t.Fatalf("List returned %d keys, limit %d", len(p.Keys), limit)
		}
		if p.Next != "" && len(p.Keys) == 0 {
			t.Fatalf("List returned an empty page with a cursor")
		}
		all = append(all, p.Keys...)
		if p.Next == "" {
			return all
		}
		if i > 100000 {
			t.Fatal("List does not end")
		}
		opts.Cursor = p.Next
	}
}

func sameKeys(t *testing.T, got [][]byte, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("listed %d keys, want %d", len(got), len(want))
	}
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("key %d is %q, want %q", i, short(string(got[i])), short(want[i]))
		}
	}
}

func sorted(keys []string) []string {
	out := slices.Clone(keys)
	slices.Sort(out)
	return out
}

func testRoundTrip(t *testing.T, s backing.Store) {
	defer s.Close()
	big := make([]byte, 5<<20+3)
	for i := range big {
		big[i] = byte(i * 7)
	}
	maps := []string{"m", "", "\x00", "/", "..", ".", "M", "ユ", ".long", strings.Repeat("m/", 150)}
	for _, m := range maps {
		keys := awkward()
		for i, k := range keys {
			mustStore(t, s, m, []byte(k), []byte(m+"|"+k+"|"+fmt.Sprint(i)))
		}
		for i, k := range keys {
			expect(t, s, m, []byte(k), []byte(m+"|"+k+"|"+fmt.Sprint(i)), true)
		}
		sameKeys(t, listAll(t, s, m, nil, 0), sorted(keys))
	}
	// Values: empty (found, unlike missing), nil, binary, several MiB.
	for i, v := range [][]byte{{}, nil, {0}, []byte("\x00\xff/.."), big} {
		k := []byte(fmt.Sprintf("value-%d", i))
		mustStore(t, s, "values", k, v)
		expect(t, s, "values", k, v, true)
		// The same value under a long key (the directory store's other layout).
		lk := append(bytes.Repeat([]byte{0xee}, 300), k...)
		mustStore(t, s, "values", lk, v)
		expect(t, s, "values", lk, v, true)
	}
	for _, m := range maps {
		for _, k := range awkward() {
			if err := s.Delete(ctx, m, []byte(k)); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			expect(t, s, m, []byte(k), nil, false)
		}
		if keys := listAll(t, s, m, nil, 0); len(keys) != 0 {
			t.Fatalf("map %q: %d keys left after deleting all", short(m), len(keys))
		}
	}
}

func testMissing(t *testing.T, s backing.Store) {
	defer s.Close()
	expect(t, s, "nomap", []byte("k"), nil, false)
	mustStore(t, s, "m", []byte("k"), []byte("v"))
	for _, k := range awkward() {
		if k != "k" {
			expect(t, s, "m", []byte(k), nil, false)
		}
		if err := s.Delete(ctx, "m2", []byte(k)); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	}
	if err := s.DeleteBatch(ctx, "nomap", [][]byte{[]byte("a"), nil}); err != nil {
		t.Fatalf("DeleteBatch of missing keys: %v", err)
	}
	if p, err := s.List(ctx, "nomap", backing.ListOptions{}); err != nil || len(p.Keys) != 0 || p.Next != "" {
		t.Fatalf("List of a missing map = %v, %v", p, err)
	}
	expect(t, s, "M", []byte("k"), nil, false) // map names are case-sensitive
	expect(t, s, "m", []byte("K"), nil, false) // and keys
}

func testOverwrite(t *testing.T, s backing.Store) {
	defer s.Close()
	k := []byte("k")
	for _, v := range []string{"first value, long", "2", "", "third"} {
		mustStore(t, s, "m", k, []byte(v))
		expect(t, s, "m", k, []byte(v), true)
	}
	sameKeys(t, listAll(t, s, "m", nil, 0), []string{"k"})
}

func testBatch(t *testing.T, s backing.Store) {
	defer s.Close()
	var entries []backing.Entry
	want := map[string]string{}
	for i := range 100 {
		k := fmt.Sprintf("k%02d", i%60) // 40 keys given twice: later wins
		if i%10 == 0 {
			k = strings.Repeat("L", 300) + k // some long keys
		}
		v := fmt.Sprintf("v%d", i)
		entries = append(entries, backing.Entry{Key: []byte(k), Value: []byte(v)})
		want[k] = v
	}
	if err := s.StoreBatch(ctx, "b", entries); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k, v := range want {
		expect(t, s, "b", []byte(k), []byte(v), true)
		keys = append(keys, k)
	}
	sameKeys(t, listAll(t, s, "b", nil, 0), sorted(keys))
	var del [][]byte
	for k := range want {
		del = append(del, []byte(k))
	}
	del = append(del, []byte("missing"), del[0])
	if err := s.DeleteBatch(ctx, "b", del); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s, "b", nil, 0); len(got) != 0 {
		t.Fatalf("%d keys left", len(got))
	}
	if err := s.StoreBatch(ctx, "b", nil); err != nil {
		t.Fatalf("empty StoreBatch: %v", err)
	}
}

func testListPaging(t *testing.T, s backing.Store) {
	defer s.Close()
	var keys []string
	for i := range 250 {
		k := fmt.Sprintf("p%d/%03d", i%3, i)
		if i%50 == 0 {
			k += strings.Repeat("\x01", 100) // long
		}
		keys = append(keys, k)
		mustStore(t, s, "l", []byte(k), []byte{byte(i)})
	}
	keys = append(keys, "") // the empty key sorts first
	mustStore(t, s, "l", nil, nil)
	mustStore(t, s, "other", []byte("p0/x"), nil)
	want := sorted(keys)
	for _, limit := range []int{0, 1, 7, 250, 251, 1000} {
		sameKeys(t, listAll(t, s, "l", nil, limit), want)
	}
	var p1 []string
	for _, k := range want {
		if strings.HasPrefix(k, "p1/") {
			p1 = append(p1, k)
		}
	}
	for _, limit := range []int{1, 5, 100} {
		sameKeys(t, listAll(t, s, "l", []byte("p1/"), limit), p1)
	}
	if _, err := s.List(ctx, "l", backing.ListOptions{Cursor: "%zz"}); !errors.Is(err, backing.ErrInvalid) {
		t.Fatalf("List with a bad cursor: %v, want ErrInvalid", err)
	}
}

// Keys present for a whole listing are returned exactly once, whatever
// is added and deleted between pages.
func testListDuringChanges(t *testing.T, s backing.Store) {
	defer s.Close()
	var stable []string
	for i := range 100 {
		k := fmt.Sprintf("s%03d", i)
		stable = append(stable, k)
		mustStore(t, s, "c", []byte(k), nil)
	}
	seen := map[string]int{}
	opts := backing.ListOptions{Limit: 9}
	for n := 0; ; n++ {
		p, err := s.List(ctx, "c", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range p.Keys {
			seen[string(k)]++
		}
		// Churn around the cursor.
		mustStore(t, s, "c", []byte(fmt.Sprintf("s%03d+", n*9)), nil)
		mustStore(t, s, "c", []byte(fmt.Sprintf("s%03d+", 99-n*9)), nil)
		if err := s.Delete(ctx, "c", []byte(fmt.Sprintf("s%03d+", n*9-9))); err != nil {
			t.Fatal(err)
		}
		if p.Next == "" {
			break
		}
		opts.Cursor = p.Next
	}
	for _, k := range stable {
		if seen[k] != 1 {
			t.Fatalf("key %q listed %d times", k, seen[k])
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("key %q listed %d times", k, n)
		}
	}
}

func testConcurrent(t *testing.T, s backing.Store) {
	defer s.Close()
	const workers, rounds, nkeys = 8, 200, 5
	value := func(w, r int) []byte {
		return bytes.Repeat([]byte{byte(w), byte(r)}, 1+(w*r)%3000)
	}
	valid := func(v []byte) bool {
		if len(v) < 2 || len(v)%2 != 0 {
			return false
		}
		return bytes.Equal(v, value(int(v[0]), int(v[1])))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				k := []byte(fmt.Sprintf("k%d", r%nkeys))
				if r%nkeys == 0 {
					k = bytes.Repeat(k, 100) // a long key
				}
				var err error
				switch r % 4 {
				case 0, 1:
					err = s.Store(ctx, "c", k, value(w, r%256))
				case 2:
					var v []byte
					var found bool
					v, found, err = s.Load(ctx, "c", k)
					if err == nil && found && !valid(v) {
						err = fmt.Errorf("torn or foreign value of %d bytes", len(v))
					}
				case 3:
					if w%2 == 0 {
						err = s.Delete(ctx, "c", k)
					} else {
						_, err = s.List(ctx, "c", backing.ListOptions{Limit: 2})
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, k := range listAll(t, s, "c", nil, 0) {
		v, found, err := s.Load(ctx, "c", k)
		if err != nil || !found || !valid(v) {
			t.Fatalf("after the run, %q: %d bytes, found %v, %v", short(string(k)), len(v), found, err)
		}
	}
}

func testAliasing(t *testing.T, s backing.Store) {
	defer s.Close()
	k, v := []byte("key"), []byte("value")
	mustStore(t, s, "a", k, v)
	k[0], v[0] = 'X', 'X'
	expect(t, s, "a", []byte("key"), []byte("value"), true)
	got, _, _ := s.Load(ctx, "a", []byte("key"))
	got[0] = 'Y'
	expect(t, s, "a", []byte("key"), []byte("value"), true)
}

func testContext(t *testing.T, s backing.Store) {
	defer s.Close()
	c, cancel := context.WithCancel(ctx)
	cancel()
	mustStore(t, s, "m", []byte("k"), []byte("v"))
	_, _, err := s.Load(c, "m", []byte("k"))
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with a cancelled context: %v", op, err)
		}
	}
	check("Load", err)
	check("Store", s.Store(c, "m", []byte("k"), []byte("w")))
	check("Delete", s.Delete(c, "m", []byte("k")))
	check("StoreBatch", s.StoreBatch(c, "m", []backing.Entry{{Key: []byte("k")}}))
	check("DeleteBatch", s.DeleteBatch(c, "m", [][]byte{[]byte("k")}))
	_, err = s.List(c, "m", backing.ListOptions{})
	check("List", err)
	expect(t, s, "m", []byte("k"), []byte("v"), true)
}

func testClosed(t *testing.T, s backing.Store) {
	mustStore(t, s, "m", []byte("k"), []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Load(ctx, "m", []byte("k"))
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, backing.ErrClosed) {
			t.Fatalf("%s after Close: %v", op, err)
		}
	}
	check("Load", err)
	check("Store", s.Store(ctx, "m", []byte("k"), nil))
	check("Delete", s.Delete(ctx, "m", []byte("k")))
	check("StoreBatch", s.StoreBatch(ctx, "m", []backing.Entry{{Key: []byte("k")}}))
	check("DeleteBatch", s.DeleteBatch(ctx, "m", [][]byte{[]byte("k")}))
	_, err = s.List(ctx, "m", backing.ListOptions{})
	check("List", err)
}
