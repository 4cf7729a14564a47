#!/usr/bin/env bash
# Incremental rebuild probe: makes a one-line change (a new item at the end of FILE), then
# times `cargo build --workspace --bins` and TEST-COMMAND (the leaf crate's tests alone),
# and puts FILE back. Run it after a full `cargo build --workspace --bins --tests`.
#   bash tests/bench/rebuild.sh FILE TEST-COMMAND...
# e.g. bash tests/bench/rebuild.sh crates/guard/src/integrity/scan.rs cargo nextest run -p mcpd-guard
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
file=$1
shift
# Warm up: both builds up to date first, so only the change is timed.
cargo build --workspace --bins >/dev/null 2>&1
"$@" >/dev/null 2>&1
backup=$(mktemp)
cp -p "$file" "$backup"
trap 'cp -p "$backup" "$file"; rm -f "$backup"' EXIT
stamp=$(date +%s%N)
printf '\n#[allow(dead_code)]\nconst _REBUILD_PROBE: u64 = %s;\n' "$stamp" >>"$file"
secs() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
b=$(secs cargo build --workspace --bins) || { echo "build failed"; exit 1; }
printf '\n#[allow(dead_code)]\nconst _REBUILD_PROBE_2: u64 = %s;\n' "$stamp" >>"$file"
t=$(secs "$@")
printf 'rebuild probe: %s\n  cargo build --workspace --bins: %d ms\n  %s: %d ms (build + run)\n' "$file" "$b" "$*" "$t"
