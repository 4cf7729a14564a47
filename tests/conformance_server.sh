#!/usr/bin/env bash
# Runs the official MCP conformance suite's SERVER scenarios (harness conformance-next,
# @modelcontextprotocol/conformance 0.2.0-alpha.12, the whole suite: `--suite all`) against mcpd's MCP
# front end (the Streamable HTTP endpoint), at --spec-version 2025-11-25 and at 2026-07-28.
#
#   bash tests/conformance_server.sh      (tests/run.sh calls it after the client suite)
#
# mcpd fronts two real servers: tests/servers/py_conformance_server.py (the official Python
# SDK, over stdio, with the tools, resources and prompts the scenarios name) behind the
# profile `conformance` (names = "bare", so the suite sees the names it expects), and
# server-everything in the default profile. The suite cannot send headers, so the endpoint
# runs with mcp_auth = "none" on loopback. Every scenario must pass except those listed,
# each with its reason, in tests/conformance-server-expected.yaml; a listed one that passes
# fails the run too (the harness calls it a stale baseline).
#
# Builds nothing: run `cargo build --workspace --bins` first (run.sh does). Needs the peers
# (bash tests/peers/install.sh). Env: CONFORMANCE_KEEP=1 keeps the output dir (always kept
# on failure). Prints one line per spec version and ends with "conformance-server: N passed,
# M failed" (N, M: spec versions).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
P="${MCPD_PEERS:-$ROOT/.cache/peers}"
NODE="$P/node22"
CONF="$P/node/node_modules/conformance-next/dist/index.js"
PY="$P/venv/bin/python"
MCPD="$ROOT/target/debug/mcpd"
EVERYTHING="$P/node/node_modules/.bin/mcp-server-everything"
EXPECTED="$ROOT/tests/conformance-server-expected.yaml"

fail_setup() {
    echo "conformance-server: $*" >&2
    echo "conformance-server: 0 passed, 1 failed"
    exit 1
}
for f in "$NODE" "$CONF" "$PY" "$EVERYTHING"; do
    [ -e "$f" ] || fail_setup "$f is missing: install the peers with 'bash tests/peers/install.sh'"
done
[ -x "$MCPD" ] || fail_setup "$MCPD is missing: run 'cargo build --workspace --bins' first"

OUT=$(mktemp -d "${TMPDIR:-/tmp}/mcpd-conformance-server.XXXXXX")
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
q() { "$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
cat >"$OUT/mcpd.toml" <<EOF
[daemon]
socket = $(q "$OUT/run/mcpd.sock")
state_dir = $(q "$OUT/state")
mcp_listen = "127.0.0.1:$PORT"
mcp_auth = "none"
log_level = "info,mcpd=debug"

[servers.conf]
command = $(q "$PY")
args = [$(q "$ROOT/tests/servers/py_conformance_server.py")]

[servers.everything]
command = $(q "$EVERYTHING")
args = ["stdio"]

[profiles.conformance]
servers = ["conf"]
names = "bare"
EOF

"$MCPD" serve --config "$OUT/mcpd.toml" >"$OUT/mcpd.log" 2>&1 &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null' EXIT
if ! "$MCPD" --socket "$OUT/run/mcpd.sock" status --settle 60 >"$OUT/status.txt" 2>&1; then
    # The socket may not exist yet: give the daemon a moment, then ask once more.
    sleep 2
    "$MCPD" --socket "$OUT/run/mcpd.sock" status --settle 60 >"$OUT/status.txt" 2>&1 ||
        fail_setup "the daemon did not come up; log: $(tail -n 20 "$OUT/mcpd.log")"
fi
grep -Eq '^conf +stdio .* ready ' "$OUT/status.txt" ||
    fail_setup "the conformance server is not ready: $(cat "$OUT/status.txt")"

passed=0
failed=0
for version in 2025-11-25 2026-07-28; do
    dir="$OUT/$version"
    mkdir -p "$dir"
    start=$(date +%s)
    "$NODE" "$CONF" server --url "http://127.0.0.1:$PORT/mcp/conformance" --suite "${CONFORMANCE_SUITE:-all}" \
        --spec-version "$version" --expected-failures "$EXPECTED" -o "$dir" >"$dir/harness.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    summary=$(sed -e 's/\x1b\[[0-9;]*m//g' "$dir/harness.log" | grep -E '^(Total|Passed|Summary)' | tail -n 2 | tr '\n' ' ')
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS server suite --spec-version $version (${summary:-no summary}, ${secs}s)"
    else
        failed=$((failed + 1))
        echo "FAIL server suite --spec-version $version (exit $rc; ${secs}s); harness output:"
        sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' "$dir/harness.log" | grep -vE '\] SUCCESS ' | tail -n 200
        echo "    (per-scenario checks.json under $dir; daemon log $OUT/mcpd.log)"
    fi
done
if [ "$failed" -eq 0 ] && [ -z "${CONFORMANCE_KEEP:-}" ]; then
    rm -rf "$OUT"
fi
echo "conformance-server: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
