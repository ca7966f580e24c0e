# The memory rows of scripts/bench.sh (goal P6): one node's RSS growth while 3× a keyspace's
# max_bytes of unique values is written, divided by the bytes the keyspace then holds.

# `bench_memory FRONT…` (http, resp): for 16 B, 1 KiB and 64 KiB values, PUT with wrk over
# HTTP or SET with redis-benchmark over RESP; the rows go to memory_rows.
bench_memory() {
  echo "== memory (P6)"
  local front size base keyspace node_args resp_port pid before max_bytes per_thread held after
  for front in "$@"; do
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
        wrk -t"$threads" -c"$connections" -d120s -s scripts/bench/put.lua "http://127.0.0.1:$base" -- "$per_thread" "$size" >/dev/null &
        wrk_done $!
      fi
      held="$("$bin" --endpoint "127.0.0.1:$base" stats "$keyspace" -o json | python3 -c 'import json,sys; k=json.load(sys.stdin)["nodes"][0]["keyspaces"][0]; print(k["main_cache_bytes"]+k["hot_cache_bytes"])')"
      after="$(rss_kib "$pid")"
      memory_rows+=("$front $size $before $after $held")
      nodes_down mem
      rm -rf "$work/mem"
    done
  done
}

# Waits for the wrk of pid `$1` whose threads stop themselves (put.lua): wrk's main thread
# sleeps the whole -d before it joins them, so once only it is left it is interrupted.
wrk_done() {
  local pid="$1" deadline=$((SECONDS + 10))
  while (($(ls "/proc/$pid/task" 2>/dev/null | wc -l) == 1)) && ((SECONDS < deadline)); do sleep 0.05; done
  deadline=$((SECONDS + 150))
  while (($(ls "/proc/$pid/task" 2>/dev/null | wc -l) > 1)) && ((SECONDS < deadline)); do sleep 0.2; done
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || true
}

print_memory_table() {
  echo
  printf '%-28s %12s %12s %14s %12s\n' "memory, 3x max_bytes PUT" "RSS before" "RSS after" "bytes held" "growth/held"
  local r front size before after held label
  for r in "${memory_rows[@]}"; do
    read -r front size before after held <<<"$r"
    label="$size B values"
    [[ "$front" == resp ]] && label="$size B values, RESP SET"
    awk -v s="$label" -v b="$before" -v a="$after" -v h="$held" \
      'BEGIN { printf "%-28s %10.1fMB %10.1fMB %12.1fMB %12.2f  (P6 goal <= 1.30)\n", s, b / 1024, a / 1024, h / 1e6, (a - b) * 1024 / h }'
  done
}
