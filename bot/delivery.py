"""Sending replies: chunks in order, 429s waited out, plain text when HTML is refused."""

from __future__ import annotations

import datetime as dtm
import logging
import warnings

from telegram import Bot, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from bot.format import to_plain

log = logging.getLogger(__name__)

# A flood-wait longer than this is not worth holding a reply for; the error handler reports it.
MAX_RETRY_AFTER_S = 60.0
_ATTEMPTS = 5


def retry_after_seconds(exc: RetryAfter) -> float:
    """RetryAfter's delay in seconds (PTB 22 warns when the attribute is read as an int)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: dtm.timedelta | float = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, RetryAfter):
        return retry_after_seconds(exc) <= MAX_RETRY_AFTER_S
    # A timed-out send may have been delivered; sending again could double it.
    return isinstance(exc, NetworkError) and not isinstance(exc, (TimedOut, BadRequest))


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryAfter):
        delay = retry_after_seconds(exc)
        log.warning("Telegram asked to wait %.1f s (429); waiting", delay)
        return delay
    return min(0.5 * 2.0 ** (state.attempt_number - 1), 5.0)


def _retrying() -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(_transient), wait=_wait, stop=stop_after_attempt(_ATTEMPTS), reraise=True
    )


async def send_text(
    bot: Bot, chat_id: int, text: str, *, html: bool = False, reply_to: int | None = None
) -> Message:
    """Send one message, retrying 429s and connection errors; HTML refused -> plain text."""
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
    try:
        async for attempt in _retrying():
            with attempt:
                return await bot.send_message(
                    chat_id, text, parse_mode=ParseMode.HTML if html else None, reply_parameters=reply
                )
    except BadRequest as exc:
        if not html or "parse entities" not in exc.message.lower():
            raise
        log.warning("Telegram refused our HTML (%s); sending plain text", exc.message)
    async for attempt in _retrying():
        with attempt:
            return await bot.send_message(chat_id, to_plain(text), reply_parameters=reply)
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


async def send_chunks(bot: Bot, chat_id: int, chunks: list[str], *, reply_to: int | None = None) -> list[int]:
    """Send HTML chunks in order (the first one replying to ``reply_to``); their message ids."""
    sent: list[int] = []
    for index, chunk in enumerate(chunks):
        message = await send_text(bot, chat_id, chunk, html=True, reply_to=reply_to if index == 0 else None)
        sent.append(message.message_id)
    return sent
