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
		{url: "s3://bucket/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000", want: location{scheme: "s3", bucket: "bucket"}},
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
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "not built yet") || strings.Contains(err.Error(), pw) {
		t.Fatalf("Open(s3) = %v; want ErrUnsupported, not built yet, without the secret", err)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"file:///srv", "file://localhost/x?fsync=false", "s3://b/p?region=r",
		"s3://id:SECRETX@b/p?secret_access_key=SECRETX", "file://u:SECRETX@h/x?SECRETX=1", "gs://x", "%zz", ""} {
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
			if loc.bucket == "" {
				t.Fatalf("parseURL(%q) has no bucket", raw)
			}
		default:
			t.Fatalf("parseURL(%q) scheme %q", raw, loc.scheme)
		}
	})
}
