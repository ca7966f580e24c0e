# Scale curves of issue 18 (`ONLY=scale`, and in the full run): one table, and its JSON in
# target/bench/scale-<short sha>-<unix time>.json (and scale-latest.json). Every distcache row
# has a reference row measured right after it in the same run: the bare axum + moka server
# (`distcache-bench reference`) holding the same keys and values. Nodes run with a tokens file
# (wrk sends a read token; the reference ignores it), deadlines and metrics on.
#
#   keys      GET hit of random keys (keys.lua) among 10k, 1M and 10M keys of 64 B, filled
#             with put-many 10 000 at a time; RSS of both servers printed at 10M
#   values    GET hit of one key of 64 B, 4 KiB, 64 KiB and 1 MiB
#   get-many  POST get-many of 10, 100 and 1000 random keys of the 10k: keys/s and CPU per
#             key, against the reference's get-many of as many keys (same JSON, base64)
#   cluster   3 nodes, 10k keys: random GETs sent to node-1 of keys it owns, then of keys it
#             does not own (a peer hop, or its hot copy); the reference with the 10k keys
#   miss      a keyspace whose http source is `distcache-bench delay-source` (fixed latency
#             SCALE_MISS_DELAY_MS, default 1 ms): GETs of keys never asked (miss.lua), so
#             loads/s, against the reference reading through the same source; then
#             SCALE_BURST (50) concurrent GETs of one new key (source delay 200 ms) must cost
#             the source exactly one fetch.
#
# Environment: SCALE_MAX_BYTES (8GiB: the keyspace and the reference at 10M keys),
# SCALE_KEYS (10000 1000000 10000000).

# One row of the table (columns: tool.py's COLUMNS).
scale_row() { # group name param unit per "rps p50 p99 cpu" "ref_rps ref_p50 ref_p99 ref_cpu" note [rss_kib ref_rss_kib]
  local d r
  read -r -a d <<<"$6"
  read -r -a r <<<"$7"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" \
    "${d[0]}" "${d[1]}" "${d[2]}" "${d[3]}" "${r[0]:--}" "${r[1]:--}" "${r[2]:--}" "${r[3]:--}" \
    "${9:--}" "${10:--}" "${8:-}" >>"$work/scale.rows"
}

# A count for people: 10k, 1M, 10M.
human() { awk -v n="$1" 'BEGIN { if (n >= 1e6 && n % 1e6 == 0) printf "%dM", n / 1e6; else if (n >= 1e3 && n % 1e3 == 0) printf "%dk", n / 1e3; else printf "%d", n }'; }

# A size for people: 64 B, 4 KiB, 1 MiB.
size_name() { awk -v n="$1" 'BEGIN { if (n >= 1048576) printf "%d MiB", n / 1048576; else if (n >= 1024) printf "%d KiB", n / 1024; else printf "%d B", n }'; }

bench_scale() {
  local max_bytes="${SCALE_MAX_BYTES:-8GiB}" counts=(${SCALE_KEYS:-10000 1000000 10000000})
  local auth notes=()
  : >"$work/scale.rows"
  echo "== scale: keys, values, get-many (one node and the reference)"
  secure_up scale1 1
  auth=(-H "Authorization: Bearer $read_token")
  local node="127.0.0.1:$node_base" node_pid
  node_pid="$(cat "$work/scale1/node-1.pid")"
  admin --endpoint "$node" keyspace create scale --max-bytes "$max_bytes" --source none >/dev/null
  reference_up scaleref --keyspace scale --max-bytes "$max_bytes"
  local ref="127.0.0.1:$ref_port" ref_pid
  ref_pid="$(pid_of scaleref)"

  local filled=0 n d r node_idle ref_idle
  node_idle="$(rss_kib "$node_pid")"
  ref_idle="$(rss_kib "$ref_pid")"
  for n in "${counts[@]}"; do
    timeout 900 python3 scripts/bench/tool.py fill scale "$filled" "$n" 64 "$cluster_token" "http://$node" "http://$ref"
    filled="$n"
    local random=(-s scripts/bench/keys.lua "${auth[@]}" -- /v1/keyspaces/scale/keys/k "$n")
    d="$(wrk_cpu "$node_pid" "http://$node" "${random[@]}")"
    r="$(wrk_cpu "$ref_pid" "http://$ref" "${random[@]}")"
    local note node_rss ref_rss
    node_rss="$(rss_kib "$node_pid")"
    ref_rss="$(rss_kib "$ref_pid")"
    note="$(awk -v a="$node_rss" -v ai="$node_idle" -v b="$ref_rss" -v bi="$ref_idle" -v n="$n" \
      'BEGIN { printf "RSS %.0f MB (+%.0f B/key), reference %.0f MB (+%.0f B/key)", a / 1024, (a - ai) * 1024 / n, b / 1024, (b - bi) * 1024 / n }')"
    scale_row keys "GET hit, $(human "$n") keys of 64 B, random" "$n" req/s 1 "$d" "$r" "$note" "$node_rss" "$ref_rss"
  done

  local size path
  for size in 64 4096 65536 1048576; do
    head -c "$size" /dev/zero | tr '\0' 'v' >"$work/value"
    admin --endpoint "$node" put scale "val-$size" --file "$work/value" >/dev/null
    curl -sf -X PUT --data-binary @"$work/value" "http://$ref/v1/keyspaces/scale/keys/val-$size"
    path="/v1/keyspaces/scale/keys/val-$size"
    d="$(wrk_cpu "$node_pid" "http://$node$path" "${auth[@]}")"
    r="$(wrk_cpu "$ref_pid" "http://$ref$path" "${auth[@]}")"
    scale_row values "GET hit, one key of $(size_name "$size")" "$size" req/s 1 "$d" "$r"
  done

  local batch
  for batch in 10 100 1000; do
    local many=(-s scripts/bench/get_many.lua "${auth[@]}" -- /v1/keyspaces/scale/get-many "${counts[0]}" "$batch")
    d="$(wrk_cpu "$node_pid" "http://$node" "${many[@]}")"
    r="$(wrk_cpu "$ref_pid" "http://$ref" "${many[@]}")"
    scale_row get-many "get-many of $batch random keys (of $(human "${counts[0]}"))" "$batch" keys/s "$batch" "$d" "$r" \
      "reference: its get-many, same body"
  done
  nodes_down scale1
  stop scaleref

  echo "== scale: 3 nodes, through the owner and through a non-owner"
  local keys="${counts[0]}"
  secure_up scale3 3
  local seed="127.0.0.1:$node_base" seed_pid split
  seed_pid="$(cat "$work/scale3/node-1.pid")"
  admin --endpoint "$seed" keyspace create scale --max-bytes 1GiB --source none >/dev/null
  reference_up scaleref3 --keyspace scale
  ref="127.0.0.1:$ref_port"
  ref_pid="$(pid_of scaleref3)"
  python3 scripts/bench/tool.py fill scale 0 "$keys" 64 "$cluster_token" "http://$seed" "http://$ref"
  split="$(python3 scripts/bench/tool.py owners "http://$seed" scale "$keys" "$cluster_token" "$seed" "$work")"
  local owned=(-s scripts/bench/keys.lua "${auth[@]}" -- /v1/keyspaces/scale/keys/k "@$work/owned")
  local others=(-s scripts/bench/keys.lua "${auth[@]}" -- /v1/keyspaces/scale/keys/k "@$work/others")
  local all=(-s scripts/bench/keys.lua "${auth[@]}" -- /v1/keyspaces/scale/keys/k "$keys")
  local pids="$seed_pid $(cat "$work/scale3/node-2.pid") $(cat "$work/scale3/node-3.pid")"
  local d_own d_other cpu_note
  d_own="$(wrk_cpu "$pids" "http://$seed" "${owned[@]}")"
  r="$(wrk_cpu "$ref_pid" "http://$ref" "${all[@]}")"
  d_other="$(wrk_cpu "$pids" "http://$seed" "${others[@]}")"
  # CPU per request of the three nodes together; the reference's alone.
  for d in "$d_own" "$d_other"; do
    cpu_note="$(awk '{ printf "%s %s %s %.3f", $1, $2, $3, $4 + $5 + $6 }' <<<"$d")"
    if [[ "$d" == "$d_own" ]]; then
      scale_row cluster "3 nodes: node-1, $(cut -d' ' -f1 <<<"$split") keys it owns" "$keys" req/s 1 "$cpu_note" "$r" "cpu: all 3 nodes"
    else
      scale_row cluster "3 nodes: node-1, $(cut -d' ' -f2 <<<"$split") keys it does not own" "$keys" req/s 1 "$cpu_note" "$r" "cpu: all 3 nodes"
    fi
  done
  nodes_down scale3
  stop scaleref3

  bench_scale_miss
  python3 - "$work/scale.meta" "$connections" "$duration" "$threads" "${notes[@]}" <<'PY'
import json, subprocess, sys, time
path, connections, duration, threads, *notes = sys.argv[1:]
def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()
meta = {"commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "unix_time": int(time.time()), "connections": int(connections), "duration": duration,
        "wrk_threads": int(threads), "notes": notes}
json.dump(meta, open(path, "w"))
PY
  echo
  python3 scripts/bench/tool.py report "$work/scale.rows" "$work/scale.meta" "$root/target/bench"
}

# The miss rows: loads/s through a source of fixed latency, and one fetch for a burst of
# concurrent misses of one key. Adds to notes.
bench_scale_miss() {
  echo "== scale: miss path against a source of fixed latency"
  local delay="${SCALE_MISS_DELAY_MS:-1}" burst="${SCALE_BURST:-50}"
  local source_port
  source_port="$(free_base 1)"
  spawn delay "$bench_bin" delay-source --listen "127.0.0.1:$source_port" --value-bytes 64 --delay-ms "$delay"
  wait_http "http://127.0.0.1:$source_port/healthz"
  local source="http://127.0.0.1:$source_port"
  secure_up scalemiss 1
  local node="127.0.0.1:$node_base" node_pid
  node_pid="$(cat "$work/scalemiss/node-1.pid")"
  admin --endpoint "$node" keyspace create miss --source "$source/v/{key}?delay_ms=$delay" >/dev/null
  admin --endpoint "$node" keyspace create flight --source "$source/v/{key}?delay_ms=200" >/dev/null
  reference_up scalerefmiss --keyspace miss --source "$source/v/{key}?delay_ms=$delay"
  local ref="127.0.0.1:$ref_port" ref_pid
  ref_pid="$(pid_of scalerefmiss)"
  local miss=(-s scripts/bench/miss.lua -H "Authorization: Bearer $read_token" -- /v1/keyspaces/miss/keys/m)
  local before after d r d_note r_note
  before="$(python3 scripts/bench/tool.py fetches "$source")"
  d="$(wrk_cpu "$node_pid" "http://$node" "${miss[@]}")"
  after="$(python3 scripts/bench/tool.py fetches "$source")"
  d_note="$(awk -v a="$before" -v b="$after" -v n="$(cat "$work/last_requests")" 'BEGIN { printf "source fetches per miss: %.3f", (b - a) / n }')"
  before="$after"
  r="$(wrk_cpu "$ref_pid" "http://$ref" "${miss[@]}")"
  after="$(python3 scripts/bench/tool.py fetches "$source")"
  r_note="$(awk -v a="$before" -v b="$after" -v n="$(cat "$work/last_requests")" 'BEGIN { printf "reference: %.3f", (b - a) / n }')"
  scale_row miss "miss, source of ${delay} ms, new keys" "$delay" loads/s 1 "$d" "$r" "$d_note; $r_note"

  # `loads` counts the reads that missed, `loads_deduped` the loads that ran for them.
  local key="burst-$RANDOM$RANDOM" before_loads after_loads count
  flight_loads() {
    admin --endpoint "$node" stats flight -o json |
      python3 -c 'import json,sys; s=json.load(sys.stdin)["nodes"][0]["keyspaces"][0]["stats"]; print(s["loads"], s["loads_deduped"])'
  }
  before_loads="$(flight_loads)"
  python3 scripts/bench/tool.py burst "http://$node/v1/keyspaces/flight/keys/$key" "$burst" "$read_token"
  count="$(curl -sf "$source/fetches/$key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["fetches"])')"
  after_loads="$(flight_loads)"
  notes+=("$(awk -v n="$burst" -v c="$count" -v b="$before_loads" -v a="$after_loads" \
    'BEGIN { split(b, x, " "); split(a, y, " ")
             printf "miss: %d concurrent GETs of one new key (source delay 200 ms), all 200: %d fetch(es) at the source; the node counted %d misses and ran %d load(s) (goal: exactly 1 fetch: %s)", n, c, y[1] - x[1], y[2] - x[2], (c == 1 ? "met" : "not met") }')")
  nodes_down scalemiss
  stop scalerefmiss
  stop delay
}
