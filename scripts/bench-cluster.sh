#!/usr/bin/env bash
# Measures the cluster figures of docs/benchmarks.md with real processes on
# loopback addresses (127.0.0.2 ...):
#   1. forwarding cost: redis-benchmark GET/SET against a data node that
#      owns every partition (1 data node, --replicas 1) and against a
#      client-role node that forwards every command to it;
#   2. rebalancing: load KEYS keys into 3 nodes (2 copies), start a 4th,
#      time until the table reaches its target (cluster_migrations:0), and
#      count the keys the newcomer received;
#   3. failover: kill -9 one of the 4, time until the survivors' table no
#      longer has it (state ok), and until its copies are re-created; check
#      that no key was lost (DBSIZE before and after).
# It reports; it does not fail on a slow figure (it fails on a lost key).
#
# Usage: bash scripts/bench-cluster.sh
# Environment: KEYS (default 1000000), N (requests per redis-benchmark run,
# default 200000), ENGRAM_BENCH_BASE_PORT (default 27946).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
keys="${KEYS:-1000000}"
requests="${N:-200000}"
port="${ENGRAM_BENCH_BASE_PORT:-27946}"
resp=27379
export ENGRAM_CLUSTER_SECRET="bench-cluster-secret-$RANDOM$RANDOM"

log() { printf 'bench-cluster: %s\n' "$*" >&2; }
die() { printf 'bench-cluster: error: %s\n' "$*" >&2; exit 1; }
command -v redis-benchmark >/dev/null || die "redis-benchmark not found (bash scripts/install-test-deps.sh)"

work="$(mktemp -d)"
bin="$work/engram"
go build -o "$bin" ./cmd/engram
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# start IP ROLE [join] starts a node on IP and records its pid in $last.
start() {
	local ip=$1 role=$2 join=${3:-}
	local args=(serve --resp "$ip:$resp" --http off --cluster "$ip:$port" --role "$role" --log-level warn)
	[ -n "$join" ] && args+=(--join "$join:$port")
	"$bin" "${args[@]}" >"$work/$ip.log" 2>&1 &
	last=$!
	pids+=("$last")
	for _ in $(seq 1 100); do
		redis-cli -h "$ip" -p "$resp" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$work/$ip.log" >&2
	die "node $ip did not start"
}

info() { redis-cli -h "$1" -p "$resp" cluster info | tr -d '\r' | grep "^$2:" | cut -d: -f2; }

# settle IP DATA_NODES waits until IP sees DATA_NODES live data nodes, state
# ok and no migration; prints the seconds it took.
settle() {
	local ip=$1 want=$2 t0
	t0=$(date +%s.%N)
	for _ in $(seq 1 3000); do
		if [ "$(info "$ip" cluster_data_nodes)" = "$want" ] && [ "$(info "$ip" cluster_state)" = ok ] &&
			[ "$(info "$ip" cluster_migrations)" = 0 ]; then
			echo "$(date +%s.%N) - $t0" | bc
			return 0
		fi
		sleep 0.1
	done
	die "cluster did not settle on $ip"
}

rps() { grep -a "throughput summary" | awk '{print $3}'; }
bench() { redis-benchmark -h "$1" -p "$resp" -t "$2" -n "$requests" -r 100000 -d 100 -c 50 -P "$3" 2>/dev/null | rps; }

log "1/3 forwarding cost: one data node owning everything, one client-role node"
start 127.0.0.2 data
start 127.0.0.3 client 127.0.0.2
settle 127.0.0.2 1 >/dev/null
echo "| path | SET P1 | GET P1 | SET P16 | GET P16 |"
echo "|---|---|---|---|---|"
for ip in 127.0.0.2 127.0.0.3; do
	name="owner (local)"
	[ "$ip" = 127.0.0.3 ] && name="non-owner (forwarded)"
	echo "| $name | $(bench $ip set 1) | $(bench $ip get 1) | $(bench $ip set 16) | $(bench $ip get 16) |"
done
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
pids=()
sleep 1

log "2/3 rebalancing: $keys keys in 3 nodes, then a 4th joins"
start 127.0.0.2 data
start 127.0.0.3 data 127.0.0.2
start 127.0.0.4 data 127.0.0.2
settle 127.0.0.2 3 >/dev/null
redis-benchmark -h 127.0.0.2 -p "$resp" -t set -n "$((keys * 3))" -r "$keys" -d 100 -c 50 -P 32 -q >/dev/null 2>&1 || true
before=$(redis-cli -h 127.0.0.2 -p "$resp" dbsize)
log "loaded $before keys"
start 127.0.0.5 data 127.0.0.2
took=$(settle 127.0.0.2 4)
moved=$(redis-cli -h 127.0.0.5 -p "$resp" info keyspace | tr -d '\r' | grep -o 'keys=[0-9]*' | cut -d= -f2 | paste -sd+ | bc)
echo "rebalancing: $before keys, 4th node joined, table at target after ${took}s; the newcomer received $moved key copies ($(echo "$moved / $took" | bc) copies/s)"

log "3/3 failover: kill -9 127.0.0.3"
victim=${pids[1]}
kill -9 "$victim"
t0=$(date +%s.%N)
for _ in $(seq 1 3000); do
	[ "$(info 127.0.0.2 cluster_data_nodes)" = 3 ] && [ "$(info 127.0.0.2 cluster_state)" = ok ] && break
	sleep 0.05
done
detect=$(echo "$(date +%s.%N) - $t0" | bc)
restore=$(settle 127.0.0.2 3)
after=$(redis-cli -h 127.0.0.4 -p "$resp" dbsize)
echo "failover: new table without the killed node after ${detect}s; missing copies re-created after a further ${restore}s; keys before $before, after $after"
[ "$before" = "$after" ] || die "keys lost: $before before, $after after"
