"""The gateway's ASGI app: ``POST /message`` -> the agent, ``GET /health``; and its rules.

A request meets them in this order: the guard (bearer token, 401; without a token, a loopback
``Host``, 421), then the body (``gateway.body``: 415/413/400/422), then admission (503 with
``Retry-After`` when ``gateway_concurrency`` turns are in flight), then its session's turn (one
at a time per session, others side by side), all within ``gateway_timeout`` (504).

A gateway caller is not an admin: its turn carries no user id and ``is_admin=False``, so the
model is offered no admin-only tool (no shell), the skills server confines it to
``WORKSPACE/sessions/gw/<session_id>/`` and its memory is the session's own (owner
``local:gw:<session_id>``). Anyone holding the token may pick any session id; the token is the
only boundary between callers.

A turn cut short by the deadline is cancelled: the agent stores a tool round or an answer each
in one transaction, so the session keeps the question and whole steps only, and the next request
of the session continues from there.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.errors import ContextTooLong, LLMRejected, LLMUnavailable
from agent.types import ProgressCallback, Reply, Turn
from gateway.admission import Admission, SessionLocks
from gateway.body import read_asked
from gateway.errors import Refusal, error_response
from memory.errors import StoreError
from memory.locks import ConversationLocks
from omni.errors import OmniError
from omni.logging import log_context
from omni.net import is_loopback
from omni.settings import Settings

log = logging.getLogger(__name__)

SESSION_PREFIX = "gw:"
_OPEN_PATHS = ("/health",)  # a liveness probe tells nothing worth a token


class Answering(Protocol):
    """What the gateway needs of the agent."""

    async def reply(self, turn: Turn, progress: ProgressCallback | None = None) -> Reply: ...


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    token: str | None = None
    max_body_bytes: int = 64 * 1024
    timeout: float = 120.0
    concurrency: int = 16

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayConfig:
        token = settings.gateway_token.get_secret_value() if settings.gateway_token else None
        return cls(
            token=token or None,
            max_body_bytes=settings.gateway_max_body_bytes,
            timeout=settings.gateway_timeout,
            concurrency=settings.gateway_concurrency,
        )


class Gateway:
    """The ASGI app; ``sessions`` and ``admission`` are its live state (for tests and logs)."""

    def __init__(
        self, agent: Answering, config: GatewayConfig, shared: ConversationLocks | None = None
    ) -> None:
        self.config = config
        self.sessions = SessionLocks()
        # Other gateway processes on the same PostgreSQL database: a session is theirs too.
        self._shared = shared
        self.admission = Admission(config.concurrency)
        self._agent = agent
        routes = [
            Route("/health", _health, methods=["GET"]),
            Route("/message", self._message, methods=["POST"]),
        ]
        handlers = {Refusal: _refused, HTTPException: _http_error, Exception: _crashed}
        app = Starlette(routes=routes, exception_handlers=handlers)
        token = config.token.encode() if config.token else None
        self._app: ASGIApp = _Guard(app, token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _message(self, request: Request) -> Response:
        # Every line logged for this request carries its id; the caller gets it back to quote.
        request_id = uuid.uuid4().hex[:16]
        with log_context(request_id=request_id):
            asked = await read_asked(request, self.config.max_body_bytes)
            turn = Turn(session_key=SESSION_PREFIX + asked.session_id, text=asked.message, is_admin=False)
            with log_context(gateway_session=asked.session_id):
                reply = await self._answer(turn)
        body = {"session_id": asked.session_id, "output": reply.text}
        return JSONResponse(body, headers={"X-Request-Id": request_id})

    async def _answer(self, turn: Turn) -> Reply:
        with self.admission.slot():
            deadline = asyncio.timeout(self.config.timeout)
            try:
                async with deadline, self.sessions.hold(turn.session_key), self._across(turn.session_key):
                    return await self._agent.reply(turn)
            except TimeoutError:
                if not deadline.expired():
                    raise  # not our deadline: a bug below, answered as one
                log.warning("no answer within %g s: the turn was cancelled", self.config.timeout)
                raise Refusal(
                    504,
                    "timeout",
                    f"no answer within {self.config.timeout:g} s; the turn was stopped, try again",
                ) from None
            except OmniError as exc:
                log.warning("no answer: %r", exc)
                raise _failure(exc) from None

    def _across(self, session_key: str) -> AbstractAsyncContextManager[None]:
        """The session's lock across gateway processes (none when only this one can serve it)."""
        return self._shared.hold(session_key) if self._shared is not None else nullcontext()


def build_gateway(
    agent: Answering, config: GatewayConfig, shared: ConversationLocks | None = None
) -> Gateway:
    return Gateway(agent, config, shared)


def _failure(exc: OmniError) -> Refusal:
    """The agent's own words for what failed, under a status that says whose fault it is."""
    if isinstance(exc, ContextTooLong):  # its user_message says "/new", which is Telegram's
        message = "This conversation got too long for my model. Continue in a new session_id."
        return Refusal(502, "context_too_long", message)
    if isinstance(exc, LLMUnavailable):
        return Refusal(503, "llm_unavailable", exc.user_message)
    if isinstance(exc, LLMRejected):
        return Refusal(502, "llm_rejected", exc.user_message)
    if isinstance(exc, StoreError):
        return Refusal(503, "store_unavailable", exc.user_message)
    return Refusal(500, "failed", exc.user_message)


async def _health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _refused(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return exc.response()


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _crashed(_: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, and uvicorn logs the traceback (stderr, redacted).
    return error_response(500, "internal", OmniError.user_message)


class _Guard:
    """Refuse before any route runs: without the bearer token 401; with no token configured,
    a ``Host`` that is not a loopback name 421 (a web page rebinding its DNS name to
    127.0.0.1 must not reach a gateway that has no token)."""

    def __init__(self, app: ASGIApp, token: bytes | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _OPEN_PATHS:
            refusal = self._refusal(Headers(scope=scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, headers: Headers) -> Response | None:
        if self.token is None:
            if _is_loopback_host(headers.get("host", "")):
                return None
            words = "without OMNI_GATEWAY_TOKEN only loopback names are served"
            return error_response(421, "bad_host", words)
        scheme, _, given = headers.get("authorization", "").partition(" ")
        # compare_digest on bytes: constant time whatever the input, any characters allowed.
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token):
            return None
        return error_response(
            401,
            "unauthorized",
            "missing or wrong Authorization: Bearer token",
            {"WWW-Authenticate": "Bearer"},
        )


def _is_loopback_host(header: str) -> bool:
    """A ``Host`` header (``name``, ``name:port``, ``[v6]:port``) naming this machine."""
    if header.startswith("["):
        return is_loopback(header[1:].partition("]")[0])
    return is_loopback(header.rpartition(":")[0] if header.count(":") == 1 else header)
