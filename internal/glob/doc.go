// Package glob owns Redis-compatible glob matching, the pattern language of
// KEYS, SCAN ... MATCH, PSUBSCRIBE and friends.
//
// [Match] gives the same answer as Redis's stringmatchlen for every pattern
// and subject, quirks included, but in O(len(pattern)·len(subject)) time and
// without recursion, so a hostile pattern cannot stall a server thread.
//
// The package imports only the standard library.
package glob
