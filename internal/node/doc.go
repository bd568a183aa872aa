// Package node is the composition root of one Engram node: it builds the
// storage engine, the Redis-protocol server, the HTTP API and metrics from
// a config.Config, starts their listeners, and stops them in order. It
// holds no logic of its own beyond wiring and the protected-mode check.
package node
