package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []frame{
		{header: header{typ: typeRequest, kind: 7, id: 1}, payload: []byte("get k")},
		{header: header{typ: typeResponse, kind: 7, id: 1}, payload: []byte("v")},
		{header: header{typ: typeError, kind: 255, id: 1<<64 - 1}, payload: append([]byte{errCodeHandler}, "boom"...)},
		{header: header{typ: typeOneway, kind: 0, id: 0}, payload: bytes.Repeat([]byte{0xAB}, 5000)},
		{header: header{typ: typeCancel, id: 99}},
		{header: header{typ: typeResponse, id: 2}}, // empty payload arrives as nil
	}
	var wire []byte
	for _, f := range frames {
		wire = appendFrame(wire, f.typ, f.kind, f.id, f.payload)
	}
	for name, r := range map[string]io.Reader{
		"buffered":  bufio.NewReader(bytes.NewReader(wire)),
		"byte-wise": iotest.OneByteReader(bytes.NewReader(wire)),
	} {
		t.Run(name, func(t *testing.T) {
			scratch := new([headerLen]byte)
			for i, want := range frames {
				got, err := readFrame(r, scratch, 1<<20)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				want.size = uint32(len(want.payload))
				if got.header != want.header || !bytes.Equal(got.payload, want.payload) || (len(want.payload) == 0) != (got.payload == nil) {
					t.Fatalf("frame %d = %+v, want %+v", i, got, want)
				}
			}
			if _, err := readFrame(r, scratch, 1<<20); err != io.EOF {
				t.Fatalf("after the last frame: err = %v, want io.EOF", err)
			}
		})
	}
}

func TestReadFrameRejectsMalformedHeaders(t *testing.T) {
	good := appendFrame(nil, typeRequest, 1, 1, []byte("abc"))
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	for name, tc := range map[string]struct {
		wire []byte
		want any // error value, or a pointer to an error type
	}{
		"other version":       {edit(func(b []byte) { b[0] = 2 }), new(*protocolError)},
		"type zero":           {edit(func(b []byte) { b[1] = 0 }), new(*protocolError)},
		"unknown type":        {edit(func(b []byte) { b[1] = byte(lastFrameType) + 1 }), new(*protocolError)},
		"cancel with payload": {edit(func(b []byte) { b[1] = byte(typeCancel) }), new(*protocolError)},
		"error without code":  {appendFrame(nil, typeError, 1, 1, nil), new(*protocolError)},
		"empty input":         {nil, io.EOF},
		"cut in the header":   {good[:headerLen-1], io.ErrUnexpectedEOF},
		"cut in the payload":  {good[:len(good)-1], io.ErrUnexpectedEOF},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readFrame(bytes.NewReader(tc.wire), new([headerLen]byte), 1<<20)
			switch want := tc.want.(type) {
			case error:
				if err != want {
					t.Fatalf("err = %v, want %v", err, want)
				}
			case **protocolError:
				if !errors.As(err, want) {
					t.Fatalf("err = %v (%T), want a protocol error", err, err)
				}
			}
		})
	}
}

func TestReadFrameSkipsOversizedPayloads(t *testing.T) {
	const limit = 100
	wire := appendFrame(nil, typeRequest, 3, 17, make([]byte, limit+1))
	wire = appendFrame(wire, typeRequest, 4, 18, []byte("next"))
	r := bytes.NewReader(wire)
	scratch := new([headerLen]byte)
	_, err := readFrame(r, scratch, limit)
	var big *tooLargeError
	if !errors.As(err, &big) {
		t.Fatalf("err = %v, want a tooLargeError", err)
	}
	if big.id != 17 || big.kind != 3 || big.size != limit+1 || big.limit != limit {
		t.Fatalf("tooLargeError = %+v", big)
	}
	// The stream is still in step: the next frame reads normally.
	f, err := readFrame(r, scratch, limit)
	if err != nil || f.id != 18 || string(f.payload) != "next" {
		t.Fatalf("next frame = %+v, %v", f, err)
	}
}

func TestReadFrameHugeLengthDoesNotAllocate(t *testing.T) {
	// A header that declares 4 GiB, then almost nothing: the reader must
	// neither allocate for the declared size nor wait for more than the
	// input holds.
	wire := appendHeader(nil, header{typ: typeResponse, id: 1, size: MaxFrameLimit})
	wire = append(wire, "short"...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readFrame(bytes.NewReader(wire), new([headerLen]byte), DefaultMaxFrame)
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	// Generous: anything near the declared size (or even the 64 MiB
	// limit) would be far beyond it.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Fatalf("reading the frame allocated %d bytes", grew)
	}
}

// FuzzReadFrame checks the decoder on arbitrary input: it never panics;
// it fails only with io.EOF at a frame boundary, io.ErrUnexpectedEOF, a
// protocol error or an oversized frame; a payload never exceeds the
// limit; a frame re-encodes to exactly the bytes it was read from; and the
// result does not depend on how the input is split into reads.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, typeRequest, 1, 1, []byte("get user:1")))
	f.Add(appendFrame(appendFrame(nil, typeResponse, 1, 1, []byte("v")), typeCancel, 0, 2, nil))
	f.Add(appendFrame(nil, typeError, 2, 3, append([]byte{errCodeTooLarge}, "too big"...)))
	f.Add(appendFrame(nil, typeOneway, 9, 0, bytes.Repeat([]byte("x"), 65)))
	f.Add(appendHeader(nil, header{typ: typeRequest, id: 1, size: MaxFrameLimit}))
	f.Add([]byte{1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 64
		whole := bytes.NewReader(data)
		bytewise := iotest.OneByteReader(bytes.NewReader(data))
		scratchA, scratchB := new([headerLen]byte), new([headerLen]byte)
		for {
			start := len(data) - whole.Len()
			fr, err := readFrame(whole, scratchA, limit)
			fr2, err2 := readFrame(bytewise, scratchB, limit)
			if errText(err) != errText(err2) || fr.header != fr2.header || !bytes.Equal(fr.payload, fr2.payload) {
				t.Fatalf("result depends on read sizes: %+v, %v vs %+v, %v", fr, err, fr2, err2)
			}
			used := data[start : len(data)-whole.Len()]
			var big *tooLargeError
			var proto *protocolError
			switch {
			case err == nil:
				if len(fr.payload) > limit || int(fr.size) != len(fr.payload) {
					t.Fatalf("payload of %d bytes (header says %d), limit %d", len(fr.payload), fr.size, limit)
				}
				if re := appendFrame(nil, fr.typ, fr.kind, fr.id, fr.payload); !bytes.Equal(re, used) {
					t.Fatalf("frame re-encodes to %x, read from %x", re, used)
				}
				continue
			case errors.As(err, &big):
				if big.size <= limit || len(used) != headerLen+int(big.size) {
					t.Fatalf("oversized frame of %d bytes consumed %d bytes", big.size, len(used))
				}
				continue
			case err == io.EOF:
				if len(used) != 0 {
					t.Fatalf("io.EOF after consuming %d bytes of a frame", len(used))
				}
			case err == io.ErrUnexpectedEOF, errors.As(err, &proto):
			default:
				t.Fatalf("unexpected error %T: %v", err, err)
			}
			return
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
