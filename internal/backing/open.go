package backing

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
)

// location is a parsed store URL.
type location struct {
	scheme string
	path   string // file: the directory
	noSync bool   // file: ?fsync=false
	bucket string // s3
}

// Open opens the store a --store URL names:
//
//	file:///absolute/path[?fsync=false]   the directory store (OpenDir)
//	s3://BUCKET/PREFIX?...                not built yet: ErrUnsupported
//
// Errors wrap ErrInvalid or ErrUnsupported and never repeat the URL, which
// may hold credentials.
func Open(rawURL string) (Store, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.scheme {
	case "file":
		return OpenDir(loc.path, DirOptions{NoSync: loc.noSync})
	default: // s3
		return nil, &Error{Op: "open", Kind: ErrUnsupported,
			Err: errors.New("the s3 store is not built yet (use file:///path)")}
	}
}

func invalid(format string, args ...any) error {
	return &Error{Op: "open", Kind: ErrInvalid, Err: fmt.Errorf(format, args...)}
}

// parseURL checks a store URL with the same rules as internal/config's
// checkStoreURL, plus the options each kind of store accepts.
func parseURL(raw string) (location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return location{}, invalid("not a URL: want file:///path or s3://bucket/prefix")
	}
	switch u.Scheme {
	case "file":
		if u.User != nil {
			return location{}, invalid("file URL must not have a user")
		}
		if u.Host != "" && u.Host != "localhost" {
			return location{}, invalid("file URL has host %q: want file:///absolute/path (three slashes)", u.Host)
		}
		if u.Path == "" || u.Path[0] != '/' {
			return location{}, invalid("file URL needs an absolute path: want file:///absolute/path")
		}
		loc := location{scheme: "file", path: filepath.Clean(filepath.FromSlash(u.Path))}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return location{}, invalid("file URL has a malformed query")
		}
		for k, vs := range q {
			if k != "fsync" {
				return location{}, invalid("file URL has unknown option %q: the only option is fsync=true|false", trunc(k))
			}
			sync, err := strconv.ParseBool(vs[len(vs)-1])
			if err != nil || len(vs) > 1 {
				return location{}, invalid("file URL option fsync wants one value, true or false")
			}
			loc.noSync = !sync
		}
		return loc, nil
	case "s3":
		if u.Host == "" {
			return location{}, invalid("s3 URL needs a bucket: want s3://bucket/prefix")
		}
		return location{scheme: "s3", bucket: u.Host}, nil
	}
	return location{}, invalid("unsupported scheme %q: want file:///path or s3://bucket/prefix", trunc(u.Scheme))
}

func trunc(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
