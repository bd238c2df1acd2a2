"""Who may talk to the bot, and the gate every update passes first (group -1).

Secure by default: admins (``OMNI_ADMIN_IDS``) always, users allowed by the environment
(``OMNI_ALLOWED_IDS`` or ``*``) or by an admin in chat (``/allow``), unless an admin said
``/deny`` (which beats the environment; admins cannot be denied). Everyone else gets one short
refusal with their id, and nothing of theirs is stored, logged at INFO, or sent to the LLM.
"""

from __future__ import annotations

import logging
import time
from typing import NoReturn

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.context import OmniContext
from memory.store import Store
from memory.types import Access
from omni.settings import Settings

log = logging.getLogger(__name__)

# A stranger who keeps writing gets the refusal again only after this long.
REFUSAL_INTERVAL_S = 30.0
ANSWER_ALL_KEY = "groups.answer_all"  # kv: the group chat ids set to /mode all


class _Refusals:
    """When each stranger was last refused (bounded: old entries are dropped)."""

    def __init__(self) -> None:
        self._last: dict[int, float] = {}

    def due(self, user_id: int) -> bool:
        now = time.monotonic()
        if len(self._last) > 10_000:
            self._last = {u: t for u, t in self._last.items() if now - t < REFUSAL_INTERVAL_S}
        if now - self._last.get(user_id, -REFUSAL_INTERVAL_S) < REFUSAL_INTERVAL_S:
            return False
        self._last[user_id] = now
        return True


class AccessList:
    """Access decisions: the environment plus admins' persisted /allow and /deny, cached."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._decisions: dict[int, Access] = {}
        self._answer_all: frozenset[int] = frozenset()  # groups set to /mode all
        self._seen: set[int] = set()
        self.refusals = _Refusals()

    def is_admin(self, user_id: int) -> bool:
        return user_id in self._settings.admin_ids

    async def load(self) -> int:
        """Read every admin decision into memory (at start and on /reload); how many there are."""
        self._decisions = dict(await self._store.users.decisions())
        self._answer_all = frozenset(await self._store.kv.get(ANSWER_ALL_KEY, []))
        return len(self._decisions)

    def answers_all(self, chat_id: int) -> bool:
        """Whether the group ``chat_id`` is answered on every message (``/mode all``), not only
        when it mentions or replies to the bot."""
        return chat_id in self._answer_all

    async def set_answer_all(self, chat_id: int, on: bool) -> None:
        """Persist a group's mode (it survives restarts; other workers read it at /reload)."""
        chats = self._answer_all | {chat_id} if on else self._answer_all - {chat_id}
        await self._store.kv.set(ANSWER_ALL_KEY, sorted(chats))
        self._answer_all = chats

    def allows(self, user_id: int) -> bool:
        """Decided in memory: the gate runs for every update and must not wait for the database."""
        if self.is_admin(user_id):
            return True
        decision = self._decisions.get(user_id)
        if decision is not None:
            return decision == "allowed"
        return self._settings.allow_everyone or user_id in self._settings.allowed_ids

    async def decide(self, user_id: int, access: Access, *, by: int) -> None:
        """Persist an admin's decision (it survives restarts)."""
        await self._store.users.set_access(user_id, access, by=by)
        self._decisions[user_id] = access

    async def seen(self, user_id: int, display_name: str | None, username: str | None) -> None:
        """Create or refresh the user's row, once per process (it feeds /users)."""
        if user_id in self._seen:
            return
        self._seen.add(user_id)  # first, so a concurrent handler of the same user does not insert too
        try:
            await self._store.users.touch(
                user_id, display_name=display_name, username=username, is_admin=self.is_admin(user_id)
            )
        except BaseException:
            self._seen.discard(user_id)
            raise


def is_addressed(
    message: Message, bot_username: str | None, bot_id: int, *, every_message: bool = False
) -> bool:
    """In a group, whether the message is for us: a command, an @mention, or a reply to us; with
    ``every_message`` (``/mode all``) anything but another bot's command."""
    if message.chat.type == ChatType.PRIVATE:
        return True
    text = message.text or message.caption or ""
    if text.startswith("/"):
        command = text.split()[0]
        return "@" not in command or (bot_username is not None and command.endswith(f"@{bot_username}"))
    if every_message:
        return True
    if bot_username and f"@{bot_username}".lower() in text.lower():
        return True
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot_id


async def _refuse(message: Message, user_id: int) -> None:
    text = (
        f"Sorry, this is a private assistant and you are not on its list. "
        f"Your user id is {user_id}; an admin can let you in with /allow {user_id}."
    )
    try:
        await message.reply_text(text, do_quote=False)
    except TelegramError as exc:
        log.warning("could not send a refusal: %s", exc)


async def _drop(update: Update, context: OmniContext) -> NoReturn:
    """Stop here. The webhook recorded every update before acknowledging it (and a replay
    brings back what it recorded): what the bot does not act on leaves the ledger, so nothing of
    a stranger's stays and nothing is replayed again. Without such a row this deletes nothing."""
    await context.deps.store.updates.forget(update.update_id)
    raise ApplicationHandlerStop


async def gate(update: Update, context: OmniContext) -> None:
    """Let through only what we act on, from people who may use the bot; record it first.

    It fails closed: after an error in a handler PTB goes on to the next group, so an update
    the gate could not check or record (the database full or locked) would be answered without
    a ledger entry, or a stranger's reach the LLM. Such an update stops here, the error reported
    the usual way (bot/errors.py: the user is told, in plain words).
    """
    try:
        await _admit(update, context)
    except ApplicationHandlerStop:
        raise
    except Exception as exc:  # whatever went wrong, nothing unchecked goes further
        await context.application.process_error(update, exc)
        raise ApplicationHandlerStop from exc


async def _admit(update: Update, context: OmniContext) -> None:
    message = update.message
    user = update.effective_user
    if message is None or user is None or user.is_bot:
        # Edits, channel posts, member changes, callback queries (handled in group -2 before
        # this runs)...: nothing to answer.
        await _drop(update, context)
    deps = context.deps
    bot_username, bot_id = context.bot.username, context.bot.id
    called = is_addressed(message, bot_username, bot_id)
    every = deps.access.answers_all(message.chat.id)
    if not called and not (every and is_addressed(message, bot_username, bot_id, every_message=True)):
        await _drop(update, context)
    if not deps.access.allows(user.id):
        log.info("refused update %s from a user who is not allowed", update.update_id)
        # In a group that hears everything, only who calls on the bot is told they may not.
        if called and deps.access.refusals.due(user.id):
            await _refuse(message, user.id)
        await _drop(update, context)
    # Recorded and claimed before any work, so a crash from here on is replayed at start, and an
    # update seen before (re-delivered, or replayed and delivered again) is answered only once.
    if not await deps.store.updates.arrive(
        update.update_id, deps.boot_id, chat_id=message.chat.id, user_id=user.id, payload=update.to_dict()
    ):
        log.info("update %s was seen before; not answering it twice", update.update_id)
        raise ApplicationHandlerStop
