package transport

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The handshake proves to each side that the other holds the cluster
// secret without revealing it: each side sends a fresh random nonce, then
// each returns an HMAC-SHA256, under the secret, of both hellos. Fresh
// nonces from both sides make a recorded proof useless later (no replay);
// distinct labels for the two roles stop a proof being reflected back to
// the side that sent it. The hellos also carry the advertised addresses,
// so those are bound by the proofs too.

// handshakeMagic opens every hello, so a node that reached the wrong port
// (or a stray client that reached ours) is told so before anything else.
const handshakeMagic = "ENGRAMDT"

// nonceLen is the size of each side's random nonce.
const nonceLen = 32

// maxAddrLen bounds an advertised address; its length travels in one byte.
const maxAddrLen = 255

// MinSecretLen is the shortest cluster secret accepted: 16 bytes (128
// bits) keeps the HMAC proofs beyond guessing.
const MinSecretLen = 16

// Handshake statuses, sent by the acceptor after it checks the dialer's
// proof. ONLY APPEND TO THIS LIST: the values are on the wire.
const (
	statusOK        byte = 0
	statusBadSecret byte = 1
)

// Labels for the two proofs; different, so neither can stand for the other.
const (
	dialerLabel   = "engram transport v1 dialer proof\x00"
	acceptorLabel = "engram transport v1 acceptor proof\x00"
)

// errRejectedSecret is what the dialing side sees when the peer refuses
// its proof: the message an operator needs to fix the configuration.
var errRejectedSecret = fmt.Errorf("peer rejected the cluster secret (%w)", ErrAuth)

// errBadPeerProof is what the dialing side sees when the peer accepted
// its proof but could not prove the secret itself.
var errBadPeerProof = fmt.Errorf("peer could not prove the cluster secret (%w)", ErrAuth)

// errBadDialerProof is what the accepting side sees from a dialer with
// another secret.
var errBadDialerProof = fmt.Errorf("dialer presented a proof of another cluster secret (%w)", ErrAuth)

// appendHello appends a hello: magic, version, nonce, address.
func appendHello(b []byte, nonce []byte, addr string) []byte {
	b = append(b, handshakeMagic...)
	b = append(b, frameVersion)
	b = append(b, nonce...)
	b = append(b, byte(len(addr)))
	return append(b, addr...)
}

// versionError is a hello of another protocol version. The accepting
// side still sends its own hello, so the dialer can report both versions.
type versionError struct{ got byte }

func (e versionError) Error() string {
	return fmt.Sprintf("peer speaks transport protocol version %d, this node speaks %d", e.got, frameVersion)
}

// Unwrap makes a version mismatch an ErrUnreachable: to the cluster, a node
// it cannot talk to (say, mid-upgrade) is as good as unreachable.
func (e versionError) Unwrap() error { return ErrUnreachable }

// readHello reads a hello and returns its raw bytes (for the proofs) and
// the address it carries. Magic and version are checked before the rest is
// read, because another version's hello may be laid out differently.
func readHello(r io.Reader) (raw []byte, addr string, err error) {
	const fixedLen = len(handshakeMagic) + 1 + nonceLen + 1
	raw = make([]byte, fixedLen, fixedLen+maxAddrLen)
	head := raw[:len(handshakeMagic)+1]
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, "", fmt.Errorf("cannot read hello: %w", unexpected(err))
	}
	if !bytes.Equal(head[:len(handshakeMagic)], []byte(handshakeMagic)) {
		return nil, "", fmt.Errorf("peer does not speak the engram node transport (wrong port?): %w", ErrUnreachable)
	}
	if v := head[len(handshakeMagic)]; v != frameVersion {
		return nil, "", versionError{got: v}
	}
	if _, err := io.ReadFull(r, raw[len(head):]); err != nil {
		return nil, "", fmt.Errorf("cannot read hello: %w", unexpected(err))
	}
	n := int(raw[fixedLen-1])
	raw = raw[:fixedLen+n]
	if _, err := io.ReadFull(r, raw[fixedLen:]); err != nil {
		return nil, "", fmt.Errorf("cannot read hello: %w", unexpected(err))
	}
	return raw, string(raw[fixedLen:]), nil
}

// proof is the HMAC of both hellos under the secret, labelled by role.
func proof(secret []byte, label string, helloD, helloA []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write(helloD)
	m.Write(helloA)
	return m.Sum(nil)
}

// newHello makes this side's hello with a fresh nonce.
func newHello(self string) ([]byte, error) {
	if len(self) > maxAddrLen {
		return nil, fmt.Errorf("advertised address %q is longer than %d bytes", self, maxAddrLen)
	}
	nonce := make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("cannot make a nonce: %w", err)
	}
	return appendHello(nil, nonce, self), nil
}

// handshakeDial runs the dialing side of the handshake on rw, which the
// caller has given a deadline. self is this node's advertised address; it
// returns the peer's.
func handshakeDial(rw io.ReadWriter, secret []byte, self string) (string, error) {
	helloD, err := newHello(self)
	if err != nil {
		return "", err
	}
	if _, err := rw.Write(helloD); err != nil {
		return "", fmt.Errorf("cannot send hello: %w", err)
	}
	helloA, peer, err := readHello(rw)
	if err != nil {
		return "", err
	}
	if _, err := rw.Write(proof(secret, dialerLabel, helloD, helloA)); err != nil {
		return "", fmt.Errorf("cannot send proof: %w", err)
	}
	reply := make([]byte, 1+sha256.Size)
	if _, err := io.ReadFull(rw, reply[:1]); err != nil {
		return "", fmt.Errorf("cannot read handshake status: %w", unexpected(err))
	}
	switch reply[0] {
	case statusOK:
	case statusBadSecret:
		return "", errRejectedSecret
	default:
		return "", fmt.Errorf("unknown handshake status %d: %w", reply[0], ErrUnreachable)
	}
	if _, err := io.ReadFull(rw, reply[1:]); err != nil {
		return "", fmt.Errorf("cannot read peer's proof: %w", unexpected(err))
	}
	if !hmac.Equal(reply[1:], proof(secret, acceptorLabel, helloD, helloA)) {
		return "", errBadPeerProof
	}
	return peer, nil
}

// handshakeAccept runs the accepting side of the handshake on rw, which
// the caller has given a deadline. It returns the dialer's advertised
// address. A dialer with another secret is told so and refused before any
// frame is read.
func handshakeAccept(rw io.ReadWriter, secret []byte, self string) (string, error) {
	helloD, peer, err := readHello(rw)
	if err != nil {
		var ve versionError
		if !errors.As(err, &ve) {
			return "", err
		}
	}
	helloA, err2 := newHello(self)
	if err2 != nil {
		return "", err2
	}
	if _, err2 := rw.Write(helloA); err2 != nil {
		return "", fmt.Errorf("cannot send hello: %w", err2)
	}
	if err != nil {
		return "", err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(rw, got); err != nil {
		return "", fmt.Errorf("cannot read dialer's proof: %w", unexpected(err))
	}
	if !hmac.Equal(got, proof(secret, dialerLabel, helloD, helloA)) {
		// Best effort: the dialer learns why, the connection closes anyway.
		rw.Write([]byte{statusBadSecret})
		return "", errBadDialerProof
	}
	reply := append([]byte{statusOK}, proof(secret, acceptorLabel, helloD, helloA)...)
	if _, err := rw.Write(reply); err != nil {
		return "", fmt.Errorf("cannot send proof: %w", err)
	}
	return peer, nil
}

// Authenticate runs the cluster-secret handshake on nc for another
// protocol that shares the cluster's trust (the control plane's Raft
// connections): dialer is true on the side that connected, self is this
// node's address. The handshake gets timeout; the connection's deadline is
// cleared afterwards. On failure the caller closes nc.
func Authenticate(nc net.Conn, secret []byte, self string, dialer bool, timeout time.Duration) (peer string, err error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("cluster secret shorter than %d bytes", MinSecretLen)
	}
	nc.SetDeadline(time.Now().Add(timeout))
	defer nc.SetDeadline(time.Time{})
	if dialer {
		return handshakeDial(nc, secret, self)
	}
	return handshakeAccept(nc, secret, self)
}
