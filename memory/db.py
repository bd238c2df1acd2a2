"""Engine, connections and transactions. The SQLite pragmas live here and nowhere else.

SQLite statements run on the event loop's thread, through SQLAlchemy's sync API
(:mod:`memory.connection` says why): a statement takes tens of microseconds, while a hand-off
to a driver thread costs 0.3-0.6 ms, and the asyncio layer ~0.2 ms a one-statement transaction
(0.38 ms against 0.17 ms in place). The one wait
that can be long is another *process* holding SQLite's write lock (``busy_timeout``); our own
writers never collide, as they share a single connection (:class:`Database`).

The exception is a read that can take tens of milliseconds (recall over a long memory, loading
an owner's vectors): :meth:`Database.read` runs it on a second, read-only connection in a thread
of its own, so other chats keep moving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, NullPool, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from memory._url import describe, sqlite_path
from memory.connection import AwaitedConn, AwaitedSession, Conn, InlineConn, InlineSession, Sess
from memory.errors import StoreFull, StoreLocked, is_disk_full, is_lock_timeout

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
POOL_SIZE, POOL_OVERFLOW = 10, 40  # PostgreSQL connections per process: kept, and at most more
CHECKPOINT_EVERY = 64  # write transactions between checkpoints (each a few pages of log)

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout waits out a concurrent writer
    # instead of failing at once; SQLite leaves foreign keys off unless asked per connection.
    # secure_delete zeroes what a delete frees, so forgotten text does not linger in free pages
    # (memory/episodes.py: forget).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA secure_delete=ON")
    # SQLite would checkpoint in whichever connection commits past 1,000 pages of log: ours
    # runs on the loop's thread, where that copy held every chat for ~15 ms over a large
    # database (bench/memory_scale.py). Database checkpoints in its read thread instead.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _passive_checkpoint(conn: Connection) -> None:
    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").close()


def locked_error(url: str) -> StoreLocked:
    """The error for a database another process kept locked past our busy timeout."""
    return StoreLocked(
        f"the database {describe(url)} is locked by another process "
        f"(waited {BUSY_TIMEOUT_MS / 1000:g} s); close the program holding it "
        "(another omni, a sqlite3 shell, a backup) and try again"
    )


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` (migrations, doctor, and databases other than SQLite);
    SQLite gets its pragmas on every connection."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
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
    """Transactions (Core) and ORM sessions on the store's database.

    SQLite has one writer, and its statements run on the loop's thread: two of our connections
    writing at once would make one sleep in SQLite's busy handler *on that thread*, stalling
    everything. So SQLite gets one connection, kept open for the process, and an asyncio lock
    takes turns on it (a pool checkout and return per transaction cost ~0.25 ms, more than most
    of our statements). Other databases take a pooled async connection per use.

    Long reads go elsewhere (:meth:`read`): a second SQLite connection, read-only, used by one
    thread only (so the driver connection is never shared between threads). WAL lets it read
    beside the kept connection's writes, and it holds no transaction between reads, so it never
    keeps ``wal_checkpoint(TRUNCATE)`` (memory/episodes.py: forget) from emptying the log.
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self._lock: asyncio.Lock | None = None
        self._kept: Connection | None = None
        self._reader: Connection | None = None  # touched only by the read thread
        self._read_thread: ThreadPoolExecutor | None = None
        self._writes = 0  # since the last checkpoint
        self._checkpointing: asyncio.Task[None] | None = None
        self.sqlite_path = sqlite_path(url)  # None elsewhere, and for an in-memory SQLite
        if self.dialect == "sqlite":
            # Only the sync engine: an async one would be built (~70 ms at start) and never used.
            if self.sqlite_path is not None:
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = asyncio.Lock()
            self._sync = create_sync_engine(
                self.url.set(drivername="sqlite"),
                poolclass=NullPool,
                connect_args={"check_same_thread": False},
            )
            event.listen(self._sync, "connect", _sqlite_pragmas)
        else:
            # Each conversation being answered holds a connection for its lock (memory/locks.py)
            # besides the short ones its statements take; pre-ping: a server restart or a
            # dropped idle connection costs a reconnect, not a failed reply.
            self.engine = create_engine(
                url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=True
            )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A connection to use alone until the block ends (no transaction begun)."""
        if self._lock is None:
            async with self.engine.connect() as conn:
                yield AwaitedConn(conn)
            return
        async with self._lock:
            with self._in_place() as kept:
                yield InlineConn(kept)

    @contextmanager
    def _in_place(self) -> Iterator[Connection]:
        try:
            conn = self._kept
            if conn is None or conn.closed or conn.invalidated:
                if conn is not None:  # broken (e.g. the file vanished): open a new one
                    conn.close()
                conn = self._kept = self._sync.connect()
            try:
                yield conn
            finally:
                if conn.in_transaction():  # a read that began one, or an error: never leave it open
                    conn.rollback()
        except OperationalError as exc:
            # Another process held the write lock for all of busy_timeout: say so, and where.
            if is_lock_timeout(exc):
                raise locked_error(str(self.url)) from exc
            # The write was rolled back (above) and the file is intact: writes work again once
            # there is room (bench/faults.py, disk_full, fills a small disk to check).
            if is_disk_full(exc):
                raise StoreFull(f"the disk holding {describe(str(self.url))} is full") from exc
            raise

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` on a connection that only reads, off the event loop: for reads long
        enough (a few ms and up) that running them in place would stall other chats. The hand-off
        costs ~0.1 ms (bench/memory_scale.py), so short statements stay in place. ``work`` must
        read everything it needs before it returns (no result left open)."""
        if self._lock is None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(work)
        if self.sqlite_path is None:  # in memory: a second connection would see another database
            async with self._lock:
                with self._in_place() as kept:
                    return work(kept)
        return await asyncio.wrap_future(self._reads().submit(self._read, work))

    def _reads(self) -> ThreadPoolExecutor:
        if self._read_thread is None:
            self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="omni-read")
        return self._read_thread

    def _wrote(self) -> None:
        """After a commit on the kept connection: every ``CHECKPOINT_EVERY``, copy the log into
        the database in the read thread, so the log stays short without the loop doing the copy."""
        if self.sqlite_path is None:
            return
        self._writes += 1
        if self._writes < CHECKPOINT_EVERY or self._checkpointing is not None:
            return
        self._writes = 0
        self._checkpointing = asyncio.create_task(self._checkpoint_soon(), name="sqlite-checkpoint")

    async def _checkpoint_soon(self) -> None:
        # Under the write lock: none of our writes append meanwhile (they wait on the lock, not
        # in SQLite's busy handler on the loop), so the copy catches up with the whole log and
        # the next write starts it over instead of growing it.
        try:
            async with self._lock or contextlib.nullcontext():
                await self.read(_passive_checkpoint)
        except Exception:  # the next checkpoint catches up; nobody is waiting on this one
            log.debug("background checkpoint failed", exc_info=True)
        finally:
            self._checkpointing = None

    async def checkpoint(self) -> bool:
        """Copy SQLite's write-ahead log into the database and truncate it; False when another
        process's reader kept it from being emptied. Run in the read thread, after every read
        handed to it, while no write of ours runs: none of ours can hold it up, and the loop
        never waits in SQLite's busy handler for it."""
        if self._lock is None or self.sqlite_path is None:
            return True  # no log: another database, or SQLite in memory
        async with self._lock:
            busy = await self.read(
                lambda conn: conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
            )
        return not busy

    def _read(self, work: Callable[[Connection], T]) -> T:
        # In the read thread only.
        try:
            conn = self._reader
            if conn is None or conn.closed or conn.invalidated:
                if conn is not None:
                    conn.close()
                conn = self._reader = self._sync.connect()
                conn.exec_driver_sql("PRAGMA query_only=ON")  # a bug that writes fails here
            try:
                return work(conn)
            finally:
                # pysqlite begins no transaction for a SELECT, but SQLAlchemy marks one begun:
                # end it, so the next read sees the latest commit and a checkpoint can truncate.
                if conn.in_transaction():
                    conn.rollback()
        except OperationalError as exc:
            if is_lock_timeout(exc):
                raise locked_error(str(self.url)) from exc
            raise

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection in a transaction: committed when the block ends, rolled back on error."""
        if self._lock is None:
            async with self.engine.begin() as conn:
                yield AwaitedConn(conn)
            return
        async with self._lock:
            with self._in_place() as kept, kept.begin():
                yield InlineConn(kept)
            self._wrote()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Sess]:
        """An ORM session in a transaction: committed when the block ends, rolled back on error."""
        if self._lock is None:
            async with AsyncSession(self.engine, expire_on_commit=False) as db, db.begin():
                yield AwaitedSession(db)
            return
        async with self._lock:
            with self._in_place() as kept, Session(bind=kept, expire_on_commit=False) as orm, orm.begin():
                yield InlineSession(orm)
            self._wrote()

    async def aclose(self) -> None:
        if self._checkpointing is not None:
            await self._checkpointing
        if self._read_thread is not None:  # after any read already handed to it
            await asyncio.wrap_future(self._read_thread.submit(self._close_reader))
            self._read_thread.shutdown()
            self._read_thread = None
        if self._lock is not None:
            async with self._lock:
                if self._kept is not None:
                    self._kept.close()
                    self._kept = None
            self._sync.dispose()
        else:
            await self.engine.dispose()
