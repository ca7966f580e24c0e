#!/usr/bin/env bash
# Benchmarks on loopback, each against a reference measured in the same run: redis-server,
# and a bare axum + moka server (`distcache-bench reference`, benches/src/reference.rs, built
# from the workspace's own pinned crates and release profile).
#
# Measures
#   1. the Redis-protocol front (`--resp-listen`): GET hit of one node against redis-server
#      with redis-benchmark, unpipelined and -P16, the two alternating ROUNDS times (medians,
#      CPU µs per request of each server; goal ≥ 1.0×)                       [scripts/bench/resp.sh]
#   2. HTTP GET hit (wrk) of one node with metrics on (the default) and --no-metrics,
#      alternating ROUNDS times (goal: metrics cost < 5%; CPU µs per request of both); the
#      same node over HTTPS (TLS 1.3, goal ≥ 0.8×); the engine's local hit against raw moka
#      (criterion `engine -- get_hit`, goal ≤ 1.3×); the owner and a non-owner of 3 nodes;
#      redis-server GET at the same concurrency, as the reference of that table
#                                                                          [scripts/bench/http.sh]
#   3. memory (goal P6): one node's RSS growth while 3× a keyspace's max_bytes of unique 16 B,
#      1 KiB and 64 KiB values is PUT over HTTP, and SET over RESP, divided by the bytes the
#      keyspace then holds                                                 [scripts/bench/memory.sh]
#   4. P2: GET hit of one node at its production defaults plus a tokens file (every request
#      carries a read token, deadlines and metrics on), P2_KEYS (20000) keys of
#      P2_VALUE_BYTES (64) read at random, against the reference with the same keys (goal ≥
#      0.90); a non-owner of 3 nodes answering one hot key from its hot copy against the
#      reference with that key (goal ≥ 0.85); alternating ROUNDS times, medians, CPU µs per
#      request and RSS of each server                                      [scripts/bench/p2.sh]
#   5. scale curves, one table plus JSON in target/bench/scale-<sha>-<time>.json and
#      scale-latest.json: GET hit at 10k/1M/10M keys, values of 64 B/4 KiB/64 KiB/1 MiB,
#      get-many of 10/100/1000 keys, 3 nodes through the owner and a non-owner, the miss path
#      through a source of fixed latency and one fetch for concurrent misses of one key; each
#      row against the reference doing the same                          [scripts/bench/scale.sh]
# This machine is shared and noisy: only ratios measured side by side mean anything, and CPU
# per request moves least. Installs wrk, redis and curl through apt when missing.
#
# Environment: CONNECTIONS (50), DURATION (10s, each wrk run), THREADS (2), VALUE_BYTES (128,
# rows 1–2), ROUNDS (3), MEMORY_MAX_BYTES (128MiB, the keyspace of the memory runs),
# DISTCACHE_BIN (a prebuilt node binary to measure instead of building this checkout's),
# BENCH_BIN (a prebuilt distcache-bench), P2_KEYS, P2_VALUE_BYTES, SCALE_* (see
# scripts/bench/scale.sh), ONLY (one part: `resp` (1 and its RESP memory rows), `metrics` (the
# metrics pair and criterion), `tls` (the metrics pair and HTTPS), `memory` (3), `p2` (4 and
# the HTTP memory rows of 3), `scale` (5)). At the defaults `ONLY=p2` takes about 4 minutes
# and `ONLY=scale` 7 to 10, half of it filling 10M keys into the node and the reference (that
# row needs ~10 GB of RAM for the two; SCALE_KEYS="10000 1000000" leaves it out).
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
  "" | resp | metrics | tls | memory | p2 | scale) ;;
  *) echo "ONLY must be one of resp, metrics, tls, memory, p2, scale (or unset: everything)" >&2; exit 2 ;;
esac
work="$(mktemp -d)"
redis_port=""
memory_rows=()

for part in common resp http memory p2 scale; do
  # shellcheck source=/dev/null
  source "scripts/bench/$part.sh"
done
trap cleanup EXIT

need
# One cargo invocation for both binaries: one feature resolution, so the node and the
# reference run the same compiled axum, hyper, tokio and moka.
target="${CARGO_TARGET_DIR:-$root/target}/release"
if [[ -z "${DISTCACHE_BIN:-}" && -z "${BENCH_BIN:-}" ]]; then
  cargo build --quiet --release -p distcache-cli -p distcache-bench >&2
elif [[ -z "${BENCH_BIN:-}" ]]; then
  cargo build --quiet --release -p distcache-bench >&2
elif [[ -z "${DISTCACHE_BIN:-}" ]]; then
  cargo build --quiet --release -p distcache-cli >&2
fi
bin="${DISTCACHE_BIN:-$target/distcache}"
bench_bin="${BENCH_BIN:-$target/distcache-bench}"
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
  p2)
    bench_p2
    bench_memory http
    print_memory_table
    ;;
  scale)
    bench_scale
    ;;
  "")
    bench_resp
    bench_one_node
    bench_three_and_redis
    print_redis_table
    echo
    bench_p2
    bench_memory http resp
    print_memory_table
    echo
    bench_scale
    ;;
esac
