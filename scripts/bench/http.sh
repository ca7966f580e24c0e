# The HTTP rows of scripts/bench.sh measured without tokens: one node with metrics on and off
# (alternating), over TLS, the engine's criterion local hit, the owner and a non-owner of three
# nodes, and redis-server with redis-benchmark as the reference of the last table.

# One node with metrics on and off, alternating; then (unless `ONLY=metrics`) over TLS. Prints
# the one-node table; `ONLY=metrics` and the full run add the criterion local hit.
bench_one_node() {
  echo "== one node, metrics on and off (alternating, $rounds rounds)"
  local base off_base round _
  base="$(free_base 1)"
  DISTCACHE_BIN="$bin" BASE_PORT="$base" CLUSTER_DIR="$work/one" ./scripts/cluster.sh up 1 >/dev/null
  "$bin" --endpoint "127.0.0.1:$base" put scratch bench "$value" >/dev/null
  off_base="$(free_base 1)"
  DISTCACHE_BIN="$bin" BASE_PORT="$off_base" CLUSTER_DIR="$work/off" NODE_ARGS="--no-metrics" \
    ./scripts/cluster.sh up 1 >/dev/null
  "$bin" --endpoint "127.0.0.1:$off_base" put scratch bench "$value" >/dev/null
  # CPU per request beside throughput: the metrics' cost is a few per cent, about what
  # throughput moves between rounds on a shared machine, and CPU per request moves less.
  local on_pid off_pid on_runs=() off_runs=()
  on_pid="$(cat "$work"/one/*.pid)"
  off_pid="$(cat "$work"/off/*.pid)"
  for ((round = 0; round < rounds; round++)); do
    on_runs+=("$(wrk_cpu "$on_pid" "http://127.0.0.1:$base/v1/keyspaces/scratch/keys/bench")")
    off_runs+=("$(wrk_cpu "$off_pid" "http://127.0.0.1:$off_base/v1/keyspaces/scratch/keys/bench")")
  done
  local on_cpu off_rps off_p50 off_p99 off_cpu tls_rps tls_p50 tls_p99
  read -r one_rps one_p50 one_p99 on_cpu < <(median_run "${on_runs[@]}")
  read -r off_rps off_p50 off_p99 off_cpu < <(median_run "${off_runs[@]}")
  nodes_down one
  nodes_down off

  if [[ "$only" != metrics ]]; then
    echo "== one node over TLS"
    base="$(free_base 1)"
    DISTCACHE_BIN="$bin" BASE_PORT="$base" CLUSTER_DIR="$work/tls" TLS_DIR="$work/certs" \
      ./scripts/cluster.sh up 1 >/dev/null
    "$bin" --endpoint "https://127.0.0.1:$base" --cacert "$work/certs/ca.pem" put scratch bench "$value" >/dev/null
    read -r tls_rps tls_p50 tls_p99 _ < <(wrk_run "https://127.0.0.1:$base/v1/keyspaces/scratch/keys/bench")
    nodes_down tls
  fi
  echo
  printf '%-28s %12s %10s %10s %12s\n' "GET hit, one node, c=$connections" "req/s" "p50 ms" "p99 ms" "rps/http"
  awk -v r="$one_rps" -v a="$one_p50" -v b="$one_p99" \
    'BEGIN { printf "%-28s %12.0f %10.3f %10.3f %12.2f\n", "http", r, a, b, 1 }'
  awk -v r="$off_rps" -v a="$off_p50" -v b="$off_p99" -v h="$one_rps" \
    'BEGIN { printf "%-28s %12.0f %10.3f %10.3f %12.2f  (metrics on / off = %.3f; goal >= 0.95: %s)\n", "http, --no-metrics", r, a, b, r / h, h / r, (h / r >= 0.95 ? "met" : "not met") }'
  awk -v on="$on_cpu" -v off="$off_cpu" \
    'BEGIN { printf "  CPU per request in the median runs: metrics on %.3f us, off %.3f us (on / off = %.3f)\n", on, off, on / off }'
  if [[ -z "$only" || "$only" == metrics ]]; then
    echo
    echo "== engine local hit against raw moka (criterion, same run)"
    cargo bench --quiet -p distcache --bench engine -- get_hit 2>/dev/null | grep -E '^ +get_hit'
  fi
  if [[ "$only" != metrics ]]; then
    awk -v r="$tls_rps" -v a="$tls_p50" -v b="$tls_p99" -v h="$one_rps" \
      'BEGIN { printf "%-28s %12.0f %10.3f %10.3f %12.2f  (goal >= 0.80: %s)\n", "https (TLS 1.3)", r, a, b, r / h, (r / h >= 0.8 ? "met" : "not met") }'
  fi
}

# The owner and a non-owner of three nodes, then redis-server GET with redis-benchmark at the
# same concurrency; the table comes from print_redis_table.
bench_three_and_redis() {
  echo "== three nodes"
  local base owner other i _
  base="$(free_base 3)"
  DISTCACHE_BIN="$bin" BASE_PORT="$base" CLUSTER_DIR="$work/three" ./scripts/cluster.sh up 3 >/dev/null
  "$bin" --endpoint "127.0.0.1:$base" put scratch bench "$value" >/dev/null
  owner="$("$bin" --endpoint "127.0.0.1:$base" owner scratch bench -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["addr"])')"
  other=""
  for ((i = 0; i < 3; i++)); do
    if [[ "127.0.0.1:$((base + i))" != "$owner" ]]; then other="127.0.0.1:$((base + i))"; break; fi
  done
  read -r own_rps own_p50 own_p99 _ < <(wrk_run "http://$owner/v1/keyspaces/scratch/keys/bench")
  read -r non_rps non_p50 non_p99 _ < <(wrk_run "http://$other/v1/keyspaces/scratch/keys/bench")
  nodes_down three

  echo "== redis-server (reference)"
  start_redis
  local requests csv
  requests=$((${duration%s} * 60000))
  csv="$(redis-benchmark -p "$redis_port" -t get -c "$connections" -n "$requests" -d "$value_bytes" --threads "$threads" --csv 2>/dev/null | tail -1)"
  redis_rps="$(cut -d, -f2 <<<"$csv" | tr -d '"')"
  redis_p50="$(cut -d, -f5 <<<"$csv" | tr -d '"')"
  redis_p99="$(cut -d, -f7 <<<"$csv" | tr -d '"')"
}

print_redis_table() {
  echo
  printf '%-28s %12s %10s %10s %12s %10s %10s\n' "GET hit, c=$connections" "req/s" "p50 ms" "p99 ms" "rps/redis" "p50/redis" "p99/redis"
  row "distcache, one node" "$one_rps" "$one_p50" "$one_p99"
  row "distcache, 3 nodes, owner" "$own_rps" "$own_p50" "$own_p99"
  row "distcache, 3 nodes, non-owner" "$non_rps" "$non_p50" "$non_p99"
  row "redis-server (reference)" "$redis_rps" "$redis_p50" "$redis_p99"
}

row() {
  awk -v n="$1" -v r="$2" -v a="$3" -v b="$4" -v rr="$redis_rps" -v ra="$redis_p50" -v rb="$redis_p99" \
    'BEGIN { printf "%-28s %12.0f %10.3f %10.3f %12.2f %10.2f %10.2f\n", n, r, a, b, r / rr, a / ra, b / rb }'
}
