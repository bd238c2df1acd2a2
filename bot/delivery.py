"""Sending replies: chunks in order, 429s waited out, plain text when HTML is refused.

A send is retried only when Telegram cannot have acted on it: it answered with an error (429,
5xx), or the request never left this machine (no connection, or none free in the pool). Once
the request may have reached Telegram (a read timed out, the connection broke while waiting for
the answer) it is never sent again: the Bot API has no idempotency key, so a second send could
show the user the same text twice. Such a chunk is passed over (recorded as None) and the rest
of the answer still goes out.

An answer's chunks are recorded as Telegram acknowledges each (``UpdateLedger.record_sent``),
and a replayed update sends only the chunks not recorded yet (``deliver``). A chunk is a
message of HTML or a file (``Upload``: a long answer's ``.md`` document, a file the assistant
sends back); both are sent, retried and recorded alike.
"""

from __future__ import annotations

import contextlib
import datetime as dtm
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx
from telegram import Bot, Message, ReplyParameters
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from bot.format import to_plain, utf16_len
from memory.updates import UpdateLedger

log = logging.getLogger(__name__)
T = TypeVar("T")

# A flood-wait longer than this is not worth holding a reply for; the error handler reports it.
MAX_RETRY_AFTER_S = 60.0
MAX_FLOOD_WAIT_S = 180.0  # all of one send's flood-waits together
_ATTEMPTS = 5


def retry_after_seconds(exc: RetryAfter) -> float:
    """RetryAfter's delay in seconds (PTB 22 warns when the attribute is read as an int)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: dtm.timedelta | float = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# httpx errors raised before any byte of the request left: no connection, none free in the pool.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def maybe_delivered(exc: BaseException) -> bool:
    """Whether a failed send may have reached Telegram anyway: the connection failed after the
    request was (perhaps partly) written, e.g. a read timeout or a dropped connection.

    PTB raises these as ``TimedOut``/``NetworkError`` from the httpx error (22.x:
    ``HTTPXRequest.do_request``); an error Telegram answered with has no httpx cause.
    """
    cause = exc.__cause__
    return (
        isinstance(exc, NetworkError)
        and isinstance(cause, httpx.TransportError)
        and not isinstance(cause, _NOT_SENT)
    )


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, RetryAfter):
        return retry_after_seconds(exc) <= MAX_RETRY_AFTER_S
    return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest) and not maybe_delivered(exc)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryAfter):
        delay = retry_after_seconds(exc)
        log.warning("Telegram asked to wait %.1f s (429); waiting", delay)
        return delay
    return min(0.5 * 2.0 ** (state.attempt_number - 1), 5.0)


def _stop(state: RetryCallState) -> bool:
    """Give up on a send. A 429 storm is Telegram pacing us, not failing: its waits are sat out
    however many there are, up to ``MAX_FLOOD_WAIT_S`` in all; other errors get ``_ATTEMPTS``."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryAfter):
        return state.idle_for + retry_after_seconds(exc) > MAX_FLOOD_WAIT_S
    return state.attempt_number >= _ATTEMPTS


def _retrying() -> AsyncRetrying:
    return AsyncRetrying(retry=retry_if_exception(_transient), wait=_wait, stop=_stop, reraise=True)


async def _html_or_plain(send: Callable[[str, str | None], Awaitable[T]], text: str, html: bool) -> T:
    """``send(text, parse_mode)``, retrying 429s and connection errors; HTML refused -> plain text."""
    try:
        async for attempt in _retrying():
            with attempt:
                return await send(text, ParseMode.HTML if html else None)
    except BadRequest as exc:
        if not html or "parse entities" not in exc.message.lower():
            raise
        log.warning("Telegram refused our HTML (%s); sending plain text", exc.message)
    async for attempt in _retrying():
        with attempt:
            return await send(to_plain(text), None)
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


async def send_text(
    bot: Bot,
    chat_id: int,
    text: str,
    *,
    html: bool = False,
    reply_to: int | None = None,
    thread_id: int | None = None,
) -> Message:
    """Send one message (into the forum topic ``thread_id``), retrying 429s and connection
    errors; HTML refused -> plain text."""
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None

    async def send(body: str, parse_mode: str | None) -> Message:
        return await bot.send_message(
            chat_id, body, parse_mode=parse_mode, reply_parameters=reply, message_thread_id=thread_id
        )

    return await _html_or_plain(send, text, html)


async def edit_text(bot: Bot, chat_id: int, message_id: int, text: str) -> bool:
    """Make the message ``message_id`` (a streamed preview) show the HTML ``text``, retrying
    like ``send_text``; False when the message is gone (deleted), so the caller sends anew."""

    async def edit(body: str, parse_mode: str | None) -> None:
        try:
            await bot.edit_message_text(body, chat_id, message_id, parse_mode=parse_mode)
        except BadRequest as exc:  # the preview already shows exactly this: done
            if "not modified" not in exc.message.lower():
                raise

    try:
        await _html_or_plain(edit, text, True)
    except BadRequest as exc:
        if "not found" not in exc.message.lower():
            raise
        return False
    return True


@dataclass(frozen=True, slots=True)
class Upload:
    """A file sent as one message: a photo (shown in the chat) or a document (a download)."""

    filename: str
    data: bytes
    caption: str = ""  # plain text, cut to Telegram's 1024 characters when sent
    photo: bool = False


Part = str | Upload  # one message of an answer: Telegram HTML, or a file


def _caption(text: str) -> str | None:
    """``text`` within Telegram's caption limit (UTF-16 units, like a message's)."""
    limit = MessageLimit.CAPTION_LENGTH
    while utf16_len(text) > limit:
        text = text[: len(text) - (utf16_len(text) - limit) - 1] + "…"
    return text or None


async def send_upload(
    bot: Bot, chat_id: int, upload: Upload, *, reply_to: int | None = None, thread_id: int | None = None
) -> Message:
    """Send a file, retrying like ``send_text``; a photo Telegram cannot process (a
    corrupt or oddly sized image) goes again as a document."""
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None

    async def send(method: Callable[..., Awaitable[Message]]) -> Message:
        async for attempt in _retrying():
            with attempt:
                return await method(
                    chat_id,
                    upload.data,
                    caption=_caption(upload.caption),
                    filename=upload.filename,
                    reply_parameters=reply,
                    message_thread_id=thread_id,
                )
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    if upload.photo:
        try:
            return await send(bot.send_photo)
        except BadRequest as exc:
            log.warning("Telegram refused a photo (%s); sending it as a document", exc.message)
    return await send(bot.send_document)


async def _send_part(
    bot: Bot, chat_id: int, part: Part, reply_to: int | None, thread_id: int | None, edit: int | None
) -> int:
    """Send ``part``, or make the message ``edit`` (a streamed preview) show it; its message id."""
    if edit is not None:
        if isinstance(part, str) and await edit_text(bot, chat_id, edit, part):
            return edit
        with contextlib.suppress(TelegramError):  # not a text, or gone: the preview makes way
            await bot.delete_message(chat_id, edit)
    if isinstance(part, Upload):
        message = await send_upload(bot, chat_id, part, reply_to=reply_to, thread_id=thread_id)
    else:
        message = await send_text(bot, chat_id, part, html=True, reply_to=reply_to, thread_id=thread_id)
    return message.message_id


OnSent = Callable[[list[int | None]], Awaitable[None]]


async def send_chunks(
    bot: Bot,
    chat_id: int,
    chunks: Sequence[Part],
    *,
    reply_to: int | None = None,
    thread_id: int | None = None,
    done: Sequence[int | None] = (),
    on_sent: OnSent | None = None,
    edit: int | None = None,
) -> list[int | None]:
    """Send chunks (HTML or files) in order (the first one replying to ``reply_to``), from the first one
    past ``done`` (what an earlier attempt delivered); the message ids of all of them. ``edit``:
    a streamed preview message, which becomes the first chunk instead of a new message.

    ``on_sent`` gets the ids so far after each chunk but the last, before anything else
    happens: it records them (the caller records the last with whatever it does next). A chunk
    that may or may not have arrived is None and is not sent again.
    """
    sent = list(done)
    for index in range(len(sent), len(chunks)):
        quote = reply_to if index == 0 else None
        try:
            message_id = await _send_part(
                bot, chat_id, chunks[index], quote, thread_id, edit if index == 0 else None
            )
        except NetworkError as exc:
            if not maybe_delivered(exc):
                raise
            log.warning(
                "chunk %d of %d to chat %s may or may not have arrived (%r); not sending it again",
                index + 1,
                len(chunks),
                chat_id,
                exc,
            )
            sent.append(None)
        else:
            sent.append(message_id)
        if on_sent is not None and index + 1 < len(chunks):
            await on_sent(sent)
    return sent


async def deliver(
    bot: Bot,
    ledger: UpdateLedger,
    chat_id: int,
    chunks: Sequence[Part],
    *,
    update_id: int,
    answer_id: int | None,
    replayed: bool,
    reply_to: int | None = None,
    thread_id: int | None = None,
    edit: int | None = None,
) -> None:
    """Send an answer's chunks not delivered yet, record each as Telegram acknowledges it, and
    close the update (with the last chunk's id, in one transaction). ``edit``: a streamed
    preview message that becomes the first chunk.

    ``replayed``: the answer was stored by an earlier attempt, which may have sent part of it.
    Chunking is deterministic (``bot.format.render``, ``bot.long_answer.parts``), so recorded
    ids match chunks by index.
    """
    if answer_id is None:  # nothing to record the chunks on: send them all
        await send_chunks(bot, chat_id, chunks, reply_to=reply_to, thread_id=thread_id, edit=edit)
        await ledger.finish(update_id, "answered")
        return

    async def record(sent: list[int | None]) -> None:
        await ledger.record_sent(answer_id, sent)

    done = await ledger.delivered(answer_id) if replayed else []
    if done:
        log.info("update %s: %d of %d chunks were delivered before", update_id, len(done), len(chunks))
    sent = await send_chunks(
        bot,
        chat_id,
        chunks,
        reply_to=reply_to,
        thread_id=thread_id,
        done=done,
        on_sent=record,
        edit=edit if not done else None,
    )
    await ledger.finish(update_id, "answered", sent=(answer_id, sent))
