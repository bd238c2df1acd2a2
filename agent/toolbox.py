"""The agent's tools: every configured MCP server behind one set of unique, valid names.

The LLM sees ``<server>__<tool>`` names matching ``^[a-zA-Z0-9_-]{1,64}$`` (what OpenAI-style
function calling accepts), unique across servers; overlong or colliding names are shortened
deterministically with a hash suffix. Calls are routed back to the right server and name, with
the calling Telegram user in ``_meta`` for the built-in skills server.

This is where a tool's output enters the agent, so the two per-call rules live here and only
here: the output cap (``RESULT_CAP``) and the client-side deadline. The skills server enforces
``OMNI_TOOL_TIMEOUT`` on its own tools and answers with a precise error; the toolbox waits
``CALL_GRACE`` seconds longer, so that answer arrives first, and its own deadline catches what
the server cannot: other MCP servers, and a server or pipe that hangs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from agent.mcp_config import BUILTIN, ServerSpec, server_specs
from agent.mcp_connection import McpConnection, RemoteTool, ServerGone
from agent.progress import describe_call
from agent.types import ServerStatus, Turn
from omni.logging import fields
from omni.settings import Settings

log = logging.getLogger(__name__)

MAX_NAME = 64
RESULT_CAP = 16_000  # characters of one tool result the model sees
CALL_GRACE = 5.0  # seconds the client waits beyond OMNI_TOOL_TIMEOUT (see the module)
_INVALID = re.compile(r"[^a-zA-Z0-9_-]+")
# Built-in tools only an admin may be offered, whatever their annotations say.
ADMIN_ONLY_BUILTIN = ("run_command",)


@dataclass(frozen=True, slots=True)
class Route:
    """Where an LLM-visible tool name leads."""

    public: str
    server: str
    tool: RemoteTool
    admin_only: bool


def public_name(server: str, tool: str, taken: set[str]) -> str:
    """A name for ``server``'s ``tool`` that is valid for every provider and not in ``taken``."""
    base = _INVALID.sub("_", f"{server}__{tool}").strip("_") or "tool"
    if len(base) <= MAX_NAME and base not in taken:
        return base
    digest = hashlib.sha1(f"{server}\0{tool}".encode()).hexdigest()
    for extra in range(0, 64):
        suffix = digest[:6] if extra == 0 else f"{digest[:6]}{extra}"
        candidate = f"{base[: MAX_NAME - len(suffix) - 1]}_{suffix}"
        if candidate not in taken:
            return candidate
    raise ValueError(f"cannot name tool {tool!r} of server {server!r} uniquely")  # pragma: no cover


def _definition(route: Route) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": route.public,
            "description": route.tool.description[:1024],
            "parameters": clean_schema(route.tool.input_schema),
        },
    }


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema providers accept: an object with properties, no ``$schema`` marker."""
    out = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
    if out.get("type") != "object":
        out = {"type": "object", "properties": {}} if not out.get("properties") else {**out, "type": "object"}
    out.setdefault("properties", {})
    return out


def _admin_only(server: str, spec: ServerSpec, tool: RemoteTool) -> bool:
    if server == BUILTIN and (tool.name in ADMIN_ONLY_BUILTIN or tool.name.startswith("shell")):
        return True
    return spec.admin_only and tool.destructive


class ToolBox:
    """Owns the MCP connections; ``async with ToolBox(specs) as box`` starts them concurrently."""

    def __init__(
        self,
        specs: dict[str, ServerSpec],
        *,
        start_timeout: float = 20.0,
        call_timeout: float = 60.0,
        result_cap: int = RESULT_CAP,
    ) -> None:
        self._start_timeout = start_timeout
        self._call_timeout = call_timeout
        self._result_cap = result_cap
        self._connections: dict[str, McpConnection] = {}
        self._routes: dict[str, Route] = {}
        self._definitions: dict[bool, list[dict[str, Any]]] = {True: [], False: []}  # by is_admin
        self._starting: asyncio.Task[None] | None = None
        self.source: Callable[[], dict[str, ServerSpec]] | None = None  # re-read on reload_config()
        for name, spec in specs.items():
            self._connections[name] = self._connection(name, spec)

    @classmethod
    def from_settings(cls, settings: Settings) -> ToolBox:
        """The built-in skills server plus OMNI_MCP_CONFIG's; bad config raises SettingsError."""
        box = cls(server_specs(settings), call_timeout=settings.tool_timeout + CALL_GRACE)
        box.source = lambda: server_specs(settings)
        return box

    def _connection(self, name: str, spec: ServerSpec) -> McpConnection:
        return McpConnection(name, spec, start_timeout=self._start_timeout, on_tools_changed=self._reindex)

    async def start(self) -> None:
        """Start every server at once; a failure is recorded and the others go on."""
        # The MCP client modules take ~0.5 s to import: off the loop, so polling goes on.
        await asyncio.to_thread(_import_client)
        await asyncio.gather(*(self._try_start(c) for c in self._connections.values()))

    def start_in_background(self) -> None:
        """Start the servers without waiting (the bot polls meanwhile); first use waits for them."""
        if self._starting is None:
            self._starting = asyncio.create_task(self.start(), name="toolbox-start")

    async def _started(self) -> None:
        self.start_in_background()  # first use starts the servers if warm-up did not
        assert self._starting is not None
        await asyncio.shield(self._starting)

    async def _try_start(self, conn: McpConnection) -> None:
        try:
            await conn.ensure()
        except ServerGone as exc:
            log.warning("%s", exc)

    def _reindex(self, _server: str = "") -> None:
        """Rebuild the name table; sorted so names and prompt order are stable across runs."""
        routes: dict[str, Route] = {}
        for server in sorted(self._connections):
            conn = self._connections[server]
            for tool in sorted(conn.tools, key=lambda t: t.name):
                name = public_name(server, tool.name, set(routes))
                routes[name] = Route(name, server, tool, _admin_only(server, conn.spec, tool))
        self._routes = routes
        # Built here, not per turn: every turn offers them, and the lists stay the same objects
        # until the tools change (the agent keys its size estimate on that).
        every = [(route.admin_only, _definition(route)) for route in routes.values()]
        self._definitions = {True: [d for _, d in every], False: [d for admin, d in every if not admin]}

    def status(self) -> list[ServerStatus]:
        return [
            ServerStatus(name, c.state, len(c.tools), c.error)
            for name, c in sorted(self._connections.items())
        ]

    def describe(self, name: str, arguments: dict[str, Any]) -> str:
        """A status line for a call in progress, e.g. "📄 reading notes.md…"."""
        route = self._routes.get(name)
        if route is None:
            return f"🔧 {name}…"
        return describe_call(route.server, route.tool.name, arguments)

    async def list_tools(self, turn: Turn) -> list[dict[str, Any]]:
        """OpenAI-format tool definitions this user may call."""
        await self._started()
        return self._definitions[turn.is_admin]

    async def call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
        """Run a tool; every failure comes back as text for the model, never as an exception.

        Each call logs one line here: the tool, how long it took, and its outcome.
        """
        started = time.perf_counter()
        outcome = "error"
        try:
            text, ok = await self._call(name, arguments, turn)
            outcome = "ok" if ok else "error"
            return text
        except asyncio.CancelledError:
            outcome = "cancelled"  # /stop or shutdown
            raise
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            log.info("tool call", extra=fields(tool=name, duration_ms=duration_ms, outcome=outcome))

    async def _call(self, name: str, arguments: dict[str, Any], turn: Turn) -> tuple[str, bool]:
        """The text the model sees, and whether the tool succeeded."""
        await self._started()
        route = self._routes.get(name)
        if route is None:
            return _unknown(name, list(self._routes)), False
        if route.admin_only and not turn.is_admin:
            return f"Error: the tool {name} is available to admins only.", False
        conn = self._connections[route.server]
        try:
            session = await conn.ensure()
        except ServerGone as exc:
            return f"Error: {exc}", False
        meta = _caller_meta(turn) if route.server == BUILTIN else None
        try:
            async with asyncio.timeout(self._call_timeout):
                result = await session.call_tool(route.tool.name, arguments, meta=meta)
        except TimeoutError:
            return f"Error: the tool {name} did not finish within {self._call_timeout:.0f} s.", False
        except Exception as exc:  # the server died or broke the protocol mid-call
            from mcp.shared.exceptions import MCPError
            from mcp_types import CONNECTION_CLOSED

            if isinstance(exc, MCPError) and exc.code != CONNECTION_CLOSED:
                return f"Error: {exc.error.message}", False
            conn.mark_dead(session, f"{exc.__class__.__name__} during {route.tool.name}")
            stopped = f"the tool server {route.server!r} stopped while running {name}; it will be restarted."
            return f"Error: {stopped}", False
        return self._render(result), not result.is_error

    def _render(self, result: Any) -> str:
        parts: list[str] = []
        for block in result.content or []:
            text = getattr(block, "text", None)
            if text is not None:
                parts.append(text)
            elif getattr(block, "type", "") == "resource":
                parts.append(getattr(block.resource, "text", "") or f"[resource {block.resource.uri}]")
            else:
                parts.append(f"[{getattr(block, 'type', 'content')} omitted]")
        if not parts and result.structured_content is not None:
            parts.append(json.dumps(result.structured_content, ensure_ascii=False))
        text = "\n".join(parts) or "(no output)"
        if result.is_error:
            text = text if text.startswith("Error") else f"Error: {text}"
        if len(text) > self._result_cap:
            cap = self._result_cap
            note = f"[truncated: the result was {len(text):,} characters; showing the first {cap:,}]"
            text = f"{text[: self._result_cap]}\n{note}"
        return text

    async def reload_config(self) -> list[str]:
        """Re-read the servers' config (OMNI_MCP_CONFIG) and apply what changed."""
        if self.source is None:
            return []
        return await self.reload(self.source())

    async def reload(self, specs: dict[str, ServerSpec]) -> list[str]:
        """Apply a re-read config: start new servers, restart changed ones, stop removed ones."""
        changes: list[str] = []
        for name in list(self._connections):
            if name not in specs:
                await self._connections.pop(name).close()
                changes.append(f"stopped {name}")
        for name, spec in specs.items():
            current = self._connections.get(name)
            if current is not None and current.spec == spec:
                continue
            if current is not None:
                await current.close()
            self._connections[name] = self._connection(name, spec)
            await self._try_start(self._connections[name])
            changes.append(f"{'restarted' if current else 'started'} {name}")
        self._reindex()
        return changes

    async def aclose(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self._connections.values()), return_exceptions=True)

    async def __aenter__(self) -> ToolBox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _import_client() -> None:
    import mcp.client.sse  # noqa: F401
    import mcp.client.stdio  # noqa: F401
    import mcp.client.streamable_http  # noqa: F401


def _caller_meta(turn: Turn) -> dict[str, Any] | None:
    """Who the skills server serves: a Telegram user, a restricted session (the gateway's
    callers, no user id), or nobody in particular (`omni chat`, whose turns are admin's)."""
    if turn.user_id is not None:
        return {"omni/user_id": turn.user_id, "omni/is_admin": turn.is_admin}
    if not turn.is_admin:  # without _meta the server would treat the caller as a trusted IDE
        return {"omni/session": turn.session_key, "omni/is_admin": False}
    return None


def _unknown(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"Error: there is no tool named {name!r}.{hint}"
