package transport_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/transport"
)

// Behaviour specific to TCP: authentication, TLS, limits between peers
// configured differently, and options.

func TestTCPWrongSecretIsRejected(t *testing.T) {
	var logs syncBuffer
	var served atomic.Int64
	server := startTCP(t, transport.TCPOptions{
		Secret: []byte("the right secret, 32 bytes long!"),
		Handler: func(context.Context, string, uint8, []byte) ([]byte, error) {
			served.Add(1)
			return nil, nil
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	client := startTCP(t, transport.TCPOptions{Secret: []byte("a wrong secret, also 32 bytes..."), Handler: refuse})
	ctx := withTimeout(t, patience)
	_, err := client.Call(ctx, server.Addr(), 0, []byte("let me in"))
	if !errors.Is(err, transport.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if !strings.Contains(err.Error(), "peer rejected the cluster secret") {
		t.Fatalf("error %q does not say the peer rejected the secret", err)
	}
	if err := client.Send(ctx, server.Addr(), 0, []byte("let me in")); !errors.Is(err, transport.ErrAuth) {
		t.Fatalf("Send: err = %v, want ErrAuth", err)
	}
	waitFor(t, "the server to log the refusal", func() bool { return strings.Contains(logs.String(), "refused a connection") })
	if n := served.Load(); n != 0 {
		t.Fatalf("the handler served %d requests from a peer with the wrong secret", n)
	}

	// The same server still serves peers that hold the secret.
	friend := startTCP(t, transport.TCPOptions{Secret: []byte("the right secret, 32 bytes long!"), Handler: refuse})
	if _, err := friend.Call(ctx, server.Addr(), 0, nil); err != nil {
		t.Fatalf("call with the right secret: %v", err)
	}
}

func TestTCPNotAPeer(t *testing.T) {
	// Something that is not an Engram node: it answers with HTTP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	client := startTCP(t, transport.TCPOptions{Handler: refuse})
	_, err = client.Call(withTimeout(t, patience), ln.Addr().String(), 0, nil)
	if !errors.Is(err, transport.ErrUnreachable) || !strings.Contains(err.Error(), "wrong port") {
		t.Fatalf("err = %v, want ErrUnreachable saying the peer is not a node", err)
	}
}

func TestTCPTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	server := startTCP(t, transport.TCPOptions{TLS: cfg, Handler: echo})
	client := startTCP(t, transport.TCPOptions{TLS: cfg, Handler: refuse})
	ctx := withTimeout(t, patience)
	resp, err := client.Call(ctx, server.Addr(), 0, []byte("over tls"))
	if err != nil || string(resp) != "over tls" {
		t.Fatalf("Call over TLS = %q, %v", resp, err)
	}

	// A node without TLS cannot talk to one with it.
	plain := startTCP(t, transport.TCPOptions{Handler: refuse})
	if _, err := plain.Call(ctx, server.Addr(), 0, nil); err == nil {
		t.Fatal("a plain-TCP node reached a TLS node")
	}
	// A node that does not trust the server's certificate refuses it.
	otherCert, otherPool := selfSigned(t)
	stranger := startTCP(t, transport.TCPOptions{Handler: refuse, TLS: &tls.Config{
		Certificates: []tls.Certificate{otherCert}, RootCAs: otherPool, MinVersion: tls.VersionTLS13,
	}})
	if _, err := stranger.Call(ctx, server.Addr(), 0, nil); !errors.Is(err, transport.ErrAuth) {
		t.Fatalf("untrusted certificate: err = %v, want ErrAuth", err)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "engram test node"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestTCPPeerWithSmallerFrameLimit(t *testing.T) {
	// The server takes at most 64 KiB; the client would send up to 1 MiB.
	server := startTCP(t, transport.TCPOptions{MaxFrame: 64 << 10, Handler: func(_ context.Context, _ string, kind uint8, req []byte) ([]byte, error) {
		if kind == 1 {
			return make([]byte, 100<<10), nil // Over the server's own limit.
		}
		return req, nil
	}})
	client := startTCP(t, transport.TCPOptions{MaxFrame: 1 << 20, ConnsPerPeer: 1, Handler: refuse})
	ctx := withTimeout(t, patience)
	_, err := client.Call(ctx, server.Addr(), 0, make([]byte, 100<<10))
	if !errors.Is(err, transport.ErrTooLarge) || !strings.Contains(err.Error(), "receiver's 65536-byte frame limit") {
		t.Fatalf("err = %v, want ErrTooLarge naming the receiver's limit", err)
	}
	_, err = client.Call(ctx, server.Addr(), 1, nil)
	if !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("oversized response: err = %v, want ErrTooLarge", err)
	}
	if resp, err := client.Call(ctx, server.Addr(), 0, []byte("ok")); err != nil || string(resp) != "ok" {
		t.Fatalf("call after oversized ones = %q, %v", resp, err)
	}
	// The other way round: a 100 KiB response to a client that takes 64 KiB.
	small := startTCP(t, transport.TCPOptions{MaxFrame: 64 << 10, Handler: refuse})
	big := startTCP(t, transport.TCPOptions{MaxFrame: 1 << 20, Handler: func(context.Context, string, uint8, []byte) ([]byte, error) {
		return make([]byte, 100<<10), nil
	}})
	_, err = small.Call(ctx, big.Addr(), 0, nil)
	if !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("response over the caller's limit: err = %v, want ErrTooLarge", err)
	}
}

func TestTCPBoundsInFlightHandlers(t *testing.T) {
	const limit, calls = 4, 12
	var running, peak, started atomic.Int64
	release := make(chan struct{})
	server := startTCP(t, transport.TCPOptions{MaxInFlight: limit, Handler: func(context.Context, string, uint8, []byte) ([]byte, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started.Add(1)
		<-release
		running.Add(-1)
		return []byte("done"), nil
	}})
	client := startTCP(t, transport.TCPOptions{ConnsPerPeer: 1, Handler: refuse})
	ctx := withTimeout(t, patience)
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			if _, err := client.Call(ctx, server.Addr(), 0, nil); err != nil {
				errs <- err
			}
		})
	}
	waitFor(t, "the first handlers to start", func() bool { return started.Load() >= limit })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("call: %v", err)
	}
	if p := peak.Load(); p > limit {
		t.Fatalf("%d handlers ran at once on one connection, limit %d", p, limit)
	}
	if n := started.Load(); n != calls {
		t.Fatalf("%d of %d requests were served", n, calls)
	}
}

func TestTCPHandlerPanic(t *testing.T) {
	server := startTCP(t, transport.TCPOptions{Handler: func(_ context.Context, _ string, kind uint8, req []byte) ([]byte, error) {
		if kind == 1 {
			panic("BUG: broken invariant")
		}
		return req, nil
	}})
	client := startTCP(t, transport.TCPOptions{Handler: refuse})
	ctx := withTimeout(t, patience)
	var re *transport.RemoteError
	if _, err := client.Call(ctx, server.Addr(), 1, nil); !errors.As(err, &re) || !strings.Contains(re.Msg, "panicked") {
		t.Fatalf("err = %v, want a RemoteError saying the handler panicked", err)
	}
	if resp, err := client.Call(ctx, server.Addr(), 0, []byte("alive")); err != nil || string(resp) != "alive" {
		t.Fatalf("call after a panic = %q, %v", resp, err)
	}
}

func TestTCPOptionsValidate(t *testing.T) {
	ok := transport.TCPOptions{Handler: echo, Secret: testSecret}
	for _, tc := range []struct {
		name   string
		change func(*transport.TCPOptions)
		want   string
	}{
		{"no handler", func(o *transport.TCPOptions) { o.Handler = nil }, "handler is required"},
		{"no secret", func(o *transport.TCPOptions) { o.Secret = nil }, "at least 16 bytes, got 0"},
		{"short secret", func(o *transport.TCPOptions) { o.Secret = []byte("short") }, "at least 16 bytes, got 5"},
		{"tiny frame", func(o *transport.TCPOptions) { o.MaxFrame = 100 }, "max frame"},
		{"too many conns", func(o *transport.TCPOptions) { o.ConnsPerPeer = 1000 }, "connections per peer"},
		{"negative in-flight", func(o *transport.TCPOptions) { o.MaxInFlight = -1 }, "in-flight"},
		{"negative write timeout", func(o *transport.TCPOptions) { o.WriteTimeout = -time.Second }, "write timeout"},
		{"bad listen address", func(o *transport.TCPOptions) { o.ListenAddr = "127.0.0.1:http-nope" }, "cannot start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.change(&o)
			tr, err := transport.NewTCP(o)
			if err == nil {
				tr.Close()
				t.Fatal("NewTCP accepted bad options")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.want)
			}
		})
	}
	tr, err := transport.NewTCP(ok)
	if err != nil {
		t.Fatalf("NewTCP with good options: %v", err)
	}
	defer tr.Close()
	if host, _, _ := net.SplitHostPort(tr.Addr()); host != "127.0.0.1" {
		t.Fatalf("default listen address %s is not loopback", tr.Addr())
	}
}

func TestTCPAdvertiseAddr(t *testing.T) {
	var from atomic.Value
	server := startTCP(t, transport.TCPOptions{Handler: func(_ context.Context, f string, _ uint8, _ []byte) ([]byte, error) {
		from.Store(f)
		return nil, nil
	}})
	client := startTCP(t, transport.TCPOptions{AdvertiseAddr: "node-7.engram.internal:7946", Handler: refuse})
	if client.Addr() != "node-7.engram.internal:7946" {
		t.Fatalf("Addr() = %s, want the advertised address", client.Addr())
	}
	if _, err := client.Call(withTimeout(t, patience), server.Addr(), 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := from.Load(); got != "node-7.engram.internal:7946" {
		t.Fatalf("handler saw from = %v, want the caller's advertised address", got)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
