"""Engine, connections and transactions. The SQLite pragmas live here and nowhere else.

SQLite statements run on the event loop's thread. aiosqlite hands each call (cursor, execute,
fetch, close, commit: four to eight per transaction) to a worker thread and back; measured
here, that hand-off costs 0.3-0.6 ms, while our statements take 20-50 µs. So the engine's
aiosqlite connection executes in place (:class:`InlineConnection`): the ~24 driver calls of a
turn cost the statements' own time instead of 7-14 ms of hand-offs (SQLAlchemy's own Python
remains: ~0.1-0.2 ms a statement built once, more for one built per call). The one wait that
can be long is another
*process* holding SQLite's write lock (``busy_timeout``); our own writers never collide, as they
share a single connection (:class:`Database`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from memory._url import sqlite_path

BUSY_TIMEOUT_MS = 5_000


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection, with each call run in place instead of in its thread.

    The thread still runs (aiosqlite connects and closes through it, and SQLAlchemy queues the
    odd call on it directly); the connection allows use from the loop's thread.
    """

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


async def _connect_inline(path: Path) -> InlineConnection:
    connection = InlineConnection(partial(sqlite3.connect, str(path), check_same_thread=False), 64)
    connection._thread.daemon = True  # as SQLAlchemy does: never hold up interpreter exit
    await connection
    return connection


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout waits out a concurrent writer
    # instead of failing at once; SQLite leaves foreign keys off unless asked per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets its pragmas on every connection."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has a single writer, and two of our connections writing at
        # once would make one sleep in SQLite's busy handler (milliseconds per collision, on
        # every message). Queued in asyncio instead, each transaction waits only for the last.
        if make_url(url).get_driver_name() == "aiosqlite":
            kwargs.setdefault("async_creator", partial(_connect_inline, path))
        if "poolclass" not in kwargs:
            # Every use is a context manager that commits or rolls back itself, so the pool's
            # extra rollback on return would be one more driver call per transaction for nothing.
            kwargs = {"pool_size": 1, "max_overflow": 0, "pool_reset_on_return": None, **kwargs}
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def insert_on_conflict(dialect: str, table: Any) -> Any:
    """``insert(table)`` with ``on_conflict_do_nothing/do_update`` (SQLite, PostgreSQL)."""
    if dialect == "postgresql":  # imported only here: the dialect costs ~40 ms
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


class Database:
    """Transactions (Core) and ORM sessions on the store's engine.

    SQLite has one writer, and its statements run on the loop's thread: two of our connections
    writing at once would make one sleep in SQLite's busy handler *on that thread*, stalling
    everything. So SQLite gets one connection, kept open, and an asyncio lock takes turns on it.
    Kept, not checked out of the pool per transaction: a checkout and return cost ~0.25 ms,
    more than most of our statements (measured with four transactions a message). Other
    databases take a pooled connection per use.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._kept: AsyncConnection | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection to use alone until the block ends (no transaction begun)."""
        if self._lock is None:
            async with self.engine.connect() as conn:
                yield conn
            return
        async with self._lock:
            conn = await self._kept_connection()
            try:
                yield conn
            finally:
                if conn.in_transaction():  # a read that began one: never leave it open
                    await conn.rollback()

    async def _kept_connection(self) -> AsyncConnection:
        kept = self._kept
        if kept is not None and not (kept.closed or kept.invalidated):
            return kept
        if kept is not None:  # broken (e.g. the file vanished): open a new one
            await kept.close()
        self._kept = await self.engine.connect()
        return self._kept

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction: committed when the block ends, rolled back on error."""
        async with self.connection() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session in a transaction: committed when the block ends, rolled back on error."""
        async with self.connection() as conn:
            async with AsyncSession(bind=conn, expire_on_commit=False) as db, db.begin():
                yield db

    async def aclose(self) -> None:
        if self._lock is not None:
            async with self._lock:
                if self._kept is not None:
                    await self._kept.close()
                    self._kept = None
        await self.engine.dispose()
