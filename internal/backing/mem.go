package backing

import (
	"bytes"
	"context"
	"errors"
	"sync"
)

// Mem is a Store in memory, for tests of what sits above a store. The
// zero value is not usable: create it with NewMem.
type Mem struct {
	mu     sync.RWMutex
	maps   map[string]map[string][]byte
	closed bool
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{maps: make(map[string]map[string][]byte)} }

func (s *Mem) check(ctx context.Context, op, m string) error {
	if s.closed {
		return &Error{Op: op, Map: m, Kind: ErrClosed}
	}
	return ctxErr(ctx, op, m)
}

// Load implements Store.
func (s *Mem) Load(ctx context.Context, m string, key []byte) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx, "load", m); err != nil {
		return nil, false, err
	}
	v, ok := s.maps[m][string(key)]
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// Store implements Store.
func (s *Mem) Store(ctx context.Context, m string, key, value []byte) error {
	return s.storeBatch(ctx, "store", m, []Entry{{Key: key, Value: value}})
}

// StoreBatch implements Store.
func (s *Mem) StoreBatch(ctx context.Context, m string, entries []Entry) error {
	return s.storeBatch(ctx, "store batch", m, entries)
}

func (s *Mem) storeBatch(ctx context.Context, op, m string, entries []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, op, m); err != nil {
		return err
	}
	mm := s.maps[m]
	if mm == nil {
		mm = make(map[string][]byte)
		s.maps[m] = mm
	}
	for _, e := range entries {
		mm[string(e.Key)] = append([]byte{}, e.Value...)
	}
	return nil
}

// Delete implements Store.
func (s *Mem) Delete(ctx context.Context, m string, key []byte) error {
	return s.deleteBatch(ctx, "delete", m, [][]byte{key})
}

// DeleteBatch implements Store.
func (s *Mem) DeleteBatch(ctx context.Context, m string, keys [][]byte) error {
	return s.deleteBatch(ctx, "delete batch", m, keys)
}

func (s *Mem) deleteBatch(ctx context.Context, op, m string, keys [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, op, m); err != nil {
		return err
	}
	for _, k := range keys {
		delete(s.maps[m], string(k))
	}
	if len(s.maps[m]) == 0 {
		delete(s.maps, m)
	}
	return nil
}

// List implements Store; cursors are those of the directory store.
func (s *Mem) List(ctx context.Context, m string, opts ListOptions) (ListPage, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx, "list", m); err != nil {
		return ListPage{}, err
	}
	var after []byte
	if opts.Cursor != "" {
		var ok bool
		if after, ok = unescape(opts.Cursor); !ok {
			return ListPage{}, &Error{Op: "list", Map: m, Kind: ErrInvalid, Err: errors.New("bad cursor")}
		}
	}
	var keys [][]byte
	for k := range s.maps[m] {
		kb := []byte(k)
		if bytes.HasPrefix(kb, opts.Prefix) && (after == nil || bytes.Compare(kb, after) > 0) {
			keys = append(keys, kb)
		}
	}
	return page(keys, opts.Limit), nil
}

// Close implements Store.
func (s *Mem) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
