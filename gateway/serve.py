"""``omni gateway``'s lifecycle: check access, bind, open store and agent, serve, stop cleanly.

``serve(settings, host, port)`` returns the exit code: 0 after SIGTERM/SIGINT, 1 when the
address cannot be bound. A non-loopback ``host`` without ``OMNI_GATEWAY_TOKEN`` is a
SettingsError before anything starts (the CLI exits 2).

Stopping: the first signal closes the listening socket and idle connections, requests in flight
get up to :data:`SHUTDOWN_GRACE_S` to finish (uvicorn cancels what is left, which the agent
handles like a timed-out turn), then the agent, its MCP servers (child processes) and the store
are closed, in that order. uvicorn's own signal handling is off: it would re-raise the signal
after its shutdown, and the process would die by SIGTERM instead of exiting 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator

import uvicorn

from agent.factory import open_agent
from gateway.app import GatewayConfig, build_gateway
from memory.locks import ConversationLocks
from memory.store import open_store
from omni.errors import SettingsError
from omni.net import bind_tcp, is_loopback
from omni.settings import Settings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_BIND = 1
SHUTDOWN_GRACE_S = 10  # seconds; uvicorn takes a whole number
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def check_access(settings: Settings, host: str) -> None:
    """Beyond loopback, anyone who can reach the port could use the agent: a token is required."""
    if settings.gateway_token is None or not settings.gateway_token.get_secret_value():
        if not is_loopback(host):
            raise SettingsError(f"OMNI_GATEWAY_TOKEN: required when --host is not loopback (got {host!r})")


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> int:
    """Serve until SIGTERM/SIGINT; the process exit code."""
    check_access(settings, host)
    try:
        sock = bind_tcp(host, port)
    except (OSError, OverflowError) as exc:  # in use, no permission, unknown host
        log.error("cannot listen on %s:%s: %s", host, port, getattr(exc, "strerror", None) or exc)
        return EXIT_BIND
    stop = _Stop()
    with sock, stop.on_signals():
        async with open_store(settings.database_url) as store, open_agent(settings, store) as agent:
            agent.warm_up()  # the model library and MCP servers load while we start listening
            app = build_gateway(agent, GatewayConfig.from_settings(settings), ConversationLocks(store.db))
            config = uvicorn.Config(
                app,
                lifespan="off",
                log_config=None,  # omni's logging (stderr, redacted) stays the only setup
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            )
            server = _Server(config, listening=_url(sock))
            stop.attach(server)
            await server.serve(sockets=[sock])
        log.info("gateway stopped")
    return EXIT_OK


class _Server(uvicorn.Server):
    """uvicorn with omni's signal handling, announcing the bound address once it listens."""

    def __init__(self, config: uvicorn.Config, listening: str) -> None:
        super().__init__(config)
        self._listening = listening

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # _Stop owns SIGTERM/SIGINT (see the module docstring)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # Tests and scripts read the port from this line (``--port 0`` picks a free one).
            log.info("gateway listening on %s", self._listening)


class _Stop:
    """SIGTERM/SIGINT ask the server to stop; one that comes before it runs stops it at once."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._requested = False

    def attach(self, server: _Server) -> None:
        self._server = server
        server.should_exit = self._requested

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._request, sig)
        try:
            yield
        finally:
            for sig in _SIGNALS:
                loop.remove_signal_handler(sig)

    def _request(self, sig: signal.Signals) -> None:
        if self._requested:
            log.info("received %s: already stopping (at most %d s)", sig.name, SHUTDOWN_GRACE_S)
            return
        self._requested = True
        log.info("received %s: finishing requests in flight, then stopping", sig.name)
        if self._server is not None:
            self._server.should_exit = True


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
