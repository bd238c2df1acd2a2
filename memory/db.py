"""Engine and session factory. The SQLite pragmas live here and nowhere else.

SQLite statements run on the event loop's thread. aiosqlite hands each call (cursor, execute,
fetch, close, commit: four to eight per transaction) to a worker thread and back; measured
here, that hand-off costs 0.3-0.6 ms, while our statements take 20-50 µs. So the engine's
aiosqlite connection executes in place (:class:`InlineConnection`): the ~24 driver calls of a
turn cost the statements' own time instead of 7-14 ms of hand-offs (SQLAlchemy's own Python,
~0.5 ms a statement, remains). The one wait that can be long is another
*process* holding SQLite's write lock (``busy_timeout``); our own writers never collide, as the
pool has a single connection.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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


def insert_on_conflict(conn: AsyncConnection, table: Any) -> Any:
    """``insert(table)`` with ``on_conflict_do_nothing/do_update`` (SQLite, PostgreSQL)."""
    if conn.dialect.name == "postgresql":  # imported only here: the dialect costs ~40 ms
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
