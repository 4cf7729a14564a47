#!/usr/bin/env python3
"""An MCP host on the official Python SDK (mcp==2.3.0), for mcpd's MCP front end tests.

    py_host.py (--http URL [--token T] | --stdio MCPD [--socket S] [--profile P])
               [--mode legacy|auto|2026-07-28] STEP...

Connects through mcpd's Streamable HTTP endpoint or through `mcpd mcp` (launched as a
stdio server, the way a host launches it) and runs each STEP in order, printing one JSON
line per step to stdout:

    tools              {"step": "tools", "names": [...]}
    call:NAME:JSON     {"step": "call", "is_error": bool, "text": "...", "structured": ...}
                       (or {"step": "call", "protocol_error": "..."} for a JSON-RPC error)
    progress:NAME:JSON the call with a progress callback: adds "progress": [values]
    cancel:NAME:JSON:S gives up on the call after S seconds: {"step": "cancel", "cancelled": true}
    resources          {"step": "resources", "uris": [...]}
    read:URI           {"step": "read", "text": "..."}
    prompts            {"step": "prompts", "names": [...]}
    prompt:NAME:JSON   {"step": "prompt", "text": "..."}
    era                {"step": "era", "version": "..."}

Sampling requests are answered "sampled: <last user text>"; elicitation requests are
accepted with {"name": "Ada", "age": 36}. Each answer is counted in the step's line
("sampled": n, "elicited": n), so a test sees they reached the host.
Any failure prints {"step": ..., "error": "..."} and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio
import httpx2
from mcp import types
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

COUNTS = {"sampled": 0, "elicited": 0}


async def on_sampling(context, params):  # SamplingFnT
    last = ""
    for m in params.messages:
        content = m.content if not isinstance(m.content, list) else m.content[-1]
        if getattr(content, "type", "") == "text":
            last = content.text
    COUNTS["sampled"] += 1
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"sampled: {last}"), model="py-host"
    )


async def on_elicit(context, params):  # ElicitationFnT
    COUNTS["elicited"] += 1
    return types.ElicitResult(action="accept", content={"name": "Ada", "age": 36})


def text_of(blocks) -> str:
    return "".join(getattr(b, "text", "") for b in blocks or [])


async def run(client: Client, steps: list[str]) -> None:
    for step in steps:
        kind, _, rest = step.partition(":")
        out: dict = {"step": kind}
        try:
            if kind == "tools":
                out["names"] = [t.name for t in (await client.list_tools()).tools]
            elif kind in ("call", "progress"):
                name, _, args = rest.partition(":")
                seen: list[float] = []

                async def on_progress(progress, total, message):
                    seen.append(progress)

                kwargs = {"progress_callback": on_progress} if kind == "progress" else {}
                try:
                    r = await client.call_tool(name, json.loads(args or "{}"), **kwargs)
                except Exception as e:  # noqa: BLE001 - a JSON-RPC error answer is a result here
                    if type(e).__name__ != "MCPError":
                        raise
                    out["protocol_error"] = str(e)
                    out.update(COUNTS)
                    print(json.dumps(out), flush=True)
                    continue
                out.update(is_error=bool(r.is_error), text=text_of(r.content), structured=r.structured_content)
                if kind == "progress":
                    out["progress"] = seen
            elif kind == "cancel":
                # The host gives up on the call: the SDK cancels the request.
                body, _, secs = rest.rpartition(":")
                name, _, args = body.partition(":")
                with anyio.move_on_after(float(secs)) as scope:
                    await client.call_tool(name, json.loads(args or "{}"))
                out["cancelled"] = scope.cancelled_caught
            elif kind == "resources":
                out["uris"] = [str(r.uri) for r in (await client.list_resources()).resources]
            elif kind == "read":
                r = await client.read_resource(rest)
                out["text"] = "".join(getattr(c, "text", "") for c in r.contents)
            elif kind == "prompts":
                out["names"] = [p.name for p in (await client.list_prompts()).prompts]
            elif kind == "prompt":
                name, _, args = rest.partition(":")
                r = await client.get_prompt(name, json.loads(args or "{}"))
                out["text"] = "".join(getattr(m.content, "text", "") for m in r.messages)
            elif kind == "era":
                out["version"] = str(client.protocol_version)
            else:
                raise ValueError(f"unknown step {step!r}")
        except Exception as e:  # noqa: BLE001 - reported to the test
            out["error"] = f"{type(e).__name__}: {e}"
            out.update(COUNTS)
            print(json.dumps(out), flush=True)
            sys.exit(1)
        out.update(COUNTS)
        print(json.dumps(out), flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--http")
    ap.add_argument("--token")
    ap.add_argument("--stdio")
    ap.add_argument("--socket")
    ap.add_argument("--profile")
    ap.add_argument("--mode", default="auto")
    ap.add_argument("steps", nargs="+")
    a = ap.parse_args()
    if a.http:
        headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
        server = streamable_http_client(a.http, http_client=httpx2.AsyncClient(headers=headers, timeout=30))
    else:
        args = ["mcp"]
        if a.profile:
            args += ["--profile", a.profile]
        if a.socket:
            args += ["--socket", a.socket]
        server = StdioServerParameters(command=a.stdio, args=args)
    info = types.Implementation(name="py-host", version="0.0.0")
    async with Client(
        server,
        mode=a.mode,
        client_info=info,
        cache=None,
        sampling_callback=on_sampling,
        sampling_capabilities=types.SamplingCapability(tools=types.SamplingToolsCapability()),
        elicitation_callback=on_elicit,
    ) as client:
        await run(client, a.steps)


if __name__ == "__main__":
    anyio.run(main)
