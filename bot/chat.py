"""Conversations: one worker per chat, so chats run side by side and each keeps its order.

A handler never waits for the LLM: it queues a job on its chat's worker and returns, so PTB
moves on to the next update (another chat's, or a /stop). The worker runs that chat's jobs one
at a time, in arrival order, each as its own task so /stop can cancel the reply being worked on.
Workers exist only while their chat has work, and each queue is bounded. A forum's topics are
separate conversations (bot/topics.py) with a worker each: a slow answer in one topic does not
hold up the others. (Across several processes a chat's updates still take turns, topics
included: the ledger orders them by chat.)

Each queued update is closed in the ledger in one place, ``ChatRouter._settle``, when its job
ends: answered, stopped, or failed; a job that delivers an answer closes it with the delivery
(``delivery.deliver``, one transaction), and a shutdown leaves it open to be replayed.
Updates handled on the spot (commands answered at once) are closed by ``on_handled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import TelegramError

from agent import Turn
from agent.types import Image
from bot import delivery, long_answer
from bot.context import OmniContext
from bot.status import StatusLine
from bot.stream import AnswerStream
from bot.topics import Place, place_of
from memory.locks import ConversationLocks
from memory.types import UpdateStatus
from memory.updates import UpdateLedger
from omni.logging import bind

log = logging.getLogger(__name__)

TYPING_EVERY_S = 4.0  # Telegram shows "typing" for 5 s per action
# Replies quicker than this arrive before "typing" would be seen: skip the extra request.
TYPING_GRACE_S = 0.3
MAX_QUEUED_PER_CHAT = 20
TURN_POLL_S = 0.05  # while an older update of the chat is with another worker
NO_ANSWER = "(I have no answer to that.)"
BUSY_NOTICE = "I'm still working through your earlier messages; please wait a moment before sending more."


class Closed(enum.Enum):
    """A job that closed its update itself, or must leave it: the router does not close it."""

    BY_DELIVERY = "with the answer's delivery, in one transaction (delivery.deliver)"
    ELSEWHERE = "by another worker, which took the update over"


# A job's work; None: done, the router closes the update as answered.
Work = Callable[[], Coroutine[Any, Any, Closed | None]]


@dataclass(slots=True)
class Job:
    """One unit of a chat's work: answering a message, or a command that must keep order."""

    update: Update
    work: Work


class _OlderFirst(Exception):
    """An older update of the chat joined the queue while a younger one waited for its turn."""


@dataclass(slots=True)
class _Worker:
    jobs: deque[Job] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    current: asyncio.Task[Closed | None] | None = None
    stopped: bool = False  # the current job was cancelled by /stop (not by shutdown)
    delivering: bool = False  # the current job's answer is being sent: too late to /stop it

    def queue(self, job: Job) -> None:
        """Queue ``job`` in update order: one replayed from another worker goes before younger ones."""
        later = next(
            (i for i, queued in enumerate(self.jobs) if queued.update.update_id > job.update.update_id), None
        )
        self.jobs.insert(len(self.jobs) if later is None else later, job)


class ChatRouter:
    """The per-chat workers of this process."""

    def __init__(
        self,
        ledger: UpdateLedger,
        on_failure: Callable[[Update, BaseException], Awaitable[None]],
        locks: ConversationLocks | None = None,
        owner: str = "",
    ) -> None:
        self._ledger = ledger
        self._locks = locks
        self._owner = owner  # this worker, as the ledger names its claims
        self._workers: dict[Place, _Worker] = {}
        self.queued_ids: set[int] = set()  # updates whose job closes them in the ledger
        self._latest_message: dict[Place, int] = {}  # newest incoming message id per conversation
        self._on_failure = on_failure
        self._closing = False

    def note_incoming(self, place: Place, message_id: int) -> None:
        self._latest_message[place] = max(message_id, self._latest_message.get(place, 0))

    def newer_than(self, place: Place, message_id: int) -> bool:
        """Whether messages arrived in the conversation after ``message_id`` (then we quote it)."""
        return self._latest_message.get(place, 0) > message_id

    def submit(self, place: Place, job: Job) -> bool:
        """Queue ``job`` behind the conversation's earlier work; False when its queue is full."""
        if self._closing:
            return False
        worker = self._workers.setdefault(place, _Worker())
        if len(worker.jobs) >= MAX_QUEUED_PER_CHAT:
            return False
        worker.queue(job)
        self.queued_ids.add(job.update.update_id)
        if worker.task is None:
            worker.task = asyncio.create_task(self._run(place, worker), name=f"chat-{place.session_key}")
        return True

    async def _run(self, place: Place, worker: _Worker) -> None:
        try:
            while worker.jobs:
                job = worker.jobs.popleft()
                # This task was created under the update that woke the worker: log as this one's.
                bind(update_id=job.update.update_id)
                worker.stopped = worker.delivering = False
                worker.current = asyncio.create_task(self._in_turn(place, job, worker))
                try:
                    await self._settle(job, worker, worker.current)
                except _OlderFirst:
                    worker.queue(job)  # back in the queue, behind the older one
                finally:
                    worker.current = None
                    self.queued_ids.discard(job.update.update_id)
        finally:
            if worker.current is not None:
                worker.current.cancel()
            self._workers.pop(place, None)
            self._latest_message.pop(place, None)

    async def _settle(self, job: Job, worker: _Worker, running: asyncio.Task[Closed | None]) -> None:
        """Await a job and close its update in the ledger: the one place a queued update is
        closed. Answered (unless its delivery or another worker closes it), stopped by /stop, or
        failed (the user told by bot/errors.py); a shutdown leaves it open, to be replayed."""
        outcome: tuple[UpdateStatus, str | None] | None = None
        try:
            closed = await running
            outcome = ("answered", None) if closed is None else None
        except asyncio.CancelledError:
            if not worker.stopped:
                raise  # shutdown, not /stop
            outcome = ("ignored", "stopped")
        except _OlderFirst:
            raise  # not run yet: it goes back in the queue
        except Exception as exc:  # supervisor: one job's failure must not kill the chat
            outcome = ("failed", type(exc).__name__)
            await self._on_failure(job.update, exc)
        finally:
            if outcome is not None:
                await self._close(job.update.update_id, *outcome)

    async def _close(self, update_id: int, status: UpdateStatus, error: str | None) -> None:
        """Close a job's update. The database may be what failed (a full disk): the update then
        stays open, to be replayed, and the chat's later messages are still answered."""
        try:
            await self._ledger.finish(update_id, status, error=error)
        except Exception as exc:
            log.warning("update %s stays open (%s); it is replayed at the next start", update_id, exc)

    @property
    def shared(self) -> bool:
        """Whether other workers may answer this bot's chats too (a PostgreSQL database)."""
        return self._locks is not None and self._locks.shared

    async def _in_turn(self, place: Place, job: Job, worker: _Worker) -> Closed | None:
        """Run ``job`` when it is the chat's turn across workers: after the older updates of the
        chat that other workers hold, and never beside another worker's job for the chat. One
        worker alone (SQLite) has its queue for that."""
        if self._locks is None or not self._locks.shared:
            return await job.work()
        update_id = job.update.update_id
        # Polled: the older update is another process's, which can signal us only through the
        # database. Our own older ones are in our queue, ordered there.
        while True:
            if any(queued.update.update_id < update_id for queued in worker.jobs):
                raise _OlderFirst  # one taken over from another worker while we waited
            if await self._ledger.turn_of(place.chat_id, update_id, self._owner):
                break
            await asyncio.sleep(TURN_POLL_S)
        async with self._locks.hold(place.session_key):
            return await job.work()

    def stop(self, place: Place) -> bool:
        """Cancel the job being worked on in the conversation; False when there is none."""
        worker = self._workers.get(place)
        if worker is None or worker.current is None or worker.current.done() or worker.delivering:
            return False
        worker.stopped = True
        worker.current.cancel()
        return True

    def delivering(self, place: Place) -> None:
        """The conversation's answer is ready and being sent: /stop no longer applies to it."""
        worker = self._workers.get(place)
        if worker is not None:
            worker.delivering = True

    def busy(self) -> int:
        return sum(len(w.jobs) + (w.current is not None) for w in self._workers.values())

    async def drain(self, within: float) -> None:
        """Let queued and running jobs finish for up to ``within`` s, then cancel the rest."""
        self._closing = True
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "cancelled %d chats still working at shutdown; they are replayed at start", len(pending)
            )
            await asyncio.wait(pending, timeout=2)


async def _keep_typing(bot: Bot, place: Place) -> None:
    await asyncio.sleep(TYPING_GRACE_S)
    while True:
        with contextlib.suppress(TelegramError):
            await bot.send_chat_action(place.chat_id, ChatAction.TYPING, message_thread_id=place.thread_id)
        await asyncio.sleep(TYPING_EVERY_S)


async def answer(
    update: Update,
    context: OmniContext,
    text: str,
    *,
    images: tuple[Image, ...] = (),
    preface: str | None = None,
) -> Closed:
    """Ask the agent and send its reply; the delivery closes the update. ``images`` go to the
    model with ``text``; ``preface`` (HTML, one message) is sent before the answer (bot/media.py:
    a voice note's transcript)."""
    message, user = update.message, update.effective_user
    assert message is not None and user is not None  # the gate lets only messages with a sender in
    deps = context.deps
    chat_id = message.chat.id
    place = place_of(message)  # a forum's topic is a conversation of its own
    turn = Turn(
        session_key=place.session_key,
        text=text,
        user_id=user.id,
        user_name=user.full_name,
        is_admin=deps.access.is_admin(user.id),
        telegram_chat_id=chat_id,
        update_id=update.update_id,
        message_id=message.message_id,
        images=images,
        timezone=await deps.schedules.user_zone(user.id) if deps.schedules is not None else None,
    )
    await deps.access.seen(user.id, user.full_name, user.username)  # before the agent: chats.owner_id
    typing = asyncio.create_task(_keep_typing(context.bot, place))
    preview = await _preview(update, context, place) if deps.settings.stream_answers else None
    status = StatusLine(context.bot, chat_id, thread_id=place.thread_id) if preview is None else None
    try:
        # An OmniError goes up to the chat's worker: bot/errors.py tells the user in its words,
        # and the worker closes the update.
        reply = await deps.agent.reply(turn, preview or status, stream=preview is not None)
    except BaseException:  # failed, stopped or shut down: no half answer stays in the chat
        if preview is not None:
            await preview.discard()
        raise
    finally:
        typing.cancel()
        if status is not None:
            await status.close()
    edit = await preview.close() if preview is not None else None
    if deps.chats.shared and not await deps.store.updates.still_ours(update.update_id, deps.boot_id):
        # Our lease ran out while we worked (a stall) and another worker took the update over:
        # it answers, not us.
        log.warning("update %s was taken over by another worker; not sending our answer", update.update_id)
        return Closed.ELSEWHERE
    deps.chats.delivering(place)
    quote = message.message_id if deps.chats.newer_than(place, message.message_id) else None
    # A long answer becomes a summary and a .md document (deterministic, like the chunks).
    chunks = long_answer.parts(reply.text, deps.settings.long_answer_messages) or [NO_ANSWER]
    if preface is not None:
        chunks = [preface, *chunks]
    # Each chunk is recorded as Telegram acknowledges it; a replay sends only the rest.
    await delivery.deliver(
        context.bot,
        deps.store.updates,
        chat_id,
        chunks,
        update_id=update.update_id,
        answer_id=reply.message_id,
        replayed=reply.replayed,
        reply_to=quote,
        thread_id=place.thread_id,
        edit=edit,
    )
    if edit is not None:
        await deps.store.kv.delete(_preview_key(update.update_id))
    return Closed.BY_DELIVERY


def _preview_key(update_id: int) -> str:
    return f"preview:{update_id}"  # store.kv: the preview message of an update being answered


async def _preview(update: Update, context: OmniContext, place: Place) -> AnswerStream:
    """The streamed preview of the answer to ``update``. A group's is a message, which an
    earlier attempt at this update may have left (a process killed mid-stream): resumed."""
    message = update.message
    assert message is not None
    deps = context.deps
    private = message.chat.type == ChatType.PRIVATE
    key = _preview_key(update.update_id)
    left = None if private else await deps.store.kv.get(key)

    async def remember(message_id: int | None) -> None:
        if message_id is None:
            await deps.store.kv.delete(key)
        else:
            await deps.store.kv.set(key, message_id)

    return AnswerStream(
        context.bot,
        place,
        private=private,
        draft_id=message.message_id,
        quote=lambda: message.message_id if deps.chats.newer_than(place, message.message_id) else None,
        message_id=left if isinstance(left, int) else None,
        on_message=remember,
    )


def _text_for_agent(update: Update, bot_username: str | None) -> str:
    message = update.message
    assert message is not None
    text = message.text or ""
    if message.chat.type != ChatType.PRIVATE and bot_username:
        text = text.replace(f"@{bot_username}", "").strip()
    return text


async def on_text(update: Update, context: OmniContext) -> None:
    """A text message: queue the answer behind the chat's earlier messages."""
    message = update.message
    assert message is not None
    text = _text_for_agent(update, context.bot.username)
    if not text.strip():
        return
    await enqueue(update, context, lambda: answer(update, context, text))


async def enqueue(update: Update, context: OmniContext, work: Work) -> None:
    """Run ``work`` in the chat's order; a full queue gets a short notice instead."""
    message = update.message
    assert message is not None
    chats = context.deps.chats
    place = place_of(message)
    chats.note_incoming(place, message.message_id)
    if not chats.submit(place, Job(update, work)):
        await delivery.send_text(
            context.bot,
            message.chat.id,
            BUSY_NOTICE,
            reply_to=message.message_id,
            thread_id=place.thread_id,
        )


async def on_handled(update: Update, context: OmniContext) -> None:
    """Group 1, after the handlers: close updates answered on the spot (not queued ones)."""
    deps = context.deps
    if update.update_id in deps.chats.queued_ids:
        return
    await deps.store.updates.finish(update.update_id, "answered")
    user = update.effective_user
    if user is not None:
        await deps.access.seen(user.id, user.full_name, user.username)
