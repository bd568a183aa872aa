// Command engram runs an Engram node and talks to one.
//
//	engram serve [flags]     run a node (engram serve --help lists the flags)
//	engram version           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/engramdb/engram/internal/config"
	"github.com/engramdb/engram/internal/node"
)

const usage = `Engram — a distributed in-memory cache and key-value store that speaks Redis.

Usage:
  engram serve [flags]   run a node (see 'engram serve --help')
  engram version         print the version
  engram help            print this help

Quick start:
  engram serve                      # a single node on 127.0.0.1:7379 (RESP) and :7380 (HTTP)
  redis-cli -p 7379 set hello world
  curl localhost:7380/healthz
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintf(stdout, "engram %s\n", node.Version)
		return 0
	case "serve":
		return serve(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "engram: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func serve(args []string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, "Usage: engram serve [flags]\n\n"+config.Usage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "engram: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	n, err := node.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "engram: %v\n", err)
		return 2
	}
	if err := n.Start(); err != nil {
		fmt.Fprintf(stderr, "engram: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down", "signal", context.Cause(ctx))
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(sctx); err != nil {
		log.Error("unclean shutdown", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
