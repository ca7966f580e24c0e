# The Redis-protocol rows of scripts/bench.sh: one node's `--resp-listen` GET hit against
# redis-server with the same redis-benchmark command, unpipelined and -P16, alternating.

# Starts a throw-away redis-server (once) on $redis_port.
start_redis() {
  [[ -n "${redis_port:-}" ]] && return 0
  redis_port="$(free_base 1)"
  redis-server --port "$redis_port" --save '' --appendonly no --daemonize yes --logfile "$work/redis.log" >/dev/null
  until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
}

# redis-benchmark of `GET scratch:bench` against a port served by process `pid`, with a
# pipeline depth; prints "rps p50_ms p99_ms cpu_us_per_request". The same literal command
# against both servers, sized to run about DURATION against redis-server. CPU per request is
# the server's own CPU time over the requests: unlike throughput, it hardly moves when other
# processes share the cores. Throughput is the requests over the run's wall-clock time, read
# here: redis-benchmark's own figure with --threads counts time in steps of a quarter second,
# a quarter of a one-second run.
resp_run() {
  local port="$1" pipeline="$2" pid="$3" n csv before after started ended
  n=$(( ${duration%s} * (pipeline > 1 ? 1500000 : 150000) ))
  before="$(cpu_ticks "$pid")"
  started="$(date +%s%N)"
  csv="$(redis-benchmark -p "$port" -c "$connections" -n "$n" -P "$pipeline" --threads "$threads" --csv GET scratch:bench 2>/dev/null | tail -1)"
  ended="$(date +%s%N)"
  after="$(cpu_ticks "$pid")"
  local rps p50 p99 cpu
  cpu="$(awk -v a="$before" -v b="$after" -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / hz * 1e6 / n }')"
  rps="$(awk -v n="$n" -v ns="$((ended - started))" 'BEGIN { printf "%.0f", n / (ns / 1e9) }')"
  [[ "$csv" == *,* ]] || rps=""
  p50="$(cut -d, -f5 <<<"$csv" | tr -d '"')"
  p99="$(cut -d, -f7 <<<"$csv" | tr -d '"')"
  if [[ -z "$rps" ]]; then
    echo "redis-benchmark against port $port failed: $csv" >&2
    exit 1
  fi
  echo "$rps $p50 $p99 $cpu"
}

bench_resp() {
  echo "== Redis protocol: one node against redis-server (alternating, $rounds rounds)"
  local base resp_port resp_pid redis_pid port pipeline round
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
  local resp_rows=()
  for pipeline in 1 16; do
    local dc_runs=() rd_runs=()
    for ((round = 0; round < rounds; round++)); do
      dc_runs+=("$(resp_run "$resp_port" "$pipeline" "$resp_pid")")
      rd_runs+=("$(resp_run "$redis_port" "$pipeline" "$redis_pid")")
    done
    resp_rows+=("$pipeline $(median_run "${dc_runs[@]}") $(median_run "${rd_runs[@]}")")
  done
  nodes_down resp
  echo
  printf '%-30s %10s %8s %8s %10s %10s %10s %10s %10s\n' "RESP GET hit (redis-benchmark)" "req/s" "p50 ms" "p99 ms" "cpu us/req" "rps/redis" "p50/redis" "p99/redis" "cpu/redis"
  local r d_rps d_p50 d_p99 d_cpu r_rps r_p50 r_p99 r_cpu name
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
}
