# What every part of scripts/bench.sh uses: tools, free ports, wrk and its figures, CPU and
# RSS of a process, and what to stop on exit. Sourced by bench.sh, which sets root, work,
# connections, duration, threads and bin.

need() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-benchmark >/dev/null || missing+=(redis-tools)
  command -v curl >/dev/null || missing+=(curl)
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
    socks = []
    try:
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

# The run of median throughput among "rps …" lines.
median_run() {
  printf '%s\n' "$@" | sort -g -k1,1 | awk '{ runs[NR] = $0 } END { print runs[int((NR + 1) / 2)] }'
}

# wrk against a URL: `wrk_run URL [wrk options, e.g. -s SCRIPT -H HEADER] [-- SCRIPT ARGS]`.
# Prints "rps p50_ms p99_ms requests"; any non-2xx answer or socket error fails the bench.
wrk_run() {
  local url="$1"
  shift
  local opts=() args=()
  while (($#)); do
    if [[ "$1" == -- ]]; then shift; args=("$@"); break; fi
    opts+=("$1")
    shift
  done
  local out
  if ((${#args[@]})); then
    out="$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "${opts[@]}" "$url" -- "${args[@]}")"
  else
    out="$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "${opts[@]}" "$url")"
  fi
  local rps p50 p99 requests
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  if [[ -z "$rps" ]] || grep -qE "Non-2xx|Socket errors" <<<"$out"; then
    echo "wrk run against $url failed or saw errors:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $requests"
}

# CPU time (user + system, in clock ticks) process `pid` has used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Resident memory of process `pid`, in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Stops the nodes of $work/NAME.
nodes_down() { CLUSTER_DIR="$work/$1" ./scripts/cluster.sh down >/dev/null; }

# Stops every node and process the bench started, and removes its files.
cleanup() {
  local d f
  for d in "$work"/*/; do
    if compgen -G "$d*.pid" >/dev/null; then CLUSTER_DIR="${d%/}" ./scripts/cluster.sh down >/dev/null 2>&1 || true; fi
  done
  if [[ -n "${redis_port:-}" ]]; then redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
