package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitTimeout bounds how long a test waits for the binary or a tool. It
// is a safety net that turns a hang into a failure, not a timing
// assertion: nothing healthy comes close.
const waitTimeout = 30 * time.Second

// engramBin is the binary TestMain builds once for the whole package.
var engramBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "engram-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	engramBin = filepath.Join(dir, "engram")
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go command is needed to build engram:", err)
		return 1
	}
	build := exec.Command(gobin, "build", "-o", engramBin, "github.com/engramdb/engram/cmd/engram")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot build cmd/engram:", err)
		return 1
	}
	return m.Run()
}

// readyRE finds the RESP address in the node's startup log line, which is
// how a test learns the port the kernel chose for --resp 127.0.0.1:0.
var readyRE = regexp.MustCompile(`msg="engram node ready" .*\bresp=(\S+)`)

// node is a running engram serve process.
type node struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string // host:port of the RESP listener
	port string

	mu     sync.Mutex
	stderr bytes.Buffer // everything the process logged
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// startNode runs engram serve on a kernel-chosen loopback port with the
// HTTP API off, plus extra flags, and waits until it is ready.
func startNode(t *testing.T, extra ...string) *node {
	t.Helper()
	args := append([]string{"serve", "--resp", "127.0.0.1:0", "--http", "off", "--cluster", "127.0.0.1:0"}, extra...)
	n := &node{t: t, cmd: exec.Command(engramBin, args...), exited: make(chan struct{})}
	// No ENGRAM_* variables or config from the environment running the tests.
	n.cmd.Env = cleanEnv()
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start engram: %v", err)
	}
	ready := make(chan string, 1)
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.stderr.WriteString(line + "\n")
			n.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-scanDone // Wait closes the pipe: read it all first
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-n.exited:
		default:
			n.cmd.Process.Kill()
			<-n.exited
		}
		if t.Failed() {
			t.Logf("engram log:\n%s", n.log())
		}
	})
	select {
	case n.addr = <-ready:
	case <-n.exited:
		t.Fatalf("engram exited before it was ready: %v\n%s", n.err, n.log())
	case <-time.After(waitTimeout):
		t.Fatalf("engram did not log that it was ready within %v\n%s", waitTimeout, n.log())
	}
	n.port = n.addr[strings.LastIndexByte(n.addr, ':')+1:]
	return n
}

func (n *node) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stderr.String()
}

// signalAndWait sends sig and waits for the process to exit.
func (n *node) signalAndWait(sig syscall.Signal) error {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("signal: %v", err)
	}
	select {
	case <-n.exited:
		return n.err
	case <-time.After(waitTimeout):
		n.t.Fatalf("engram did not exit within %v of %v", waitTimeout, sig)
		return nil
	}
}

// cleanEnv is the test's environment without ENGRAM_* variables, so a
// developer's settings cannot change what the binary does.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ENGRAM_") {
			env = append(env, kv)
		}
	}
	return env
}

// tool returns the path of a Redis tool, or skips the test.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed; run scripts/install-test-deps.sh (CI installs it)", name)
	}
	return p
}

// run runs a command with stdin and returns its stdout, failing the test
// if it fails or does not finish.
func run(t *testing.T, stdin io.Reader, name string, args ...string) string {
	t.Helper()
	out, errOut, err := runErr(t, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// runErr is run that returns the error instead.
func runErr(t *testing.T, stdin io.Reader, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	cmd.Env = cleanEnv()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(waitTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s did not finish within %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), waitTimeout, o.String(), e.String())
	}
	return o.String(), e.String(), err
}
