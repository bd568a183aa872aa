package backing_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/backing/backingtest"
	"github.com/engramdb/engram/internal/backing/s3test"
)

var prefixSeq atomic.Int64

// uniquePrefix gives each store of a test its own empty corner of the bucket.
func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("t%d/%s", prefixSeq.Add(1), "p")
}

func TestS3Conformance(t *testing.T) {
	srv := s3test.New(t)
	backingtest.Run(t, func(t *testing.T) backing.Store { return srv.Open(t, uniquePrefix(t)) })
}
