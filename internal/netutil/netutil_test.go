package netutil

import (
	"net"
	"testing"
	"time"
)

func TestLocalAddr(t *testing.T) {
	for _, tc := range []struct{ listen, target, want string }{
		{"127.0.0.2:7946", "127.0.0.3:7946", "127.0.0.2"},
		{"127.0.0.2:0", "localhost:1", "127.0.0.2"},
		{"127.0.0.2:7946", "10.0.0.1:7946", ""}, // loopback cannot reach it
		{"0.0.0.0:7946", "10.0.0.1:7946", ""},   // unspecified: the kernel chooses
		{"[::1]:7946", "127.0.0.3:1", ""},       // different families
		{"10.0.0.5:7946", "10.0.0.1:7946", "10.0.0.5"},
		{"bad", "127.0.0.1:1", ""},
	} {
		got := ""
		if a := LocalAddr(tc.listen, tc.target); a != nil {
			got = a.IP.String()
		}
		if got != tc.want {
			t.Errorf("LocalAddr(%q, %q) = %q, want %q", tc.listen, tc.target, got, tc.want)
		}
	}
}

// A connection dialled by a node listening on 127.0.0.250 comes from it.
// (Addresses no other test uses: e2e tests cut 127.0.0.2... with iptables.)
func TestDialerSourceAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.251:0")
	if err != nil {
		t.Skipf("no 127.0.0.251 here: %v", err)
	}
	defer ln.Close()
	dialed := make(chan error, 1)
	go func() {
		c, err := Dialer("127.0.0.250:7946", ln.Addr().String(), 5*time.Second).Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			time.Sleep(100 * time.Millisecond)
		}
		dialed <- err
	}()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v (dial: %v)", err, <-dialed)
	}
	defer c.Close()
	if h, _, _ := net.SplitHostPort(c.RemoteAddr().String()); h != "127.0.0.250" {
		t.Fatalf("connection came from %s, want 127.0.0.250", h)
	}
}
