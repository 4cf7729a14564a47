#!/usr/bin/env bash
# The project's one test command (run from anywhere):  bash tests/run.sh
#   1. installs the pinned test peers (tests/peers/install.sh) and exports MCPD_PEERS
#   2. cargo fmt --check, the layering check (no module cycles, no leaf crate reaching the
#      core), clippy -D warnings, nextest (or cargo test)
#   3. tests/conformance.sh (client mode) and tests/conformance_server.sh (server mode), if present
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TERM_COLOR=never
export MCPD_PEERS="${MCPD_PEERS:-$PWD/.cache/peers}"

section() { printf '\n==== %s ====\n' "$*"; }

section "install test peers ($MCPD_PEERS)"
bash tests/peers/install.sh

section "cargo fmt --all --check"
cargo fmt --all --check -- --color=never

section "layering (tests/layering/check.py)"
python3 tests/layering/check.py

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The e2e tests run the real binaries (mcpd, mcpd-fault-server, ...), built here.
section "cargo build --workspace --bins"
cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
    section "cargo nextest run --workspace --no-fail-fast"
    cargo nextest run --workspace --no-fail-fast
else
    section "cargo test --workspace (cargo-nextest not found)"
    cargo test --workspace --no-fail-fast
fi

# The retrieval benchmark's bounded form: it checks the dataset loads and prints the figures;
# the full run (10,000 tools, release build) is in tests/bench/README.md.
section "tool search benchmark, bounded (target/debug/mcpd-search-bench --scale 1000 --model M)"
# With the semantic ranker's model from the pinned PyPI package, so its row is printed too.
search_model=$(ls -d "$MCPD_PEERS"/venv/lib/python3*/site-packages/static_model/model | head -n 1)
target/debug/mcpd-search-bench --scale 1000 --searches 200 --model "$search_model"

# The fault suite's bounded form: crash cycles in both containments (cgroups where this
# machine lets mcpd make them, and the process tree); the full run is in tests/bench/README.md.
section "fault suite, bounded (target/debug/mcpd-chaos --cycles 40, both containments)"
target/debug/mcpd-chaos --cycles 40 --seed 1
MCPD_TEST_CONTAINMENT=process-tree target/debug/mcpd-chaos --cycles 40 --seed 2

if [ -f tests/conformance.sh ]; then
    section "conformance (tests/conformance.sh)"
    bash tests/conformance.sh
fi

if [ -f tests/conformance_server.sh ]; then
    section "conformance, server mode (tests/conformance_server.sh)"
    bash tests/conformance_server.sh
fi

section "all tests passed"
