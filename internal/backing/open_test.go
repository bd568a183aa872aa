package backing

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url     string
		want    location
		kind    error
		message string
	}{
		{url: "file:///srv/data", want: location{scheme: "file", path: "/srv/data"}},
		{url: "file://localhost/srv/data/", want: location{scheme: "file", path: "/srv/data"}},
		{url: "file:///srv/a/../b?fsync=false", want: location{scheme: "file", path: "/srv/b", noSync: true}},
		{url: "file:///srv?fsync=true", want: location{scheme: "file", path: "/srv"}},
		{url: "s3://bucket/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000",
			want: location{scheme: "s3", bucket: "bucket", prefix: "prefix", region: "eu-west-1", endpoint: "http://127.0.0.1:9000"}},
		{url: "s3://bucket", want: location{scheme: "s3", bucket: "bucket"}},
		{url: "s3://bucket/", want: location{scheme: "s3", bucket: "bucket"}},
		{url: "s3://my.bucket-1/a/b/c/?path_style=true&profile=dev",
			want: location{scheme: "s3", bucket: "my.bucket-1", prefix: "a/b/c", pathStyle: true, profile: "dev"}},
		{url: "s3://b/my%20data?path_style=0&endpoint=https%3A%2F%2Fs3.example.com%3A8443%2Fbase",
			want: location{scheme: "s3", bucket: "b", prefix: "my data", endpoint: "https://s3.example.com:8443/base"}},
		{url: "s3://AKID:s3cr3t@bucket/p", kind: ErrInvalid, message: "must not hold credentials"},
		{url: "s3://bucket/p?secret_access_key=x", kind: ErrInvalid, message: `unknown option "secret_access_key"`},
		{url: "s3://bucket/p?region=a&region=b", kind: ErrInvalid, message: "region is given 2 times"},
		{url: "s3://bucket/p?region=", kind: ErrInvalid, message: "region is empty"},
		{url: "s3://bucket/p?region=eu%2Fwest", kind: ErrInvalid, message: "s3 region"},
		{url: "s3://bucket/p?path_style=yes", kind: ErrInvalid, message: "path_style wants true or false"},
		{url: "s3://bucket/p?endpoint=127.0.0.1:9000", kind: ErrInvalid, message: "endpoint must be an http:// or https:// URL"},
		{url: "s3://bucket/p?endpoint=ftp://h", kind: ErrInvalid, message: "endpoint must be an http:// or https:// URL"},
		{url: "s3://bucket/p?endpoint=http://u:pw@h", kind: ErrInvalid, message: "endpoint must not hold credentials"},
		{url: "s3://bucket/p?profile=", kind: ErrInvalid, message: "profile wants a profile name"},
		{url: "s3://bucket/a//b", kind: ErrInvalid, message: "empty"},
		{url: "s3://bucket/a/../b", kind: ErrInvalid, message: `".."`},
		{url: "s3://bucket/a%00b", kind: ErrInvalid, message: "control character"},
		{url: "s3://bucket/" + strings.Repeat("p", 513), kind: ErrInvalid, message: "prefix longer than 512"},
		{url: "s3://bucket:90/p", kind: ErrInvalid, message: "bucket name"},
		{url: "s3://b/p#frag", kind: ErrInvalid, message: "no fragment"},
		{url: "s3://bucket/p?%zz", kind: ErrInvalid, message: "malformed query"},
		{url: "file:data", kind: ErrInvalid, message: "needs an absolute path"},
		{url: "file://data/x", kind: ErrInvalid, message: `has host "data"`},
		{url: "file://u:pw@/x", kind: ErrInvalid, message: "must not have a user"},
		{url: "file:///x?fsync=maybe", kind: ErrInvalid, message: "fsync wants one value"},
		{url: "file:///x?fsync=1&fsync=0", kind: ErrInvalid, message: "fsync wants one value"},
		{url: "file:///x?sync=false", kind: ErrInvalid, message: `unknown option "sync"`},
		{url: "file:///x?%zz", kind: ErrInvalid, message: "malformed query"},
		{url: "s3:///prefix", kind: ErrInvalid, message: "needs a bucket"},
		{url: "gs://bucket", kind: ErrInvalid, message: `unsupported scheme "gs"`},
		{url: "/var/lib", kind: ErrInvalid, message: `unsupported scheme ""`},
		{url: "%zz", kind: ErrInvalid, message: "not a URL"},
	} {
		got, err := parseURL(c.url)
		if c.kind == nil {
			if err != nil || got != c.want {
				t.Errorf("parseURL(%q) = %+v, %v; want %+v", c.url, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.message) {
			t.Errorf("parseURL(%q) error %v; want %v containing %q", c.url, err, c.kind, c.message)
		}
	}
}

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "store")
	s, err := Open("file://" + dir + "?fsync=false")
	if err != nil {
		t.Fatal(err)
	}
	d := s.(*Dir)
	if d.Root() != dir || d.sync {
		t.Fatalf("Open gave root %q sync %v", d.Root(), d.sync)
	}
	s.Close()
	pw := "s3cr3tV4lue"
	_, err = Open("s3://AKID:" + pw + "@bucket/p?secret_access_key=" + pw)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "credentials") || strings.Contains(err.Error(), pw) {
		t.Fatalf("Open(s3 with credentials) = %v; want ErrInvalid about credentials, without the secret", err)
	}
}

func TestCheckURL(t *testing.T) {
	if err := CheckURL("s3://b/p?region=eu-west-1&path_style=true"); err != nil {
		t.Fatal(err)
	}
	err := CheckURL("s3://b/p?bogus=1")
	if err == nil || err.Error() != `s3 URL has unknown option "bogus": the options are endpoint, region, path_style and profile` {
		t.Fatalf("CheckURL = %v", err)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"file:///srv", "file://localhost/x?fsync=false", "s3://b/p?region=r",
		"s3://id:SECRETX@b/p?secret_access_key=SECRETX",
		"s3://bucket/a/b?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true&profile=p", "s3://b/%2e%2e/x",
		"s3://b/p?endpoint=http://u:SECRETX@h", "s3://b/p?region=SECRETX&region=x", "file://u:SECRETX@h/x?SECRETX=1", "gs://x", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := parseURL(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("parseURL(%q): %v is not ErrInvalid", raw, err)
			}
			// Messages never repeat a password (unless it also appears in
			// a part messages do name: the host, scheme or an option name).
			if u, uerr := url.Parse(raw); uerr == nil && u.User != nil {
				pw, _ := u.User.Password()
				named := u.Host + " " + u.Scheme
				for k := range u.Query() {
					named += " " + k
				}
				if len(pw) >= 4 && !strings.Contains(named, pw) && strings.Contains(err.Error(), pw) {
					t.Fatalf("parseURL(%q) error leaks the password: %v", raw, err)
				}
			}
			return
		}
		switch loc.scheme {
		case "file":
			if !filepath.IsAbs(loc.path) || filepath.Clean(loc.path) != loc.path {
				t.Fatalf("parseURL(%q) path %q", raw, loc.path)
			}
		case "s3":
			if checkBucket(loc.bucket) != nil {
				t.Fatalf("parseURL(%q) bucket %q", raw, loc.bucket)
			}
			if p, err := cleanPrefix(loc.prefix); err != nil || strings.TrimSuffix(p, "/") != loc.prefix {
				t.Fatalf("parseURL(%q) prefix %q is not clean", raw, loc.prefix)
			}
			if loc.endpoint != "" && checkEndpoint(loc.endpoint) != nil {
				t.Fatalf("parseURL(%q) endpoint %q", raw, loc.endpoint)
			}
			if loc.region != "" && checkRegion(loc.region) != nil {
				t.Fatalf("parseURL(%q) region %q", raw, loc.region)
			}
			// Credentials never get through.
			if u, uerr := url.Parse(raw); uerr == nil && u.User != nil {
				t.Fatalf("parseURL(%q) accepted a user", raw)
			}
			// A parsed URL checks the same way twice.
			if err := CheckURL(raw); err != nil {
				t.Fatalf("CheckURL(%q) = %v after parseURL accepted it", raw, err)
			}
		default:
			t.Fatalf("parseURL(%q) scheme %q", raw, loc.scheme)
		}
	})
}
