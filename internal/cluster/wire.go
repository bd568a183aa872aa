package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire format (version 1) of the messages nodes exchange on the data plane.
// Every message travels as one transport payload of kind KindData; the
// transport frames and authenticates it. Integers use encoding/binary:
// "u8" is one byte, "u64" 8 bytes big endian, "uv" an unsigned varint,
// "sv" a signed (zigzag) varint, and "bytes" is a uv length followed by
// that many bytes.
//
// Request:
//
//	u8 version (1) | u8 op | u64 epoch | u8 flags | uv timeout ms
//	op Get:       bytes map | bytes key
//	op Set:       bytes map | bytes key | bytes value | sv expireAt | u8 cond
//	op Delete:    bytes map | bytes key
//	op Replicate: uv partition | uv count | count x entry
//	entry:        uv lsn | u8 entry flags | bytes map | bytes key | bytes value | sv expireAt | sv created
//	op SnapshotBegin: uv partition | uv snapshot | uv lsn
//	op Snapshot:      uv partition | uv snapshot | uv count | count x entry (lsn 0)
//	op SnapshotEnd:   uv partition | uv snapshot | uv lsn
//	op Command, Scatter, StepDown, Batch, PubSub: bytes map | uv partition |
//	                  uv count | count x bytes arg | uv count | count x uv partition
//
// Response:
//
//	u8 version (1) | u8 status | u64 epoch | u8 flags | uv lsn | bytes value | bytes message | u8 code
//
// Enumerations (Op, Status, Ack, flag bits) are ONLY APPEND: a value, once
// released, keeps its meaning forever. A decoder refuses a version it does
// not know, an unknown op or status, and trailing bytes.

// WireVersion is the version of the wire format this package writes.
const WireVersion = 1

// KindData is the transport message kind of every data-plane message.
const KindData uint8 = 1

// Op is a request's operation. ONLY APPEND.
type Op uint8

// Operations.
const (
	OpGet       Op = 1 // read a key (consistent or eventual)
	OpSet       Op = 2 // write a key on its primary
	OpDelete    Op = 3 // delete a key on its primary
	OpReplicate Op = 4 // primary to replica: entries of one partition in LSN order
	OpCommand   Op = 5 // a client command (argument vector) for the primary of Partition
	OpScatter   Op = 6 // a client command run over Parts, partitions the receiver leads
	// Snapshot transfer, primary to a replica (see doc.go, "Snapshots"):
	// Begin drops the replica's copy of Partition and starts snapshot
	// Snapshot (an ID) covering the log up to LSN; Snapshot carries
	// records (Entries, LSN 0); End completes it, after which the replica
	// accepts log entries after LSN.
	OpSnapshotBegin Op = 7
	OpSnapshot      Op = 8
	OpSnapshotEnd   Op = 9
	// OpInvalidate, owner to a node with a near cache: Key of Map
	// changed; drop the cached copy. Not fenced by epoch.
	OpInvalidate Op = 10
	// OpStepDown, new primary to the old one on a planned move: stop
	// serving Parts as primary; Epoch is the table that moved them.
	// Answered once done. Not fenced by epoch (the receiver may lag).
	OpStepDown Op = 11
	// OpBatch carries several OpCommand requests (each encoded in Args),
	// all for partitions the receiver leads, run in order; the response's
	// Value holds the responses of those run (it stops at the first that
	// was not OK). A client's pipeline forwarded in one round trip.
	OpBatch Op = 12
	// OpPubSub carries cluster pub/sub (pubsub.go) in Args, whose first
	// element names the message ("I" interest, "E" events, "P" publish).
	// Not fenced by epoch.
	OpPubSub Op = 13
)

// Status is a response's outcome. ONLY APPEND.
type Status uint8

// Statuses.
const (
	// StatusOK: done; for a Get, FlagFound says whether the key exists.
	StatusOK Status = 0
	// StatusWrongEpoch: the receiver's table epoch differs from the
	// request's (fencing). Retryable once the tables agree.
	StatusWrongEpoch Status = 1
	// StatusNotOwner: the receiver is not the owner the request needs.
	StatusNotOwner Status = 2
	// StatusRetry: a transient refusal (replication backlog, replicas
	// that did not acknowledge in time, node starting). Retryable.
	StatusRetry Status = 3
	// StatusError: a permanent failure, described by the message.
	StatusError Status = 4
)

// Code names the engine error behind a StatusError, so the caller can
// branch on it as on the local error (errors.Is). ONLY APPEND.
type Code uint8

// Error codes.
const (
	CodeNone          Code = 0
	CodeOOM           Code = 1 // store.ErrOOM
	CodeKeyTooLong    Code = 2 // store.ErrKeyTooLong
	CodeValueTooLarge Code = 3 // store.ErrValueTooLarge
	CodeTooManyMaps   Code = 4 // store.ErrTooManyMaps
	CodeOutOfSequence Code = 5 // store.ErrOutOfSequence
	CodeNoQuorum      Code = 6 // with StatusRetry: ErrNoQuorum (lease expired)
)

// Request flag bits. ONLY APPEND.
const (
	// FlagConsistent marks a consistent read.
	FlagConsistent uint8 = 1 << 0
	// FlagKeepTTL keeps a key's existing expiry on Set.
	FlagKeepTTL uint8 = 1 << 1
	// Bits 2 and 3 carry the Ack (see Request.Ack).
	flagAckShift = 2
	flagAckMask  = 3 << flagAckShift
	// FlagRESP3 (Command, Scatter): reply in RESP3 rather than RESP2.
	FlagRESP3 uint8 = 1 << 4
	// FlagWrite (Command, Scatter): the command changes data.
	FlagWrite uint8 = 1 << 5
	// FlagNearCache (Command): the sender will keep the reply in its near
	// cache; the owner registers it for invalidation of Args[1].
	FlagNearCache uint8 = 1 << 6
)

// Response flag bits. ONLY APPEND.
const (
	// FlagFound: Get found the key, Set wrote, Delete removed.
	FlagFound uint8 = 1 << 0
	// FlagApplied (with StatusRetry): the write was applied on the
	// primary, but its replicas did not acknowledge it in time.
	FlagApplied uint8 = 1 << 1
	// FlagResync (with StatusRetry, to Replicate or a snapshot message):
	// the replica has no complete copy of the partition from the sender,
	// or not the snapshot this message belongs to: send a new snapshot.
	FlagResync uint8 = 1 << 2
	// FlagCacheable (to a FlagNearCache command): the owner registered
	// the sender for invalidations of the key, so it may cache the reply.
	FlagCacheable uint8 = 1 << 3
)

// Entry flag bits. ONLY APPEND.
const (
	// EntryDelete marks a replicated delete.
	EntryDelete uint8 = 1 << 0
)

// Ack says when a write returns. ONLY APPEND.
type Ack uint8

// Acknowledgement levels.
const (
	// AckAll returns after every replica has applied the write (default).
	AckAll Ack = 0
	// AckPrimary returns once the primary has applied it.
	AckPrimary Ack = 1
	// AckNone returns once the write is queued (sent or applied locally),
	// without waiting for the primary's answer.
	AckNone Ack = 2
)

// String names the level.
func (a Ack) String() string {
	switch a {
	case AckAll:
		return "all"
	case AckPrimary:
		return "primary"
	case AckNone:
		return "none"
	}
	return fmt.Sprintf("ack(%d)", uint8(a))
}

// WireEntry is one replicated change.
type WireEntry struct {
	LSN      uint64 // position in the primary's log of the partition
	Delete   bool   // a delete (Value unused) rather than a write
	Map      string
	Key      []byte
	Value    []byte
	ExpireAt int64 // Unix ms; 0 = none
	Created  int64 // Unix ms
}

// Request is a decoded data-plane request.
type Request struct {
	Op        Op
	Epoch     uint64 // the sender's table epoch; the receiver refuses another
	Flags     uint8  // FlagConsistent, FlagKeepTTL, the Ack
	TimeoutMs uint64 // how long the receiver may work on it; 0 = no bound
	Map       string // Get, Set, Delete
	Key       []byte // Get, Set, Delete
	Value     []byte // Set
	ExpireAt  int64  // Set: Unix ms; 0 = none
	Cond      uint8  // Set: a store.Cond
	Partition uint64 // Replicate, Command
	Entries   []WireEntry
	Args      [][]byte // Command, Scatter: the client's argument vector
	Parts     []uint64 // Scatter: the partitions to answer for
	Snapshot  uint64   // SnapshotBegin, Snapshot, SnapshotEnd: the snapshot's ID
	LSN       uint64   // SnapshotBegin, SnapshotEnd: the log position the snapshot covers
}

// Ack returns the acknowledgement level carried in the flags.
func (r *Request) Ack() Ack { return Ack((r.Flags & flagAckMask) >> flagAckShift) }

// SetAck stores a in the flags.
func (r *Request) SetAck(a Ack) {
	r.Flags = r.Flags&^flagAckMask | uint8(a)<<flagAckShift&flagAckMask
}

// Response is a decoded data-plane response.
type Response struct {
	Status  Status
	Epoch   uint64 // the responder's table epoch
	Flags   uint8  // FlagFound, FlagApplied
	LSN     uint64 // Set/Delete: the write's LSN; Replicate: the last LSN applied
	Value   []byte // Get: the value
	Message string // why, for a status other than StatusOK
	Code    Code   // StatusError: the engine error, if known
}

// ErrMalformed means a message could not be decoded.
var ErrMalformed = errors.New("malformed cluster message")

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendRequest appends r's encoding to b.
func AppendRequest(b []byte, r *Request) []byte {
	b = append(b, WireVersion, byte(r.Op))
	b = binary.BigEndian.AppendUint64(b, r.Epoch)
	b = append(b, r.Flags)
	b = binary.AppendUvarint(b, r.TimeoutMs)
	switch r.Op {
	case OpGet, OpDelete, OpInvalidate:
		b = appendString(b, r.Map)
		b = appendBytes(b, r.Key)
	case OpSet:
		b = appendString(b, r.Map)
		b = appendBytes(b, r.Key)
		b = appendBytes(b, r.Value)
		b = binary.AppendVarint(b, r.ExpireAt)
		b = append(b, r.Cond)
	case OpCommand, OpScatter, OpStepDown, OpBatch, OpPubSub:
		b = appendString(b, r.Map)
		b = binary.AppendUvarint(b, r.Partition)
		b = binary.AppendUvarint(b, uint64(len(r.Args)))
		for _, a := range r.Args {
			b = appendBytes(b, a)
		}
		b = binary.AppendUvarint(b, uint64(len(r.Parts)))
		for _, p := range r.Parts {
			b = binary.AppendUvarint(b, p)
		}
	case OpReplicate:
		b = binary.AppendUvarint(b, r.Partition)
		b = appendEntries(b, r.Entries)
	case OpSnapshotBegin, OpSnapshotEnd:
		b = binary.AppendUvarint(b, r.Partition)
		b = binary.AppendUvarint(b, r.Snapshot)
		b = binary.AppendUvarint(b, r.LSN)
	case OpSnapshot:
		b = binary.AppendUvarint(b, r.Partition)
		b = binary.AppendUvarint(b, r.Snapshot)
		b = appendEntries(b, r.Entries)
	}
	return b
}

// appendEntries appends a count and the entries.
func appendEntries(b []byte, es []WireEntry) []byte {
	b = binary.AppendUvarint(b, uint64(len(es)))
	for i := range es {
		b = appendEntry(b, &es[i])
	}
	return b
}

func appendEntry(b []byte, e *WireEntry) []byte {
	b = binary.AppendUvarint(b, e.LSN)
	var f uint8
	if e.Delete {
		f |= EntryDelete
	}
	b = append(b, f)
	b = appendString(b, e.Map)
	b = appendBytes(b, e.Key)
	b = appendBytes(b, e.Value)
	b = binary.AppendVarint(b, e.ExpireAt)
	return binary.AppendVarint(b, e.Created)
}

// entrySize returns the bytes appendEntry writes for e.
func entrySize(e *WireEntry) int {
	return uvLen(e.LSN) + 1 + uvLen(uint64(len(e.Map))) + len(e.Map) + uvLen(uint64(len(e.Key))) + len(e.Key) +
		uvLen(uint64(len(e.Value))) + len(e.Value) + svLen(e.ExpireAt) + svLen(e.Created)
}

func uvLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

func svLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}

// AppendResponse appends r's encoding to b.
func AppendResponse(b []byte, r *Response) []byte {
	b = append(b, WireVersion, byte(r.Status))
	b = binary.BigEndian.AppendUint64(b, r.Epoch)
	b = append(b, r.Flags)
	b = binary.AppendUvarint(b, r.LSN)
	b = appendBytes(b, r.Value)
	b = appendString(b, r.Message)
	return append(b, byte(r.Code))
}

// decoder reads fields, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (d *decoder) u8(what string) uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail("short " + what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u64(what string) uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("short " + what)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uv(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) sv(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a slice of the input (not a copy).
func (d *decoder) bytes(what string) []byte {
	n := d.uv(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what + " longer than the message")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) header(what string) {
	if v := d.u8(what + " version"); d.err == nil && v != WireVersion {
		d.err = fmt.Errorf("%w: unknown %s version %d (this node speaks %d)", ErrMalformed, what, v, WireVersion)
	}
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	return d.err
}

// entries reads a count and the entries.
func (d *decoder) entries() []WireEntry {
	n := d.uv("entry count")
	// Each entry takes at least 7 bytes: bound the allocation by the
	// input so a forged count cannot make us allocate.
	if d.err == nil && n > uint64(len(d.b)/7) {
		d.fail("entry count larger than the message")
	}
	if d.err != nil {
		return nil
	}
	es := make([]WireEntry, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		e := WireEntry{LSN: d.uv("lsn")}
		f := d.u8("entry flags")
		e.Delete = f&EntryDelete != 0
		e.Map = string(d.bytes("map"))
		e.Key = d.bytes("key")
		e.Value = d.bytes("value")
		e.ExpireAt = d.sv("expiry")
		e.Created = d.sv("creation")
		es = append(es, e)
	}
	return es
}

// DecodeRequest decodes a request. Byte fields alias b.
func DecodeRequest(b []byte) (*Request, error) {
	d := decoder{b: b}
	d.header("request")
	r := &Request{Op: Op(d.u8("op")), Epoch: d.u64("epoch"), Flags: d.u8("flags"), TimeoutMs: d.uv("timeout")}
	if d.err != nil {
		return nil, d.err
	}
	switch r.Op {
	case OpGet, OpDelete, OpInvalidate:
		r.Map = string(d.bytes("map"))
		r.Key = d.bytes("key")
	case OpSet:
		r.Map = string(d.bytes("map"))
		r.Key = d.bytes("key")
		r.Value = d.bytes("value")
		r.ExpireAt = d.sv("expiry")
		r.Cond = d.u8("condition")
	case OpCommand, OpScatter, OpStepDown, OpBatch, OpPubSub:
		r.Map = string(d.bytes("map"))
		r.Partition = d.uv("partition")
		n := d.uv("argument count")
		// Each argument takes at least one byte (its length): bound the
		// allocation by the input.
		if d.err == nil && n > uint64(len(d.b)) {
			d.fail("argument count larger than the message")
		}
		if d.err == nil {
			r.Args = make([][]byte, 0, n)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			r.Args = append(r.Args, d.bytes("argument"))
		}
		n = d.uv("partition count")
		if d.err == nil && n > uint64(len(d.b)) {
			d.fail("partition count larger than the message")
		}
		if d.err == nil && n > 0 {
			r.Parts = make([]uint64, 0, n)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			r.Parts = append(r.Parts, d.uv("partition"))
		}
	case OpReplicate:
		r.Partition = d.uv("partition")
		r.Entries = d.entries()
	case OpSnapshotBegin, OpSnapshotEnd:
		r.Partition = d.uv("partition")
		r.Snapshot = d.uv("snapshot")
		r.LSN = d.uv("lsn")
	case OpSnapshot:
		r.Partition = d.uv("partition")
		r.Snapshot = d.uv("snapshot")
		r.Entries = d.entries()
	default:
		return nil, fmt.Errorf("%w: unknown op %d", ErrMalformed, r.Op)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeResponse decodes a response. Value aliases b.
func DecodeResponse(b []byte) (*Response, error) {
	d := decoder{b: b}
	d.header("response")
	r := &Response{Status: Status(d.u8("status")), Epoch: d.u64("epoch"), Flags: d.u8("flags"), LSN: d.uv("lsn")}
	r.Value = d.bytes("value")
	r.Message = string(d.bytes("message"))
	r.Code = Code(d.u8("code"))
	if err := d.end(); err != nil {
		return nil, err
	}
	if r.Status > StatusError {
		return nil, fmt.Errorf("%w: unknown status %d", ErrMalformed, r.Status)
	}
	return r, nil
}
