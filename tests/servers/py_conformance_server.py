#!/usr/bin/env python3
"""The MCP conformance suite's "everything" server, built on the official Python SDK (mcp==2.3.0).

It offers the tools, resources and prompts the official conformance suite's SERVER scenarios
look for (`@modelcontextprotocol/conformance`, mirroring its reference TypeScript
everything-server), so the suite can be pointed at it directly, or at mcpd with this server
as an upstream.

Run with the peers venv:  $MCPD_PEERS/venv/bin/python tests/servers/py_conformance_server.py

    py_conformance_server.py [--transport stdio|http] [--host 127.0.0.1] [--port N]

stdio: JSON-RPC over stdin/stdout (logs go to stderr).
http:  streamable HTTP at http://HOST:PORT/mcp . With --port 0 (the default) a free port is
       chosen; in every case the line
           py_conformance_server listening on http://HOST:PORT/mcp
       is printed to stderr (flushed) once the socket is bound and listening.

Both protocol eras are served on either transport: the session era (`initialize`, up to
2025-11-25) and the stateless 2026-07-28 era (`server/discover`, per-request `_meta`). The
client's first request picks the era of a stdio connection.

Server-to-client input (elicitation, sampling, roots) follows the era: a request sent
mid-call on the session era, an `input_required` result on 2026-07-28. The
`test_input_required_result_*` tools are written in the 2026-07-28 style; on the session era
they send their input requests mid-call instead, so they answer on either era.

Tools beyond the suite's own:  test_update_watched_resource() announces a change of
test://watched-resource to subscribers (resources/subscribe or subscriptions/listen).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import socket
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
import mcp_types as types
from mcp.server import NotificationOptions, ServerRequestContext
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
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

# Logging, sampling and roots are deprecated at 2026-07-28 but still what the 2025-11-25
# scenarios exercise; one warning per call would bury the server's real stderr.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

# 1x1 red PNG and a minimal WAV: the fixtures the suite's reference server serves.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

MODERN = "2026-07-28"

# The reference server's hints: lists may be shared for five minutes, reads are per-caller.
_LIST_HINT = CacheHint(ttl_ms=300_000, scope="public")
_READ_HINT = CacheHint(ttl_ms=300_000, scope="private")

# SEP-1613/SEP-2106: tools/list must carry these 2020-12 keywords unchanged.
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def json_schema_2020_12_tool(
    name: str | None = None,
    address: dict[str, Any] | None = None,
    contactMethod: str | None = None,  # noqa: N803 - the wire name
    phone: str | None = None,
    email: str | None = None,
) -> str:
    args = {"name": name, "address": address, "contactMethod": contactMethod, "phone": phone, "email": email}
    return "JSON Schema 2020-12 tool called with: " + json.dumps({k: v for k, v in args.items() if v is not None})


# The decorator API derives inputSchema from the signature; this one tool must list a
# hand-written schema instead, so it is built as a Tool and its schema replaced.
_schema_tool = Tool.from_function(
    json_schema_2020_12_tool,
    description="Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
    structured_output=False,
).model_copy(update={"parameters": JSON_SCHEMA_2020_12})

server = MCPServer(
    "mcp-conformance-test-server",
    version="1.0.0",
    log_level="WARNING",
    tools=[_schema_tool],
    cache_hints={
        "tools/list": _LIST_HINT,
        "prompts/list": _LIST_HINT,
        "resources/list": _LIST_HINT,
        "resources/templates/list": _LIST_HINT,
        "resources/read": _READ_HINT,
    },
)
_low = server._lowlevel_server  # noqa: SLF001 - logging/subscribe handlers have no MCPServer API

# The session era advertises `listChanged` only when told to, and MCPServer offers no way
# to tell it; without this the trigger tools below would announce changes the client was
# never promised.
_plain_init_options = _low.create_initialization_options


def _init_options_with_list_changed(notification_options: NotificationOptions | None = None, *args: Any, **kw: Any):
    changed = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
    return _plain_init_options(changed, *args, **kw)


_low.create_initialization_options = _init_options_with_list_changed  # type: ignore[method-assign]


def tool(**kwargs: Any) -> Callable[[Any], Any]:
    # Unstructured like the reference server's tools: no outputSchema, no structuredContent.
    return server.tool(structured_output=False, **kwargs)


def _modern(ctx: Context) -> bool:
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, MODERN)


# ===== tools: content types =====


@tool(description="Tests simple text content response")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@tool(description="Tests image content response")
def test_image_content() -> list[types.ImageContent]:
    return [types.ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")]


@tool(description="Tests audio content response")
def test_audio_content() -> list[types.AudioContent]:
    return [types.AudioContent(type="audio", data=WAV_BASE64, mime_type="audio/wav")]


def _embedded(uri: str, mime_type: str, text: str) -> types.EmbeddedResource:
    return types.EmbeddedResource(
        type="resource", resource=types.TextResourceContents(uri=uri, mime_type=mime_type, text=text)
    )


@tool(description="Tests embedded resource content response")
def test_embedded_resource() -> list[types.EmbeddedResource]:
    return [_embedded("test://embedded-resource", "text/plain", "This is an embedded resource content.")]


@tool(description="Tests response with multiple content types (text, image, resource)")
def test_multiple_content_types() -> list[types.TextContent | types.ImageContent | types.EmbeddedResource]:
    return [
        types.TextContent(type="text", text="Multiple content types test:"),
        types.ImageContent(type="image", data=PNG_BASE64, mime_type="image/png"),
        _embedded("test://mixed-content-resource", "application/json", json.dumps({"test": "data", "value": 123})),
    ]


@tool(description="Tests error response handling")
def test_error_handling() -> str:
    # A ToolError is the SDK's anticipated failure: `isError: true` carrying this text (any
    # other exception would read "Error executing tool ..." and log a traceback).
    raise ToolError("This tool intentionally returns an error for testing")


# ===== tools: notifications during a call =====


@tool(description="Tests tool that emits log messages during execution")
async def test_tool_with_logging(ctx: Context) -> str:
    # On 2026-07-28 the SDK drops these unless the request's _meta opted into a log level.
    for i, text in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
        if i:
            await anyio.sleep(0.05)
        await ctx.info(text)
    return "Tool with logging executed successfully"


@tool(description="Tests tool that reports progress notifications")
async def test_tool_with_progress(ctx: Context) -> str:
    for i, step in enumerate((0, 50, 100)):
        if i:
            await anyio.sleep(0.05)
        # A no-op when the request carried no progressToken.
        await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
    meta = ctx.request_context.meta
    token = meta.get("progress_token") if meta else None
    return str(token if token is not None else 0)


@tool(
    description="Tests SSE stream disconnection and client reconnection (SEP-1699): the server closes "
    "the stream mid-call and the result arrives after the client reconnects."
)
async def test_reconnection(ctx: Context) -> str:
    await ctx.info("Before disconnect")
    # Only Streamable HTTP with an event store can do this; elsewhere it is a no-op and the
    # call simply completes.
    await ctx.close_sse_stream()
    await anyio.sleep(0.2)
    await ctx.info("After reconnect")
    return (
        "Reconnection test completed successfully. If you received this, the client properly "
        "reconnected after stream closure."
    )


@tool(description="Diagnostic logging validator tool")
async def test_logging_tool(ctx: Context) -> str:
    await ctx.info("Diagnostic trace logging activated")
    return "Logging evaluated"


@tool(
    description="Tests SEP-2243 Mcp-Param-* header validation: `region` is mirrored into the "
    "Mcp-Param-Region header."
)
def test_x_mcp_header(
    region: Annotated[
        str,
        Field(description="Mirrored into the Mcp-Param-Region header", json_schema_extra={"x-mcp-header": "Region"}),
    ] = "<none>",
) -> str:
    return f"region={region}"


# ===== tools: list changes =====


def _dynamic() -> str:
    return "dynamic"


async def _announce(ctx: Context, what: str) -> None:
    if _modern(ctx):
        # 2026-07-28: delivered on open subscriptions/listen streams that asked for it.
        await (ctx.notify_tools_changed() if what == "tools" else ctx.notify_prompts_changed())
    elif what == "tools":
        await ctx.session.send_tool_list_changed()
    else:
        await ctx.session.send_prompt_list_changed()


@tool(description="Changes the tool list and announces it (SEP-2575 list-change test hook)")
async def test_trigger_tool_change(ctx: Context) -> str:
    # Each call toggles one tool, so the list a client re-reads after the announcement really
    # differs (a proxy that re-lists before it announces, as mcpd does, sees the change).
    if any(t.name == "test_dynamic_tool" for t in server._tool_manager.list_tools()):
        server.remove_tool("test_dynamic_tool")
    else:
        server.add_tool(_dynamic, name="test_dynamic_tool", description="Toggled by test_trigger_tool_change.")
    await _announce(ctx, "tools")
    return "Mutation triggered"


@tool(description="Changes the prompt list and announces it (SEP-2575 list-change test hook)")
async def test_trigger_prompt_change(ctx: Context) -> str:
    server.add_prompt(Prompt.from_function(_dynamic, name="test_dynamic_prompt", description="dynamic"))
    server.remove_prompt("test_dynamic_prompt")
    await _announce(ctx, "prompts")
    return "Mutation triggered"


# ===== tools: sampling and elicitation (era-following, via the SDK's resolvers) =====


def _ask_model(prompt: str) -> Sample:
    return Sample(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))], max_tokens=100
    )


@tool(description="Tests server-initiated sampling (LLM completion request)")
async def test_sampling(
    prompt: Annotated[str, Field(description="The prompt to send to the LLM")],
    answer: Annotated[types.CreateMessageResult, Resolve(_ask_model)],
) -> str:
    content = answer.content
    text = content.text if isinstance(content, types.TextContent) else "No response"
    return f"LLM response: {text}"


class UserInfo(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


def _ask_user(message: str) -> Elicit[UserInfo]:
    return Elicit(message, UserInfo)


def _outcome(result: ElicitationResult[Any]) -> str:
    content = result.data.model_dump_json() if isinstance(result, AcceptedElicitation) else "{}"
    return f"action={result.action}, content={content}"


@tool(description="Tests server-initiated elicitation (user input request)")
async def test_elicitation(
    message: Annotated[str, Field(description="The message to show the user")],
    answer: Annotated[ElicitationResult[UserInfo], Resolve(_ask_user)],
) -> str:
    return f"User response: {_outcome(answer)}"


class Defaults(BaseModel):
    """SEP-1034: a default for every primitive type."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active", description="User status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(default=True, description="Verification status")


def _ask_defaults() -> Elicit[Defaults]:
    return Elicit("Please review and update the form fields with defaults", Defaults)


@tool(description="Tests elicitation with default values per SEP-1034")
async def test_elicitation_sep1034_defaults(
    answer: Annotated[ElicitationResult[Defaults], Resolve(_ask_defaults)],
) -> str:
    return f"Elicitation completed: {_outcome(answer)}"


def _choices(values: list[str], titles: list[str]) -> list[dict[str, str]]:
    return [{"const": v, "title": t} for v, t in zip(values, titles, strict=True)]


_OPTIONS = ["option1", "option2", "option3"]
_VALUES = ["value1", "value2", "value3"]


class Enums(BaseModel):
    """SEP-1330: the five enum shapes, in the values the suite answers with."""

    untitledSingle: str | None = Field(  # noqa: N815 - wire names
        default=None, description="Select one option", json_schema_extra={"enum": _OPTIONS}
    )
    titledSingle: str | None = Field(  # noqa: N815
        default=None,
        description="Select one option with titles",
        json_schema_extra={"oneOf": _choices(_VALUES, ["First Option", "Second Option", "Third Option"])},
    )
    legacyEnum: str | None = Field(  # noqa: N815
        default=None,
        description="Select one option (legacy)",
        json_schema_extra={"enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
    )
    untitledMulti: list[str] | None = Field(  # noqa: N815
        default=None,
        description="Select multiple options",
        json_schema_extra={"minItems": 1, "maxItems": 3, "items": {"type": "string", "enum": _OPTIONS}},
    )
    titledMulti: list[str] | None = Field(  # noqa: N815
        default=None,
        description="Select multiple options with titles",
        json_schema_extra={
            "minItems": 1,
            "maxItems": 3,
            "items": {"anyOf": _choices(_VALUES, ["First Choice", "Second Choice", "Third Choice"])},
        },
    )


def _ask_enums() -> Elicit[Enums]:
    return Elicit("Please select options from the enum fields", Enums)


@tool(description="Tests elicitation with enum schema improvements per SEP-1330")
async def test_elicitation_sep1330_enums(answer: Annotated[ElicitationResult[Enums], Resolve(_ask_enums)]) -> str:
    return f"Elicitation completed: {_outcome(answer)}"


class Confirmation(BaseModel):
    ok: bool


def _ask_confirmation() -> Elicit[Confirmation]:
    return Elicit("Please confirm", Confirmation)


@tool(description="Diagnostic tool validating response progress streams")
async def test_streaming_elicitation(
    ctx: Context, answer: Annotated[ElicitationResult[Confirmation], Resolve(_ask_confirmation)]
) -> str:
    await ctx.report_progress(progress=50, total=100)
    return "Streaming complete"


@tool(description="Test tool requiring sampling")
async def test_missing_capability(ctx: Context) -> str:
    caps = ctx.client_capabilities
    if caps is None or caps.sampling is None:
        # An MCPError, unlike other exceptions, is not folded into an isError result, so the
        # client sees the JSON-RPC error (HTTP 400 on 2026-07-28).
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="MissingRequiredClientCapabilityError: this tool needs the client's sampling capability",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return "Success"


# ===== tools: SEP-2322 multi-round-trip (input_required) =====

Step = Callable[[types.InputResponses, str | None], Awaitable[Any]]

# Per input-request method: the result type, and the client capability it needs.
_RESULT_TYPES: dict[str, tuple[type[BaseModel], str]] = {
    "elicitation/create": (types.ElicitResult, "elicitation"),
    "sampling/createMessage": (types.CreateMessageResult, "sampling"),
    "roots/list": (types.ListRootsResult, "roots"),
}
_MAX_ROUNDS = 8


async def _drive(ctx: Context, step: Step) -> Any:
    """Run a 2026-07-28-style handler on either era.

    `step(responses, state)` returns the final value or an InputRequiredResult. On
    2026-07-28 that result goes to the client, which retries with the answers. On the
    session era there is no such result, so its requests are sent mid-call and the step is
    re-run with the answers here, the way the client would have retried.
    """
    if _modern(ctx):
        return await step(ctx.input_responses or {}, ctx.request_state)
    responses: types.InputResponses = {}
    state: str | None = None
    for _ in range(_MAX_ROUNDS):
        result = await step(responses, state)
        if not isinstance(result, types.InputRequiredResult):
            return result
        responses = {}
        caps = ctx.client_capabilities
        for key, request in (result.input_requests or {}).items():
            result_type, capability = _RESULT_TYPES[request.method]
            if caps is None or getattr(caps, capability) is None:
                # What the SDK's own resolvers answer, rather than a request the client
                # said it cannot handle.
                raise MCPError(
                    code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                    message=f"MissingRequiredClientCapabilityError: {request.method} needs the client's {capability}",
                    data={"requiredCapabilities": {capability: {}}},
                )
            responses[key] = await ctx.session.send_request(
                request, result_type, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
            )
        state = result.request_state
    raise RuntimeError(f"gave up after {_MAX_ROUNDS} rounds of input requests")


def _form(message: str, properties: dict[str, Any], required: list[str]) -> types.ElicitRequest:
    schema = {"type": "object", "properties": properties, "required": required}
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


def _name_form(message: str = "What is your name?") -> types.ElicitRequest:
    return _form(message, {"name": {"type": "string"}}, ["name"])


def _confirm_form() -> types.ElicitRequest:
    return _form("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])


def _sampling(text: str, max_tokens: int) -> types.CreateMessageRequest:
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(
            messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))],
            max_tokens=max_tokens,
        )
    )


def _field(answer: types.InputResponse | None, name: str, fallback: str = "unknown") -> str:
    if isinstance(answer, types.ElicitResult) and answer.content:
        value = answer.content.get(name)
        if isinstance(value, str):
            return value
    return fallback


def _sampled_text(answer: types.InputResponse | None) -> str | None:
    if isinstance(answer, types.CreateMessageResult) and isinstance(answer.content, types.TextContent):
        return answer.content.text
    return None


def _root_count(answer: types.InputResponse | None) -> int:
    return len(answer.roots) if isinstance(answer, types.ListRootsResult) else 0


# The SDK seals requestState before it leaves (RequestStateSecurity, an ephemeral key by
# default) and rejects a tampered echo before the handler runs, so the states below are
# plaintext JSON.
_nonce = itertools.count(1)


def _state(state: str | None) -> dict[str, Any]:
    # Anything unreadable counts as no state: the tool then starts over with its first question.
    try:
        saved = json.loads(state) if state else {}
    except ValueError:
        return {}
    return saved if isinstance(saved, dict) else {}


@tool(description="MRTR: returns InputRequiredResult with elicitation request")
async def test_input_required_result_elicitation(ctx: Context) -> str | types.InputRequiredResult:
    async def step(responses: types.InputResponses, state: str | None) -> Any:
        if "user_name" in responses:
            return f"Hello, {_field(responses['user_name'], 'name')}!"
        return types.InputRequiredResult(input_requests={"user_name": _name_form()})

    return await _drive(ctx, step)


@tool(description="MRTR: returns InputRequiredResult with sampling request")
async def test_input_required_result_sampling(ctx: Context) -> str | types.InputRequiredResult:
    async def step(responses: types.InputResponses, state: str | None) -> Any:
        if "sample_request" in responses:
            return f"Sampling result: {_sampled_text(responses['sample_request']) or 'no response'}"
        return types.InputRequiredResult(
            input_requests={"sample_request": _sampling("What is the capital of France?", 100)}
        )

    return await _drive(ctx, step)


@tool(description="MRTR: returns InputRequiredResult with roots/list request")
async def test_input_required_result_list_roots(ctx: Context) -> str | types.InputRequiredResult:
    async def step(responses: types.InputResponses, state: str | None) -> Any:
        if "roots_request" in responses:
            return f"Found {_root_count(responses['roots_request'])} root(s)"
        return types.InputRequiredResult(input_requests={"roots_request": types.ListRootsRequest()})

    return await _drive(ctx, step)


@tool(description="MRTR: returns InputRequiredResult with requestState")
async def test_input_required_result_request_state(ctx: Context) -> str | types.InputRequiredResult:
    async def step(responses: types.InputResponses, state: str | None) -> Any:
        answer = responses.get("confirm")
        if _state(state).get("kind") == "request-state" and isinstance(answer, types.ElicitResult):
            if answer.content and answer.content.get("ok") is True:
                return "state-ok: requestState validated"
        return types.InputRequiredResult(
            input_requests={"confirm": _confirm_form()},
            request_state=json.dumps({"kind": "request-state", "nonce": next(_nonce)}),
        )

    return await _drive(ctx, step)


@tool(description="MRTR: returns InputRequiredResult with multiple input requests")
async def test_input_required_result_multiple_inputs(ctx: Context) -> str | types.InputRequiredResult:
    async def step(responses: types.InputResponses, state: str | None) -> Any:
        wanted = {"user_name", "greeting", "client_roots"}
        if _state(state).get("kind") == "multiple-inputs" and wanted <= responses.keys():
            name = _field(responses["user_name"], "name")
            greeting = _sampled_text(responses["greeting"]) or "Hello there!"
            return f"Name: {name}; Greeting: {greeting}; Roots: {_root_count(responses['client_roots'])}"
        return types.InputRequiredResult(
            input_requests={
                "user_name": _name_form(),
                "greeting": _sampling("Generate a greeting", 50),
                "client_roots": types.ListRootsRequest(),
            },
            request_state=json.dumps({"kind": "multiple-inputs", "nonce": next(_nonce)}),
        )

    return await _drive(ctx, step)


@tool(description="MRTR: multi-round InputRequiredResult workflow")
async def test_input_required_result_multi_round(ctx: Context) -> str | types.InputRequiredResult:
    def round_one() -> types.InputRequiredResult:
        return types.InputRequiredResult(
            input_requests={"step1": _name_form("Step 1: What is your name?")},
            request_state=json.dumps({"round": 1, "nonce": next(_nonce)}),
        )

    async def step(responses: types.InputResponses, state: str | None) -> Any:
        if not state:
            return round_one()
        saved = _state(state)
        if saved.get("round") == 1 and "step1" in responses:
            name = _field(responses["step1"], "name", "friend")
            return types.InputRequiredResult(
                input_requests={
                    "step2": _form("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
                },
                request_state=json.dumps({"round": 2, "name": name, "nonce": next(_nonce)}),
            )
        if saved.get("round") == 2 and "step2" in responses:
            color = _field(responses["step2"], "color")
            return f"Multi-round complete for {saved.get('name', 'friend')} who likes {color}"
        # A missing or out-of-order answer starts over rather than guessing.
        return round_one()

    return await _drive(ctx, step)


@tool(description="MRTR: requestState integrity test (the SDK seals the state it sends)")
async def test_input_required_result_tampered_state(ctx: Context) -> str | types.InputRequiredResult:
    async def step(responses: types.InputResponses, state: str | None) -> Any:
        # A tampered state never gets here: the SDK's request-state boundary answers -32602.
        if _state(state).get("kind") == "tamper-test" and "confirm" in responses:
            return "integrity-ok: state verified"
        return types.InputRequiredResult(
            input_requests={"confirm": _confirm_form()},
            request_state=json.dumps({"kind": "tamper-test", "nonce": next(_nonce)}),
        )

    return await _drive(ctx, step)


@tool(description="MRTR: respects client capabilities in inputRequests")
async def test_input_required_result_capabilities(ctx: Context) -> str | types.InputRequiredResult:
    caps = ctx.client_capabilities

    async def step(responses: types.InputResponses, state: str | None) -> Any:
        if responses:
            return f"capabilities-ok: received {','.join(responses)}"
        # Ask only for what the client declared it can answer.
        requests: dict[str, types.InputRequest] = {}
        if caps is not None and caps.elicitation is not None:
            requests["elicit_input"] = _form("Elicitation input", {"value": {"type": "string"}}, ["value"])
        if caps is not None and caps.sampling is not None:
            requests["sample_input"] = _sampling("Sample request", 50)
        if not requests:
            return "No supported capabilities declared"
        return types.InputRequiredResult(
            input_requests=requests, request_state=json.dumps({"kind": "capabilities-test", "nonce": next(_nonce)})
        )

    return await _drive(ctx, step)


# ===== resources =====

WATCHED_URI = "test://watched-resource"
_watched = {"text": "Watched resource content", "version": 0}
# URIs some session-era client subscribed to. One set for all sessions: this is a test
# fixture, and the only session notified is the one whose call changed the resource.
_subscribed: set[str] = set()


@server.resource(
    "test://static-text",
    name="static-text",
    title="Static Text Resource",
    description="A static text resource for testing",
    mime_type="text/plain",
)
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource(
    "test://static-binary",
    name="static-binary",
    title="Static Binary Resource",
    description="A static binary resource (image) for testing",
    mime_type="image/png",
)
def static_binary() -> bytes:
    return base64.b64decode(PNG_BASE64)


@server.resource(
    "test://template/{id}/data",
    name="template",
    title="Resource Template",
    description="A resource template with parameter substitution",
    mime_type="application/json",
)
def template(id: str) -> str:  # noqa: A002 - the template variable's name
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.resource(
    WATCHED_URI,
    name="watched-resource",
    title="Watched Resource",
    description="A resource that changes when test_update_watched_resource is called",
    mime_type="text/plain",
)
def watched() -> str:
    return _watched["text"]


@tool(description="Change test://watched-resource and notify its subscribers")
async def test_update_watched_resource(ctx: Context) -> str:
    _watched["version"] += 1
    _watched["text"] = f"Watched resource content (update {_watched['version']})"
    if _modern(ctx):
        await ctx.notify_resource_updated(WATCHED_URI)
    elif WATCHED_URI in _subscribed:
        await ctx.session.send_resource_updated(WATCHED_URI)
    return _watched["text"]


async def _subscribe(ctx: ServerRequestContext, params: types.SubscribeRequestParams) -> types.EmptyResult:
    _subscribed.add(str(params.uri))
    return types.EmptyResult()


async def _unsubscribe(ctx: ServerRequestContext, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    _subscribed.discard(str(params.uri))
    return types.EmptyResult()


async def _set_level(ctx: ServerRequestContext, params: types.SetLevelRequestParams) -> types.EmptyResult:
    # Accepted and ignored, as in the reference server: every log line is sent.
    return types.EmptyResult()


# Session-era methods only; on 2026-07-28 the SDK answers them as removed (-32601, HTTP 404).
_low.add_request_handler("resources/subscribe", types.SubscribeRequestParams, _subscribe)
_low.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, _unsubscribe)
_low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, _set_level)


# ===== prompts =====


def _say(text: str) -> UserMessage:
    return UserMessage(role="user", content=types.TextContent(type="text", text=text))


@server.prompt(title="Simple Test Prompt", description="A simple prompt without arguments")
def test_simple_prompt() -> list[UserMessage]:
    return [_say("This is a simple prompt for testing.")]


@server.prompt(title="Prompt With Arguments", description="A prompt with required arguments")
def test_prompt_with_arguments(
    arg1: Annotated[str, Field(description="First test argument")],
    arg2: Annotated[str, Field(description="Second test argument")],
) -> list[UserMessage]:
    return [_say(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]


@server.prompt(title="Prompt With Embedded Resource", description="A prompt that includes an embedded resource")
def test_prompt_with_embedded_resource(
    resourceUri: Annotated[str, Field(description="URI of the resource to embed")],  # noqa: N803
) -> list[UserMessage]:
    return [
        UserMessage(
            role="user", content=_embedded(resourceUri, "text/plain", "Embedded resource content for testing.")
        ),
        _say("Please process the embedded resource above."),
    ]


@server.prompt(title="Prompt With Image", description="A prompt that includes image content")
def test_prompt_with_image() -> list[UserMessage]:
    return [
        UserMessage(role="user", content=types.ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")),
        _say("Please analyze the image above."),
    ]


@server.prompt(description="MRTR: prompt that requires elicitation input")
async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | types.InputRequiredResult:
    async def step(responses: types.InputResponses, state: str | None) -> Any:
        if "user_context" in responses:
            return [_say(f"Prompt with context: {_field(responses['user_context'], 'context')}")]
        return types.InputRequiredResult(
            input_requests={
                "user_context": _form(
                    "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
                )
            }
        )

    return await _drive(ctx, step)


# ===== completion =====


@server.completion()
async def _complete(
    ref: types.PromptReference | types.ResourceTemplateReference,
    argument: types.CompletionArgument,
    context: types.CompletionContext | None,
) -> types.Completion:
    # The suite asks only that completion/complete answers; the reference server offers nothing.
    return types.Completion(values=[], total=0, has_more=False)


# ===== transports =====


class MemoryEventStore(EventStore):
    """Keeps every SSE event so a client reconnecting with Last-Event-ID gets the rest (SEP-1699).

    Never trimmed: this serves test runs, not long-lived deployments.
    """

    def __init__(self) -> None:
        self._events: list[tuple[str, str, types.JSONRPCMessage | None]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: str, message: types.JSONRPCMessage | None) -> str:
        event_id = str(next(self._ids))
        self._events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        stream = next((s for s, e, _ in self._events if e == last_event_id), None)
        if stream is None:
            return None
        after = int(last_event_id)
        for s, e, message in list(self._events):
            # Priming events carry no message and are not replayed.
            if s == stream and int(e) > after and message is not None:
                await send_callback(EventMessage(message, e))
        return stream


async def _serve_http(host: str, port: int) -> None:
    import uvicorn

    # A short retry interval keeps the suite's SSE polling scenario quick.
    app = server.streamable_http_app(
        streamable_http_path="/mcp", host=host, event_store=MemoryEventStore(), retry_interval=100
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(app, host=host, port=bound, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    print(f"py_conformance_server listening on http://{shown}:{bound}/mcp", file=sys.stderr, flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        anyio.run(_serve_http, args.host, args.port)


if __name__ == "__main__":
    main()
