"""The Store: the database and the repositories built on it."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy import text

from memory.conversations import Conversations
from memory.db import Database
from memory.episodes import Episodes
from memory.facts import Facts
from memory.job_runs import JobRuns
from memory.kv import KeyValues
from memory.recall import Recalled, two_phase_recall
from memory.schedules import Schedules
from memory.updates import UpdateLedger
from memory.usage import UsageLog
from memory.users import Users
from memory.vectors import Vectors


class Store:
    """Owns the database's connections; use as ``async with open_store(url) as store``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = Users(self.db)
        self.conversations = Conversations(self.db)
        self.updates = UpdateLedger(self.db)
        self.usage = UsageLog(self.db)
        self.kv = KeyValues(self.db)
        self.vectors = Vectors(self.db)  # off until agent/factory.py attaches an embedder
        self.episodes = Episodes(self.db, on_forget=self.vectors.drop)
        self.facts = Facts(self.db)
        self.schedules = Schedules(self.db)  # reminders and scheduled tasks, per user
        self.job_runs = JobRuns(self.db)  # their firings (agent/scheduler.py)

    async def recall(self, owner: str, query: str, **kw: Any) -> list[Recalled]:
        """:func:`memory.recall.two_phase_recall` on this store."""
        return await two_phase_recall(self, owner, query, **kw)

    async def database_bytes(self) -> int | None:
        """Size on disk of the database: an SQLite file with its WAL, or PostgreSQL's
        ``pg_database_size``; None when it cannot be told (SQLite in memory)."""
        path = self.db.sqlite_path
        if self.db.dialect == "postgresql":
            async with self.db.connection() as conn:
                size = await conn.scalar(text("SELECT pg_database_size(current_database())"))
            return None if size is None else int(size)
        if path is None or not path.exists():
            return None
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    async def aclose(self) -> None:
        await self.db.aclose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def open_store(url: str) -> Store:
    """A Store on ``url``; the schema must already be migrated (``memory.migrate``)."""
    return Store(Database(url))
