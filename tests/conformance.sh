#!/usr/bin/env bash
# Runs the official MCP conformance suite's CLIENT scenarios through mcpd: the whole client
# suite (`--suite all`) of harness conformance-next (@modelcontextprotocol/conformance
# 0.2.0-alpha.12) at --spec-version 2025-11-25 and at 2026-07-28, then every extension
# scenario (`list --client`, tagged [extension]) alone, with no spec version. target/debug/mcpd-conformance-client
# is a generic adapter: it starts the real daemon against each scenario's mock server and
# does a host's work through the gRPC client (lists tools, calls them, reads resources,
# answers what the server asks), so the checks measure mcpd, not the adapter.
#
#   bash tests/conformance.sh            (tests/run.sh calls it after the Rust tests)
#
# Every scenario must pass except those listed, each with its reason, in
# tests/conformance-client-expected.yaml; a listed one that passes fails the run too (the
# harness calls it a stale baseline).
#
# Builds nothing: run `cargo build --workspace --bins` first (run.sh does). Needs the peers
# (bash tests/peers/install.sh) in $MCPD_PEERS (default <repo>/.cache/peers).
# Env: CONFORMANCE_SCENARIOS="a b" runs only those scenarios, each alone, at
# CONFORMANCE_VERSION (default 2026-07-28; empty: none, for extensions); CONFORMANCE_KEEP=1 keeps the output dir (it is
# always kept on failure). Ends with "conformance: N passed, M failed" (N, M: runs).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
P="${MCPD_PEERS:-$ROOT/.cache/peers}"
NODE="$P/node22"
CONF="$P/node/node_modules/conformance-next/dist/index.js"
CLIENT="$ROOT/target/debug/mcpd-conformance-client"
EXPECTED="$ROOT/tests/conformance-client-expected.yaml"

fail_setup() {
    echo "conformance: $*" >&2
    echo "conformance: 0 passed, 1 failed"
    exit 1
}
for f in "$NODE" "$CONF"; do
    [ -e "$f" ] || fail_setup "$f is missing: install the peers with 'bash tests/peers/install.sh'"
done
[ -x "$CLIENT" ] || fail_setup "$CLIENT is missing: run 'cargo build --workspace --bins' first"
case "$ROOT" in
    # The harness splits --command on spaces.
    *[[:space:]]*) fail_setup "the repository path must not contain spaces: $ROOT" ;;
esac

OUT=$(mktemp -d "${TMPDIR:-/tmp}/mcpd-conformance.XXXXXX")
passed=0
failed=0

# run NAME ARGS...: one harness run; its summary line, or its output when it failed.
run() {
    local name=$1
    shift
    local dir="$OUT/$(echo "$name" | tr ' /' '__')"
    mkdir -p "$dir"
    local start rc secs summary
    start=$(date +%s)
    "$NODE" "$CONF" client --command "$CLIENT" --timeout 60000 --expected-failures "$EXPECTED" -o "$dir" "$@" \
        >"$dir/harness.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    summary=$(sed -e 's/\x1b\[[0-9;]*m//g' "$dir/harness.log" | grep -E '^(Total|Passed|Summary|Baseline)' | tail -n 3 | tr '\n' ' ')
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $name (${summary:-no summary}, ${secs}s)"
    else
        failed=$((failed + 1))
        echo "FAIL $name (exit $rc; ${secs}s); harness output:"
        sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' "$dir/harness.log" | grep -vE '\] SUCCESS ' | tail -n 200
        echo "    (per-scenario checks.json, stdout.txt, stderr.txt under $dir)"
    fi
}

if [ -n "${CONFORMANCE_SCENARIOS:-}" ]; then
    for s in $CONFORMANCE_SCENARIOS; do
        if [ -n "${CONFORMANCE_VERSION-2026-07-28}" ]; then
            run "$s" --scenario "$s" --spec-version "${CONFORMANCE_VERSION-2026-07-28}"
        else
            run "$s" --scenario "$s"
        fi
    done
else
    for version in 2025-11-25 2026-07-28; do
        run "client suite --spec-version $version" --suite all --spec-version "$version"
    done
    # Extensions are on no spec version's timeline (a dated --spec-version skips them): each
    # alone, without one.
    extensions=$("$NODE" "$CONF" list --client 2>/dev/null | sed -n 's/^  - \([^ ]*\) \[extension\]$/\1/p')
    [ -n "$extensions" ] || fail_setup "the harness lists no extension scenarios"
    for s in $extensions; do
        run "$s" --scenario "$s"
    done
fi
if [ "$failed" -eq 0 ] && [ -z "${CONFORMANCE_KEEP:-}" ]; then
    rm -rf "$OUT"
fi
echo "conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
