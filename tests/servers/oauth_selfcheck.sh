#!/usr/bin/env bash
# Self-check of the OAuth test peers (tests/servers/oidc_as.mjs + py_oauth_server.py) with curl.
#
#   bash tests/servers/oauth_selfcheck.sh        (needs `bash tests/peers/install.sh` first)
#
# Starts the AS and the MCP resource server on ephemeral ports, then: PRM + 401 challenge,
# open DCR of a public native client, PKCE authorization by following the redirects one
# hop at a time WITHOUT a cookie jar (and once with `curl -L` and a jar), code exchange
# with `resource`, MCP initialize with the bearer token (200), a token for another
# audience (401), refresh-token rotation (old one refused, reuse revokes the grant), and
# a 5 s access token expiring (401). Prints "oauth selfcheck: OK" and exits 0 on success.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
peers="${MCPD_PEERS:-$repo/.cache/peers}"
export MCPD_PEERS="$peers"
PY="$peers/venv/bin/python"
[ -x "$peers/node22" ] && [ -x "$PY" ] || { echo "run: bash tests/peers/install.sh" >&2; exit 2; }

# Everything is on loopback; keep curl away from any configured proxy.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

tmp="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "oauth selfcheck: FAIL: $*" >&2; echo "--- AS log" >&2; cat "$tmp"/as*.err >&2 || true; echo "--- RS log" >&2; cat "$tmp"/rs*.err >&2 || true; exit 1; }
step() { echo "== $*" >&2; }
json() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
jwt_claims() { "$PY" -c 'import jwt,json,sys; print(json.dumps(jwt.decode(sys.argv[1], options={"verify_signature": False})))' "$1"; }
urlenc() { "$PY" -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
qparam() { "$PY" -c 'import sys,urllib.parse as u; print(u.parse_qs(u.urlparse(sys.argv[1]).query).get(sys.argv[2],[""])[0])' "$1" "$2"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start VAR NAME CMD... : run in the background (pid kept for cleanup), wait for its
# `LISTENING URL` line and assign URL to VAR. Not called in $(...) so `pids` survives.
start() {
    local var="$1" name="$2"; shift 2
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pids+=($!)
    for _ in $(seq 100); do
        if grep -q '^LISTENING ' "$tmp/$name.out" 2>/dev/null; then
            printf -v "$var" '%s' "$(awk '/^LISTENING /{print $2; exit}' "$tmp/$name.out")"
            return 0
        fi
        sleep 0.1
    done
    fail "$name did not print LISTENING"
}

start AS as "$peers/node22" "$here/oidc_as.mjs" --access-ttl 5 --scopes "mcp:read mcp:write"
[ "$(wc -l <"$tmp/as.out")" = 1 ] || fail "AS stdout is not exactly one line"
start RS rs "$PY" "$here/py_oauth_server.py" --as-url "$AS"
RS_BASE="${RS%/mcp}"
echo "AS=$AS RS=$RS" >&2

step "AS metadata"
meta="$(curl -fsS "$AS/.well-known/oauth-authorization-server")"
[ "$(echo "$meta" | json 'd["issuer"]')" = "$AS" ] || fail "issuer"
[ "$(echo "$meta" | json 'd["code_challenge_methods_supported"]')" = "['S256']" ] || fail "pkce methods"
echo "$meta" | json '"mcp:read" in d["scopes_supported"] and "offline_access" in d["scopes_supported"]' | grep -q True || fail "scopes_supported"
[ "$(curl -fsS "$AS/.well-known/openid-configuration")" = "$meta" ] || fail "openid-configuration differs"
jwks_uri="$(echo "$meta" | json 'd["jwks_uri"]')"
curl -fsS "$jwks_uri" | json 'd["keys"][0]["kty"]' | grep -q RSA || fail "jwks"

step "PRM + 401 challenge"
prm="$(curl -fsS "$RS_BASE/.well-known/oauth-protected-resource/mcp")"
[ "$(echo "$prm" | json 'd["resource"]')" = "$RS" ] || fail "PRM resource"
[ "$(echo "$prm" | json 'd["authorization_servers"][0]')" = "$AS" ] || fail "PRM authorization_servers"
mcp_post() { # TOKEN BODY -> status line on stdout, headers in $tmp/h, body in $tmp/b
    curl -sS -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$RS" \
        ${1:+-H "Authorization: Bearer $1"} \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d "$2"
}
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"selfcheck","version":"0"}}}'
[ "$(mcp_post "" "$INIT")" = 401 ] || fail "unauthenticated initialize is not 401"
grep -qi "^www-authenticate: Bearer .*resource_metadata=\"$RS_BASE/.well-known/oauth-protected-resource/mcp\"" "$tmp/h" ||
    fail "WWW-Authenticate: $(grep -i www-auth "$tmp/h")"

step "DCR (public native client)"
reg_port="$(free_port)"
reg="$(curl -fsS -X POST "$AS/reg" -H 'Content-Type: application/json' -d '{
  "client_name":"selfcheck","application_type":"native","token_endpoint_auth_method":"none",
  "redirect_uris":["http://127.0.0.1:'"$reg_port"'/callback"],
  "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
  "scope":"mcp:read mcp:write offline_access"}')"
CID="$(echo "$reg" | json 'd["client_id"]')"

# authorize RESOURCE REDIRECT_URI MODE(step|jar) -> prints the redirect_uri?code=... URL
authorize() {
    local resource="$1" redirect="$2" mode="$3" verifier challenge url out code next
    verifier="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')"
    challenge="$("$PY" -c 'import sys,hashlib,base64; print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())' "$verifier")"
    echo "$verifier" >"$tmp/verifier"
    url="$AS/auth?response_type=code&client_id=$CID&redirect_uri=$(urlenc "$redirect")&scope=$(urlenc 'mcp:read mcp:write')&state=st4te&code_challenge=$challenge&code_challenge_method=S256&resource=$(urlenc "$resource")"
    if [ "$mode" = jar ]; then
        # Follow everything; the last hop (redirect_uri, nobody listening) fails to connect.
        curl -sSL -c "$tmp/jar" -b "$tmp/jar" -o /dev/null -w '%{url_effective}' "$url" 2>/dev/null || true
        return 0
    fi
    for _ in 1 2 3 4 5; do
        out="$(curl -sS -o "$tmp/ab" -w '%{http_code} %{redirect_url}' "$url")"
        code="${out%% *}"; next="${out#* }"
        case "$code" in 302|303) ;; *) fail "authorize hop $url -> $code $(cat "$tmp/ab")";; esac
        case "$next" in "$AS"/*) url="$next";; *) echo "$next"; return 0;; esac
    done
    fail "too many redirects"
}
# exchange CODE REDIRECT_URI RESOURCE -> token response JSON
exchange() {
    curl -sS "$AS/token" -d grant_type=authorization_code -d "code=$1" -d "client_id=$CID" \
        -d "code_verifier=$(cat "$tmp/verifier")" --data-urlencode "redirect_uri=$2" --data-urlencode "resource=$3"
}

step "authorize without cookie jar, redirect_uri on another loopback port (RFC 8252)"
cb_port="$(free_port)"
cb="http://127.0.0.1:$cb_port/callback"
final="$(authorize "$RS" "$cb" step)"
case "$final" in "$cb?"*) ;; *) fail "final redirect $final";; esac
[ "$(qparam "$final" state)" = st4te ] || fail "state"
[ "$(qparam "$final" iss)" = "$AS" ] || fail "iss"
tok="$(exchange "$(qparam "$final" code)" "$cb" "$RS")"
AT="$(echo "$tok" | json 'd["access_token"]')" || fail "token: $tok"
RT="$(echo "$tok" | json 'd["refresh_token"]')" || fail "no refresh token: $tok"
claims="$(jwt_claims "$AT")"
echo "access token claims: $claims" >&2
[ "$(echo "$claims" | json 'd["aud"]')" = "$RS" ] || fail "aud"
[ "$(echo "$claims" | json 'd["scope"]')" = "mcp:read mcp:write" ] || fail "scope"
[ "$(echo "$claims" | json 'd["exp"]-d["iat"]')" = 5 ] || fail "ttl"

step "MCP initialize with the token"
[ "$(mcp_post "$AT" "$INIT")" = 200 ] || fail "initialize with token: $(cat "$tmp/b")"
call='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
st="$(curl -sS -o "$tmp/b" -w '%{http_code}' "$RS" -H "Authorization: Bearer $AT" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: whoami' -d "$call")"
[ "$st" = 200 ] && grep -q '\\"sub\\": \\"alice\\"' "$tmp/b" || fail "whoami: $st $(cat "$tmp/b")"

step "authorize with a cookie jar (curl -L)"
final="$(authorize "$RS" "$cb" jar)"
case "$final" in "$cb?"*code=*) ;; *) fail "jar flow ended at $final";; esac

step "token for another audience -> 401"
other="http://127.0.0.1:1/other"
final="$(authorize "$other" "$cb" step)"
tok2="$(exchange "$(qparam "$final" code)" "$cb" "$other")"
AT2="$(echo "$tok2" | json 'd["access_token"]')" || fail "token2: $tok2"
[ "$(jwt_claims "$AT2" | json 'd["aud"]')" = "$other" ] || fail "aud2"
[ "$(mcp_post "$AT2" "$INIT")" = 401 ] || fail "other-audience token accepted"

step "refresh with rotation"
refresh() { curl -sS "$AS/token" -d grant_type=refresh_token -d "refresh_token=$1" -d "client_id=$CID" ${2:+--data-urlencode "resource=$2"}; }
r1="$(refresh "$RT" "$RS")"
AT3="$(echo "$r1" | json 'd["access_token"]')" || fail "refresh: $r1"
RT2="$(echo "$r1" | json 'd["refresh_token"]')"
[ "$RT2" != "$RT" ] || fail "refresh token not rotated"
[ "$(jwt_claims "$AT3" | json 'd["aud"]')" = "$RS" ] || fail "refreshed aud"
[ "$(mcp_post "$AT3" "$INIT")" = 200 ] || fail "refreshed token refused"
r2="$(refresh "$RT2")"    # no resource: the granted one is reused
RT3="$(echo "$r2" | json 'd["refresh_token"]')" || fail "refresh without resource: $r2"
[ "$(jwt_claims "$(echo "$r2" | json 'd["access_token"]')" | json 'd["aud"]')" = "$RS" ] || fail "aud after resource-less refresh"
old="$(refresh "$RT" "$RS")"
[ "$(echo "$old" | json 'd["error"]')" = invalid_grant ] || fail "rotated-out refresh token accepted: $old"
after="$(refresh "$RT3" "$RS")"
[ "$(echo "$after" | json 'd.get("error")')" = invalid_grant ] || fail "reuse detection did not revoke the grant: $after"

step "expiry (access TTL 5 s)"
sleep "$(jwt_claims "$AT3" | json 'max(0, d["exp"] - __import__("time").time() + 1.5)')"
[ "$(mcp_post "$AT3" "$INIT")" = 401 ] || fail "expired token accepted"

echo "oauth selfcheck: OK" >&2
