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

// A connection dialled by a node listening on 127.0.0.2 comes from it.
func TestDialerSourceAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Skipf("no 127.0.0.3 here: %v", err)
	}
	defer ln.Close()
	go func() {
		c, err := Dialer("127.0.0.2:7946", ln.Addr().String(), time.Second).Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, _, _ := net.SplitHostPort(c.RemoteAddr().String()); h != "127.0.0.2" {
		t.Fatalf("connection came from %s, want 127.0.0.2", h)
	}
}
