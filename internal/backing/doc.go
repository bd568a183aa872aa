// Package backing is the permanent store behind the cache (issue 4): the
// Store interface, Open for a --store URL, the local directory store (Dir),
// the S3 store (S3, for Amazon S3 and S3-compatible servers), an
// in-memory store for tests (Mem) and a counting wrapper (Counting).
// docs/backing.md describes the URLs, options and policies for operators.
//
// # Contract
//
// A Store holds values under (map, key). Map names and keys are arbitrary
// bytes (a map name is a Go string, a key a []byte): empty, NUL, '/', "..",
// invalid UTF-8 and keys of many KiB are all fine. Values are arbitrary
// bytes of any length, 0 included; a stored empty value is found (found =
// true), which is different from a missing key.
//
// Every method is safe for concurrent use. Operations on different keys are
// independent; concurrent writes of one key leave one of the written values
// (each complete), in no promised order: a caller that needs an order for a
// key (the write-behind queue) issues that key's operations one at a time.
// Store and Delete are idempotent, so a failed call or batch may simply be
// retried. Slices passed in are not retained after a call returns; values
// returned belong to the caller.
//
// A missing key is not an error: Load returns found = false and Delete
// returns nil. Every other failure is an *Error whose Kind is one of the
// sentinels (ErrUnavailable, ErrCorrupt, ErrInvalid, ErrClosed,
// ErrUnsupported, ErrMisconfigured), so callers test with errors.Is: only
// ErrUnavailable promises that retrying later may work, and
// ErrMisconfigured says an operator must act first; a cancelled context
// comes back as an *Error wrapping ctx.Err(). Error texts name the
// operation and the map but never credentials.
//
// # The directory store
//
// Dir (file:///path) keeps one file per key:
//
//	<root>/<escape(map)>/<escape(key)>              the raw value
//	<root>/<escape(map)>/.long/<h[:2]>/<h>          keys whose escaped name is
//	                                                too long: h = hex SHA-256 of
//	                                                the key; the file holds
//	                                                "EGK1", uvarint(len(key)),
//	                                                key, value
//	<root>/.long/<hex SHA-256 of map>/...           maps whose escaped name is
//	                                                too long (same layout inside)
//	.tmp-<store token>-<random>                     a write in progress
//
// escape keeps a-z, 0-9, '-', '_' and '.' (except a leading '.') and writes
// every other byte as '%' and two lower-case hex digits; the empty string is
// "%". Escaped names therefore never contain '/', never equal "." or "..",
// never start with '.' (names starting with '.' belong to the store), and
// are all lower case, so they stay distinct on case-insensitive file
// systems (macOS). A name longer than MaxNameLen (200 bytes, under the
// 255-byte limit of ext4, XFS, btrfs and APFS) is replaced by the hash;
// Load checks the key in the file, a delete does not (SHA-256 collisions
// are not handled). Windows' reserved names (con, nul, ...) are not
// escaped: the store targets Linux and macOS.
//
// Writes are atomic: the value goes to a temporary file in the target
// directory, which is fsynced, closed and renamed over the key's file, and
// then the directory is fsynced (once per directory for a batch); a new
// directory is fsynced into its parent. A delete removes the file and
// fsyncs the directory. So a call that returned nil survives a power loss,
// and a crash at any moment leaves each key with its old or its new
// complete value, never a torn one. DirOptions.NoSync (URL ?fsync=false)
// skips every fsync: still atomic against a process crash, not against a
// power loss. (On macOS, fsync does not flush the drive's cache.)
//
// Temporary files carry a token chosen when the store is opened; List
// ignores every name starting with '.' and removes temporary files of other
// tokens, which are left over from a crashed process. One process at a time
// may use a directory.
//
// List reads the map's whole directory for each page and returns keys in
// ascending byte order after the cursor (the escaped last key of the
// previous page), so a key present during a whole listing is returned
// exactly once, whatever else changes meanwhile.
//
// # The S3 store
//
// S3 (s3://BUCKET/PREFIX?endpoint=&region=&path_style=&profile=) uses the
// AWS SDK for Go v2 with the standard configuration chain (environment,
// shared files, SSO, web identity, instance role) for credentials, region
// and endpoint; URL options override the chain. Objects are named like
// the directory store's files:
//
//	PREFIX/escape(map)/escape(key)                 the raw value
//	PREFIX/escape(map)/.long/<h[:2]>/<h>           a long key: "EGK1",
//	                                               uvarint(len(key)), key, value
//	PREFIX/.long/<hex SHA-256 of map>/...          a long map name
//
// so a directory store copied into a bucket (aws s3 sync) is an S3 store.
// List cannot use S3's order (escaped names do not sort like keys): its
// first page lists the whole map and keeps a sorted snapshot that the
// cursor names and later pages are cut from (see S3.List).
//
// Errors: no answer, timeouts, 5xx, 408, 429 and throttling codes are
// ErrUnavailable; refused or missing credentials, access denied, a missing
// bucket, a wrong region, clock skew and untrusted certificates are
// ErrMisconfigured; other 4xx are ErrInvalid. The SDK tries each request
// twice at most (S3Options.MaxAttempts) so that an outage surfaces fast;
// retrying is the caller's. Messages carry the S3 error code and HTTP
// status, and never credentials: requests are signed in a header, the
// SDK's logging is off, and messages are scrubbed of the keys in use.
package backing
