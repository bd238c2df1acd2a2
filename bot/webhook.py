"""Webhook mode: Telegram posts each update to us instead of our polling for it.

With ``OMNI_TELEGRAM_WEBHOOK_URL`` set, ``omni bot`` serves ``OMNI_TELEGRAM_WEBHOOK_LISTEN``
(plain HTTP: a reverse proxy terminates TLS at the public URL and forwards here) at the URL's
path, and registers the URL with ``setWebhook``.

A request is acknowledged (200) only once its update is in the ledger (``UpdateLedger.record``,
one short insert) and on PTB's update queue. From there it takes the road a polled update takes:
the gate claims it, its chat's worker answers it in order, and a crash after the 200 replays it at
the next start. A failure to record answers 500, so Telegram delivers it again later. An update
recorded before (delivered again) is acknowledged and not queued a second time.

Order: Telegram sends one chat's updates one at a time, the next only after the previous one
was acknowledged (telegram-bot-api's WebhookActor keeps a queue per chat), and we acknowledge
only after queuing, so a chat's updates reach the queue in order, as polling's batches do.

A request is checked in this order: path (404), method (405), the secret header (403, compared
in constant time), body size (413), JSON (400). The secret never reaches a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from telegram import Bot, Update

from bot.context import BotDeps, OmniApplication
from memory.kv import KeyValues
from memory.updates import UpdateLedger
from omni.logging import redact_also
from omni.net import bind_tcp
from omni.settings import Settings

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_KEY = "telegram_webhook_secret"  # where a generated secret is kept (memory.kv)
MAX_BODY_BYTES = 1024 * 1024  # an update is a few KiB; Telegram's largest are far below this
# Telegram sends one chat's updates one at a time whatever this is; more connections only let
# chats overlap, and each request is one short insert into a database with a single writer.
MAX_CONNECTIONS = 10
STOP_S = 2.0

Accept = Callable[[dict[str, Any]], Awaitable[None]]


class WebhookUnavailable(Exception):
    """The webhook server cannot listen where it was told to."""


class BadUpdate(ValueError):
    """A body that is JSON but not a Telegram update."""


async def webhook_secret(settings: Settings, kv: KeyValues) -> str:
    """``OMNI_TELEGRAM_WEBHOOK_SECRET``, or the one generated the first time and kept since.

    Kept in the database, beside what it protects: restarts keep it, every process on one
    database agrees on it (``setdefault``: a second ``setWebhook`` with another secret would lock
    the first process out), and it needs no file of its own to mount or back up.
    """
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    # 32 random bytes, URL-safe base64: 43 characters, all in Telegram's A-Z a-z 0-9 _ -.
    return str(await kv.setdefault(SECRET_KEY, secrets.token_urlsafe(32)))


def shown_url(url: str) -> str:
    """``url`` for a log line: without credentials or a query, where a secret could hide."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Intake:
    """What a 200 promises: the update is recorded, then queued for the Application."""

    def __init__(self, bot: Bot, queue: asyncio.Queue[object], ledger: UpdateLedger) -> None:
        self._bot = bot
        self._queue = queue  # the Application's update_queue
        self._ledger = ledger

    async def __call__(self, payload: dict[str, Any]) -> None:
        try:
            update = Update.de_json(payload, self._bot)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # PTB's parse of odd shapes
            raise BadUpdate(f"not a Telegram update ({type(exc).__name__})") from exc
        chat, user = update.effective_chat, update.effective_user
        fresh = await self._ledger.record(
            update.update_id,
            chat_id=chat.id if chat is not None else None,
            user_id=user.id if user is not None else None,
            payload=payload,
        )
        if not fresh:
            log.info("update %s was delivered again; acknowledged, not handled twice", update.update_id)
            return
        await self._queue.put(update)


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is larger than ``MAX_BODY_BYTES`` (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _update_id(payload: object) -> int | None:
    if not isinstance(payload, dict):
        return None
    value = payload.get("update_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_webhook_app(path: str, secret: str, accept: Accept) -> Starlette:
    """The ASGI app: POST ``path`` with the secret header hands the update to ``accept``."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    expected = secret.encode()

    async def receive(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("refused a webhook call without the right secret from %s", _peer(request))
            return PlainTextResponse("Forbidden", status_code=403)
        body = await _read_body(request)
        if body is None:
            return PlainTextResponse("Payload Too Large", status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:  # not UTF-8 or not JSON
            return PlainTextResponse("Bad Request: not JSON", status_code=400)
        update_id = _update_id(payload)
        if update_id is None:
            return PlainTextResponse("Bad Request: not an update", status_code=400)
        try:
            await accept(payload)
        except BadUpdate as exc:
            log.warning("webhook update %s refused: %s", update_id, exc)
            return PlainTextResponse(f"Bad Request: {exc}", status_code=400)
        except Exception as exc:  # the edge: unrecorded must not be acknowledged, whatever broke
            log.error("could not record update %s (%s); Telegram will send it again", update_id, exc)
            return PlainTextResponse("Internal Server Error", status_code=500)
        # An empty body: Telegram would run a method named in a JSON answer.
        return Response(status_code=200)

    app = Starlette(routes=[Route(path, receive, methods=["POST"])])
    app.router.redirect_slashes = False  # "/hook/" is another path: 404, not a redirect
    return app


def _peer(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


def _bind(listen: str) -> socket.socket:
    """A listening socket for ``host:port`` (validated by the settings)."""
    host, _, port = listen.rpartition(":")
    try:
        return bind_tcp(host, int(port))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f"{listen} (OMNI_TELEGRAM_WEBHOOK_LISTEN)"
        raise WebhookUnavailable(f"cannot listen on {where}: {reason}") from None


class WebhookServer:
    """uvicorn serving the webhook app in this event loop, on a socket bound up front."""

    def __init__(self, asgi: Starlette, listen: str) -> None:
        import uvicorn

        class _QuietSignals(uvicorn.Server):
            # bot.run owns SIGTERM/SIGINT; uvicorn's own handlers would replace its handlers and
            # re-raise the signal after shutting down, so a clean stop would not exit 0.
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self._sock = _bind(listen)
        config = uvicorn.Config(
            asgi,
            lifespan="off",
            log_config=None,  # uvicorn's lines go through our handler (format, redaction)
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS * 4,  # Telegram's connections, and room for strays
            timeout_graceful_shutdown=1,
        )
        self._server: uvicorn.Server = _QuietSignals(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="webhook")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise WebhookUnavailable("the webhook server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop taking requests; those in progress finish (they are short)."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_S):
                    await asyncio.shield(self._task)
            if not self._task.done():
                self._task.cancel()
        self._sock.close()


async def start_webhook(app: OmniApplication, deps: BotDeps, url: str) -> WebhookServer:
    """Listen, then tell Telegram to post updates to ``url``; the running server."""
    secret = await webhook_secret(deps.settings, deps.store.kv)
    redact_also(secret)  # PTB logs setWebhook's parameters at DEBUG
    intake = Intake(app.bot, app.update_queue, deps.store.updates)
    asgi = build_webhook_app(urlsplit(url).path or "/", secret, intake)
    server = WebhookServer(asgi, deps.settings.telegram_webhook_listen)
    await server.start()  # first: Telegram starts posting as soon as setWebhook returns
    try:
        await app.bot.set_webhook(
            url=url,
            secret_token=secret,
            # Every type, so message_reaction too (bot/feedback.py), as polling asks for.
            allowed_updates=Update.ALL_TYPES,
            drop_pending_updates=False,
            max_connections=MAX_CONNECTIONS,
        )
    except BaseException:
        await server.stop()
        raise
    log.info("receiving updates by webhook at %s", shown_url(url))
    return server
