#!/usr/bin/env bash
# Runs the official MCP conformance suite's CLIENT scenarios (all of spec 2025-11-25: core and auth,
# the client-credentials extension and the draft auth scenarios of 2026-07-28)
# through mcpd: target/debug/mcpd-conformance-client starts the real daemon against each
# scenario's mock server and does the scenario's work through the gRPC client.
#
#   bash tests/conformance.sh            (tests/run.sh calls it after the Rust tests)
#
# Builds nothing: run `cargo build --workspace --bins` first (run.sh does). Needs the peers
# (bash tests/peers/install.sh) in $MCPD_PEERS (default <repo>/.cache/peers).
# Env: CONFORMANCE_SCENARIOS="a b" to run a subset; CONFORMANCE_KEEP=1 keeps the output dir
# (it is always kept when a scenario fails: checks.json, stdout.txt, stderr.txt per scenario).
# Each scenario runs alone (sse-retry is timing-sensitive). Prints one line per scenario and
# ends with "conformance: N passed, M failed"; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
P="${MCPD_PEERS:-$ROOT/.cache/peers}"
NODE="$P/node22"
CONF="$P/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
CLIENT="$ROOT/target/debug/mcpd-conformance-client"
# Every 2025-11-25 client scenario (`list --client --spec-version 2025-11-25`) plus the
# client-credentials extension.
AUTH="auth/metadata-default auth/metadata-var1 auth/metadata-var2 auth/metadata-var3 auth/basic-cimd
 auth/scope-from-www-authenticate auth/scope-from-scopes-supported auth/scope-omitted-when-undefined
 auth/scope-step-up auth/scope-retry-limit auth/token-endpoint-auth-basic auth/token-endpoint-auth-post
 auth/token-endpoint-auth-none auth/pre-registration auth/client-credentials-basic"
# The suite's `draft` auth scenarios: what became the 2026-07-28 authorization rules
# (resource mismatch, offline_access).
DRAFT="auth/resource-mismatch auth/offline-access-scope auth/offline-access-not-supported"
SCENARIOS=${CONFORMANCE_SCENARIOS:-"initialize tools_call elicitation-sep1034-client-defaults sse-retry $AUTH $DRAFT"}

for f in "$NODE" "$CONF"; do
    if [ ! -e "$f" ]; then
        echo "conformance: $f is missing: install the peers with 'bash tests/peers/install.sh'" >&2
        echo "conformance: 0 passed, 1 failed"
        exit 1
    fi
done
if [ ! -x "$CLIENT" ]; then
    echo "conformance: $CLIENT is missing: run 'cargo build --workspace --bins' first" >&2
    echo "conformance: 0 passed, 1 failed"
    exit 1
fi
case "$ROOT" in
    *[[:space:]]*)
        # The harness splits --command on spaces.
        echo "conformance: the repository path must not contain spaces: $ROOT" >&2
        echo "conformance: 0 passed, 1 failed"
        exit 1
        ;;
esac

OUT=$(mktemp -d "${TMPDIR:-/tmp}/mcpd-conformance.XXXXXX")

passed=0
failed=0
for s in $SCENARIOS; do
    dir="$OUT/$s"
    mkdir -p "$dir"
    start=$(date +%s)
    version=2025-11-25
    case " $DRAFT " in *" $s "*) version=draft ;; esac
    "$NODE" "$CONF" client --scenario "$s" --spec-version "$version" --timeout 60000 \
        --command "$CLIENT" -o "$dir" >"$dir/harness.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    summary=$(grep -E '^Passed: ' "$dir/harness.log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $s (${summary:-no summary}, ${secs}s)"
    else
        failed=$((failed + 1))
        echo "FAIL $s (exit $rc; ${summary:-no summary}, ${secs}s); harness output:"
        sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' "$dir/harness.log"
        echo "    (checks.json, stdout.txt, stderr.txt under $dir)"
    fi
done
if [ "$failed" -eq 0 ] && [ -z "${CONFORMANCE_KEEP:-}" ]; then
    rm -rf "$OUT"
fi

echo "conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
