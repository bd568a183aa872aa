// Package memnet is an in-memory network for transport.Transport, so
// cluster tests run many nodes in one process, without sockets, and inject
// the faults a real network has: partitions and their healing, isolated
// nodes, lost and delayed messages, crashes and restarts, and a hook to
// drop chosen messages. Every random choice derives from the seed given to
// NewNetwork, per link and message number, so a failing test replays with
// the seed it logged (given the same order of messages on each link).
//
// It behaves like TCP where callers can tell: payloads are copied (a
// sender may reuse its buffer, a receiver owns what it gets), handler
// errors arrive as *transport.RemoteError text, the same frame limit
// applies, a cancelled Call cancels its handler's context, and a broken
// link fails waiting Calls at once with transport.ErrUnreachable. Unlike
// TCP, a panicking handler is not recovered: in a test, a loud crash with
// its stack is what one wants.
//
// It lives outside the test tree, as memberlist's MockNetwork does, so any
// package's tests can use it. It imports only package transport.
package memnet
