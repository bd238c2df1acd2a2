"""One conversation at a time across processes: a lock per key, held in the database.

Several workers (``omni bot`` webhook workers, ``omni gateway`` processes) may serve one
PostgreSQL database; consecutive messages of a chat can land on different workers, and each
worker's in-process queue only orders its own. :meth:`ConversationLocks.hold` takes a
PostgreSQL advisory lock on the key for the duration of the block, on a connection of its own:
a worker that dies (even ``kill -9``) drops its connection and the server releases the lock at
once. On SQLite, one process serves the database (a second worker is not supported there), so
the in-process queue is the whole story and the lock is not taken.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from memory.db import Database

log = logging.getLogger(__name__)

POLL_S = 0.05  # between tries while another worker holds the lock
_TRY = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (a chat or session key)."""
    digest = hashlib.blake2b(f"omni:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ConversationLocks:
    """Advisory locks on the store's database (none on SQLite)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def shared(self) -> bool:
        """Whether the locks hold across processes (PostgreSQL)."""
        return self._db.dialect == "postgresql"

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold ``name``'s lock for the block, waiting while another worker holds it."""
        if not self.shared:
            yield
            return
        key = {"key": lock_key(name)}
        async with self._db.engine.connect() as conn:
            while True:
                taken = await conn.scalar(_TRY, key)
                await conn.commit()  # a session-level lock: no transaction left open meanwhile
                if taken:
                    break
                await asyncio.sleep(POLL_S)
            try:
                yield
            finally:
                try:
                    await asyncio.shield(self._unlock(conn, key))
                except Exception:
                    # The lock may still be held on this connection: drop the connection so the
                    # server ends the session and releases it, rather than pool it locked.
                    log.warning("could not release the lock of %s; closing its connection", name)
                    await conn.invalidate()

    @staticmethod
    async def _unlock(conn: AsyncConnection, key: dict[str, int]) -> None:
        await conn.scalar(_UNLOCK, key)
        await conn.commit()
