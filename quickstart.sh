#!/usr/bin/env bash
# Quick start: installs the pinned example servers, builds mcpd, serves
# config/mcpd.example.toml on the default Unix socket with the default sled state
# dir, shows `mcpd status`, and keeps serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export MCPD_PEERS="${MCPD_PEERS:-$PWD/.cache/peers}"

bash tests/peers/install.sh >/dev/null
cargo build --release --bin mcpd
mcpd=target/release/mcpd

"$mcpd" serve --config config/mcpd.example.toml &
daemon=$!
trap 'kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null' EXIT INT TERM

# Wait for the socket, then show the table once no server is `starting` any more (a
# first start of the npx/Python servers can take a while on a fresh machine).
for _ in $(seq 1 150); do
    "$mcpd" status >/dev/null 2>&1 && break
    sleep 0.2
done
"$mcpd" status --settle 120
echo
echo "mcpd is serving (pid $daemon). In another shell try:"
echo "  $mcpd tools"
echo "  $mcpd call everything.echo '{\"message\":\"hello\"}'"
echo "Ctrl-C stops it."
wait "$daemon"
