#!/usr/bin/env bash
# HTTP benchmarks on loopback, measured against redis-server in the same run.
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
work="$(mktemp -d)"
redis_port=""

cleanup() {
  CLUSTER_DIR="$work/one" ./scripts/cluster.sh down >/dev/null 2>&1 || true
  CLUSTER_DIR="$work/off" ./scripts/cluster.sh down >/dev/null 2>&1 || true
  CLUSTER_DIR="$work/three" ./scripts/cluster.sh down >/dev/null 2>&1 || true
  CLUSTER_DIR="$work/mem" ./scripts/cluster.sh down >/dev/null 2>&1 || true
  CLUSTER_DIR="$work/tls" ./scripts/cluster.sh down >/dev/null 2>&1 || true
  CLUSTER_DIR="$work/resp" ./scripts/cluster.sh down >/dev/null 2>&1 || true
  if [[ -n "$redis_port" ]]; then redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

need() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-benchmark >/dev/null || missing+=(redis-tools)
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} …" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
  fi
}

# A base port with `n` consecutive free ports.
free_base() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - n)
    try:
        socks = []
        for p in range(base, base + n):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        for s in socks: s.close()
        print(base); break
    except OSError:
        for s in socks: s.close()
PY
}

to_ms() { # wrk latency like 312.00us, 1.20ms, 2.00s
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "%s", v } }'
}

# The run of median throughput among "rps p50_ms p99_ms" lines.
median_run() {
  printf '%s\n' "$@" | sort -g -k1,1 | awk '{ runs[NR] = $0 } END { print runs[int((NR + 1) / 2)] }'
}

# Runs wrk against a URL; prints "rps p50_ms p99_ms".
wrk_run() {
  local out
  out="$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "$1")"
  local rps p50 p99
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  if [[ -z "$rps" ]] || grep -q "Non-2xx" <<<"$out"; then
    echo "wrk run failed or saw errors:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

need
if [[ -n "${DISTCACHE_BIN:-}" ]]; then
  bin="$DISTCACHE_BIN"
else
  bin="$(cargo build --quiet --release -p distcache-cli >&2 && echo "${CARGO_TARGET_DIR:-$root/target}/release/distcache")"
fi
value="$(head -c "$value_bytes" /dev/zero | tr '\0' 'x')"

# Starts a throw-away redis-server (once) on $redis_port.
start_redis() {
  [[ -n "$redis_port" ]] && return 0
  redis_port="$(free_base 1)"
  redis-server --port "$redis_port" --save '' --appendonly no --daemonize yes --logfile "$work/redis.log" >/dev/null
  until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
}

# CPU time (user + system, in clock ticks) process `pid` has used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# redis-benchmark of `GET scratch:bench` against a port served by process `pid`, with a
# pipeline depth; prints "rps p50_ms p99_ms cpu_us_per_request". The same literal command
# against both servers. CPU per request is the server's own CPU time over the requests:
# unlike throughput, it hardly moves when other processes share the cores.
resp_run() {
  local port="$1" pipeline="$2" pid="$3" n csv before after
  n=$(( ${duration%s} * (pipeline > 1 ? 250000 : 50000) ))
  before="$(cpu_ticks "$pid")"
  csv="$(redis-benchmark -p "$port" -c "$connections" -n "$n" -P "$pipeline" --threads "$threads" --csv GET scratch:bench 2>/dev/null | tail -1)"
  after="$(cpu_ticks "$pid")"
  local rps p50 p99 cpu
  cpu="$(awk -v a="$before" -v b="$after" -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / hz * 1e6 / n }')"
  rps="$(cut -d, -f2 <<<"$csv" | tr -d '"')"
  p50="$(cut -d, -f5 <<<"$csv" | tr -d '"')"
  p99="$(cut -d, -f7 <<<"$csv" | tr -d '"')"
  if [[ -z "$rps" ]]; then
    echo "redis-benchmark against port $port failed: $csv" >&2
    exit 1
  fi
  echo "$rps $p50 $p99 $cpu"
}

if [[ -z "${ONLY:-}" || "${ONLY:-}" == resp ]]; then
echo "== Redis protocol: one node against redis-server (alternating, $rounds rounds)"
base="$(free_base 1)"
resp_port="$(free_base 1)"
DISTCACHE_BIN="$bin" BASE_PORT="$base" CLUSTER_DIR="$work/resp" \
  NODE_ARGS="--resp-listen 127.0.0.1:$resp_port" ./scripts/cluster.sh up 1 >/dev/null
start_redis
resp_pid="$(cat "$work"/resp/*.pid)"
redis_pid="$(redis-cli -p "$redis_port" info server | awk -F: '/^process_id:/ { print $2 + 0 }')"
for port in "$resp_port" "$redis_port"; do
  [[ "$(redis-cli -p "$port" SET scratch:bench "$value")" == OK ]] || { echo "SET on $port failed" >&2; exit 1; }
done
resp_rows=()
for pipeline in 1 16; do
  dc_runs=()
  rd_runs=()
  for ((round = 0; round < rounds; round++)); do
    dc_runs+=("$(resp_run "$resp_port" "$pipeline" "$resp_pid")")
    rd_runs+=("$(resp_run "$redis_port" "$pipeline" "$redis_pid")")
  done
  resp_rows+=("$pipeline $(median_run "${dc_runs[@]}") $(median_run "${rd_runs[@]}")")
done
CLUSTER_DIR="$work/resp" ./scripts/cluster.sh down >/dev/null
echo
printf '%-30s %10s %8s %8s %10s %10s %10s %10s %10s\n' "RESP GET hit (redis-benchmark)" "req/s" "p50 ms" "p99 ms" "cpu us/req" "rps/redis" "p50/redis" "p99/redis" "cpu/redis"
for r in "${resp_rows[@]}"; do
  read -r pipeline d_rps d_p50 d_p99 d_cpu r_rps r_p50 r_p99 r_cpu <<<"$r"
  name="RESP GET hit, c=$connections"
  ((pipeline > 1)) && name="$name -P$pipeline"
  awk -v n="$name" -v r="$d_rps" -v a="$d_p50" -v b="$d_p99" -v c="$d_cpu" -v rr="$r_rps" -v ra="$r_p50" -v rb="$r_p99" -v rc="$r_cpu" \
    'BEGIN { printf "%-30s %10.0f %8.3f %8.3f %10.3f %10.2f %10.2f %10.2f %10.2f  (goal rps >= 1.00: %s)\n", n, r, a, b, c, r / rr, a / ra, b / rb, c / rc, (r / rr >= 1 ? "met" : "not met") }'
  awk -v n="redis-server${name#RESP GET hit}" -v r="$r_rps" -v a="$r_p50" -v b="$r_p99" -v c="$r_cpu" \
    'BEGIN { printf "%-30s %10.0f %8.3f %8.3f %10.3f %10.2f %10.2f %10.2f %10.2f\n", n, r, a, b, c, 1, 1, 1, 1 }'
done
echo
fi

if [[ "${ONLY:-}" != memory && "${ONLY:-}" != resp ]]; then
echo "== one node, metrics on and off (alternating, $rounds rounds)"
base="$(free_base 1)"
DISTCACHE_BIN="$bin" BASE_PORT="$base" CLUSTER_DIR="$work/one" ./scripts/cluster.sh up 1 >/dev/null
"$bin" --endpoint "127.0.0.1:$base" put scratch bench "$value" >/dev/null
off_base="$(free_base 1)"
DISTCACHE_BIN="$bin" BASE_PORT="$off_base" CLUSTER_DIR="$work/off" NODE_ARGS="--no-metrics" \
  ./scripts/cluster.sh up 1 >/dev/null
"$bin" --endpoint "127.0.0.1:$off_base" put scratch bench "$value" >/dev/null
on_runs=()
off_runs=()
for ((round = 0; round < rounds; round++)); do
  on_runs+=("$(wrk_run "http://127.0.0.1:$base/v1/keyspaces/scratch/keys/bench")")
  off_runs+=("$(wrk_run "http://127.0.0.1:$off_base/v1/keyspaces/scratch/keys/bench")")
done
read -r one_rps one_p50 one_p99 < <(median_run "${on_runs[@]}")
read -r off_rps off_p50 off_p99 < <(median_run "${off_runs[@]}")
CLUSTER_DIR="$work/one" ./scripts/cluster.sh down >/dev/null
CLUSTER_DIR="$work/off" ./scripts/cluster.sh down >/dev/null

if [[ "${ONLY:-}" != metrics ]]; then
echo "== one node over TLS"
base="$(free_base 1)"
DISTCACHE_BIN="$bin" BASE_PORT="$base" CLUSTER_DIR="$work/tls" TLS_DIR="$work/certs" \
  ./scripts/cluster.sh up 1 >/dev/null
"$bin" --endpoint "https://127.0.0.1:$base" --cacert "$work/certs/ca.pem" put scratch bench "$value" >/dev/null
read -r tls_rps tls_p50 tls_p99 < <(wrk_run "https://127.0.0.1:$base/v1/keyspaces/scratch/keys/bench")
CLUSTER_DIR="$work/tls" ./scripts/cluster.sh down >/dev/null
fi
echo
printf '%-28s %12s %10s %10s %12s\n' "GET hit, one node, c=$connections" "req/s" "p50 ms" "p99 ms" "rps/http"
awk -v r="$one_rps" -v a="$one_p50" -v b="$one_p99" \
  'BEGIN { printf "%-28s %12.0f %10.3f %10.3f %12.2f\n", "http", r, a, b, 1 }'
awk -v r="$off_rps" -v a="$off_p50" -v b="$off_p99" -v h="$one_rps" \
  'BEGIN { printf "%-28s %12.0f %10.3f %10.3f %12.2f  (metrics on / off = %.3f; goal >= 0.95: %s)\n", "http, --no-metrics", r, a, b, r / h, h / r, (h / r >= 0.95 ? "met" : "not met") }'
if [[ -z "${ONLY:-}" || "${ONLY:-}" == metrics ]]; then
  echo
  echo "== engine local hit against raw moka (criterion, same run)"
  cargo bench --quiet -p distcache --bench engine -- get_hit 2>/dev/null | grep -E '^ +get_hit'
fi
if [[ "${ONLY:-}" == metrics ]]; then exit 0; fi
awk -v r="$tls_rps" -v a="$tls_p50" -v b="$tls_p99" -v h="$one_rps" \
  'BEGIN { printf "%-28s %12.0f %10.3f %10.3f %12.2f  (goal >= 0.80: %s)\n", "https (TLS 1.3)", r, a, b, r / h, (r / h >= 0.8 ? "met" : "not met") }'
if [[ "${ONLY:-}" == tls ]]; then exit 0; fi

echo "== three nodes"
base="$(free_base 3)"
DISTCACHE_BIN="$bin" BASE_PORT="$base" CLUSTER_DIR="$work/three" ./scripts/cluster.sh up 3 >/dev/null
"$bin" --endpoint "127.0.0.1:$base" put scratch bench "$value" >/dev/null
owner="$("$bin" --endpoint "127.0.0.1:$base" owner scratch bench -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["addr"])')"
other=""
for ((i = 0; i < 3; i++)); do
  if [[ "127.0.0.1:$((base + i))" != "$owner" ]]; then other="127.0.0.1:$((base + i))"; break; fi
done
read -r own_rps own_p50 own_p99 < <(wrk_run "http://$owner/v1/keyspaces/scratch/keys/bench")
read -r non_rps non_p50 non_p99 < <(wrk_run "http://$other/v1/keyspaces/scratch/keys/bench")
CLUSTER_DIR="$work/three" ./scripts/cluster.sh down >/dev/null

echo "== redis-server (reference)"
start_redis
secs="${duration%s}"
requests=$((secs * 60000))
csv="$(redis-benchmark -p "$redis_port" -t get -c "$connections" -n "$requests" -d "$value_bytes" --threads "$threads" --csv 2>/dev/null | tail -1)"
redis_rps="$(cut -d, -f2 <<<"$csv" | tr -d '"')"
redis_p50="$(cut -d, -f5 <<<"$csv" | tr -d '"')"
redis_p99="$(cut -d, -f7 <<<"$csv" | tr -d '"')"

fi

echo "== memory (P6)"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# PUTs `count` unique keys of `size`-byte values per wrk thread, then stops.
cat >"$work/put.lua" <<'LUA'
local counter, limit, prefix = 0, 0, ""
function setup(thread) thread:set("id", tostring(math.random(1, 1e9))) end
function init(args)
  prefix = id
  limit = tonumber(args[1])
  wrk.method = "PUT"
  wrk.body = string.rep("v", tonumber(args[2]))
end
function request()
  counter = counter + 1
  return wrk.format(nil, "/v1/keyspaces/mem/keys/" .. prefix .. "-" .. counter)
end
function response()
  if counter >= limit then wrk.thread:stop() end
end
LUA
memory_rows=()
memory_fronts=(http resp)
[[ "${ONLY:-}" == resp ]] && memory_fronts=(resp)
for front in "${memory_fronts[@]}"; do
for size in 16 1024 65536; do
  base="$(free_base 1)"
  # Over RESP the values go to keyspace `key`: redis-benchmark -t set writes key:<random>.
  keyspace=mem
  node_args=""
  if [[ "$front" == resp ]]; then
    keyspace=key
    resp_port="$(free_base 1)"
    node_args="--resp-listen 127.0.0.1:$resp_port"
  fi
  DISTCACHE_BIN="$bin" BASE_PORT="$base" CLUSTER_DIR="$work/mem" NODE_ARGS="$node_args" \
    ./scripts/cluster.sh up 1 >/dev/null
  "$bin" --endpoint "127.0.0.1:$base" keyspace create "$keyspace" --max-bytes "$memory_max_bytes" --source none >/dev/null
  pid="$(cat "$work"/mem/*.pid)"
  before="$(rss_kib "$pid")"
  max_bytes="$("$bin" --endpoint "127.0.0.1:$base" keyspace get "$keyspace" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_bytes"])')"
  # Three times max_bytes, counting with each value a key of ~20 bytes and the 384 bytes of
  # bookkeeping an entry weighs.
  per_thread=$(( 3 * max_bytes / (size + 404) / threads + 1 ))
  if [[ "$front" == resp ]]; then
    redis-benchmark -p "$resp_port" -t set -c "$connections" -P 16 -r 1000000000 -d "$size" \
      -n $(( per_thread * threads )) -q >/dev/null
  else
    wrk -t"$threads" -c"$connections" -d120s -s "$work/put.lua" "http://127.0.0.1:$base" -- "$per_thread" "$size" >/dev/null
  fi
  held="$("$bin" --endpoint "127.0.0.1:$base" stats "$keyspace" -o json | python3 -c 'import json,sys; k=json.load(sys.stdin)["nodes"][0]["keyspaces"][0]; print(k["main_cache_bytes"]+k["hot_cache_bytes"])')"
  after="$(rss_kib "$pid")"
  memory_rows+=("$front $size $before $after $held")
  CLUSTER_DIR="$work/mem" ./scripts/cluster.sh down >/dev/null
  rm -rf "$work/mem"
done
done

if [[ "${ONLY:-}" != memory && "${ONLY:-}" != resp ]]; then
echo
printf '%-28s %12s %10s %10s %12s %10s %10s\n' "GET hit, c=$connections" "req/s" "p50 ms" "p99 ms" "rps/redis" "p50/redis" "p99/redis"
row() {
  awk -v n="$1" -v r="$2" -v a="$3" -v b="$4" -v rr="$redis_rps" -v ra="$redis_p50" -v rb="$redis_p99" \
    'BEGIN { printf "%-28s %12.0f %10.3f %10.3f %12.2f %10.2f %10.2f\n", n, r, a, b, r / rr, a / ra, b / rb }'
}
row "distcache, one node" "$one_rps" "$one_p50" "$one_p99"
row "distcache, 3 nodes, owner" "$own_rps" "$own_p50" "$own_p99"
row "distcache, 3 nodes, non-owner" "$non_rps" "$non_p50" "$non_p99"
row "redis-server (reference)" "$redis_rps" "$redis_p50" "$redis_p99"
fi

echo
printf '%-28s %12s %12s %14s %12s\n' "memory, 3x max_bytes PUT" "RSS before" "RSS after" "bytes held" "growth/held"
for r in "${memory_rows[@]}"; do
  read -r front size before after held <<<"$r"
  label="$size B values"
  [[ "$front" == resp ]] && label="$size B values, RESP SET"
  awk -v s="$label" -v b="$before" -v a="$after" -v h="$held" \
    'BEGIN { printf "%-28s %10.1fMB %10.1fMB %12.1fMB %12.2f  (P6 goal <= 1.30)\n", s, b / 1024, a / 1024, h / 1e6, (a - b) * 1024 / h }'
done
