"""Firing scheduled jobs in Telegram: a reminder's text, or a task's answer from the agent.

The scheduler (agent/scheduler.py) claims each due run once and calls :meth:`JobFiring.fire`,
which delivers it to the job's chat and forum topic and returns the Telegram message id the
scheduler records. Before anything is sent the job's owner is checked again: a user an admin
shut out since creating the job gets nothing, and a task runs with the rights its owner has at
that time (admin or not), never those of the moment it was created.

A task (and a background job, ``/bg``: a task due at once) runs the agent in a session of its
own, ``tg:<chat>:job<id>`` (under the chat's key, so ``/forget all`` there removes it too),
outside the chat's queue, so the chat stays responsive while it works; it
reads and grows its owner's memory like a chat turn. Its answer goes out under a short header
naming the job. A failure is told to the user in plain words (bot/errors.py) and recorded.

Delivery is exactly once per due time, except in the window between Telegram accepting the
message and the scheduler recording it (memory/job_runs.py); a task's answer of several
messages is sent again whole if the process dies between them.
"""

from __future__ import annotations

import html
import logging

from telegram import Bot
from telegram.error import TelegramError

from agent import Agent, Turn
from agent.schedule_tools import missed_notice
from bot import delivery, long_answer
from bot.access import AccessList
from bot.errors import words_for
from memory.schedules import Job, Run

log = logging.getLogger(__name__)

TITLE_CHARS = 80


class JobRefused(Exception):
    """The job's owner may no longer use the bot."""


def title(job: Job) -> str:
    """A job's text on one short line, for headers and lists."""
    text = " ".join(job.text.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"


class JobFiring:
    """The bot's side of the scheduler: ``fire`` and ``missed``."""

    def __init__(self, bot: Bot, agent: Agent, access: AccessList, long_answer_messages: int) -> None:
        self._bot = bot
        self._agent = agent
        self._access = access
        self._long_answer_messages = long_answer_messages

    async def fire(self, run: Run) -> int | None:
        job = run.job
        if not self._access.allows(job.user_id):
            raise JobRefused(f"user {job.user_id} is no longer allowed")
        if job.kind == "reminder":
            text = f"⏰ {html.escape(job.text, quote=False)}"
            message = await delivery.send_text(
                self._bot, job.chat_id, text, html=True, thread_id=job.thread_id
            )
            return message.message_id
        return await self._run_task(job)

    async def _run_task(self, job: Job) -> int | None:
        turn = Turn(
            session_key=f"tg:{job.chat_id}:job{job.id}",
            text=job.text,
            user_id=job.user_id,
            is_admin=self._access.is_admin(job.user_id),
            telegram_chat_id=job.chat_id,
            timezone=job.timezone,  # the prompt's time in the zone the job runs in, as in the chat
        )
        try:
            reply = await self._agent.reply(turn)
        except Exception as exc:
            log.warning("job %s failed: %r", job.id, exc)
            await self._tell(job, f"⚠️ Job #{job.id} ({title(job)}) could not run: {words_for(exc)}")
            raise
        header = f"✅ <b>Job #{job.id}</b>: {html.escape(title(job), quote=False)}"
        chunks = [header, *long_answer.parts(reply.text, self._long_answer_messages)]
        sent = await delivery.send_chunks(self._bot, job.chat_id, chunks, thread_id=job.thread_id)
        return next((i for i in reversed(sent) if i is not None), None)

    async def missed(self, run: Run) -> None:
        """Tell the user about a run that was not fired (missed while down, or given up)."""
        if self._access.allows(run.job.user_id):
            await self._tell(run.job, missed_notice(run))

    async def _tell(self, job: Job, text: str) -> None:
        try:
            await delivery.send_text(self._bot, job.chat_id, text, thread_id=job.thread_id)
        except TelegramError as exc:
            log.warning("job %s: could not tell the user (%s)", job.id, exc)
