"""One MCP server as seen by the agent: started, supervised, restarted on demand.

The SDK's transports are anyio context managers that must be entered and left in the same
task, so each connection lives in a task of its own; other tasks use its ``ClientSession``
and wait on events. A dead stdio server is restarted on the next use, with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal

from agent.mcp_config import RemoteSpec, ServerSpec, StdioSpec

log = logging.getLogger(__name__)

State = Literal["stopped", "starting", "ready", "failed"]
_BACKOFF_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class RemoteTool:
    """A tool as the server described it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    destructive: bool
    read_only: bool


class ServerGone(Exception):
    """The server is not running and could not be (re)started."""


class McpConnection:
    """A supervised client session to one server."""

    def __init__(
        self, name: str, spec: ServerSpec, *, start_timeout: float, on_tools_changed: Callable[[str], None]
    ) -> None:
        self.name = name
        self.spec = spec
        self.state: State = "stopped"
        self.error: str | None = None
        self.tools: list[RemoteTool] = []
        self._start_timeout = start_timeout
        self._on_tools_changed = on_tools_changed
        self._session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._failures = 0
        self._next_try = 0.0

    async def ensure(self) -> Any:
        """The live session, (re)starting the server if needed; raises :class:`ServerGone`."""
        if self.state == "ready" and self._session is not None:
            return self._session
        async with self._start_lock:
            if self.state == "ready" and self._session is not None:
                return self._session
            wait = self._next_try - time.monotonic()
            if wait > 0:
                raise ServerGone(f"server {self.name!r} is restarting; retry in {wait:.0f} s ({self.error})")
            await self._start()
            if self.state != "ready":
                raise ServerGone(f"server {self.name!r} is unavailable: {self.error}")
            return self._session

    async def _start(self) -> None:
        await self._halt()
        self.state, self.error = "starting", None
        self._ready, self._stop = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"mcp:{self.name}")
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._ready.wait()
        except TimeoutError:
            self._fail(f"did not start within {self._start_timeout:.0f} s")
            await self._halt()

    def _fail(self, error: str) -> None:
        self.state, self.error, self._session = "failed", error, None
        self._failures += 1
        delay = min(_BACKOFF_MAX_S, 0.5 * 2 ** (self._failures - 1))
        self._next_try = time.monotonic() + delay

    async def _run(self) -> None:
        errors: list[str] = []
        for make in self._transports():
            try:
                await self._serve(make)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # supervisor: any transport failure marks the server down
                if self.state == "ready":
                    log.warning("MCP server %r stopped: %s", self.name, _describe(exc))
                    self._fail(_describe(exc))
                    return
                errors.append(_describe(exc))
            finally:
                self._session = None
        log.warning("MCP server %r failed to start: %s", self.name, "; ".join(errors))
        self._fail("; ".join(errors))
        self._ready.set()

    async def _serve(self, make: Callable[[], Any]) -> None:
        from mcp import ClientSession

        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(make())
            session = await stack.enter_async_context(
                ClientSession(read, write, message_handler=self._on_message)
            )
            await session.initialize()
            if self._stop.is_set():  # came up after its start timed out: stay failed, shut down
                return
            self._session = session
            await self.refresh_tools()
            self.state, self._failures = "ready", 0
            self._ready.set()
            await self._stop.wait()
            if self.state == "ready":
                self.state = "stopped"

    def _transports(self) -> list[Callable[[], Any]]:
        """How to reach the server, in order: stdio; or Streamable HTTP, then legacy SSE."""
        spec = self.spec
        if isinstance(spec, StdioSpec):
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=spec.command, args=spec.args, env=spec.env or None, cwd=spec.cwd
            )
            return [lambda: stdio_client(params, errlog=sys.stderr)]
        if spec.type == "sse":
            return [lambda: _sse(spec)]
        if spec.type in ("http", "streamable-http"):
            return [lambda: _streamable(spec)]
        return [lambda: _streamable(spec), lambda: _sse(spec)]

    async def _on_message(self, message: Any) -> None:
        from mcp import types

        if isinstance(message, types.ToolListChangedNotification):
            asyncio.get_running_loop().create_task(self._refresh_after_change())
        elif isinstance(message, Exception):
            log.debug("MCP server %r sent a bad message: %s", self.name, message)

    async def _refresh_after_change(self) -> None:
        try:
            await self.refresh_tools()
        except Exception as exc:  # a failed refresh leaves the old list; the next call will tell
            log.warning("MCP server %r: refreshing tools failed: %s", self.name, _describe(exc))

    async def refresh_tools(self) -> None:
        session = self._session
        if session is None:
            return
        tools: list[RemoteTool] = []
        cursor: str | None = None
        while True:
            from mcp import types

            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            result = await session.list_tools(params=params)
            tools.extend(_remote_tool(t) for t in result.tools)
            cursor = result.next_cursor
            if not cursor:
                break
        self.tools = tools
        self._on_tools_changed(self.name)

    async def _halt(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(5):
                await asyncio.shield(task)
        except (TimeoutError, Exception):
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - shutting down, already logged
                pass

    async def close(self) -> None:
        await self._halt()
        self.state, self._session = "stopped", None

    def mark_dead(self, reason: str) -> None:
        """A call found the server gone: restart on the next use (after backoff)."""
        if self.state == "ready":
            log.warning("MCP server %r lost: %s", self.name, reason)
            self._fail(reason)
            self._next_try = time.monotonic()  # first restart at once; backoff from then on
            if self._task is not None:
                self._stop.set()


def _remote_tool(tool: Any) -> RemoteTool:
    ann = getattr(tool, "annotations", None)
    read_only = bool(getattr(ann, "read_only_hint", False))
    # MCP's default for destructiveHint is true when a tool is not read-only.
    destructive_hint = getattr(ann, "destructive_hint", None)
    destructive = (not read_only) if destructive_hint is None else bool(destructive_hint)
    return RemoteTool(
        name=tool.name,
        description=tool.description or "",
        input_schema=dict(tool.input_schema or {}),
        destructive=destructive,
        read_only=read_only,
    )


def _sse(spec: RemoteSpec) -> Any:
    from mcp.client.sse import sse_client

    return sse_client(spec.url, headers=spec.headers or None)


def _streamable(spec: RemoteSpec) -> Any:
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    client = create_mcp_http_client(headers=spec.headers or None)
    return _owning(client, streamable_http_client(spec.url, http_client=client))


class _owning:
    """Enter a transport and close the HTTP client it was given when done."""

    def __init__(self, client: Any, transport: Any) -> None:
        self._client, self._transport = client, transport

    async def __aenter__(self) -> Any:
        return await self._transport.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._transport.__aexit__(*exc)
        finally:
            await self._client.aclose()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
