"""The ASGI app for both HTTP transports: ``/mcp`` or ``/sse`` + ``/messages``, ``/health``, ``/ready``.

Every request passes one guard before any route runs: ``Host`` (421) and ``Origin`` (403) must
name this server whatever address it binds (DNS-rebinding protection), then, when
``OMNI_MCP_TOKEN`` is set, ``Authorization: Bearer <token>`` (401) on every route but
``GET /health``. Imported only by the http and sse transports, so stdio start-up never loads
uvicorn/starlette.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvicorn
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.server import SkillsServer
from omni.errors import SettingsError
from omni.net import is_loopback
from omni.settings import Settings

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_OPEN_PATHS = ("/health",)  # liveness probes carry no secrets; /ready lists skills, so it is guarded


@dataclass(frozen=True)
class HostEntry:
    """One allowed host: a name (IPv6 without brackets, lowercase) and a port, ``None`` = any."""

    name: str
    port: int | None = None

    def admits(self, name: str, port: int | None) -> bool:
        if name != self.name:
            return False
        # A Host header without a port means the scheme's default; we cannot tell which scheme.
        return self.port is None or port == self.port or (port is None and self.port in (80, 443))


def _split_host(value: str) -> tuple[str, str | None]:
    """``name``, ``name:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 -> (name, port text)."""
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(value)
        return name, rest[1:] if rest else None
    if value.count(":") > 1:
        return value, None  # a bare IPv6 address cannot carry a port
    name, sep, port = value.partition(":")
    return name, port if sep else None


def _parse_port(text: str | None) -> int | None:
    if text is None or text == "*":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(text)
    return int(text)


def parse_entry(value: str) -> HostEntry:
    """A setting entry: ``name`` or ``name:*`` (any port) or ``name:port``; raises ValueError."""
    name, port = _split_host(value.strip().lower())
    if not name or any(c in name for c in "/@?#* "):  # "*" alone is no wildcard: name the hosts
        raise ValueError(value)
    return HostEntry(name, _parse_port(port))


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` and ``Origin`` values a request may carry."""

    entries: tuple[HostEntry, ...]

    @classmethod
    def build(cls, bind: str, extra: tuple[str, ...]) -> HostPolicy:
        """Loopback names, the bind address unless it is a wildcard, and ``extra`` entries."""
        entries = [HostEntry(name) for name in _LOOPBACK_NAMES]
        if bind.strip("[]") not in _WILDCARDS:
            entries.append(HostEntry(bind.strip("[]").lower()))
        for value in extra:
            try:
                entries.append(parse_entry(value))
            except ValueError:
                raise SettingsError(
                    f"OMNI_MCP_ALLOWED_HOSTS: {value!r} is not a hostname or host:port"
                ) from None
        return cls(tuple(dict.fromkeys(entries)))

    def admits_host(self, header: str | None) -> bool:
        if not header:
            return False
        try:
            name, port = _split_host(header.lower())
            number = None if port is None else _parse_port(port if port != "*" else "")
        except ValueError:
            return False  # "name:*" is a pattern for settings, never a Host a client sends
        return any(entry.admits(name, number) for entry in self.entries)

    def admits_origin(self, header: str | None) -> bool:
        """No Origin (a non-browser client) is fine; else an http(s) origin of an allowed host."""
        if header is None:
            return True
        try:
            parts = urlsplit(header.lower())
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        if parts.scheme not in _DEFAULT_PORTS or parts.username is not None or parts.path:
            return False  # also refuses "null", the Origin of sandboxed pages and files
        name = parts.hostname or ""
        return any(entry.admits(name, port) for entry in self.entries)

    def sdk_settings(self) -> TransportSecuritySettings:
        """The same lists for the SDK's own check, which runs after ours.

        Its ``name:*`` patterns match more loosely than :meth:`admits_host`, so it never refuses
        what we let through; it stays on as a second line should a route ever bypass the guard.
        """
        names = sorted({f"[{e.name}]" if ":" in e.name else e.name for e in self.entries})
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[h for n in names for h in (n, f"{n}:*")],
            allowed_origins=[f"{s}://{n}{p}" for n in names for s in _DEFAULT_PORTS for p in ("", ":*")],
        )


@dataclass(frozen=True)
class HttpAccess:
    """Who may talk to the HTTP transports: the Host/Origin policy and the bearer token."""

    policy: HostPolicy
    token: bytes | None


def access_for(settings: Settings, bind: str) -> HttpAccess:
    """The access rules for serving on ``bind``; a missing or bad setting is a SettingsError.

    Without a token any process (or anyone on the network) could call tools and claim to be an
    admin in ``_meta``, so a token is required beyond loopback and whenever the shell is on.
    """
    secret = settings.mcp_token.get_secret_value() if settings.mcp_token else ""
    if not secret:
        if not is_loopback(bind):
            raise SettingsError(f"OMNI_MCP_TOKEN: required when --host is not loopback (got {bind!r})")
        if settings.shell_enabled:
            raise SettingsError("OMNI_MCP_TOKEN: required over HTTP when OMNI_SHELL_ENABLED is true")
    policy = HostPolicy.build(bind, settings.mcp_allowed_hosts)
    return HttpAccess(policy, secret.encode() if secret else None)


def _bearer_ok(headers: Headers, token: bytes) -> bool:
    scheme, _, given = headers.get("authorization", "").partition(" ")
    # compare_digest on bytes: constant time whatever the input, and no str/ASCII restriction.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


_UNAUTHORIZED = {"error": "unauthorized", "message": "missing or wrong Authorization: Bearer token"}


class Guard:
    """Refuse a request before any route runs: foreign Host 421, foreign Origin 403, no token 401."""

    def __init__(self, app: ASGIApp, access: HttpAccess) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        policy, token = self.access.policy, self.access.token
        if not policy.admits_host(headers.get("host")):
            return PlainTextResponse("Invalid Host header", status_code=421)
        if not policy.admits_origin(headers.get("origin")):
            return PlainTextResponse("Invalid Origin header", status_code=403)
        if token is None or _is_open(scope) or _bearer_ok(headers, token):
            return None
        return JSONResponse(_UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _is_open(scope: Scope) -> bool:
    return scope["path"] in _OPEN_PATHS and scope["method"] in ("GET", "HEAD")


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


def build_app(server: SkillsServer, transport: str, access: HttpAccess) -> ASGIApp:
    """The whole HTTP app for ``transport`` ('http' or 'sse'), behind :class:`Guard`."""
    security = access.policy.sdk_settings()
    if transport == "http":
        app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security)
        app.router.routes.extend(_probe_routes(server))
    else:
        app = Starlette(routes=[*_sse_routes(server, security), *_probe_routes(server)])
    return Guard(app, access)


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
