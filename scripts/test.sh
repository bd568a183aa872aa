#!/usr/bin/env bash
# THE test command for Engram: `bash scripts/test.sh` from anywhere.
#
# Runs, stopping at the first failing step:
#   1. scripts/install-test-deps.sh (no-op when everything is present)
#   2. gofmt -l          must list nothing
#   3. go vet ./...
#   4. staticcheck ./... (pinned version, installed by step 1)
#   5. go test -race -count=1 -timeout 20m ./...
#   6. a short run of every fuzz target in the repo
#
# Environment:
#   ENGRAM_FUZZTIME  how long each fuzz target runs (default 10s; "0" skips
#                    fuzzing, e.g. for a quick local loop)
#   ENGRAM_SOAK=1    enables the long soak tests; they read it themselves, so
#                    it is exported as-is and off unless set. Expect a much
#                    longer run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export ENGRAM_SOAK="${ENGRAM_SOAK:-}"
fuzztime="${ENGRAM_FUZZTIME:-10s}"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

step "install test dependencies"
bash scripts/install-test-deps.sh || fail "scripts/install-test-deps.sh could not install the test dependencies"

command -v go >/dev/null 2>&1 || fail "go is not on PATH"
go version

step "gofmt"
# testdata may hold deliberately malformed Go; .cache and bin are build output.
unformatted="$(find . \( -name .git -o -name testdata -o -name .cache -o -name bin -o -name node_modules \) -prune \
	-o -name '*.go' -type f -print0 | xargs -0 -r gofmt -l)"
if [ -n "$unformatted" ]; then
	printf '%s\n' "$unformatted" >&2
	fail "gofmt: the files above are not formatted; run: gofmt -w <file>"
fi

step "go vet ./..."
go vet ./... || fail "go vet found problems (above)"

step "staticcheck ./..."
"$(go env GOPATH)/bin/staticcheck" ./... || fail "staticcheck found problems (above)"

step "go test -race -count=1 -timeout 20m ./..."
go test -race -count=1 -timeout 20m ./... || fail "tests failed (above); rerun one with: go test -race -run '^TestName\$' ./path/to/pkg"

if [ "$fuzztime" = "0" ]; then
	step "fuzz: skipped (ENGRAM_FUZZTIME=0)"
	exit 0
fi

step "fuzz targets, ${fuzztime} each"
# Only packages whose tests mention a fuzz target are asked for the list, so
# the other packages are not built a second time. -list prints the matching
# names, then an "ok" line we drop.
mapfile -t fuzz_dirs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . 2>/dev/null |
	grep -v -e '/testdata/' -e '^\./\.' | xargs -r -n1 dirname | sort -u)
# fuzz_once DIR NAME runs one target; it fails like go test does, except
# for Go's fuzzing coordinator race (golang/go#75804, fixed in Go 1.27): a
# duration-bounded run can end with "context deadline exceeded" and no
# failing input when the machine is loaded. That case is retried, once.
fuzz_once() {
	local dir=$1 name=$2 out corpus before after
	out="$(mktemp)"
	corpus="$dir/testdata/fuzz/$name"
	before="$(ls "$corpus" 2>/dev/null | sort || true)"
	if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$dir" 2>&1 | tee "$out"; then
		rm -f "$out"
		return 0
	fi
	after="$(ls "$corpus" 2>/dev/null | sort || true)"
	if [ "$before" = "$after" ] && grep -q 'context deadline exceeded' "$out"; then
		rm -f "$out"
		printf 'fuzz: %s stopped with "context deadline exceeded" and no failing input (Go fuzzing coordinator race, golang/go#75804): running it again\n' "$name"
		go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$dir"
		return
	fi
	rm -f "$out"
	return 1
}

targets=0
for dir in "${fuzz_dirs[@]}"; do
	names="$(go test -list '^Fuzz' "$dir")" || fail "go test -list '^Fuzz' $dir failed (above)"
	for name in $(printf '%s\n' "$names" | grep -E '^Fuzz[A-Za-z0-9_]*$' || true); do
		targets=$((targets + 1))
		printf -- '--- %s %s\n' "$dir" "$name"
		fuzz_once "$dir" "$name" ||
			fail "fuzz target $name in $dir failed; the failing input is saved under $dir/testdata/fuzz/$name/ and now runs as a regular test: go test -run '^${name}\$' $dir"
	done
done
printf '%d fuzz targets ran\n' "$targets"

step "all checks passed"
