#!/usr/bin/env python3
"""A many-tools MCP server on the official Python SDK (mcp==2.3.0), for tool search tests.

    py_catalog.py --origins everything,filesystem [--distractors N] [--slice I]

stdio only; the SDK serves both eras (the client's first request decides).

Serves the real tool definitions of the retrieval benchmark's dataset
(tests/bench/search/tools.json) whose origin server is one of --origins, each under its
own name (or ORIGIN_NAME when two origins share a name), plus N generated distractor tools
(slice I of the generated set, so several processes serve different ones). Every tool
answers a call with one text block:

    ORIGIN.NAME called with {"arg": ...}

(sorted keys, distractors have origin "distractor"), so a test sees exactly which tool a
call reached and with what.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

DATASET = pathlib.Path(__file__).resolve().parent.parent / "bench" / "search" / "tools.json"

VERBS = [
    ("archive", "Archives"), ("export", "Exports"), ("import", "Imports"), ("sync", "Synchronises"),
    ("validate", "Validates"), ("render", "Renders"), ("schedule", "Schedules"), ("translate", "Translates"),
    ("approve", "Approves"), ("audit", "Audits"), ("tag", "Tags"), ("assign", "Assigns"),
    ("forecast", "Forecasts"), ("reconcile", "Reconciles"), ("publish", "Publishes"), ("clone", "Clones"),
    ("lock", "Locks"), ("rate", "Rates"), ("summarize", "Summarises"), ("escalate", "Escalates"),
]
NOUNS = [
    ("invoice", "billing"), ("ticket", "helpdesk"), ("playlist", "music"), ("recipe", "kitchen"),
    ("shipment", "logistics"), ("sensor", "telemetry"), ("contract", "legal"), ("campaign", "marketing"),
    ("lead", "sales"), ("shift", "rostering"), ("asset", "inventory"), ("course", "learning"),
    ("booking", "travel"), ("payslip", "payroll"), ("listing", "real estate"), ("claim", "insurance"),
    ("vehicle", "fleet"), ("donation", "fundraising"), ("episode", "podcast"), ("warranty", "after-sales"),
]


def distractors() -> list[types.Tool]:
    out = []
    for noun, domain in NOUNS:
        for verb, verbs in VERBS:
            out.append(
                types.Tool(
                    name=f"{verb}_{noun}",
                    description=f"{verbs} a {noun} record in the {domain} system, identified by its id.",
                    input_schema={
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "description": f"The {noun} id"},
                            "note": {"type": "string", "description": "Optional note kept with the change"},
                        },
                        "required": ["id"],
                    },
                )
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--origins", required=True, help="comma-separated origin servers of the dataset")
    p.add_argument("--distractors", type=int, default=0)
    p.add_argument("--slice", type=int, default=0, help="which slice of the distractors to serve")
    args = p.parse_args()
    origins = [o for o in args.origins.split(",") if o]
    real = [t for t in json.loads(DATASET.read_text()) if t["server"] in origins]
    counts: dict[str, int] = {}
    for t in real:
        counts[t["name"]] = counts.get(t["name"], 0) + 1

    tools: list[types.Tool] = []
    origin_of: dict[str, str] = {}
    for t in real:
        name = t["name"] if counts[t["name"]] == 1 else f"{t['server']}_{t['name']}"
        tools.append(
            types.Tool(
                name=name,
                title=t.get("title"),
                description=t.get("description"),
                input_schema=t.get("inputSchema") or {"type": "object"},
            )
        )
        origin_of[name] = f"{t['server']}.{t['name']}"
    pool = distractors()
    start = args.slice * args.distractors
    for d in pool[start : start + args.distractors]:
        if d.name not in origin_of:
            tools.append(d)
            origin_of[d.name] = f"distractor.{d.name}"

    async def list_tools(_ctx, _params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(_ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        origin = origin_of.get(params.name)
        if origin is None:
            return types.CallToolResult(content=[types.TextContent(text=f"no tool {params.name}")], is_error=True)
        text = f"{origin} called with {json.dumps(params.arguments or {}, sort_keys=True)}"
        return types.CallToolResult(content=[types.TextContent(text=text)])

    server = Server("py-catalog", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)

    async def run() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(run)


if __name__ == "__main__":
    main()
