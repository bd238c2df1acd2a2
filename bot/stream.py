"""A reply shown while it is written: a draft in private chats, one message edited in place in
groups (and wherever Telegram refuses drafts), with the tool-progress line in the same preview.

The agent passes each piece of the answer as the model writes it (``Progress("text")``); this
keeps the pieces and a background task shows the newest state at most once per interval, so a
slow Bot API call never holds up the model's stream and Telegram's flood limits are kept (about
one update a second in a private chat, twenty messages a minute in a group). A 429 is waited
out; a preview that fails otherwise is skipped, never costing the user the answer.

What a preview shows is always valid: the Markdown so far with an unfinished code fence closed,
converted like the final answer (``bot.format``), and when longer than one message, its last
part. A draft (``sendMessageDraft``) is ephemeral: the final ``sendMessage`` replaces it. An
edited preview message becomes the answer's first message (``delivery.deliver(edit=...)``); its
id is kept in the database while the update is open, so a process killed mid-stream is resumed
by editing the same message, not by leaving a half answer behind.

Quick answers show no preview at all: the first is shown ``FIRST_AFTER_S`` into the turn and
``FIRST_TEXT_GRACE_S`` after the answer's first words, and an answer done by then goes out as
one message, as without streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from collections.abc import Awaitable, Callable

from telegram import Bot, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError

from agent.types import Progress
from bot.delivery import retry_after_seconds
from bot.format import split_html, to_html
from bot.topics import Place

log = logging.getLogger(__name__)

PRIVATE_INTERVAL_S = 1.0
GROUP_INTERVAL_S = 3.0  # twenty messages a minute per group
FIRST_AFTER_S = 0.3
FIRST_TEXT_GRACE_S = 0.2  # an answer written within this of its first words needs no preview
MAX_WAIT_S = 30.0  # a longer flood-wait skips previews until the answer is ready
IN_FLIGHT_S = 10.0  # how long the answer waits for a preview request already on its way
PREVIEW_LIMIT = 3800  # visible characters, leaving room for the status line within 4096
_FENCE = "```"

# Chats where Telegram refused a draft: their previews are edited messages from then on.
_drafts_refused: set[int] = set()


def preview_html(markdown: str, status: str | None) -> str:
    """Telegram HTML for an answer being written (and the tool it is using), always valid."""
    body = ""
    if markdown.strip():
        if markdown.count(_FENCE) % 2:  # a code block still being written
            markdown += "\n" + _FENCE
        chunks = split_html(to_html(markdown), PREVIEW_LIMIT)
        body = chunks[-1] if len(chunks) < 2 else "…\n" + chunks[-1]
    if status:
        line = f"<i>{html.escape(status, quote=False)}</i>"
        body = f"{body}\n\n{line}" if body else line
    return body


class AnswerStream:
    """A ``ProgressCallback`` that previews one turn's answer in its chat."""

    def __init__(
        self,
        bot: Bot,
        place: Place,
        *,
        private: bool,
        draft_id: int,
        quote: Callable[[], int | None] = lambda: None,
        message_id: int | None = None,
        on_message: Callable[[int | None], Awaitable[None]] | None = None,
    ) -> None:
        """``message_id``: a preview message an earlier attempt at this turn left (resumed);
        ``on_message`` records the preview message's id as it changes (None: there is none)."""
        self._bot = bot
        self._place = place
        self._draft = private and place.chat_id not in _drafts_refused and message_id is None
        self._draft_id = draft_id
        self._interval = PRIVATE_INTERVAL_S if private else GROUP_INTERVAL_S
        self._quote = quote
        self.message_id = message_id
        self._on_message = on_message
        self._pieces: list[str] = []
        self._status: str | None = None
        self._shown = ""
        self._next_at = time.monotonic() + FIRST_AFTER_S
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Future[None] | None = None
        self.calls = 0  # Bot API calls made for previews (the streaming benchmark reads it)

    async def __call__(self, event: Progress) -> None:
        if event.kind == "thinking":  # a new model call: what the last one wrote was a tool round's
            self._pieces = []
            return
        if event.kind == "text":
            if not self._pieces and not self._shown:  # the answer starts: is it a quick one?
                self._next_at = max(self._next_at, time.monotonic() + FIRST_TEXT_GRACE_S)
            self._pieces.append(event.text)
            self._status = None
        elif event.kind == "tool_start":
            self._status = event.text
        else:
            return
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._show_changes(), name=f"preview-{self._place.chat_id}")

    async def _show_changes(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(max(0.0, self._next_at - time.monotonic()))
            self._changed.clear()
            text = preview_html("".join(self._pieces), self._status)
            if not text or text == self._shown:
                continue
            # Shielded: a preview message being sent when the answer is ready must still get its
            # id recorded (close waits for it), or it would stay behind as a half answer.
            self._in_flight = asyncio.ensure_future(self._show(text))
            try:
                await asyncio.shield(self._in_flight)
                self._shown = text
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                log.info("preview flood-waits %.1f s", wait)
                if wait > MAX_WAIT_S:
                    return
                self._next_at = time.monotonic() + wait
                self._changed.set()
                continue
            except TelegramError as exc:  # best effort: the final answer still comes
                log.debug("preview not shown: %s", exc)
            self._next_at = time.monotonic() + self._interval

    async def _show(self, text: str) -> None:
        self.calls += 1
        place = self._place
        if self._draft:
            try:
                await self._bot.send_message_draft(
                    place.chat_id,
                    self._draft_id,
                    text,
                    message_thread_id=place.thread_id,
                    parse_mode=ParseMode.HTML,
                )
                return
            except BadRequest as exc:
                if "parse entities" in exc.message.lower():
                    raise
                log.info(
                    "drafts refused in chat %s (%s); editing a message instead", place.chat_id, exc.message
                )
                _drafts_refused.add(place.chat_id)
                self._draft = False
        if self.message_id is not None:
            try:
                await self._bot.edit_message_text(
                    text, place.chat_id, self.message_id, parse_mode=ParseMode.HTML
                )
                return
            except BadRequest as exc:
                if "not modified" in exc.message.lower():
                    return
                if "not found" not in exc.message.lower():
                    raise
                await self._set_message(None)  # deleted by someone: a new one below
        quote = self._quote()
        sent = await self._bot.send_message(
            place.chat_id,
            text,
            parse_mode=ParseMode.HTML,
            message_thread_id=place.thread_id,
            reply_parameters=ReplyParameters(quote, allow_sending_without_reply=True) if quote else None,
        )
        await self._set_message(sent.message_id)

    async def _set_message(self, message_id: int | None) -> None:
        self.message_id = message_id
        if self._on_message is not None:
            await self._on_message(message_id)

    async def close(self) -> int | None:
        """Stop previewing (the answer is ready); the preview message to turn into its first
        message, if there is one."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight is not None:
            await asyncio.wait([self._in_flight], timeout=IN_FLIGHT_S)
            if self._in_flight.done() and not self._in_flight.cancelled():
                self._in_flight.exception()  # seen by the loop above, or not needed any more
        return self.message_id

    async def discard(self) -> None:
        """Stop previewing and remove the preview message: the turn ends without an answer."""
        message_id = await self.close()
        if message_id is None:
            return
        with contextlib.suppress(TelegramError):
            await self._bot.delete_message(self._place.chat_id, message_id)
        await self._set_message(None)
