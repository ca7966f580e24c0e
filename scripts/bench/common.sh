# What every part of scripts/bench.sh uses: tools, free ports, wrk and its figures, CPU and
# RSS of a process, nodes with tokens, the reference server and the processes to stop on exit.
# Sourced by bench.sh, which sets root, work, connections, duration, threads, bin and bench_bin.

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

# `wrk_cpu "PID…" URL [wrk_run options]`: wrk_run, plus the CPU time each process used per
# request, in µs. Prints "rps p50_ms p99_ms cpu_us…"; the request count goes to
# $work/last_requests. Unlike throughput, CPU per request
# hardly moves when other processes share the cores.
wrk_cpu() {
  local pids=($1)
  shift
  local before=() after=() pid
  for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
  local run
  run="$(wrk_run "$@")"
  for pid in "${pids[@]}"; do after+=("$(cpu_ticks "$pid")"); done
  local rps p50 p99 requests
  read -r rps p50 p99 requests <<<"$run"
  echo "$requests" >"$work/last_requests"
  local line="$rps $p50 $p99" i
  for i in "${!pids[@]}"; do
    line+=" $(awk -v a="${before[$i]}" -v b="${after[$i]}" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
      'BEGIN { printf "%.3f", (b - a) / hz * 1e6 / n }')"
  done
  echo "$line"
}

# Waits until `url` answers 2xx (30 s at most).
wait_http() {
  local deadline=$((SECONDS + 30))
  until curl -sf -o /dev/null "$1"; do
    if ((SECONDS > deadline)); then echo "$1 did not answer within 30 s" >&2; return 1; fi
    sleep 0.1
  done
}

# `spawn NAME CMD…`: runs a process in the background (log in $work/NAME.log) and records its
# pid for `stop NAME` and for the clean-up on exit.
spawn() {
  local name="$1"
  shift
  mkdir -p "$work/procs"
  "$@" >"$work/$name.log" 2>&1 &
  echo $! >"$work/procs/$name.pid"
  # Not a job of this shell: a SIGKILL from `stop` is not reported as "Killed".
  disown $!
}

pid_of() { cat "$work/procs/$1.pid"; }

stop() {
  local f="$work/procs/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$f"
}

# `reference_up NAME [reference options]`: the bare axum + moka server on a free port, in
# $ref_port once it answers.
reference_up() {
  local name="$1"
  shift
  ref_port="$(free_base 1)"
  spawn "$name" "$bench_bin" reference --listen "127.0.0.1:$ref_port" "$@"
  wait_http "http://127.0.0.1:$ref_port/healthz"
}

# The tokens of the nodes that run with the production defaults plus a tokens file: the
# cluster token ($cluster_token, admin: fills and administration) and a read-only token
# ($read_token, what wrk sends).
make_tokens() {
  cluster_token="bench-cluster-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
  read_token="bench-reader-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
  cat >"$work/tokens.toml" <<TOML
[[token]]
name = "bench-reader"
token_sha256 = "$(printf %s "$read_token" | sha256sum | cut -d' ' -f1)"
role = "read"
TOML
}

# `secure_up NAME N [node args]`: N nodes with a tokens file and the cluster token, metrics
# and deadlines at their defaults; the first port in $node_base.
secure_up() {
  local name="$1" n="$2"
  shift 2
  [[ -n "${cluster_token:-}" ]] || make_tokens
  node_base="$(free_base "$n")"
  DISTCACHE_TOKEN="$cluster_token" DISTCACHE_BIN="$bin" BASE_PORT="$node_base" CLUSTER_DIR="$work/$name" \
    NODE_ARGS="--tokens-file $work/tokens.toml $*" ./scripts/cluster.sh up "$n" >/dev/null
}

# The CLI against a node started by secure_up, as the cluster's admin.
admin() { DISTCACHE_TOKEN="$cluster_token" "$bin" "$@"; }

# Stops the nodes of $work/NAME.
nodes_down() { CLUSTER_DIR="$work/$1" ./scripts/cluster.sh down >/dev/null; }

# Stops every node and process the bench started, and removes its files.
cleanup() {
  local d f
  for d in "$work"/*/; do
    [[ "$d" == "$work/procs/" ]] && continue
    if compgen -G "$d*.pid" >/dev/null; then CLUSTER_DIR="${d%/}" ./scripts/cluster.sh down >/dev/null 2>&1 || true; fi
  done
  for f in "$work"/procs/*.pid; do
    [[ -f "$f" ]] && stop "$(basename "$f" .pid)"
  done
  if [[ -n "${redis_port:-}" ]]; then redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
