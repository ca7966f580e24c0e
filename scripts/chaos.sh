#!/usr/bin/env bash
# The chaos suite: real node processes under a recorded read/write/catalog load while faults
# are injected (kill -9 of a follower, of the raft leader and of a hot key's owner, SIGSTOP
# past the health threshold, full-cluster stop and start, a source 10x slower than its
# deadline, a failing then flapping source, a partition cutting off the raft leader or a
# follower, in network namespaces as root or else on an in-process network), checked for wrong values, stale reads, lost puts,
# catalog anomalies and late reads; then the leader failover time (median of 5).
#
#   scripts/chaos.sh            each phase 5 s (CHAOS_SECONDS=N to change it)
#   CHAOS_LOG=info,distcache::space=debug CHAOS_KEEP_LOGS=1 scripts/chaos.sh
#                               the nodes' log filter; keep their logs and say where
#
# Prints one table row per scenario. The same scenarios run, shorter, in ./scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

export CHAOS_SECONDS="${CHAOS_SECONDS:-5}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
export CHAOS_REPORT="$report"

status=0
cargo nextest run -p distcache-cli --test chaos --no-fail-fast --test-threads 1 || status=$?

echo
# Which kind of partition ran: network namespaces, or the in-process fault transport.
grep '^partition:' "$report" | sort -u || echo "partition: not run"
echo
printf '%-28s %7s %7s %10s %6s %6s %6s %7s %8s %5s %10s\n' \
  scenario ops failed "live fail%" wrong stale lost "cut off" catalog late "max lat ms"
grep -v '^partition:' "$report" || true
exit "$status"
