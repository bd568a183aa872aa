// Package server is the Redis-protocol (RESP2/RESP3) front end of a node:
// it accepts connections, enforces the protocol and client limits, checks
// AUTH, and maps each command onto the storage engine. It is the only
// package that writes Redis replies for data commands; one table
// (errors.go) maps engine errors to Redis error prefixes.
//
// It depends on internal/resp (codec), internal/store (data) and
// internal/glob; nothing under internal/ depends on it but the node.
package server
