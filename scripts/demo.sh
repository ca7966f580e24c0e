#!/usr/bin/env bash
# Shows distcache at work: for now, the engine embedded in a Rust program with its own data
# source (a miss, a hit, single-flight, per-key results, put/delete, stats).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p distcache --example embedded
