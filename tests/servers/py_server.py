#!/usr/bin/env python3
"""MCP test server for mcpd, built on the official Python SDK (mcp==2.3.0).

Run with the peers venv:  $MCPD_PEERS/venv/bin/python tests/servers/py_server.py

    py_server.py [--transport stdio|http] [--host 127.0.0.1] [--port N] [--json-response]
                 [--read-ttl-ms N]

stdio: JSON-RPC over stdin/stdout (logs go to stderr).
http:  streamable HTTP at http://HOST:PORT/mcp . With --port 0 (the default) a free
       port is chosen; in every case the line
           py_server listening on http://HOST:PORT/mcp
       is printed to stderr (flushed) once the socket is bound and listening.

The SDK serves both eras on the same endpoint: the session era (`initialize`,
up to protocol 2025-11-25) and the stateless 2026-07-28 era (`server/discover`,
per-request `_meta`).

Tools:     echo(text) -> text; add(a, b) -> a+b (structured output);
           slow(ms) -> "done" after sleeping ms; whoami() -> negotiated protocol version.
           touch(uri) -> "touched", announcing a resource update to subscriptions/listen streams;
           ask_llm(prompt) -> the client's model's answer (sampling with a tool, both eras);
           ask_user() -> "hello NAME (AGE)" or the declining action (form elicitation, both eras);
           ask_password() -> must be declined by a careful client;
           open_widget() -> "opened" (MCP Apps: `_meta.ui` links ui://widget/app.html, visible to the app only).
Resources: test://greeting  ("hello", text/plain)
           test://counter   (how many times it was read: "1", "2", ...)
           ui://widget/app.html (MCP Apps HTML with `_meta.ui.csp`)
Prompt:    greet(name)

--read-ttl-ms N sets the 2026-07-28 `ttlMs` hint of resources/read results (default: the
SDK's, 0 = immediately stale).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Annotated

import mcp_types as types
from pydantic import BaseModel

import anyio
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    MCPServer,
    Resolve,
    Sample,
)


def _read_ttl_ms(argv: list[str]) -> int | None:
    # The hint is a constructor argument, so it is read before argparse runs.
    for i, a in enumerate(argv):
        if a == "--read-ttl-ms" and i + 1 < len(argv):
            return int(argv[i + 1])
    return None


_ttl = _read_ttl_ms(sys.argv[1:])
server = MCPServer(
    "mcpd-py-test-server",
    version="1.0.0",
    instructions="Test server for mcpd.",
    log_level="WARNING",
    cache_hints={"resources/read": CacheHint(ttl_ms=_ttl, scope="public")} if _ttl is not None else None,
)
_reads = {"counter": 0}


@server.tool(description="Echo the given text back unchanged.")
def echo(text: str) -> str:
    return text


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Sleep for `ms` milliseconds, then answer 'done'.")
async def slow(ms: int) -> str:
    await anyio.sleep(max(ms, 0) / 1000.0)
    return "done"


@server.tool(description="Return the protocol version negotiated for this request.")
def whoami(ctx: Context) -> str:
    try:
        version = ctx.protocol_version
    except Exception:  # no request context
        version = None
    return version or "unknown"


@server.resource("test://greeting", name="greeting", description="A greeting.", mime_type="text/plain")
def greeting() -> str:
    return "hello"


@server.resource("test://counter", name="counter", description="How many times it was read.", mime_type="text/plain")
def counter() -> str:
    _reads["counter"] += 1
    return str(_reads["counter"])


@server.resource(
    "ui://widget/app.html",
    name="widget",
    description="An MCP Apps view.",
    mime_type="text/html;profile=mcp-app",
    meta={"ui": {"csp": {"connectDomains": ["https://api.example.com"], "resourceDomains": []}, "prefersBorder": True}},
)
def widget() -> str:
    return "<!doctype html><html><body>widget</body></html>"


@server.tool(
    description="Open the widget (called by the app's UI, not by a model).",
    meta={"ui": {"resourceUri": "ui://widget/app.html", "visibility": ["app"]}},
)
def open_widget() -> str:
    return "opened"


@server.tool(description="Announce that a resource changed (2026-07-28: to subscriptions/listen streams).")
async def touch(uri: str, ctx: Context) -> str:
    await ctx.notify_resource_updated(uri)
    return "touched"


WEATHER_TOOL = types.Tool(
    name="get_weather",
    description="Current weather for a city.",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _ask_model(prompt: str) -> Sample:
    # Works in both eras: a standalone sampling/createMessage request up to 2025-11-25, an
    # `input_required` round in 2026-07-28; the SDK picks by the negotiated version.
    return Sample(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice=types.ToolChoice(mode="auto"),
    )


@server.tool(description="Ask the client's model (sampling, with a tool offered); returns its answer as JSON.")
async def ask_llm(
    prompt: str, answer: Annotated[types.CreateMessageResultWithTools, Resolve(_ask_model)]
) -> str:
    blocks = answer.content if isinstance(answer.content, list) else [answer.content]
    out = []
    for b in blocks:
        if b.type == "text":
            out.append({"text": b.text})
        elif b.type == "tool_use":
            out.append({"tool_use": b.name, "input": b.input})
    return json.dumps({"model": answer.model, "stop": answer.stop_reason, "content": out})


class Contact(BaseModel):
    name: str
    age: int = 0


class Login(BaseModel):
    password: str


def _ask_contact() -> Elicit[Contact]:
    return Elicit("Who are you?", Contact)


def _ask_password() -> Elicit[Login]:
    return Elicit("Your password, please.", Login)


@server.tool(description="Ask the user who they are (elicitation, form mode).")
async def ask_user(who: Annotated[ElicitationResult[Contact], Resolve(_ask_contact)]) -> str:
    if isinstance(who, AcceptedElicitation):
        return f"hello {who.data.name} ({who.data.age})"
    return who.action


@server.tool(description="Ask the user for a password (mcpd must decline this).")
async def ask_password(login: Annotated[ElicitationResult[Login], Resolve(_ask_password)]) -> str:
    if isinstance(login, AcceptedElicitation):
        return "got a password"
    return login.action


@server.prompt(description="Greet someone by name.")
def greet(name: str) -> str:
    return f"Please greet {name}."


async def _serve_http(host: str, port: int, json_response: bool) -> None:
    import uvicorn

    app = server.streamable_http_app(streamable_http_path="/mcp", json_response=json_response, host=host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(
        app, host=host, port=bound, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    uv = uvicorn.Server(config)
    print(f"py_server listening on http://{shown}:{bound}/mcp", file=sys.stderr, flush=True)
    await uv.serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument(
        "--json-response",
        action="store_true",
        help="http: answer POSTs with application/json instead of an SSE stream",
    )
    p.add_argument("--read-ttl-ms", type=int, default=None, help="ttlMs hint on resources/read results")
    args = p.parse_args(argv)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        anyio.run(_serve_http, args.host, args.port, args.json_response)


if __name__ == "__main__":
    main()
