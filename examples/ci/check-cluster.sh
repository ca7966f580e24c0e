#!/usr/bin/env bash
# A CI step: wait until a distcache cluster is up, apply a keyspace file, and check with JSON
# output that every node serves every keyspace of the file.
#
#   DISTCACHE_ENDPOINT=10.0.0.5:3320 examples/ci/check-cluster.sh keyspaces.toml 3
#
# Environment: DISTCACHE_ENDPOINT (and DISTCACHE_TOKEN) as for every distcache command;
# DISTCACHE_BIN, the binary (default: distcache on PATH); WAIT_TIMEOUT (default 120s). Exit
# codes are distcache's: 4 when the cluster does not come up in time.
set -euo pipefail
bin="${DISTCACHE_BIN:-distcache}"
file="${1:?usage: check-cluster.sh KEYSPACE_FILE [NODES]}"
nodes="${2:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin" wait --nodes "$nodes" --healthy --timeout "${WAIT_TIMEOUT:-120s}"
"$bin" keyspace apply -f "$file" -o json >"$work/applied.json"
"$bin" stats -o json >"$work/stats.json"

python3 - "$work/applied.json" "$work/stats.json" "$nodes" <<'PY'
import json, sys
applied = json.load(open(sys.argv[1]))
stats = json.load(open(sys.argv[2]))
nodes = int(sys.argv[3])
wanted = {c["keyspace"] for c in applied["changes"] if c["action"] != "delete"}
problems = []
if len(stats["nodes"]) < nodes:
    problems.append(f"{len(stats['nodes'])} nodes answered, {nodes} expected")
for node in stats["nodes"]:
    if node.get("error"):
        problems.append(f"{node['node']}: {node['error']['message']}")
        continue
    have = {k["name"] for k in node["keyspaces"]}
    for missing in sorted(wanted - have):
        problems.append(f"{node['node']} does not serve {missing}")
for change in applied["changes"]:
    print(f"{change['action']:>9}  {change['keyspace']}")
if problems:
    print("cluster check failed:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(stats['nodes'])} nodes serve {len(wanted)} keyspaces (revision {applied['revision']})")
PY
