package backing

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
)

// DirOptions tune a directory store.
type DirOptions struct {
	// NoSync skips every fsync: writes stay atomic against a process
	// crash but not against a power loss or kernel crash.
	NoSync bool
}

// Dir is the local directory store: one file per key (layout and fsync
// policy in the package documentation). Create it with OpenDir or Open.
type Dir struct {
	root   string
	sync   bool
	tmp    string // prefix of this store's temporary files
	closed atomic.Bool
}

var _ Store = (*Dir)(nil)

const (
	longDir   = ".long" // hashed names of too-long keys and maps
	tmpPrefix = ".tmp-"
	longMagic = "EGK1" // first bytes of a long key's file
)

// OpenDir opens (creating it if needed) the directory store at root.
func OpenDir(root string, opts DirOptions) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, &Error{Op: "open", Kind: ErrInvalid, Err: err}
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, &Error{Op: "open", Kind: ErrUnavailable, Err: err}
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:]) // never fails (crypto/rand)
	return &Dir{root: abs, sync: !opts.NoSync, tmp: tmpPrefix + hex.EncodeToString(tok[:]) + "-"}, nil
}

// Root returns the store's directory.
func (d *Dir) Root() string { return d.root }

func hashHex[T ~string | ~[]byte](s T) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// mapDir is the directory of map m.
func (d *Dir) mapDir(m string) string {
	if escapedLen(m) > MaxNameLen {
		return filepath.Join(d.root, longDir, hashHex(m))
	}
	return filepath.Join(d.root, escape(m))
}

// keyFile returns where key lives in the map directory md, and whether the
// file starts with a key header (a hashed long key).
func keyFile(md string, key []byte) (dir, name string, long bool) {
	if escapedLen(key) > MaxNameLen {
		h := hashHex(key)
		return filepath.Join(md, longDir, h[:2]), h, true
	}
	return md, escape(key), false
}

func longHeader(key []byte) []byte {
	h := make([]byte, 0, len(longMagic)+binary.MaxVarintLen64+len(key))
	h = append(h, longMagic...)
	h = binary.AppendUvarint(h, uint64(len(key)))
	return append(h, key...)
}

// parseLong splits a long key's file into key and value.
func parseLong(data []byte) (key, value []byte, ok bool) {
	if !bytes.HasPrefix(data, []byte(longMagic)) {
		return nil, nil, false
	}
	data = data[len(longMagic):]
	n, w := binary.Uvarint(data)
	if w <= 0 || n > uint64(len(data)-w) {
		return nil, nil, false
	}
	data = data[w:]
	return data[:n], data[n:], true
}

func (d *Dir) check(ctx context.Context, op, m string) error {
	if d.closed.Load() {
		return &Error{Op: op, Map: m, Kind: ErrClosed}
	}
	return ctxErr(ctx, op, m)
}

func ioErr(op, m string, err error) error {
	return &Error{Op: op, Map: m, Kind: ErrUnavailable, Err: err}
}

// Load implements Store.
func (d *Dir) Load(ctx context.Context, m string, key []byte) ([]byte, bool, error) {
	if err := d.check(ctx, "load", m); err != nil {
		return nil, false, err
	}
	dir, name, long := keyFile(d.mapDir(m), key)
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, ioErr("load", m, err)
	}
	if !long {
		return data, true, nil
	}
	k, v, ok := parseLong(data)
	if !ok || !bytes.Equal(k, key) {
		return nil, false, &Error{Op: "load", Map: m, Kind: ErrCorrupt,
			Err: fmt.Errorf("%s: not the key's file", filepath.Join(dir, name))}
	}
	return v, true, nil
}

// Store implements Store.
func (d *Dir) Store(ctx context.Context, m string, key, value []byte) error {
	return d.storeBatch(ctx, "store", m, []Entry{{Key: key, Value: value}})
}

// StoreBatch implements Store. Each value is written and fsynced to its own
// temporary file and renamed; each directory touched is fsynced once at the
// end.
func (d *Dir) StoreBatch(ctx context.Context, m string, entries []Entry) error {
	return d.storeBatch(ctx, "store batch", m, entries)
}

func (d *Dir) storeBatch(ctx context.Context, op, m string, entries []Entry) error {
	md := d.mapDir(m)
	dirs := make(map[string]bool)
	var err error
	for _, e := range entries {
		if err = d.check(ctx, op, m); err != nil {
			break
		}
		dir, name, long := keyFile(md, e.Key)
		var head []byte
		if long {
			head = longHeader(e.Key)
		}
		if err = d.writeFile(dir, name, head, e.Value); err != nil {
			err = ioErr(op, m, err)
			break
		}
		dirs[dir] = true
	}
	// Sync what was renamed even after an error: those entries are applied.
	for dir := range dirs {
		if serr := d.syncDir(dir); serr != nil && err == nil {
			err = ioErr(op, m, serr)
		}
	}
	return err
}

// writeFile atomically replaces dir/name with head+value (without syncing
// dir: the caller does).
func (d *Dir) writeFile(dir, name string, head, value []byte) (err error) {
	f, err := os.CreateTemp(dir, d.tmp+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = d.mkdir(dir); err != nil {
			return err
		}
		f, err = os.CreateTemp(dir, d.tmp+"*")
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if len(head) > 0 {
		if _, err = f.Write(head); err != nil {
			return err
		}
	}
	if _, err = f.Write(value); err != nil {
		return err
	}
	if d.sync {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// mkdir creates dir and any missing parents below the root, fsyncing each
// new directory's parent.
func (d *Dir) mkdir(dir string) error {
	err := os.Mkdir(dir, 0o750)
	if errors.Is(err, fs.ErrNotExist) && dir != d.root {
		if err = d.mkdir(filepath.Dir(dir)); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o750)
	}
	switch {
	case err == nil:
		return d.syncDir(filepath.Dir(dir))
	case errors.Is(err, fs.ErrExist):
		return nil
	}
	return err
}

func (d *Dir) syncDir(dir string) error {
	if !d.sync {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Delete implements Store.
func (d *Dir) Delete(ctx context.Context, m string, key []byte) error {
	return d.deleteBatch(ctx, "delete", m, [][]byte{key})
}

// DeleteBatch implements Store.
func (d *Dir) DeleteBatch(ctx context.Context, m string, keys [][]byte) error {
	return d.deleteBatch(ctx, "delete batch", m, keys)
}

func (d *Dir) deleteBatch(ctx context.Context, op, m string, keys [][]byte) error {
	md := d.mapDir(m)
	dirs := make(map[string]bool)
	var err error
	for _, k := range keys {
		if err = d.check(ctx, op, m); err != nil {
			break
		}
		dir, name, _ := keyFile(md, k)
		rerr := os.Remove(filepath.Join(dir, name))
		if errors.Is(rerr, fs.ErrNotExist) {
			continue
		}
		if rerr != nil {
			err = ioErr(op, m, rerr)
			break
		}
		dirs[dir] = true
	}
	for dir := range dirs {
		if serr := d.syncDir(dir); serr != nil && err == nil {
			err = ioErr(op, m, serr)
		}
	}
	return err
}

// List implements Store. It reads the whole map directory for each page;
// it also removes temporary files left by other (crashed) processes.
func (d *Dir) List(ctx context.Context, m string, opts ListOptions) (ListPage, error) {
	if err := d.check(ctx, "list", m); err != nil {
		return ListPage{}, err
	}
	var after []byte
	if opts.Cursor != "" {
		var ok bool
		if after, ok = unescape(opts.Cursor); !ok {
			return ListPage{}, &Error{Op: "list", Map: m, Kind: ErrInvalid, Err: errors.New("bad cursor")}
		}
	}
	keep := func(k []byte) bool {
		return bytes.HasPrefix(k, opts.Prefix) && (after == nil || bytes.Compare(k, after) > 0)
	}
	md := d.mapDir(m)
	ents, err := os.ReadDir(md)
	if errors.Is(err, fs.ErrNotExist) {
		return ListPage{}, nil
	}
	if err != nil {
		return ListPage{}, ioErr("list", m, err)
	}
	var keys [][]byte
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			if name == longDir && e.IsDir() {
				if keys, err = d.listLong(ctx, m, filepath.Join(md, longDir), keys, keep); err != nil {
					return ListPage{}, err
				}
			} else {
				d.removeStale(md, name)
			}
			continue
		}
		if !e.Type().IsRegular() {
			continue
		}
		if k, ok := unescape(name); ok && keep(k) {
			keys = append(keys, k)
		}
	}
	return page(keys, opts.Limit), nil
}

// page sorts keys and cuts the first page.
func page(keys [][]byte, limit int) ListPage {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	slices.SortFunc(keys, bytes.Compare)
	if len(keys) <= limit {
		return ListPage{Keys: keys}
	}
	keys = keys[:limit:limit]
	return ListPage{Keys: keys, Next: escape(keys[limit-1])}
}

// removeStale removes name in dir if it is a temporary file of another
// store token: a write that a crashed process never finished.
func (d *Dir) removeStale(dir, name string) {
	if strings.HasPrefix(name, tmpPrefix) && !strings.HasPrefix(name, d.tmp) {
		_ = os.Remove(filepath.Join(dir, name))
	}
}

// listLong appends the long keys kept under dir (<map>/.long) that keep accepts.
func (d *Dir) listLong(ctx context.Context, m, dir string, keys [][]byte, keep func([]byte) bool) ([][]byte, error) {
	subs, err := os.ReadDir(dir)
	if err != nil {
		return keys, ioErr("list", m, err)
	}
	for _, s := range subs {
		if !s.IsDir() {
			continue
		}
		sub := filepath.Join(dir, s.Name())
		files, err := os.ReadDir(sub)
		if err != nil {
			return keys, ioErr("list", m, err)
		}
		for _, f := range files {
			if err := ctxErr(ctx, "list", m); err != nil {
				return keys, err
			}
			name := f.Name()
			if strings.HasPrefix(name, ".") {
				d.removeStale(sub, name)
				continue
			}
			if !f.Type().IsRegular() {
				continue
			}
			k, err := readLongKey(filepath.Join(sub, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return keys, ioErr("list", m, err)
			}
			if k != nil && hashHex(k) == name && keep(k) {
				keys = append(keys, k)
			}
		}
	}
	return keys, nil
}

// readLongKey reads the key from the header of a long key's file; nil
// without error if the file is not one.
func readLongKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, len(longMagic)+binary.MaxVarintLen64)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	head = head[:n]
	if !bytes.HasPrefix(head, []byte(longMagic)) {
		return nil, nil
	}
	klen, w := binary.Uvarint(head[len(longMagic):])
	if w <= 0 || klen > 1<<30 {
		return nil, nil
	}
	key := make([]byte, klen)
	if _, err := f.ReadAt(key, int64(len(longMagic)+w)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	return key, nil
}

// Close implements Store. Calls in progress finish; later ones fail with
// ErrClosed.
func (d *Dir) Close() error {
	d.closed.Store(true)
	return nil
}
