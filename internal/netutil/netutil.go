// Package netutil holds the one rule every node-to-node connection
// follows for its source address: a node that listens on a specific IP
// dials its peers from that IP, so its traffic carries the address the
// cluster knows it by (firewalls and multi-homed hosts see one address per
// node, and tests can cut one node off by address).
package netutil

import (
	"net"
	"time"
)

// LocalAddr returns the source address to dial target from, for a node
// listening on listen (host:port): the listen IP when it is a specific
// address of the same kind as the target's (loopback to loopback, other
// to other), else nil (let the kernel choose).
func LocalAddr(listen, target string) *net.TCPAddr {
	lh, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	lip := net.ParseIP(lh)
	if lip == nil || lip.IsUnspecified() {
		return nil
	}
	th, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil
	}
	tip := net.ParseIP(th)
	if tip == nil {
		// A DNS name: resolve it so the kinds can be compared.
		ips, err := net.LookupIP(th)
		if err != nil || len(ips) == 0 {
			return nil
		}
		tip = ips[0]
	}
	if lip.IsLoopback() != tip.IsLoopback() || (lip.To4() == nil) != (tip.To4() == nil) {
		return nil
	}
	return &net.TCPAddr{IP: lip}
}

// Dialer returns a dialer with timeout whose source address follows
// LocalAddr.
func Dialer(listen, target string, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if la := LocalAddr(listen, target); la != nil {
		d.LocalAddr = la // assigned only when non-nil: a nil *TCPAddr would make a non-nil interface
	}
	return d
}
