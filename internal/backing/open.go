package backing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// location is a parsed store URL.
type location struct {
	scheme string
	path   string // file: the directory
	noSync bool   // file: ?fsync=false
	// s3
	bucket, prefix   string
	endpoint, region string // "" when the URL does not set them
	pathStyle        bool
	profile          string
}

// Open opens the store a --store URL names:
//
//	file:///absolute/path[?fsync=false]        the directory store (OpenDir)
//	s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path_style=true&profile=P]
//	                                           the S3 store (OpenS3)
//
// Every s3 query parameter is optional and overrides the AWS
// configuration chain (environment, shared config files); credentials
// never go in the URL. For s3 URLs, Open verifies the bucket and the
// credentials as OpenS3 does, within a few seconds.
//
// Errors wrap ErrInvalid (a malformed URL), ErrMisconfigured (s3: the
// store refused the configuration) or ErrUnavailable, and never repeat
// the URL, which may hold credentials.
func Open(rawURL string) (Store, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.scheme {
	case "file":
		return OpenDir(loc.path, DirOptions{NoSync: loc.noSync})
	default: // s3
		ctx, cancel := context.WithTimeout(context.Background(), 2*s3VerifyTimeout)
		defer cancel()
		return OpenS3(ctx, S3Options{
			Bucket: loc.bucket, Prefix: loc.prefix, Endpoint: loc.endpoint, Region: loc.region,
			PathStyle: loc.pathStyle, Profile: loc.profile,
		})
	}
}

// CheckURL reports whether Open would accept the form of a store URL,
// without opening anything. The error is the bare problem ("s3 URL has
// unknown option ..."), for a flag's message; it never repeats the URL.
func CheckURL(rawURL string) error {
	_, err := parseURL(rawURL)
	var e *Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Err
	}
	return err
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
		return parseS3URL(u)
	}
	return location{}, invalid("unsupported scheme %q: want file:///path or s3://bucket/prefix", trunc(u.Scheme))
}

func trunc(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func parseS3URL(u *url.URL) (location, error) {
	if u.User != nil {
		return location{}, invalid("s3 URL must not hold credentials: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, " +
			"AWS_PROFILE or the profile= option")
	}
	if u.Host == "" {
		return location{}, invalid("s3 URL needs a bucket: want s3://bucket/prefix")
	}
	if u.Fragment != "" || u.Opaque != "" {
		return location{}, invalid("s3 URL must be s3://bucket/prefix?options (no fragment)")
	}
	if err := checkBucket(u.Host); err != nil {
		return location{}, err
	}
	prefix, err := cleanPrefix(u.Path)
	if err != nil {
		return location{}, err
	}
	loc := location{scheme: "s3", bucket: u.Host, prefix: strings.TrimSuffix(prefix, "/")}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return location{}, invalid("s3 URL has a malformed query")
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return location{}, invalid("s3 URL option %s is given %d times", trunc(k), len(vs))
		}
		v := vs[0]
		switch k {
		case "endpoint":
			if err := checkEndpoint(v); err != nil {
				return location{}, err
			}
			loc.endpoint = v
		case "region":
			if v == "" {
				return location{}, invalid("s3 URL option region is empty")
			}
			if err := checkRegion(v); err != nil {
				return location{}, err
			}
			loc.region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return location{}, invalid("s3 URL option path_style wants true or false")
			}
			loc.pathStyle = b
		case "profile":
			if v == "" || len(v) > 128 || strings.ContainsAny(v, "[]\r\n") {
				return location{}, invalid("s3 URL option profile wants a profile name")
			}
			loc.profile = v
		default:
			return location{}, invalid("s3 URL has unknown option %q: the options are endpoint, region, path_style and profile", trunc(k))
		}
	}
	return loc, nil
}
