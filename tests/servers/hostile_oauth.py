"""Hostile (and one honest) OAuth-protected MCP server for mcpd's negative OAuth / SSRF tests.

    python3 tests/servers/hostile_oauth.py MODE [--port N] [--target URL] [--hits FILE]
                                           [--also-listen HOST:PORT]

Standard library only. Listens on 127.0.0.1 (port 0 = ephemeral), then prints, flushed:
    EXTRA http://HOST:PORT            (only with --also-listen)
    LISTENING http://127.0.0.1:PORT/mcp
MODE:
    prm-as         PRM names --target as authorization server
    challenge-prm  the 401 challenge's resource_metadata URL is --target (well-known PRM 404s)
    as-endpoints   AS metadata here, but authorize/token/register endpoints are --target based
    redirect       AS metadata URLs answer 302 to --target
    no-pkce        full AS, but metadata lacks code_challenge_methods_supported
    reject-tokens  full working AS; /mcp still 401s every request, even with fresh tokens
    ok             full working AS; /mcp is a minimal MCP server (tools ping, admin w/ 403 step-up)
--target may contain {EXTRA} (= http://HOST:PORT of the extra listener) or {EXTRA_PORT}, so a
test can aim a hostile URL at the extra listener without knowing its port in advance.
--hits FILE gets one JSON line per request: {"method","path","query_keys","listener"} (no values).
GET /stats -> {"tokens_issued","mcp_requests","authorized_mcp_requests",...} in every mode.
POST /forget -> the AS forgets every client registration and access token (invalid_client).
"""
import argparse
import base64
import hashlib
import json
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

MODES = ("prm-as", "challenge-prm", "as-endpoints", "redirect", "no-pkce", "reject-tokens", "ok")
NEEDS_TARGET = {"prm-as", "challenge-prm", "as-endpoints", "redirect"}
FULL_AS = {"no-pkce", "reject-tokens", "ok"}  # modes that serve /register, /authorize, /token
PROTOCOLS = ("2025-11-25", "2025-06-18", "2025-03-26")
PRM_PATH = "/.well-known/oauth-protected-resource"
AS_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


class State:
    def __init__(self, mode, target, hits):
        self.mode, self.target, self.hits = mode, target, hits
        self.origin = ""
        self.lock = threading.Lock()
        self.clients = {}  # client_id -> registration
        self.codes = {}    # authorization code -> grant (single use)
        self.access = {}   # access token -> granted scope string
        self.refresh = {}  # refresh token -> {"client_id", "scope"}; rotated on every use
        self.stats = {"tokens_issued": 0, "mcp_requests": 0, "authorized_mcp_requests": 0,
                      "clients_registered": 0, "authorize_requests": 0, "refresh_grants": 0,
                      "resource_params": []}  # RFC 8707 `resource` values seen at /authorize, /token

    def bump(self, key):
        with self.lock:
            self.stats[key] += 1

    def record(self, method, raw_path, listener):
        if not self.hits:
            return
        u = urlsplit(raw_path)
        keys = sorted(parse_qs(u.query, keep_blank_values=True))
        line = json.dumps({"method": method, "path": u.path, "query_keys": keys, "listener": listener})
        with self.lock, open(self.hits, "a") as f:
            f.write(line + "\n")

    def prm_url(self):
        return self.origin + PRM_PATH + "/mcp"

    def challenge(self, extra=""):
        url = self.target if self.mode == "challenge-prm" else self.prm_url()
        return f'Bearer {extra}resource_metadata="{url}"'


S: State = None  # set in main()


def s256(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def same_redirect(registered, used):
    """RFC 8252 §7.3: for loopback redirect URIs any port must be accepted."""
    if registered == used:
        return True
    a, b = urlsplit(registered), urlsplit(used)
    loop = ("127.0.0.1", "localhost", "::1")
    return (a.hostname in loop and a.scheme == b.scheme and a.hostname == b.hostname
            and a.path == b.path and a.query == b.query)


class Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    listener = "main"

    def log_message(self, *args):
        pass

    def read_body(self):
        # The body must always be drained, even for a 401, or keep-alive connections desync.
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", headers=(), ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        S.record(self.command, self.path, self.listener)
        self.body = self.read_body()
        try:
            self.route()
        except Exception as e:  # keep serving; surface the bug on stderr
            print(f"hostile_oauth: error on {self.command} {urlsplit(self.path).path}: {e!r}",
                  file=sys.stderr, flush=True)
            self.send(500, {"error": "server_error"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class Extra(Base):
    """The --also-listen listener: only records that something reached it."""
    listener = "extra"

    def route(self):
        self.send(404, {"error": "not_found"})


class Handler(Base):
    def route(self):
        u = urlsplit(self.path)
        path, mode = u.path, S.mode
        self.query = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        if path == "/stats":
            with S.lock:
                return self.send(200, dict(S.stats))
        if path == "/forget" and self.command == "POST":
            # The AS loses every registration and access token: the next MCP request is a
            # 401, and refreshing with the old client is `invalid_client`.
            with S.lock:
                S.clients.clear()
                S.access.clear()
            return self.send(200, {"forgotten": True})
        if path in ("/mcp", "/mcp/"):
            return self.mcp()
        if path in (PRM_PATH, PRM_PATH + "/mcp"):
            if mode == "challenge-prm":  # the challenge URL is the only way in
                return self.send(404, {"error": "not_found"})
            return self.send(200, {
                "resource": S.origin + "/mcp",
                "authorization_servers": [S.target if mode == "prm-as" else S.origin],
                "scopes_supported": ["mcp"],  # not "admin": that must come from the 403 step-up
                "bearer_methods_supported": ["header"]})
        if path.startswith(AS_PATHS) and mode not in ("prm-as", "challenge-prm"):
            if mode == "redirect":
                return self.send(302, headers=[("Location", S.target)])
            return self.send(200, self.as_metadata())
        if mode in FULL_AS:
            if path == "/register" and self.command == "POST":
                return self.register()
            if path == "/authorize" and self.command == "GET":
                return self.authorize()
            if path == "/token" and self.command == "POST":
                return self.token()
        self.send(404, {"error": "not_found"})

    def as_metadata(self):
        base = S.target.rstrip("/") if S.mode == "as-endpoints" else S.origin
        md = {"issuer": S.origin,
              "authorization_endpoint": base + "/authorize",
              "token_endpoint": base + "/token",
              "registration_endpoint": base + "/register",
              "response_types_supported": ["code"],
              "grant_types_supported": ["authorization_code", "refresh_token"],
              "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
              "scopes_supported": ["mcp"],
              "code_challenge_methods_supported": ["S256"]}
        if S.mode == "no-pkce":
            del md["code_challenge_methods_supported"]
        return md

    # ---- authorization server ------------------------------------------------------------
    def register(self):
        try:
            req = json.loads(self.body or b"{}")
        except ValueError:
            return self.send(400, {"error": "invalid_client_metadata"})
        uris = req.get("redirect_uris") if isinstance(req, dict) else None
        if not isinstance(uris, list) or not uris or not all(isinstance(x, str) for x in uris):
            return self.send(400, {"error": "invalid_redirect_uri"})
        cid = "client-" + secrets.token_hex(8)
        reg = {"client_id": cid, "client_id_issued_at": int(time.time()), "redirect_uris": uris,
               "token_endpoint_auth_method": "none", "response_types": ["code"],
               "grant_types": ["authorization_code", "refresh_token"]}
        for k in ("client_name", "scope"):
            if k in req:
                reg[k] = req[k]
        with S.lock:
            S.clients[cid] = reg
            S.stats["clients_registered"] += 1
        self.send(201, reg)

    def authorize(self):
        q = self.query
        S.bump("authorize_requests")
        client = S.clients.get(q.get("client_id"))
        ruri = q.get("redirect_uri", "")
        # Never redirect to an unverified redirect_uri (RFC 6749 §4.1.2.1): plain 400 instead.
        if not client:
            return self.send(400, {"error": "invalid_client"})
        if not any(same_redirect(r, ruri) for r in client["redirect_uris"]):
            return self.send(400, {"error": "invalid_request", "error_description": "redirect_uri not registered"})
        params = {}
        if q.get("response_type") != "code":
            params = {"error": "unsupported_response_type"}
        elif not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            params = {"error": "invalid_request", "error_description": "PKCE S256 required"}
        else:
            code = secrets.token_urlsafe(24)
            with S.lock:
                if "resource" in q:
                    S.stats["resource_params"].append(q["resource"])
                S.codes[code] = {"client_id": client["client_id"], "redirect_uri": ruri,
                                 "challenge": q["code_challenge"], "scope": q.get("scope", ""),
                                 "expires": time.time() + 600}
            params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        params["iss"] = S.origin  # RFC 9207
        sep = "&" if "?" in ruri else "?"
        self.send(302, headers=[("Location", ruri + sep + urlencode(params))])

    def token(self):
        form = {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        cid = form.get("client_id")
        auth = self.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":  # client_secret_basic: id is the (form-urlencoded) user part
            try:
                cid = unquote(base64.b64decode(auth[6:].strip()).decode().split(":", 1)[0])
            except (ValueError, UnicodeDecodeError):
                return self.send(401, {"error": "invalid_client"})
        if cid not in S.clients:
            return self.send(401, {"error": "invalid_client"})
        if "resource" in form:
            with S.lock:
                S.stats["resource_params"].append(form["resource"])

        bad = lambda desc, e="invalid_grant": self.send(400, {"error": e, "error_description": desc})  # noqa: E731

        gt = form.get("grant_type")
        if gt == "authorization_code":
            with S.lock:
                grant = S.codes.pop(form.get("code", ""), None)  # single use even on failure
            if not grant or grant["client_id"] != cid or grant["expires"] < time.time():
                return bad("unknown, expired or reused code")
            # OAuth 2.1 makes redirect_uri optional here; if sent it must match exactly.
            if "redirect_uri" in form and form["redirect_uri"] != grant["redirect_uri"]:
                return bad("redirect_uri mismatch")
            verifier = form.get("code_verifier", "")
            if not 43 <= len(verifier) <= 128 or s256(verifier) != grant["challenge"]:
                return bad("PKCE verification failed")
            scope = rt_scope = grant["scope"]
        elif gt == "refresh_token":
            rt = S.refresh.get(form.get("refresh_token", ""))
            if not rt or rt["client_id"] != cid:
                return bad("unknown or already used refresh token")
            rt_scope = rt["scope"]  # RFC 6749 §6: a rotated refresh token keeps the original scope
            scope = form.get("scope", rt_scope)
            if not set(scope.split()) <= set(rt["scope"].split()):  # may only narrow
                return bad("scope exceeds original grant", "invalid_scope")
            with S.lock:  # rotation: the old refresh token dies only on success (single use)
                if S.refresh.pop(form["refresh_token"], None) is None:
                    return bad("unknown or already used refresh token")
                S.stats["refresh_grants"] += 1
        else:
            return bad(f"grant_type {gt!r}", "unsupported_grant_type")
        at, rt_new = "at-" + secrets.token_urlsafe(24), "rt-" + secrets.token_urlsafe(24)
        with S.lock:
            S.access[at] = scope
            S.refresh[rt_new] = {"client_id": cid, "scope": rt_scope}
            S.stats["tokens_issued"] += 1
        self.send(200, {"access_token": at, "token_type": "Bearer", "expires_in": 3600,
                        "refresh_token": rt_new, "scope": scope},
                  headers=[("Cache-Control", "no-store")])

    # ---- the MCP endpoint ----------------------------------------------------------------
    def mcp(self):
        S.bump("mcp_requests")
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if token:
            S.bump("authorized_mcp_requests")
        if S.mode != "ok" or token not in S.access:
            # Every non-ok mode 401s unconditionally (reject-tokens even for fresh tokens).
            extra = 'error="invalid_token", ' if token and S.mode == "ok" else ""
            return self.send(401, {"error": "unauthorized"},
                             headers=[("WWW-Authenticate", S.challenge(extra))])
        scope = S.access[token]
        if self.command != "POST":
            return self.send(405, {"error": "method_not_allowed"}, headers=[("Allow", "POST")])
        try:
            msg = json.loads(self.body)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):  # unparsable, or a batch (not supported)
            return self.send(400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "bad request"}})
        if "id" not in msg or "method" not in msg:  # notification, or a response to us
            return self.send(202)
        mid, method, params = msg["id"], msg["method"], msg.get("params") or {}

        ok = lambda result: self.send(200, {"jsonrpc": "2.0", "id": mid, "result": result})  # noqa: E731
        err = lambda c, m: self.send(200, {"jsonrpc": "2.0", "id": mid, "error": {"code": c, "message": m}})  # noqa: E731

        if method == "initialize":
            v = params.get("protocolVersion")
            return ok({"protocolVersion": v if v in PROTOCOLS else PROTOCOLS[0],
                       "capabilities": {"tools": {}},
                       "serverInfo": {"name": "hostile-ok", "version": "1"}})
        if method == "ping":
            return ok({})
        if method == "tools/list":
            return ok({"tools": [
                {"name": "ping", "description": "answers pong", "inputSchema": {"type": "object"}},
                {"name": "admin", "description": "needs scope admin", "inputSchema": {"type": "object"}}]})
        if method == "tools/call":
            name = params.get("name")
            if name == "ping":
                return ok({"content": [{"type": "text", "text": "pong"}], "isError": False})
            if name == "admin":
                if "admin" not in scope.split():  # step-up: MCP 2025-11-25 insufficient_scope
                    ch = f'Bearer error="insufficient_scope", scope="mcp admin", resource_metadata="{S.prm_url()}"'
                    return self.send(403, {"error": "insufficient_scope"}, headers=[("WWW-Authenticate", ch)])
                return ok({"content": [{"type": "text", "text": "admin ok"}], "isError": False})
            return err(-32602, f"unknown tool {name!r}")
        return err(-32601, f"method not found: {method}")


class V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def main():
    global S
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=MODES)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--target", help="hostile URL (required for " + ", ".join(sorted(NEEDS_TARGET)) + ")")
    ap.add_argument("--hits", help="append one JSON line per request received")
    ap.add_argument("--also-listen", metavar="HOST:PORT", help="extra record-only listener (answers 404)")
    a = ap.parse_args()
    if a.mode in NEEDS_TARGET and not a.target:
        ap.error(f"mode {a.mode} needs --target")
    S = State(a.mode, a.target or "", a.hits)

    if a.also_listen:  # ThreadingHTTPServer already uses daemon threads
        host, _, port = a.also_listen.rpartition(":")
        host = host.strip("[]")
        extra = (V6Server if ":" in host else ThreadingHTTPServer)((host, int(port)), Extra)
        shown, eport = (f"[{host}]" if ":" in host else host), extra.server_address[1]
        S.target = S.target.replace("{EXTRA_PORT}", str(eport)).replace("{EXTRA}", f"http://{shown}:{eport}")
        threading.Thread(target=extra.serve_forever, daemon=True).start()
        print(f"EXTRA http://{shown}:{eport}", flush=True)
    main_srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    S.origin = f"http://127.0.0.1:{main_srv.server_address[1]}"
    # Sockets are already bound and listening, so the line can go out before serve_forever.
    print(f"LISTENING {S.origin}/mcp", flush=True)
    try:
        main_srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
