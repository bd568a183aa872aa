package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// frameVersion is the first byte of every frame. A node refuses frames of
// another version rather than guess at their layout; the handshake checks
// the version first, so a mismatch is reported when connecting.
const frameVersion = 1

// headerLen is the size of a frame header: version, type, kind, request id
// (8), payload length (4).
const headerLen = 1 + 1 + 1 + 8 + 4

// frameType says what a frame carries.
type frameType uint8

// Frame types. ONLY APPEND TO THIS LIST: the values are on the wire.
const (
	// typeRequest asks for a response with the same request id.
	typeRequest frameType = 1
	// typeResponse carries a handler's response.
	typeResponse frameType = 2
	// typeError carries a failure instead of a response: an error code
	// byte, then the message text.
	typeError frameType = 3
	// typeOneway is a request whose response is not wanted (Send).
	typeOneway frameType = 4
	// typeCancel says the caller gave up on the request with this id, so
	// the handler's context can be cancelled; it has no payload.
	typeCancel frameType = 5

	lastFrameType = typeCancel
)

// Error codes: the first payload byte of a typeError frame. ONLY APPEND TO
// THIS LIST: the values are on the wire. A receiver treats an unknown code
// as a handler error, so new codes degrade to a *RemoteError.
const (
	// errCodeHandler: the handler returned an error.
	errCodeHandler byte = 1
	// errCodeTooLarge: the request or the response exceeded a frame limit.
	errCodeTooLarge byte = 2
)

// header is a decoded frame header.
type header struct {
	typ  frameType
	kind uint8
	id   uint64
	size uint32
}

// frame is a decoded frame. The payload is a fresh buffer the receiver
// owns; a zero-length payload is nil.
type frame struct {
	header
	payload []byte
}

// protocolError is a malformed frame: the stream cannot be trusted after
// it, so the connection is closed.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "transport protocol error: " + e.msg }

// tooLargeError is a frame whose declared payload exceeds the receiver's
// limit. readFrame has already skipped the payload without buffering it, so
// the stream is still in step and the receiver can answer with an error.
type tooLargeError struct {
	header
	limit int
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the %d-byte limit", e.size, e.limit)
}

// appendHeader appends h's wire form to b.
func appendHeader(b []byte, h header) []byte {
	b = append(b, frameVersion, byte(h.typ), h.kind)
	b = binary.BigEndian.AppendUint64(b, h.id)
	return binary.BigEndian.AppendUint32(b, h.size)
}

// appendFrame appends a whole frame to b. The caller has checked that
// payload fits in 32 bits.
func appendFrame(b []byte, typ frameType, kind uint8, id uint64, payload []byte) []byte {
	b = appendHeader(b, header{typ: typ, kind: kind, id: id, size: uint32(len(payload))})
	return append(b, payload...)
}

// parseHeader decodes and checks a frame header.
func parseHeader(b *[headerLen]byte) (header, error) {
	if b[0] != frameVersion {
		return header{}, &protocolError{fmt.Sprintf("frame version %d, want %d", b[0], frameVersion)}
	}
	h := header{
		typ:  frameType(b[1]),
		kind: b[2],
		id:   binary.BigEndian.Uint64(b[3:11]),
		size: binary.BigEndian.Uint32(b[11:15]),
	}
	if h.typ == 0 || h.typ > lastFrameType {
		return header{}, &protocolError{fmt.Sprintf("unknown frame type %d", h.typ)}
	}
	if h.typ == typeCancel && h.size != 0 {
		return header{}, &protocolError{fmt.Sprintf("cancel frame with a %d-byte payload", h.size)}
	}
	if h.typ == typeError && h.size == 0 {
		return header{}, &protocolError{"error frame without an error code"}
	}
	return h, nil
}

// readFrame reads one frame from r, using scratch for the header so the
// read path does not allocate for it. The payload is allocated only after
// its length is checked against maxFrame; a longer payload is skipped in
// bounded memory and reported as a *tooLargeError. It returns io.EOF only
// at a frame boundary, io.ErrUnexpectedEOF inside a frame, a
// *protocolError for a malformed header, or r's error.
func readFrame(r io.Reader, scratch *[headerLen]byte, maxFrame int) (frame, error) {
	if _, err := io.ReadFull(r, scratch[:]); err != nil {
		return frame{}, err
	}
	h, err := parseHeader(scratch)
	if err != nil {
		return frame{}, err
	}
	if uint64(h.size) > uint64(maxFrame) {
		if _, err := io.CopyN(io.Discard, r, int64(h.size)); err != nil {
			return frame{}, unexpected(err)
		}
		return frame{}, &tooLargeError{header: h, limit: maxFrame}
	}
	f := frame{header: h}
	if h.size > 0 {
		f.payload = make([]byte, h.size)
		if _, err := io.ReadFull(r, f.payload); err != nil {
			return frame{}, unexpected(err)
		}
	}
	return f, nil
}

// unexpected turns a clean end of input inside a frame into
// io.ErrUnexpectedEOF: the peer stopped mid-message.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeError turns a typeError payload into the error a caller sees.
func decodeError(addr string, payload []byte) error {
	code, msg := payload[0], string(payload[1:])
	if code == errCodeTooLarge {
		return fmt.Errorf("call to %s: %s: %w", addr, msg, ErrTooLarge)
	}
	return &RemoteError{Msg: msg}
}
