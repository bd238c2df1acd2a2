"""Engine and session factory. The SQLite pragmas live here and nowhere else."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from memory._url import sqlite_path

BUSY_TIMEOUT_MS = 5_000


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
        if "poolclass" not in kwargs:
            # Every use is a context manager that commits or rolls back itself, so the pool's
            # extra rollback on return would only cost a round trip to the driver's thread.
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
