// Package s3test runs a real S3-compatible server, versitygw, for tests:
// the S3 store's own tests and those of the layers above it (read-through,
// write-behind, cluster and end-to-end tests) talk to it with the same
// client code as production.
//
// The versitygw binary is found, in order, at $ENGRAM_VERSITYGW, at
// <repo>/.cache/bin/versitygw (scripts/install-test-deps.sh installs it
// there) and on PATH. When it is missing, New skips the test, except under
// CI=true, where it fails it: CI must never skip these tests silently.
//
// Typical use:
//
//	srv := s3test.New(t)                  // started; stopped by t.Cleanup
//	st := srv.Open(t, "some/prefix")      // a *backing.S3 on it, closed by t.Cleanup
//	url := srv.URL("some/prefix")         // s3://... for --store, with srv.Env() for credentials
//	srv.Stop(); ...; srv.Start()          // an outage, same port and data
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/engramdb/engram/internal/backing"
)

// Version is the versitygw release the tests are written against
// (scripts/install-test-deps.sh installs it).
const Version = "v1.8.0"

// Region is the region the server is started with.
const Region = "us-east-1"

// Server is a versitygw process serving a directory on a loopback port.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint string
	// Bucket is a bucket New created.
	Bucket string
	// AccessKey and SecretKey are the root user's credentials.
	AccessKey, SecretKey string
	// DataDir holds the buckets (one directory each).
	DataDir string

	t       testing.TB
	bin     string
	addr    string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Binary returns the path of the versitygw binary (see the package
// documentation), or an error saying how to install it.
func Binary() (string, error) {
	if p := os.Getenv("ENGRAM_VERSITYGW"); p != "" {
		if isExec(p) {
			return p, nil
		}
		return "", fmt.Errorf("ENGRAM_VERSITYGW=%s is not an executable file", p)
	}
	if root := repoRoot(); root != "" {
		if p := filepath.Join(root, ".cache", "bin", "versitygw"); isExec(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", errors.New("versitygw not found: run scripts/install-test-deps.sh (installs it into <repo>/.cache/bin), " +
		"or set ENGRAM_VERSITYGW to its path")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// repoRoot is the nearest directory above the working directory holding a
// go.mod, or "".
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// New starts a server on a free loopback port with an empty data directory
// and one bucket, and stops it when the test ends. Without the binary it
// skips the test (fails it when CI=true).
func New(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("s3test: %v (CI=true: these tests must not be skipped)", err)
		}
		t.Skipf("s3test: %v", err)
	}
	dir := t.TempDir()
	s := &Server{
		Bucket:    "engram-test",
		AccessKey: "ENGRAMTEST" + randHex(5),
		SecretKey: randHex(20),
		DataDir:   filepath.Join(dir, "data"),
		t:         t,
		bin:       bin,
		logPath:   filepath.Join(dir, "versitygw.log"),
	}
	if err := os.Mkdir(s.DataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.logTail()
		}
	})
	// A free port may be taken between choosing and binding it: try again.
	for attempt := 0; ; attempt++ {
		s.addr = freeAddr(t)
		s.Endpoint = "http://" + s.addr
		err = s.start()
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("s3test: %v", err)
		}
	}
	s.CreateBucket(t, s.Bucket)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: no free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Start starts the server again after Stop, on the same port and data
// directory (a no-op when it runs). It fails the test if the server does
// not answer within 20 seconds.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("s3test: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "--port", s.addr, "--region", Region, "--keep-alive", "--quiet", "posix", s.DataDir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("versitygw exited at start (%s); its log:\n%s", cmd.ProcessState, s.readLog())
		default:
		}
		if answers(s.Endpoint) {
			s.cmd, s.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("versitygw did not answer on %s within 20s; its log:\n%s", s.addr, s.readLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answers reports whether an HTTP server answers at endpoint (any status:
// an unsigned request is refused, which is an answer).
func answers(endpoint string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(endpoint + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode != 0
}

// Stop kills the server (SIGKILL: an abrupt outage) and waits for it to
// exit; a no-op when it is not running. Requests then fail with
// "connection refused".
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Running reports whether the server process runs.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

func (s *Server) readLog() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *Server) logTail() {
	s.t.Logf("s3test: the end of versitygw's log (%s):\n%s", s.logPath, s.readLog())
}

// Credentials returns a provider of the root user's credentials.
func (s *Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")
}

// Options returns the options of an S3 store on the server's bucket under
// prefix, with the credentials set (the environment is not consulted for
// them).
func (s *Server) Options(prefix string) backing.S3Options {
	return backing.S3Options{
		Bucket: s.Bucket, Prefix: prefix, Endpoint: s.Endpoint, Region: Region, PathStyle: true,
		Credentials: s.Credentials(),
	}
}

// URL returns the --store URL of the server's bucket under prefix. The
// credentials are not in it: pass Env() to the process that opens it.
func (s *Server) URL(prefix string) string {
	u := url.URL{Scheme: "s3", Host: s.Bucket, Path: "/" + strings.TrimPrefix(prefix, "/")}
	q := url.Values{"endpoint": {s.Endpoint}, "region": {Region}, "path_style": {"true"}}
	u.RawQuery = q.Encode()
	return u.String()
}

// Env returns the environment variables that give a process the server's
// credentials through the standard AWS chain (and keep it from reading
// this machine's AWS files or instance metadata).
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + Region,
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Open opens an S3 store on the server's bucket under prefix and closes
// it when the test ends.
func (s *Server) Open(t testing.TB, prefix string) *backing.S3 {
	t.Helper()
	st, err := backing.OpenS3(context.Background(), s.Options(prefix))
	if err != nil {
		t.Fatalf("s3test: OpenS3: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Client returns a plain SDK client of the server, for tests that inspect
// or tamper with objects directly.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint), Region: Region, UsePathStyle: true, Credentials: s.Credentials(),
	})
}

// CreateBucket creates another bucket on the server.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("s3test: CreateBucket(%s): %v", name, err)
	}
}

// Objects returns the keys of every object under prefix in the bucket.
func (s *Server) Objects(t testing.TB, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("s3test: ListObjectsV2: %v", err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// PutObject writes an object directly (for tests of foreign or damaged
// objects).
func (s *Server) PutObject(t testing.TB, key string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("s3test: PutObject(%s): %v", key, err)
	}
}
