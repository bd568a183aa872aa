#!/usr/bin/env bash
# Benchmarks Engram against a real redis-server, side by side in one run on
# the same machine, for the targets in SPEC.md section 3:
#   - throughput and p50/p99 latency with redis-benchmark (50 clients,
#     100-byte values, 100k-key space, pipeline 1 and 16, SET and GET);
#   - resident bytes per key after loading 1,000,000 keys of 100 bytes.
# Runs alternate (Engram, then Redis, for each case) so that machine noise
# hits both. Prints a table as it goes and a markdown summary at the end
# for docs/benchmarks.md. It reports; it does not fail on a missed target.
#
# Usage: bash scripts/bench-vs-redis.sh
# Environment:
#   N                           requests per redis-benchmark run (default 200000)
#   ENGRAM_BENCH_KEYS           keys loaded for the memory test (default 1000000)
#   ENGRAM_BENCH_ENGRAM_PORT    Engram's RESP port (default 17379)
#   ENGRAM_BENCH_CLUSTER_PORT   Engram's cluster port (default 17946)
#   ENGRAM_BENCH_REDIS_PORT     Redis's port (default 16379)
#   ENGRAM_BENCH_ENGRAM_CMD     a shell command to start in Engram's place
#                               instead of building ./cmd/engram; it sees
#                               ENGRAM_BENCH_PORT and ENGRAM_BENCH_CLUSTER_PORT,
#                               and must run the server in the foreground, e.g.
#                               'redis-server --port $ENGRAM_BENCH_PORT --save ""'
#                               to check this script against Redis itself.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

requests="${N:-200000}"
keys="${ENGRAM_BENCH_KEYS:-1000000}"
engram_port="${ENGRAM_BENCH_ENGRAM_PORT:-17379}"
cluster_port="${ENGRAM_BENCH_CLUSTER_PORT:-17946}"
redis_port="${ENGRAM_BENCH_REDIS_PORT:-16379}"
engram_cmd="${ENGRAM_BENCH_ENGRAM_CMD:-}"
clients=50
value_size=100
keyspace=100000

die() { printf 'bench-vs-redis: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'bench-vs-redis: %s\n' "$*" >&2; }

for tool in redis-server redis-cli redis-benchmark awk; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run: bash scripts/install-test-deps.sh"
done
[ -r /proc/self/status ] || die "/proc is needed to read resident memory (Linux only)"

work="$(mktemp -d)"
declare -A pid=()

stop() { # stop TARGET: SIGTERM, then SIGKILL if it lingers.
	local p="${pid[$1]:-}"
	[ -n "$p" ] || return 0
	unset "pid[$1]"
	kill "$p" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
cleanup() {
	stop engram
	stop redis
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_of() { if [ "$1" = engram ]; then echo "$engram_port"; else echo "$redis_port"; fi; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() { # start TARGET: launch in the background and wait for PING.
	local target="$1" port
	port="$(port_of "$target")"
	port_busy "$port" && die "port $port ($target) is already in use; pick another with ENGRAM_BENCH_$(tr a-z A-Z <<<"$target")_PORT"
	if [ "$target" = redis ]; then
		redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
			--dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
	elif [ -n "$engram_cmd" ]; then
		port_busy "$cluster_port" && die "cluster port $cluster_port is already in use; pick another with ENGRAM_BENCH_CLUSTER_PORT"
		# exec keeps the PID that of the server itself, whose RSS we read.
		(cd "$work" && ENGRAM_BENCH_PORT="$port" ENGRAM_BENCH_CLUSTER_PORT="$cluster_port" \
			exec bash -c "exec $engram_cmd") >"$work/engram.log" 2>&1 &
	else
		port_busy "$cluster_port" && die "cluster port $cluster_port is already in use; pick another with ENGRAM_BENCH_CLUSTER_PORT"
		(cd "$work" && exec "$root/bin/engram" serve --resp "127.0.0.1:$port" --http off \
			--cluster "127.0.0.1:$cluster_port" --max-memory 0) >"$work/engram.log" 2>&1 &
	fi
	pid[$target]=$!
	for _ in $(seq 100); do
		if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
			return 0
		fi
		kill -0 "${pid[$target]}" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$work/$target.log" >&2 || true
	die "$target did not answer PING on 127.0.0.1:$port (log above)"
}

rss_kb() { # rss_kb TARGET: resident set size in kB.
	awk '/^VmRSS:/ {print $2}' "/proc/${pid[$1]}/status"
}

# --- build and start ---------------------------------------------------------
if [ -z "$engram_cmd" ]; then
	log "building ./bin/engram"
	go build -o ./bin/engram ./cmd/engram ||
		die "cannot build ./cmd/engram; set ENGRAM_BENCH_ENGRAM_CMD to benchmark another server in its place"
	engram_version="$(./bin/engram version 2>/dev/null | head -n 1 || true)"
else
	engram_version="ENGRAM_BENCH_ENGRAM_CMD: $engram_cmd"
fi
redis_version="$(redis-server --version | awk '{print $3}' | sed 's/^v=//')"

start engram
start redis

# --- throughput and latency --------------------------------------------------
declare -A rps=() p50=() p99=()
bench() { # bench TARGET PIPELINE: run redis-benchmark, record per test.
	local target="$1" pipeline="$2" port out
	port="$(port_of "$target")"
	log "redis-benchmark $target, pipeline $pipeline"
	out="$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -d "$value_size" -r "$keyspace" \
		-n "$requests" -t set,get -P "$pipeline" --csv 2>"$work/bench.err")" ||
		{ cat "$work/bench.err" >&2; die "redis-benchmark against $target failed"; }
	# CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
	#      "p95_latency_ms","p99_latency_ms","max_latency_ms"
	local test r a mn m50 m95 m99 mx
	while IFS=, read -r test r a mn m50 m95 m99 mx; do
		[ "$test" = test ] && continue
		rps[$target,$test,$pipeline]="$r"
		p50[$target,$test,$pipeline]="$m50"
		p99[$target,$test,$pipeline]="$m99"
	done < <(tr -d '"' <<<"$out")
	[ -n "${rps[$target,SET,$pipeline]:-}" ] && [ -n "${rps[$target,GET,$pipeline]:-}" ] ||
		{ printf '%s\n' "$out" >&2; die "could not parse redis-benchmark output for $target (above)"; }
}

pipelines=(1 16)
for pipeline in "${pipelines[@]}"; do
	bench engram "$pipeline"
	bench redis "$pipeline"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# verdict: SPEC target is ops/s >= Redis's and p99 <= Redis's.
verdict() {
	awk -v er="$1" -v rr="$2" -v e99="$3" -v r99="$4" \
		'BEGIN { if (er >= rr && e99 <= r99) print "met"; else print "MISSED" }'
}

rows=()
for test in SET GET; do
	for pipeline in "${pipelines[@]}"; do
		e="engram,$test,$pipeline" r="redis,$test,$pipeline"
		rows+=("$test|$pipeline|${rps[$e]}|${rps[$r]}|$(ratio "${rps[$e]}" "${rps[$r]}")|${p50[$e]}/${p99[$e]}|${p50[$r]}/${p99[$r]}|$(verdict "${rps[$e]}" "${rps[$r]}" "${p99[$e]}" "${p99[$r]}")")
	done
done

printf '\n%-5s %8s %14s %14s %7s %18s %18s %7s\n' test pipeline "engram ops/s" "redis ops/s" ratio "engram p50/p99" "redis p50/p99" target
for row in "${rows[@]}"; do
	IFS='|' read -r t pl er rr ra el rl v <<<"$row"
	printf '%-5s %8s %14s %14s %7s %18s %18s %7s\n' "$t" "$pl" "$er" "$rr" "$ra" "$el ms" "$rl ms" "$v"
done

# --- memory per key ----------------------------------------------------------
# Fresh processes: after the benchmark's 100k keys are flushed, allocators
# keep some of that memory, which would hide part of the cost of the next
# million keys. FLUSHALL anyway, so a server that persisted data starts empty.
log "restarting both servers for the memory test"
stop engram
stop redis
start engram
start redis

# RESP for SET key:NNNNNNNNNNNN <100 bytes>, generated on the fly (a few
# seconds for a million keys), identical for both servers.
gen() {
	awk -v n="$keys" -v size="$value_size" 'BEGIN {
		v = sprintf("%*s", size, ""); gsub(/ /, "v", v)
		for (i = 0; i < n; i++)
			printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n", i, size, v
	}'
}

declare -A before=() after=() dbsize=()
for target in engram redis; do
	port="$(port_of "$target")"
	[ "$(redis-cli -p "$port" flushall)" = OK ] || die "FLUSHALL failed on $target"
	sleep 1 # let the RSS reading settle after start and flush
	before[$target]="$(rss_kb "$target")"
	log "loading $keys keys into $target"
	out="$(gen | redis-cli -p "$port" --pipe 2>&1)" || { printf '%s\n' "$out" >&2; die "redis-cli --pipe into $target failed"; }
	grep -q "errors: 0, replies: $keys" <<<"$out" || { printf '%s\n' "$out" >&2; die "loading $target: not every SET succeeded (above)"; }
	sleep 1
	after[$target]="$(rss_kb "$target")"
	dbsize[$target]="$(redis-cli -p "$port" dbsize)"
	[ "${dbsize[$target]}" = "$keys" ] || log "warning: $target DBSIZE is ${dbsize[$target]}, want $keys"
done

per_key() { awk -v a="$1" -v b="$2" -v k="$3" 'BEGIN { printf "%.1f", (b - a) * 1024 / k }'; }
engram_bpk="$(per_key "${before[engram]}" "${after[engram]}" "$keys")"
redis_bpk="$(per_key "${before[redis]}" "${after[redis]}" "$keys")"
mem_ratio="$(ratio "$engram_bpk" "$redis_bpk")"
mem_verdict="$(awk -v e="$engram_bpk" -v r="$redis_bpk" 'BEGIN { print (e <= r) ? "met" : "MISSED" }')"

printf '\n%-7s %10s %14s %14s %10s\n' server dbsize "RSS before kB" "RSS after kB" bytes/key
for target in engram redis; do
	printf '%-7s %10s %14s %14s %10s\n' "$target" "${dbsize[$target]}" "${before[$target]}" "${after[$target]}" \
		"$(per_key "${before[$target]}" "${after[$target]}" "$keys")"
done
printf 'engram/redis bytes per key: %s (target <= 1: %s)\n' "$mem_ratio" "$mem_verdict"

# --- markdown summary --------------------------------------------------------
cat <<MD

## Engram vs Redis, $(date -u +%Y-%m-%d)

Machine: $(nproc) CPUs, $(uname -sr). Redis $redis_version; Engram: ${engram_version:-unknown}.
redis-benchmark: $clients clients, $value_size-byte values, $keyspace-key space, $requests requests per test.

| test | pipeline | engram ops/s | redis ops/s | engram/redis | engram p50/p99 ms | redis p50/p99 ms | target |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
MD
for row in "${rows[@]}"; do
	IFS='|' read -r t pl er rr ra el rl v <<<"$row"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$pl" "$er" "$rr" "$ra" "$el" "$rl" "$v"
done
cat <<MD

Memory for $keys keys \`key:NNNNNNNNNNNN\` with $value_size-byte values (RSS growth / keys):

| server | DBSIZE | RSS before kB | RSS after kB | bytes/key |
| --- | ---: | ---: | ---: | ---: |
| engram | ${dbsize[engram]} | ${before[engram]} | ${after[engram]} | $engram_bpk |
| redis | ${dbsize[redis]} | ${before[redis]} | ${after[redis]} | $redis_bpk |

engram/redis bytes per key: $mem_ratio (target at most 1: $mem_verdict).
MD
