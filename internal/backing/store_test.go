package backing_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/backing/backingtest"
)

var ctx = context.Background()

func openDir(t *testing.T, root string, opts backing.DirOptions) *backing.Dir {
	t.Helper()
	d, err := backing.OpenDir(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDirConformance(t *testing.T) {
	backingtest.Run(t, func(t *testing.T) backing.Store { return openDir(t, t.TempDir(), backing.DirOptions{}) })
}

func TestDirNoSyncConformance(t *testing.T) {
	backingtest.Run(t, func(t *testing.T) backing.Store {
		s, err := backing.Open("file://" + filepath.ToSlash(t.TempDir()) + "?fsync=false")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMemConformance(t *testing.T) {
	backingtest.Run(t, func(t *testing.T) backing.Store { return backing.NewMem() })
}

func TestCountingConformance(t *testing.T) {
	backingtest.Run(t, func(t *testing.T) backing.Store { return backing.NewCounting(backing.NewMem()) })
}

func TestCounting(t *testing.T) {
	c := backing.NewCounting(backing.NewMem())
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_ = c.Store(ctx, "m", []byte("k"), []byte("v"))
				_, _, _ = c.Load(ctx, "m", []byte("k"))
				_, _, _ = c.Load(ctx, "m", []byte("missing"))
			}
		}()
	}
	wg.Wait()
	_ = c.StoreBatch(ctx, "m", []backing.Entry{{Key: []byte("a")}, {Key: []byte("b")}})
	_ = c.DeleteBatch(ctx, "m", [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	_ = c.Delete(ctx, "m", []byte("k"))
	_, _ = c.List(ctx, "m", backing.ListOptions{})
	want := backing.Counts{Loads: 2000, LoadsFound: 1000, Stores: 1002, Deletes: 4, Lists: 1, StoreBatches: 1, DeleteBatches: 1}
	if got := c.Counts(); got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}
	c.Reset()
	if got := c.Counts(); got != (backing.Counts{}) {
		t.Fatalf("after Reset: %+v", got)
	}
}

// The files are where the package documentation says.
func TestDirLayout(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, backing.DirOptions{})
	defer d.Close()
	long := strings.Repeat("k", backing.MaxNameLen+1)
	longMap := strings.Repeat("M", 100) // escapes to 300 bytes
	for _, c := range []struct{ m, key, file string }{
		{"users", "alice", "users/alice"},
		{"a/b", "../x", "a%2fb/%2e.%2fx"},
		{"", "", "%/%"},
		{"Big", long, ".long/"}, // checked below
		{longMap, "k", ".long/"},
	} {
		if err := d.Store(ctx, c.m, []byte(c.key), []byte("value")); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(c.file, "/") {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(root, c.file)); err != nil || string(b) != "value" {
			t.Fatalf("%s: %q, %v", c.file, b, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(root, "%42ig", ".long", "*", "*"))
	if len(files) != 1 || len(filepath.Base(files[0])) != 64 {
		t.Fatalf("long key files: %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.HasPrefix(string(b), "EGK1") || !strings.Contains(string(b), long+"value") {
		t.Fatalf("long key file holds %q", b)
	}
	if m, _ := filepath.Glob(filepath.Join(root, ".long", "*", "k")); len(m) != 1 {
		t.Fatalf("long map dir: %v", m)
	}
	// Files survive a reopen.
	d2 := openDir(t, root, backing.DirOptions{})
	if v, ok, err := d2.Load(ctx, "Big", []byte(long)); err != nil || !ok || string(v) != "value" {
		t.Fatalf("after reopen: %q %v %v", v, ok, err)
	}
}

// Temporary files and foreign files are never keys; other processes'
// temporary files are cleaned up by List, this store's own are not.
func TestDirForeignAndTempFiles(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, backing.DirOptions{})
	defer d.Close()
	long := strings.Repeat("\x01", 100)
	for _, k := range []string{"a", long} {
		if err := d.Store(ctx, "m", []byte(k), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	md := filepath.Join(root, "m")
	sub, _ := filepath.Glob(filepath.Join(md, ".long", "*"))
	stale := []string{filepath.Join(md, ".tmp-deadbeef-1"), filepath.Join(sub[0], ".tmp-deadbeef-2")}
	foreign := []string{filepath.Join(md, "UPPER"), filepath.Join(md, "%zz"), filepath.Join(md, ".DS_Store"),
		filepath.Join(sub[0], strings.Repeat("0", 64))}
	for _, f := range append(stale, foreign...) {
		if err := os.WriteFile(f, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory with a key's name is not a key either.
	if err := os.Mkdir(filepath.Join(md, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	foreign = append(foreign, filepath.Join(md, "dir"))
	p, err := d.List(ctx, "m", backing.ListOptions{})
	if err != nil || len(p.Keys) != 2 || string(p.Keys[0]) != long || string(p.Keys[1]) != "a" {
		t.Fatalf("List = %q, %v", p.Keys, err)
	}
	for _, f := range stale {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stale temp %s not removed: %v", f, err)
		}
	}
	for _, f := range foreign {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("foreign file %s removed: %v", f, err)
		}
	}
	// A long key whose file holds another key is corrupt, not found.
	files, _ := filepath.Glob(filepath.Join(sub[0], "[0-9a-f]*"))
	for _, f := range files {
		if err := os.WriteFile(f, []byte("EGK1\x02xyvalue"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.Load(ctx, "m", []byte(long)); !errors.Is(err, backing.ErrCorrupt) {
		t.Fatalf("Load of a corrupt long key: %v", err)
	}
}

// I/O errors are ErrUnavailable and name the operation and map.
func TestDirUnavailable(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, backing.DirOptions{})
	defer d.Close()
	// A file where the map's directory should be: every operation fails.
	if err := os.WriteFile(filepath.Join(root, "m"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, backing.ErrUnavailable) || !strings.Contains(err.Error(), `map "m"`) {
			t.Fatalf("%s: %v, want ErrUnavailable naming the map", op, err)
		}
	}
	check("Store", d.Store(ctx, "m", []byte("k"), []byte("v")))
	check("StoreBatch", d.StoreBatch(ctx, "m", []backing.Entry{{Key: []byte("k")}}))
	check("Store long", d.Store(ctx, "m", []byte(strings.Repeat("/", 100)), []byte("v")))
	_, _, err := d.Load(ctx, "m", []byte("k"))
	check("Load", err)
	check("Delete", d.Delete(ctx, "m", []byte("k")))
	_, err = d.List(ctx, "m", backing.ListOptions{})
	check("List", err)
}
