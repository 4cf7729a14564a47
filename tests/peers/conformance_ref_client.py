#!/usr/bin/env python3
"""Reference conformance client built on the official Python SDK (mcp==2.3.0).

Used only to check that the conformance harness itself works on this machine and
to have a baseline to compare mcpd's results with (see CONFORMANCE.md):

    $MCPD_PEERS/node22 $MCPD_PEERS/node/node_modules/@modelcontextprotocol/conformance/dist/index.js \
        client --scenario initialize \
        --command "$MCPD_PEERS/venv/bin/python tests/peers/conformance_ref_client.py"

The harness appends the server URL as the last argument and sets
MCP_CONFORMANCE_SCENARIO. mode="legacy" forces the initialize handshake (the
2025-11-25 scenarios' mock servers do not implement server/discover).
"""

from __future__ import annotations

import os
import sys

import anyio
from mcp import types
from mcp.client.client import Client

SCENARIO = os.environ.get("MCP_CONFORMANCE_SCENARIO", "initialize")


def _default_for(prop: dict) -> object:
    if "default" in prop:
        return prop["default"]
    return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(prop.get("type"), None)


async def elicit(context, params):  # ElicitationFnT
    schema = getattr(params, "requested_schema", None) or {}
    if hasattr(schema, "model_dump"):
        schema = schema.model_dump(by_alias=True, exclude_none=True)
    content = {k: _default_for(v) for k, v in (schema.get("properties") or {}).items()}
    return types.ElicitResult(action="accept", content=content)


async def main(url: str) -> None:
    info = types.Implementation(name="mcpd-conformance-ref", version="0.0.0")
    kwargs = {}
    if SCENARIO.startswith("elicitation"):
        kwargs["elicitation_callback"] = elicit
    async with Client(url, mode="legacy", client_info=info, cache=None, **kwargs) as client:
        tools = await client.list_tools()
        names = [t.name for t in tools.tools]
        print("tools:", names, file=sys.stderr)
        if SCENARIO == "tools_call":
            print(await client.call_tool("add_numbers", {"a": 5, "b": 3}), file=sys.stderr)
        elif SCENARIO.startswith("elicitation"):
            print(await client.call_tool("test_client_elicitation_defaults", {}), file=sys.stderr)
        elif SCENARIO == "sse-retry":
            print(await client.call_tool("test_reconnection", {}), file=sys.stderr)


if __name__ == "__main__":
    anyio.run(main, sys.argv[-1])
