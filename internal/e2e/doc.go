// Package e2e holds end-to-end tests that build the engram binary and
// drive it the way users and their tools do: redis-cli (including --pipe
// and RESP3), redis-benchmark, go-redis, passwords, protected mode and
// signals. It has no code of its own; everything is in its tests.
//
// The tests skip, saying why, when redis-cli or redis-benchmark is not
// installed; scripts/install-test-deps.sh installs them and CI always has
// them.
package e2e
