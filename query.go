package engram

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/engramdb/engram/internal/resp"
)

// JSON queries and indexes (jc values_match, evict_match,
// evict_all_match, start_indexing, stop_indexing, indexes; the jc_s
// forms with a sequence number). Criteria are dot paths compared with
// JSON values, such as `id.type=3`, combined with "&&"; docs/queries.md
// has the grammar. Every method runs the Redis-protocol command that does
// the same (VALUESMATCH, EVICTMATCH, INDEX, ...) through the node, so a
// query returns every match of the whole cluster exactly once.

// Errors of queries and index definitions.
var (
	// ErrInvalidCriteria: the criteria (or an index path) do not parse.
	// The error's message says where and why.
	ErrInvalidCriteria = errors.New("invalid criteria")
	// ErrNoIndexesAvailable: the map already has its maximum number of
	// indexes (jc's no_indexes_available).
	ErrNoIndexesAvailable = errors.New("no indexes available")
)

// queryError maps the query commands' refusals onto their sentinels.
func queryError(err error) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "engram: ERR invalid criteria"):
		return NewError(ErrInvalidCriteria, errors.New(strings.TrimPrefix(msg, "engram: ERR ")))
	case strings.HasPrefix(msg, "engram: NOINDEX "):
		return NewError(ErrNoIndexesAvailable, errors.New(strings.TrimPrefix(msg, "engram: NOINDEX ")))
	}
	return err
}

// qdo runs a query command on m's map.
func (m *Map) qdo(ctx context.Context, args ...[]byte) (resp.Value, error) {
	if err := m.n.check(ctx); err != nil {
		return resp.Value{}, err
	}
	v, err := m.do(ctx, args...)
	if err != nil {
		return v, queryError(err)
	}
	return v, nil
}

// kvs reads a map reply (a flat key, value list).
func kvs(cmd []byte, v resp.Value) ([]KV, error) {
	if len(v.Elems)%2 != 0 {
		return nil, unexpected(cmd, v)
	}
	out := make([]KV, 0, len(v.Elems)/2)
	for i := 0; i < len(v.Elems); i += 2 {
		out = append(out, KV{Key: string(v.Elems[i].Str), Value: v.Elems[i+1].Str})
	}
	return out, nil
}

// ValuesMatch returns every item of the map whose value is JSON matching
// criteria (jc values_match), in no particular order. Items whose value
// is not JSON, or lacks a path, never match. The whole result is built in
// memory: use ValuesMatchPage for results that may be large.
func (m *Map) ValuesMatch(ctx context.Context, criteria string) ([]KV, error) {
	cmd := b("VALUESMATCH")
	v, err := m.qdo(ctx, cmd, b(criteria))
	if err != nil {
		return nil, err
	}
	return kvs(cmd, v)
}

// ValuesMatchPage returns one page of ValuesMatch: the matches of whole
// partitions from cursor on, until at least count were collected (count
// <= 0 means 100), and the cursor of the next page, 0 when the query is
// complete. Start with cursor 0. As with Scan, every item that matches
// for the whole query is returned exactly once, whatever writes happen
// meanwhile, in a cluster too.
func (m *Map) ValuesMatchPage(ctx context.Context, criteria string, cursor uint64, count int) ([]KV, uint64, error) {
	if count <= 0 {
		count = 100
	}
	cmd := b("VALUESMATCH")
	v, err := m.qdo(ctx, cmd, b(criteria), b("CURSOR"), utoa(cursor), b("COUNT"), itoa(int64(count)))
	if err != nil {
		return nil, 0, err
	}
	if len(v.Elems) != 2 {
		return nil, 0, unexpected(cmd, v)
	}
	next, err := strconv.ParseUint(string(v.Elems[0].Str), 10, 64)
	if err != nil {
		return nil, 0, unexpected(cmd, v)
	}
	items, err := kvs(cmd, v.Elems[1])
	return items, next, err
}

// EvictMatch removes the map's items whose value matches criteria (jc
// evict_match) and returns how many it removed. Each removal checks the
// criteria again under the key's lock, so an item changed meanwhile to a
// value that does not match is kept.
func (m *Map) EvictMatch(ctx context.Context, criteria string) (int, error) {
	return m.qint(ctx, b("EVICTMATCH"), b(criteria))
}

// EvictMatchSeq is EvictMatch checked against the map's sequence (jc_s
// evict_match/3): ErrOutOfSequence if seq is lower than the map's
// current maximum, and nothing is removed.
func (m *Map) EvictMatchSeq(ctx context.Context, criteria string, seq uint64) (int, error) {
	return m.qint(ctx, b("EVICTMATCHSEQ"), utoa(seq), b(criteria))
}

func (m *Map) qint(ctx context.Context, args ...[]byte) (int, error) {
	v, err := m.qdo(ctx, args...)
	if err != nil {
		return 0, err
	}
	if v.Kind != ':' {
		return 0, unexpected(args[0], v)
	}
	return int(v.Int), nil
}

// EvictAllMatch removes the items of every map whose value matches
// criteria (jc evict_all_match) and returns how many it removed.
func (n *Node) EvictAllMatch(ctx context.Context, criteria string) (int, error) {
	return n.Map("0").qint(ctx, b("EVICTALLMATCH"), b(criteria))
}

// EvictAllMatchSeq is EvictAllMatch checked against every map's sequence
// (jc_s evict_all_match/2): if any map's sequence is higher than seq it
// fails with ErrOutOfSequence and removes nothing; otherwise every map's
// sequence becomes seq.
func (n *Node) EvictAllMatchSeq(ctx context.Context, criteria string, seq uint64) (int, error) {
	return n.Map("0").qint(ctx, b("EVICTALLMATCHSEQ"), utoa(seq), b(criteria))
}

// StartIndexing indexes the map's values on a dot path (jc
// start_indexing). The index is built in the background (Indexes shows
// its progress); queries use it once it is ready, and it stays exact on
// every write, delete, expiry and eviction. A map has at most four
// indexes by default: beyond, ErrNoIndexesAvailable. Indexing a path
// already indexed does nothing. In a cluster every node indexes it.
func (m *Map) StartIndexing(ctx context.Context, path string) error {
	_, err := m.qdo(ctx, b("INDEX"), b("ADD"), b(m.Name()), b(path))
	return err
}

// StopIndexing removes the map's index on path (jc stop_indexing); it
// does nothing if there is none.
func (m *Map) StopIndexing(ctx context.Context, path string) error {
	_, err := m.qdo(ctx, b("INDEX"), b("DEL"), b(m.Name()), b(path))
	return err
}

// IndexInfo describes one index (jc indexes: {{Map, Path}, Position},
// with its state and size on this node).
type IndexInfo struct {
	Map      string
	Path     string
	Position int // 1-based place among the map's indexes
	// State is "building" (filled in the background; queries scan) or
	// "ready" (queries use it).
	State string
	// Auto is true for an index automatic indexing created.
	Auto bool
	// BuildDone and BuildTotal are the build's progress in keys.
	BuildDone, BuildTotal int64
	// Keys is the number of keys indexed (whose value has the path),
	// Values the number of distinct values (counted per partition), Bytes
	// the estimated memory of the index.
	Keys, Values, Bytes int64
	Created             time.Time
}

// Indexes describes the map's indexes (jc indexes/1) as this node holds
// them.
func (m *Map) Indexes(ctx context.Context) ([]IndexInfo, error) {
	return m.indexList(ctx, b("INDEX"), b("LIST"), b(m.Name()))
}

// Indexes describes the indexes of every map (jc indexes/0) as this node
// holds them.
func (n *Node) Indexes(ctx context.Context) ([]IndexInfo, error) {
	return n.Map("0").indexList(ctx, b("INDEX"), b("LIST"))
}

func (m *Map) indexList(ctx context.Context, args ...[]byte) ([]IndexInfo, error) {
	v, err := m.qdo(ctx, args...)
	if err != nil {
		return nil, err
	}
	out := make([]IndexInfo, 0, len(v.Elems))
	for _, e := range v.Elems {
		var in IndexInfo
		for i := 0; i+1 < len(e.Elems); i += 2 {
			f := e.Elems[i+1]
			switch string(e.Elems[i].Str) {
			case "map":
				in.Map = string(f.Str)
			case "path":
				in.Path = string(f.Str)
			case "position":
				in.Position = int(f.Int)
			case "state":
				in.State = string(f.Str)
			case "auto":
				in.Auto = f.Int != 0
			case "build_done":
				in.BuildDone = f.Int
			case "build_total":
				in.BuildTotal = f.Int
			case "keys":
				in.Keys = f.Int
			case "values":
				in.Values = f.Int
			case "bytes":
				in.Bytes = f.Int
			case "created":
				in.Created, _ = time.Parse("2006-01-02T15:04:05.000Z", string(f.Str))
			}
		}
		out = append(out, in)
	}
	return out, nil
}
