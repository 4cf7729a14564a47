#!/usr/bin/env bash
# Incremental rebuild probe: makes a one-line change (SED-EXPR applied to FILE, e.g. a string
# literal inside a function), then times `cargo build --workspace --bins` and TEST-COMMAND (the
# leaf crate's tests alone, build + run), and puts FILE back.
#   bash tests/bench/rebuild.sh FILE SED-EXPR TEST-COMMAND...
# e.g. bash tests/bench/rebuild.sh crates/guard/src/integrity/scan.rs \
#        's/most severe are kept"/most severe are kept."/' cargo nextest run -p mcpd-guard integrity
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
file=$1
expr=$2
shift 2
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
# Warm up: both builds up to date first, so only the change is timed.
cargo build --workspace --bins >/dev/null 2>&1
"$@" >/dev/null 2>&1 || true
backup=$(mktemp)
cp -p "$file" "$backup"
trap 'cp -p "$backup" "$file"; touch "$file"; rm -f "$backup"' EXIT
sed -i "$expr" "$file"
cmp -s "$file" "$backup" && { echo "the sed expression changed nothing in $file" >&2; exit 2; }
b=$(ms cargo build --workspace --bins)
# The tests' build (cfg(test)) was warmed with the old file too, so it rebuilds for the change.
t=$(ms "$@")
printf 'rebuild probe: %s (%s)\n  cargo build --workspace --bins: %d ms\n  %s: %d ms (build + run)\n' "$file" "$expr" "$b" "$*" "$t"
