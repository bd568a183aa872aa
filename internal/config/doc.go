// Package config owns a node's configuration: the Config type, its
// defaults (each with a reason), and Load, which merges defaults, a config
// file, ENGRAM_* environment variables and command-line flags, in rising
// precedence, into one validated Config.
//
// Every setting is described once, in a single table, from which the flag,
// the environment variable (ENGRAM_ + the flag name in upper snake case),
// the config-file key, the help text and the printed form all derive, so
// they cannot drift apart. Load never reads the process environment itself
// (it takes a getenv function) and never prints, so tests can run many
// configurations side by side.
//
// Secrets never leave the package in clear: Config's String, GoString,
// LogValue and MarshalJSON redact the password and any credentials in the
// store URL, and error messages do not echo the password.
//
// This package uses the standard library only and must not import any other
// Engram package: everything else depends on it, not the reverse.
package config
