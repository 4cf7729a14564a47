#!/usr/bin/env python3
"""A tasks server for mcpd's tests, on the official Python SDK (mcp==2.3.0).

The SDK ships the types of the tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663)
but no server side, so this adds it as an SDK extension (`mcp.server.extension`): a
`tools/call` interceptor that answers `long_job` with a task, and the `tasks/get`,
`tasks/update` and `tasks/cancel` methods.

Run with the peers venv:  $MCPD_PEERS/venv/bin/python tests/servers/py_tasks_server.py  (stdio)

In the session era the SDK serves no extension results, so there long_job runs inline.

Tools: long_job(steps=3, step_ms=200, confirm=False): a task that runs `steps` steps of
       `step_ms` each, its statusMessage "step I of N"; with confirm, it first asks the
       client (input_required, an elicitation for a boolean `go`) and stops if told no.
       Completes with "finished N steps".
       task_log(): JSON {taskId: status} of every task so far (what the tests check).
       echo(text): an ordinary tool, answered at once.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any

import mcp_types as types
from mcp.server.extension import Extension, MethodBinding, ToolBinding
from mcp.server.mcpserver import MCPServer

POLL_MS = 100


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class UpdateTaskParams(types.RequestParams):
    task_id: str
    input_responses: dict[str, Any] = {}


class Tasks(Extension):
    identifier = "io.modelcontextprotocol/tasks"

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.jobs: set[asyncio.Task[None]] = set()

    def tools(self) -> list[ToolBinding]:
        def long_job(steps: int = 3, step_ms: int = 200, confirm: bool = False) -> str:
            """Run a long job as a task (the interceptor answers; this body never runs)."""
            return "not a task"

        def task_log() -> str:
            """Every task so far and its status, as JSON."""
            return json.dumps({k: t["status"] for k, t in self.tasks.items()}, sort_keys=True)

        return [ToolBinding(long_job), ToolBinding(task_log)]

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding("tasks/get", types.GetTaskRequestParams, self.get),
            MethodBinding("tasks/update", UpdateTaskParams, self.update),
            MethodBinding("tasks/cancel", types.CancelTaskRequestParams, self.cancel),
        ]

    def _wire(self, t: dict[str, Any]) -> dict[str, Any]:
        out = {
            "taskId": t["id"],
            "status": t["status"],
            "statusMessage": t["message"],
            "createdAt": t["created"],
            "lastUpdatedAt": t["updated"],
            "ttlMs": 60000,
            "pollIntervalMs": POLL_MS,
        }
        if t["status"] == "input_required":
            out["inputRequests"] = t["input"]
        if t["status"] == "completed":
            out["result"] = t["result"]
        return out

    def _set(self, t: dict[str, Any], status: str, message: str) -> None:
        if t["status"] in ("completed", "failed", "cancelled"):
            return
        t["status"], t["message"], t["updated"] = status, message, _now()

    async def _run(self, t: dict[str, Any], steps: int, step_ms: int, confirm: bool) -> None:
        if confirm:
            t["input"] = {
                "go": {
                    "method": "elicitation/create",
                    "params": {
                        "mode": "form",
                        "message": "Run the long job?",
                        "requestedSchema": {
                            "type": "object",
                            "properties": {"go": {"type": "boolean", "default": True}},
                            "required": ["go"],
                        },
                    },
                }
            }
            self._set(t, "input_required", "waiting for confirmation")
            await t["answered"].wait()
            answer = t["answer"] or {}
            if not (answer.get("action") == "accept" and (answer.get("content") or {}).get("go") is True):
                t["result"] = {"content": [{"type": "text", "text": "not confirmed"}], "isError": True}
                self._set(t, "completed", "not confirmed")
                return
        for i in range(steps):
            self._set(t, "working", f"step {i + 1} of {steps}")
            await asyncio.sleep(step_ms / 1000.0)
            if t["status"] == "cancelled":
                return
        t["result"] = {"content": [{"type": "text", "text": f"finished {steps} steps"}], "isError": False}
        self._set(t, "completed", "done")

    async def intercept_tool_call(self, params: types.CallToolRequestParams, ctx: Any, call_next: Any) -> Any:
        if params.name != "long_job":
            return await call_next(ctx)
        args = params.arguments or {}
        steps, step_ms = int(args.get("steps", 3)), int(args.get("step_ms", 200))
        if getattr(ctx, "protocol_version", None) != "2026-07-28":
            # The SDK serves the extension in the 2026-07-28 era only (a session-era result
            # must be a CallToolResult): there the job runs inline, as a plain long call.
            await asyncio.sleep(steps * step_ms / 1000.0)
            return {"content": [{"type": "text", "text": f"finished {steps} steps"}], "isError": False}
        now = _now()
        t: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "status": "working",
            "message": "starting",
            "created": now,
            "updated": now,
            "result": None,
            "input": None,
            "answer": None,
            "answered": asyncio.Event(),
        }
        self.tasks[t["id"]] = t
        job = asyncio.get_running_loop().create_task(
            self._run(t, steps, step_ms, bool(args.get("confirm", False)))
        )
        self.jobs.add(job)
        job.add_done_callback(self.jobs.discard)
        return {"resultType": "task", **self._wire(t)}

    def _task(self, task_id: str) -> dict[str, Any]:
        t = self.tasks.get(task_id)
        if t is None:
            raise ValueError(f"no task {task_id}")
        return t

    async def get(self, ctx: Any, params: types.GetTaskRequestParams) -> dict[str, Any]:
        return {"resultType": "complete", **self._wire(self._task(params.task_id))}

    async def update(self, ctx: Any, params: UpdateTaskParams) -> dict[str, Any]:
        t = self._task(params.task_id)
        if "go" in params.input_responses and t["status"] == "input_required":
            t["answer"] = params.input_responses["go"]
            self._set(t, "working", "confirmed")
            t["answered"].set()
        return {"resultType": "complete"}

    async def cancel(self, ctx: Any, params: types.CancelTaskRequestParams) -> dict[str, Any]:
        t = self._task(params.task_id)
        self._set(t, "cancelled", "cancelled by the client")
        t["answered"].set()
        return {"resultType": "complete"}


server = MCPServer("mcpd-py-tasks-server", version="1.0.0", log_level="WARNING", extensions=[Tasks()])


@server.tool(description="Echo the given text back unchanged.")
def echo(text: str) -> str:
    return text


if __name__ == "__main__":
    server.run("stdio")
