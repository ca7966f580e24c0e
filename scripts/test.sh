#!/usr/bin/env bash
# The one gate: formatting, lints, every test, documentation. `.ci/run` calls exactly this.
#
# Tests that need PostgreSQL are marked ignored for plain `cargo test`; this script installs
# PostgreSQL when it is missing, starts a throw-away server on a free loopback port, and runs
# them with everything else. It also installs tmux, which the dashboard test drives, and
# nats-server, which the NATS discovery tests (ignored likewise) start on free ports, and
# redis-tools, whose redis-cli the Redis-protocol tests drive (ignored without it).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

pg_dir=""
pg_bin=""
pg_user=""
cleanup() {
  if [[ -n "$pg_dir" && -n "$pg_bin" ]]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
trap cleanup EXIT

# Runs a PostgreSQL program as a user that may run it (the server refuses root).
as_pg() {
  if [[ -n "$pg_user" ]]; then
    runuser -u "$pg_user" -- "$@"
  else
    "$@"
  fi
}

find_pg_bin() {
  local initdb
  initdb="$(command -v initdb 2>/dev/null || true)"
  if [[ -z "$initdb" ]]; then
    initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)"
  fi
  [[ -n "$initdb" ]] && dirname "$(readlink -f "$initdb")"
}

start_postgres() {
  pg_bin="$(find_pg_bin || true)"
  if [[ -z "$pg_bin" ]]; then
    echo "installing PostgreSQL …"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
    pg_bin="$(find_pg_bin)"
  fi
  if [[ "$(id -u)" == 0 ]]; then
    pg_user=postgres
    id -u "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home "$pg_user"
  fi
  pg_dir="$(mktemp -d)"
  chmod 755 "$pg_dir"
  [[ -n "$pg_user" ]] && chown "$pg_user" "$pg_dir"
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  as_pg "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U distcache >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  export DISTCACHE_TEST_POSTGRES_URL="postgres://distcache@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tools the tests use: tmux (dashboard), nats-server (NATS discovery), redis-cli (RESP front), PostgreSQL (postgres source)"
if ! command -v tmux >/dev/null 2>&1; then
  echo "installing tmux …"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux) >/dev/null
fi
if ! command -v nats-server >/dev/null 2>&1; then
  echo "installing nats-server …"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server) \
    </dev/null >/dev/null
fi
echo "nats-server $(nats-server --version | awk '{print $NF}')"
if ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing redis-tools …"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools) \
    </dev/null >/dev/null
fi
start_postgres

step "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --run-ignored all
  step "doc tests"
  cargo test --workspace --doc --locked
else
  cargo test --workspace --locked --no-fail-fast -- --include-ignored
fi

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "all checks passed"
