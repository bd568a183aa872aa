#!/usr/bin/env bash
# Installs what the test suite needs, and only what is missing, so that a
# machine that already has everything pays a few milliseconds. Safe to run
# any number of times. Used by scripts/test.sh; run it by hand on a fresh
# machine too.
#
#   redis-server, redis-tools  - compatibility tests and scripts/bench-vs-redis.sh
#                                compare Engram with a real Redis
#   gcc, libc6-dev             - cgo, which go test -race needs
#   staticcheck                - linter, pinned so results do not drift
set -euo pipefail

STATICCHECK_VERSION=2026.1
# The module version of that release: some proxies serve only the
# semantic version, not the release tag.
STATICCHECK_MODULE_VERSION=v0.7.0

log() { printf 'install-test-deps: %s\n' "$*"; }
die() { printf 'install-test-deps: error: %s\n' "$*" >&2; exit 1; }

# sudo only when we are not already root (CI runs as root with no sudo).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $* (and sudo is not installed)"
	fi
}

# --- Debian packages ---------------------------------------------------------
apt_pkgs=()
command -v redis-server >/dev/null 2>&1 || apt_pkgs+=(redis-server)
# The race detector is built with cgo.
if ! command -v "$(go env CC 2>/dev/null || echo gcc)" >/dev/null 2>&1; then
	apt_pkgs+=(gcc libc6-dev)
fi
if ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
	apt_pkgs+=(redis-tools)
fi

# >>> Later issues add their packages here, in the same style: test for the
# >>> command, append the package to apt_pkgs only when it is missing.
# >>>   - chromium (dashboard browser tests)
# >>>   - an S3-compatible server (backing-store tests against real S3 calls)
# <<< end of the place for later packages

if [ "${#apt_pkgs[@]}" -gt 0 ]; then
	command -v apt-get >/dev/null 2>&1 || die "missing ${apt_pkgs[*]} and apt-get is not available: install them by hand"
	log "installing ${apt_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# One update per run, and only because something is missing.
	as_root apt-get update -qq
	as_root apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" </dev/null
fi

# --- Go tools -----------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "go is not on PATH (want Go 1.26 or newer)"
gobin="$(go env GOPATH)/bin"
staticcheck="$gobin/staticcheck"
have=""
if [ -x "$staticcheck" ]; then
	# Prints e.g. "staticcheck 2026.1 (v0.7.0)".
	have="$("$staticcheck" -version 2>/dev/null | awk '{print $2}')" || have=""
fi
if [ "$have" != "$STATICCHECK_VERSION" ]; then
	log "installing staticcheck $STATICCHECK_VERSION into $gobin${have:+ (found $have)}"
	GOBIN="$gobin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_MODULE_VERSION"
fi

# versitygw: a real S3-compatible server for the backing-store tests
# (internal/backing/s3test finds it in <repo>/.cache/bin). Built from source
# with the Go toolchain: about 3 minutes on a cold module cache.
VERSITYGW_VERSION=v1.8.0
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vgw_bin="$repo/.cache/bin"
vgw="$vgw_bin/versitygw"
have=""
if [ -x "$vgw" ]; then
	# The binary carries its module version ("mod github.com/versity/versitygw v1.8.0 h1:...").
	have="$(go version -m "$vgw" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/versity/versitygw" {print $3}')" || have=""
fi
if [ "$have" != "$VERSITYGW_VERSION" ]; then
	log "installing versitygw $VERSITYGW_VERSION into $vgw_bin${have:+ (found $have)}; about 3 minutes the first time"
	mkdir -p "$vgw_bin"
	# Progress: go prints each module it downloads; a line every 30 s while it compiles.
	( while sleep 30; do log "still building versitygw..."; done ) &
	ticker=$!
	trap 'kill "$ticker" 2>/dev/null || true' EXIT
	if ! GOBIN="$vgw_bin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" </dev/null; then
		kill "$ticker" 2>/dev/null || true
		die "could not install versitygw $VERSITYGW_VERSION (go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION)"
	fi
	kill "$ticker" 2>/dev/null || true
	trap - EXIT
	log "versitygw $VERSITYGW_VERSION installed: $vgw"
fi
