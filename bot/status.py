"""A live status line while tools run: one message, edited in place, removed at the end.

Telegram allows about one edit per second per chat before it answers 429, so edits are spaced
at least ``interval`` apart; the newest status wins and the ones between are skipped. Status
updates are best effort: a failure to show one never costs the user the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from telegram import Bot
from telegram.error import TelegramError

from agent.types import Progress

log = logging.getLogger(__name__)

EDIT_INTERVAL_S = 1.5


class StatusLine:
    """A ``ProgressCallback`` for one turn in one chat."""

    def __init__(
        self, bot: Bot, chat_id: int, interval: float = EDIT_INTERVAL_S, *, thread_id: int | None = None
    ) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._thread_id = thread_id  # the forum topic the turn is in (edits and deletes need none)
        self._interval = interval
        self._message_id: int | None = None
        self._shown = ""
        self._wanted = ""
        self._last = 0.0
        self._later: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, event: Progress) -> None:
        if event.kind != "tool_start":
            return
        self._wanted = event.text
        wait = self._last + self._interval - time.monotonic()
        if self._message_id is None or wait <= 0:
            await self._show()
        elif self._later is None or self._later.done():
            self._later = asyncio.create_task(self._show_after(wait))

    async def _show_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._show()

    async def _show(self) -> None:
        async with self._lock:
            text = self._wanted
            if not text or text == self._shown:
                return
            try:
                if self._message_id is None:
                    sent = await self._bot.send_message(
                        self._chat_id, text, message_thread_id=self._thread_id
                    )
                    self._message_id = sent.message_id
                else:
                    await self._bot.edit_message_text(text, self._chat_id, self._message_id)
            except TelegramError as exc:  # 429 or a deleted message: skip this status
                log.debug("status line not updated: %s", exc)
            self._shown, self._last = text, time.monotonic()

    async def close(self) -> None:
        """Remove the status message (the answer is about to arrive, or the turn ended)."""
        if self._later is not None:
            self._later.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._later
        async with self._lock:
            if self._message_id is None:
                return
            with contextlib.suppress(TelegramError):
                await self._bot.delete_message(self._chat_id, self._message_id)
            self._message_id = None
