package client

import (
	"errors"
	"testing"

	"github.com/engramdb/engram"
)

// serverError is a reply error as go-redis returns it (a redis.Error).
type serverError string

func (e serverError) Error() string { return string(e) }
func (serverError) RedisError()     {}

// TestMapErrorCluster checks the cluster replies a single node never
// sends, so the tests against a real node cannot provoke them on demand.
func TestMapErrorCluster(t *testing.T) {
	for _, msg := range []string{
		"TRYAGAIN this node has no partition table yet (joining the cluster)",
		"TRYAGAIN write applied on the primary but not acknowledged by every replica in time: timeout",
		"CLUSTERDOWN no contact with the control plane's leader",
	} {
		err := mapError(serverError(msg))
		if !errors.Is(err, engram.ErrUnavailable) {
			t.Errorf("mapError(%q) = %v, does not match engram.ErrUnavailable", msg, err)
		}
		if err.Error() != msg {
			t.Errorf("mapError(%q) message = %q, want the server's", msg, err.Error())
		}
	}
	if err := mapError(serverError("ERR TRYAGAIN is not a prefix here")); errors.Is(err, engram.ErrUnavailable) {
		t.Errorf("an ERR reply mentioning TRYAGAIN matched engram.ErrUnavailable")
	}
}
