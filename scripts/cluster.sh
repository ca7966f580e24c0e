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
#   TLS_DIR         serve TLS with mutual TLS between nodes: a CA and one certificate per node
#                   are made there with `distcache cert` when missing (default: plain HTTP)
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

# The CLI's endpoint and TLS options for `addr`.
cli() {
  local bin="$1" addr="$2"
  shift 2
  if [[ -n "${TLS_DIR:-}" ]]; then
    "$bin" --endpoint "https://$addr" --cacert "$TLS_DIR/ca.pem" "$@"
  else
    "$bin" --endpoint "$addr" "$@"
  fi
}

# Makes the CA (once) and a certificate for each node id given.
make_certs() {
  local bin="$1"
  shift
  [[ -f "$TLS_DIR/ca.pem" ]] || "$bin" cert ca --dir "$TLS_DIR" >/dev/null
  for id in "$@"; do
    [[ -f "$TLS_DIR/$id.pem" ]] || "$bin" cert node --dir "$TLS_DIR" --name "$id" >/dev/null
  done
}

wait_ready() {
  local bin="$1" addr="$2"
  if ! cli "$bin" "$addr" wait --timeout 60s >/dev/null; then
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
  local ids=()
  for ((i = 0; i < n; i++)); do ids+=("node-$((i + 1))"); done
  if [[ -n "${TLS_DIR:-}" ]]; then make_certs "$bin" "${ids[@]}"; fi
  for ((i = 0; i < n; i++)); do
    local id="${ids[$i]}" addr="${peers[$i]}" tls=()
    if [[ -n "${TLS_DIR:-}" ]]; then
      tls=(--tls-cert "$TLS_DIR/$id.pem" --tls-key "$TLS_DIR/$id.key" --tls-ca "$TLS_DIR/ca.pem")
    fi
    # shellcheck disable=SC2086
    "$bin" node start --id "$id" --listen "$addr" --data-dir "$dir/$id" \
      --peers "$peer_list" --keyspace-file "$keyspace_file" --minimum-peers-quorum "$n" \
      "${tls[@]}" ${NODE_ARGS:-} >"$dir/$id.log" 2>&1 &
    echo $! >"$dir/$id.pid"
    echo "$addr" >"$dir/$id.addr"
  done
  for addr in "${peers[@]}"; do wait_ready "$bin" "$addr"; done
  # Every member healthy and one leader elected before the cluster is called ready.
  cli "$bin" "${peers[0]}" wait --nodes "$n" --healthy --timeout 60s >/dev/null
  if [[ -n "${TLS_DIR:-}" ]]; then
    echo "cluster of $n node(s) ready over TLS: $peer_list (CA: $TLS_DIR/ca.pem; logs in $dir)"
  else
    echo "cluster of $n node(s) ready: $peer_list (logs in $dir)"
  fi
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
    cli "$bin" "$addr" --request-timeout 2s cluster status 2>/dev/null | head -1 || printf 'down\n'
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
