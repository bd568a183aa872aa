package backing

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// S3 defaults (see S3Options).
const (
	DefaultS3MaxAttempts = 2
	DefaultS3Timeout     = 30 * time.Second
	DefaultS3Parallelism = 16
	// DefaultS3Region is the region used when neither the options, the
	// URL nor the AWS configuration chain name one.
	DefaultS3Region = "us-east-1"
)

const (
	s3DialTimeout     = 5 * time.Second
	s3IdleTimeout     = 30 * time.Second
	s3MaxBackoff      = 200 * time.Millisecond
	s3MaxPrefixLen    = 512  // object keys are at most 1024 bytes
	s3DeleteChunk     = 1000 // the most keys one DeleteObjects takes
	s3HeadRange       = 4096 // first read of a long key's object in List
	s3KeyCacheBytes   = 32 << 20
	s3VerifyTimeout   = 10 * time.Second
	s3ListPageObjects = 1000
	s3SnapBytes       = 64 << 20 // all List snapshots together
	s3MaxSnaps        = 64
	s3SnapTTL         = 2 * time.Minute
)

// S3Options configure an S3 store (OpenS3). Only Bucket is required; an
// empty field means "ask the standard AWS configuration chain", exactly
// as the AWS CLI does: environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
// AWS_DEFAULT_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
// AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), the shared config and
// credentials files (~/.aws/config, ~/.aws/credentials), SSO, web
// identity, and the ECS or EC2 instance role.
type S3Options struct {
	// Bucket is the bucket's name (required).
	Bucket string
	// Prefix is prepended to every object key, as "Prefix/map/key";
	// leading and trailing slashes are ignored; "" uses the whole bucket.
	Prefix string
	// Endpoint is the service URL of an S3-compatible store
	// (http://127.0.0.1:9000); "" takes AWS_ENDPOINT_URL_S3,
	// AWS_ENDPOINT_URL or the config files, else Amazon S3.
	Endpoint string
	// Region signs the requests; "" takes the chain's region, else
	// DefaultS3Region.
	Region string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY; most S3-compatible servers want it.
	PathStyle bool
	// Profile selects a profile of the shared config files ("" takes
	// AWS_PROFILE, else "default").
	Profile string
	// Credentials, when set, replaces the credential chain (tests,
	// embedding programs).
	Credentials aws.CredentialsProvider
	// MaxAttempts is how many times the SDK tries one request before the
	// error reaches the caller (<= 0: DefaultS3MaxAttempts). It is small
	// on purpose: an outage surfaces within a second as ErrUnavailable and
	// the caller (the write-behind queue) owns retrying, with its own
	// backoff.
	MaxAttempts int
	// Timeout bounds each operation (a Load, a Store, one page of a
	// List...), attempts included (<= 0: DefaultS3Timeout).
	Timeout time.Duration
	// Parallelism bounds the concurrent requests of one StoreBatch or
	// List (<= 0: DefaultS3Parallelism).
	Parallelism int
	// NoVerify skips the check OpenS3 makes (see OpenS3).
	NoVerify bool
}

// S3 is the store on Amazon S3 or an S3-compatible server (s3:// URLs).
// Create it with OpenS3 or Open. The object layout, error policy and
// costs are in the package documentation.
type S3 struct {
	client      *s3.Client
	creds       aws.CredentialsProvider
	bucket      string
	prefix      string // "" or ending with "/"
	endpoint    string // for String
	region      string
	timeout     time.Duration
	parallelism int
	closed      atomic.Bool

	keysMu    sync.Mutex
	keys      map[string][]byte // object key of a long key -> the key
	keysBytes int

	snapMu    sync.Mutex
	snaps     map[uint64]*listSnap // List snapshots by id
	snapBytes int
}

var _ Store = (*S3)(nil)

// OpenS3 opens the S3 store opts describe. Unless opts.NoVerify, it lists
// at most one object under the prefix, so that a missing bucket, refused
// credentials, a wrong region or a missing permission fail here with
// ErrMisconfigured; a store that cannot be reached (ErrUnavailable) is not
// an error at open, so a node can start during a store outage.
func OpenS3(ctx context.Context, opts S3Options) (*S3, error) {
	if err := checkBucket(opts.Bucket); err != nil {
		return nil, err
	}
	prefix, err := cleanPrefix(opts.Prefix)
	if err != nil {
		return nil, err
	}
	if opts.Endpoint != "" {
		if err := checkEndpoint(opts.Endpoint); err != nil {
			return nil, err
		}
	}
	if opts.Region != "" {
		if err := checkRegion(opts.Region); err != nil {
			return nil, err
		}
	}
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultS3MaxAttempts
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultS3Timeout
	}
	par := opts.Parallelism
	if par <= 0 {
		par = DefaultS3Parallelism
	}

	// A BuildableClient, so that the chain can add a CA bundle
	// (AWS_CA_BUNDLE, ca_bundle in the config file).
	hc := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = s3DialTimeout
	}).WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = max(64, 2*par)
		tr.IdleConnTimeout = s3IdleTimeout
		tr.ResponseHeaderTimeout = timeout
	})

	loadOpts := []func(*config.LoadOptions) error{
		// The SDK's own log lines say nothing the errors do not.
		config.WithLogger(logging.Nop{}),
		config.WithHTTPClient(hc),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = s3MaxBackoff
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		if cerr := ctxErr(ctx, "open", ""); cerr != nil {
			return nil, cerr
		}
		// A broken shared config file, an unknown profile...
		return nil, &Error{Op: "open", Kind: ErrMisconfigured,
			Err: fmt.Errorf("s3: loading the AWS configuration: %v", err)}
	}
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
	})
	endpoint := opts.Endpoint
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
		if u, err := url.Parse(endpoint); err != nil || u.User != nil {
			endpoint = "(from the AWS configuration)" // never print a user or password
		}
	}
	s := &S3{
		client:      client,
		creds:       cfg.Credentials,
		bucket:      opts.Bucket,
		prefix:      prefix,
		endpoint:    endpoint,
		region:      cfg.Region,
		timeout:     timeout,
		parallelism: par,
		keys:        make(map[string][]byte),
		snaps:       make(map[uint64]*listSnap),
	}
	if s.creds == nil {
		return nil, &Error{Op: "open", Kind: ErrMisconfigured, Err: errNoCredentials}
	}
	// Credentials are resolved now, so that a machine with none fails at
	// open with a clear message rather than on the first request.
	vctx, cancel := context.WithTimeout(ctx, s3VerifyTimeout)
	defer cancel()
	if _, err := s.creds.Retrieve(vctx); err != nil {
		if cerr := ctxErr(ctx, "open", ""); cerr != nil {
			return nil, cerr
		}
		return nil, &Error{Op: "open", Kind: ErrMisconfigured,
			Err: fmt.Errorf("%w (%s)", errNoCredentials, s.scrub(vctx, err.Error()))}
	}
	if !opts.NoVerify {
		err := s.Check(vctx)
		switch {
		case err == nil, errors.Is(err, ErrUnavailable):
		case ctx.Err() != nil:
			return nil, &Error{Op: "open", Err: ctx.Err()}
		case vctx.Err() != nil: // no answer within s3VerifyTimeout: unavailable
		default:
			return nil, err
		}
	}
	return s, nil
}

var errNoCredentials = errors.New("s3: no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
	"or AWS_PROFILE / the URL's profile= with ~/.aws/credentials, or run with an instance role")

// Check lists at most one object under the store's prefix: it fails with
// ErrMisconfigured when the bucket is missing, the credentials are
// refused, the region is wrong or listing is not allowed, and with
// ErrUnavailable when the store cannot be reached.
func (s *S3) Check(ctx context.Context) error {
	if err := s.check(ctx, "check", ""); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.ListObjectsV2(octx, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix), MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return s.fail(ctx, octx, "check", "", err)
	}
	return nil
}

// String describes the store for logs: bucket, prefix, region and
// endpoint, never credentials.
func (s *S3) String() string {
	d := "s3://" + s.bucket + "/" + s.prefix + " (region " + s.region
	if s.endpoint != "" {
		d += ", endpoint " + s.endpoint
	}
	return d + ")"
}

// Bucket returns the store's bucket.
func (s *S3) Bucket() string { return s.bucket }

// Prefix returns the prefix of the store's object keys: "" or a string
// ending with "/".
func (s *S3) Prefix() string { return s.prefix }

// ObjectKey returns the object key under which the store keeps key of map
// m (for tests and tools; see the package documentation for the layout).
func (s *S3) ObjectKey(m string, key []byte) string {
	name, _ := s.objectKey(m, key)
	return name
}

func checkBucket(b string) error {
	if len(b) == 0 || len(b) > 63 {
		return invalid("s3 bucket name must be 1 to 63 characters")
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return invalid("s3 bucket name %q has a character other than letters, digits, '.', '-' and '_'", trunc(b))
		}
	}
	return nil
}

// cleanPrefix checks a key prefix and returns it with one trailing slash
// (or "").
func cleanPrefix(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if len(p) > s3MaxPrefixLen {
		return "", invalid("s3 prefix longer than %d bytes", s3MaxPrefixLen)
	}
	if !utf8.ValidString(p) {
		return "", invalid("s3 prefix is not valid UTF-8")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", invalid("s3 prefix has an empty, \".\" or \"..\" segment")
		}
		for _, r := range seg {
			if r < 0x20 || r == 0x7f {
				return "", invalid("s3 prefix has a control character")
			}
		}
	}
	return p + "/", nil
}

func checkEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return invalid("s3 endpoint must be an http:// or https:// URL with a host")
	}
	if u.User != nil {
		return invalid("s3 endpoint must not hold credentials: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return invalid("s3 endpoint must not have a query or fragment (escape it in the store URL: endpoint=http%%3A%%2F%%2Fhost%%3A9000)")
	}
	return nil
}

func checkRegion(r string) error {
	if len(r) > 64 {
		return invalid("s3 region longer than 64 bytes")
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return invalid("s3 region %q has a character other than letters, digits, '-' and '_'", trunc(r))
		}
	}
	return nil
}

// mapPrefix is the object key prefix of map m, ending with "/".
func (s *S3) mapPrefix(m string) string {
	if escapedLen(m) > MaxNameLen {
		return s.prefix + longDir + "/" + hashHex(m) + "/"
	}
	return s.prefix + escape(m) + "/"
}

// objectKey returns key's object key in map m, and whether the object
// starts with a key header (a hashed long key).
func (s *S3) objectKey(m string, key []byte) (string, bool) {
	mp := s.mapPrefix(m)
	if escapedLen(key) > MaxNameLen {
		h := hashHex(key)
		return mp + longDir + "/" + h[:2] + "/" + h, true
	}
	return mp + escape(key), false
}

func (s *S3) check(ctx context.Context, op, m string) error {
	if s.closed.Load() {
		return &Error{Op: op, Map: m, Kind: ErrClosed}
	}
	return ctxErr(ctx, op, m)
}

// Load implements Store.
func (s *S3) Load(ctx context.Context, m string, key []byte) ([]byte, bool, error) {
	if err := s.check(ctx, "load", m); err != nil {
		return nil, false, err
	}
	name, long := s.objectKey(m, key)
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	data, found, err := s.get(octx, name, "")
	if err != nil {
		return nil, false, s.fail(ctx, octx, "load", m, err)
	}
	if !found {
		return nil, false, nil
	}
	if !long {
		return data, true, nil
	}
	k, v, ok := parseLong(data)
	if !ok || !bytes.Equal(k, key) {
		return nil, false, &Error{Op: "load", Map: m, Kind: ErrCorrupt,
			Err: fmt.Errorf("s3 object %q is not the key's object", name)}
	}
	return v, true, nil
}

// get reads an object (or the byte range rng, "" for all of it); a
// missing object is found = false.
func (s *S3) get(ctx context.Context, name, rng string) ([]byte, bool, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(name)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || apiCode(err) == "NoSuchKey" {
			return nil, false, nil
		}
		return nil, false, err
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 && n < 1<<31 {
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, false, err
	}
	if buf.Len() == 0 {
		return []byte{}, true, nil
	}
	return buf.Bytes(), true, nil
}

// Store implements Store.
func (s *S3) Store(ctx context.Context, m string, key, value []byte) error {
	if err := s.check(ctx, "store", m); err != nil {
		return err
	}
	return s.put(ctx, "store", m, key, value)
}

func (s *S3) put(ctx context.Context, op, m string, key, value []byte) error {
	name, long := s.objectKey(m, key)
	body := value
	if long {
		body = append(longHeader(key), value...)
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.PutObject(octx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(name),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/octet-stream"),
	})
	if err != nil {
		return s.fail(ctx, octx, op, m, err)
	}
	return nil
}

// StoreBatch implements Store with up to Parallelism concurrent
// PutObject requests (S3 has no multi-object write). A key given twice is
// written once, with its last value. On the first error the requests not
// yet started are skipped.
func (s *S3) StoreBatch(ctx context.Context, m string, entries []Entry) error {
	const op = "store batch"
	if err := s.check(ctx, op, m); err != nil {
		return err
	}
	last := make(map[string]int, len(entries))
	for i, e := range entries {
		last[string(e.Key)] = i
	}
	idx := make([]int, 0, len(last))
	for _, i := range last {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return s.parallel(ctx, op, m, len(idx), func(ctx context.Context, j int) error {
		e := entries[idx[j]]
		return s.put(ctx, op, m, e.Key, e.Value)
	})
}

// parallel runs f(0..n-1) on up to s.parallelism goroutines and returns
// the first error; after an error (or a done ctx, or Close) no new call
// starts.
func (s *S3) parallel(ctx context.Context, op, m string, n int, f func(context.Context, int) error) error {
	if n == 0 {
		return nil
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return firstErr != nil }
	workers := min(s.parallelism, n)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1)) - 1
				if j >= n || failed() {
					return
				}
				err := s.check(ctx, op, m)
				if err == nil {
					err = f(ctx, j)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, m string, key []byte) error {
	if err := s.check(ctx, "delete", m); err != nil {
		return err
	}
	name, _ := s.objectKey(m, key)
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.DeleteObject(octx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(name)})
	if err != nil && apiCode(err) != "NoSuchKey" {
		return s.fail(ctx, octx, "delete", m, err)
	}
	return nil
}

// DeleteBatch implements Store with DeleteObjects requests of up to 1000
// keys. Keys the server reports as failed make the batch fail with the
// first one's error (NoSuchKey is success).
func (s *S3) DeleteBatch(ctx context.Context, m string, keys [][]byte) error {
	const op = "delete batch"
	if err := s.check(ctx, op, m); err != nil {
		return err
	}
	seen := make(map[string]bool, len(keys))
	var objs []types.ObjectIdentifier
	for _, k := range keys {
		name, _ := s.objectKey(m, k)
		if !seen[name] {
			seen[name] = true
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(name)})
		}
	}
	for len(objs) > 0 {
		n := min(len(objs), s3DeleteChunk)
		chunk := objs[:n]
		objs = objs[n:]
		if err := s.check(ctx, op, m); err != nil {
			return err
		}
		if err := s.deleteObjects(ctx, op, m, chunk); err != nil {
			return err
		}
	}
	return nil
}

func (s *S3) deleteObjects(ctx context.Context, op, m string, objs []types.ObjectIdentifier) error {
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.DeleteObjects(octx, &s3.DeleteObjectsInput{
		Bucket: aws.String(s.bucket),
		Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return s.fail(ctx, octx, op, m, err)
	}
	for _, e := range out.Errors {
		code := aws.ToString(e.Code)
		if code == "NoSuchKey" {
			continue
		}
		msg, kind := classifyCode(code, 0, s.bucket)
		return &Error{Op: op, Map: m, Kind: kind, Err: fmt.Errorf("s3: %d of %d keys failed, the first with %s%s",
			len(out.Errors), len(objs), msg, s.serverMessage(ctx, aws.ToString(e.Message)))}
	}
	return nil
}

// List implements Store. Escaped names do not sort like the keys they
// stand for, and long keys are hashed, so S3's own order is of no use: the
// first page lists every object of the map (ListObjectsV2 pages of 1000;
// with a Prefix, only the names that can match), reads the full key of
// each long key from the head of its object (once: then it is cached),
// sorts, and keeps the sorted keys as a snapshot that the next pages are
// cut from (the cursor names it). A key present for the whole listing is
// in the snapshot, so it is returned exactly once. Snapshots are kept in
// memory, up to 64 MiB, for 2 minutes after their last use; a cursor whose
// snapshot is gone, or a map too big for one, costs a full listing per
// page.
func (s *S3) List(ctx context.Context, m string, opts ListOptions) (ListPage, error) {
	if err := s.check(ctx, "list", m); err != nil {
		return ListPage{}, err
	}
	after, snapID, ok := parseCursor(opts.Cursor)
	if !ok {
		return ListPage{}, &Error{Op: "list", Map: m, Kind: ErrInvalid, Err: errors.New("bad cursor")}
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	if snapID != 0 {
		if sn := s.snapshot(snapID, m, opts.Prefix); sn != nil {
			return sn.page(after, limit), nil
		}
	}
	// Collect every matching key for a snapshot, or, past the budget,
	// only the page's keys.
	var (
		all      [][]byte
		allBytes int
		sel      *keySelect
	)
	keep := func(k []byte) {
		if !bytes.HasPrefix(k, opts.Prefix) || (after != nil && bytes.Compare(k, after) <= 0) {
			return
		}
		if sel != nil {
			sel.add(k)
			return
		}
		all = append(all, k)
		allBytes += len(k) + 24
		if allBytes > s3SnapBytes/2 {
			sel = &keySelect{limit: limit}
			for _, k := range all {
				sel.add(k)
			}
			all = nil
		}
	}
	mp := s.mapPrefix(m)
	longPrefix := mp + longDir + "/"
	// Names of short keys start with the escaped prefix (escape works
	// byte by byte); long keys can match any prefix.
	var scans []string
	switch {
	case len(opts.Prefix) == 0:
		scans = []string{mp}
	case escapedLen(opts.Prefix) <= MaxNameLen:
		scans = []string{mp + escape(opts.Prefix), longPrefix}
	default:
		scans = []string{longPrefix}
	}
	var longNames []string
	for _, scan := range scans {
		err := s.listObjects(ctx, m, scan, func(name string) {
			rest := name[len(mp):]
			if strings.HasPrefix(rest, longDir+"/") {
				if longName(rest[len(longDir)+1:]) {
					longNames = append(longNames, name)
				}
				return
			}
			if k, ok := unescape(rest); ok && escapedLen(k) <= MaxNameLen {
				keep(k)
			}
		})
		if err != nil {
			return ListPage{}, err
		}
	}
	longKeys, err := s.longKeys(ctx, m, longNames)
	if err != nil {
		return ListPage{}, err
	}
	for _, k := range longKeys {
		keep(k)
	}
	if sel != nil {
		keys := sel.sorted()
		p := ListPage{Keys: keys}
		if sel.more {
			p.Next = escape(keys[len(keys)-1])
		}
		return p, nil
	}
	slices.SortFunc(all, bytes.Compare)
	sn := &listSnap{m: m, prefix: string(opts.Prefix), keys: all, size: allBytes}
	if len(all) > limit {
		s.saveSnapshot(sn)
	}
	return sn.page(nil, limit), nil
}

// parseCursor splits a List cursor: the escaped last key of the previous
// page, and "~" and the snapshot's id in hex when there is one.
func parseCursor(c string) (after []byte, snap uint64, ok bool) {
	if c == "" {
		return nil, 0, true
	}
	if i := strings.LastIndexByte(c, '~'); i >= 0 {
		id, err := strconv.ParseUint(c[i+1:], 16, 64)
		if err != nil || len(c)-i-1 != 16 || id == 0 {
			return nil, 0, false
		}
		c, snap = c[:i], id
	}
	after, ok = unescape(c)
	return after, snap, ok
}

// listSnap is the sorted keys of one listing (see List).
type listSnap struct {
	id     uint64
	m      string
	prefix string
	keys   [][]byte
	size   int
	used   time.Time
}

// page cuts the page of up to limit keys after after (nil: the first).
func (sn *listSnap) page(after []byte, limit int) ListPage {
	i := 0
	if after != nil {
		i, _ = slices.BinarySearchFunc(sn.keys, after, bytes.Compare)
		if i < len(sn.keys) && bytes.Equal(sn.keys[i], after) {
			i++
		}
	}
	end := min(len(sn.keys), i+limit)
	keys := make([][]byte, 0, end-i)
	for _, k := range sn.keys[i:end] {
		keys = append(keys, bytes.Clone(k)) // the caller's to change
	}
	p := ListPage{Keys: keys}
	if end < len(sn.keys) {
		p.Next = escape(keys[len(keys)-1]) + "~" + fmt.Sprintf("%016x", sn.id)
	}
	return p
}

// snapshot returns the listing snapshot id of map m and prefix, or nil.
func (s *S3) snapshot(id uint64, m string, prefix []byte) *listSnap {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	sn := s.snaps[id]
	if sn == nil || sn.m != m || sn.prefix != string(prefix) || time.Since(sn.used) > s3SnapTTL {
		return nil
	}
	sn.used = time.Now()
	return sn
}

// saveSnapshot gives sn an id and keeps it, dropping expired snapshots
// and then the least recently used ones to stay within the budget.
func (s *S3) saveSnapshot(sn *listSnap) {
	var b [8]byte
	for sn.id == 0 {
		_, _ = rand.Read(b[:])
		sn.id = binary.LittleEndian.Uint64(b[:])
	}
	sn.used = time.Now()
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.snaps[sn.id] = sn
	s.snapBytes += sn.size
	for s.snapBytes > s3SnapBytes || len(s.snaps) > s3MaxSnaps {
		var oldest *listSnap
		for _, o := range s.snaps {
			if oldest == nil || o.used.Before(oldest.used) {
				oldest = o
			}
		}
		s.dropSnapshot(oldest)
	}
	for _, o := range s.snaps {
		if time.Since(o.used) > s3SnapTTL {
			s.dropSnapshot(o)
		}
	}
}

func (s *S3) dropSnapshot(sn *listSnap) {
	delete(s.snaps, sn.id)
	s.snapBytes -= sn.size
}

// longName reports whether rest is "hh/<sha256 hex>" with hh its first
// two digits.
func longName(rest string) bool {
	if len(rest) != 2+1+64 || rest[2] != '/' || rest[:2] != rest[3:5] {
		return false
	}
	for i := 3; i < len(rest); i++ {
		if unhex(rest[i]) < 0 {
			return false
		}
	}
	return true
}

// listObjects calls f with every object key under prefix.
func (s *S3) listObjects(ctx context.Context, m, prefix string, f func(string)) error {
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(s3ListPageObjects),
	}
	for {
		if err := s.check(ctx, "list", m); err != nil {
			return err
		}
		octx, cancel := context.WithTimeout(ctx, s.timeout)
		out, err := s.client.ListObjectsV2(octx, in)
		if err != nil {
			err = s.fail(ctx, octx, "list", m, err)
			cancel()
			return err
		}
		cancel()
		for _, o := range out.Contents {
			if name := aws.ToString(o.Key); strings.HasPrefix(name, prefix) {
				f(name)
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// longKeys returns the keys of the long-key objects names (from the cache,
// or the head of each object). Objects deleted meanwhile, and objects this
// package did not write, are left out.
func (s *S3) longKeys(ctx context.Context, m string, names []string) ([][]byte, error) {
	keys := make([][]byte, len(names))
	var todo []int
	s.keysMu.Lock()
	for i, n := range names {
		if k, ok := s.keys[n]; ok {
			keys[i] = k
		} else {
			todo = append(todo, i)
		}
	}
	s.keysMu.Unlock()
	err := s.parallel(ctx, "list", m, len(todo), func(ctx context.Context, j int) error {
		i := todo[j]
		k, err := s.readLongKey(ctx, m, names[i])
		if err != nil {
			return err
		}
		keys[i] = k
		if k != nil {
			s.cacheKey(names[i], k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(keys, func(k []byte) bool { return k == nil }), nil
}

// readLongKey reads the key header of a long key's object: nil without
// error if the object is gone or is not one.
func (s *S3) readLongKey(ctx context.Context, m, name string) ([]byte, error) {
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	data, found, err := s.get(octx, name, "bytes=0-"+strconv.Itoa(s3HeadRange-1))
	if err != nil {
		if apiCode(err) == "InvalidRange" { // an empty object
			return nil, nil
		}
		return nil, s.fail(ctx, octx, "list", m, err)
	}
	if !found || !bytes.HasPrefix(data, []byte(longMagic)) {
		return nil, nil
	}
	klen, w := binary.Uvarint(data[len(longMagic):])
	if w <= 0 || klen > 1<<30 {
		return nil, nil
	}
	need := len(longMagic) + w + int(klen)
	if need > len(data) {
		if len(data) < s3HeadRange { // the whole object, and too short
			return nil, nil
		}
		data, found, err = s.get(octx, name, "bytes=0-"+strconv.Itoa(need-1))
		if err != nil {
			return nil, s.fail(ctx, octx, "list", m, err)
		}
		if !found || len(data) < need {
			return nil, nil
		}
	}
	key := bytes.Clone(data[len(longMagic)+w : need])
	if hashHex(key) != name[strings.LastIndexByte(name, '/')+1:] || escapedLen(key) <= MaxNameLen {
		return nil, nil
	}
	return key, nil
}

// cacheKey remembers the key of a long key's object. The object key is the
// key's hash, so the entry never goes stale; the cache is emptied when it
// outgrows its budget.
func (s *S3) cacheKey(name string, key []byte) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if _, ok := s.keys[name]; ok {
		return
	}
	size := len(name) + len(key) + 64
	if s.keysBytes+size > s3KeyCacheBytes {
		clear(s.keys)
		s.keysBytes = 0
	}
	s.keys[name] = key
	s.keysBytes += size
}

// Close implements Store. Calls in progress finish; later ones fail with
// ErrClosed. Idle connections close on their own after 30 seconds.
func (s *S3) Close() error {
	s.closed.Store(true)
	return nil
}

// keySelect keeps the limit smallest keys added (a max-heap).
type keySelect struct {
	limit int
	keys  [][]byte
	more  bool // a key was dropped: there is a next page
}

func (s *keySelect) Len() int           { return len(s.keys) }
func (s *keySelect) Less(i, j int) bool { return bytes.Compare(s.keys[i], s.keys[j]) > 0 }
func (s *keySelect) Swap(i, j int)      { s.keys[i], s.keys[j] = s.keys[j], s.keys[i] }
func (s *keySelect) Push(x any)         { s.keys = append(s.keys, x.([]byte)) }
func (s *keySelect) Pop() any {
	k := s.keys[len(s.keys)-1]
	s.keys = s.keys[:len(s.keys)-1]
	return k
}

func (s *keySelect) add(k []byte) {
	if len(s.keys) < s.limit {
		heap.Push(s, k)
		return
	}
	s.more = true
	if bytes.Compare(k, s.keys[0]) < 0 {
		s.keys[0] = k
		heap.Fix(s, 0)
	}
}

func (s *keySelect) sorted() [][]byte {
	slices.SortFunc(s.keys, bytes.Compare)
	return s.keys
}

// apiCode returns the S3 error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// fail turns an SDK error into an *Error (see "Errors" in the package
// documentation). parent is the caller's context, octx the operation's
// (with the store's timeout).
func (s *S3) fail(parent, octx context.Context, op, m string, err error) error {
	if cerr := parent.Err(); cerr != nil {
		return &Error{Op: op, Map: m, Err: cerr}
	}
	if octx.Err() != nil {
		return &Error{Op: op, Map: m, Kind: ErrUnavailable,
			Err: fmt.Errorf("s3: no answer within %v (the store's timeout)", s.timeout)}
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	if code := apiCode(err); code != "" || status != 0 {
		msg, kind := classifyCode(code, status, s.bucket)
		if kind == ErrMisconfigured && status == http.StatusMovedPermanently && re != nil && re.Response != nil {
			if r := re.Response.Header.Get("X-Amz-Bucket-Region"); r != "" && checkRegion(r) == nil {
				msg += fmt.Sprintf(" (the bucket is in %s; the store uses %s: set region=%s)", r, s.region, r)
			}
		}
		var ae smithy.APIError
		server := ""
		if errors.As(err, &ae) {
			server = ae.ErrorMessage()
		}
		return &Error{Op: op, Map: m, Kind: kind, Err: fmt.Errorf("s3: %s%s", msg, s.serverMessage(parent, server))}
	}
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cierr x509.CertificateInvalidError
	if errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cierr) {
		return &Error{Op: op, Map: m, Kind: ErrMisconfigured,
			Err: fmt.Errorf("s3: the endpoint's TLS certificate is not trusted: %s", s.scrub(parent, err.Error()))}
	}
	// No HTTP answer: connection refused or reset, DNS, a read cut short.
	cause := err.Error()
	var nerr *net.OpError
	if errors.As(err, &nerr) {
		cause = nerr.Error()
	} else if errors.Is(err, io.ErrUnexpectedEOF) {
		cause = "connection closed in the middle of an answer"
	}
	return &Error{Op: op, Map: m, Kind: ErrUnavailable, Err: fmt.Errorf("s3: %s", s.scrub(parent, cause))}
}

// serverMessage formats a server's error message for an Error, scrubbed.
func (s *S3) serverMessage(ctx context.Context, msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return ""
	}
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return ": " + s.scrub(ctx, msg)
}

// scrub removes the store's credentials from msg. SDK and server texts do
// not contain them (requests are signed in a header, never in a URL), so
// this is a second line of defence.
func (s *S3) scrub(ctx context.Context, msg string) string {
	if s.creds == nil {
		return msg
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	c, err := s.creds.Retrieve(rctx) // cached: no request unless they expired
	if err != nil {
		return msg
	}
	for _, secret := range []string{c.SecretAccessKey, c.SessionToken, c.AccessKeyID} {
		if len(secret) >= 4 {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return msg
}

// classifyCode maps an S3 error code and HTTP status (0 when unknown) to
// an explanation and a kind.
func classifyCode(code string, status int, bucket string) (msg string, kind error) {
	what := code
	if status != 0 {
		if what == "" {
			what = "HTTP " + strconv.Itoa(status)
		} else {
			what += ", HTTP " + strconv.Itoa(status)
		}
	}
	b := strconv.Quote(bucket)
	switch code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
		"InvalidSecurity", "MissingSecurityHeader", "AccountProblem", "InvalidClientTokenId", "UnrecognizedClientException",
		"XAdminUserNotFound": // versitygw's answer to an unknown access key
		msg, kind = "the store refused the credentials ("+what+"): check AWS_ACCESS_KEY_ID and "+
			"AWS_SECRET_ACCESS_KEY, the profile, or the instance role", ErrMisconfigured
	case "RequestTimeTooSkewed":
		msg, kind = "the store refused the request time ("+what+"): this machine's clock is off", ErrMisconfigured
	case "NoSuchBucket":
		msg, kind = "bucket "+b+" does not exist ("+what+")", ErrMisconfigured
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		msg, kind = "wrong region for bucket "+b+" ("+what+")", ErrMisconfigured
	case "AccessDenied", "AllAccessDisabled", "Forbidden":
		msg, kind = "access denied ("+what+"): the credentials need s3:GetObject, s3:PutObject, "+
			"s3:DeleteObject and s3:ListBucket on bucket "+b+" and the prefix", ErrMisconfigured
	case "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "RequestLimitExceeded",
		"TooManyRequests", "TooManyRequestsException", "ServiceUnavailable", "InternalError", "RequestTimeout",
		"RequestTimeoutException", "OperationAborted", "PriorRequestNotComplete", "BandwidthLimitExceeded":
		msg, kind = "the store is busy or failing ("+what+")", ErrUnavailable
	case "":
	default:
		if status == 0 { // a per-key error of DeleteObjects: no status
			msg, kind = "the store failed ("+what+")", ErrUnavailable
		}
	}
	if kind != nil {
		return msg, kind
	}
	switch {
	case status == http.StatusMovedPermanently || status == http.StatusTemporaryRedirect:
		return "wrong region or endpoint for bucket " + b + " (" + what + ")", ErrMisconfigured
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "access denied (" + what + "): check the credentials and their permissions on bucket " + b, ErrMisconfigured
	case status >= 500, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status == 0:
		return "the store failed (" + what + ")", ErrUnavailable
	}
	return "the store rejected the request (" + what + ")", ErrInvalid
}
