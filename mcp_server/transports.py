"""Run the skills server over stdio, Streamable HTTP (``/mcp``) or legacy HTTP+SSE.

Both HTTP modes also answer ``GET /health`` and ``GET /ready`` and check ``Host``/``Origin``
on every request (DNS-rebinding protection). SIGINT/SIGTERM, or EOF on stdin for stdio, end
the server cleanly with exit code 0.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from typing import Literal

import anyio

from mcp_server.server import SkillsServer, build_server
from mcp_server.watch import watch_skills
from omni.settings import Settings

log = logging.getLogger(__name__)

Transport = Literal["stdio", "http", "sse"]
EXIT_OK = 0
EXIT_BIND = 1


async def serve(
    settings: Settings, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765
) -> int:
    """Load the skills, serve until told to stop, return the process exit code."""
    server = build_server(settings)
    code = EXIT_OK
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_skills, server)
        if transport == "stdio":
            tg.start_soon(_stop_on_signal, tg.cancel_scope.cancel)
            await _serve_stdio(server)
        else:
            code = await _serve_http(server, transport, host, port)
        tg.cancel_scope.cancel()
    log.info("skills server stopped")
    return code


async def _stop_on_signal(stop: Callable[[], object]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            stop()
            return


async def _serve_stdio(server: SkillsServer) -> None:
    from mcp.server.stdio import stdio_server

    low = server._lowlevel_server  # MCPServer.run_stdio_async does the same, minus our options
    async with stdio_server() as (read_stream, write_stream):
        await low.run(read_stream, write_stream, low.create_initialization_options())
    log.info("stdin closed, shutting down")


async def _serve_http(server: SkillsServer, transport: str, host: str, port: int) -> int:
    import uvicorn

    from mcp_server.http import QuietSignalsServer, build_app

    try:
        sock = _bind(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc.strerror or exc)
        return EXIT_BIND
    config = uvicorn.Config(
        build_app(server, transport, host), log_level="warning", timeout_graceful_shutdown=2
    )
    uv = QuietSignalsServer(config)
    bound = sock.getsockname()
    path = "/mcp" if transport == "http" else "/sse"
    log.info("skills server (%s) listening on http://%s:%s%s", transport, _url_host(bound[0]), bound[1], path)

    def stop() -> None:
        uv.should_exit = True

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signal, stop)
            await uv.serve(sockets=[sock])
            tg.cancel_scope.cancel()
    finally:
        sock.close()
    return EXIT_OK


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
