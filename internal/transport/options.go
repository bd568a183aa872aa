package transport

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// TCPOptions configures NewTCP. The zero value of every field but Handler
// and Secret has a default; see EnsureDefaults.
type TCPOptions struct {
	// ListenAddr is the address to listen on. Default "127.0.0.1:0":
	// loopback, as everything in Engram, until the operator chooses
	// otherwise; port 0 picks a free port, read back with Addr.
	ListenAddr string
	// AdvertiseAddr is the address peers dial to reach this node and the
	// one it presents to them. Default: the listener's address, which is
	// right unless ListenAddr is a wildcard (0.0.0.0) or behind NAT.
	AdvertiseAddr string
	// Handler serves requests from peers. Required: a node that serves
	// nothing passes a Handler that returns an error.
	Handler Handler
	// Secret is the shared cluster secret; peers prove they hold it when
	// connecting. Required, at least MinSecretLen bytes.
	Secret []byte
	// TLS, if set, wraps every connection in both directions, so it needs
	// a certificate (for accepting) and roots that trust the peers (for
	// dialing); one config serves both. An empty ServerName is set to the
	// dialed host. The secret handshake still runs inside TLS: TLS says
	// the peer is who it claims, the secret says it is in this cluster.
	TLS *tls.Config
	// MaxFrame bounds one message's payload, so a peer's length field
	// cannot make this node allocate without bound. Default
	// DefaultMaxFrame (64 MiB); at least 4 KiB so error messages fit.
	MaxFrame int
	// DialTimeout bounds connecting to a peer, TLS and secret handshake
	// included, in both directions. Default 5s: a peer that cannot
	// complete a handshake in that time is unreachable for any practical
	// purpose, and a stalled inbound handshake must not hold its slot long.
	DialTimeout time.Duration
	// ConnsPerPeer is how many connections to keep to each peer. Default
	// 2: one connection already carries many requests at once, but a large
	// frame (a migration chunk) holds up everything behind it on its
	// connection, so a second keeps small requests moving; more cost file
	// descriptors and goroutines for little gain.
	ConnsPerPeer int
	// MaxInFlight bounds the requests one connection runs at once. Beyond
	// it the connection stops reading, which pushes back on the peer
	// through TCP flow control, so a peer cannot make this node spawn
	// goroutines without bound. Default 1024.
	MaxInFlight int
	// WriteTimeout bounds one write to a peer. Default 30s: a peer that
	// takes no byte for that long is gone (a host that vanished without a
	// reset) or hopelessly overloaded; without a bound its connection
	// would hold queued frames until TCP keepalive gave up.
	WriteTimeout time.Duration
	// Logger receives connection events: refused peers at Warn, broken
	// connections at Debug. Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults returns o with every zero field set to its default.
func (o TCPOptions) EnsureDefaults() TCPOptions {
	if o.ListenAddr == "" {
		o.ListenAddr = "127.0.0.1:0"
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ConnsPerPeer == 0 {
		o.ConnsPerPeer = 2
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 1024
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// minMaxFrame is the smallest MaxFrame accepted: error frames carry up to
// maxErrorMsg bytes of text and must fit in any peer's limit.
const minMaxFrame = 4096

// maxErrorMsg bounds the error text sent back for a failed request.
const maxErrorMsg = 1024

// Validate reports the first setting that is missing or out of range.
func (o TCPOptions) Validate() error {
	switch {
	case o.Handler == nil:
		return fmt.Errorf("a handler is required")
	case len(o.Secret) < MinSecretLen:
		return fmt.Errorf("the cluster secret must be at least %d bytes, got %d", MinSecretLen, len(o.Secret))
	case o.MaxFrame < minMaxFrame || uint64(o.MaxFrame) > MaxFrameLimit:
		return fmt.Errorf("max frame must be between %d and %d bytes, got %d", minMaxFrame, uint64(MaxFrameLimit), o.MaxFrame)
	case o.DialTimeout < 0:
		return fmt.Errorf("dial timeout must not be negative, got %v", o.DialTimeout)
	case o.ConnsPerPeer < 1 || o.ConnsPerPeer > 64:
		return fmt.Errorf("connections per peer must be between 1 and 64, got %d", o.ConnsPerPeer)
	case o.MaxInFlight < 1:
		return fmt.Errorf("max in-flight requests must be positive, got %d", o.MaxInFlight)
	case o.WriteTimeout < 0:
		return fmt.Errorf("write timeout must not be negative, got %v", o.WriteTimeout)
	case len(o.AdvertiseAddr) > maxAddrLen:
		return fmt.Errorf("advertised address must be at most %d bytes, got %d", maxAddrLen, len(o.AdvertiseAddr))
	}
	return nil
}
