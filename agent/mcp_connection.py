"""One MCP server as seen by the agent: started, supervised, restarted on demand.

The SDK's transports are anyio context managers that must be entered and left in the same
task, so each connection lives in a task of its own; other tasks use its ``ClientSession``
and wait on events.

The connection notices at once when a server hangs up (its read stream ends), whether a call
was in flight (that call gets an error) or not. The first restart after a run is immediate:
on the next use, or in the background a moment later for a stdio server. Failed starts and
servers that die again soon after starting wait out an exponential backoff instead, so a
broken server is not hammered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from agent.mcp_config import RemoteSpec, ServerSpec, StdioSpec

log = logging.getLogger(__name__)

State = Literal["stopped", "starting", "ready", "failed"]
_BACKOFF_MAX_S = 30.0
_STABLE_S = 10.0  # a server that ran this long before dying was fine: its restart is immediate
_RESTART_DELAY_S = 0.5  # a lost stdio server is restarted in the background after this (or its backoff)
_BACKGROUND_TRIES = 5  # failures in a row after which only a use restarts the server
_HALT_TIMEOUT_S = 5.0


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


@dataclass(slots=True)
class _Run:
    """One start of the server: events from an older run never touch a newer one."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    up_since: float | None = None  # when it became ready


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
        self._run: _Run | None = None
        self._task: asyncio.Task[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._failures = 0  # in a row: failed starts and early deaths; a stable run resets it
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
                raise ServerGone(
                    f"server {self.name!r} is restarting; retry in {math.ceil(wait)} s ({self.error})"
                )
            await self._start()
            if self.state != "ready":
                raise ServerGone(f"server {self.name!r} is unavailable: {self.error}")
            return self._session

    async def _start(self) -> None:
        await self._halt()
        run = _Run()
        self._run, self.state, self.error = run, "starting", None
        self._task = asyncio.create_task(self._supervise(run), name=f"mcp:{self.name}")
        try:
            async with asyncio.timeout(self._start_timeout):
                await run.ready.wait()
        except TimeoutError:
            self._fail(f"did not start within {self._start_timeout:.0f} s")
            await self._halt()

    def _fail(self, error: str) -> None:
        self.state, self.error, self._session = "failed", error, None
        self._failures += 1
        delay = min(_BACKOFF_MAX_S, 0.5 * 2 ** (self._failures - 1))
        self._next_try = time.monotonic() + delay

    def _lost(self, run: _Run, reason: str) -> None:
        """The server of ``run`` hung up: restart at once after a stable run, else back off."""
        if run is not self._run or self.state != "ready" or run.up_since is None:
            return  # an old run, or our own shutdown
        log.warning("MCP server %r stopped: %s", self.name, reason)
        if time.monotonic() - run.up_since >= _STABLE_S:
            self._failures = 0
        self._fail(reason)
        if self._failures == 1:
            self._next_try = time.monotonic()  # the first restart after a good run: no waiting
        run.stop.set()  # the supervisor leaves the transport, which reaps the process
        if isinstance(self.spec, StdioSpec) and not self._closed:
            if self._restart is None or self._restart.done():
                self._restart = asyncio.get_running_loop().create_task(
                    self._restart_in_background(), name=f"mcp-restart:{self.name}"
                )

    async def _restart_in_background(self) -> None:
        """Bring a lost stdio server back before the next call needs it, with the same backoff."""
        while self.state != "ready" and not self._closed and self._failures <= _BACKGROUND_TRIES:
            await asyncio.sleep(max(_RESTART_DELAY_S, self._next_try - time.monotonic()))
            try:
                await self.ensure()
            except ServerGone as exc:
                log.warning("%s", exc)

    async def _supervise(self, run: _Run) -> None:
        errors: list[str] = []
        try:
            for make in self._transports():
                try:
                    await self._serve(make, run)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # supervisor: any transport failure marks the server down
                    if run.up_since is not None:  # it had come up: lost, not failed to start
                        self._lost(run, _describe(exc))
                        return
                    errors.append(_describe(exc))
        finally:
            if run is self._run:
                self._session = None
        if run is self._run:  # not timed out nor halted meanwhile
            log.warning("MCP server %r failed to start: %s", self.name, "; ".join(errors))
            self._fail("; ".join(errors))
        run.ready.set()

    async def _serve(self, make: Callable[[], Any], run: _Run) -> None:
        from mcp import ClientSession

        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(make())
            watched = _Watched(read, on_end=lambda: self._lost(run, "the server closed the connection"))
            session = await stack.enter_async_context(
                ClientSession(watched, write, message_handler=self._on_message)
            )
            await session.initialize()
            if run.stop.is_set():  # came up after its start timed out: stay failed, shut down
                return
            self._session = session
            await self.refresh_tools()
            if watched.ended:  # hung up while listing its tools
                raise ConnectionError("the server closed the connection")
            self.state, run.up_since = "ready", time.monotonic()
            run.ready.set()
            await run.stop.wait()

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
        """End the current run, if any, and wait until its transport is closed (process reaped)."""
        task, self._task = self._task, None
        run, self._run, self._session = self._run, None, None
        if run is not None:
            run.stop.set()
        if task is None:
            return
        try:
            async with asyncio.timeout(_HALT_TIMEOUT_S):
                await asyncio.shield(task)
        except BaseException as exc:  # slow to stop, or we are cancelled: never leave it running
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if not isinstance(exc, Exception):  # cancelled (or interrupted): pass it on
                raise

    async def close(self) -> None:
        """Stop the server for good: no background restart after this."""
        self._closed = True
        restart, self._restart = self._restart, None
        if restart is not None:
            restart.cancel()
            await asyncio.gather(restart, return_exceptions=True)
        await self._halt()
        self.state = "stopped"

    def mark_dead(self, session: Any, reason: str) -> None:
        """A call on ``session`` found the server gone (if the hang-up did not already say so)."""
        if session is self._session and self._run is not None:
            self._lost(self._run, reason)


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


class _Watched:
    """A transport's read stream that tells when the server hangs up (the stream ends)."""

    def __init__(self, stream: Any, on_end: Callable[[], None]) -> None:
        import anyio

        self._stream, self._on_end = stream, on_end
        self._eof: type[Exception] = anyio.EndOfStream
        self._ends: tuple[type[Exception], ...] = (anyio.EndOfStream, anyio.ClosedResourceError)
        self.ended = False

    @property
    def last_context(self) -> Any:
        return getattr(self._stream, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._stream.receive()
        except self._ends:
            if not self.ended:
                self.ended = True
                self._on_end()
            raise

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except self._eof:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> _Watched:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
