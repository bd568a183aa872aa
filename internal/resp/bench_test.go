package resp

import (
	"bytes"
	"testing"
)

// BenchmarkReadCommandSet parses a 3-argument SET with a 100-byte value, the
// shape of most write traffic.
func BenchmarkReadCommandSet(b *testing.B) {
	in := setCommand()
	r := NewReader(&loopReader{data: in}, Limits{})
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadCommandPipeline16Get parses a pipeline of 16 GETs per op, the
// way the server drains one read: while Buffered says more is ready.
func BenchmarkReadCommandPipeline16Get(b *testing.B) {
	var in []byte
	for range 16 {
		in = AppendArrayHeader(in, 2)
		in = AppendBulkString(in, "GET")
		in = AppendBulkString(in, "key:000000000001")
	}
	r := NewReader(&loopReader{data: in}, Limits{})
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		for range 16 {
			if _, err := r.ReadCommand(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReadCommandInline parses redis-cli/telnet style input.
func BenchmarkReadCommandInline(b *testing.B) {
	in := []byte("SET key:000000000001 \"hello world\"\r\n")
	r := NewReader(&loopReader{data: in}, Limits{})
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendReplies encodes a typical mix of replies into a reused
// buffer.
func BenchmarkAppendReplies(b *testing.B) {
	val := bytes.Repeat([]byte("v"), 100)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendSimple(buf[:0], "OK")
		buf = AppendBulk(buf, val)
		buf = AppendInt(buf, 1234567)
		buf = AppendNull(buf, 2)
		buf = AppendArrayHeader(buf, 2)
		buf = AppendDouble(buf, 3.25, 2)
		buf = AppendDouble(buf, 3.25, 3)
	}
}
