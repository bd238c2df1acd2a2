"""The ASGI app for both HTTP transports: ``/mcp`` or ``/sse`` + ``/messages``, ``/health``, ``/ready``.

Imported only by the http and sse transports, so stdio start-up never loads uvicorn/starlette.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.server import SkillsServer

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD = ("0.0.0.0", "::", "")


def security_for(host: str) -> TransportSecuritySettings:
    """Host/Origin allow-lists: loopback names always, plus the bind address when it is specific.

    Binding a wildcard address means the operator wants remote clients whose Host we cannot
    predict, so only the Origin check (browsers) stays meaningful there; Host is not checked.
    """
    names = list(_LOOPBACK)
    if host not in _WILDCARD and host not in ("127.0.0.1", "localhost", "::1"):
        names.append(f"[{host}]" if ":" in host else host)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=host not in _WILDCARD,
        allowed_hosts=[f"{name}:*" for name in names] + names,
        allowed_origins=[
            f"{scheme}://{name}{port}"
            for name in names
            for scheme in ("http", "https")
            for port in (":*", "")
        ],
    )


class HostGuard:
    """Reject requests whose Host or Origin is not ours (4xx) before any route runs."""

    def __init__(self, app: ASGIApp, settings: TransportSecuritySettings) -> None:
        self.app = app
        self.check = TransportSecurityMiddleware(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = await self.check.validate_request(Request(scope), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Endpoint:
    """Wraps an ASGI callable so Starlette's Route treats it as an app, not a request handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _probe_routes(server: SkillsServer) -> list[Route]:
    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def ready(_: Request) -> Response:
        return JSONResponse(server.registry.status())

    return [Route("/health", health, methods=["GET"]), Route("/ready", ready, methods=["GET"])]


def build_app(server: SkillsServer, transport: str, host: str) -> ASGIApp:
    """The whole HTTP app for ``transport`` ('http' or 'sse'), guarded by Host/Origin checks."""
    security = security_for(host)
    if transport == "http":
        app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=host)
        app.router.routes.extend(_probe_routes(server))
    else:
        app = Starlette(routes=[*_sse_routes(server, security), *_probe_routes(server)])
    return HostGuard(app, security)


def _sse_routes(server: SkillsServer, security: TransportSecuritySettings) -> list[Route]:
    sse = SseServerTransport("/messages", security_settings=security)
    low = server._lowlevel_server  # as MCPServer.sse_app does, but with our initialization options

    async def connect(scope: Scope, receive: Receive, send: Send) -> None:
        async with sse.connect_sse(scope, receive, send) as (read_stream, write_stream):
            await low.run(read_stream, write_stream, low.create_initialization_options())

    return [
        Route("/sse", _Endpoint(connect), methods=["GET"]),
        Route("/messages", _Endpoint(sse.handle_post_message), methods=["POST"]),
        Route("/messages/", _Endpoint(sse.handle_post_message), methods=["POST"]),
    ]


class QuietSignalsServer(uvicorn.Server):
    """uvicorn without its own signal handlers: ``transports.serve`` owns SIGINT/SIGTERM.

    uvicorn re-raises a captured signal after shutting down, which would turn a clean stop into
    death by SIGTERM instead of exit code 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
