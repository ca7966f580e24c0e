# Goal P2 of issue 18: a node's GET hit against the bare axum + moka reference server
# (`distcache-bench reference`), with the node at its production defaults plus a tokens file:
# every request carries a read token that is checked, deadlines and metrics on.
#
#   one node, P2_KEYS keys of P2_VALUE_BYTES, random GETs   vs the reference with the same keys
#   a non-owner of 3 nodes, one hot key (its hot copy)        vs the reference with that key
#
# alternating node and reference ROUNDS times; medians; each server's CPU time per request.

bench_p2() {
  local keys="${P2_KEYS:-20000}" size="${P2_VALUE_BYTES:-64}"
  echo "== P2: node GET hit (tokens, deadlines, metrics) against the bare axum + moka reference (alternating, $rounds rounds)"
  secure_up p2one 1
  local one="127.0.0.1:$node_base" one_pid
  one_pid="$(cat "$work/p2one/node-1.pid")"
  secure_up p2three 3
  local three_base="$node_base"
  reference_up p2ref --keyspace scratch
  local ref="127.0.0.1:$ref_port" ref_pid
  ref_pid="$(pid_of p2ref)"
  python3 scripts/bench/tool.py fill scratch 0 "$keys" "$size" "$cluster_token" "http://$one" "http://$ref"

  # One key in the three nodes and the reference; asked of a node that does not own it.
  local hot_value owner other i
  hot_value="$(head -c "$size" /dev/zero | tr '\0' 'x')"
  admin --endpoint "127.0.0.1:$three_base" put scratch hot "$hot_value" >/dev/null
  curl -sf -X PUT --data-binary "$hot_value" "http://$ref/v1/keyspaces/scratch/keys/hot"
  owner="$(admin --endpoint "127.0.0.1:$three_base" owner scratch hot -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["addr"])')"
  local other_id="" owner_id=""
  for ((i = 0; i < 3; i++)); do
    if [[ "127.0.0.1:$((three_base + i))" == "$owner" ]]; then owner_id="node-$((i + 1))"
    elif [[ -z "$other_id" ]]; then other="127.0.0.1:$((three_base + i))"; other_id="node-$((i + 1))"; fi
  done
  local other_pid owner_pid
  other_pid="$(cat "$work/p2three/$other_id.pid")"
  owner_pid="$(cat "$work/p2three/$owner_id.pid")"
  local auth=(-H "Authorization: Bearer $read_token")
  local random=(-s scripts/bench/keys.lua "${auth[@]}" -- /v1/keyspaces/scratch/keys/k "$keys")
  # Reads of the key make it hot on the non-owner, which then keeps a copy.
  duration=2s wrk_run "http://$other/v1/keyspaces/scratch/keys/hot" "${auth[@]}" >/dev/null

  local one_runs=() ref_runs=() non_runs=() ref1_runs=() round _
  for ((round = 0; round < rounds; round++)); do
    one_runs+=("$(wrk_cpu "$one_pid" "http://$one" "${random[@]}")")
    ref_runs+=("$(wrk_cpu "$ref_pid" "http://$ref" "${random[@]}")")
    non_runs+=("$(wrk_cpu "$other_pid $owner_pid" "http://$other/v1/keyspaces/scratch/keys/hot" "${auth[@]}")")
    ref1_runs+=("$(wrk_cpu "$ref_pid" "http://$ref/v1/keyspaces/scratch/keys/hot" "${auth[@]}")")
  done
  local one_rss ref_rss other_rss
  one_rss="$(rss_kib "$one_pid")"
  ref_rss="$(rss_kib "$ref_pid")"
  other_rss="$(rss_kib "$other_pid")"
  nodes_down p2one
  nodes_down p2three
  stop p2ref

  local o_rps o_p50 o_p99 o_cpu r_rps r_p50 r_p99 r_cpu n_rps n_p50 n_p99 n_cpu n_owner s_rps s_p50 s_p99 s_cpu
  read -r o_rps o_p50 o_p99 o_cpu < <(median_run "${one_runs[@]}")
  read -r r_rps r_p50 r_p99 r_cpu < <(median_run "${ref_runs[@]}")
  read -r n_rps n_p50 n_p99 n_cpu n_owner < <(median_run "${non_runs[@]}")
  read -r s_rps s_p50 s_p99 s_cpu < <(median_run "${ref1_runs[@]}")
  echo
  printf '%-38s %10s %8s %8s %10s %8s %8s %8s\n' "P2 GET hit, c=$connections, $size B" "req/s" "p50 ms" "p99 ms" "cpu us/req" "RSS MB" "rps/ref" "cpu/ref"
  p2_row() { # name rps p50 p99 cpu rss_kib ref_rps ref_cpu goal
    awk -v n="$1" -v r="$2" -v a="$3" -v b="$4" -v c="$5" -v m="$6" -v rr="$7" -v rc="$8" -v g="$9" \
      'BEGIN { printf "%-38s %10.0f %8.3f %8.3f %10.2f %8.1f %8.2f %8.2f", n, r, a, b, c, m / 1024, r / rr, c / rc
               if (g != "") printf "  (goal rps >= %.2f: %s)", g, (r / rr >= g ? "met" : "not met")
               printf "\n" }'
  }
  p2_row "one node, $keys keys, random" "$o_rps" "$o_p50" "$o_p99" "$o_cpu" "$one_rss" "$r_rps" "$r_cpu" 0.90
  p2_row "reference, $keys keys, random" "$r_rps" "$r_p50" "$r_p99" "$r_cpu" "$ref_rss" "$r_rps" "$r_cpu" ""
  p2_row "non-owner of 3, one hot key" "$n_rps" "$n_p50" "$n_p99" "$n_cpu" "$other_rss" "$s_rps" "$s_cpu" 0.85
  p2_row "reference, one key" "$s_rps" "$s_p50" "$s_p99" "$s_cpu" "$ref_rss" "$s_rps" "$s_cpu" ""
  awk -v c="$n_owner" 'BEGIN { printf "(the owner used %.2f us of CPU per request of the non-owner run: near 0 when the hot copy answers)\n", c }'
}
