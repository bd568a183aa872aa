package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

var (
	secretA = []byte("cluster secret A, 0123456789abcdef")
	secretB = []byte("cluster secret B, 0123456789abcdef")
)

// handshakeOutcome is one side's result.
type handshakeOutcome struct {
	peer string
	err  error
}

// runHandshake runs both sides over an in-memory pipe.
func runHandshake(t *testing.T, dialSecret, acceptSecret []byte) (dialer, acceptor handshakeOutcome) {
	t.Helper()
	d, a := net.Pipe()
	defer d.Close()
	defer a.Close()
	done := make(chan handshakeOutcome, 1)
	go func() {
		peer, err := handshakeAccept(a, acceptSecret, "acceptor:1")
		a.Close() // As the transport does on failure; unblocks the dialer.
		done <- handshakeOutcome{peer, err}
	}()
	peer, err := handshakeDial(d, dialSecret, "dialer:2")
	d.Close()
	return handshakeOutcome{peer, err}, <-done
}

func TestHandshakeSameSecret(t *testing.T) {
	d, a := runHandshake(t, secretA, secretA)
	if d.err != nil || a.err != nil {
		t.Fatalf("dialer: %v; acceptor: %v", d.err, a.err)
	}
	if d.peer != "acceptor:1" || a.peer != "dialer:2" {
		t.Fatalf("dialer saw %q, acceptor saw %q: advertised addresses not exchanged", d.peer, a.peer)
	}
}

func TestHandshakeWrongSecret(t *testing.T) {
	d, a := runHandshake(t, secretB, secretA)
	if !errors.Is(d.err, ErrAuth) || !strings.Contains(d.err.Error(), "peer rejected the cluster secret") {
		t.Fatalf("dialer: err = %v, want a rejection of the secret", d.err)
	}
	if !errors.Is(a.err, ErrAuth) {
		t.Fatalf("acceptor: err = %v, want ErrAuth", a.err)
	}
}

// recorder keeps what a connection's owner wrote.
type recorder struct {
	net.Conn
	wrote bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote.Write(p)
	return r.Conn.Write(p)
}

func TestHandshakeReplayIsRejected(t *testing.T) {
	// Record everything a genuine dialer sends in one handshake.
	d, a := net.Pipe()
	rec := &recorder{Conn: d}
	go func(a net.Conn) {
		handshakeAccept(a, secretA, "acceptor:1")
		a.Close()
	}(a)
	if _, err := handshakeDial(rec, secretA, "dialer:2"); err != nil {
		t.Fatalf("genuine handshake: %v", err)
	}
	d.Close()
	sent := rec.wrote.Bytes()
	oldHello, oldProof := sent[:len(sent)-sha256.Size], sent[len(sent)-sha256.Size:]

	// An eavesdropper replays it to a new handshake: the acceptor's fresh
	// nonce makes the old proof worthless.
	d, a2 := net.Pipe()
	defer d.Close()
	result := make(chan error, 1)
	go func() {
		_, err := handshakeAccept(a2, secretA, "acceptor:1")
		a2.Close()
		result <- err
	}()
	if _, err := d.Write(oldHello); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readHello(d); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(oldProof); err != nil {
		t.Fatal(err)
	}
	status := make([]byte, 1)
	if _, err := io.ReadFull(d, status); err != nil || status[0] != statusBadSecret {
		t.Fatalf("acceptor answered a replayed proof with %v, %v; want the bad-secret status", status, err)
	}
	if err := <-result; !errors.Is(err, ErrAuth) {
		t.Fatalf("acceptor: err = %v, want ErrAuth", err)
	}
}

func TestHandshakeDialerChecksTheAcceptor(t *testing.T) {
	// An impostor that accepts any proof but cannot make its own.
	d, a := net.Pipe()
	defer d.Close()
	go func() {
		defer a.Close()
		if _, _, err := readHello(a); err != nil {
			return
		}
		hello, _ := newHello("impostor:1")
		a.Write(hello)
		io.ReadFull(a, make([]byte, sha256.Size))
		a.Write(append([]byte{statusOK}, make([]byte, sha256.Size)...))
	}()
	_, err := handshakeDial(d, secretA, "dialer:2")
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "could not prove") {
		t.Fatalf("err = %v, want ErrAuth: the peer could not prove the secret", err)
	}
}

func TestHandshakeVersionMismatch(t *testing.T) {
	d, a := net.Pipe()
	defer d.Close()
	result := make(chan error, 1)
	go func() {
		_, err := handshakeAccept(a, secretA, "acceptor:1")
		a.Close()
		result <- err
	}()
	// A future node's hello: the acceptor stops reading after the version.
	go d.Write(append([]byte(handshakeMagic), frameVersion+1))
	// It still answers with its own hello, so the dialer can report both.
	if _, _, err := readHello(d); err != nil {
		t.Fatalf("reading the acceptor's hello: %v", err)
	}
	err := <-result
	var ve versionError
	if !errors.As(err, &ve) || ve.got != frameVersion+1 || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want a version error", err)
	}
}

// rawPeer connects to tr and authenticates, leaving the frames to the test.
func rawPeer(t *testing.T, tr *TCP) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // a safety net
	if _, err := handshakeDial(nc, tr.opts.Secret, "raw:1"); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return nc, bufio.NewReader(nc)
}

func newTestTCP(t *testing.T, opts TCPOptions) *TCP {
	t.Helper()
	opts.Secret = secretA
	if opts.Handler == nil {
		opts.Handler = func(_ context.Context, _ string, _ uint8, req []byte) ([]byte, error) { return req, nil }
	}
	tr, err := NewTCP(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestTCPSkipsOversizedRequestAndStaysInStep(t *testing.T) {
	tr := newTestTCP(t, TCPOptions{MaxFrame: 4096})
	nc, br := rawPeer(t, tr)
	wire := appendFrame(nil, typeRequest, 5, 77, make([]byte, 4097))
	wire = appendFrame(wire, typeRequest, 6, 78, []byte("small"))
	if _, err := nc.Write(wire); err != nil {
		t.Fatal(err)
	}
	scratch := new([headerLen]byte)
	got := map[uint64]frame{}
	for range 2 {
		f, err := readFrame(br, scratch, 1<<20)
		if err != nil {
			t.Fatalf("reading replies: %v", err)
		}
		got[f.id] = f
	}
	if f := got[77]; f.typ != typeError || f.kind != 5 || len(f.payload) == 0 || f.payload[0] != errCodeTooLarge {
		t.Fatalf("reply to the oversized request = %+v, want a too-large error", f)
	}
	if f := got[78]; f.typ != typeResponse || string(f.payload) != "small" {
		t.Fatalf("reply to the next request = %+v, want its echo", f)
	}
}

func TestTCPClosesOnProtocolError(t *testing.T) {
	tr := newTestTCP(t, TCPOptions{})
	nc, br := rawPeer(t, tr)
	bad := appendFrame(nil, typeRequest, 1, 1, []byte("x"))
	bad[0] = frameVersion + 1
	if _, err := nc.Write(bad); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after a malformed frame the node should close the connection; read: %v", err)
	}
}

func TestTCPHandshakeHasADeadline(t *testing.T) {
	tr := newTestTCP(t, TCPOptions{DialTimeout: 50 * time.Millisecond})
	nc, err := net.Dial("tcp", tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // a safety net
	// Say nothing: the node must give up on us rather than wait forever.
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a node we never authenticated to: %v, want io.EOF", err)
	}
}
