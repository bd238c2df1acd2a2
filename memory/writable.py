"""Whether omni can write to its database: one write in a transaction that is rolled back.

``omni doctor`` asks, so that a read-only file, folder or role is found before the bot fails
mid-chat. Nothing is committed, so the check changes nothing.

SQLite is probed with the stdlib (no SQLAlchemy import), and may be probed before its schema
is read: a folder SQLite cannot write to also hides the schema from readers (WAL needs its
``-shm`` file there), so this names the real cause. Other databases rewrite the Alembic stamp
with its own value; call it on one that has a stamp.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from memory._url import describe, sqlite_path
from memory.errors import StoreError, StoreUnavailable

# A table created and rolled back: a real write (SQLite's BEGIN IMMEDIATE alone succeeds on a
# read-only file), which touches no data of ours.
_PROBE = "CREATE TABLE omni_write_probe (x INTEGER)"
_BUSY_TIMEOUT_S = 5  # memory.db.BUSY_TIMEOUT_MS, not imported: that module loads SQLAlchemy


def check_writable(url: str) -> None:
    """Return if the database at ``url`` takes a write; raise a :class:`StoreError` saying
    why not (read-only file, folder or file system, locked, not a database, refused)."""
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite(url, path)
    else:
        asyncio.run(_check_server(url))


def _check_sqlite(url: str, path: Path) -> None:
    try:
        # mode=rw never creates the file; isolation_level=None leaves transactions to us.
        uri = f"{path.resolve().as_uri()}?mode=rw"
        with closing(sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")  # the write lock: waits out another writer as omni would
            try:
                conn.execute(_PROBE)
            finally:
                conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise _sqlite_problem(url, path, exc) from exc


def _sqlite_problem(url: str, path: Path, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorname", "") or ""
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        from memory.db import locked_error

        return locked_error(url)
    if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
        if code == "SQLITE_READONLY_DIRECTORY" or not os.access(path.parent, os.W_OK | os.X_OK):
            return StoreUnavailable(
                f"the folder {path.parent} is not writable: SQLite writes its journal beside {path.name}"
            )
        if _read_only_mount(path):
            return StoreUnavailable(f"{path} is on a read-only file system")
        if not os.access(path, os.W_OK):
            return StoreUnavailable(f"{path} is read-only (no write permission on the file)")
        return StoreUnavailable(f"{path} cannot be written ({code})")
    if code == "SQLITE_NOTADB":
        return StoreUnavailable(f"{path} is not an SQLite database")
    if code == "SQLITE_FULL":
        return StoreUnavailable(f"the disk holding {path} is full")
    # SQLite's own words name no secret (an SQLite URL has none); they say what went wrong.
    return StoreUnavailable(f"{path} cannot be written: {exc} ({code or type(exc).__name__})")


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


async def _check_server(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from memory.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            try:
                await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
            finally:
                await transaction.rollback()
    except (SQLAlchemyError, OSError) as exc:
        # The driver's text may quote the URL; its own error class says enough (e.g.
        # ReadOnlySQLTransactionError, InsufficientPrivilegeError), under SQLAlchemy's wrappers.
        cause: BaseException = getattr(exc, "orig", None) or exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise StoreUnavailable(f"{describe(url)} cannot be written ({type(cause).__name__})") from exc
    finally:
        await engine.dispose()
