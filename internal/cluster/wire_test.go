package cluster

import (
	"errors"
	"reflect"
	"testing"
)

func sampleRequests() []*Request {
	get := &Request{Op: OpGet, Epoch: 7, Flags: FlagConsistent, TimeoutMs: 900, Map: "m", Key: []byte("k")}
	set := &Request{Op: OpSet, Epoch: 1 << 40, Map: "users", Key: []byte("alice"), Value: []byte("v"), ExpireAt: 1700000000000, Cond: 1, Flags: FlagKeepTTL}
	set.SetAck(AckPrimary)
	del := &Request{Op: OpDelete, Epoch: 3, Map: "", Key: []byte{}}
	del.SetAck(AckNone)
	rep := &Request{Op: OpReplicate, Epoch: 2, Partition: 15, Entries: []WireEntry{
		{LSN: 1, Map: "m", Key: []byte("a"), Value: []byte("1"), ExpireAt: -1, Created: 1000},
		{LSN: 2, Delete: true, Map: "m", Key: []byte("a")},
	}}
	cmd := &Request{Op: OpCommand, Epoch: 4, Flags: FlagRESP3, Map: "m", Partition: 12, Args: [][]byte{[]byte("SET"), []byte("k"), {}}}
	sc := &Request{Op: OpScatter, Epoch: 4, Map: "0", Args: [][]byte{[]byte("DBSIZE")}, Parts: []uint64{0, 5, 270}}
	begin := &Request{Op: OpSnapshotBegin, Epoch: 5, Partition: 3, Snapshot: 17, LSN: 1 << 33}
	snap := &Request{Op: OpSnapshot, Epoch: 5, Partition: 3, Snapshot: 17, Entries: []WireEntry{
		{Map: "m", Key: []byte("a"), Value: []byte("1"), ExpireAt: 1700000000000, Created: 1699999999000},
		{Map: "other", Key: []byte("b"), Value: []byte{}},
	}}
	end := &Request{Op: OpSnapshotEnd, Epoch: 5, Partition: 3, Snapshot: 17, LSN: 1 << 33}
	return []*Request{get, set, del, rep, cmd, sc, begin, snap, end}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range sampleRequests() {
		b := AppendRequest(nil, r)
		got, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", r, err)
		}
		if got.Snapshot != r.Snapshot || got.LSN != r.LSN {
			t.Fatalf("snapshot fields: got %d/%d, want %d/%d", got.Snapshot, got.LSN, r.Snapshot, r.LSN)
		}
		if got.Op != r.Op || got.Epoch != r.Epoch || got.Flags != r.Flags || got.Map != r.Map ||
			string(got.Key) != string(r.Key) || string(got.Value) != string(r.Value) || got.ExpireAt != r.ExpireAt ||
			got.Cond != r.Cond || got.Partition != r.Partition || len(got.Entries) != len(r.Entries) || got.Ack() != r.Ack() ||
			!reflect.DeepEqual(got.Parts, r.Parts) || len(got.Args) != len(r.Args) {
			t.Fatalf("round trip: got %+v, want %+v", got, r)
		}
		for i := range r.Entries {
			a, b := got.Entries[i], r.Entries[i]
			if a.LSN != b.LSN || a.Delete != b.Delete || a.Map != b.Map || string(a.Key) != string(b.Key) ||
				string(a.Value) != string(b.Value) || a.ExpireAt != b.ExpireAt || a.Created != b.Created {
				t.Fatalf("entry %d: got %+v, want %+v", i, a, b)
			}
		}
		for i := range r.Args {
			if string(got.Args[i]) != string(r.Args[i]) {
				t.Fatalf("argument %d: got %q, want %q", i, got.Args[i], r.Args[i])
			}
		}
		// Every strict prefix is refused.
		for n := range len(b) {
			if _, err := DecodeRequest(b[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("prefix of %d/%d bytes of op %d: err %v", n, len(b), r.Op, err)
			}
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	r := &Response{Status: StatusWrongEpoch, Epoch: 9, Flags: FlagFound, LSN: 300, Value: []byte("val"), Message: "epoch 9", Code: CodeOOM}
	got, err := DecodeResponse(AppendResponse(nil, r))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != r.Status || got.Epoch != r.Epoch || got.Flags != r.Flags || got.LSN != r.LSN ||
		string(got.Value) != string(r.Value) || got.Message != r.Message || got.Code != r.Code {
		t.Fatalf("got %+v, want %+v", got, r)
	}
	bad := AppendResponse(nil, r)
	bad[0] = 2
	if _, err := DecodeResponse(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("version 2 accepted: %v", err)
	}
	if _, err := DecodeResponse(append(AppendResponse(nil, r), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte accepted: %v", err)
	}
}

// FuzzDecode checks that the decoders never panic or over-allocate, and
// that whatever they accept re-encodes to a message decoding to the same
// value.
func FuzzDecode(f *testing.F) {
	for _, r := range sampleRequests() {
		f.Add(AppendRequest(nil, r))
	}
	f.Add(AppendResponse(nil, &Response{Status: StatusOK, Epoch: 1, Flags: FlagFound, Value: []byte("x")}))
	f.Add(AppendResponse(nil, &Response{Status: StatusError, Message: "boom"}))
	f.Add(AppendResponse(nil, &Response{Status: StatusRetry, Flags: FlagResync, LSN: 12, Message: "resync"}))
	f.Add([]byte{1, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeRequest(b); err == nil {
			again, err := DecodeRequest(AppendRequest(nil, r))
			if err != nil {
				t.Fatalf("re-encoded request does not decode: %v", err)
			}
			if !reflect.DeepEqual(r, again) {
				t.Fatalf("request changed on re-encoding: %+v vs %+v", r, again)
			}
		}
		if r, err := DecodeResponse(b); err == nil {
			again, err := DecodeResponse(AppendResponse(nil, r))
			if err != nil {
				t.Fatalf("re-encoded response does not decode: %v", err)
			}
			if !reflect.DeepEqual(r, again) {
				t.Fatalf("response changed on re-encoding: %+v vs %+v", r, again)
			}
		}
	})
}

// TestEntrySize checks that the batch size estimate used to bound
// snapshot messages is the encoded size.
func TestEntrySize(t *testing.T) {
	for _, r := range sampleRequests() {
		for i := range r.Entries {
			e := &r.Entries[i]
			if got, want := entrySize(e), len(appendEntry(nil, e)); got != want {
				t.Fatalf("entrySize(%+v) = %d, encoded %d bytes", e, got, want)
			}
		}
	}
}
