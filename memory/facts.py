"""Facts: durable statements about an owner, distilled from their turns (agent/consolidation.py).

A fact is an episode whose speaker is ``fact``: it is recalled like any turn, listed by
``/memory`` and deleted by ``/forget``. Its ``meta`` names the turns it came from
(``sources``), so forgetting one of those turns forgets the facts drawn from it too: a fact
must not keep what its owner asked to delete. A new fact that contradicts an old one
supersedes it: the old one is deleted in the same transaction that stores the new one.

How far an owner's turns have been consolidated is kept in the ``kv`` table
(``consolidated:<owner>``), written in that transaction as well, so a crash in between never
distils the same turns twice or skips any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select

from memory.connection import Conn
from memory.db import Database, insert_on_conflict
from memory.episodes import FACT, VIEW_COLUMNS, insert_episodes, view_of
from memory.models import Episode, KeyValue
from memory.types import EpisodeView, NewEpisode

_TURNS_AFTER = (
    select(*VIEW_COLUMNS)
    .where(
        Episode.owner_key == bindparam("owner"),
        Episode.id > bindparam("after"),
        Episode.speaker != FACT,
    )
    .order_by(Episode.id)
    .limit(bindparam("limit"))
)
_TURNS_PENDING = select(func.count()).where(
    Episode.owner_key == bindparam("owner"), Episode.id > bindparam("after"), Episode.speaker != FACT
)
_FACTS = (
    select(*VIEW_COLUMNS)
    .where(Episode.owner_key == bindparam("owner"), Episode.speaker == FACT)
    .order_by(Episode.id.desc())
    .limit(bindparam("limit"))
)
_DELETE_FACTS = delete(Episode).where(
    Episode.owner_key == bindparam("owner"),
    Episode.speaker == FACT,
    Episode.id.in_(bindparam("ids", expanding=True)),
)


def mark_key(owner: str) -> str:
    return f"consolidated:{owner}"


@dataclass(frozen=True, slots=True)
class NewFact:
    text: str
    sources: tuple[int, ...]
    supersedes: tuple[int, ...] = ()


class Facts:
    """An owner's facts and the turns not yet consolidated; reachable as ``store.facts``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def mark(self, owner: str) -> int:
        """The id of the last turn consolidated for ``owner`` (0: none yet)."""
        async with self._db.connection() as conn:
            row = (await conn.execute(select(KeyValue.value).where(KeyValue.key == mark_key(owner)))).first()
        return int(row[0]) if row is not None and isinstance(row[0], int) else 0

    async def pending(self, owner: str, after: int) -> int:
        """How many of ``owner``'s turns came after episode ``after``."""
        async with self._db.connection() as conn:
            return int(await conn.scalar(_TURNS_PENDING, {"owner": owner, "after": after}) or 0)

    async def turns_after(self, owner: str, after: int, limit: int) -> list[EpisodeView]:
        """``owner``'s turns (not facts) after episode ``after``, oldest first."""
        async with self._db.connection() as conn:
            rows = (await conn.execute(_TURNS_AFTER, {"owner": owner, "after": after, "limit": limit})).all()
        return [view_of(row) for row in rows]

    async def current(self, owner: str, limit: int = 50) -> list[EpisodeView]:
        """``owner``'s newest facts, newest first."""
        async with self._db.connection() as conn:
            rows = (await conn.execute(_FACTS, {"owner": owner, "limit": limit})).all()
        return [view_of(row) for row in rows]

    async def save(self, owner: str, facts: Sequence[NewFact], *, through: int) -> list[int]:
        """Store ``facts`` (deleting the owner's facts they supersede) and move the mark to
        ``through``, in one transaction; the new facts' ids."""
        superseded = sorted({old for fact in facts for old in fact.supersedes})
        items = [
            NewEpisode(
                text=fact.text,
                speaker=FACT,
                meta={"kind": FACT, "sources": list(fact.sources), "supersedes": list(fact.supersedes)},
            )
            for fact in facts
        ]
        async with self._db.transaction() as conn:
            if superseded:
                await conn.execute(_DELETE_FACTS, {"owner": owner, "ids": superseded})
            ids = await insert_episodes(conn, owner, items)
            await _set_mark(conn, owner, through)
        return ids


async def _set_mark(conn: Conn, owner: str, through: int) -> None:
    upsert = insert_on_conflict(conn.dialect.name, KeyValue.__table__)
    statement = upsert.values(key=mark_key(owner), value=through)
    statement = statement.on_conflict_do_update(
        index_elements=[KeyValue.key], set_={"value": through, "updated_at": func.now()}
    )
    await conn.execute(statement)
