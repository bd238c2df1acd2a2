"""Episodic memory: every exchange stored as episodes of an owner, listed, rewarded, forgotten.

An owner is one memory scope, a string (the contract in CONTRACT.md / issue 13):

- a private Telegram chat: ``user:<telegram user id>``
- a group or supergroup: ``chat:<telegram chat id>`` (a group's memory is the group's)
- ``omni chat --session NAME``: ``local:<NAME>``

Recall (:mod:`memory.recall`) only ever reads one owner's episodes. Forgetting is secure on
SQLite: ``secure_delete`` (set for every connection in :mod:`memory.db`) zeroes freed pages, an
FTS5 ``optimize`` merges the index so deleted tokens leave its segments, and a
``wal_checkpoint(TRUNCATE)`` empties the write-ahead log that still held the old pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update

from memory.connection import Conn
from memory.db import Database
from memory.models import Chat, Episode, InboundUpdate, Message, Session
from memory.types import EpisodeView, NewEpisode
from memory.utility import check_reward, recalled_for_answer, reward_episodes

log = logging.getLogger(__name__)

CONTEXT_CHARS = 600  # of each neighbouring turn, indexed as an episode's context

VIEW_COLUMNS = (
    Episode.id,
    Episode.owner_key,
    Episode.speaker,
    Episode.text,
    Episode.created_at,
    Episode.q,
    Episode.recall_count,
    Episode.session_id,
    Episode.meta,
)

# Built once: the insert runs for every exchange, the others per command.
_INSERT = insert(Episode).returning(Episode.id, sort_by_parameter_order=True)
_LISTING = (
    select(*VIEW_COLUMNS)
    .where(Episode.owner_key == bindparam("owner"))
    .order_by(Episode.q.desc(), Episode.created_at.desc(), Episode.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_OWNER_COUNT = select(func.count()).select_from(Episode).where(Episode.owner_key == bindparam("owner"))
_COUNT = select(func.count()).select_from(Episode)
_FORGET_ONE = delete(Episode).where(Episode.owner_key == bindparam("owner"), Episode.id == bindparam("eid"))
FACT = "fact"  # the speaker of a fact distilled from turns (memory/facts.py)
_FACTS_OF = select(Episode.id, Episode.meta).where(
    Episode.owner_key == bindparam("owner"), Episode.speaker == FACT
)
_FORGET_MANY = delete(Episode).where(
    Episode.owner_key == bindparam("owner"), Episode.id.in_(bindparam("ids", expanding=True))
)
_FORGET_ALL = delete(Episode).where(Episode.owner_key == bindparam("owner"))
# A chat's conversations: its own key, and a forum's topics (``tg:<chat id>:<thread id>``).
_CHATS_OF_KEY = select(Chat.id, Chat.current_session_id).where(
    (Chat.key == bindparam("key")) | (func.substr(Chat.key, 1, bindparam("n")) == bindparam("topic"))
)
_CHAT_SESSIONS = select(Session.id).where(Session.chat_id == bindparam("chat_id"))
_FORGET_MESSAGES = delete(Message).where(Message.session_id.in_(_CHAT_SESSIONS.scalar_subquery()))
_FORGET_OLD_SESSIONS = delete(Session).where(
    Session.chat_id == bindparam("chat_id"), Session.id != func.coalesce(bindparam("keep"), -1)
)
_FORGET_USER_PAYLOADS = (
    update(InboundUpdate).where(InboundUpdate.user_id == bindparam("uid")).values(payload=None)
)
_FORGET_CHAT_PAYLOADS = (
    update(InboundUpdate).where(InboundUpdate.chat_id == bindparam("cid")).values(payload=None)
)
_FTS_OPTIMIZE = text("INSERT INTO episodes_fts(episodes_fts) VALUES ('optimize')")


def owner_for(user_id: int | None, chat_id: int | None, chat_is_private: bool, session_key: str) -> str:
    """The memory owner of a message: the user in a private chat, the chat in a group, and the
    session's name elsewhere (``cli:NAME`` -> ``local:NAME``; any other key is kept whole)."""
    if chat_id is not None:
        if chat_is_private and user_id is not None:
            return f"user:{user_id}"
        return f"chat:{chat_id}"
    if user_id is not None:
        return f"user:{user_id}"
    kind, _, name = session_key.partition(":")
    return f"local:{name if kind == 'cli' and name else session_key}"


def _chat_key(owner: str) -> tuple[str | None, int | None, int | None]:
    """The inverse of :func:`owner_for`: the chat key whose history belongs to ``owner``, and the
    Telegram user or chat whose stored update payloads do."""
    kind, _, name = owner.partition(":")
    if kind in ("user", "chat") and name.lstrip("-").isdigit():
        number = int(name)
        # A private chat's id is its user's id.
        return f"tg:{number}", number if kind == "user" else None, number if kind == "chat" else None
    if kind == "local" and name:
        return (name if ":" in name else f"cli:{name}"), None, None
    return None, None, None


def utc_naive(moment: datetime | None) -> datetime:
    """How times are stored: UTC without a zone (SQLite keeps no offset), microseconds kept."""
    if moment is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def view_of(row: Any) -> EpisodeView:
    """An :class:`EpisodeView` from a row of ``VIEW_COLUMNS`` (in that order)."""
    eid, owner, speaker, body, created, q, count, session_id, meta = row[:9]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return EpisodeView(
        id=eid,
        owner=owner,
        speaker=speaker,
        text=body,
        created_at=created.replace(tzinfo=UTC) if created.tzinfo is None else created,
        q=float(q),
        recall_count=int(count),
        session_id=session_id,
        meta=meta or {},
    )


def _clip(text: str) -> str:
    return text if len(text) <= CONTEXT_CHARS else text[:CONTEXT_CHARS]


def with_context(items: Sequence[NewEpisode]) -> list[NewEpisode]:
    """Fill each item's missing context with its neighbours in the same session (the turn before
    and the turn after): what makes a reply findable by the question it answers."""
    out: list[NewEpisode] = []
    for i, item in enumerate(items):
        if item.context is not None:
            out.append(item)
            continue
        near = [
            _clip(items[j].text)
            for j in (i - 1, i + 1)
            if 0 <= j < len(items) and items[j].session_id == item.session_id
        ]
        out.append(replace(item, context="\n".join(near) or None))
    return out


async def insert_episodes(conn: Conn, owner: str, items: Sequence[NewEpisode]) -> list[int]:
    """Store ``items`` as ``owner``'s episodes on ``conn`` (inside the caller's transaction)."""
    if not items:
        return []
    rows = [
        dict(
            owner_key=owner,
            session_id=item.session_id,
            speaker=item.speaker,
            text=item.text,
            context=item.context,
            meta=item.meta,
            created_at=utc_naive(item.created_at),
        )
        for item in items
    ]
    result = await conn.execute(_INSERT, rows)
    return [int(i) for i in result.scalars()]


async def _forget_facts_from(conn: Conn, owner: str, episode_id: int) -> None:
    rows = (await conn.execute(_FACTS_OF, {"owner": owner})).all()
    drawn = [row.id for row in rows if episode_id in _sources(row.meta)]
    if drawn:
        await conn.execute(_FORGET_MANY, {"owner": owner, "ids": drawn})


def _sources(meta: Any) -> list[int]:
    raw = meta.get("sources") if isinstance(meta, dict) else None
    return [i for i in raw if isinstance(i, int)] if isinstance(raw, list) else []


class Episodes:
    """An owner's episodes; reachable as ``store.episodes``."""

    def __init__(self, db: Database, on_forget: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._on_forget = on_forget  # told the owner after a forget (store.vectors drops its cache)

    async def add(
        self,
        owner: str,
        text: str,
        *,
        speaker: str,
        session_id: int | None = None,
        created_at: datetime | None = None,
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Store one episode; its id."""
        item = NewEpisode(text, speaker, session_id, created_at, meta)
        async with self._db.transaction() as conn:
            (eid,) = await insert_episodes(conn, owner, [item])
            return eid

    async def add_many(self, owner: str, items: Sequence[NewEpisode]) -> list[int]:
        """Store a run of turns in one transaction (bench ingest, imports); ids in order.

        An item without ``context`` is indexed with its neighbours of the same session."""
        async with self._db.transaction() as conn:
            return await insert_episodes(conn, owner, with_context(items))

    async def listing(self, owner: str, *, limit: int = 10, offset: int = 0) -> tuple[list[EpisodeView], int]:
        """A page of ``owner``'s episodes, most useful (q) then most recent first, and the total."""
        async with self._db.connection() as conn:
            rows = (await conn.execute(_LISTING, {"owner": owner, "limit": limit, "offset": offset})).all()
            total = await conn.scalar(_OWNER_COUNT, {"owner": owner})
        return [view_of(r) for r in rows], int(total or 0)

    async def count(self) -> int:
        """Every owner's episodes (for /status)."""
        async with self._db.connection() as conn:
            return int(await conn.scalar(_COUNT) or 0)

    async def feedback(
        self, owner: str, episode_ids: Sequence[int], reward: float, *, alpha: float = 0.2
    ) -> None:
        """Move the utility of ``owner``'s episodes toward ``reward``: ``q <- q + alpha (r - q)``."""
        check_reward(reward, alpha)
        if not episode_ids:
            return
        async with self._db.transaction() as conn:
            await reward_episodes(conn, owner, episode_ids, reward, alpha)

    async def forget(self, owner: str, episode_id: int) -> int:
        """Delete one of ``owner``'s episodes for good (0 or 1); other owners' are never touched.

        Facts drawn from it (memory/facts.py) go with it: they would keep what was forgotten."""
        async with self._db.transaction() as conn:
            deleted = (await conn.execute(_FORGET_ONE, {"owner": owner, "eid": episode_id})).rowcount
            if deleted:
                await _forget_facts_from(conn, owner, episode_id)
        if deleted:
            if self._on_forget is not None:
                self._on_forget(owner)
            await self._scrub()
        return int(deleted)

    async def forget_all(self, owner: str) -> int:
        """Delete everything kept about ``owner``: episodes, the chat's conversation history and
        the stored Telegram update payloads; then scrub the files. Returns the episodes deleted.

        The chat and its current session stay (empty), so an agent that remembers which session
        a chat is in keeps working."""
        key, user_id, chat_id = _chat_key(owner)
        async with self._db.transaction() as conn:
            deleted = int((await conn.execute(_FORGET_ALL, {"owner": owner})).rowcount)
            topic = f"{key}:"
            params = {"key": key, "topic": topic, "n": len(topic)}
            chats = (await conn.execute(_CHATS_OF_KEY, params)).all() if key else []
            for chat in chats:
                await conn.execute(_FORGET_MESSAGES, {"chat_id": chat.id})
                await conn.execute(
                    _FORGET_OLD_SESSIONS, {"chat_id": chat.id, "keep": chat.current_session_id}
                )
            if user_id is not None:
                await conn.execute(_FORGET_USER_PAYLOADS, {"uid": user_id})
            if chat_id is not None:
                await conn.execute(_FORGET_CHAT_PAYLOADS, {"cid": chat_id})
        if self._on_forget is not None:
            self._on_forget(owner)
        await self._scrub()
        return deleted

    async def _scrub(self) -> None:
        """Leave no copy of deleted text on disk (SQLite): merge the full-text index into one
        segment (dropping deleted entries), then copy the WAL into the database and truncate it."""
        if self._db.dialect != "sqlite":
            return
        async with self._db.transaction() as conn:
            await conn.execute(_FTS_OPTIMIZE)
        if not await self._db.checkpoint():  # another process reads: emptied at its next checkpoint
            log.warning("forget: the write-ahead log could not be truncated (a reader is active)")

    async def feedback_for_answer(
        self,
        owner: str,
        *,
        chat_id: int,
        telegram_message_id: int | None = None,
        reward: float,
        alpha: float = 0.2,
    ) -> int:
        """Reward the episodes recalled for one of our answers in the Telegram chat ``chat_id``:
        the answer delivered as ``telegram_message_id``, or the chat's last answer when None.
        Only ``owner``'s episodes change; returns how many did (0: no such answer among the
        chat's last ``ANSWER_LOOKBACK`` (memory/utility.py), or it recalled nothing)."""
        check_reward(reward, alpha)
        async with self._db.transaction() as conn:
            recalled = await recalled_for_answer(conn, chat_id, telegram_message_id)
            return await reward_episodes(conn, owner, recalled, reward, alpha)
