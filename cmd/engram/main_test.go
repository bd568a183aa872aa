package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/config"
	"github.com/engramdb/engram/internal/node"
)

func runMain(stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestHelpAndDispatch(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"--help"}} {
		out, _, code := runMain("", args...)
		if code != 0 || !strings.Contains(out, "engram serve [flags]") {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
		for _, cmd := range []string{"get KEY", "set KEY [VALUE]", "export", "import", "bench", "ENGRAM_ADDR"} {
			if !strings.Contains(out, cmd) {
				t.Errorf("%v: help does not mention %q", args, cmd)
			}
		}
	}
	if out, _, code := runMain("", "help", "export"); code != 0 || !strings.Contains(out, "Usage: engram export") || !strings.Contains(out, "--match") {
		t.Errorf("help export: exit %d\n%s", code, out)
	}
	if out, _, code := runMain("", "help", "serve"); code != 0 || !strings.Contains(out, "Usage: engram serve") {
		t.Errorf("help serve: exit %d\n%s", code, out)
	}
	if _, errOut, code := runMain("", "help", "nope"); code != 2 || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("help nope: exit %d, %s", code, errOut)
	}
	if out, _, code := runMain("", "version"); code != 0 || out != "engram "+node.Version+"\n" {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if _, errOut, code := runMain("", "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %s", code, errOut)
	}
}

func TestClientCommandsThroughRun(t *testing.T) {
	cfg := config.Default()
	cfg.RESPAddr, cfg.HTTPAddr, cfg.ClusterAddr = "127.0.0.1:0", "off", "127.0.0.1:0"
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	addr := n.RESPAddr()

	if _, errOut, code := runMain("payload\x00", "set", "k", "--stdin", "--addr", addr); code != 0 {
		t.Fatalf("set --stdin: exit %d, %s", code, errOut)
	}
	if out, errOut, code := runMain("", "get", "k", "--addr", addr); code != 0 || out != "payload\x00" {
		t.Errorf("get: exit %d, %q, %s", code, out, errOut)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	_, errOut, code := runMain("", "ping", "--addr", dead)
	if code != 1 || !strings.Contains(errOut, "cannot connect to "+dead) || !strings.Contains(errOut, "start one with 'engram serve'") {
		t.Errorf("ping with no node: exit %d, %s", code, errOut)
	}
}
