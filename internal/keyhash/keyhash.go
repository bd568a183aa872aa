// Package keyhash is the one hash function that places keys: the storage
// engine uses it to pick a key's partition and index slot, and the cluster
// ring uses the same function so every node agrees on where a key lives.
//
// It imports nothing of the project and must stay that way: changing the
// function changes the placement of every key in a running cluster.
package keyhash

import "github.com/cespare/xxhash/v2"

// Sum returns the 64-bit hash of key. It does not allocate.
func Sum(key []byte) uint64 { return xxhash.Sum64(key) }

// SumString is Sum for a string key, without converting it.
func SumString(key string) uint64 { return xxhash.Sum64String(key) }

// Partition maps a key hash to one of n partitions (n > 0).
func Partition(h uint64, n int) int { return int(h % uint64(n)) }
