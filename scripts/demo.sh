#!/usr/bin/env bash
# The demo: a local 3-node cluster on the embedded SQLite default.
#
#   ./scripts/demo.sh        build, start a cluster on 127.0.0.1:3320-3322, walk through it,
#                            and leave it running
#   ./scripts/demo.sh tls    the same over TLS: a CA and node certificates made with
#                            `distcache cert` in .demo/certs, mutual TLS between the nodes
#   ./scripts/demo.sh stop   stop the cluster
#
# It builds the binary, creates .demo/shop.db from examples/demo/shop.sql, starts three nodes,
# creates a keyspace backed by the database, shows a miss then a hit, updates the keyspace and
# shows every node applied it, prints the stats, and finally runs the embedded-engine example.
# Needs only cargo and python3 (for the SQLite file). Set BASE_PORT to use other ports.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

demo="$root/.demo"
export CLUSTER_DIR="$demo/cluster"
export BASE_PORT="${BASE_PORT:-3320}"

if [[ "${1:-}" == "stop" ]]; then
  ./scripts/cluster.sh down
  exit 0
fi
scheme=""
if [[ "${1:-}" == "tls" ]]; then
  export TLS_DIR="$demo/certs"
  export DISTCACHE_CACERT="$TLS_DIR/ca.pem"
  scheme="https://"
fi

if [[ -t 1 ]]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi
run() { printf '$ %s\n' "$*"; "$@"; }

say "building distcache (release)"
cargo build --quiet --release -p distcache-cli
bin="${CARGO_TARGET_DIR:-$root/target}/release/distcache"
export DISTCACHE_BIN="$bin"
distcache() { "$bin" "$@"; }

say "creating the sample database $demo/shop.db"
mkdir -p "$demo"
rm -f "$demo/shop.db"
python3 - "$demo/shop.db" "$root/examples/demo/shop.sql" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript(open(sys.argv[2]).read())
db.commit()
print(db.execute("SELECT count(*) FROM products").fetchone()[0], "products")
PY

say "starting 3 nodes"
./scripts/cluster.sh down >/dev/null 2>&1 || true
rm -rf "$CLUSTER_DIR" # a fresh cluster every time
if [[ -n "$scheme" ]]; then rm -rf "$TLS_DIR"; fi # fresh certificates too
./scripts/cluster.sh up 3
export DISTCACHE_ENDPOINT="${scheme}127.0.0.1:$BASE_PORT,${scheme}127.0.0.1:$((BASE_PORT + 1)),${scheme}127.0.0.1:$((BASE_PORT + 2))"
run distcache wait --nodes 3 --healthy --timeout 60s
run distcache cluster status

say "a keyspace backed by SQLite (a change of the raft-replicated catalog)"
run distcache keyspace create products --max-bytes 64MiB --ttl 5m \
  --source "sqlite:$demo/shop.db" --query "SELECT body FROM products WHERE id = ?"

say "a miss, then a hit"
run distcache owner products p1
run distcache get products p1
echo
run distcache stats products
echo "(a miss: p1 was loaded from SQLite by its owner, once)"
run distcache get products p1
echo
run distcache stats products
echo "(a hit: served from memory, SQLite was not asked again)"
run distcache get products p1 p2 p9 || echo "(exit code $?: p9 is not in the database)"

say "updating the keyspace: every node applies the same revision (and starts with fresh caches)"
run distcache keyspace update products --ttl 10m --rate-limit 500/s,burst=100
run distcache cluster status
for i in 0 1 2; do
  printf 'node at 127.0.0.1:%s serves ttl = ' "$((BASE_PORT + i))"
  "$bin" --endpoint "${scheme}127.0.0.1:$((BASE_PORT + i))" keyspace get products -o json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["default_ttl"])'
done

say "warmup: each owner loads its own keys before anyone asks"
run distcache warmup products --keys p3,p4,p5
run distcache warmup products -o json
echo "(without --keys: the keyspace's warm keys and hot keys, the ones read above; the update"
echo " warmed them again already, so they count as skipped, as does p9, not in the database)"

say "stats across the cluster"
run distcache stats

say "the engine embedded in a Rust program (node/examples/embedded.rs)"
cargo run --quiet --release -p distcache --example embedded

cat <<EOF

The cluster is still running (logs in $CLUSTER_DIR).
  try:   export DISTCACHE_ENDPOINT=$DISTCACHE_ENDPOINT${DISTCACHE_CACERT:+ DISTCACHE_CACERT=$DISTCACHE_CACERT}; $bin dashboard
  stop:  ./scripts/demo.sh stop
EOF
