#!/usr/bin/env bash
# HTTP benchmarks on loopback, measured against redis-server in the same run. The parts live
# in scripts/bench/: resp.sh (7.), http.sh (1.–3., 5., 6.), memory.sh (4.), common.sh.
#
# Measures GET-hit throughput and p50/p99 latency of
#   1. one distcache node (the key's owner, main cache), with metrics on (the default) and
#      with --no-metrics, alternating ROUNDS times between the two (medians; goal: metrics
#      cost less than 5%),
#   2. a non-owner of a 3-node cluster (its hot copy), and the owner of the same cluster,
#   3. redis-server GET with redis-benchmark at the same concurrency (the reference),
# then prints each distcache figure as a ratio of redis', and
#   4. memory (goal P6): one node's RSS growth while 3× a keyspace's max_bytes of unique
#      16 B, 1 KiB and 64 KiB values are PUT, divided by the bytes the keyspace then holds,
#   5. one node over HTTPS (TLS 1.3, keep-alive) against the same node's plain HTTP figure
#      measured just before it (goal ≥ 0.8×),
#   6. the engine's local hit against raw moka (the criterion bench `engine -- get_hit`,
#      goal ≤ 1.3×),
#   7. the Redis-protocol front (`--resp-listen`): GET hit of one node against redis-server
#      with redis-benchmark, unpipelined and -P16, the two servers alternating ROUNDS times
#      (medians; goal ≥ 1.0×); and the memory runs of 4. again with the values SET over RESP
#      (redis-benchmark -t set into keyspace `key`).
# This machine is shared and noisy:
# only ratios measured side by side mean anything. Installs wrk and redis through apt when
# missing.
#
# Environment: CONNECTIONS (50), DURATION (10s), THREADS (2), VALUE_BYTES (128), ROUNDS (3),
# MEMORY_MAX_BYTES (128MiB, the keyspace of the memory runs), DISTCACHE_BIN (a prebuilt
# binary to measure instead of building this checkout's), ONLY (`memory`, `tls`, `metrics` or
# `resp`: just that part; `tls` measures plain HTTP and HTTPS of one node, `metrics` one node
# with metrics on and off, then the engine's criterion local hit against raw moka, `resp` the
# Redis-protocol rows of 7. and its memory rows).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

connections="${CONNECTIONS:-50}"
duration="${DURATION:-10s}"
threads="${THREADS:-2}"
value_bytes="${VALUE_BYTES:-128}"
rounds="${ROUNDS:-3}"
memory_max_bytes="${MEMORY_MAX_BYTES:-128MiB}"
only="${ONLY:-}"
case "$only" in
  "" | resp | metrics | tls | memory) ;;
  *) echo "ONLY must be one of resp, metrics, tls, memory (or unset: everything)" >&2; exit 2 ;;
esac
work="$(mktemp -d)"
redis_port=""
memory_rows=()

for part in common resp http memory; do
  # shellcheck source=/dev/null
  source "scripts/bench/$part.sh"
done
trap cleanup EXIT

need
if [[ -n "${DISTCACHE_BIN:-}" ]]; then
  bin="$DISTCACHE_BIN"
else
  bin="$(cargo build --quiet --release -p distcache-cli >&2 && echo "${CARGO_TARGET_DIR:-$root/target}/release/distcache")"
fi
value="$(head -c "$value_bytes" /dev/zero | tr '\0' 'x')"

case "$only" in
  resp)
    bench_resp
    bench_memory resp
    print_memory_table
    ;;
  metrics | tls)
    bench_one_node
    ;;
  memory)
    bench_memory http resp
    print_memory_table
    ;;
  "")
    bench_resp
    bench_one_node
    bench_three_and_redis
    bench_memory http resp
    print_redis_table
    print_memory_table
    ;;
esac
