package backing_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/engramdb/engram/internal/backing"
	"github.com/engramdb/engram/internal/backing/backingtest"
	"github.com/engramdb/engram/internal/backing/s3test"
)

var prefixSeq atomic.Int64

// uniquePrefix gives each store of a test its own empty corner of the bucket.
func uniquePrefix() string {
	return fmt.Sprintf("t%d/p", prefixSeq.Add(1))
}

func TestS3Conformance(t *testing.T) {
	srv := s3test.New(t)
	backingtest.Run(t, func(t *testing.T) backing.Store { return srv.Open(t, uniquePrefix()) })
}

// noAWSEnv clears the AWS environment so that only what a test sets is
// seen (not this machine's files, instance role or variables).
func noAWSEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") && k != "AWS_CA_BUNDLE" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// The files are where the package documentation says, and a long key's
// object starts with the key.
func TestS3Layout(t *testing.T) {
	srv := s3test.New(t)
	st := srv.Open(t, "/lay/out/")
	if st.Prefix() != "lay/out/" {
		t.Fatalf("Prefix() = %q", st.Prefix())
	}
	long := bytes.Repeat([]byte("K"), 100) // 300 bytes escaped
	longMap := strings.Repeat("M", 100)
	for _, c := range []struct {
		m   string
		key []byte
	}{{"users", []byte("Alice/1")}, {"", nil}, {"users", long}, {longMap, []byte("k")}} {
		if err := st.Store(ctx, c.m, c.key, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	h := func(s []byte) string { return fmt.Sprintf("%x", sha256sum(s)) }
	lk := h(long)
	want := []string{
		"lay/out/%/%",
		"lay/out/.long/" + h([]byte(longMap)) + "/k",
		"lay/out/users/%41lice%2f1",
		"lay/out/users/.long/" + lk[:2] + "/" + lk,
	}
	got := srv.Objects(t, "lay/")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("objects\n%q\nwant\n%q", got, want)
	}
	if name := st.ObjectKey("users", long); name != want[3] {
		t.Fatalf("ObjectKey = %q", name)
	}
	if s := st.String(); !strings.Contains(s, "s3://engram-test/lay/out/") || !strings.Contains(s, srv.Endpoint) ||
		strings.Contains(s, srv.SecretKey) {
		t.Fatalf("String() = %q", s)
	}
}

// Objects this package did not write are left out of List; a long key's
// object with a foreign body is corrupt.
func TestS3ForeignObjects(t *testing.T) {
	srv := s3test.New(t)
	st := srv.Open(t, "f")
	if err := st.Store(ctx, "m", []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte{0xee}, 100)
	name := st.ObjectKey("m", long)
	srv.PutObject(t, name, []byte("not a key header"))
	for _, foreign := range []string{"f/m/UPPER", "f/m/%2", "f/m/sub/dir", "f/m/.long/zz/abc", "f/m/.hidden", "f/m/%61"} {
		srv.PutObject(t, foreign, []byte("x"))
	}
	p, err := st.List(ctx, "m", backing.ListOptions{})
	if err != nil || len(p.Keys) != 1 || string(p.Keys[0]) != "a" {
		t.Fatalf("List = %q, %v; want just a", p.Keys, err)
	}
	if _, _, err := st.Load(ctx, "m", long); !errors.Is(err, backing.ErrCorrupt) {
		t.Fatalf("Load of a foreign long object: %v, want ErrCorrupt", err)
	}
}

// Paging through many objects: S3's own listing pages (1000 objects)
// and the store's pages (Limit) both continue correctly, long keys sort
// in among the others, and a cursor whose snapshot is gone still works.
func TestS3ListMany(t *testing.T) {
	srv := s3test.New(t)
	st := srv.Open(t, uniquePrefix())
	var entries []backing.Entry
	var want []string
	for i := range 1100 {
		k := fmt.Sprintf("Key-%05d", i) // upper case: escaped names do not sort like keys
		if i%100 == 7 {
			k += strings.Repeat("~", 80) // long
		}
		entries = append(entries, backing.Entry{Key: []byte(k), Value: []byte(k)})
		want = append(want, k)
	}
	if err := st.StoreBatch(ctx, "many", entries); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	for _, limit := range []int{0, 1000, 333} {
		var got []string
		opts := backing.ListOptions{Limit: limit}
		for {
			p, err := st.List(ctx, "many", opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range p.Keys {
				got = append(got, string(k))
			}
			if p.Next == "" {
				break
			}
			opts.Cursor = p.Next
			if limit == 333 {
				// Without its snapshot: the key part alone.
				opts.Cursor, _, _ = strings.Cut(p.Next, "~")
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: listed %d keys, want %d (or out of order)", limit, len(got), len(want))
		}
	}
	p, err := st.List(ctx, "many", backing.ListOptions{Prefix: []byte("Key-01"), Limit: 50})
	if err != nil || len(p.Keys) != 50 || string(p.Keys[0]) != "Key-01000" || p.Next == "" {
		t.Fatalf("List with a prefix = %d keys from %q, next %q, %v", len(p.Keys), p.Keys[0], p.Next, err)
	}
	if _, err := st.List(ctx, "many", backing.ListOptions{Cursor: "a~123"}); !errors.Is(err, backing.ErrInvalid) {
		t.Fatalf("List with a bad snapshot id: %v", err)
	}
	// One DeleteBatch of more than 1000 keys (several DeleteObjects).
	var keys [][]byte
	for _, e := range entries {
		keys = append(keys, e.Key)
	}
	if err := st.DeleteBatch(ctx, "many", keys); err != nil {
		t.Fatal(err)
	}
	if p, err := st.List(ctx, "many", backing.ListOptions{}); err != nil || len(p.Keys) != 0 {
		t.Fatalf("after DeleteBatch: %d keys, %v", len(p.Keys), err)
	}
}

// A --store URL opens the store with credentials from the environment,
// from a profile, and the endpoint from AWS_ENDPOINT_URL_S3.
func TestS3OpenURL(t *testing.T) {
	srv := s3test.New(t)
	roundTrip := func(t *testing.T, s backing.Store) {
		t.Helper()
		defer s.Close()
		k := []byte(t.Name())
		if err := s.Store(ctx, "m", k, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if v, found, err := s.Load(ctx, "m", k); err != nil || !found || string(v) != "v" {
			t.Fatalf("Load = %q, %v, %v", v, found, err)
		}
	}
	t.Run("Env", func(t *testing.T) {
		noAWSEnv(t)
		for _, kv := range srv.Env() {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		s, err := backing.Open(srv.URL("url/env"))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s)
		if objs := srv.Objects(t, "url/env/m/"); len(objs) != 1 {
			t.Fatalf("objects %q", objs)
		}
	})
	t.Run("RegionFromEnv", func(t *testing.T) {
		noAWSEnv(t)
		for _, kv := range srv.Env() {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		t.Setenv("AWS_REGION", "eu-north-1")
		u := strings.Replace(srv.URL("url/region"), "region="+s3test.Region, "", 1)
		_, err := backing.Open(u)
		// versitygw checks the region of the signature.
		if !errors.Is(err, backing.ErrMisconfigured) {
			t.Fatalf("Open signing for eu-north-1 = %v; want ErrMisconfigured", err)
		}
		t.Setenv("AWS_REGION", s3test.Region)
		s, err := backing.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s.(*backing.S3).String(), "region "+s3test.Region) {
			t.Fatalf("String() = %s", s.(*backing.S3).String())
		}
		roundTrip(t, s)
	})
	t.Run("Profile", func(t *testing.T) {
		noAWSEnv(t)
		dir := t.TempDir()
		creds := filepath.Join(dir, "credentials")
		conf := filepath.Join(dir, "config")
		writeFile(t, creds, fmt.Sprintf("[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONGSECRET\n\n"+
			"[engram]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey))
		writeFile(t, conf, fmt.Sprintf("[profile engram]\nregion = %s\nendpoint_url = %s\n", s3test.Region, srv.Endpoint))
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
		t.Setenv("AWS_CONFIG_FILE", conf)
		// The profile gives credentials, region and endpoint.
		s, err := backing.Open("s3://" + srv.Bucket + "/url/profile?path_style=true&profile=engram")
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s)
		// AWS_PROFILE does the same.
		t.Setenv("AWS_PROFILE", "engram")
		s, err = backing.Open("s3://" + srv.Bucket + "/url/profile?path_style=true")
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s)
		// The default profile's credentials are refused.
		t.Setenv("AWS_PROFILE", "")
		_, err = backing.Open("s3://" + srv.Bucket + "/url/profile?path_style=true&endpoint=" + srv.Endpoint)
		if !errors.Is(err, backing.ErrMisconfigured) || !strings.Contains(err.Error(), "credentials") ||
			strings.Contains(err.Error(), "WRONGSECRET") {
			t.Fatalf("Open with the default profile = %v", err)
		}
	})
	t.Run("EndpointFromEnv", func(t *testing.T) {
		noAWSEnv(t)
		for _, kv := range srv.Env() {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
		s, err := backing.Open("s3://" + srv.Bucket + "/url/endpoint?path_style=true")
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s)
		// The URL's endpoint wins over the environment's.
		t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
		s, err = backing.Open(srv.URL("url/endpoint"))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s)
	})
	t.Run("VirtualHost", func(t *testing.T) {
		// Without path_style the bucket would be a host name; an IP
		// endpoint cannot carry it, so the SDK addresses by path anyway.
		noAWSEnv(t)
		for _, kv := range srv.Env() {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		s, err := backing.Open(strings.Replace(srv.URL("url/vhost"), "path_style=true", "path_style=false", 1))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s)
	})
	t.Run("NoCredentials", func(t *testing.T) {
		noAWSEnv(t)
		start := time.Now()
		_, err := backing.Open(srv.URL("url/none"))
		if !errors.Is(err, backing.ErrMisconfigured) || !strings.Contains(err.Error(), "no usable AWS credentials") {
			t.Fatalf("Open without credentials = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Misconfigurations fail at open (and on any call) with ErrMisconfigured
// and a message that says what is wrong without holding the secrets.
func TestS3Misconfigured(t *testing.T) {
	srv := s3test.New(t)
	check := func(t *testing.T, err error, says string, secrets ...string) {
		t.Helper()
		if !errors.Is(err, backing.ErrMisconfigured) || errors.Is(err, backing.ErrUnavailable) {
			t.Fatalf("err = %v; want ErrMisconfigured", err)
		}
		if !strings.Contains(err.Error(), says) {
			t.Fatalf("err = %v; want it to say %q", err, says)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("err = %v holds a secret", err)
			}
		}
	}
	badSecret := "Wr0ngSecretKeyValue" + srv.SecretKey[:4]
	for _, c := range []struct {
		name, access, secret, says string
	}{
		{"WrongSecret", srv.AccessKey, badSecret, "credentials"},
		{"UnknownKey", "AKIAUNKNOWNKEY123", srv.SecretKey, "credentials"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := srv.Options("bad")
			o.Credentials = credentials.NewStaticCredentialsProvider(c.access, c.secret, "")
			_, err := backing.OpenS3(ctx, o)
			check(t, err, c.says, c.secret, srv.SecretKey)
			// Without the check at open, every call says the same.
			o.NoVerify = true
			st, err := backing.OpenS3(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			_, _, err = st.Load(ctx, "m", []byte("k"))
			check(t, err, c.says, c.secret, srv.SecretKey)
			check(t, st.Store(ctx, "m", []byte("k"), []byte("v")), c.says, c.secret, srv.SecretKey)
			check(t, st.StoreBatch(ctx, "m", []backing.Entry{{Key: []byte("k")}}), c.says, c.secret, srv.SecretKey)
			check(t, st.DeleteBatch(ctx, "m", [][]byte{[]byte("k")}), c.says, c.secret, srv.SecretKey)
			_, err = st.List(ctx, "m", backing.ListOptions{})
			check(t, err, c.says, c.secret, srv.SecretKey)
		})
	}
	t.Run("NoBucket", func(t *testing.T) {
		o := srv.Options("p")
		o.Bucket = "no-such-bucket"
		_, err := backing.OpenS3(ctx, o)
		check(t, err, `bucket "no-such-bucket" does not exist`, srv.SecretKey)
		o.NoVerify = true
		st, err := backing.OpenS3(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		check(t, st.Store(ctx, "m", []byte("k"), []byte("v")), "does not exist")
		_, _, err = st.Load(ctx, "m", []byte("k"))
		check(t, err, "does not exist")
	})
}

// A stopped server is ErrUnavailable within a second or so, and the store
// works again, with its data, once the server is back.
func TestS3Outage(t *testing.T) {
	srv := s3test.New(t)
	st := srv.Open(t, uniquePrefix())
	if err := st.Store(ctx, "m", []byte("k"), []byte("before")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ops := map[string]func() error{
		"Load":        func() error { _, _, err := st.Load(ctx, "m", []byte("k")); return err },
		"Store":       func() error { return st.Store(ctx, "m", []byte("k"), []byte("during")) },
		"Delete":      func() error { return st.Delete(ctx, "m", []byte("k")) },
		"StoreBatch":  func() error { return st.StoreBatch(ctx, "m", []backing.Entry{{Key: []byte("a")}, {Key: []byte("b")}}) },
		"DeleteBatch": func() error { return st.DeleteBatch(ctx, "m", [][]byte{[]byte("a")}) },
		"List":        func() error { _, err := st.List(ctx, "m", backing.ListOptions{}); return err },
		"Check":       func() error { return st.Check(ctx) },
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		if !errors.Is(err, backing.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("%s while the server is down: %v; want ErrUnavailable, connection refused", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%s took %v to fail", name, d)
		}
		if strings.Contains(err.Error(), srv.SecretKey) || strings.Contains(err.Error(), srv.AccessKey) {
			t.Fatalf("%s error holds a credential: %v", name, err)
		}
	}
	// The store opens during an outage (a node can start).
	st2, err := backing.OpenS3(ctx, srv.Options(st.Prefix()))
	if err != nil {
		t.Fatalf("OpenS3 during an outage: %v", err)
	}
	defer st2.Close()
	srv.Start()
	if v, found, err := st.Load(ctx, "m", []byte("k")); err != nil || !found || string(v) != "before" {
		t.Fatalf("after the restart: %q, %v, %v", v, found, err)
	}
	if err := st2.Store(ctx, "m", []byte("k"), []byte("after")); err != nil {
		t.Fatal(err)
	}
}

// A server that accepts connections and never answers: the store's
// timeout turns it into ErrUnavailable; the caller's own deadline comes
// back as the context's error.
func TestS3Timeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	st, err := backing.OpenS3(ctx, backing.S3Options{
		Bucket: "b", Endpoint: "http://" + l.Addr().String(), PathStyle: true, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Timeout:     300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("OpenS3 of a silent server (its check times out: unavailable, not an error at open): %v", err)
	}
	defer st.Close()
	start := time.Now()
	_, _, err = st.Load(ctx, "m", []byte("k"))
	if !errors.Is(err, backing.ErrUnavailable) || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("Load from a silent server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = st.Store(c, "m", []byte("k"), nil)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backing.ErrUnavailable) {
		t.Fatalf("Store with a short deadline: %v", err)
	}
}

// How HTTP answers map to kinds, with a fake server answering as S3 does.
func TestS3Classify(t *testing.T) {
	var status atomic.Int64
	var body atomic.Value
	var header atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, _ := header.Load().(string); h != "" {
			k, v, _ := strings.Cut(h, ": ")
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(int(status.Load()))
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(body.Load().(string)))
		}
	}))
	defer srv.Close()
	const secret = "SuperSecretKey123"
	st, err := backing.OpenS3(ctx, backing.S3Options{
		Bucket: "b", Endpoint: srv.URL, PathStyle: true, Region: "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", secret, ""), NoVerify: true, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	xmlErr := func(code, msg string) string {
		return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>` + msg +
			`</Message><RequestId>R1</RequestId></Error>`
	}
	for _, c := range []struct {
		status int
		code   string
		msg    string
		header string
		kind   error
		says   string
	}{
		{503, "SlowDown", "Please reduce your request rate.", "", backing.ErrUnavailable, "busy or failing (SlowDown, HTTP 503)"},
		{500, "InternalError", "oops", "", backing.ErrUnavailable, "InternalError"},
		{429, "", "", "", backing.ErrUnavailable, "HTTP 429"},
		{403, "AccessDenied", "Access Denied", "", backing.ErrMisconfigured, "s3:ListBucket"},
		{403, "SignatureDoesNotMatch", "signature for key AKIDEXAMPLE secret " + secret, "", backing.ErrMisconfigured, "refused the credentials"},
		{403, "RequestTimeTooSkewed", "", "", backing.ErrMisconfigured, "clock"},
		{404, "NoSuchBucket", "The specified bucket does not exist", "", backing.ErrMisconfigured, `bucket "b" does not exist`},
		{301, "PermanentRedirect", "", "X-Amz-Bucket-Region: us-west-2", backing.ErrMisconfigured, "set region=us-west-2"},
		{400, "InvalidArgument", "bad", "", backing.ErrInvalid, "rejected the request (InvalidArgument, HTTP 400)"},
	} {
		status.Store(int64(c.status))
		body.Store(xmlErr(c.code, c.msg))
		header.Store(c.header)
		_, _, err := st.Load(ctx, "m", []byte("k"))
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%d %s: %v; want %v saying %q", c.status, c.code, err, c.kind, c.says)
		}
		if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "AKIDEXAMPLE")) {
			t.Errorf("%d %s: the error holds a credential: %v", c.status, c.code, err)
		}
	}
	// Per-key errors of DeleteObjects.
	status.Store(200)
	header.Store("")
	body.Store(`<?xml version="1.0" encoding="UTF-8"?><DeleteResult><Error><Key>m/a</Key><Code>NoSuchKey</Code></Error>` +
		`<Error><Key>m/b</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>`)
	err = st.DeleteBatch(ctx, "m", [][]byte{[]byte("a"), []byte("b")})
	if !errors.Is(err, backing.ErrMisconfigured) || !strings.Contains(err.Error(), "2 of 2 keys failed") {
		t.Fatalf("DeleteBatch with per-key errors: %v", err)
	}
	body.Store(`<?xml version="1.0" encoding="UTF-8"?><DeleteResult><Error><Key>m/a</Key><Code>NoSuchKey</Code></Error></DeleteResult>`)
	if err := st.DeleteBatch(ctx, "m", [][]byte{[]byte("a")}); err != nil {
		t.Fatalf("DeleteBatch with NoSuchKey only: %v", err)
	}
}

func sha256sum(b []byte) [32]byte { return sha256.Sum256(b) }
