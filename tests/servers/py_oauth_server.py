#!/usr/bin/env python3
"""OAuth-protected MCP test server for mcpd (official Python SDK, mcp==2.3.0).

Run with the peers venv (tests/peers/install.sh):

    $MCPD_PEERS/venv/bin/python tests/servers/py_oauth_server.py --as-url http://127.0.0.1:ASPORT
        [--port N] [--audience URL] [--scopes "mcp:read"]

Streamable HTTP at http://127.0.0.1:PORT/mcp (--port 0, the default, picks a free port);
prints exactly one line `LISTENING http://127.0.0.1:PORT/mcp` on stdout once the socket
listens. One stderr line per HTTP request (method, path, status; never headers/tokens).

OAuth protected resource (RFC 9728 + MCP authorization):
* metadata at http://127.0.0.1:PORT/.well-known/oauth-protected-resource/mcp
  {"resource": "http://127.0.0.1:PORT/mcp", "authorization_servers": [AS_URL],
   "scopes_supported": SCOPES, "bearer_methods_supported": ["header"]}
* no/invalid bearer token -> 401 with
  WWW-Authenticate: Bearer error="invalid_token", error_description="Authentication required",
                    resource_metadata="http://127.0.0.1:PORT/.well-known/oauth-protected-resource/mcp"
* token valid but lacking a required scope -> 403 error="insufficient_scope" (SDK behaviour).
* bearer tokens are JWTs verified against the AS's JWKS (jwks_uri from the AS's RFC 8414
  metadata, fetched lazily, PyJWKClient): signature, `iss` == AS issuer (--as-url),
  `exp` (no leeway), `aud` == --audience (default: this server's URL http://127.0.0.1:PORT/mcp).

Tools: whoami() -> JSON text {"sub", "scope", "aud", "client_id", "exp"} of the caller's token;
       echo(text) -> text.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import urllib.request

import anyio
import jwt
from jwt import PyJWKClient

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer


def log(msg: str) -> None:
    print(f"py_oauth_server: {msg}", file=sys.stderr, flush=True)


class JwtVerifier:
    """TokenVerifier: RS256/PS256/ES256 JWT access tokens from one issuer, for one audience."""

    def __init__(self, issuer: str, audience: str):
        self.issuer = issuer
        self.audience = audience
        self._jwks: PyJWKClient | None = None

    def _jwks_client(self) -> PyJWKClient:
        if self._jwks is None:
            url = f"{self.issuer}/.well-known/oauth-authorization-server"
            with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (test server, loopback)
                meta = json.load(r)
            if meta.get("issuer") != self.issuer:
                log(f"WARNING: AS metadata issuer {meta.get('issuer')!r} != --as-url {self.issuer!r}")
            self._jwks = PyJWKClient(meta["jwks_uri"], cache_keys=True, timeout=10)
        return self._jwks

    def _verify(self, token: str) -> AccessToken | None:
        try:
            key = self._jwks_client().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "PS256", "ES256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except Exception as e:  # any failure -> unauthenticated (401)
            log(f"token rejected: {type(e).__name__}: {e}")
            return None
        aud = claims.get("aud")
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            resource=self.audience if isinstance(aud, list) else aud,
            subject=claims.get("sub"),
            claims=claims,
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        return await anyio.to_thread.run_sync(self._verify, token)


class RequestLog:
    """ASGI middleware: one stderr line per HTTP request (no headers, no query string)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 0}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                log(f"{scope['method']} {scope['path']} -> {message['status']}")
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not status["code"]:
                log(f"{scope['method']} {scope['path']} -> (no response)")


def build_server(as_url: str, own_url: str, audience: str, scopes: list[str]) -> MCPServer:
    server = MCPServer(
        "mcpd-py-oauth-server",
        version="1.0.0",
        instructions="OAuth-protected test server for mcpd.",
        log_level="WARNING",
        token_verifier=JwtVerifier(as_url, audience),
        auth=AuthSettings(
            issuer_url=as_url,
            resource_server_url=own_url,
            required_scopes=scopes,
            # The verifier checks `aud` itself (against --audience).
            validate_token_resource=False,
        ),
    )

    @server.tool(description="Describe the caller's access token (sub, scope, aud).")
    def whoami() -> str:
        tok = get_access_token()
        c = (tok.claims or {}) if tok else {}
        return json.dumps(
            {"sub": c.get("sub"), "scope": c.get("scope"), "aud": c.get("aud"),
             "client_id": c.get("client_id"), "exp": c.get("exp")},
            sort_keys=True,
        )

    @server.tool(description="Echo the given text back unchanged.")
    def echo(text: str) -> str:
        return text

    return server


async def serve(args: argparse.Namespace) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    own_url = f"http://127.0.0.1:{port}/mcp"
    as_url = args.as_url.rstrip("/")
    audience = args.audience or own_url
    scopes = args.scopes.split()

    server = build_server(as_url, own_url, audience, scopes)
    app = RequestLog(server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1"))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    uv = uvicorn.Server(config)
    log(f"resource {own_url}; issuer {as_url}; audience {audience}; required scopes {scopes}")
    print(f"LISTENING {own_url}", flush=True)
    await uv.serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--as-url", required=True, help="authorization server issuer, e.g. http://127.0.0.1:4444")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--audience", default=None, help="required JWT aud (default: http://127.0.0.1:PORT/mcp)")
    p.add_argument("--scopes", default="mcp:read", help="space-separated required scopes (default mcp:read)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # The AS is on loopback: never send the metadata/JWKS fetches (urllib, also used by
    # PyJWKClient) through an http_proxy from the environment.
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))
    try:
        anyio.run(serve, args)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
