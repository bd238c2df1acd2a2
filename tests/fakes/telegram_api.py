"""A fake Telegram Bot API server: just enough of the real one for the bot to run against.

Routes ``/bot{token}/{method}`` accept JSON and form bodies (python-telegram-bot posts forms
whose nested values are JSON strings). ``getUpdates`` long-polls like the real server: updates
below ``offset`` are confirmed and dropped, the rest are delivered again until confirmed.
``sendMessage``/``editMessageText`` check the length after entity parsing and ``parse_mode=HTML``
with the real server's rules (``telegram_rules``: only Telegram's tags, balanced, known
entities) and answer 400 "Bad Request: can't parse entities: ..." otherwise.

Editing and deleting: like the real server, ``editMessageText`` answers 400 "message to edit not
found" for a message the bot did not send in that chat (or deleted), and "message is not
modified: ..." when the text, parse mode and keyboard are those the message already has;
``deleteMessage`` answers "message to delete not found" for an unknown or deleted one and keeps
the deleted ``(chat_id, message_id)`` in ``deleted``. ``current_text`` reads what a message shows
now (after edits, None once deleted) and ``shown(chat_id)`` what the whole chat does.

Drafts (Bot API 10.0): ``sendMessageDraft`` streams a preview into a private chat; as on the
real server it is refused in groups (400 "Bad Request: TEXTDRAFT_PEER_INVALID") and with a zero
``draft_id``; its text may be empty (a "Thinking..." placeholder) but is otherwise checked as
``sendMessage``'s. Each call is kept in ``drafts`` (``drafts_for(chat_id)``; ``GET
/_control/drafts`` from another process).

Flood control, off by default: ``flood(private_per_s, group_per_min, burst)`` (or ``POST
/_control/config`` with ``{"flood": {...}}``, ``{"flood": null}`` to stop) limits
``sendMessage``, ``editMessageText`` and ``sendMessageDraft`` per chat with a token bucket of
``burst`` calls, refilled at ``private_per_s`` in a private chat and ``group_per_min`` a minute in
a group; a call over it answers 429 with ``parameters.retry_after`` (the seconds until a call is
allowed again, rounded up), and ``floods`` counts those answers.

Inline keyboards: ``push_callback`` presses a button of a message the bot sent (a
``callback_query`` update), ``buttons`` reads a message's current keyboard (after edits), and
``answerCallbackQuery`` calls are kept in ``callback_answers``.

Reactions: ``push_reaction`` changes a user's emoji reactions on a message the bot sent (a
``message_reaction`` update). Like the real server, ``getUpdates`` delivers only the update types
named in the last ``allowed_updates`` it got, and without one every type but ``chat_member``,
``message_reaction`` and ``message_reaction_count`` (which a bot must ask for).

Broken sends: ``break_send`` makes a coming ``sendMessage`` lose its answer, after the message
was accepted (shown to the user, as when Telegram delivered it but the response never came back)
or before: the connection is dropped, or hangs until the client goes away (a process killed
while it waits); ``broken_sends`` counts the breaks so far.

Webhook: ``setWebhook`` keeps its parameters in ``webhook`` (None once ``deleteWebhook`` ran),
``getWebhookInfo`` reports them, and like the real server ``getUpdates`` fails with 409 Conflict
while a webhook is set. The fake posts nothing to the webhook: tests post updates to the bot.

Files out: ``sendDocument`` and ``sendPhoto`` take a multipart upload (as PTB posts one) and
check it like the real server: not empty, at most 50 MB (10 MB for a photo), a photo that is a
PNG, JPEG, GIF or WebP image, a caption of at most 1024 characters; ``files`` lists what was sent.

Outages: ``fail_for`` makes every call of a method fail (e.g. 502 on ``getUpdates``, or 429 with
a ``retry_after``) for a number of seconds, beside ``fail_next``'s count of failing calls.

Tests drive it through Python (``push_text``, ``sent``, ``wait_for_messages``, ``fail_next``) when
it runs in their process, or through ``/_control/...`` endpoints from another process. It is
thread-safe: the server may run in a thread (``serve_in_thread``) while a test thread waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.fakes.telegram_rules import MAX_TEXT, EntityError, parse_html, utf16_len

TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi"
BOT_ID = 123456
BOT_USERNAME = "omni_test_bot"

# Form values PTB JSON-encodes; everything else stays a string (or a number below).
_JSON_FIELDS = {
    "reply_parameters",
    "reply_markup",
    "entities",
    "allowed_updates",
    "commands",
    "scope",
    "link_preview_options",
}
_NUMBER_FIELDS = {
    "chat_id",
    "offset",
    "limit",
    "timeout",
    "message_id",
    "user_id",
    "message_thread_id",
    "draft_id",
}
# Update types Telegram sends only to a bot that names them in allowed_updates.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@dataclass
class Sent:
    """One message the bot sent (or edited)."""

    method: str
    chat_id: int
    text: str
    parse_mode: str | None
    message_id: int
    reply_to: int | None
    at: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Draft:
    """One sendMessageDraft call: a preview of a message being written."""

    chat_id: int
    draft_id: int
    text: str  # "" shows the "Thinking..." placeholder
    parse_mode: str | None
    thread_id: int | None
    at: float


@dataclass(frozen=True)
class Uploaded:
    """A file the bot uploaded in a multipart request."""

    filename: str
    data: bytes


MAX_CAPTION = 1024
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile's limit on the cloud Bot API
MAX_DOCUMENT = 50 * 1024 * 1024
MAX_PHOTO = 10 * 1024 * 1024
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


@dataclass
class _Break:
    at: int  # the sendMessage call that breaks (counted over the fake's life, 1-based)
    accepted: bool
    hang: bool


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    description: str | None
    count: int


@dataclass
class _Flood:
    """Telegram's per-chat flood limit as a token bucket of ``burst`` calls per chat."""

    private_per_s: float
    group_per_min: float
    burst: int
    buckets: dict[int, tuple[float, float]] = field(default_factory=dict)  # chat -> (tokens, at)

    def take(self, chat_id: int, now: float) -> int | None:
        """None when a call to ``chat_id`` may go now, else the seconds until one may."""
        rate = self.private_per_s if chat_id > 0 else self.group_per_min / 60
        tokens, at = self.buckets.get(chat_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * rate)
        if tokens >= 1:
            self.buckets[chat_id] = (tokens - 1, now)
            return None
        self.buckets[chat_id] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / rate))


_FLOODED = frozenset({"sendMessage", "editMessageText", "sendMessageDraft"})
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class FakeTelegram:
    """State and ASGI app of the fake Bot API; one instance per test."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self._lock = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1000
        self._next_message_id = 1
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._outages: dict[str, tuple[float, _Failure]] = {}  # method -> (until, failure)
        self._stalls = 0
        self._sends = 0  # sendMessage calls that got past fail_next
        self._breaks: list[_Break] = []
        self.broken_sends = 0
        self.sent: list[Sent] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.get_updates_times: list[float] = []
        self.push_times: dict[int, float] = {}
        self.chat_actions: list[tuple[int, str]] = []
        self.chat_action_params: list[dict[str, Any]] = []  # each sendChatAction's parameters
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.callback_answers: list[dict[str, Any]] = []
        self._markups: dict[tuple[int, int], Any] = {}  # (chat, message) -> its inline keyboard
        self._next_callback_id = 1
        self._allowed_updates: frozenset[str] | None = None  # None: Telegram's default
        self.webhook: dict[str, Any] | None = None  # the last setWebhook's parameters
        self.stored_files: dict[str, bytes] = {}  # file_id -> content, for getFile and downloads
        self.downloads: list[str] = []  # file paths the bot downloaded, in order
        self.drafts: list[Draft] = []
        self.deleted: set[tuple[int, int]] = set()  # (chat_id, message_id) deleteMessage removed
        # (chat, message) -> (text, parse mode) the bot's message shows now; None: it has no text
        # (a photo, a document). Users' messages, which a bot may delete too, are in _incoming.
        self._contents: dict[tuple[int, int], tuple[str, str | None] | None] = {}
        self._incoming: set[tuple[int, int]] = set()
        self._flood: _Flood | None = None
        self.floods = 0  # 429s the flood limit answered
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
                Route("/_control/push", self._ctl_push, methods=["POST"]),
                Route("/_control/sent", self._ctl_sent, methods=["GET"]),
                Route("/_control/fail", self._ctl_fail, methods=["POST"]),
                Route("/_control/stats", self._ctl_stats, methods=["GET"]),
                Route("/_control/reset", self._ctl_reset, methods=["POST"]),
                Route("/_control/drafts", self._ctl_drafts, methods=["GET"]),
                Route("/_control/config", self._ctl_config, methods=["POST"]),
            ]
        )

    # -- the test API -------------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update (an ``update_id`` is assigned when missing); returns its id."""
        with self._lock:
            if "update_id" not in update:
                update = {"update_id": self._next_update_id, **update}
            self._next_update_id = max(self._next_update_id, update["update_id"]) + 1
            self._updates.append(update)
            self.push_times[update["update_id"]] = time.perf_counter()
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return int(update["update_id"])

    def message(
        self,
        user_id: int,
        text: str | None,
        chat_id: int | None = None,
        *,
        first_name: str = "Ana",
        username: str | None = None,
        chat_type: str = "private",
        reply_to: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A Telegram ``Message`` dict as users' clients produce them."""
        chat_id = user_id if chat_id is None else chat_id
        with self._lock:
            message_id = self._next_message_id
            self._next_message_id += 1
            self._incoming.add((chat_id, message_id))
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = "A group"
        msg: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name,
                **({"username": username} if username else {}),
            },
        }
        if text is not None:
            msg["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                msg["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        msg.update(extra or {})
        return msg

    def add_file(self, data: bytes) -> dict[str, Any]:
        """Store a file users send; returns the ``file_id``/``file_unique_id``/``file_size`` of
        the object (Document, PhotoSize, Voice...) that carries it in a message."""
        with self._lock:
            file_id = f"file{len(self.stored_files) + 1}"
            self.stored_files[file_id] = data
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data)}

    def push_text(self, user_id: int, text: str, chat_id: int | None = None, **kwargs: Any) -> int:
        """A user writes ``text``; returns the update id."""
        return self.push_update({"message": self.message(user_id, text, chat_id, **kwargs)})

    def push_callback(self, user_id: int, data: str, message: Sent, *, first_name: str = "Ana") -> int:
        """A user presses the button carrying ``data`` under ``message``; returns the update id."""
        with self._lock:
            callback_id = str(self._next_callback_id)
            self._next_callback_id += 1
        chat: dict[str, Any] = {"id": message.chat_id, "type": "private" if message.chat_id > 0 else "group"}
        chat.update({"first_name": first_name} if message.chat_id > 0 else {"title": "A group"})
        query = {
            "id": callback_id,
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            "chat_instance": str(message.chat_id),
            "data": data,
            "message": {
                "message_id": message.message_id,
                "date": int(time.time()),
                "chat": chat,
                "from": self._bot_user(),
                "text": message.text,
            },
        }
        return self.push_update({"callback_query": query})

    def push_reaction(
        self,
        user_id: int,
        message: Sent,
        new: Sequence[str] = ("👍",),
        old: Sequence[str] = (),
        *,
        first_name: str = "Ana",
        chat_type: str | None = None,
    ) -> int:
        """A user's emoji reactions on ``message`` change from ``old`` to ``new`` (an empty
        ``new`` takes them back); returns the update id."""
        chat_type = chat_type or ("private" if message.chat_id > 0 else "group")
        chat: dict[str, Any] = {"id": message.chat_id, "type": chat_type}
        chat.update({"first_name": first_name} if chat_type == "private" else {"title": "A group"})
        reaction = {
            "chat": chat,
            "message_id": message.message_id,
            "user": {"id": user_id, "is_bot": False, "first_name": first_name},
            "date": int(time.time()),
            "old_reaction": [{"type": "emoji", "emoji": e} for e in old],
            "new_reaction": [{"type": "emoji", "emoji": e} for e in new],
        }
        return self.push_update({"message_reaction": reaction})

    def buttons(self, message: Sent) -> list[tuple[str, str]]:
        """The (text, callback_data) of the inline buttons now under ``message``, row by row."""
        with self._lock:
            markup = self._markups.get((message.chat_id, message.message_id)) or {}
        rows = markup.get("inline_keyboard") or []
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]

    async def callback_answer(self, n: int, within: float = 20.0) -> dict[str, Any]:
        """The ``n``-th answerCallbackQuery call (1-based), once it happened."""
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                if len(self.callback_answers) >= n:
                    return self.callback_answers[n - 1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {n} callback answers, got {len(self.callback_answers)}")
            await asyncio.sleep(0.01)

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        description: str | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` calls of ``method`` fail with ``status`` (429 carries retry_after)."""
        with self._lock:
            self._failures.setdefault(method, []).append(_Failure(status, retry_after, description, count))

    def fail_for(
        self, method: str, seconds: float, status: int = 502, retry_after: int | None = None
    ) -> None:
        """Every call of ``method`` fails with ``status`` for the next ``seconds`` (an outage)."""
        with self._lock:
            self._outages[method] = (time.monotonic() + seconds, _Failure(status, retry_after, None, 1))

    def break_send(self, nth: int = 1, *, accepted: bool, hang: bool = False) -> None:
        """The ``nth`` sendMessage from now (1: the next) gets no answer: accepted first (the
        user sees it) or not, then the connection is dropped, or with ``hang`` held open until
        the client goes away."""
        with self._lock:
            self._breaks.append(_Break(self._sends + nth, accepted, hang))

    def stall_get_updates(self, count: int = 1) -> None:
        """The next ``count`` getUpdates calls hang and never answer (a stuck connection)."""
        with self._lock:
            self._stalls += count

    def flood(self, private_per_s: float = 1.0, group_per_min: int = 20, burst: int = 3) -> None:
        """Turn on Telegram's flood limit for sendMessage, editMessageText and sendMessageDraft:
        per chat, ``burst`` calls at once, then ``private_per_s`` a second in a private chat or
        ``group_per_min`` a minute in a group; a call over it answers 429 with retry_after."""
        with self._lock:
            self._flood = _Flood(private_per_s, group_per_min, burst)

    def stop_flood(self) -> None:
        with self._lock:
            self._flood = None

    def drafts_for(self, chat_id: int) -> list[Draft]:
        with self._lock:
            return [d for d in self.drafts if d.chat_id == chat_id]

    def current_text(self, chat_id: int, message_id: int) -> str | None:
        """The text a message of the bot shows now, after its edits (as sent: HTML when its parse
        mode is HTML); None for one never sent, deleted or without text."""
        with self._lock:
            if (chat_id, message_id) in self.deleted:
                return None
            content = self._contents.get((chat_id, message_id))
            return None if content is None else content[0]

    def shown(self, chat_id: int) -> list[str]:
        """What the chat shows of the bot: the current text of each of its text messages that
        was not deleted, oldest first."""
        with self._lock:
            live = sorted(
                (key[1], content[0])
                for key, content in self._contents.items()
                if key[0] == chat_id and content is not None and key not in self.deleted
            )
        return [text for _, text in live]

    def texts(self, chat_id: int | None = None) -> list[str]:
        with self._lock:
            return [s.text for s in self.sent if chat_id is None or s.chat_id == chat_id]

    def wait_for_messages(self, n: int, timeout: float = 20.0, chat_id: int | None = None) -> list[Sent]:
        """Block until ``n`` messages were sent (to ``chat_id``); for a server in another thread."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = [s for s in self.sent if chat_id is None or s.chat_id == chat_id]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"expected {n} messages, got {len(got)}: {[s.text for s in got]}")
                self._lock.wait(left)

    async def messages(self, n: int, within: float = 20.0, chat_id: int | None = None) -> list[Sent]:
        """Like :meth:`wait_for_messages`, for a server in the caller's event loop."""
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                got = [s for s in self.sent if chat_id is None or s.chat_id == chat_id]
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {n} messages, got {len(got)}: {[s.text for s in got]}")
            await asyncio.sleep(0.01)

    def files(self, chat_id: int | None = None) -> list[tuple[str, Uploaded, str]]:
        """(method, the upload, caption) of each file sent (to ``chat_id``), in order."""
        with self._lock:
            return [
                (s.method, s.params[_FILE_FIELD[s.method]], s.text)
                for s in self.sent
                if s.method in _FILE_FIELD and (chat_id is None or s.chat_id == chat_id)
            ]

    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    # -- the Bot API ----------------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query_params)
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            body = await request.body()
            if body:
                params.update(json.loads(body))
        elif "form" in ctype:
            async with request.form() as form:  # closes the uploads' temporary files
                for key, value in form.items():
                    # A multipart upload (sendDocument, sendPhoto): kept with its name and bytes.
                    if not isinstance(value, str):
                        value = Uploaded(value.filename or "", await value.read())
                    params[key] = value
        for key, value in list(params.items()):
            if not isinstance(value, str):
                continue
            if key in _JSON_FIELDS:
                params[key] = json.loads(value)
            elif key in _NUMBER_FIELDS:
                params[key] = float(value) if "." in value else int(value)
        return params

    def _take_failure(self, method: str) -> _Failure | None:
        with self._lock:
            until, outage = self._outages.get(method, (0.0, None))
            if outage is not None and time.monotonic() < until:
                return outage
            queue = self._failures.get(method)
            if not queue:
                return None
            failure = queue[0]
            failure.count -= 1
            if failure.count <= 0:
                queue.pop(0)
            return failure

    async def _api(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.path_params["method"]
        params = await self._params(request)
        with self._lock:
            self.calls.append((method, params))
        failure = self._take_failure(method) or self._take_flood(method, params)
        broken = self._take_break() if method == "sendMessage" and failure is None else None
        if broken is not None:
            return await self._broken_send(broken, params, request)
        if failure is not None:
            extra = {"parameters": {"retry_after": failure.retry_after}} if failure.status == 429 else None
            default = (
                f"Too Many Requests: retry after {failure.retry_after}"
                if failure.status == 429
                else "Internal Server Error"
            )
            return _error(failure.status, failure.description or default, extra)
        handler = _METHODS.get(method)
        if handler is None:
            return _error(404, "Not Found: method not found")
        try:
            result = await (
                self._get_updates(params, request) if method == "getUpdates" else handler(self, params)
            )
        except EntityError as exc:
            return _error(400, f"Bad Request: {exc}")
        except _ApiError as exc:
            return _error(exc.status, exc.description)
        return JSONResponse({"ok": True, "result": result})

    def _take_flood(self, method: str, params: dict[str, Any]) -> _Failure | None:
        """A 429 when the flood limit is on and ``method`` went over it in its chat."""
        if method not in _FLOODED or not isinstance(params.get("chat_id"), int):
            return None
        with self._lock:
            if self._flood is None:
                return None
            wait = self._flood.take(params["chat_id"], time.monotonic())
            if wait is None:
                return None
            self.floods += 1
        return _Failure(429, wait, None, 1)

    def _take_break(self) -> _Break | None:
        with self._lock:
            self._sends += 1
            broken = next((b for b in self._breaks if b.at == self._sends), None)
            if broken is not None:
                self._breaks.remove(broken)
            return broken

    async def _broken_send(self, broken: _Break, params: dict[str, Any], request: Request) -> Response:
        if broken.accepted:
            try:
                self._record("sendMessage", params, self._check_text(params))
            except (EntityError, _ApiError) as exc:
                raise AssertionError(f"a send chosen to break was invalid: {exc}") from exc
        with self._lock:
            self.broken_sends += 1
            self._lock.notify_all()
        if not broken.hang:
            return _Dropped()
        while not await request.is_disconnected():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return _Dropped()  # nobody is left to read it

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Omni",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_me(self, params: dict[str, Any]) -> Any:
        return self._bot_user()

    async def _get_updates(self, params: dict[str, Any], request: Request | None = None) -> Any:
        with self._lock:
            self.get_updates_times.append(time.perf_counter())
            if self.webhook is not None:
                raise _ApiError(409, _WEBHOOK_CONFLICT)
        with self._lock:
            stall, self._stalls = self._stalls > 0, max(0, self._stalls - 1)
        while stall and not (request is not None and await request.is_disconnected()):  # noqa: ASYNC110
            await asyncio.sleep(0.5)  # hangs until the client gives up on it
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        if "allowed_updates" in params:  # kept until a later call names others, as Telegram does
            with self._lock:
                self._allowed_updates = frozenset(params["allowed_updates"] or ()) or None
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            event = asyncio.Event()
            with self._lock:
                if offset:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                self._updates = [u for u in self._updates if self._wanted(u)]  # the rest is dropped
                ready = self._updates[:limit]
                if not ready:
                    self._waiters.append((asyncio.get_running_loop(), event))
            if ready:
                return ready
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            # Wake up now and then to notice a client that went away (a stopped bot), so the
            # server never holds a dead long poll until its own shutdown.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(left, 0.5))
            if not event.is_set():
                with self._lock:
                    self._waiters = [w for w in self._waiters if w[1] is not event]
                if request is not None and await request.is_disconnected():
                    return []

    def _wanted(self, update: dict[str, Any]) -> bool:
        kind = next((k for k in update if k != "update_id"), "")
        if self._allowed_updates is None:
            return kind not in _OPT_IN_UPDATES
        return kind in self._allowed_updates

    def _record(
        self, method: str, params: dict[str, Any], text: str, message_id: int | None = None
    ) -> dict[str, Any]:
        reply = params.get("reply_parameters") or {}
        with self._lock:
            if message_id is None:
                message_id = self._next_message_id
                self._next_message_id += 1
            chat_id = int(params["chat_id"])
            self._markups[(chat_id, message_id)] = params.get("reply_markup")
            has_text = method in ("sendMessage", "editMessageText")
            self._contents[(chat_id, message_id)] = (text, _mode(params)) if has_text else None
            self.sent.append(
                Sent(
                    method,
                    chat_id,
                    text,
                    params.get("parse_mode"),
                    message_id,
                    reply.get("message_id"),
                    time.perf_counter(),
                    params,
                )
            )
            self._lock.notify_all()
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "text": text,
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": self._bot_user(),
        }

    def _check_text(self, params: dict[str, Any]) -> str:
        text = params.get("text")
        if "chat_id" not in params:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if not _shown_text(text, params).strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        return text

    async def _get_file(self, params: dict[str, Any]) -> Any:
        """Like the cloud Bot API: a file's path for download, refused over 20 MB."""
        file_id = str(params.get("file_id", ""))
        with self._lock:
            data = self.stored_files.get(file_id)
        if data is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if len(data) > MAX_DOWNLOAD:
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": f"files/{file_id}",
        }

    async def _file(self, request: Request) -> Response:
        """``/file/bot<token>/<file_path>``: the content of a file getFile named."""
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        path = request.path_params["path"]
        with self._lock:
            data = self.stored_files.get(path.removeprefix("files/"))
            self.downloads.append(path)
        if data is None:
            return _error(404, "Not Found")
        return Response(data, media_type="application/octet-stream")

    async def _send_message(self, params: dict[str, Any]) -> Any:
        return self._record("sendMessage", params, self._check_text(params))

    def _check_file(self, params: dict[str, Any], field: str, limit: int) -> tuple[Uploaded, str]:
        if "chat_id" not in params:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        upload = params.get(field)
        if not isinstance(upload, Uploaded):
            raise _ApiError(400, f"Bad Request: there is no {field} in the request")
        if not upload.data:
            raise _ApiError(400, "Bad Request: file must be non-empty")
        if len(upload.data) > limit:
            raise _ApiError(413, "Request Entity Too Large")
        caption = str(params.get("caption") or "")
        shown = parse_html(caption) if str(params.get("parse_mode", "")).upper() == "HTML" else caption
        if utf16_len(shown) > MAX_CAPTION:
            raise _ApiError(400, "Bad Request: message caption is too long")
        return upload, caption

    async def _send_document(self, params: dict[str, Any]) -> Any:
        upload, caption = self._check_file(params, "document", MAX_DOCUMENT)
        message = self._record("sendDocument", params, caption)
        del message["text"]  # a file's message has a caption and the file instead
        file = {"file_id": f"doc{message['message_id']}", "file_unique_id": f"d{message['message_id']}"}
        return {**message, "caption": caption, "document": {**file, "file_name": upload.filename}}

    async def _send_photo(self, params: dict[str, Any]) -> Any:
        upload, caption = self._check_file(params, "photo", MAX_PHOTO)
        if not upload.data.startswith(_IMAGE_MAGIC) and upload.data[8:12] != b"WEBP":
            raise _ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        message = self._record("sendPhoto", params, caption)
        del message["text"]
        size = {"file_id": f"photo{message['message_id']}", "file_unique_id": f"p{message['message_id']}"}
        return {**message, "caption": caption, "photo": [{**size, "width": 1, "height": 1}]}

    async def _edit_message_text(self, params: dict[str, Any]) -> Any:
        text = self._check_text(params)
        key = (int(params["chat_id"]), int(params.get("message_id") or 0))
        with self._lock:
            if key not in self._contents or key in self.deleted:
                raise _ApiError(400, "Bad Request: message to edit not found")
            content = self._contents[key]
            if content is None:
                raise _ApiError(400, "Bad Request: there is no text in the message to edit")
            if content == (text, _mode(params)) and self._markups.get(key) == params.get("reply_markup"):
                raise _ApiError(400, _NOT_MODIFIED)
        return self._record("editMessageText", params, text, key[1])

    async def _delete_message(self, params: dict[str, Any]) -> Any:
        key = (int(params.get("chat_id") or 0), int(params.get("message_id") or 0))
        with self._lock:
            if (key not in self._contents and key not in self._incoming) or key in self.deleted:
                raise _ApiError(400, "Bad Request: message to delete not found")
            self.deleted.add(key)
        return True

    async def _send_message_draft(self, params: dict[str, Any]) -> Any:
        if "chat_id" not in params:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        chat_id, draft_id = int(params["chat_id"]), int(params.get("draft_id") or 0)
        if chat_id <= 0:  # drafts exist in private chats only
            raise _ApiError(400, "Bad Request: TEXTDRAFT_PEER_INVALID")
        if draft_id == 0:
            raise _ApiError(400, "Bad Request: draft_id must be non-zero")
        text = params.get("text") or ""
        _shown_text(str(text), params)  # an empty text is the placeholder, any other is checked
        thread = params.get("message_thread_id")
        with self._lock:
            draft = Draft(chat_id, draft_id, str(text), params.get("parse_mode"), thread, time.perf_counter())
            self.drafts.append(draft)
            self._lock.notify_all()
        return True

    async def _answer_callback_query(self, params: dict[str, Any]) -> Any:
        if not params.get("callback_query_id"):
            raise _ApiError(400, "Bad Request: query is empty")
        with self._lock:
            self.callback_answers.append(params)
        return True

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> Any:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        with self._lock:
            self._markups[(chat_id, message_id)] = params.get("reply_markup")
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": self._bot_user(),
        }

    async def _send_chat_action(self, params: dict[str, Any]) -> Any:
        with self._lock:
            self.chat_actions.append((int(params["chat_id"]), str(params.get("action"))))
            self.chat_action_params.append(dict(params))
        return True

    async def _set_my_commands(self, params: dict[str, Any]) -> Any:
        scope = params.get("scope") or {"type": "default"}
        key = json.dumps(scope, sort_keys=True)
        with self._lock:
            self.commands[key] = list(params.get("commands") or [])
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> Any:
        key = json.dumps(params.get("scope") or {"type": "default"}, sort_keys=True)
        with self._lock:
            return self.commands.get(key, [])

    async def _set_webhook(self, params: dict[str, Any]) -> Any:
        url = str(params.get("url") or "")
        if not url:  # as Telegram: an empty URL removes the webhook
            return await self._delete_webhook(params)
        if not url.startswith("https://"):
            raise _ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        with self._lock:
            self.webhook = dict(params)
            if "allowed_updates" in params:  # one setting for both ways of receiving
                self._allowed_updates = frozenset(params["allowed_updates"] or ()) or None
            if _flag(params.get("drop_pending_updates")):
                self._updates.clear()
        return True

    async def _delete_webhook(self, params: dict[str, Any]) -> Any:
        with self._lock:
            self.webhook = None
            if _flag(params.get("drop_pending_updates")):
                self._updates.clear()
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> Any:
        with self._lock:
            hook = self.webhook or {}
            return {
                "url": hook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
                "max_connections": int(hook.get("max_connections") or 40),
                **({"allowed_updates": hook["allowed_updates"]} if hook.get("allowed_updates") else {}),
            }

    async def _true(self, params: dict[str, Any]) -> Any:
        return True

    # -- control endpoints for other processes --------------------------------------------------

    async def _ctl_push(self, request: Request) -> JSONResponse:
        body = await request.json()
        if "update" in body:
            update_id = self.push_update(body["update"])
        else:
            update_id = self.push_text(int(body["user_id"]), body["text"], body.get("chat_id"))
        return JSONResponse({"update_id": update_id})

    async def _ctl_sent(self, request: Request) -> JSONResponse:
        with self._lock:
            return JSONResponse([{k: v for k, v in asdict(s).items() if k != "params"} for s in self.sent])

    async def _ctl_fail(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.fail_next(
            body["method"],
            int(body.get("status", 429)),
            body.get("retry_after", 1),
            body.get("description"),
            int(body.get("count", 1)),
        )
        return JSONResponse({"ok": True})

    async def _ctl_drafts(self, request: Request) -> JSONResponse:
        with self._lock:
            return JSONResponse([asdict(d) for d in self.drafts])

    async def _ctl_config(self, request: Request) -> JSONResponse:
        """``{"flood": {"private_per_s": .., "group_per_min": .., "burst": ..}}`` turns the flood
        limit on (missing keys: ``flood``'s defaults), ``{"flood": null}`` off."""
        body = await request.json()
        if "flood" in body:
            if body["flood"] is None:
                self.stop_flood()
            else:
                self.flood(**body["flood"])
        with self._lock:
            flood = self._flood
            shown = None if flood is None else {k: v for k, v in asdict(flood).items() if k != "buckets"}
        return JSONResponse({"flood": shown})

    async def _ctl_stats(self, request: Request) -> JSONResponse:
        with self._lock:
            return JSONResponse(
                {
                    "get_updates": len(self.get_updates_times),
                    "sent": len(self.sent),
                    "pending": len(self._updates),
                    "drafts": len(self.drafts),
                    "floods": self.floods,
                }
            )

    async def _ctl_reset(self, request: Request) -> JSONResponse:
        with self._lock:
            self.sent.clear()
            self.calls.clear()
            self.get_updates_times.clear()
            self.chat_actions.clear()
            self.chat_action_params.clear()
            self.callback_answers.clear()
            self._failures.clear()
            self._outages.clear()
            self.drafts.clear()
            self._flood, self.floods = None, 0
        return JSONResponse({"ok": True})


class _Dropped(Response):
    """A response cut off after its headers: the client sees the connection close mid-answer."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok": true', "more_body": True})
        # Returning unfinished makes uvicorn close the connection (it logs one line about it).


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


_WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)


def _mode(params: dict[str, Any]) -> str | None:
    """The parse mode of a call, as Telegram reads it (case does not matter)."""
    mode = params.get("parse_mode")
    return str(mode).upper() if mode else None


def _shown_text(text: str, params: dict[str, Any]) -> str:
    """What users see of ``text`` with the call's parse mode: checked as Telegram does (valid
    HTML, at most 4096 UTF-16 units after entity parsing)."""
    shown = parse_html(text) if _mode(params) == "HTML" else text
    if utf16_len(shown) > MAX_TEXT:
        raise _ApiError(400, "Bad Request: message is too long")
    return shown


def _flag(value: object) -> bool:
    """A boolean parameter as JSON (true) or a form field ("true", "True")."""
    return value is True or str(value).lower() in ("true", "1")


def _error(status: int, description: str, extra: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error_code": status, "description": description, **(extra or {})}, status_code=status
    )


_METHODS = {
    "getMe": FakeTelegram._get_me,
    "getFile": FakeTelegram._get_file,
    "getUpdates": FakeTelegram._get_updates,
    "sendMessage": FakeTelegram._send_message,
    "sendDocument": FakeTelegram._send_document,
    "sendPhoto": FakeTelegram._send_photo,
    "editMessageText": FakeTelegram._edit_message_text,
    "sendChatAction": FakeTelegram._send_chat_action,
    "answerCallbackQuery": FakeTelegram._answer_callback_query,
    "editMessageReplyMarkup": FakeTelegram._edit_message_reply_markup,
    "setMyCommands": FakeTelegram._set_my_commands,
    "getMyCommands": FakeTelegram._get_my_commands,
    "deleteMessage": FakeTelegram._delete_message,
    "sendMessageDraft": FakeTelegram._send_message_draft,
    "setWebhook": FakeTelegram._set_webhook,
    "deleteWebhook": FakeTelegram._delete_webhook,
    "getWebhookInfo": FakeTelegram._get_webhook_info,
    "deleteMyCommands": FakeTelegram._true,
    "close": FakeTelegram._true,
    "logOut": FakeTelegram._true,
}

_FILE_FIELD = {"sendDocument": "document", "sendPhoto": "photo"}
