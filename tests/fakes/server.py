"""Serve an ASGI app with uvicorn on 127.0.0.1 and a free port, as httpx's test suite does.

``serve(app)`` runs in the test's event loop (async tests); ``serve_in_thread(app)`` runs in a
thread with its own loop, for tests that drive the CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn


def _bound_socket(port: int = 0) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for Nagle's algorithm.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def _server(app: Any) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", lifespan="auto", timeout_graceful_shutdown=1)
    return uvicorn.Server(config)


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run ``app`` in this event loop; yields its base URL ``http://127.0.0.1:PORT``."""
    sock = _bound_socket()
    server = _server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextmanager
def serve_in_thread(app: Any, port: int = 0) -> Iterator[str]:
    """Run ``app`` in a background thread; yields its base URL. ``port``: a given one, e.g. to
    serve again where a stopped server was (between the two, connections are refused)."""
    sock = _bound_socket(port)
    server = _server(app)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
