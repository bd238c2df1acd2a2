"""Run the skills server over stdio, Streamable HTTP (``/mcp``) or legacy HTTP+SSE.

Both HTTP modes also answer ``GET /health`` and ``GET /ready``, check ``Host``/``Origin`` on
every request (DNS-rebinding protection) and, with ``OMNI_MCP_TOKEN`` set, a bearer token; they
refuse to start without one beyond loopback or with the shell on (``mcp_server.http``). Stdio
needs no token: the client that started the process is trusted. SIGINT/SIGTERM, or EOF on stdin
for stdio, end the server cleanly with exit code 0. Over HTTP, requests in flight (a tool call)
get up to ``drain.DRAIN_S`` to finish and send their result first; then the event streams
clients hold open are ended, so the stop does not wait them out (``mcp_server.drain``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
from anyio.abc import TaskStatus

from mcp_server.drain import DRAIN_S, Drain
from mcp_server.server import SkillsServer, build_server
from mcp_server.watch import watch_skills
from omni.net import bind_tcp
from omni.settings import Settings

if TYPE_CHECKING:
    from mcp_server.http import HttpAccess

log = logging.getLogger(__name__)

Transport = Literal["stdio", "http", "sse"]
EXIT_OK = 0
EXIT_BIND = 1


async def serve(
    settings: Settings, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765
) -> int:
    """Load the skills, serve until told to stop, return the process exit code.

    Raises SettingsError before loading anything when the HTTP access settings are unsafe/bad.
    """
    access = _http_access(settings, host) if transport != "stdio" else None
    server = build_server(settings)
    code = EXIT_OK
    # Set before cancelling: the watcher's thread polls it, and would otherwise hold shutdown
    # for up to five seconds.
    stopping = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_skills, server, stopping)
        try:
            if access is None:  # stdio

                def stop() -> None:
                    stopping.set()
                    tg.cancel_scope.cancel()

                await tg.start(_stop_on_signal, stop)
                await _serve_stdio(server)
            else:
                code = await _serve_http(server, access, transport, host, port)
        finally:
            stopping.set()
            tg.cancel_scope.cancel()
    log.info("skills server stopped")
    return code


def _http_access(settings: Settings, host: str) -> HttpAccess:
    from mcp_server.http import access_for  # uvicorn/starlette: only the HTTP transports pay

    return access_for(settings, host)


async def _stop_on_signal(
    stop: Callable[[], object], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            stop()
            return


async def _serve_stdio(server: SkillsServer) -> None:
    from mcp.server.stdio import stdio_server

    low = server._lowlevel_server  # MCPServer.run_stdio_async does the same, minus our options
    with _StdinLines() as stdin:
        async with stdio_server(stdin=cast(Any, stdin)) as (read_stream, write_stream):
            log.info("skills server ready on stdio")
            await low.run(read_stream, write_stream, low.create_initialization_options())
    log.info("stdin closed, shutting down")


class _StdinLines:
    """stdin as an async iterator of lines, read by a daemon thread.

    The SDK reads stdin in an anyio worker thread, which cannot be interrupted: after SIGTERM
    the process would wait for a line that never comes. A daemon thread does not hold up exit.
    fd 0 is pointed at /dev/null meanwhile, so no child process can read the protocol.
    """

    def __init__(self) -> None:
        self._fd = os.dup(0)
        self._saved = os.dup(0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        self._send, self._receive = anyio.create_memory_object_stream[str](16)

    def __enter__(self) -> _StdinLines:
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._pump, args=(loop,), name="mcp-stdin", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 0)
        os.close(self._saved)

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        with open(self._fd, encoding="utf-8", errors="replace", newline="\n") as lines:
            try:
                for line in lines:
                    asyncio.run_coroutine_threadsafe(self._send.send(line), loop).result()
            except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the loop or the reader is gone: nothing left to feed
            finally:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._send.close)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._receive.__aiter__()


async def _serve_http(server: SkillsServer, access: HttpAccess, transport: str, host: str, port: int) -> int:
    import uvicorn

    from mcp_server.http import QuietSignalsServer, build_app

    try:
        sock = bind_tcp(host, port)
    except (OSError, OverflowError) as exc:  # in use, no permission, unknown host, bad port
        log.error("cannot listen on %s:%s: %s", host, port, getattr(exc, "strerror", None) or exc)
        return EXIT_BIND
    drain = Drain()
    server.middleware.append(drain)
    # log_config=None: uvicorn's lines go through our handler (format, redaction), not its own.
    # Its deadline comes after the drain's, which ends the streams before it.
    config = uvicorn.Config(
        drain.wrap(build_app(server, transport, access)),
        log_level="warning",
        log_config=None,
        timeout_graceful_shutdown=DRAIN_S + 1,
    )
    uv = QuietSignalsServer(config)
    bound = sock.getsockname()
    path = "/mcp" if transport == "http" else "/sse"
    log.info("skills server (%s) listening on http://%s:%s%s", transport, _url_host(bound[0]), bound[1], path)

    try:
        async with anyio.create_task_group() as tg:

            def stop() -> None:
                uv.should_exit = True  # no new connections; responses under way go on
                tg.start_soon(drain.run)

            await tg.start(_stop_on_signal, stop)
            await uv.serve(sockets=[sock])
            tg.cancel_scope.cancel()
    finally:
        sock.close()
    return EXIT_OK


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
