#!/usr/bin/env bash
# Starts or stops a local cluster of distcache nodes on loopback, for people and benchmarks.
#
#   scripts/cluster.sh up [N]    start N nodes (default 3) on 127.0.0.1:BASE_PORT, BASE_PORT+1, …
#   scripts/cluster.sh down      stop them (SIGTERM, then SIGKILL after 10 s)
#   scripts/cluster.sh status    show each node's health
#
# Environment:
#   BASE_PORT       first port (default 3320)
#   CLUSTER_DIR     logs, pids and data (default .demo/cluster)
#   KEYSPACE_FILE   keyspaces every node serves (default examples/keyspaces/scratch.toml)
#   DISTCACHE_BIN   the binary (default: built with cargo --release)
#   NODE_ARGS       extra arguments for every `distcache node start`
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

base_port="${BASE_PORT:-3320}"
dir="${CLUSTER_DIR:-$root/.demo/cluster}"
keyspace_file="${KEYSPACE_FILE:-$root/examples/keyspaces/scratch.toml}"

binary() {
  if [[ -n "${DISTCACHE_BIN:-}" ]]; then
    echo "$DISTCACHE_BIN"
    return
  fi
  cargo build --quiet --release -p distcache-cli >&2
  echo "${CARGO_TARGET_DIR:-$root/target}/release/distcache"
}

wait_ready() {
  local bin="$1" addr="$2"
  if ! "$bin" --endpoint "$addr" wait --timeout 60s >/dev/null; then
    echo "node at $addr did not become ready; see its log in $dir" >&2
    return 1
  fi
}

up() {
  local n="${1:-3}"
  if ls "$dir"/*.pid >/dev/null 2>&1; then
    echo "a cluster is already running from $dir; run '$0 down' first" >&2
    exit 1
  fi
  local bin
  bin="$(binary)"
  mkdir -p "$dir"
  local peers=()
  for ((i = 0; i < n; i++)); do peers+=("127.0.0.1:$((base_port + i))"); done
  local peer_list
  peer_list="$(IFS=,; echo "${peers[*]}")"
  for ((i = 0; i < n; i++)); do
    local id="node-$((i + 1))" addr="${peers[$i]}"
    # shellcheck disable=SC2086
    "$bin" node start --id "$id" --listen "$addr" --data-dir "$dir/$id" \
      --peers "$peer_list" --keyspace-file "$keyspace_file" --minimum-peers-quorum "$n" ${NODE_ARGS:-} \
      >"$dir/$id.log" 2>&1 &
    echo $! >"$dir/$id.pid"
    echo "$addr" >"$dir/$id.addr"
  done
  for addr in "${peers[@]}"; do wait_ready "$bin" "$addr"; done
  # Every member healthy and one leader elected before the cluster is called ready.
  "$bin" --endpoint "${peers[0]}" wait --nodes "$n" --healthy --timeout 60s >/dev/null
  echo "cluster of $n node(s) ready: $peer_list (logs in $dir)"
}

down() {
  shopt -s nullglob
  local pids=("$dir"/*.pid)
  if ((${#pids[@]} == 0)); then
    echo "no cluster running from $dir"
    return 0
  fi
  for f in "${pids[@]}"; do kill -TERM "$(cat "$f")" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for f in "${pids[@]}"; do
    local pid
    pid="$(cat "$f")"
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  echo "cluster stopped"
}

status() {
  shopt -s nullglob
  local bin
  bin="$(binary)"
  for f in "$dir"/*.addr; do
    local addr
    addr="$(cat "$f")"
    printf '%-22s ' "$addr"
    "$bin" --endpoint "$addr" --request-timeout 2s cluster status 2>/dev/null | head -1 || printf 'down\n'
  done
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up [N] | down | status" >&2
    exit 2
    ;;
esac
